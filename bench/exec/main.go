// Command exec measures an exec round trip through berth — ARM POST
// …/containers/{c}/exec for `true`, open the returned websocket, send the
// password, read until the server closes with the exit code — beside the
// floor: the containerd client running the same exec (task.Exec with stdio
// FIFOs, Start, wait for the exit, delete) in the same container on the same
// containerd, in the same run, and `ctr task exec` for reference. It prints
// p50 and p95 of -n runs per side and the ratio of the p50s.
//
//	go run ./bench/exec [-n 200]
//
// Run it from the module root, as root (it starts berth, which starts
// containerd and creates a bridge).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"github.com/coder/websocket"
	ctrd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-dev/berth/bench/internal/berthrun"
	"github.com/berth-dev/berth/internal/testutil/hostnet"
	"github.com/berth-dev/berth/internal/testutil/testimage"
)

func main() {
	n := flag.Int("n", 200, "runs per side")
	flag.Parse()
	if err := run(*n); err != nil {
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(1)
	}
}

type env map[string]string

func run(n int) error {
	b, err := berthrun.Start("berth-bench-exec-", "--bridge", "berthbx", "--subnet", "10.218.0.0/24")
	if err != nil {
		return err
	}
	tmp, e := b.Dir, env(b.Env)
	a := &api{}
	defer func() {
		if a.tok != "" {
			_ = a.do("DELETE", "/subscriptions/"+a.e["AZURE_SUBSCRIPTION_ID"]+"/resourcegroups/benchexec?api-version=2021-04-01", "", nil)
			time.Sleep(2 * time.Second) // the async delete removes the group
		}
		b.Stop()
		b.Remove()
		hostnet.RemoveBridge("berthbx")
	}()
	// A client as az's would be: a new TLS connection for the websocket,
	// keep-alive for ARM.
	client := &http.Client{Timeout: 30 * time.Second, Transport: b.Transport(4, true)}
	wsClient := &http.Client{Timeout: 30 * time.Second, Transport: b.Transport(0, false)}

	img, err := testimage.Image()
	if err != nil {
		return err
	}
	ref := e["BERTH_REGISTRY"] + "/bench/exec:v1"
	if _, err := testimage.PushImage(img, ref, &authn.Basic{Username: e["AZURE_CLIENT_ID"], Password: e["AZURE_CLIENT_SECRET"]}, client.Transport); err != nil {
		return err
	}
	a.c, a.e = client, e
	if a.tok, err = berthrun.Token(client, e); err != nil {
		return err
	}
	if err := a.do("PUT", "/subscriptions/"+e["AZURE_SUBSCRIPTION_ID"]+"/resourcegroups/benchexec?api-version=2021-04-01", `{"location":"local"}`, nil); err != nil {
		return err
	}
	if err := a.createRunning("bench-exec", ref); err != nil {
		return err
	}

	// berth: POST exec + websocket + exit code.
	berthOnce := func() (time.Duration, error) {
		t0 := time.Now()
		var r struct {
			WebSocketURI string `json:"webSocketUri"`
			Password     string `json:"password"`
		}
		if err := a.do("POST", a.path("bench-exec")[:strings.Index(a.path("bench-exec"), "?")]+"/containers/app/exec?api-version=2023-05-01",
			`{"command":"true","terminalSize":{"rows":24,"cols":80}}`, &r); err != nil {
			return 0, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, r.WebSocketURI, &websocket.DialOptions{HTTPClient: wsClient})
		if err != nil {
			return 0, err
		}
		defer c.CloseNow()
		if err := c.Write(ctx, websocket.MessageText, []byte(r.Password)); err != nil {
			return 0, err
		}
		for {
			_, _, err := c.Read(ctx)
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				if ce.Reason != `{"exitCode":0}` {
					return 0, fmt.Errorf("exec ended with %d %q", ce.Code, ce.Reason)
				}
				return time.Since(t0), nil
			}
			if err != nil {
				return 0, err
			}
		}
	}

	// Floor: the containerd client on berth's containerd.
	sock := b.ContainerdSocket()
	cc, err := ctrd.New(sock, ctrd.WithDefaultNamespace("berth"))
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx := namespaces.WithNamespace(context.Background(), "berth")
	conts, err := cc.Containers(ctx, `labels."berth.containerGroup"==bench-exec`)
	if err != nil || len(conts) != 1 {
		return fmt.Errorf("find the container: %d found, %v", len(conts), err)
	}
	cont := conts[0]
	spec, err := cont.Spec(ctx)
	if err != nil {
		return err
	}
	fifoDir := filepath.Join(tmp, "fifo")
	floorOnce := func(i int) (time.Duration, error) {
		t0 := time.Now()
		task, err := cont.Task(ctx, nil)
		if err != nil {
			return 0, err
		}
		p := *spec.Process
		p.Args, p.Terminal = []string{"true"}, true
		proc, err := task.Exec(ctx, "floor-"+strconv.Itoa(i), &p, cio.NewCreator(cio.WithStreams(bytes.NewReader(nil), io.Discard, io.Discard), cio.WithTerminal, cio.WithFIFODir(fifoDir)))
		if err != nil {
			return 0, err
		}
		exited, err := proc.Wait(ctx)
		if err != nil {
			return 0, err
		}
		if err := proc.Start(ctx); err != nil {
			return 0, err
		}
		st := <-exited
		proc.IO().Wait()
		if _, err := proc.Delete(ctx); err != nil {
			return 0, err
		}
		if code, _, err := st.Result(); err != nil || code != 0 {
			return 0, fmt.Errorf("floor exec: %d %v", code, err)
		}
		return time.Since(t0), nil
	}
	cid := cont.ID()
	ctrOnce := func(i int) (time.Duration, error) {
		t0 := time.Now()
		out, err := exec.Command("ctr", "-a", sock, "-n", "berth", "task", "exec", "--exec-id", "ctr-"+strconv.Itoa(i), cid, "true").CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("ctr task exec: %v: %s", err, out)
		}
		return time.Since(t0), nil
	}

	// Warm up each side, then alternate them so drifts fall on both.
	for i := 0; i < 5; i++ {
		if _, err := berthOnce(); err != nil {
			return err
		}
		if _, err := floorOnce(100000 + i); err != nil {
			return err
		}
	}
	var berthT, floorT, ctrT []time.Duration
	for i := 0; i < n; i++ {
		d, err := berthOnce()
		if err != nil {
			return err
		}
		berthT = append(berthT, d)
		if d, err = floorOnce(i); err != nil {
			return err
		}
		floorT = append(floorT, d)
		if i%4 == 0 { // ctr is a process per exec: fewer runs
			if d, err = ctrOnce(i); err != nil {
				return err
			}
			ctrT = append(ctrT, d)
		}
	}
	fmt.Printf("exec round trip (open, run `true`, exit code back), %d runs per side:\n", n)
	fmt.Printf("  berth (ARM POST exec → wss → exit code):  p50 %v  p95 %v\n", pct(berthT, 50), pct(berthT, 95))
	fmt.Printf("  floor (containerd client exec, TTY):      p50 %v  p95 %v\n", pct(floorT, 50), pct(floorT, 95))
	fmt.Printf("  ctr task exec (%d runs, for reference):   p50 %v  p95 %v\n", len(ctrT), pct(ctrT, 50), pct(ctrT, 95))
	fmt.Printf("  ratio berth/floor at p50: %.2f×\n", float64(pct(berthT, 50))/float64(pct(floorT, 50)))
	return nil
}

type api struct {
	c   *http.Client
	e   env
	tok string
}

func (a *api) do(method, path, body string, out any) error {
	u := path
	if !strings.HasPrefix(u, "https://") {
		u = a.e["BERTH_ENDPOINT"] + path
	}
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (a *api) path(name string) string {
	return "/subscriptions/" + a.e["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/benchexec/providers/Microsoft.ContainerInstance/containerGroups/" + name + "?api-version=2023-05-01"
}

// createRunning creates a serving group and waits until it runs.
func (a *api) createRunning(name, image string) error {
	body := fmt.Sprintf(`{"location":"local","properties":{"osType":"Linux","restartPolicy":"Always",
	 "containers":[{"name":"app","properties":{"image":%q,"ports":[{"port":8080}],"resources":{"requests":{"cpu":0.5,"memoryInGB":0.5}}}}],
	 "ipAddress":{"type":"Public","ports":[{"port":8080}]},
	 "imageRegistryCredentials":[{"server":%q,"username":%q,"password":%q}]}}`,
		image, a.e["BERTH_REGISTRY"], a.e["AZURE_CLIENT_ID"], a.e["AZURE_CLIENT_SECRET"])
	if err := a.do("PUT", a.path(name), body, nil); err != nil {
		return err
	}
	for t0 := time.Now(); time.Since(t0) < 2*time.Minute; time.Sleep(50 * time.Millisecond) {
		var g struct {
			Properties struct {
				InstanceView struct {
					State string `json:"state"`
				} `json:"instanceView"`
			} `json:"properties"`
		}
		if err := a.do("GET", a.path(name), "", &g); err != nil {
			return err
		}
		if g.Properties.InstanceView.State == "Running" {
			return nil
		}
	}
	return fmt.Errorf("group %s did not run", name)
}

// pct returns the p-th percentile (nearest rank), rounded to 0.1 ms.
func pct(ds []time.Duration, p int) time.Duration {
	return berthrun.Percentile(ds, p).Round(100 * time.Microsecond)
}
