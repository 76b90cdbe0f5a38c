package e2e

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	armauth "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/testutil/testimage"
)

// TestSeedPrivateRegistryWithGo is the seed's no-password deployment
// (../shared/seeds/004) through the Go SDK: armnetwork, armmsi,
// armcontainerregistry, armauthorization, armcontainerinstance, as the
// well-known service principal (the deployer) — with a pusher principal
// holding only AcrPush, a Premium registry with the admin user off behind a
// private endpoint, a user-assigned identity holding AcrPull as the group's
// registry credential. The program in the group lists the registry with a
// token from the metadata endpoint; without the role, or from a virtual
// network without an endpoint, the pull fails.
func TestSeedPrivateRegistryWithGo(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	poll := &runtime.PollUntilDoneOptions{Frequency: 200 * time.Millisecond}
	const rg, loc = "seedgo", "westeurope"
	if _, err := s.groups.CreateOrUpdate(ctx, rg, armresources.ResourceGroup{Location: to.Ptr(loc)}, nil); err != nil {
		t.Fatal(err)
	}
	nf := s.network(t)
	af := s.registries(t)
	mf, err := armmsi.NewClientFactory(s.sub, s.cred, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := armauth.NewClientFactory(s.sub, s.cred, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	roleID := func(guid string) *string {
		return to.Ptr("/subscriptions/" + s.sub + "/providers/Microsoft.Authorization/roleDefinitions/" + guid)
	}
	assign := func(scope, guid, principal string) string {
		name := uuid.NewString()
		if _, err := auth.NewRoleAssignmentsClient().Create(ctx, scope, name, armauth.RoleAssignmentCreateParameters{
			Properties: &armauth.RoleAssignmentProperties{RoleDefinitionID: roleID(guid), PrincipalID: to.Ptr(principal),
				PrincipalType: to.Ptr(armauth.PrincipalTypeServicePrincipal)}}, nil); err != nil {
			t.Fatalf("assign %s to %s: %v", guid, principal, err)
		}
		return name
	}
	const acrPull, acrPush = "7f951dda-4ed3-4680-a7ca-43fe172d538d", "8311e382-0749-4cb8-b61a-304f252e45ec"

	// Networks: A with a delegated subnet and one for the endpoint, B
	// delegated only.
	vnets := nf.NewVirtualNetworksClient()
	va := createVNet(ctx, t, vnets, rg, "seed-a", loc, 240, 249, func(base string) []*armnetwork.Subnet {
		return []*armnetwork.Subnet{aciSubnet("aci", base+".0/25"),
			{Name: to.Ptr("endpoints"), Properties: &armnetwork.SubnetPropertiesFormat{AddressPrefix: to.Ptr(base + ".128/25")}}}
	})
	vb := createVNet(ctx, t, vnets, rg, "seed-b", loc, 240, 249, func(base string) []*armnetwork.Subnet {
		return []*armnetwork.Subnet{aciSubnet("aci", base+".0/24")}
	})

	// The identity, and the Premium registry with the admin user off.
	ident, err := mf.NewUserAssignedIdentitiesClient().CreateOrUpdate(ctx, rg, "pull-id", armmsi.Identity{Location: to.Ptr(loc)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := createRegistry(ctx, t, af.NewRegistriesClient(), rg, "seedgoacr", acr.Registry{Location: to.Ptr(loc),
		SKU: &acr.SKU{Name: to.Ptr(acr.SKUNamePremium)}, Properties: &acr.RegistryProperties{AdminUserEnabled: to.Ptr(false)}})
	login := *reg.Properties.LoginServer

	// The pusher: its own principal, AcrPush on the registry only.
	out, err := exec.CommandContext(ctx, binary(t), "sp", "create", "--name", "seed-go-pusher", "--data-dir", b.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("berth sp create: %v\n%s", err, out)
	}
	var pusher struct{ AppID, Password string }
	if err := json.Unmarshal(out, &pusher); err != nil {
		t.Fatal(err)
	}
	pusherOID := spObjectID(ctx, t, pusher.AppID, b)
	img := testimage.Build(t)
	pusherAuth := &authn.Basic{Username: pusher.AppID, Password: pusher.Password}
	if _, err := testimage.PushImage(img, login+"/app:v1", pusherAuth, b.client.Transport); err == nil {
		t.Fatal("a principal without a role pushed")
	}
	assign(*reg.ID, acrPush, pusherOID)
	testimage.Push(t, img, login+"/app:v1", pusherAuth, b.client.Transport)

	// Locked down: public access off, trusted services allowed, a private
	// endpoint on A; AcrPull for the identity.
	up, err := af.NewRegistriesClient().BeginUpdate(ctx, rg, "seedgoacr", acr.RegistryUpdateParameters{Properties: &acr.RegistryPropertiesUpdateParameters{
		PublicNetworkAccess: to.Ptr(acr.PublicNetworkAccessDisabled), NetworkRuleBypassOptions: to.Ptr(acr.NetworkRuleBypassOptionsAzureServices)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	pp, err := nf.NewPrivateEndpointsClient().BeginCreateOrUpdate(ctx, rg, "seedgo-pe", armnetwork.PrivateEndpoint{Location: to.Ptr(loc),
		Properties: &armnetwork.PrivateEndpointProperties{Subnet: &armnetwork.Subnet{ID: va.Properties.Subnets[1].ID},
			PrivateLinkServiceConnections: []*armnetwork.PrivateLinkServiceConnection{{Name: to.Ptr("seedgoacr"),
				Properties: &armnetwork.PrivateLinkServiceConnectionProperties{PrivateLinkServiceID: reg.ID, GroupIDs: []*string{to.Ptr("registry")}}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	pull := assign(*reg.ID, acrPull, *ident.Properties.PrincipalID)

	ca, err := os.ReadFile(filepath.Join(b.dataDir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	group := func(name, image, subnet string, creds []*aci.ImageRegistryCredential, cmd ...string) aci.ContainerGroup {
		return aci.ContainerGroup{Location: to.Ptr(loc),
			Identity: &aci.ContainerGroupIdentity{Type: to.Ptr(aci.ResourceIdentityTypeUserAssigned),
				UserAssignedIdentities: map[string]*aci.UserAssignedIdentities{*ident.ID: {}}},
			Properties: &aci.ContainerGroupPropertiesProperties{
				OSType: to.Ptr(aci.OperatingSystemTypesLinux), RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyNever),
				SubnetIDs:                []*aci.ContainerGroupSubnetID{{ID: to.Ptr(subnet)}},
				ImageRegistryCredentials: creds,
				Containers: []*aci.Container{{Name: to.Ptr("app"), Properties: &aci.ContainerProperties{
					Image: to.Ptr(image), Command: to.SliceOfPtrs(cmd...),
					EnvironmentVariables: []*aci.EnvironmentVariable{{Name: to.Ptr("BERTH_CA_PEM"), SecureValue: to.Ptr(string(ca))}},
					Resources:            &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.5), MemoryInGB: to.Ptr(0.5)}},
				}}},
			}}
	}
	byIdentity := []*aci.ImageRegistryCredential{{Server: to.Ptr(login), Identity: ident.ID}}
	image := login + "/app:v1"
	logsWhenDone := func(name string) string {
		for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
			g, err := s.cgs.Get(ctx, rg, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if iv := g.Properties.Containers[0].Properties.InstanceView; iv != nil && iv.CurrentState != nil && *iv.CurrentState.State == "Terminated" {
				l, err := s.ctrs.ListLogs(ctx, rg, name, "app", nil)
				if err != nil {
					t.Fatal(err)
				}
				return *l.Content
			}
		}
		t.Fatalf("group %s did not finish", name)
		return ""
	}
	createFails := func(g aci.ContainerGroup, name string) string {
		p, err := s.cgs.BeginCreateOrUpdate(ctx, rg, name, g, nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, poll)
		}
		if err == nil {
			t.Fatalf("group %s was created", name)
		}
		return err.Error()
	}

	// The seed's group, in A's subnet, pulling by identity.
	created := createGroup(t, s, rg, "seedgo", group("seedgo", image, *va.Properties.Subnets[0].ID, byIdentity, "/app", "acr-repos", "https://"+login))
	if u := created.Identity.UserAssignedIdentities[*ident.ID]; u == nil || *u.ClientID != *ident.Properties.ClientID {
		t.Fatalf("the group's identity: %+v", created.Identity)
	}
	if logs := logsWhenDone("seedgo"); !strings.Contains(logs, "repositories: app") {
		t.Fatalf("the program in the group could not list the registry with its identity:\n%s", logs)
	}

	// Without AcrPull, a new group cannot pull.
	if _, err := auth.NewRoleAssignmentsClient().Delete(ctx, *reg.ID, pull, nil); err != nil {
		t.Fatal(err)
	}
	if e := createFails(group("norole", image, *va.Properties.Subnets[0].ID, byIdentity, "/app", "echo", "x"), "norole"); !strings.Contains(e, "InaccessibleImage") {
		t.Fatalf("without AcrPull: %s", e)
	}
	// With it back, a group on B (no private endpoint) can neither pull
	// nor reach the registry.
	assign(*reg.ID, acrPull, *ident.Properties.PrincipalID)
	if e := createFails(group("onb", image, *vb.Properties.Subnets[0].ID, byIdentity, "/app", "echo", "x"), "onb"); !strings.Contains(e, "InaccessibleImage") {
		t.Fatalf("from virtual network B: %s", e)
	}
	open := pushTestImage(t, b, "seedgo/open:v1")
	createGroup(t, s, rg, "reachb", group("reachb", open, *vb.Properties.Subnets[0].ID, b.registryCred(), "/app", "status", "https://"+login+"/v2/"))
	if logs := logsWhenDone("reachb"); !strings.Contains(logs, "status 403") {
		t.Fatalf("a group on B reached the registry: %q", logs)
	}
	// And the host is refused too (public access is off).
	resp, err := b.client.Get("https://" + login + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(body), "is not allowed access") {
		t.Fatalf("the host: %d %s", resp.StatusCode, body)
	}
}

// spObjectID finds a service principal's object id with `berth sp list`.
func spObjectID(ctx context.Context, t *testing.T, appID string, b *berth) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, binary(t), "sp", "list", "--data-dir", b.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("berth sp list: %v\n%s", err, out)
	}
	var sps []struct{ ID, AppID string }
	if err := json.Unmarshal(out, &sps); err != nil {
		t.Fatalf("sp list: %v\n%s", err, out)
	}
	for _, sp := range sps {
		if sp.AppID == appID {
			return sp.ID
		}
	}
	t.Fatalf("service principal %s not listed", appID)
	return ""
}
