package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// TestGroupLifecycle drives stop, start and restart through the SDK
// against the real berth and real containers, then restarts berth with
// groups in every state: running, stopped, and one whose image is
// missing (failed).
func TestGroupLifecycle(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	image := pushTestImage(t, b, "lifecycle/app:v1")
	if _, err := s.groups.CreateOrUpdate(ctx, "life", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	poll := &runtime.PollUntilDoneOptions{Frequency: 250 * time.Millisecond}
	waitState := func(name, want string) aci.ContainerGroup {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			r, err := s.cgs.Get(ctx, "life", name, nil)
			if err != nil {
				t.Fatal(err)
			}
			if st := *r.Properties.InstanceView.State; st == want {
				return r.ContainerGroup
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: state %s, want %s", name, st, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	answers := func(ip string) bool {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + ip + ":8080/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	waitAnswers := func(ip string) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !answers(ip); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not answer", ip)
			}
		}
	}

	createGroup(t, s, "life", "web", webGroup(b, image))
	running := waitState("web", "Running")
	ip := *running.Properties.IPAddress.IP
	waitAnswers(ip)

	// Stop: nothing runs, the address is released.
	if _, err := s.cgs.Stop(ctx, "life", "web", nil); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopped := waitState("web", "Stopped")
	if stopped.Properties.IPAddress.IP != nil {
		t.Fatalf("stopped group has address %s", *stopped.Properties.IPAddress.IP)
	}
	if answers(ip) {
		t.Fatalf("%s still answers after stop", ip)
	}

	// Start: a new deployment of the same configuration.
	sp, err := s.cgs.BeginStart(ctx, "life", "web", nil)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if _, err := sp.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("start: poll: %v", err)
	}
	started := waitState("web", "Running")
	ip = *started.Properties.IPAddress.IP
	waitAnswers(ip)

	// Restart: in place, same address, answering again.
	rp, err := s.cgs.BeginRestart(ctx, "life", "web", nil)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if _, err := rp.PollUntilDone(ctx, poll); err != nil {
		t.Fatalf("restart: poll: %v", err)
	}
	restarted := waitState("web", "Running")
	if got := *restarted.Properties.IPAddress.IP; got != ip {
		t.Fatalf("restart moved the group: %s → %s", ip, got)
	}
	waitAnswers(ip)
	var killing bool
	for _, ev := range restarted.Properties.Containers[0].Properties.InstanceView.Events {
		killing = killing || *ev.Name == "Killing"
	}
	if !killing {
		t.Errorf("no Killing event after restart: %+v", restarted.Properties.Containers[0].Properties.InstanceView.Events)
	}

	// Location reads tell the truth about this host.
	imgs := s.locationImages(t, "westeurope")
	if !slices.ContainsFunc(imgs, func(s string) bool { return strings.HasSuffix(s, "lifecycle/app:v1") }) {
		t.Errorf("cached images %v lack %s", imgs, image)
	}

	// berth restarts with groups in every state.
	if _, err := s.cgs.Stop(ctx, "life", "web", nil); err != nil {
		t.Fatal(err)
	}
	createGroup(t, s, "life", "other", webGroup(b, image))
	other := waitState("other", "Running")
	b.stop()
	b.start()
	s = newSDK(t, b)
	waitState("web", "Stopped")
	again := waitState("other", "Running")
	waitAnswers(*again.Properties.IPAddress.IP)
	if *again.Properties.IPAddress.IP != *other.Properties.IPAddress.IP {
		t.Errorf("berth restart moved a running group: %s → %s", *other.Properties.IPAddress.IP, *again.Properties.IPAddress.IP)
	}
	sp, err = s.cgs.BeginStart(ctx, "life", "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	waitAnswers(*waitState("web", "Running").Properties.IPAddress.IP)
}

// locationImages lists the location's cached images through the SDK.
func (s *sdk) locationImages(t *testing.T, location string) []string {
	t.Helper()
	ctx := ctxT(t, time.Minute)
	var out []string
	for p := s.loc.NewListCachedImagesPager(location, nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("cached images: %v", err)
		}
		for _, img := range page.Value {
			out = append(out, *img.Image)
		}
	}
	return out
}
