package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
)

// aciSubnet is subnet name with address prefix prefix, delegated to
// container groups.
func aciSubnet(name, prefix string) *armnetwork.Subnet {
	return &armnetwork.Subnet{Name: to.Ptr(name), Properties: &armnetwork.SubnetPropertiesFormat{
		AddressPrefix: to.Ptr(prefix),
		Delegations: []*armnetwork.Delegation{{Name: to.Ptr("aci"), Properties: &armnetwork.ServiceDelegationPropertiesFormat{
			ServiceName: to.Ptr("Microsoft.ContainerInstance/containerGroups")}}},
	}}
}

// createVNet creates, through vnets, virtual network name in rg at loc in a
// free /24: its address space is base+".0/24", base "10.<second>.<third>"
// picked at random with second in [lo, hi] and third in [0, 250), and its
// subnets are subnets(base). A range berth refuses as taken (on the host,
// or by another virtual network) is given up for another, up to 20 times.
func createVNet(ctx context.Context, t *testing.T, vnets *armnetwork.VirtualNetworksClient, rg, name, loc string,
	lo, hi int, subnets func(base string) []*armnetwork.Subnet) armnetwork.VirtualNetwork {
	t.Helper()
	for i := 0; ; i++ {
		base := fmt.Sprintf("10.%d.%d", lo+rand.IntN(hi-lo+1), rand.IntN(250))
		p, err := vnets.BeginCreateOrUpdate(ctx, rg, name, armnetwork.VirtualNetwork{Location: to.Ptr(loc),
			Properties: &armnetwork.VirtualNetworkPropertiesFormat{
				AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr(base + ".0/24")}},
				Subnets:      subnets(base)}}, nil)
		if c := respCode(err); (c == "SubnetRangeInUseOnHost" || c == "NetcfgSubnetRangesOverlap") && i < 20 {
			continue
		}
		if err != nil {
			t.Fatalf("virtual network %s: %v", name, err)
		}
		res, err := p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: 100 * time.Millisecond})
		if err != nil {
			t.Fatalf("virtual network %s: %v", name, err)
		}
		return res.VirtualNetwork
	}
}
