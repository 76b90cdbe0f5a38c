// Package e2e drives a real berth binary with the official Azure SDK for Go
// and a real registry client, as a user would: build berth, `berth serve`,
// `eval "$(berth env)"`, push an image, create container groups, talk to
// them, restart berth, delete them. It needs root and containerd (CI has
// both); it never skips.
package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil/hostnet"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if berthBin != "" {
		os.RemoveAll(filepath.Dir(berthBin))
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	berthBin  string
	buildErr  error
)

// binary builds cmd/berth once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		berthBin = filepath.Join(dir, "berth")
		out, err := exec.Command("go", "build", "-o", berthBin, "github.com/berth-dev/berth/cmd/berth").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return berthBin
}

// berth is one running `berth serve`.
type berth struct {
	t       *testing.T
	dataDir string
	addr    string
	cmd     *exec.Cmd
	logPath string
	bridge  string
	env     map[string]string
	client  *http.Client
}

// freeAddr finds a loopback port p with p+1 also free (berth's default
// registry listens on the next port).
func freeAddr(t *testing.T) string {
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		ln.Close()
		if err == nil {
			ln2.Close()
			return "127.0.0.1:" + strconv.Itoa(port)
		}
	}
	t.Fatal("no free port pair")
	return ""
}

// startBerth starts berth serve on a fresh data dir and waits for health.
func startBerth(t *testing.T) *berth {
	b := &berth{t: t, dataDir: t.TempDir(), addr: freeAddr(t)}
	b.start()
	t.Cleanup(func() {
		// Containers outlive berth by design; a test removes what it made.
		if b.cmd != nil {
			b.deleteAllResourceGroups()
		}
		b.stop()
		hostnet.RemoveBridge(b.bridge)
	})
	return b
}

// deleteAllResourceGroups deletes every resource group (and so every
// container group) through ARM, waiting for each delete to finish.
func (b *berth) deleteAllResourceGroups() {
	t := b.t
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {b.env["AZURE_CLIENT_ID"]},
		"client_secret": {b.env["AZURE_CLIENT_SECRET"]}, "scope": {"https://management.core.windows.net//.default"}}
	resp, err := b.client.PostForm(b.env["BERTH_ENDPOINT"]+"/"+b.env["AZURE_TENANT_ID"]+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Errorf("cleanup token: %v", err)
		return
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	call := func(method, u string) (*http.Response, error) {
		req, _ := http.NewRequest(method, u, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		return b.client.Do(req)
	}
	resp, err = call("GET", b.env["BERTH_ENDPOINT"]+"/subscriptions/"+b.env["AZURE_SUBSCRIPTION_ID"]+"/resourcegroups?api-version=2021-04-01")
	if err != nil {
		t.Errorf("cleanup list: %v", err)
		return
	}
	var list struct {
		Value []struct{ ID string } `json:"value"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	for _, rg := range list.Value {
		resp, err := call("DELETE", b.env["BERTH_ENDPOINT"]+rg.ID+"?api-version=2021-04-01")
		if err != nil {
			t.Errorf("cleanup delete %s: %v", rg.ID, err)
			continue
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		for i := 0; loc != "" && i < 600; i++ {
			r, err := call("GET", loc)
			if err != nil {
				break
			}
			r.Body.Close()
			if r.StatusCode != http.StatusAccepted {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (b *berth) start() {
	t := b.t
	t.Helper()
	b.logPath = filepath.Join(b.dataDir, fmt.Sprintf("berth-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(b.logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Each berth of a test run gets its own bridge and subnet, so that a
	// group left by one can never answer for another.
	port := b.addr[strings.LastIndex(b.addr, ":")+1:]
	p, _ := strconv.Atoi(port)
	b.bridge = "bt" + port
	b.cmd = exec.Command(binary(t), "serve", "--addr", b.addr, "--data-dir", b.dataDir, "--log-level", "debug",
		"--bridge", b.bridge, "--subnet", fmt.Sprintf("10.%d.%d.0/24", 220+p%30, (p/30)%250))
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	// Wait for health, trusting the CA the server creates in its data dir;
	// then read the environment as a user would, with `berth env`.
	deadline := time.Now().Add(2 * time.Minute)
	var lastErr error
	for {
		if pem, err := os.ReadFile(filepath.Join(b.dataDir, "pki", "ca.pem")); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			resp, err := c.Get("https://" + b.addr + "/_berth/health")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			lastErr = err
		}
		if time.Now().After(deadline) {
			b.dumpLog()
			t.Fatalf("berth did not become healthy: %v", lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.loadEnv()
	if want := "https://" + b.addr; b.env["BERTH_ENDPOINT"] != want {
		t.Fatalf("berth env BERTH_ENDPOINT = %s, want %s", b.env["BERTH_ENDPOINT"], want)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (b *berth) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			b.t.Errorf("berth exited with %v", err)
			b.dumpLog()
		}
	case <-time.After(60 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
		b.t.Errorf("berth did not stop on SIGTERM within 60s")
		b.dumpLog()
	}
	b.cmd = nil
}

func (b *berth) dumpLog() {
	out, _ := os.ReadFile(b.logPath)
	if len(out) > 20000 {
		out = out[len(out)-20000:]
	}
	b.t.Logf("berth log:\n%s", out)
}

// loadEnv runs `berth env` and keeps its exports, as `eval` would.
func (b *berth) loadEnv() {
	t := b.t
	out, err := exec.Command(binary(t), "env", "--data-dir", b.dataDir).Output()
	if err != nil {
		t.Fatalf("berth env: %v", err)
	}
	b.env = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			t.Fatalf("berth env printed %q", sc.Text())
		}
		k, v, _ := strings.Cut(line, "=")
		b.env[k] = strings.Trim(v, "'")
	}
	for _, k := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID",
		"AZURE_AUTHORITY_HOST", "BERTH_ENDPOINT", "BERTH_REGISTRY", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"} {
		if b.env[k] == "" {
			t.Fatalf("berth env did not export %s:\n%s", k, out)
		}
	}
	pem, err := os.ReadFile(b.env["SSL_CERT_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("SSL_CERT_FILE has no certificates")
	}
	b.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
