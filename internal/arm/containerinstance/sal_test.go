package containerinstance

import (
	"context"
	"net/http"
	"net/netip"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	sdk "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/network"
)

// TestSubnetServiceAssociationLinkDelete: DELETE .../serviceAssociationLinks/default
// answers 204 for a subnet without ACI's link, 409 while a group is in the
// subnet, 200 once the group is gone (the subnet still held the link) and
// 204 for the delete after that.
func TestSubnetServiceAssociationLinkDelete(t *testing.T) {
	e := newSDKEnv(t, 0)
	ctx := context.Background()
	nets := &network.Service{Store: e.svc.Store, Clock: clock.Real{}, Resources: e.svc.Resources,
		Runtime: &network.Memory{Host: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}
	if err := nets.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.svc.Networks = nets
	if _, _, err := nets.PutVirtualNetwork(ctx, &network.VirtualNetwork{Subscription: testSub, ResourceGroup: "rg", Name: "vnet", Location: "westus",
		AddressPrefixes: []string{"10.50.0.0/16"}, Subnets: []*network.Subnet{{Name: "aci", AddressPrefix: "10.50.1.0/24",
			Delegations: []network.Delegation{{Name: "aci", ServiceName: network.ACIDelegation}}}}}); err != nil {
		t.Fatal(err)
	}
	subnet := "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci"
	linkURL := subnet + "/providers/Microsoft.ContainerInstance/serviceAssociationLinks/default"
	del := func(want int) {
		t.Helper()
		if st, _, raw := e.call(t, "DELETE", linkURL, "2023-05-01", nil); st != want {
			t.Fatalf("link DELETE: %d %s, want %d", st, raw, want)
		}
	}
	del(http.StatusNoContent)

	g := sdkGroup()
	g.Properties.IPAddress.Type = to.Ptr(sdk.ContainerGroupIPAddressTypePrivate)
	g.Properties.SubnetIDs = []*sdk.ContainerGroupSubnetID{{ID: to.Ptr(subnet)}}
	e.create(t, "private", g)
	del(http.StatusConflict)

	p, err := e.groups.BeginDelete(ctx, "rg", "private", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, &azruntimePollOpts); err != nil {
		t.Fatal(err)
	}
	if _, sn, err := nets.GetSubnet(ctx, testSub, "rg", "vnet", "aci"); err != nil || !sn.HoldsLink {
		t.Fatalf("after the group's delete the subnet holds no link: %v", err)
	}
	del(http.StatusOK)
	del(http.StatusNoContent)
}
