// Command authz measures what authorization costs: ARM GET requests per
// second (a resource group; a subscription-wide list of container groups,
// which RBAC filters) and registry manifest HEAD requests per second, on the
// current berth and on the berth of before RBAC (git revision -base, built
// from this repository), in the same run, rounds alternating between them.
// It prints each side's rate and the ratio current/base (goal ≥ 0.9).
//
//	go run ./bench/authz [-base 021a08d] [-c 8] [-d 3s] [-rounds 3]
//
// Run it from the module root, as root (each berth starts its containerd
// and creates a bridge).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-dev/berth/bench/internal/berthrun"
	"github.com/berth-dev/berth/internal/testutil/hostnet"
	"github.com/berth-dev/berth/internal/testutil/testimage"
)

func main() {
	base := flag.String("base", "021a08d", "git revision of the berth before RBAC")
	conc := flag.Int("c", 8, "concurrent clients")
	dur := flag.Duration("d", 3*time.Second, "duration of one measurement")
	rounds := flag.Int("rounds", 3, "rounds per side (alternating)")
	flag.Parse()
	if err := run(*base, *conc, *dur, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "authz:", err)
		os.Exit(1)
	}
}

// side is one berth under measurement and the requests it is sent.
type side struct {
	name   string
	b      *berthrun.Berth
	client *http.Client
	reqs   map[string]func() (*http.Request, error) // by measurement
}

func run(base string, conc int, dur time.Duration, rounds int) error {
	var sides []*side
	defer func() {
		for _, s := range sides {
			s.b.Stop()
			s.b.Remove()
		}
		hostnet.RemoveBridge("berthaz0")
		hostnet.RemoveBridge("berthaz1")
	}()
	for i, rev := range []string{base, ""} {
		name := "current"
		if rev != "" {
			name = "base " + rev
		}
		b, err := berthrun.StartRev("berth-bench-authz-", rev, "--bridge", fmt.Sprintf("berthaz%d", i), "--subnet", fmt.Sprintf("10.21%d.0.0/24", 6+i))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		s := &side{name: name, b: b, client: &http.Client{Timeout: 30 * time.Second, Transport: b.Transport(conc, true)}}
		sides = append(sides, s)
		if err := s.prepare(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	names := []string{"ARM GET resource group", "ARM GET list container groups", "registry HEAD manifest"}
	rates := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for _, m := range names {
			for _, s := range sides {
				n, err := s.measure(m, conc, dur)
				if err != nil {
					return fmt.Errorf("%s, %s: %w", s.name, m, err)
				}
				rates[s.name+"|"+m] = append(rates[s.name+"|"+m], n)
			}
		}
	}
	fmt.Printf("authorization cost: %d clients, %v × %d rounds per side, best round\n", conc, dur, rounds)
	for _, m := range names {
		b, c := best(rates[sides[0].name+"|"+m]), best(rates[sides[1].name+"|"+m])
		fmt.Printf("  %-32s %s %8.0f/s   current %8.0f/s   ratio %.2f×\n", m, sides[0].name, b, c, c/b)
	}
	return nil
}

func best(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// prepare creates what is read: a resource group, and an image in the
// default registry with a pull token for it.
func (s *side) prepare() error {
	e := s.b.Env
	tok, err := berthrun.Token(s.client, e)
	if err != nil {
		return err
	}
	sub := e["AZURE_SUBSCRIPTION_ID"]
	rg := e["BERTH_ENDPOINT"] + "/subscriptions/" + sub + "/resourcegroups/benchauthz?api-version=2021-04-01"
	req, _ := http.NewRequest("PUT", rg, strings.NewReader(`{"location":"westeurope"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT resource group: %s", resp.Status)
	}
	img, err := testimage.Image()
	if err != nil {
		return err
	}
	login := e["BERTH_REGISTRY"]
	if _, err := testimage.PushImage(img, login+"/bench/authz:v1", &authn.Basic{Username: e["AZURE_CLIENT_ID"], Password: e["AZURE_CLIENT_SECRET"]}, s.client.Transport); err != nil {
		return err
	}
	q := url.Values{"service": {login}, "scope": {"repository:bench/authz:pull"}}
	treq, _ := http.NewRequest("GET", "https://"+login+"/oauth2/token?"+q.Encode(), nil)
	treq.SetBasicAuth(e["AZURE_CLIENT_ID"], e["AZURE_CLIENT_SECRET"])
	tresp, err := s.client.Do(treq)
	if err != nil {
		return err
	}
	defer tresp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(tresp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return fmt.Errorf("registry token: %v (%s)", err, tresp.Status)
	}
	arm := func(method, u string) func() (*http.Request, error) {
		return func() (*http.Request, error) {
			r, err := http.NewRequest(method, u, nil)
			if err == nil {
				r.Header.Set("Authorization", "Bearer "+tok)
			}
			return r, err
		}
	}
	s.reqs = map[string]func() (*http.Request, error){
		"ARM GET resource group":        arm("GET", rg),
		"ARM GET list container groups": arm("GET", e["BERTH_ENDPOINT"]+"/subscriptions/"+sub+"/providers/Microsoft.ContainerInstance/containerGroups?api-version=2023-05-01"),
		"registry HEAD manifest": func() (*http.Request, error) {
			r, err := http.NewRequest("HEAD", "https://"+login+"/v2/bench/authz/manifests/v1", nil)
			if err == nil {
				r.Header.Set("Authorization", "Bearer "+t.AccessToken)
				r.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
			}
			return r, err
		},
	}
	// Every request must succeed before it is timed.
	for m, mk := range s.reqs {
		r, _ := mk()
		resp, err := s.client.Do(r)
		if err != nil {
			return fmt.Errorf("%s: %w", m, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: %s", m, resp.Status)
		}
	}
	return nil
}

// measure sends request m from conc clients for d and returns requests/s.
func (s *side) measure(m string, conc int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				r, err := s.reqs[m]()
				if err == nil {
					var resp *http.Response
					if resp, err = s.client.Do(r); err == nil {
						_, _ = bytes.NewBuffer(nil).ReadFrom(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							err = fmt.Errorf("status %s", resp.Status)
						}
					}
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds(), firstErr
}
