package containerd

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	clog "github.com/containerd/log"
	"github.com/sirupsen/logrus"

	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/eventbus"
)

// Config configures a Runtime. DataDir is required; everything else has a
// default.
type Config struct {
	// DataDir holds everything the runtime keeps on disk (see the package
	// documentation for the layout). Required.
	DataDir string
	// Socket is the address of a containerd to use. Empty: a private
	// containerd under DataDir/containerd, started or adopted by New and
	// stopped by Close.
	Socket string
	// ContainerdBinary starts the private containerd; default "containerd"
	// from PATH.
	ContainerdBinary string
	// Namespace is the containerd namespace of berth's containers; default
	// "berth".
	Namespace string
	// BridgeName is the Linux bridge the groups of the default network
	// attach to (at most 15 characters); default "berth0". It is the
	// network's first bridge: more are added as groups need them (see
	// shards.go).
	BridgeName string
	// Subnet is where the default network's addresses come from, sliced
	// between its bridges; default "10.213.0.0/16".
	Subnet string
	// NetworkPrefix starts the bridge names of networks added with
	// EnsureNetwork (4 characters, [a-z][a-z0-9]{3}); the firewall treats
	// every interface with this prefix as this runtime's. Default "bvn0"
	// with the default BridgeName, else "bv" and two characters derived
	// from BridgeName (so that berths with bridges of their own keep their
	// networks apart).
	NetworkPrefix string
	// CNIPluginDir holds the bridge and host-local plugins;
	// default "/usr/lib/cni".
	CNIPluginDir string
	// RootCAs are trusted for registry TLS in addition to the system roots
	// (berth's own CA).
	RootCAs *x509.CertPool
	// Clock stamps events; default the wall clock. (Container start and
	// finish times are the wall clock's, like containerd's exit times.)
	Clock clock.Clock
	// Logger receives what goes wrong in the background (restarts); default
	// discards.
	Logger *slog.Logger
	// RestartBackOff is the first delay before a restart, doubled for each
	// further restart up to MaxRestartBackOff, and reset after a run of 10
	// minutes; defaults 1 s and 5 min.
	RestartBackOff    time.Duration
	MaxRestartBackOff time.Duration
	// StopTimeout is how long DeleteGroup waits after SIGTERM before SIGKILL;
	// default 5 s.
	StopTimeout time.Duration
	// Forwards are opened inside every group's namespace (see Forward);
	// AddForward and RemoveForward change them at run time.
	Forwards []Forward
	// GPU is what a container asking for more GPUs than the host can give
	// gets: GPUEmulate (the default) or GPURefuse.
	GPU string
	// DefaultDNS is the resolver configuration of groups without their own
	// (GroupSpec.DNS), by the network they join and the host's address on
	// their bridge; nil: HostDNS.
	DefaultDNS func(network string, gateway netip.Addr) runtime.DNSSpec
	// OnBridge is called (with the runtime's network lock held: it must not
	// call back into the runtime) when the default network gets a new
	// bridge, with the host's address on it, before any group joins it.
	OnBridge func(gateway netip.Addr)

	// bridgePorts is the number of groups per bridge of the default
	// network; 0: defaultBridgePorts. Tests set it low.
	bridgePorts int
	// LogDriver is the program containerd's shim runs, as `LogDriver
	// log-driver FILE`, to write a container's log (package logdriver);
	// default this program (os.Executable), whose CLI has that command.
	LogDriver string
}

// backOffReset is how long a run must last for the back-off to start over.
const backOffReset = 10 * time.Minute

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		return errors.New("containerd runtime: DataDir is required")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return err
	}
	c.DataDir = abs
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Namespace, "berth")
	def(&c.BridgeName, "berth0")
	def(&c.Subnet, "10.213.0.0/16")
	if c.BridgeName == "berth0" {
		def(&c.NetworkPrefix, "bvn0")
	}
	def(&c.NetworkPrefix, "bv"+tag(c.BridgeName)[:2])
	def(&c.CNIPluginDir, "/usr/lib/cni")
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.RestartBackOff <= 0 {
		c.RestartBackOff = time.Second
	}
	if c.MaxRestartBackOff <= 0 {
		c.MaxRestartBackOff = 5 * time.Minute
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	def(&c.GPU, GPUEmulate)
	if c.GPU != GPUEmulate && c.GPU != GPURefuse {
		return fmt.Errorf("containerd runtime: GPU mode %q: want %q or %q", c.GPU, GPUEmulate, GPURefuse)
	}
	if c.LogDriver == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("containerd runtime: log driver: %w", err)
		}
		c.LogDriver = exe
	}
	return nil
}

// Runtime runs groups through containerd. Create it with New.
type Runtime struct {
	cfg         Config
	client      *client.Client
	daemon      *daemon      // nil when Config.Socket is set
	subnet      netip.Prefix // Config.Subnet
	snapshotter string
	bus         *eventbus.Bus
	log         *slog.Logger
	clientLog   *clog.Entry // the containerd client's own logging, into log

	// ctx carries the namespace; watchers derive from it, and Close cancels.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	groups map[string]*group
	closed bool

	fwMu     sync.Mutex // serialises changes to forwards
	forwards []Forward

	netMu  sync.Mutex       // guards nets, shards and the firewall
	nets   map[string]*vnet // networks added with EnsureNetwork, by name
	shards []*shard         // the default network's bridges (shards.go)
	// redirects and their listeners on the bridges' gateways (redirect.go)
	redirects   []Redirect
	gwListeners map[gwKey]*gwListener

	authMu      sync.Mutex
	authorizers map[string]docker.Authorizer // by hash of a network and credential set
	pullClients map[string]*http.Client      // by network (callers.go)

	callers callers // connections opened for groups (callers.go)

	gpus GPUInfo // the host's, detected by New
}

var _ runtime.Runtime = (*Runtime)(nil)

// New connects to containerd (starting the private one if Config.Socket is
// empty) and prepares the network configuration. It does not touch existing
// groups: the caller re-adopts them with RecoverGroup.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	for _, d := range []string{"netns", "groups", "cni", "shares", "vnets"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o711); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"bridge", "host-local"} {
		if _, err := os.Stat(filepath.Join(cfg.CNIPluginDir, d)); err != nil {
			return nil, fmt.Errorf("CNI plugin %s: %w (install containernetworking-plugins)", d, err)
		}
	}
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil || !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return nil, fmt.Errorf("subnet %q: want an IPv4 network of at most /30", cfg.Subnet)
	}
	r := &Runtime{
		cfg:       cfg,
		subnet:    subnet.Masked(),
		bus:       eventbus.New(0),
		log:       cfg.Logger,
		clientLog: clientLogger(cfg.Logger),
		groups:    map[string]*group{},
		gpus:      HostGPUs(),
	}
	r.netMu.Lock()
	err = r.initNetworks(ctx)
	r.netMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	address := cfg.Socket
	if address == "" {
		r.daemon, err = startDaemon(ctx, cfg.ContainerdBinary, filepath.Join(cfg.DataDir, "containerd"))
		if err != nil {
			return nil, err
		}
		address = r.daemon.address
	}
	fail := func(err error) (*Runtime, error) {
		if r.client != nil {
			r.client.Close()
		}
		if r.daemon != nil {
			r.daemon.stop(10 * time.Second)
		}
		return nil, err
	}
	r.client, err = client.New(address, client.WithDefaultNamespace(cfg.Namespace), client.WithTimeout(10*time.Second))
	if err != nil {
		return fail(fmt.Errorf("connect to containerd at %s: %w", address, err))
	}
	nsctx := r.nsctx(ctx)
	if _, err := r.client.Version(nsctx); err != nil {
		return fail(fmt.Errorf("containerd at %s: %w", address, err))
	}
	if r.snapshotter, err = pickSnapshotter(nsctx, r.client); err != nil {
		return fail(err)
	}
	r.ctx, r.cancel = context.WithCancel(r.nsctx(context.Background()))
	r.forwards = append([]Forward(nil), cfg.Forwards...)
	r.authorizers = map[string]docker.Authorizer{}
	r.pullClients = map[string]*http.Client{}
	return r, nil
}

// pickSnapshotter returns "overlayfs" if the daemon could load it, else
// "native".
func pickSnapshotter(ctx context.Context, c *client.Client) (string, error) {
	resp, err := c.IntrospectionService().Plugins(ctx, "type==io.containerd.snapshotter.v1")
	if err != nil {
		return "", fmt.Errorf("list containerd snapshotters: %w", err)
	}
	native := false
	for _, p := range resp.Plugins {
		if p.InitErr != nil {
			continue
		}
		switch p.ID {
		case "overlayfs":
			return "overlayfs", nil
		case "native":
			native = true
		}
	}
	if native {
		return "native", nil
	}
	return "", errors.New("containerd has neither the overlayfs nor the native snapshotter")
}

// Listen opens a listener inside group id's network namespace, for example
// on its loopback where only the group's containers reach it (berth's
// registry forwards). The caller owns the listener: it is not closed by
// DeleteGroup and does not survive a host reboot (RecoverGroup makes a new
// namespace). ErrNotFound if the group has no namespace.
func (r *Runtime) Listen(id, network, address string) (net.Listener, error) {
	path := r.netnsPath(id)
	if !validID.MatchString(id) || !netNSMounted(path) {
		return nil, fmt.Errorf("group %q: %w", id, runtime.ErrNotFound)
	}
	return inNetNS(path, func() (net.Listener, error) { return net.Listen(network, address) })
}

// Snapshotter names the containerd snapshotter in use ("overlayfs" or
// "native").
func (r *Runtime) Snapshotter() string { return r.snapshotter }

// Subscribe returns the event stream (see runtime.Runtime).
func (r *Runtime) Subscribe() (<-chan runtime.Event, func()) { return r.bus.Subscribe() }

// DroppedEvents reports how many event deliveries were dropped because a
// subscriber was too slow.
func (r *Runtime) DroppedEvents() uint64 { return r.bus.Dropped() }

// Close stops watching containers, ends subscriptions and, for a private
// containerd, stops the daemon. Containers keep running under their shims.
func (r *Runtime) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	groups := make([]*group, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, g)
	}
	r.mu.Unlock()

	r.cancel()
	r.netMu.Lock()
	r.closeRedirects(func(gwKey) bool { return true })
	r.netMu.Unlock()
	for _, g := range groups {
		g.stopWatchers()
		g.stopForwards()
	}
	r.bus.Close()
	err := r.client.Close()
	if r.daemon != nil {
		err = errors.Join(err, r.daemon.stop(10*time.Second))
	}
	return err
}

// emit publishes an event.
func (r *Runtime) emit(groupID, container string, kind runtime.EventKind, msg string, warning bool, code int) {
	r.bus.Publish(runtime.Event{
		GroupID: groupID, Container: container, Kind: kind, Message: msg,
		Warning: warning, ExitCode: code, Time: r.cfg.Clock.Now(),
	})
}

// nsctx returns ctx with berth's containerd namespace and logger.
func (r *Runtime) nsctx(ctx context.Context) context.Context {
	return clog.WithLogger(namespaces.WithNamespace(ctx, r.cfg.Namespace), r.clientLog)
}

// clientLogger routes the containerd client's logrus output (pull retries
// and the like) to l at debug level instead of the process's stderr.
func clientLogger(l *slog.Logger) *clog.Entry {
	lg := logrus.New()
	lg.Out = slogWriter{l}
	lg.Formatter = &logrus.TextFormatter{DisableTimestamp: true}
	return logrus.NewEntry(lg)
}

type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("containerd client: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// Paths under DataDir.
func (r *Runtime) netnsPath(id string) string { return filepath.Join(r.cfg.DataDir, "netns", id) }
func (r *Runtime) groupDir(id string) string  { return filepath.Join(r.cfg.DataDir, "groups", id) }
func (r *Runtime) logPath(id, cid string) string {
	return filepath.Join(r.groupDir(id), "logs", cid+".log")
}
func (r *Runtime) runcRoot() string { return filepath.Join(r.cfg.DataDir, "containerd", "runc") }
