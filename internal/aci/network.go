package aci

import (
	"context"

	"github.com/berth-dev/berth/internal/apierr"
)

// Networks resolves where a group in a virtual network gets its address.
// It is implemented above the runtime by the Microsoft.Network service
// (virtual networks, subnets, network profiles); nil means no virtual
// networks exist, and every subnet reference is refused.
type Networks interface {
	// Subnet checks that subnetID names an existing subnet delegated to
	// Microsoft.ContainerInstance/containerGroups and returns the runtime
	// network its groups join. Errors are *apierr.Error in ARM's terms.
	Subnet(ctx context.Context, subnetID string) (runtimeNetwork string, err error)
	// NetworkProfile does the same for a 2021-03-01 networkProfile id.
	NetworkProfile(ctx context.Context, profileID string) (runtimeNetwork string, err error)
	// Use records that group (an ARM id) is in the subnet named by id (a
	// subnet id, or a network profile id whose subnet is meant): a service
	// association link, so that the subnet cannot be deleted while groups
	// use it. Release forgets it.
	Use(ctx context.Context, id, group string) error
	Release(ctx context.Context, group string) error
	// DeleteServiceAssociationLink removes ACI's link to a subnet no group
	// uses and reports whether the subnet held one (a conflict while groups
	// use it; NotFound for no such subnet).
	DeleteServiceAssociationLink(ctx context.Context, subnetID string) (bool, error)
}

// Names publishes the fqdns of groups with a dnsNameLabel on berth's DNS
// server. nil: names are assigned but resolve nowhere.
type Names interface {
	// Set points fqdn (lower case, no trailing dot) at ip; ip "" removes it.
	Set(fqdn, ip string)
}

// subnetNotFound is the answer to a subnet id that names nothing.
func subnetNotFound(id string) error {
	return apierr.New(apierr.Invalid, "InvalidResourceReference",
		"Resource %s referenced by the container group was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", id)
}

// networkProfileNotFound is the answer to a networkProfile id that names
// nothing.
func networkProfileNotFound(id string) error {
	return apierr.New(apierr.Invalid, "NetworkProfileNotFound",
		"The network profile '%s' could not be found. Please make sure that the referenced resource exists, and that both resources are in the same region.", id)
}

// useSubnet records g's use of its subnet (best effort: the link only
// protects the subnet from deletion).
func (s *Service) useSubnet(g *Group) {
	id := g.NetworkProfileID
	if len(g.SubnetIDs) > 0 {
		id = g.SubnetIDs[0].ID
	}
	if s.Networks == nil || id == "" {
		return
	}
	if err := s.Networks.Use(context.Background(), id, g.ID()); err != nil {
		s.logf("record subnet use of %s: %v", g.ID(), err)
	}
}

func (s *Service) releaseSubnet(g *Group) {
	if s.Networks == nil || (len(g.SubnetIDs) == 0 && g.NetworkProfileID == "") {
		return
	}
	if err := s.Networks.Release(context.Background(), g.ID()); err != nil {
		s.logf("release subnet use of %s: %v", g.ID(), err)
	}
}
