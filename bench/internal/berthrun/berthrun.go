// Package berthrun starts a berth of its own for a benchmark: it builds
// the binary, serves on a free address with a fresh data directory, waits
// for health and reads `berth env` as a user would. It also holds what the
// benchmarks share: an ARM token and percentiles.
package berthrun

import (
	"bytes"
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
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Berth is a running berth.
type Berth struct {
	Dir, Bin, Data, Addr, LogPath string
	// Env is what `berth env` exports.
	Env   map[string]string
	Roots *x509.CertPool // system roots + berth's CA
	Cmd   *exec.Cmd
}

// Start builds berth into a new temporary directory (prefix names it) and
// serves it with args added to serve's own (--addr, --data-dir), until it
// is healthy. On error nothing is left running; otherwise the caller calls
// Stop, then Remove.
func Start(prefix string, args ...string) (*Berth, error) {
	return StartRev(prefix, "", args...)
}

// StartRev is Start with berth built from git revision rev of the current
// repository ("" is the working tree): a benchmark can run the berth of
// before a change beside the current one, in the same run.
func StartRev(prefix, rev string, args ...string) (*Berth, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	b := &Berth{Dir: dir, Bin: filepath.Join(dir, "berth"), Data: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "berth.log")}
	fail := func(err error) (*Berth, error) { b.Stop(); b.Remove(); return nil, err }
	src, _ := filepath.Abs(".")
	if rev != "" {
		src = filepath.Join(dir, "src")
		if out, err := exec.Command("git", "worktree", "add", "--detach", src, rev).CombinedOutput(); err != nil {
			return fail(fmt.Errorf("git worktree add %s: %v\n%s", rev, err, out))
		}
		defer exec.Command("git", "worktree", "remove", "--force", src).Run()
	}
	build := exec.Command("go", "build", "-o", b.Bin, "./cmd/berth")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("build: %v\n%s", err, out))
	}
	if b.Addr, err = freeAddr(); err != nil {
		return fail(err)
	}
	logf, err := os.Create(b.LogPath)
	if err != nil {
		return fail(err)
	}
	defer logf.Close()
	b.Cmd = exec.Command(b.Bin, append([]string{"serve", "--addr", b.Addr, "--data-dir", b.Data}, args...)...)
	b.Cmd.Stdout, b.Cmd.Stderr = logf, logf
	if err := b.Cmd.Start(); err != nil {
		b.Cmd = nil
		return fail(err)
	}
	if err := b.waitHealthy(2 * time.Minute); err != nil {
		return fail(err)
	}
	out, err := exec.Command(b.Bin, "env", "--data-dir", b.Data).Output()
	if err != nil {
		return fail(err)
	}
	b.Env = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		b.Env[k] = strings.Trim(v, "'")
	}
	pem, err := os.ReadFile(b.Env["SSL_CERT_FILE"])
	if err != nil {
		return fail(err)
	}
	b.Roots = x509.NewCertPool()
	b.Roots.AppendCertsFromPEM(pem)
	return b, nil
}

// waitHealthy polls /_berth/health, trusting the CA berth creates.
func (b *Berth) waitHealthy(limit time.Duration) error {
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if pem, err := os.ReadFile(filepath.Join(b.Data, "pki", "ca.pem")); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			if resp, err := c.Get("https://" + b.Addr + "/_berth/health"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return nil
				}
			}
		}
		if time.Since(start) > limit {
			return fmt.Errorf("berth not healthy after %v (log: %s)", limit, b.LogPath)
		}
	}
}

// Transport is an HTTP transport trusting berth's CA.
func (b *Berth) Transport(maxIdlePerHost int, keepAlive bool) *http.Transport {
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: b.Roots}, MaxIdleConnsPerHost: maxIdlePerHost, DisableKeepAlives: !keepAlive}
}

// ContainerdSocket is the socket of berth's private containerd.
func (b *Berth) ContainerdSocket() string {
	return filepath.Join(b.Data, "runtime", "containerd", "containerd.sock")
}

// Stop sends SIGTERM and waits for berth to exit.
func (b *Berth) Stop() {
	if b.Cmd == nil || b.Cmd.Process == nil {
		return
	}
	_ = b.Cmd.Process.Signal(syscall.SIGTERM)
	_ = b.Cmd.Wait()
	b.Cmd = nil
}

// Remove deletes the temporary directory.
func (b *Berth) Remove() { _ = os.RemoveAll(b.Dir) }

// Token gets an ARM token for the well-known service principal.
func Token(c *http.Client, env map[string]string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {env["AZURE_CLIENT_ID"]}, "client_secret": {env["AZURE_CLIENT_SECRET"]},
		"scope": {"https://management.core.windows.net//.default"}}
	resp, err := c.Post(env["BERTH_ENDPOINT"]+"/"+env["AZURE_TENANT_ID"]+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", bytes.NewBufferString(form.Encode()))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("token: %v (status %d)", err, resp.StatusCode)
	}
	return t.AccessToken, nil
}

// Percentile returns the p-th percentile (nearest rank) of ds; 0 for none.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

// freeAddr finds a loopback port whose next port is free too (berth's
// default registry takes it).
func freeAddr() (string, error) {
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		ln.Close()
		if err == nil {
			ln2.Close()
			return "127.0.0.1:" + strconv.Itoa(port), nil
		}
	}
	return "", fmt.Errorf("no free port pair")
}
