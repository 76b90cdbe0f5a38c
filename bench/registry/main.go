// Command registry measures berth's registry beside the CNCF distribution
// registry (v3.1.2, filesystem storage), side by side in one run, with the
// same client: go-containerregistry's remote package, in process, over TLS.
//
//	go run ./bench/registry [-rounds 5] [-jobs 4] [-conc 32] [-dur 10s] [-perf DIR] [-berth BIN] [-keep]
//
// Run it from the module root, as root (it starts berth, which starts
// containerd and creates a bridge). It measures:
//
//   - push then pull of one image of 1 GiB in 16 layers of 64 MiB random
//     data (generated once in memory; each round changes the first 8 bytes of
//     every layer so no blob already exists), -jobs layers at a time both
//     ways, pulled digests verified (go-containerregistry hashes every pulled
//     byte against the manifest, which must list the pushed digests). -rounds
//     rounds, alternating which registry goes first; the median is reported.
//     sync(2) runs before every timed step so that neither side pays for the
//     other's write-back.
//   - manifest HEAD and GET requests per second (by tag) with -conc
//     goroutines sharing one keep-alive http.Client per side, for -dur per
//     side after a 1 s warm-up, in two halves ordered A B B A so background
//     load drifts fall on both; p50/p99 latency beside.
//   - the disk's own synced write speed for context: 1 GiB in 1 MiB writes
//     followed by fdatasync (what `dd bs=1M count=1024 conv=fdatasync` does),
//     in the same temporary directory both registries store into; and the
//     same with O_DIRECT (oflag=direct), which shows what the page cache
//     costs (on a VM, first-touching fresh guest memory can dominate).
//
// Configuration of each side:
//
//   - TLS: both serve TLS with an ECDSA P-256 certificate signed by berth's CA
//     (berth issues its own; the bench issues distribution's from
//     D/pki/ca.pem + ca-key.pem), minimum TLS 1.2; the client offers TLS 1.3
//     and only HTTP/1.1 (berth's listener speaks HTTP/1.1 only; distribution's
//     HTTP/2 is turned off to match). The negotiated parameters are printed.
//   - Auth: berth requires its ACR token flow (401 challenge → /oauth2/token →
//     bearer JWT checked on every request); push and pull go through it as any
//     client would, and the HEAD/GET load uses one access token fetched once.
//     distribution runs without auth (its best case): the auth difference is
//     counted against berth.
//   - Durability (as of this writing): both fsync blob data before
//     acknowledging it. berth at the upload's final PUT (the data, then its
//     directory after the rename); distribution v3.1.2's filesystem driver at
//     the end of every PATCH and again at the PUT, then renames the blob into
//     place without syncing the directory. (So distribution's fsync cost
//     shows in PATCH time, berth's in commit time: the per-request timing
//     line shows both.)
//   - Logging: berth at its default level (registry requests log only
//     errors); distribution at warn with its access log off.
//
// The distribution binary is built once with `go install` (about 70 s) and
// cached under $(go env GOCACHE)/../berth-bench/distribution-v3.1.2/. With
// -perf DIR, `perf record -g` samples each server during its own phases into
// DIR/<side>-<phase>.data (read with `perf report -i …`).
//
// The targets (issue 3: berth ≥ 1.3× distribution on push and pull, ≥ 2× on
// manifest requests) are printed beside the ratios; missing them is not an
// error. Any failure is: the command exits 1.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil/hostnet"
)

const (
	distributionVersion = "v3.1.2"
	distributionPkg     = "github.com/distribution/distribution/v3/cmd/registry"
	bridge              = "berthbenchreg"
	subnet              = "10.218.0.0/24"
	repo                = "bench/big"
	mb                  = 1e6 // MB/s as dd reports them
	manifestAccept      = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
)

type options struct {
	rounds, jobs, conc, layers int
	layerMiB                   int
	dur                        time.Duration
	perfDir, berthBin          string
	keep                       bool
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 5, "push/pull rounds per side (median reported)")
	flag.IntVar(&o.jobs, "jobs", 4, "layers transferred at once, push and pull (go-containerregistry's default)")
	flag.IntVar(&o.conc, "conc", 32, "concurrent clients for manifest HEAD/GET")
	flag.DurationVar(&o.dur, "dur", 10*time.Second, "duration of each manifest HEAD/GET measurement")
	flag.IntVar(&o.layers, "layers", 16, "layers in the image")
	flag.IntVar(&o.layerMiB, "layer-mib", 64, "size of each layer in MiB")
	flag.StringVar(&o.perfDir, "perf", "", "if set, record `perf record -g` of each server during its phases into this directory")
	flag.StringVar(&o.berthBin, "berth", "", "use this berth binary instead of building ./cmd/berth")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (data, logs, configs)")
	flag.Parse()
	if o.rounds < 1 || o.jobs < 1 || o.conc < 1 || o.layers < 1 || o.layerMiB < 1 {
		fmt.Fprintln(os.Stderr, "registry: -rounds, -jobs, -conc, -layers and -layer-mib must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

// side is one registry under test.
type side struct {
	name     string
	host     string // host:port
	auth     authn.Authenticator
	bearer   string // Authorization header value for raw manifest requests ("" for none)
	pid      int
	tls      string // negotiated TLS parameters
	authNote string

	push, pull []float64 // MB/s per round
	pushTiming string    // where the last push's request time went
	rps        map[string]rpsResult
}

type rpsResult struct {
	rps      float64
	p50, p99 time.Duration
}

func run(ctx context.Context, o options) (err error) {
	start := time.Now()
	tmp, err := os.MkdirTemp("", "berth-bench-registry-")
	if err != nil {
		return err
	}
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		if o.keep {
			fmt.Fprintln(os.Stderr, "kept", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}()
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, a...))
	}
	if o.perfDir != "" {
		if err := os.MkdirAll(o.perfDir, 0o755); err != nil {
			return err
		}
	}

	// Build berth and get distribution's binary at the same time.
	var distBin string
	var distErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		distBin, distErr = distributionBinary(ctx, logf)
	}()
	berthBin := o.berthBin
	if berthBin == "" {
		logf("building berth")
		berthBin = filepath.Join(tmp, "berth")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", berthBin, "./cmd/berth").CombinedOutput(); err != nil {
			wg.Wait()
			return fmt.Errorf("build berth: %v\n%s", err, out)
		}
	}
	wg.Wait()
	if distErr != nil {
		return distErr
	}

	// The disk, before anything else writes.
	logf("disk: 1 GiB with fdatasync")
	diskMBs, err := syncedWrite(filepath.Join(tmp, "dd.out"), 1<<30, false)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	var directNote string
	if d, err := syncedWrite(filepath.Join(tmp, "dd.out"), 1<<30, true); err != nil {
		directNote = "n/a: " + err.Error()
	} else {
		directNote = fmt.Sprintf("%.0f MB/s", d)
	}

	// berth.
	berthData := filepath.Join(tmp, "berth-data")
	berthLog := filepath.Join(tmp, "berth.log")
	addr, err := freeAddr(true)
	if err != nil {
		return err
	}
	logf("starting berth on %s", addr)
	bsrv, err := startProcess(berthLog, berthBin, "serve", "--addr", addr, "--data-dir", berthData, "--bridge", bridge, "--subnet", subnet)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() {
		bsrv.stop()
		hostnet.RemoveBridge(bridge)
	})
	defer func() {
		if err != nil {
			tail(berthLog)
		}
	}()
	caPEM, err := waitBerth(ctx, addr, berthData, bsrv)
	if err != nil {
		return err
	}
	out, err := exec.Command(berthBin, "env", "--data-dir", berthData).Output()
	if err != nil {
		return fmt.Errorf("berth env: %w", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		env[k] = strings.Trim(v, "'")
	}
	for _, k := range []string{"BERTH_REGISTRY", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "SSL_CERT_FILE"} {
		if env[k] == "" {
			return fmt.Errorf("berth env: no %s", k)
		}
	}
	bundle, err := os.ReadFile(env["SSL_CERT_FILE"])
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) || !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("no certificates in SSL_CERT_FILE or ca.pem")
	}

	// distribution, with a certificate from berth's CA.
	distDir := filepath.Join(tmp, "distribution")
	distLog := filepath.Join(tmp, "distribution.log")
	distAddr, err := freeAddr(false)
	if err != nil {
		return err
	}
	cfg, err := distributionConfig(distDir, distAddr, filepath.Join(berthData, "pki"))
	if err != nil {
		return err
	}
	logf("starting distribution %s on %s", distributionVersion, distAddr)
	dsrv, err := startProcess(distLog, distBin, "serve", cfg)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, func() { dsrv.stop() })
	defer func() {
		if err != nil {
			tail(distLog)
		}
	}()
	if err := waitDistribution(ctx, distAddr, roots, dsrv); err != nil {
		return err
	}

	berthSide := &side{name: "berth", host: env["BERTH_REGISTRY"], pid: bsrv.cmd.Process.Pid,
		auth:     &authn.Basic{Username: env["AZURE_CLIENT_ID"], Password: env["AZURE_CLIENT_SECRET"]},
		authNote: "ACR token flow (401 → /oauth2/token → bearer JWT checked per request)", rps: map[string]rpsResult{}}
	distSide := &side{name: "distribution", host: distAddr, pid: dsrv.cmd.Process.Pid, auth: authn.Anonymous,
		authNote: "none (anonymous)", rps: map[string]rpsResult{}}
	sides := []*side{distSide, berthSide}
	for _, s := range sides {
		if s.tls, err = probeTLS(s.host, roots); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}

	// The data: generated once, reused by both sides and every round.
	logf("generating %d × %d MiB of random data", o.layers, o.layerMiB)
	layerSize := o.layerMiB << 20
	total := int64(o.layers) * int64(layerSize)
	data := make([][]byte, o.layers)
	rng := mrand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'})
	for i := range data {
		data[i] = make([]byte, layerSize)
		_, _ = rng.Read(data[i])
	}

	newTransport := func() *http.Transport {
		return &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   false, // HTTP/1.1 on both sides
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}
	}
	perf := func(s *side, phase string) func() {
		if o.perfDir == "" {
			return func() {}
		}
		return startPerf(filepath.Join(o.perfDir, s.name+"-"+phase+".data"), s.pid, logf)
	}

	// (1) push then pull, rounds alternating which side goes first.
	var lastTag string
	for r := 0; r < o.rounds; r++ {
		for i := range data {
			binary.BigEndian.PutUint64(data[i], uint64(r)<<32|uint64(i))
		}
		img, digests, err := buildImage(data)
		if err != nil {
			return err
		}
		tag := "r" + strconv.Itoa(r)
		lastTag = tag
		order := slices.Clone(sides)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			ref, err := name.NewTag(s.host + "/" + repo + ":" + tag)
			if err != nil {
				return err
			}
			opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(s.auth), remote.WithJobs(o.jobs)}

			syscall.Sync()
			stopPerf := perf(s, "push"+tag)
			tt := newTiming(newTransport())
			t0 := time.Now()
			err = remote.Write(ref, img, append(opts, remote.WithTransport(tt))...)
			d := time.Since(t0)
			stopPerf()
			s.pushTiming = tt.String()
			if err != nil {
				return fmt.Errorf("%s: push: %w", s.name, err)
			}
			s.push = append(s.push, float64(total)/mb/d.Seconds())
			logf("round %d %-12s push %7.1f MB/s (%v)", r+1, s.name, s.push[len(s.push)-1], d.Round(time.Millisecond))

			syscall.Sync()
			stopPerf = perf(s, "pull"+tag)
			t0 = time.Now()
			err = pull(ctx, ref, digests, total, o.jobs, append(opts, remote.WithTransport(newTransport())))
			d = time.Since(t0)
			stopPerf()
			if err != nil {
				return fmt.Errorf("%s: pull: %w", s.name, err)
			}
			s.pull = append(s.pull, float64(total)/mb/d.Seconds())
			logf("round %d %-12s pull %7.1f MB/s (%v), digests verified", r+1, s.name, s.pull[len(s.pull)-1], d.Round(time.Millisecond))
		}
	}
	data = nil

	// (2) manifest HEAD and GET: pre-authenticated, one keep-alive client per side.
	t0 := time.Now()
	tok, err := berthToken(ctx, newTransport(), berthSide.host, env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"], "repository:"+repo+":pull")
	if err != nil {
		return err
	}
	tokenTime := time.Since(t0)
	berthSide.bearer = "Bearer " + tok
	// Each side gets two halves of -dur, in the order A B B A, so that a
	// change in the machine's background load falls on both.
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		clients := map[*side]*http.Client{}
		loads := map[*side]*load{}
		url := func(s *side) string { return "https://" + s.host + "/v2/" + repo + "/manifests/" + lastTag }
		for _, s := range sides {
			clients[s] = &http.Client{Timeout: 30 * time.Second, Transport: newTransport()}
			loads[s] = &load{}
			if err := hammer(ctx, clients[s], method, url(s), s.bearer, o.conc, time.Second, &load{}); err != nil { // warm-up
				return fmt.Errorf("%s: %s warm-up: %w", s.name, method, err)
			}
		}
		rev := slices.Clone(sides)
		slices.Reverse(rev)
		order := append(slices.Clone(sides), rev...)
		for i, s := range order {
			stopPerf := perf(s, strings.ToLower(method)+strconv.Itoa(i/len(sides)+1))
			err := hammer(ctx, clients[s], method, url(s), s.bearer, o.conc, o.dur/2, loads[s])
			stopPerf()
			if err != nil {
				return fmt.Errorf("%s: %s: %w", s.name, method, err)
			}
		}
		for _, s := range sides {
			clients[s].CloseIdleConnections()
			res := loads[s].result()
			s.rps[method] = res
			logf("%-12s manifest %-4s %8.0f req/s  p50 %v  p99 %v", s.name, method, res.rps, res.p50, res.p99)
		}
	}

	// Report.
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nregistry benchmark: berth vs distribution %s, same client (go-containerregistry remote), same host\n", distributionVersion)
	fmt.Printf("image: %d × %d MiB random layers = %.0f MB; push/pull %d layers at a time; median of %d rounds\n",
		o.layers, o.layerMiB, float64(total)/mb, o.jobs, o.rounds)
	fmt.Printf("manifests: %d concurrent clients on one keep-alive client per side, by tag, %v per side after 1 s warm-up (halves in order A B B A)\n", o.conc, o.dur)
	fmt.Printf("disk: 1 GiB in 1 MiB writes + fdatasync: %.0f MB/s (same with O_DIRECT: %s)   cores: %d   load average: %s\n\n",
		diskMBs, directNote, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("%-26s %14s %14s %10s %8s\n", "", "berth", "distribution", "berth/dist", "target")
	row := func(label string, b, d float64, unit string, target float64) {
		fmt.Printf("%-26s %14s %14s %9.2f× %7.1f×%s\n", label, fmt.Sprintf("%.0f %s", b, unit), fmt.Sprintf("%.0f %s", d, unit), b/d, target, miss(b/d, target))
	}
	row("push (MB/s)", median(berthSide.push), median(distSide.push), "", 1.3)
	row("pull (MB/s)", median(berthSide.pull), median(distSide.pull), "", 1.3)
	row("manifest HEAD (req/s)", berthSide.rps[http.MethodHead].rps, distSide.rps[http.MethodHead].rps, "", 2)
	row("manifest GET (req/s)", berthSide.rps[http.MethodGet].rps, distSide.rps[http.MethodGet].rps, "", 2)
	fmt.Printf("%-26s %14.2f %14.2f\n", "push / disk synced write", median(berthSide.push)/diskMBs, median(distSide.push)/diskMBs)
	fmt.Println()
	for _, s := range []*side{berthSide, distSide} {
		fmt.Printf("%s: push rounds %s MB/s; pull rounds %s MB/s; HEAD p50/p99 %v/%v; GET p50/p99 %v/%v\n", s.name,
			fmtList(s.push), fmtList(s.pull), s.rps[http.MethodHead].p50, s.rps[http.MethodHead].p99, s.rps[http.MethodGet].p50, s.rps[http.MethodGet].p99)
		fmt.Printf("  TLS: %s; auth: %s\n", s.tls, s.authNote)
		fmt.Printf("  last push, request time summed over %d parallel jobs: %s\n", o.jobs, s.pushTiming)
	}
	fmt.Printf("  berth token fetch for the manifest load: %v (once)\n", tokenTime.Round(time.Microsecond))
	fmt.Println("durability: both fsync blob data before acknowledging it: berth at the upload's final PUT (data, then its directory after the rename),")
	fmt.Println("  distribution at the end of every PATCH and again at the PUT (the rename into place is not followed by a directory sync)")
	return nil
}

func miss(ratio, target float64) string {
	if ratio < target {
		return "  (missed)"
	}
	return ""
}

func fmtList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strings.Join(s, ", ")
}

// timing wraps a transport and sums, per kind of request, the time from
// sending a request to its response headers: for an upload's PATCH that is
// streaming the chunk, for its final PUT the server's commit (fsync).
type timing struct {
	rt  http.RoundTripper
	mu  sync.Mutex
	sum map[string]time.Duration
	max map[string]time.Duration
	n   map[string]int
}

func newTiming(rt http.RoundTripper) *timing {
	return &timing{rt: rt, sum: map[string]time.Duration{}, max: map[string]time.Duration{}, n: map[string]int{}}
}

func (t *timing) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := req.Method
	switch p := req.URL.Path; {
	case strings.HasSuffix(p, "/oauth2/token"):
		kind = "token"
	case strings.Contains(p, "/blobs/uploads/") && req.Method == http.MethodPut:
		kind = "commit"
	case strings.Contains(p, "/manifests/"):
		kind = req.Method + "-manifest"
	}
	t0 := time.Now()
	resp, err := t.rt.RoundTrip(req)
	d := time.Since(t0)
	t.mu.Lock()
	t.sum[kind] += d
	t.max[kind] = max(t.max[kind], d)
	t.n[kind]++
	t.mu.Unlock()
	return resp, err
}

// String lists the kinds that took time: kind n×, sum (max).
func (t *timing) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	kinds := make([]string, 0, len(t.sum))
	for k := range t.sum {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return int(t.sum[b] - t.sum[a]) })
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d× %.2fs (max %v)", k, t.n[k], t.sum[k].Seconds(), t.max[k].Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// buildImage makes an OCI image of one uncompressed layer per data slice and
// returns it with the layers' digests (hashed here, outside any timing).
func buildImage(data [][]byte) (v1.Image, []v1.Hash, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	layers := make([]v1.Layer, len(data))
	digests := make([]v1.Hash, len(data))
	for i, b := range data {
		layers[i] = static.NewLayer(b, types.OCIUncompressedLayer)
		d, err := layers[i].Digest()
		if err != nil {
			return nil, nil, err
		}
		digests[i] = d
	}
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, nil, err
	}
	if _, err := img.RawManifest(); err != nil {
		return nil, nil, err
	}
	return img, digests, nil
}

// pull fetches ref's manifest and every layer, jobs at a time. The layers'
// readers are go-containerregistry's verifying readers: a byte that does not
// hash to the manifest's digest, or a wrong size, is an error; the manifest
// must list exactly the pushed digests.
func pull(ctx context.Context, ref name.Reference, want []v1.Hash, total int64, jobs int, opts []remote.Option) error {
	img, err := remote.Image(ref, opts...)
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if len(layers) != len(want) {
		return fmt.Errorf("%d layers, want %d", len(layers), len(want))
	}
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if d != want[i] {
			return fmt.Errorf("layer %d: digest %s, pushed %s", i, d, want[i])
		}
	}
	var (
		next  atomic.Int64
		got   atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(layers) {
					return
				}
				err := func() error {
					rc, err := layers[i].Compressed()
					if err != nil {
						return err
					}
					defer rc.Close()
					n, err := io.Copy(io.Discard, rc)
					got.Add(n)
					return err
				}()
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("layer %d (%s): %w", i, want[i], err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	if got.Load() != total {
		return fmt.Errorf("pulled %d bytes, want %d", got.Load(), total)
	}
	return ctx.Err()
}

// load accumulates the requests of one side's measurement.
type load struct {
	elapsed time.Duration
	lats    []time.Duration
}

func (l *load) result() rpsResult {
	all := slices.Clone(l.lats)
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))].Round(10 * time.Microsecond) }
	return rpsResult{rps: float64(len(all)) / l.elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99)}
}

// hammer sends method requests to u from conc goroutines for dur and adds
// them to into. Any status but 200 is an error.
func hammer(parent context.Context, c *http.Client, method, u, authz string, conc int, dur time.Duration, into *load) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	deadline := time.Now().Add(dur)
	lats := make([][]time.Duration, conc)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel()
	}
	t0 := time.Now()
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				req, err := http.NewRequestWithContext(ctx, method, u, nil)
				if err != nil {
					fail(err)
					return
				}
				req.Header.Set("Accept", manifestAccept)
				if authz != "" {
					req.Header.Set("Authorization", authz)
				}
				s := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					fail(err)
					return
				}
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") == "" {
					fail(fmt.Errorf("%s %s: status %d, Docker-Content-Digest %q", method, u, resp.StatusCode, resp.Header.Get("Docker-Content-Digest")))
					return
				}
				lats[g] = append(lats[g], time.Since(s))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if first != nil {
		return first
	}
	if err := parent.Err(); err != nil {
		return err
	}
	n := 0
	for _, l := range lats {
		into.lats = append(into.lats, l...)
		n += len(l)
	}
	if n == 0 {
		return errors.New("no request completed")
	}
	into.elapsed += elapsed
	return nil
}

// berthToken gets an access token for scope from berth's token endpoint with
// the password grant, as an ACR client does once per scope.
func berthToken(ctx context.Context, tr http.RoundTripper, host, user, pass, scope string) (string, error) {
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}, "service": {host}, "scope": {scope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+host+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &t) != nil || t.AccessToken == "" {
		return "", fmt.Errorf("berth token: status %d: %s", resp.StatusCode, b)
	}
	return t.AccessToken, nil
}

// syncedWrite writes size bytes in 1 MiB blocks and fdatasyncs, returning MB/s
// over the whole (as dd conv=fdatasync reports it). With direct the file is
// opened O_DIRECT (dd oflag=direct), bypassing the page cache.
func syncedWrite(path string, size int64, direct bool) (float64, error) {
	raw := make([]byte, 1<<20+4096)
	off := int(4096-uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096
	buf := raw[off : off+1<<20]
	_, _ = rand.Read(buf)
	syscall.Sync()
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if direct {
		flags |= syscall.O_DIRECT
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	t0 := time.Now()
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
	}
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		return 0, err
	}
	return float64(size) / mb / time.Since(t0).Seconds(), nil
}

// distributionBinary returns the cached distribution registry binary,
// building it with go install when missing.
func distributionBinary(ctx context.Context, logf func(string, ...any)) (string, error) {
	out, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOCACHE: %w", err)
	}
	dir := filepath.Join(filepath.Dir(strings.TrimSpace(string(out))), "berth-bench", "distribution-"+distributionVersion)
	bin := filepath.Join(dir, "registry")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	logf("installing distribution %s into %s (about 70 s the first time)", distributionVersion, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Build into a temporary GOBIN, then rename: an interrupted build leaves no binary behind.
	tmpBin, err := os.MkdirTemp(dir, ".install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmpBin)
	cmd := exec.CommandContext(ctx, "go", "install", distributionPkg+"@"+distributionVersion)
	cmd.Dir = os.TempDir() // outside any module
	cmd.Env = append(os.Environ(), "GOBIN="+tmpBin, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", distributionPkg, distributionVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmpBin, "registry"), bin); err != nil {
		return "", err
	}
	return bin, nil
}

// distributionConfig writes distribution's TLS files and config.yml under dir
// and returns the config's path. The certificate is ECDSA P-256, like berth's,
// for 127.0.0.1, signed by berth's CA.
func distributionConfig(dir, addr, pkiDir string) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "storage"), 0o755); err != nil {
		return "", err
	}
	caCertPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.pem"))
	if err != nil {
		return "", err
	}
	caKeyPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca-key.pem"))
	if err != nil {
		return "", err
	}
	cb, _ := pem.Decode(caCertPEM)
	kb, _ := pem.Decode(caKeyPEM)
	if cb == nil || kb == nil {
		return "", errors.New("berth CA: bad PEM")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return "", err
	}
	caKey, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		if caKey, err = x509.ParseECPrivateKey(kb.Bytes); err != nil {
			return "", fmt.Errorf("berth CA key: %w", err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "distribution bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: %s
  tls:
    certificate: %s
    key: %s
    minimumtls: tls1.2
  http2:
    disabled: true
`, filepath.Join(dir, "storage"), addr, certPath, keyPath)
	p := filepath.Join(dir, "config.yml")
	return p, os.WriteFile(p, []byte(cfg), 0o644)
}

// proc is a server the benchmark started.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

func startProcess(logPath, bin string, args ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM and waits up to 30 s, then kills.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitBerth waits for /_berth/health, trusting the CA berth creates, and
// returns the CA.
func waitBerth(ctx context.Context, addr, data string, p *proc) ([]byte, error) {
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if pemBytes, err := os.ReadFile(filepath.Join(data, "pki", "ca.pem")); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pemBytes)
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			if resp, err := c.Get("https://" + addr + "/_berth/health"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return pemBytes, nil
				}
			}
		}
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case p.exited():
			return nil, fmt.Errorf("berth exited: %v", p.cmd.ProcessState)
		case time.Since(start) > 2*time.Minute:
			return nil, errors.New("berth not healthy after 2 minutes")
		}
	}
}

func waitDistribution(ctx context.Context, addr string, roots *x509.CertPool, p *proc) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := c.Get("https://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case p.exited():
			return fmt.Errorf("distribution exited: %v", p.cmd.ProcessState)
		case time.Since(start) > time.Minute:
			return errors.New("distribution not ready after a minute")
		}
	}
}

// probeTLS connects once as the benchmark's client does and describes what
// was negotiated.
func probeTLS(host string, roots *x509.CertPool) (string, error) {
	conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	st := conn.ConnectionState()
	alg := "?"
	if len(st.PeerCertificates) > 0 {
		c := st.PeerCertificates[0]
		alg = c.PublicKeyAlgorithm.String()
		if k, ok := c.PublicKey.(*ecdsa.PublicKey); ok {
			alg += " " + k.Curve.Params().Name
		}
	}
	proto := st.NegotiatedProtocol
	if proto == "" {
		proto = "http/1.1 (no ALPN)"
	}
	return fmt.Sprintf("%s %s, %s cert, %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), alg, proto), nil
}

// startPerf runs perf record on pid until the returned function is called.
func startPerf(out string, pid int, logf func(string, ...any)) func() {
	cmd := exec.Command("perf", "record", "-g", "-F", "499", "-p", strconv.Itoa(pid), "-o", out)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		logf("perf: %v", err)
		return func() {}
	}
	time.Sleep(200 * time.Millisecond) // let perf attach
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
}

func tail(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	fmt.Fprintf(os.Stderr, "--- last lines of %s:\n%s\n", path, strings.Join(lines, "\n"))
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// freeAddr returns a free loopback address; with pair, one whose next port is
// free too (berth puts its default registry there).
func freeAddr(pair bool) (string, error) {
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if !pair {
			ln.Close()
			return "127.0.0.1:" + strconv.Itoa(port), nil
		}
		ln2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		ln.Close()
		if err == nil {
			ln2.Close()
			return "127.0.0.1:" + strconv.Itoa(port), nil
		}
	}
	return "", errors.New("no free port")
}
