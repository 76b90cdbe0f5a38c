package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestRegistriesThroughARM: a registry created with armcontainerregistry gets
// its own login server; images are imported into it, pulled by a container
// group with its admin user, pulled anonymously once allowed; deleting it
// removes its login server and content; it survives a restart.
func TestRegistriesThroughARM(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	regs := s.registries(t).NewRegistriesClient()
	poll := &runtime.PollUntilDoneOptions{Frequency: time.Second}
	if _, err := s.groups.CreateOrUpdate(ctx, "rg-acr", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	created := createRegistry(ctx, t, regs, "rg-acr", "teamregistry", acr.Registry{Location: to.Ptr("westeurope"),
		SKU: &acr.SKU{Name: to.Ptr(acr.SKUNameStandard)}, Properties: &acr.RegistryProperties{AdminUserEnabled: to.Ptr(true)}})
	login := *created.Properties.LoginServer
	if login == b.env["BERTH_REGISTRY"] {
		t.Fatalf("new registry shares the default login server %s", login)
	}

	// Import from the default registry into the new one.
	image := pushTestImage(t, b, "apps/web:v1")
	importFromDefault(ctx, t, b, regs, "rg-acr", "teamregistry", "apps/web:v1", "imported/web:v1")
	_ = image
	creds, err := regs.ListCredentials(ctx, "rg-acr", "teamregistry", nil)
	if err != nil {
		t.Fatal(err)
	}
	admin := &authn.Basic{Username: *creds.Username, Password: *creds.Passwords[0].Value}
	ref, _ := name.ParseReference(login + "/imported/web:v1")
	if _, err := remote.Head(ref, remote.WithAuth(admin), remote.WithTransport(b.client.Transport)); err != nil {
		t.Fatalf("imported image with the admin user: %v", err)
	}
	if _, err := remote.Head(ref, remote.WithTransport(b.client.Transport)); err == nil {
		t.Fatal("anonymous pull allowed before anonymousPullEnabled")
	}

	// A container group pulls it with the admin user.
	g := webGroup(b, login+"/imported/web:v1")
	g.Properties.ImageRegistryCredentials = []*aci.ImageRegistryCredential{{Server: to.Ptr(login), Username: creds.Username, Password: creds.Passwords[1].Value}}
	createGroup(t, s, "rg-acr", "fromteam", g)
	got, err := s.cgs.Get(ctx, "rg-acr", "fromteam", nil)
	if err != nil || *got.Properties.InstanceView.State != "Running" {
		t.Fatalf("group from the new registry: %v", err)
	}

	// The new registry's login server answers from inside a group too.
	probe := webGroup(b, login+"/imported/web:v1")
	probe.Properties.RestartPolicy = to.Ptr(aci.ContainerGroupRestartPolicyNever)
	probe.Properties.IPAddress = nil
	probe.Properties.ImageRegistryCredentials = []*aci.ImageRegistryCredential{{Server: to.Ptr(login), Username: creds.Username, Password: creds.Passwords[0].Value}}
	probe.Properties.Containers[0].Properties.Ports = nil
	probe.Properties.Containers[0].Properties.Command = []*string{to.Ptr("/app"), to.Ptr("status"), to.Ptr("https://" + login + "/v2/")}
	createGroup(t, s, "rg-acr", "probe", probe)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		g, err := s.cgs.Get(ctx, "rg-acr", "probe", nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := *g.Properties.InstanceView.State; st == "Succeeded" || st == "Failed" || time.Now().After(deadline) {
			break
		}
	}
	if logs, err := s.ctrs.ListLogs(ctx, "rg-acr", "probe", "web", nil); err != nil || !strings.Contains(*logs.Content, "status 401") {
		t.Fatalf("new registry from inside a group: %v %v", err, logs.Content)
	}

	// Anonymous pull once enabled.
	up, err := regs.BeginUpdate(ctx, "rg-acr", "teamregistry", acr.RegistryUpdateParameters{
		Properties: &acr.RegistryPropertiesUpdateParameters{AnonymousPullEnabled: to.Ptr(true)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(ref, remote.WithTransport(b.client.Transport)); err != nil {
		t.Fatalf("anonymous pull: %v", err)
	}

	// Restart: same login server, content still there.
	b.stop()
	b.start()
	s = newSDK(t, b)
	regs = s.registries(t).NewRegistriesClient()
	again, err := regs.Get(ctx, "rg-acr", "teamregistry", nil)
	if err != nil || *again.Properties.LoginServer != login {
		t.Fatalf("after restart: %v", err)
	}
	if _, err := remote.Head(ref, remote.WithAuth(admin), remote.WithTransport(b.client.Transport)); err != nil {
		t.Fatalf("image after restart: %v", err)
	}

	// Delete: the login server stops answering.
	dp, err := regs.BeginDelete(ctx, "rg-acr", "teamregistry", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", login, time.Second); err == nil {
		c.Close()
		t.Fatalf("deleted registry's login server %s still accepts connections", login)
	}
	if _, err := regs.Get(ctx, "rg-acr", "teamregistry", nil); respCode(err) != "ResourceNotFound" {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.dataDir, "registries", "teamregistry")); !os.IsNotExist(err) {
		t.Fatalf("deleted registry's content is still on disk: %v", err)
	}
}
