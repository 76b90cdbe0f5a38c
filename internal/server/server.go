// Package server assembles berth: it opens the data directory and state
// store, builds the token service, the registries, the runtime and the ARM
// front door, serves them over TLS, and shuts them down cleanly.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/fileutil"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/datadir"
	"github.com/berth-dev/berth/internal/dns"
	"github.com/berth-dev/berth/internal/graph"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/imds"
	"github.com/berth-dev/berth/internal/msi"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/rbac"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/containerd"
	"github.com/berth-dev/berth/internal/store/bolt"
	"github.com/berth-dev/berth/internal/terminal"
)

// DefaultSubscriptionID is the subscription every berth starts with.
const DefaultSubscriptionID = "be127000-0000-4000-8000-000000000002"

// Options configure Run.
type Options struct {
	DataDir          string
	Addr             string // empty: what the data directory last used, else datadir.DefaultAddr
	ContainerdSocket string // empty: start berth's own containerd
	Bridge, Subnet   string // container-group network; empty: the runtime's defaults
	Log              *slog.Logger
	// GPU is "emulate" (default: groups requesting GPUs run without a
	// device when the host has none) or "refuse".
	GPU string
	// Quota is each subscription's container-instance quota per region;
	// zero: ACI's defaults.
	Quota aci.Quota
	// Ready, if set, is called once every part is serving.
	Ready func()
}

// Run serves until ctx is done, then shuts down: listeners close, in-flight
// requests finish, the runtime stops watching (containers keep running and
// are re-adopted on the next start), the store closes.
func Run(ctx context.Context, o Options) (err error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	dir, err := datadir.Open(o.DataDir, o.Addr)
	if err != nil {
		return err
	}
	clk := clock.Real{}

	// Listen first so clients polling /_berth/health get 503 until ready.
	var ready atomic.Bool
	front := &frontDoor{ready: &ready}
	mainLn, err := listenTLS(dir.Config.Addr, dir.PKI.TLSConfig())
	if err != nil {
		return err
	}
	var servers []*http.Server
	errc := make(chan error, 4)
	serveOn := func(ln net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	serveOn(mainLn, front)
	// Shutdown order: stop taking requests and let in-flight ones finish,
	// then close the parts in reverse order of opening.
	var closers []func()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(sctx)
		}
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()

	st, err := bolt.Open(dir.StatePath())
	if err != nil {
		return err
	}
	closers = append(closers, func() { st.Close() })

	hosts := aliases(dir.Config.Addr)
	ids, err := identity.New(identity.Config{Store: st, KeyDir: dir.IdentityDir(), Clock: clk, IssuerHosts: hosts})
	if err != nil {
		return err
	}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops, Log: log.With("part", "resources")}
	if err := res.EnsureSubscription(ctx, resources.Subscription{
		ID: DefaultSubscriptionID, TenantID: identity.DefaultTenantID, DisplayName: "berth", State: "Enabled",
	}); err != nil {
		return err
	}

	// RBAC: the well-known service principal is Owner of the default
	// subscription (assignment rbac.BootstrapName).
	roles := &rbac.Service{Store: st, Clock: clk, Principals: principals{ids}, TenantID: identity.DefaultTenantID,
		DefaultPrincipal: identity.DefaultObjectID, DefaultScope: "/subscriptions/" + DefaultSubscriptionID}
	if err := roles.Start(ctx); err != nil {
		return err
	}

	// Groups resolve through berth's DNS server on their bridge's gateway
	// (set up below, before any group is created or re-adopted).
	var netrt *netRuntime
	rt, err := containerd.New(ctx, containerd.Config{
		DataDir: dir.RuntimeDir(), Socket: o.ContainerdSocket, BridgeName: o.Bridge, Subnet: o.Subnet,
		RootCAs: dir.PKI.CertPool(), Logger: log.With("part", "runtime"), GPU: gpuMode(o.GPU),
		DefaultDNS: func(network string, gateway netip.Addr) runtime.DNSSpec {
			if netrt != nil {
				if ns := netrt.nameserversAt(gateway); len(ns) > 0 {
					return runtime.DNSSpec{Nameservers: ns}
				}
			}
			return containerd.HostDNS()
		},
		OnBridge: func(gateway netip.Addr) {
			if netrt != nil {
				netrt.listenOn("", gateway)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("runtime: %w", err)
	}
	closers = append(closers, func() { rt.Close() })

	// berth's DNS server, on every bridge's gateway (decisions.md).
	names := dns.New(dns.Config{Log: log.With("part", "dns")})
	closers = append(closers, func() { names.Close() })
	netrt = &netRuntime{rt: rt, dns: names, log: log.With("part", "network")}
	netrt.listenAll()

	// Registries: each on its own TLS listener (its login server, stable
	// across restarts), forwarded into every group's namespace too, so the
	// login server means the same inside a group (decisions.md).
	regKey, err := fileutil.LoadOrCreateRSAKey(filepath.Join(dir.Path, "registries", "token-signing-key.pem"))
	if err != nil {
		return err
	}
	defaultLogin := dir.Config.Registries[datadir.DefaultRegistryName]
	loginHost, basePort, err := splitLogin(defaultLogin)
	if err != nil {
		return err
	}
	trusted := &trustedConns{}
	rhost := &registryHost{dir: dir, tls: dir.PKI.TLSConfig(), store: st, ids: ids, roles: roles,
		defaultScope: "/subscriptions/" + DefaultSubscriptionID, key: regKey, clock: clk,
		log: log.With("part", "registry"), rt: rt, errc: errc, served: map[string]*servedRegistry{}, trusted: trusted}
	closers = append(closers, rhost.Close)
	if err := rhost.Serve(ctx, &registries.Registry{Name: datadir.DefaultRegistryName, LoginServer: defaultLogin,
		UID: defaultRegistryUID(dir)}); err != nil {
		return err
	}
	regs := &registries.Service{Store: st, Clock: clk, Resources: res, Operations: ops, Host: rhost,
		Importer: imageImporter{transport: trusted.transport(registryTransport(dir), registries.Caller{Kind: registries.FromTrustedService}),
			target: trusted.transport(registryTransport(dir), registries.Caller{Kind: registries.FromSelf}), local: rhost.serves}, Log: log.With("part", "registries"),
		Reserved: []string{datadir.DefaultRegistryName}, LoginHost: loginHost, FirstPort: basePort + 1}
	rhost.svc = regs
	if err := regs.Start(ctx); err != nil {
		return err
	}
	closers = append(closers, regs.Close)

	armSrv := &arm.Server{
		Auth: armAuth{ids}, Authz: armAuthz{roles}, Resources: res, Operations: ops, Clock: clk, Log: log.With("part", "arm"),
		RetryAfter: 250 * time.Millisecond,
		Metadata: func(base string) any {
			return cloudMetadata(base, dir.Config.Registries[datadir.DefaultRegistryName])
		},
	}
	armSrv.HandleCore()
	nets := &network.Service{Store: st, Clock: clk, Resources: res, Runtime: netrt, Log: log.With("part", "network"),
		Links: linkTarget{regs}}
	svc := &aci.Service{Store: st, Runtime: rt, Resources: res, Operations: ops, Clock: clk, Log: log.With("part", "aci"),
		Networks: nets, Names: names,
		Quota: o.Quota, Host: hostCapacity(), GPU: aci.GPUPolicy{Refuse: o.GPU == "refuse", HostSKUs: hostGPUSKUs(containerd.HostGPUs())}}
	// Managed identities of groups: the metadata endpoint at
	// 169.254.169.254:80, reached from every group through its bridge's
	// gateway (a runtime Redirect: nothing listens inside the group, whose
	// containers keep every port), pulls by identity, and berth's ARM
	// endpoint forwarded into every group at the host's address
	// (decisions.md).
	base := "https://" + dir.Config.Addr
	mis := &msi.Service{Store: st, Clock: clk, Resources: res, Principals: ids, Log: log.With("part", "msi")}
	gids := groupIdentities{ids: ids, mis: mis, base: base, transport: registryTransport(dir), trusted: trusted}
	svc.Identities, svc.Pull = gids, gids
	meta := &imds.Server{Groups: imdsGroups{svc}, Tokens: imdsTokens{ids: ids, base: base}, Clock: clk,
		Log: log.With("part", "imds"), Tenant: identity.DefaultTenantID}
	closers = append(closers, meta.Close)
	if err := rt.AddRedirect(ctx, containerd.Redirect{Addr: imds.Address, Serve: meta.Serve}); err != nil {
		// Like the DNS server on a gateway it cannot take: berth runs, its
		// groups without the metadata endpoint (a host without iptables'
		// nat table, say).
		log.Warn("no metadata endpoint in groups", "address", imds.Address, "err", err)
	}
	armInGroups := inGroupAddr(dir.Config.Addr)
	if err := rt.AddForward(containerd.Forward{Listen: armInGroups, Target: armInGroups}); err != nil {
		return err
	}
	registerAPIs(armSrv, svc, regs, nets, mis, roles)
	if err := svc.Start(ctx); err != nil {
		return err
	}
	if err := mis.Start(ctx); err != nil {
		return err
	}
	closers = append(closers, svc.Close)
	// After the container groups' Start: its resource-group delete hook
	// must run after theirs (groups leave their subnets first).
	if err := nets.Start(ctx); err != nil {
		return err
	}
	if err := res.Start(ctx); err != nil {
		return err
	}
	closers = append(closers, res.Close)

	// Finished operations are kept a day (clients stop polling long before).
	// The loop ends with Run, however Run ends.
	pruneCtx, stopPrune := context.WithCancel(ctx)
	pruned := make(chan struct{})
	closers = append(closers, func() { stopPrune(); <-pruned })
	go func() {
		defer close(pruned)
		for t := time.NewTicker(time.Hour); ; {
			if _, err := ops.Prune(pruneCtx, clk.Now().Add(-24*time.Hour)); err != nil && pruneCtx.Err() == nil {
				log.Warn("prune operations", "err", err)
			}
			select {
			case <-pruneCtx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()

	front.identity = ids
	front.graph = &graph.Handler{IDs: ids}
	front.arm = armSrv
	front.terminal = &terminal.Handler{Sessions: svc, Log: log.With("part", "terminal")}
	ready.Store(true)
	log.Info("berth is ready", "arm", "https://"+dir.Config.Addr, "registry", dir.Config.Registries[datadir.DefaultRegistryName], "data", dir.Path)
	if o.Ready != nil {
		o.Ready()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		ready.Store(false)
		return nil
	case err := <-errc:
		return err
	}
}

func listenTLS(addr string, cfg *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(ln, cfg), nil
}

// defaultRegistryUID identifies the default registry's incarnation: it
// lives as long as the data directory's CA.
func defaultRegistryUID(dir *datadir.Dir) string {
	sum := sha256.Sum256(dir.PKI.CAPEM())
	return "default-" + hex.EncodeToString(sum[:8])
}

// splitLogin splits a login server into host and port.
func splitLogin(login string) (string, int, error) {
	host, port, err := net.SplitHostPort(login)
	if err != nil {
		return "", 0, fmt.Errorf("login server %q: %w", login, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("login server %q: %w", login, err)
	}
	return host, p, nil
}

// registryTransport trusts the system roots and berth's CA, for talking to
// registries (imports).
func registryTransport(dir *datadir.Dir) *http.Transport {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	pool.AppendCertsFromPEM(dir.PKI.CAPEM())
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	t.ResponseHeaderTimeout = time.Minute
	return t
}

// aliases lists the host:port forms a loopback address is reachable by.
func aliases(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{addr}
	}
	out := []string{addr}
	switch host {
	case "127.0.0.1", "localhost", "::1", "", "0.0.0.0", "::":
		out = append(out, "127.0.0.1:"+port, "localhost:"+port, "[::1]:"+port)
	}
	return out
}

// frontDoor routes the main listener: health, token service, then ARM.
type frontDoor struct {
	ready    *atomic.Bool
	identity *identity.Service
	graph    http.Handler // Microsoft Graph subset (/v1.0/…)
	arm      *arm.Server
	terminal http.Handler // exec/attach websockets: given the raw connection
}

func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_berth/health" {
		w.Header().Set("Content-Type", "application/json")
		if !f.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"starting"}`)
			return
		}
		fmt.Fprintln(w, `{"status":"ok"}`)
		return
	}
	if !f.ready.Load() {
		w.Header().Set("Retry-After", "1")
		w.Header().Set("x-ms-error-code", "ServiceUnavailable")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, `{"error":{"code":"ServiceUnavailable","message":"berth is starting or stopping; please retry."}}`)
		return
	}
	if strings.HasPrefix(r.URL.Path, terminal.PathPrefix) {
		f.terminal.ServeHTTP(w, r)
		return
	}
	if identity.Match(r.URL.Path) {
		f.identity.ServeHTTP(w, r)
		return
	}
	if graph.Match(r.URL.Path) {
		f.graph.ServeHTTP(w, r)
		return
	}
	f.arm.ServeHTTP(w, r)
}
