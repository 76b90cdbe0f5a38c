package e2e

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-dev/berth/internal/testutil/testimage"
)

// sdk holds the official clients pointed at one berth.
type sdk struct {
	cred   azcore.TokenCredential
	groups *armresources.ResourceGroupsClient
	cgs    *aci.ContainerGroupsClient
	ctrs   *aci.ContainersClient
	loc    *aci.LocationClient
	sub    string
	opts   *arm.ClientOptions // what every ARM client of the test gets
}

// network returns armnetwork's clients, wired like the others.
func (s *sdk) network(t *testing.T) *armnetwork.ClientFactory {
	t.Helper()
	f, err := armnetwork.NewClientFactory(s.sub, s.cred, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// registries returns armcontainerregistry's clients, wired like the others.
func (s *sdk) registries(t *testing.T) *acr.ClientFactory {
	t.Helper()
	f, err := acr.NewClientFactory(s.sub, s.cred, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newSDK wires the SDK as the README tells users to.
func newSDK(t *testing.T, b *berth) *sdk {
	t.Helper()
	cfg := cloud.Configuration{
		ActiveDirectoryAuthorityHost: b.env["AZURE_AUTHORITY_HOST"],
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Audience: "https://management.core.windows.net/", Endpoint: b.env["BERTH_ENDPOINT"]},
		},
	}
	copts := azcore.ClientOptions{Cloud: cfg, Transport: b.client}
	cred, err := azidentity.NewClientSecretCredential(b.env["AZURE_TENANT_ID"], b.env["AZURE_CLIENT_ID"], b.env["AZURE_CLIENT_SECRET"],
		&azidentity.ClientSecretCredentialOptions{ClientOptions: copts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	aopts := &arm.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: cfg, Transport: b.client}}
	sub := b.env["AZURE_SUBSCRIPTION_ID"]
	s := &sdk{cred: cred, sub: sub, opts: aopts}
	if s.groups, err = armresources.NewResourceGroupsClient(sub, cred, aopts); err != nil {
		t.Fatal(err)
	}
	if s.cgs, err = aci.NewContainerGroupsClient(sub, cred, aopts); err != nil {
		t.Fatal(err)
	}
	if s.ctrs, err = aci.NewContainersClient(sub, cred, aopts); err != nil {
		t.Fatal(err)
	}
	if s.loc, err = aci.NewLocationClient(sub, cred, aopts); err != nil {
		t.Fatal(err)
	}
	return s
}

// pushTestImage pushes the test image into berth's default registry with
// the service principal as registry user, as a user would with crane.
func pushTestImage(t *testing.T, b *berth, repo string) string {
	t.Helper()
	ref := b.env["BERTH_REGISTRY"] + "/" + repo
	testimage.Push(t, testimage.Build(t), ref,
		&authn.Basic{Username: b.env["AZURE_CLIENT_ID"], Password: b.env["AZURE_CLIENT_SECRET"]}, b.client.Transport)
	return ref
}

func (b *berth) registryCred() []*aci.ImageRegistryCredential {
	return []*aci.ImageRegistryCredential{{
		Server: to.Ptr(b.env["BERTH_REGISTRY"]), Username: to.Ptr(b.env["AZURE_CLIENT_ID"]), Password: to.Ptr(b.env["AZURE_CLIENT_SECRET"]),
	}}
}

func webGroup(b *berth, image string) aci.ContainerGroup {
	return aci.ContainerGroup{
		Location: to.Ptr("westeurope"),
		Properties: &aci.ContainerGroupPropertiesProperties{
			OSType:        to.Ptr(aci.OperatingSystemTypesLinux),
			RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyAlways),
			Containers: []*aci.Container{{
				Name: to.Ptr("web"),
				Properties: &aci.ContainerProperties{
					Image: to.Ptr(image),
					Ports: []*aci.ContainerPort{{Port: to.Ptr[int32](8080)}},
					EnvironmentVariables: []*aci.EnvironmentVariable{
						{Name: to.Ptr("GREETING"), Value: to.Ptr("hello from berth")},
						{Name: to.Ptr("SECRET_TOKEN"), SecureValue: to.Ptr("s3cret-value")},
					},
					Resources: &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.5), MemoryInGB: to.Ptr(0.5)}},
				},
			}},
			IPAddress: &aci.IPAddress{
				Type:  to.Ptr(aci.ContainerGroupIPAddressTypePublic),
				Ports: []*aci.Port{{Port: to.Ptr[int32](8080), Protocol: to.Ptr(aci.ContainerGroupNetworkProtocolTCP)}},
			},
			ImageRegistryCredentials: b.registryCred(),
		},
	}
}

func createGroup(t *testing.T, s *sdk, rg, name string, g aci.ContainerGroup) aci.ContainerGroup {
	t.Helper()
	ctx := ctxT(t, 3*time.Minute)
	poller, err := s.cgs.BeginCreateOrUpdate(ctx, rg, name, g, nil)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	res, err := poller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Second})
	if err != nil {
		t.Fatalf("create %s: poll: %v", name, err)
	}
	return res.ContainerGroup
}

// getEnv asks the program in the container for its environment.
func getEnv(t *testing.T, ip string) (map[string]string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + ip + ":8080/")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, err
	}
	return env, nil
}

// waitEnv is getEnv retried for a bounded while: Running says the process
// started, not that it listens yet.
func waitEnv(t *testing.T, ip string) (map[string]string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		env, err := getEnv(t, ip)
		if err == nil || time.Now().After(deadline) {
			return env, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func respCode(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// TestUserStory is issue #2's story, step by step.
func TestUserStory(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)

	// 3. Resource group, image pushed with the service principal, group created.
	if _, err := s.groups.CreateOrUpdate(ctx, "rg1", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatalf("create resource group: %v", err)
	}
	image := pushTestImage(t, b, "apps/testapp:v1")
	created := createGroup(t, s, "rg1", "web", webGroup(b, image))
	if got := *created.Properties.ProvisioningState; got != "Succeeded" {
		t.Fatalf("provisioningState after poll = %s", got)
	}

	// 4. GET: Succeeded, Running, an ip that answers; secure value hidden.
	got, err := s.cgs.Get(ctx, "rg1", "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Properties
	if *p.ProvisioningState != "Succeeded" || p.InstanceView == nil || *p.InstanceView.State != "Running" {
		t.Fatalf("group state: provisioning %v, instanceView %+v", *p.ProvisioningState, p.InstanceView)
	}
	cv := p.Containers[0].Properties.InstanceView
	if cv == nil || *cv.CurrentState.State != "Running" {
		t.Fatalf("container instanceView %+v", cv)
	}
	for _, e := range p.Containers[0].Properties.EnvironmentVariables {
		if *e.Name == "SECRET_TOKEN" && (e.Value != nil || e.SecureValue != nil) {
			t.Fatalf("GET returned the secure value")
		}
	}
	names := map[string]bool{}
	for _, e := range cv.Events {
		names[*e.Name] = true
	}
	for _, n := range []string{"Pulling", "Pulled", "Started"} {
		if !names[n] {
			t.Errorf("container events lack %s: %v", n, names)
		}
	}
	if p.IPAddress == nil || p.IPAddress.IP == nil || *p.IPAddress.IP == "" {
		t.Fatalf("no ipAddress.ip: %+v", p.IPAddress)
	}
	ip := *p.IPAddress.IP
	env, err := waitEnv(t, ip)
	if err != nil {
		t.Fatalf("HTTP to the group: %v", err)
	}
	if env["GREETING"] != "hello from berth" || env["SECRET_TOKEN"] != "s3cret-value" {
		t.Fatalf("container environment = %v", env)
	}

	// 5. restartPolicy Never with a command override: Succeeded, exit 0, logs.
	job := aci.ContainerGroup{
		Location: to.Ptr("westeurope"),
		Properties: &aci.ContainerGroupPropertiesProperties{
			OSType:        to.Ptr(aci.OperatingSystemTypesLinux),
			RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyNever),
			Containers: []*aci.Container{{
				Name: to.Ptr("echo"),
				Properties: &aci.ContainerProperties{
					Image:     to.Ptr(image),
					Command:   []*string{to.Ptr("/bin/echo"), to.Ptr("FOO"), to.Ptr("BAR")},
					Resources: &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.25), MemoryInGB: to.Ptr(0.25)}},
				},
			}},
			ImageRegistryCredentials: b.registryCred(),
		},
	}
	createGroup(t, s, "rg1", "job", job)
	var jobState string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		g, err := s.cgs.Get(ctx, "rg1", "job", nil)
		if err != nil {
			t.Fatal(err)
		}
		jobState = *g.Properties.InstanceView.State
		if jobState == "Succeeded" {
			cs := g.Properties.Containers[0].Properties.InstanceView.CurrentState
			if *cs.State != "Terminated" || cs.ExitCode == nil || *cs.ExitCode != 0 {
				t.Fatalf("job container state %+v", cs)
			}
			break
		}
	}
	if jobState != "Succeeded" {
		t.Fatalf("job group state = %s, want Succeeded", jobState)
	}
	logs, err := s.ctrs.ListLogs(ctx, "rg1", "job", "echo", &aci.ContainersClientListLogsOptions{Tail: to.Ptr[int32](10)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(*logs.Content, "FOO BAR") {
		t.Fatalf("job logs = %q", *logs.Content)
	}

	// The registry's login server answers inside a group too (same string
	// as on the host: berth forwards it into the group's namespace).
	probe := job
	probe.Properties = &aci.ContainerGroupPropertiesProperties{}
	*probe.Properties = *job.Properties
	probe.Properties.Containers = []*aci.Container{{
		Name: to.Ptr("probe"),
		Properties: &aci.ContainerProperties{
			Image:     to.Ptr(image),
			Command:   []*string{to.Ptr("/app"), to.Ptr("status"), to.Ptr("https://" + b.env["BERTH_REGISTRY"] + "/v2/")},
			Resources: &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.25), MemoryInGB: to.Ptr(0.25)}},
		},
	}}
	createGroup(t, s, "rg1", "probe", probe)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		g, err := s.cgs.Get(ctx, "rg1", "probe", nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := *g.Properties.InstanceView.State; st == "Succeeded" || st == "Failed" || time.Now().After(deadline) {
			break
		}
	}
	plogs, err := s.ctrs.ListLogs(ctx, "rg1", "probe", "probe", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(*plogs.Content, "status 401") {
		t.Fatalf("registry from inside a group: %q", *plogs.Content)
	}

	// 6a. Lists by resource group and by subscription show both.
	listNames := func(pager interface{ More() bool }, next func() ([]*aci.ContainerGroup, error)) map[string]bool {
		out := map[string]bool{}
		for pager.More() {
			page, err := next()
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range page {
				out[*g.Name] = true
				if g.Properties.InstanceView != nil {
					t.Errorf("list returned instanceView for %s", *g.Name)
				}
			}
		}
		return out
	}
	rgPager := s.cgs.NewListByResourceGroupPager("rg1", nil)
	byRG := listNames(rgPager, func() ([]*aci.ContainerGroup, error) {
		p, err := rgPager.NextPage(ctx)
		return p.Value, err
	})
	subPager := s.cgs.NewListPager(nil)
	bySub := listNames(subPager, func() ([]*aci.ContainerGroup, error) {
		p, err := subPager.NextPage(ctx)
		return p.Value, err
	})
	for _, n := range []string{"web", "job"} {
		if !byRG[n] || !bySub[n] {
			t.Fatalf("lists miss %s: rg %v sub %v", n, byRG, bySub)
		}
	}

	// 7. Restart berth: everything is still there and the Always group runs.
	b.stop()
	b.start()
	s = newSDK(t, b)
	if _, err := s.groups.Get(ctx, "rg1", nil); err != nil {
		t.Fatalf("resource group after restart: %v", err)
	}
	var webIP string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		g, err := s.cgs.Get(ctx, "rg1", "web", nil)
		if err != nil {
			t.Fatalf("web after restart: %v", err)
		}
		if *g.Properties.InstanceView.State == "Running" && g.Properties.IPAddress.IP != nil {
			webIP = *g.Properties.IPAddress.IP
			if _, err := getEnv(t, webIP); err == nil {
				break
			}
		}
		webIP = ""
	}
	if webIP == "" {
		t.Fatal("web is not running and answering after a berth restart")
	}
	if g, err := s.cgs.Get(ctx, "rg1", "job", nil); err != nil || *g.Properties.InstanceView.State != "Succeeded" {
		t.Fatalf("job after restart: %v", err)
	}
	// The image is still in the registry: a new group pulls it.
	createGroup(t, s, "rg1", "job2", job)

	// 6b. DELETE removes them: 404 ResourceNotFound, processes and address gone.
	for _, n := range []string{"web", "job", "job2", "probe"} {
		poller, err := s.cgs.BeginDelete(ctx, "rg1", n, nil)
		if err != nil {
			t.Fatalf("delete %s: %v", n, err)
		}
		if _, err := poller.PollUntilDone(ctx, nil); err != nil {
			t.Fatalf("delete %s: %v", n, err)
		}
		_, err = s.cgs.Get(ctx, "rg1", n, nil)
		if respCode(err) != "ResourceNotFound" {
			t.Fatalf("GET after delete of %s: %v", n, err)
		}
	}
	if _, err := getEnv(t, webIP); err == nil {
		t.Fatal("the deleted group's address still answers")
	}
	entries, _ := os.ReadDir(filepath.Join(b.dataDir, "runtime", "netns"))
	if len(entries) != 0 {
		t.Fatalf("network namespaces left after delete: %v", entries)
	}

	// Deleting the resource group (async) removes it.
	rgPoller, err := s.groups.BeginDelete(ctx, "rg1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rgPoller.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.groups.Get(ctx, "rg1", nil); respCode(err) != "ResourceGroupNotFound" {
		t.Fatalf("resource group after delete: %v", err)
	}
}

// rawARM sends a request with a valid token, for what the SDK would never send.
func rawARM(t *testing.T, b *berth, s *sdk, method, path, body string) (int, string, map[string]any) {
	t.Helper()
	tok, err := s.cred.GetToken(ctxT(t, time.Minute), policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, b.env["BERTH_ENDPOINT"]+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, resp.Header.Get("x-ms-error-code"), m
}
