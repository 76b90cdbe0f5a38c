// Command startup measures how long berth takes from a container-group PUT to
// the group reported Running, as the SDK sees it, beside the floor on the
// same containerd in the same run:
//
//  1. cached image: berth vs `ctr run -d` of the same image (p50 and p95 of
//     -n runs each, and their ratio);
//
//  2. never-pulled image of -pull-mib MiB (the test image plus a random
//     layer) from berth's registry: berth vs `ctr image pull` + `ctr run -d`
//     of another image of the same size (-pulls runs each).
//
//     go run ./bench/startup [-n 50] [-pulls 3] [-pull-mib 100] [-rev REV]
//
// -rev measures the berth built from a git revision instead of the working
// tree (to compare a change with what came before it).
//
// Needs root (it starts berth, which starts containerd).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/bench/internal/berthrun"
	"github.com/berth-dev/berth/internal/testutil/hostnet"
	"github.com/berth-dev/berth/internal/testutil/testimage"
)

func main() {
	n := flag.Int("n", 50, "runs per side, cached image")
	pulls := flag.Int("pulls", 3, "runs per side, never-pulled image")
	pullMiB := flag.Int("pull-mib", 100, "size of the random layer of the never-pulled images")
	rev := flag.String("rev", "", "git revision of berth to measure (default: the working tree)")
	flag.Parse()
	if err := run(*n, *pulls, *pullMiB, *rev); err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
}

type env map[string]string

func run(n, pulls, pullMiB int, rev string) error {
	b, err := berthrun.StartRev("berth-bench-", rev, "--bridge", "berthbench", "--subnet", "10.219.0.0/24")
	if err != nil {
		return err
	}
	defer func() {
		b.Stop()
		b.Remove()
		hostnet.RemoveBridge("berthbench")
	}()
	data, e := b.Data, env(b.Env)
	client := &http.Client{Timeout: 30 * time.Second, Transport: b.Transport(8, true)}

	img, err := testimage.Image()
	if err != nil {
		return err
	}
	ref := e["BERTH_REGISTRY"] + "/bench/app:v1"
	if _, err := testimage.PushImage(img, ref, &authn.Basic{Username: e["AZURE_CLIENT_ID"], Password: e["AZURE_CLIENT_SECRET"]}, client.Transport); err != nil {
		return err
	}
	tok, err := berthrun.Token(client, e)
	if err != nil {
		return err
	}
	a := &api{c: client, e: e, tok: tok}
	if err := a.do("PUT", "/subscriptions/"+e["AZURE_SUBSCRIPTION_ID"]+"/resourcegroups/bench?api-version=2021-04-01", `{"location":"local"}`, nil); err != nil {
		return err
	}

	// Warm-up: the first create pulls the image.
	if _, err := a.createRunning("warm", ref); err != nil {
		return err
	}
	a.delete("warm")

	var berthTimes []time.Duration
	for i := 0; i < n; i++ {
		name := "g" + strconv.Itoa(i)
		d, err := a.createRunning(name, ref)
		if err != nil {
			return err
		}
		berthTimes = append(berthTimes, d)
		a.delete(name)
	}

	// Floor: ctr run -d of the same image on berth's containerd.
	sock := b.ContainerdSocket()
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("containerd socket: %w", err)
	}
	ctr := func(args ...string) error {
		cmd := exec.Command("ctr", append([]string{"-a", sock, "-n", "berth"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr %v: %v: %s", args, err, out)
		}
		return nil
	}
	var ctrTimes []time.Duration
	for i := 0; i < n+1; i++ {
		id := "bench-ctr-" + strconv.Itoa(i)
		t0 := time.Now()
		if err := ctr("run", "-d", ref, id); err != nil {
			return err
		}
		d := time.Since(t0)
		if i > 0 { // the first run warms the snapshot
			ctrTimes = append(ctrTimes, d)
		}
		_ = ctr("task", "kill", "-s", "SIGKILL", id)
		time.Sleep(50 * time.Millisecond)
		_ = ctr("task", "rm", "-f", id)
		_ = ctr("container", "rm", id)
	}
	bm, cm := percentile(berthTimes, 50), percentile(ctrTimes, 50)
	fmt.Printf("create → Running, cached image, %d runs each:\n", n)
	fmt.Printf("  berth (ARM PUT → op Succeeded → GET Running): p50 %v  p95 %v\n", bm.Round(time.Millisecond), percentile(berthTimes, 95).Round(time.Millisecond))
	fmt.Printf("  floor (ctr run -d, same image):                p50 %v  p95 %v\n", cm.Round(time.Millisecond), percentile(ctrTimes, 95).Round(time.Millisecond))
	fmt.Printf("  ratio berth/floor at p50: %.2f×\n", float64(bm)/float64(cm))

	if pulls <= 0 {
		return nil
	}
	// Never-pulled images: each run pushes two fresh images of the same
	// size (random layers), one for each side.
	auth := &authn.Basic{Username: e["AZURE_CLIENT_ID"], Password: e["AZURE_CLIENT_SECRET"]}
	var berthPull, ctrPull []time.Duration
	for i := 0; i < pulls; i++ {
		refs := [2]string{}
		for j := range refs {
			big, err := withRandomLayer(img, int64(pullMiB)<<20)
			if err != nil {
				return err
			}
			refs[j] = fmt.Sprintf("%s/bench/big:%d-%d-%d", e["BERTH_REGISTRY"], time.Now().UnixNano(), i, j)
			if _, err := testimage.PushImage(big, refs[j], auth, client.Transport); err != nil {
				return err
			}
		}
		name := "pull" + strconv.Itoa(i)
		d, err := a.createRunning(name, refs[0])
		if err != nil {
			return err
		}
		berthPull = append(berthPull, d)
		a.delete(name)

		id := "bench-pull-" + strconv.Itoa(i)
		t0 := time.Now()
		if err := ctr("image", "pull", "--user", e["AZURE_CLIENT_ID"]+":"+e["AZURE_CLIENT_SECRET"], "--tlscacert", filepath.Join(data, "pki", "ca.pem"), refs[1]); err != nil {
			return err
		}
		if err := ctr("run", "-d", refs[1], id); err != nil {
			return err
		}
		ctrPull = append(ctrPull, time.Since(t0))
		_ = ctr("task", "kill", "-s", "SIGKILL", id)
		time.Sleep(50 * time.Millisecond)
		_ = ctr("task", "rm", "-f", id)
		_ = ctr("container", "rm", id)
		_ = ctr("image", "rm", refs[0], refs[1])
	}
	bp, cp := percentile(berthPull, 50), percentile(ctrPull, 50)
	fmt.Printf("create → Running, never-pulled %d MiB image from berth's registry, %d runs each:\n", pullMiB, pulls)
	fmt.Printf("  berth (PUT → Running, pull included): p50 %v\n", bp.Round(time.Millisecond))
	fmt.Printf("  floor (ctr image pull + ctr run -d):  p50 %v\n", cp.Round(time.Millisecond))
	fmt.Printf("  ratio berth/floor at p50: %.2f×\n", float64(bp)/float64(cp))
	return nil
}

// withRandomLayer returns img with a layer of size random (incompressible)
// bytes on top.
func withRandomLayer(img v1.Image, size int64) (v1.Image, error) {
	layer, err := random.Layer(size, types.OCILayer)
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, layer)
}

type api struct {
	c   *http.Client
	e   env
	tok string
}

func (a *api) do(method, path, body string, out any) error {
	_, err := a.doHeader(method, path, body, out)
	return err
}

// doHeader is do, also returning the response headers.
func (a *api) doHeader(method, path, body string, out any) (http.Header, error) {
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = a.e["BERTH_ENDPOINT"] + path
	}
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return resp.Header, json.Unmarshal(b, out)
	}
	return resp.Header, nil
}

func (a *api) path(name string) string {
	return "/subscriptions/" + a.e["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/bench/providers/Microsoft.ContainerInstance/containerGroups/" + name + "?api-version=2023-05-01"
}

// createRunning PUTs a group, polls its Azure-AsyncOperation (as the SDK
// pollers do; cheap for the server, so polling does not steal the CPU the
// create needs) every 5 ms until it succeeds, then GETs the group until it
// reports Running.
func (a *api) createRunning(name, image string) (time.Duration, error) {
	body := fmt.Sprintf(`{"location":"local","properties":{"osType":"Linux","restartPolicy":"Always",
	 "containers":[{"name":"app","properties":{"image":%q,"ports":[{"port":8080}],"resources":{"requests":{"cpu":0.5,"memoryInGB":0.5}}}}],
	 "ipAddress":{"type":"Public","ports":[{"port":8080}]},
	 "imageRegistryCredentials":[{"server":%q,"username":%q,"password":%q}]}}`,
		image, a.e["BERTH_REGISTRY"], a.e["AZURE_CLIENT_ID"], a.e["AZURE_CLIENT_SECRET"])
	t0 := time.Now()
	h, err := a.doHeader("PUT", a.path(name), body, nil)
	if err != nil {
		return 0, err
	}
	for op := h.Get("Azure-AsyncOperation"); ; time.Sleep(5 * time.Millisecond) {
		var st struct{ Status string }
		if err := a.do("GET", op, "", &st); err != nil {
			return 0, err
		}
		if st.Status == "Succeeded" {
			break
		}
		if st.Status != "Pending" || time.Since(t0) > time.Minute {
			return 0, fmt.Errorf("group %s: operation %s", name, st.Status)
		}
	}
	for {
		var g struct {
			Properties struct {
				ProvisioningState string `json:"provisioningState"`
				InstanceView      struct {
					State string `json:"state"`
				} `json:"instanceView"`
			} `json:"properties"`
		}
		if err := a.do("GET", a.path(name), "", &g); err != nil {
			return 0, err
		}
		if g.Properties.InstanceView.State == "Running" {
			return time.Since(t0), nil
		}
		if g.Properties.ProvisioningState == "Failed" || time.Since(t0) > time.Minute {
			return 0, fmt.Errorf("group %s: %+v", name, g.Properties)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (a *api) delete(name string) { _ = a.do("DELETE", a.path(name), "", nil) }

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration { return berthrun.Percentile(ds, p) }
