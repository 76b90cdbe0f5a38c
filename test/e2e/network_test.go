package e2e

import (
	"net"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	mdns "github.com/miekg/dns"
)

// bridgePrefix is the address and prefix of berth's bridge.
func bridgePrefix(t *testing.T, b *berth) *net.IPNet {
	t.Helper()
	ifc, err := net.InterfaceByName(b.bridge)
	if err != nil {
		t.Fatalf("berth's bridge %s: %v", b.bridge, err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n
		}
	}
	t.Fatalf("bridge %s has no IPv4 address", b.bridge)
	return nil
}

// TestVirtualNetworkWithSDK creates a virtual network with a subnet
// delegated to container groups through armnetwork, as SDK code that
// creates a VNet before its container groups does, and queries berth's DNS
// server on its bridge.
func TestVirtualNetworkWithSDK(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 2*time.Minute)
	f := s.network(t)
	vnets, subnets := f.NewVirtualNetworksClient(), f.NewSubnetsClient()
	if _, err := s.groups.CreateOrUpdate(ctx, "netrg", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 100 * time.Millisecond}
	vnet := func(space, subnet string) armnetwork.VirtualNetwork {
		return armnetwork.VirtualNetwork{Location: to.Ptr("westeurope"), Properties: &armnetwork.VirtualNetworkPropertiesFormat{
			AddressSpace: &armnetwork.AddressSpace{AddressPrefixes: []*string{to.Ptr(space)}},
			Subnets:      []*armnetwork.Subnet{aciSubnet("aci", subnet)},
		}}
	}

	// A subnet on berth's own bridge is refused.
	own := bridgePrefix(t, b)
	ownNet := (&net.IPNet{IP: own.IP.Mask(own.Mask), Mask: own.Mask}).String()
	if _, err := vnets.BeginCreateOrUpdate(ctx, "netrg", "clash", vnet(ownNet, ownNet), nil); respCode(err) != "SubnetRangeInUseOnHost" {
		t.Fatalf("subnet on berth's bridge: %v", err)
	}

	created := createVNet(ctx, t, vnets, "netrg", "vnet1", "westeurope", 250, 255, func(base string) []*armnetwork.Subnet {
		return []*armnetwork.Subnet{aciSubnet("aci", base+".0/24")}
	})
	if *created.Properties.ProvisioningState != armnetwork.ProvisioningStateSucceeded ||
		*created.Properties.Subnets[0].Properties.Delegations[0].Properties.ServiceName != "Microsoft.ContainerInstance/containerGroups" {
		t.Fatalf("created %+v", created.Properties)
	}
	got, err := subnets.Get(ctx, "netrg", "vnet1", "aci", nil)
	if err != nil || *got.ID != *created.Properties.Subnets[0].ID {
		t.Fatalf("get subnet: %v", err)
	}
	// Another virtual network may not overlap it.
	space := *created.Properties.AddressSpace.AddressPrefixes[0]
	if _, err := vnets.BeginCreateOrUpdate(ctx, "netrg", "vnet2", vnet(space, space), nil); respCode(err) != "NetcfgSubnetRangesOverlap" {
		t.Fatalf("overlapping virtual network: %v", err)
	}

	// berth's DNS server answers on the bridge's gateway, for the host too.
	m := new(mdns.Msg)
	m.SetQuestion("no-such-label.westeurope.azurecontainer.io.", mdns.TypeA)
	for _, proto := range []string{"udp", "tcp"} {
		r, _, err := (&mdns.Client{Net: proto, Timeout: 5 * time.Second}).Exchange(m, net.JoinHostPort(own.IP.String(), "53"))
		if err != nil || r.Rcode != mdns.RcodeNameError || !r.Authoritative {
			t.Fatalf("DNS over %s on %s: %v %v", proto, own.IP, err, r)
		}
	}

	// Resource-group delete removes the network.
	dp, err := s.groups.BeginDelete(ctx, "netrg", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if _, err := s.groups.CreateOrUpdate(ctx, "netrg", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := vnets.Get(ctx, "netrg", "vnet1", nil); respCode(err) != "ResourceNotFound" {
		t.Fatalf("vnet after the group delete: %v", err)
	}
}
