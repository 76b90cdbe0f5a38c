package e2e

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// TestPrivateRegistryNetworks: a Premium registry with public network
// access off and a private endpoint on a subnet of virtual network A. A
// group in A pulls its image from it and reaches its login server from
// inside (401: the challenge); a group in virtual network B fails to pull
// (InaccessibleImage) and gets ACR's 403 from inside; the host gets the
// 403 too, until public access is on with 127.0.0.1 in the IP rules.
// importImage writes into the closed registry (its own work) and reads
// from it as a trusted service while the bypass allows.
func TestPrivateRegistryNetworks(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	regs := s.registries(t).NewRegistriesClient()
	nf := s.network(t)
	poll := &runtime.PollUntilDoneOptions{Frequency: 200 * time.Millisecond}
	const rg = "rg-private"
	if _, err := s.groups.CreateOrUpdate(ctx, rg, armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}

	// A Premium registry with the test image imported into it.
	pushTestImage(t, b, "private/app:v1")
	reg := createRegistry(ctx, t, regs, rg, "privatereg1", acr.Registry{Location: to.Ptr("westeurope"),
		SKU: &acr.SKU{Name: to.Ptr(acr.SKUNamePremium)}, Properties: &acr.RegistryProperties{AdminUserEnabled: to.Ptr(true)}})
	login := *reg.Properties.LoginServer
	importInto := func(into, from, image string) error {
		ip, err := regs.BeginImportImage(ctx, rg, into, acr.ImportImageParameters{
			Source: &acr.ImportSource{RegistryURI: to.Ptr(from), SourceImage: to.Ptr(image)}, Mode: to.Ptr(acr.ImportModeForce)}, nil)
		if err == nil {
			_, err = ip.PollUntilDone(ctx, poll)
		}
		return err
	}
	if err := importInto("privatereg1", b.env["BERTH_REGISTRY"], "private/app:v1"); err != nil {
		t.Fatalf("import: %v", err)
	}
	creds, err := regs.ListCredentials(ctx, rg, "privatereg1", nil)
	if err != nil {
		t.Fatal(err)
	}
	regCred := []*aci.ImageRegistryCredential{{Server: to.Ptr(login), Username: creds.Username, Password: creds.Passwords[0].Value}}
	image := login + "/private/app:v1"

	// Virtual networks A (a private-endpoint subnet and a delegated one)
	// and B (delegated), in free /24s.
	va := createVNet(ctx, t, nf.NewVirtualNetworksClient(), rg, "vnet-a", "westeurope", 240, 245, func(base string) []*armnetwork.Subnet {
		return []*armnetwork.Subnet{{Name: to.Ptr("endpoints"), Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr(base + ".0/25")}},
			aciSubnet("aci", base+".128/25")}
	})
	vb := createVNet(ctx, t, nf.NewVirtualNetworksClient(), rg, "vnet-b", "westeurope", 240, 245, func(base string) []*armnetwork.Subnet {
		return []*armnetwork.Subnet{aciSubnet("aci", base+".0/24")}
	})

	// The private endpoint on A's endpoint subnet; public access off.
	pp, err := nf.NewPrivateEndpointsClient().BeginCreateOrUpdate(ctx, rg, "registry-pe", armnetwork.PrivateEndpoint{Location: to.Ptr("westeurope"),
		Properties: &armnetwork.PrivateEndpointProperties{Subnet: &armnetwork.Subnet{ID: va.Properties.Subnets[0].ID},
			PrivateLinkServiceConnections: []*armnetwork.PrivateLinkServiceConnection{{Name: to.Ptr("registry"),
				Properties: &armnetwork.PrivateLinkServiceConnectionProperties{PrivateLinkServiceID: reg.ID, GroupIDs: []*string{to.Ptr("registry")}}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pe, err := pp.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	if st := *pe.Properties.PrivateLinkServiceConnections[0].Properties.PrivateLinkServiceConnectionState.Status; st != "Approved" {
		t.Fatalf("private endpoint connection %s", st)
	}
	update := func(p acr.RegistryPropertiesUpdateParameters) {
		t.Helper()
		up, err := regs.BeginUpdate(ctx, rg, "privatereg1", acr.RegistryUpdateParameters{Properties: &p}, nil)
		if err == nil {
			_, err = up.PollUntilDone(ctx, poll)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	update(acr.RegistryPropertiesUpdateParameters{PublicNetworkAccess: to.Ptr(acr.PublicNetworkAccessDisabled)})

	// The host is refused with ACR's 403.
	hostGet := func() (int, string) {
		t.Helper()
		resp, err := b.client.Get("https://" + login + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	const deniedBody = `{"errors":[{"code":"DENIED","message":"client with IP '127.0.0.1' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."}]}`
	if code, body := hostGet(); code != 403 || strings.TrimSpace(body) != deniedBody {
		t.Fatalf("host with public access off: %d %s", code, body)
	}

	req := &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.25), MemoryInGB: to.Ptr(0.25)}}
	group := func(subnet *string, image string, creds []*aci.ImageRegistryCredential, cmd ...string) aci.ContainerGroup {
		g := aci.ContainerGroup{Location: to.Ptr("westeurope"), Properties: &aci.ContainerGroupPropertiesProperties{
			OSType: to.Ptr(aci.OperatingSystemTypesLinux), ImageRegistryCredentials: creds,
			RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyNever),
			Containers: []*aci.Container{{Name: to.Ptr("app"), Properties: &aci.ContainerProperties{Image: to.Ptr(image), Resources: req,
				Command: to.SliceOfPtrs(cmd...)}}},
		}}
		if subnet != nil {
			g.Properties.SubnetIDs = []*aci.ContainerGroupSubnetID{{ID: subnet}}
		}
		return g
	}
	probe := []string{"/app", "status", "https://" + login + "/v2/"}

	// A group in A pulls from the registry and reaches it: 401, the challenge.
	createGroup(t, s, rg, "in-a", group(va.Properties.Subnets[1].ID, image, regCred, probe...))
	waitGroupState(t, s, rg, "in-a", "Succeeded")
	if got := strings.TrimSpace(containerLogs(t, s, rg, "in-a", "app")); got != "status 401" {
		t.Fatalf("inside virtual network A: %q", got)
	}

	// A group in B cannot pull from it: InaccessibleImage.
	pctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	poller, err := s.cgs.BeginCreateOrUpdate(pctx, rg, "pull-b", group(vb.Properties.Subnets[0].ID, image, regCred, probe...), nil)
	if err == nil {
		_, err = poller.PollUntilDone(pctx, poll)
	}
	if respCode(err) != "InaccessibleImage" {
		t.Fatalf("pull from virtual network B: %v", err)
	}
	failed, err := s.cgs.Get(ctx, rg, "pull-b", nil)
	if err != nil {
		t.Fatal(err)
	}
	why := ""
	for _, e := range failed.Properties.Containers[0].Properties.InstanceView.Events {
		if *e.Name == "Failed" {
			why = *e.Message
		}
	}
	if !strings.Contains(why, "403") && !strings.Contains(why, "not allowed access") {
		t.Fatalf("pull from virtual network B failed for another reason: %q", why)
	}
	t.Logf("pull from B: %s", why)
	// … nor reach it from inside (its image from the default registry): 403.
	defImage := b.env["BERTH_REGISTRY"] + "/private/app:v1"
	createGroup(t, s, rg, "in-b", group(vb.Properties.Subnets[0].ID, defImage, b.registryCred(), probe...))
	waitGroupState(t, s, rg, "in-b", "Succeeded")
	if got := strings.TrimSpace(containerLogs(t, s, rg, "in-b", "app")); got != "status 403" {
		t.Fatalf("inside virtual network B: %q", got)
	}
	// A public group neither.
	createGroup(t, s, rg, "public", group(nil, defImage, b.registryCred(), probe...))
	waitGroupState(t, s, rg, "public", "Succeeded")
	if got := strings.TrimSpace(containerLogs(t, s, rg, "public", "app")); got != "status 403" {
		t.Fatalf("a public group: %q", got)
	}

	// importImage: into the closed registry works (its own work); out of
	// it as a trusted service while the bypass allows, not with None.
	createRegistry(ctx, t, regs, rg, "otherreg1", acr.Registry{Location: to.Ptr("westeurope"), SKU: &acr.SKU{Name: to.Ptr(acr.SKUNameStandard)}})
	if err := importInto("privatereg1", b.env["BERTH_REGISTRY"], "private/app:v1"); err != nil {
		t.Fatalf("import into the closed registry: %v", err)
	}
	if err := importInto("otherreg1", login, "private/app:v1"); err != nil {
		t.Fatalf("import from the closed registry with trusted services allowed: %v", err)
	}
	update(acr.RegistryPropertiesUpdateParameters{NetworkRuleBypassOptions: to.Ptr(acr.NetworkRuleBypassOptionsNone)})
	if err := importInto("otherreg1", login, "private/app:v1"); err == nil {
		t.Fatal("import from the closed registry with bypass None succeeded")
	}

	// Public access on, denied by default, 127.0.0.1 allowed: the host
	// gets in (the challenge); without the rule it does not.
	update(acr.RegistryPropertiesUpdateParameters{PublicNetworkAccess: to.Ptr(acr.PublicNetworkAccessEnabled),
		NetworkRuleSet: &acr.NetworkRuleSet{DefaultAction: to.Ptr(acr.DefaultActionDeny),
			IPRules: []*acr.IPRule{{Action: to.Ptr(acr.ActionAllow), IPAddressOrRange: to.Ptr("127.0.0.1")}}}})
	if code, body := hostGet(); code != 401 {
		t.Fatalf("host in the IP rules: %d %s", code, body)
	}
	update(acr.RegistryPropertiesUpdateParameters{NetworkRuleSet: &acr.NetworkRuleSet{DefaultAction: to.Ptr(acr.DefaultActionDeny)}})
	if code, body := hostGet(); code != 403 || strings.TrimSpace(body) != deniedBody {
		t.Fatalf("host outside the IP rules: %d %s", code, body)
	}
}
