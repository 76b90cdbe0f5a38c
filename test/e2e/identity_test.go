package e2e

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// createUserIdentity creates a user-assigned identity through ARM
// (armmsi), as a user's code would.
func createUserIdentity(ctx context.Context, t *testing.T, s *sdk, rg, name string) armmsi.Identity {
	t.Helper()
	c, err := armmsi.NewUserAssignedIdentitiesClient(s.sub, s.cred, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.CreateOrUpdate(ctx, rg, name, armmsi.Identity{Location: to.Ptr("westeurope")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Identity
}

// imdsGroup runs the test image's imds mode once (restart policy Never).
func imdsGroup(b *berth, image string, creds []*aci.ImageRegistryCredential, id *aci.ContainerGroupIdentity) aci.ContainerGroup {
	armURL := b.env["BERTH_ENDPOINT"] + "/subscriptions/" + b.env["AZURE_SUBSCRIPTION_ID"] + "/resourcegroups?api-version=2021-04-01"
	return aci.ContainerGroup{
		Location: to.Ptr("westeurope"),
		Identity: id,
		Properties: &aci.ContainerGroupPropertiesProperties{
			OSType:        to.Ptr(aci.OperatingSystemTypesLinux),
			RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyNever),
			Containers: []*aci.Container{{
				Name: to.Ptr("app"),
				Properties: &aci.ContainerProperties{
					Image:     to.Ptr(image),
					Command:   to.SliceOfPtrs("/app", "imds", "https://management.azure.com/", armURL, "200"),
					Resources: &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.5), MemoryInGB: to.Ptr(0.5)}},
				},
			}},
			ImageRegistryCredentials: creds,
		},
	}
}

// TestManagedIdentityPullAndMetadata: a group with a user-assigned identity
// pulls its image by identity from a registry whose admin user is off (no
// password anywhere); the program inside gets a token from the metadata
// endpoint with azidentity's ManagedIdentityCredential and calls berth's
// ARM endpoint with it through the in-group forward; a request without the
// Metadata header gets 400; a group without an identity gets IMDS's error.
// The metadata endpoint's token latency from inside the container is
// logged (a measurement, not asserted).
func TestManagedIdentityPullAndMetadata(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	sub := b.env["AZURE_SUBSCRIPTION_ID"]
	if _, err := s.groups.CreateOrUpdate(ctx, "rg-mi", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	uai := createUserIdentity(ctx, t, s, "rg-mi", "puller")
	uaiID := *uai.ID

	regs := s.registries(t).NewRegistriesClient()
	poll := &runtime.PollUntilDoneOptions{Frequency: time.Second}
	reg := createRegistry(ctx, t, regs, "rg-mi", "privatereg", acr.Registry{Location: to.Ptr("westeurope"),
		SKU: &acr.SKU{Name: to.Ptr(acr.SKUNamePremium)}, Properties: &acr.RegistryProperties{AdminUserEnabled: to.Ptr(false)}})
	login := *reg.Properties.LoginServer
	defaultImage := pushTestImage(t, b, "apps/imds:v1")
	importFromDefault(ctx, t, b, regs, "rg-mi", "privatereg", "apps/imds:v1", "apps/imds:v1")
	image := login + "/apps/imds:v1"

	// Without a credential the private registry refuses the pull.
	np, err := s.cgs.BeginCreateOrUpdate(ctx, "rg-mi", "nocred", imdsGroup(b, image, nil, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := np.PollUntilDone(ctx, poll); err == nil || !strings.Contains(err.Error(), "InaccessibleImage") {
		t.Fatalf("pull without credentials: %v", err)
	}

	// With the identity as registry credential and AcrPull on the
	// registry: pulled by identity.
	assignRole(ctx, t, s, *reg.ID, "AcrPull", *uai.Properties.PrincipalID)
	id := &aci.ContainerGroupIdentity{Type: to.Ptr(aci.ResourceIdentityTypeUserAssigned),
		UserAssignedIdentities: map[string]*aci.UserAssignedIdentities{uaiID: {}}}
	created := createGroup(t, s, "rg-mi", "mi-app", imdsGroup(b, image,
		[]*aci.ImageRegistryCredential{{Server: to.Ptr(login), Identity: to.Ptr(uaiID)}}, id))
	if u := created.Identity.UserAssignedIdentities[uaiID]; u == nil || *u.PrincipalID != *uai.Properties.PrincipalID || *u.ClientID != *uai.Properties.ClientID {
		t.Fatalf("user identity rendered as %+v", created.Identity)
	}
	waitGroupState(t, s, "rg-mi", "mi-app", "Succeeded")
	out := containerLogs(t, s, "rg-mi", "mi-app", "app")
	t.Logf("inside the group:\n%s", out)
	for _, want := range []string{
		`nometa 400 {"error":"invalid_request","error_description":"Required metadata header not specified"}`,
		"raw 200", "token ok",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("output lacks %q", want)
		}
	}
	// The token works against berth's ARM (200, or 403 AuthorizationFailed
	// once role assignments are enforced: authenticated either way).
	if m := regexp.MustCompile(`(?m)^arm (\d+) (.*)$`).FindStringSubmatch(out); m == nil ||
		!(m[1] == "200" || (m[1] == "403" && strings.Contains(m[2], "AuthorizationFailed"))) {
		t.Errorf("ARM call with the identity's token: %v", m)
	}
	if m := regexp.MustCompile(`(?m)^p50 .*$`).FindString(out); m != "" {
		t.Logf("metadata endpoint token latency from inside the container: %s", m)
	} else {
		t.Error("no latency measured")
	}

	// A web app that declares and serves port 80 (nothing of berth's
	// listens inside the group, so the port is its own) still gets tokens
	// from 169.254.169.254:80 in a second container of the group.
	web := imdsGroup(b, image, []*aci.ImageRegistryCredential{{Server: to.Ptr(login), Identity: to.Ptr(uaiID)}}, id)
	web.Properties.Containers[0].Properties.Command = to.SliceOfPtrs("/app", "imds", "https://management.azure.com/", b.env["BERTH_ENDPOINT"]+"/subscriptions/"+sub+"/resourcegroups?api-version=2021-04-01", "20")
	web.Properties.Containers = append([]*aci.Container{{
		Name: to.Ptr("web"),
		Properties: &aci.ContainerProperties{
			Image:                to.Ptr(image),
			EnvironmentVariables: []*aci.EnvironmentVariable{{Name: to.Ptr("PORT"), Value: to.Ptr("80")}, {Name: to.Ptr("MARK"), Value: to.Ptr("web80")}},
			Ports:                []*aci.ContainerPort{{Port: to.Ptr[int32](80), Protocol: to.Ptr(aci.ContainerNetworkProtocolTCP)}},
			Resources:            &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.5), MemoryInGB: to.Ptr(0.5)}},
		},
	}}, web.Properties.Containers...)
	web.Properties.IPAddress = &aci.IPAddress{Type: to.Ptr(aci.ContainerGroupIPAddressTypePublic),
		Ports: []*aci.Port{{Port: to.Ptr[int32](80), Protocol: to.Ptr(aci.ContainerGroupNetworkProtocolTCP)}}}
	createGroup(t, s, "rg-mi", "web80", web)
	running := waitGroupState(t, s, "rg-mi", "web80", "Running")
	out = ""
	for deadline := time.Now().Add(2 * time.Minute); !strings.Contains(out, "p50 "); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the web app's second container did not finish:\n%s", out)
		}
		out = containerLogs(t, s, "rg-mi", "web80", "app")
	}
	for _, want := range []string{"raw 200", "token ok"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("web app's group: output lacks %q:\n%s", want, out)
		}
	}
	if running.Properties.IPAddress == nil || running.Properties.IPAddress.IP == nil {
		t.Fatal("web app's group has no address")
	}
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + *running.Properties.IPAddress.IP + ":80/")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the web app's port 80: %v %s", err, body)
		}
	}
	if !strings.Contains(body, `"MARK":"web80"`) {
		t.Errorf("port 80 of the web app's group answered %s", body)
	}

	// A group without an identity: IMDS's answer.
	createGroup(t, s, "rg-mi", "no-identity", imdsGroup(b, defaultImage, b.registryCred(), nil))
	waitGroupState(t, s, "rg-mi", "no-identity", "Succeeded")
	out = containerLogs(t, s, "rg-mi", "no-identity", "app")
	if want := `raw 400 {"error":"invalid_request","error_description":"Identity not found"}`; !strings.Contains(out, want+"\n") {
		t.Errorf("group without identity:\n%s\nwant %s", out, want)
	}
}
