package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	mdns "github.com/miekg/dns"
)

// TestGroupsInVirtualNetworks puts container groups in subnets of virtual
// networks created through armnetwork, and checks what Azure promises:
// addresses from the subnet, groups in the subnets of one virtual network
// reach each other, groups of another virtual network and public groups do
// not, the host reaches all; a 2021-03-01 networkProfile works too; and a
// dnsNameLabel resolves through berth's DNS server, for the host and inside
// groups.
func TestGroupsInVirtualNetworks(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	image := pushTestImage(t, b, "vnet/app:v1")
	f := s.network(t)
	vnets, profiles := f.NewVirtualNetworksClient(), f.NewProfilesClient()
	if _, err := s.groups.CreateOrUpdate(ctx, "vnets", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 100 * time.Millisecond}
	// Two virtual networks in free /24s: A with subnets a1 and a2, B with b1.
	va := createVNet(ctx, t, vnets, "vnets", "vnet-a", "westeurope", 250, 255, func(base string) []*armnetwork.Subnet {
		return []*armnetwork.Subnet{aciSubnet("a1", base+".0/25"), aciSubnet("a2", base+".128/25")}
	})
	vb := createVNet(ctx, t, vnets, "vnets", "vnet-b", "westeurope", 250, 255, func(base string) []*armnetwork.Subnet {
		return []*armnetwork.Subnet{aciSubnet("b1", base+".0/24")}
	})
	subnetID := func(v armnetwork.VirtualNetwork, i int) string { return *v.Properties.Subnets[i].ID }

	req := &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.25), MemoryInGB: to.Ptr(0.25)}}
	private := func(subnet string, cmd ...string) aci.ContainerGroup {
		g := aci.ContainerGroup{Location: to.Ptr("westeurope"), Properties: &aci.ContainerGroupPropertiesProperties{
			OSType: to.Ptr(aci.OperatingSystemTypesLinux), ImageRegistryCredentials: b.registryCred(),
			RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyNever),
			Containers: []*aci.Container{{Name: to.Ptr("app"), Properties: &aci.ContainerProperties{Image: to.Ptr(image), Resources: req,
				Ports: []*aci.ContainerPort{{Port: to.Ptr[int32](8080)}}}}},
		}}
		if len(cmd) > 0 {
			g.Properties.Containers[0].Properties.Command = to.SliceOfPtrs(cmd...)
		}
		if subnet != "" {
			g.Properties.SubnetIDs = []*aci.ContainerGroupSubnetID{{ID: to.Ptr(subnet)}}
			g.Properties.IPAddress = &aci.IPAddress{Type: to.Ptr(aci.ContainerGroupIPAddressTypePrivate), Ports: []*aci.Port{{Port: to.Ptr[int32](8080)}}}
		} else {
			g.Properties.IPAddress = &aci.IPAddress{Type: to.Ptr(aci.ContainerGroupIPAddressTypePublic), Ports: []*aci.Port{{Port: to.Ptr[int32](8080)}}}
		}
		return g
	}
	server := private(subnetID(va, 0))
	server.Properties.RestartPolicy = to.Ptr(aci.ContainerGroupRestartPolicyAlways)
	createGroup(t, s, "vnets", "server", server)
	srv := waitGroupState(t, s, "vnets", "server", "Running")
	ip := *srv.Properties.IPAddress.IP
	a1, _ := netip.ParsePrefix(*va.Properties.Subnets[0].Properties.AddressPrefix)
	addr := netip.MustParseAddr(ip)
	if !a1.Contains(addr) || addr.As4()[3] < 4 {
		t.Fatalf("address %s: want one from %s, from .4 on", ip, a1)
	}
	if _, err := waitEnv(t, ip); err != nil {
		t.Fatalf("the host cannot reach %s: %v", ip, err)
	}

	probe := []string{"/app", "probe", "http://" + ip + ":8080/", "3"}
	for _, c := range []struct {
		name, subnet, want string
	}{
		{"same-vnet", subnetID(va, 1), "REACHED"},
		{"other-vnet", subnetID(vb, 0), "UNREACHABLE"},
		{"public", "", "UNREACHABLE"},
	} {
		createGroup(t, s, "vnets", c.name, private(c.subnet, probe...))
		waitGroupState(t, s, "vnets", c.name, "Succeeded")
		if got := strings.TrimSpace(containerLogs(t, s, "vnets", c.name, "app")); got != c.want {
			t.Errorf("%s → %s: %q, want %s", c.name, ip, got, c.want)
		}
	}

	// 2021-03-01: a network profile naming subnet b1.
	pp, err := profiles.CreateOrUpdate(ctx, "vnets", "profile-b", armnetwork.Profile{Location: to.Ptr("westeurope"),
		Properties: &armnetwork.ProfilePropertiesFormat{ContainerNetworkInterfaceConfigurations: []*armnetwork.ContainerNetworkInterfaceConfiguration{{
			Name: to.Ptr("eth0"), Properties: &armnetwork.ContainerNetworkInterfaceConfigurationPropertiesFormat{
				IPConfigurations: []*armnetwork.IPConfigurationProfile{{Name: to.Ptr("ipconfig"),
					Properties: &armnetwork.IPConfigurationProfilePropertiesFormat{Subnet: &armnetwork.Subnet{ID: to.Ptr(subnetID(vb, 0))}}}},
			}}}}}, nil)
	if err != nil {
		t.Fatalf("network profile: %v", err)
	}
	body := fmt.Sprintf(`{"location":"westeurope","properties":{"osType":"Linux","restartPolicy":"Always",
		"containers":[{"name":"app","properties":{"image":%q,"ports":[{"port":8080}],"resources":{"requests":{"cpu":0.25,"memoryInGB":0.25}}}}],
		"ipAddress":{"type":"Private","ports":[{"port":8080}]},"networkProfile":{"id":%q},
		"imageRegistryCredentials":[{"server":%q,"username":%q,"password":%q}]}}`,
		image, *pp.ID, b.env["BERTH_REGISTRY"], b.env["AZURE_CLIENT_ID"], b.env["AZURE_CLIENT_SECRET"])
	const legacy = "/subscriptions/%s/resourceGroups/vnets/providers/Microsoft.ContainerInstance/containerGroups/legacy?api-version=2021-03-01"
	if code, ecode, resp := rawARM(t, b, s, "PUT", fmt.Sprintf(legacy, b.env["AZURE_SUBSCRIPTION_ID"]), body); code != 201 {
		t.Fatalf("2021-03-01 PUT with a network profile: %d %s %v", code, ecode, resp)
	}
	lg := waitGroupState(t, s, "vnets", "legacy", "Running")
	b1, _ := netip.ParsePrefix(*vb.Properties.Subnets[0].Properties.AddressPrefix)
	if !b1.Contains(netip.MustParseAddr(*lg.Properties.IPAddress.IP)) {
		t.Fatalf("network-profile group address %s outside %s", *lg.Properties.IPAddress.IP, b1)
	}
	// A dangling subnet is refused at PUT.
	bad := private(strings.Replace(subnetID(va, 0), "/subnets/a1", "/subnets/nope", 1))
	if _, err := s.cgs.BeginCreateOrUpdate(ctx, "vnets", "dangling", bad, nil); err == nil {
		t.Fatal("a group in a subnet that does not exist was accepted")
	}

	// dnsNameLabel: the fqdn resolves through berth's DNS server, on the
	// host (at the bridge's gateway) and inside groups.
	label := fmt.Sprintf("web%d", time.Now().UnixNano()%1e9)
	named := private("")
	named.Properties.RestartPolicy = to.Ptr(aci.ContainerGroupRestartPolicyAlways)
	named.Properties.IPAddress.DNSNameLabel = to.Ptr(label)
	createGroup(t, s, "vnets", "named", named)
	ng := waitGroupState(t, s, "vnets", "named", "Running")
	fqdn := *ng.Properties.IPAddress.Fqdn
	if fqdn != label+".westeurope.azurecontainer.io" {
		t.Fatalf("fqdn %q", fqdn)
	}
	gw := bridgePrefix(t, b).IP.String()
	m := new(mdns.Msg)
	m.SetQuestion(fqdn+".", mdns.TypeA)
	r, _, err := (&mdns.Client{Timeout: 5 * time.Second}).Exchange(m, net.JoinHostPort(gw, "53"))
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*mdns.A).A.String() != *ng.Properties.IPAddress.IP {
		t.Fatalf("resolve %s at %s: %v %v", fqdn, gw, err, r)
	}
	createGroup(t, s, "vnets", "resolver", private("", "/app", "probe", "http://"+fqdn+":8080/", "5"))
	waitGroupState(t, s, "vnets", "resolver", "Succeeded")
	if got := strings.TrimSpace(containerLogs(t, s, "vnets", "resolver", "app")); got != "REACHED" {
		t.Errorf("inside a group, %s: %q", fqdn, got)
	}
	// Deleted: the name no longer resolves.
	dp, err := s.cgs.BeginDelete(ctx, "vnets", "named", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	r, _, err = (&mdns.Client{Timeout: 5 * time.Second}).Exchange(m, net.JoinHostPort(gw, "53"))
	if err != nil || r.Rcode != mdns.RcodeNameError {
		t.Fatalf("resolve %s after delete: %v %v", fqdn, err, r)
	}
}
