package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	armnetwork "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// replayer sends published examples to one berth with raw HTTP (the
// examples are wire documents, not SDK calls) and keeps what it saw.
type replayer struct {
	b   *berth
	s   *sdk
	net *armnetwork.ClientFactory

	mu     sync.Mutex
	images map[string]string // an example's image → the test image in berth's registry
	// ran records each replayed example with the statuses berth answered.
	ran []string
}

func newReplayer(t *testing.T, b *berth, s *sdk) *replayer {
	f := s.network(t)
	return &replayer{b: b, s: s, net: f, images: map[string]string{}}
}

// answer is one HTTP response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, bytes.TrimSpace(a.body)) }

// errorCode is the ARM error envelope's code and target.
func (a answer) errorCode() (code, target string) {
	var e struct {
		Error struct{ Code, Target string } `json:"error"`
	}
	_ = json.Unmarshal(a.body, &e)
	return e.Error.Code, e.Error.Target
}

// do sends a request with the service principal's token; target is a
// path (under BERTH_ENDPOINT) or an absolute URL berth gave.
func (r *replayer) do(t *testing.T, method, target string, body []byte) answer {
	t.Helper()
	tok, err := r.s.cred.GetToken(ctxT(t, time.Minute), policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(target, "/") {
		target = r.b.env["BERTH_ENDPOINT"] + target
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, target, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: raw}
}

// waitOperation polls the operation an answer points to (Azure-AsyncOperation,
// else Location) until it reaches a terminal status (Succeeded, Failed,
// Canceled: every other status is in progress, as ARM's polling rules say)
// and returns it with the body.
func (r *replayer) waitOperation(t *testing.T, a answer) (string, string) {
	t.Helper()
	u := a.header.Get("Azure-AsyncOperation")
	if u == "" {
		u = a.header.Get("Location")
	}
	if u == "" {
		t.Fatalf("answer %d names no operation to poll", a.status)
	}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		got := r.do(t, "GET", u, nil)
		var st struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(got.body, &st)
		switch {
		case got.status == http.StatusOK && (st.Status == "Succeeded" || st.Status == "Failed" || st.Status == "Canceled"):
			return st.Status, string(got.body)
		case got.status != http.StatusOK && got.status != http.StatusAccepted:
			t.Fatalf("operation %s: %s", u, got)
		case time.Now().After(deadline):
			t.Fatalf("operation %s still %s after 3 minutes", u, got)
		}
	}
}

// image returns the test image, pushed into berth's registry under the
// name an example's Docker Hub reference has (nginx → library/nginx:latest).
func (r *replayer) image(t *testing.T, ref string) string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if got, ok := r.images[ref]; ok {
		return got
	}
	repo := ref
	if !strings.Contains(repo, "/") {
		repo = "library/" + repo
	}
	if !strings.Contains(repo[strings.LastIndex(repo, "/")+1:], ":") {
		repo += ":latest"
	}
	pushed := pushTestImage(t, r.b, repo)
	r.images[ref] = pushed
	return pushed
}

// registryCred is berth's registry credential as a wire object.
func (r *replayer) registryCred() map[string]any {
	return map[string]any{"server": r.b.env["BERTH_REGISTRY"], "username": r.b.env["AZURE_CLIENT_ID"], "password": r.b.env["AZURE_CLIENT_SECRET"]}
}

// resourceGroup creates a resource group.
func (r *replayer) resourceGroup(t *testing.T, name string) {
	t.Helper()
	if _, err := r.s.groups.CreateOrUpdate(ctxT(t, time.Minute), name, armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatalf("resource group %s: %v", name, err)
	}
}

// delegatedSubnet creates, through armnetwork, virtual network vnet in rg
// with one subnet delegated to container groups, in a free /24, and
// returns the subnet's id.
func (r *replayer) delegatedSubnet(t *testing.T, rg, vnet, subnet string) string {
	t.Helper()
	v := createVNet(ctxT(t, 2*time.Minute), t, r.net.NewVirtualNetworksClient(), rg, vnet, "westeurope", 250, 255, func(base string) []*armnetwork.Subnet {
		return []*armnetwork.Subnet{aciSubnet(subnet, base+".0/24")}
	})
	return *v.Properties.Subnets[0].ID
}

// networkProfile creates, through armnetwork, network profile name in rg
// whose container network interface is in subnetID, and returns its id.
func (r *replayer) networkProfile(t *testing.T, rg, name, subnetID string) string {
	t.Helper()
	p, err := r.net.NewProfilesClient().CreateOrUpdate(ctxT(t, time.Minute), rg, name, armnetwork.Profile{Location: to.Ptr("westeurope"),
		Properties: &armnetwork.ProfilePropertiesFormat{ContainerNetworkInterfaceConfigurations: []*armnetwork.ContainerNetworkInterfaceConfiguration{{
			Name: to.Ptr("eth0"), Properties: &armnetwork.ContainerNetworkInterfaceConfigurationPropertiesFormat{
				IPConfigurations: []*armnetwork.IPConfigurationProfile{{Name: to.Ptr("ipconfig"),
					Properties: &armnetwork.IPConfigurationProfilePropertiesFormat{Subnet: &armnetwork.Subnet{ID: to.Ptr(subnetID)}}}},
			}}}}}, nil)
	if err != nil {
		t.Fatalf("network profile %s: %v", name, err)
	}
	return *p.ID
}

// groupView is the part of a container group body the replay looks at.
type groupView struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
		Priority          string `json:"priority"`
		InstanceView      *struct {
			State string `json:"state"`
		} `json:"instanceView"`
		Containers []struct {
			Name       string `json:"name"`
			Properties struct {
				InstanceView *struct {
					Events []struct{ Name, Type, Message string } `json:"events"`
				} `json:"instanceView"`
			} `json:"properties"`
		} `json:"containers"`
	} `json:"properties"`
}

func decodeGroupView(t *testing.T, a answer) groupView {
	t.Helper()
	var g groupView
	if err := json.Unmarshal(a.body, &g); err != nil {
		t.Fatalf("group body: %v: %s", err, a.body)
	}
	return g
}

func (g groupView) state() string {
	if g.Properties.InstanceView == nil {
		return ""
	}
	return g.Properties.InstanceView.State
}

// waitGroup GETs a group (api-version ver) until its instanceView state is
// want.
func (r *replayer) waitGroup(t *testing.T, path, want string) groupView {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		a := r.do(t, "GET", path, nil)
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %s", path, a)
		}
		g := decodeGroupView(t, a)
		if g.state() == want {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: state %q, want %q", path, g.state(), want)
		}
	}
}

// walk calls f on every object in v, depth first.
func walk(v any, f func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		f(x)
		for _, c := range x {
			walk(c, f)
		}
	case []any:
		for _, c := range x {
			walk(c, f)
		}
	}
}

// cloneJSON deep-copies a JSON document.
func cloneJSON(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
