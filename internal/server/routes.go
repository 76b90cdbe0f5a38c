package server

import (
	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/arm/authorization"
	"github.com/berth-dev/berth/internal/arm/containerinstance"
	"github.com/berth-dev/berth/internal/arm/containerregistry"
	"github.com/berth-dev/berth/internal/arm/managedidentity"
	armnetwork "github.com/berth-dev/berth/internal/arm/network"
	"github.com/berth-dev/berth/internal/msi"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/rbac"
	"github.com/berth-dev/berth/internal/registries"
)

// registerAPIs adds every resource provider's routes to the ARM server (its
// own Microsoft.Resources routes come from HandleCore). routes_test.go walks
// the result: every operation declares its RBAC action.
func registerAPIs(armSrv *arm.Server, svc *aci.Service, regs *registries.Service, nets *network.Service, ids *msi.Service, roles *rbac.Service) {
	(&containerinstance.API{ARM: armSrv, Service: svc}).Register()
	(&containerregistry.API{ARM: armSrv, Service: regs}).Register()
	(&armnetwork.API{ARM: armSrv, Service: nets}).Register()
	(&managedidentity.API{ARM: armSrv, Service: ids}).Register()
	(&authorization.API{ARM: armSrv, Service: roles}).Register()
}
