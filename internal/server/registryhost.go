package server

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	blobfs "github.com/berth-dev/berth/internal/blob/fs"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/datadir"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/rbac"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/registry"
	"github.com/berth-dev/berth/internal/runtime/containerd"
	"github.com/berth-dev/berth/internal/store"
)

// registryHost serves each registry's data plane on its own TLS listener
// (its login server, a loopback port) and forwards that login server into
// every container group's namespace. It implements registries.Host.
type registryHost struct {
	dir   *datadir.Dir
	tls   *tls.Config
	store store.Store
	ids   *identity.Service
	roles *rbac.Service // registry actions from role assignments
	// defaultScope is the default registry's RBAC scope (it is not an ARM
	// resource): the default subscription.
	defaultScope string
	key          *rsa.PrivateKey
	clock        clock.Clock
	log          *slog.Logger
	rt           *containerd.Runtime
	svc          *registries.Service // admin users, anonymous pull; nil for the default registry only
	errc         chan<- error
	// trusted marks importImage's connections (firewall.go).
	trusted *trustedConns

	mu     sync.Mutex
	served map[string]*servedRegistry // by lower-case name
}

type servedRegistry struct {
	login  string
	srv    *http.Server
	stopGC func() // stops garbage collection and waits for a pass to end
}

// Garbage collection of unreferenced blobs and abandoned uploads.
const (
	gcInterval = 10 * time.Minute
	gcGrace    = time.Hour
)

var _ registries.Host = (*registryHost)(nil)

func key0(name string) string { return strings.ToLower(name) }

// Serve implements registries.Host.
func (h *registryHost) Serve(ctx context.Context, r *registries.Registry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.served[key0(r.Name)]; s != nil {
		return fmt.Errorf("registry %s is served already on %s: %w", r.Name, s.login, registries.ErrAddressInUse)
	}
	login := r.LoginServer
	ln, err := net.Listen("tcp", login)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("registry %s: login server %s: %w", r.Name, login, registries.ErrAddressInUse)
	}
	if err != nil {
		return fmt.Errorf("registry %s: login server %s: %w", r.Name, login, err)
	}
	blobs, err := blobfs.New(h.dir.RegistryDir(r.Name))
	if err != nil {
		ln.Close()
		return err
	}
	name := r.Name
	cfg := registry.Config{
		Name: name, LoginServer: login, Blobs: blobs, Store: h.store,
		Auth:       registryAuth{ids: h.ids, roles: h.roles, svc: h.svc, registry: name, defaultScope: h.defaultScope},
		ID:         r.UID,
		SigningKey: h.key, KeyID: "berth-registry", Clock: h.clock, Logger: h.log.With("registry", name),
	}
	if h.svc != nil {
		svc := h.svc
		cfg.AnonymousPull = func() bool { return svc.AnonymousPull(name) }
	}
	reg, err := registry.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: registry.HTTPSOnly(login, h.firewall(name, h.svc, reg.Handler())), ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.Serve(registry.Listen(ln, h.tls)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case h.errc <- fmt.Errorf("registry %s: %w", name, err):
			default:
			}
		}
	}()
	if h.rt != nil {
		if err := h.rt.AddForward(containerd.Forward{Listen: login, Target: login}); err != nil {
			h.log.Warn("forward registry into groups", "registry", name, "err", err)
		}
	}
	stopGC := reg.StartGC(gcInterval, gcGrace)
	h.served[key0(name)] = &servedRegistry{login: login, srv: srv, stopGC: stopGC}
	return nil
}

// Stop implements registries.Host.
func (h *registryHost) Stop(ctx context.Context, name string, purge bool) error {
	h.mu.Lock()
	s := h.served[key0(name)]
	delete(h.served, key0(name))
	h.mu.Unlock()
	if s != nil {
		s.stopGC()
		if h.rt != nil {
			h.rt.RemoveForward(s.login)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := s.srv.Shutdown(sctx); err != nil {
			_ = s.srv.Close() // requests still running are cut off
		}
		cancel()
	}
	if purge {
		if err := registry.Purge(ctx, h.store, name); err != nil {
			return err
		}
		return os.RemoveAll(h.dir.RegistryDir(name))
	}
	return nil
}

// serves reports whether login is the login server of a registry berth
// serves.
func (h *registryHost) serves(login string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.served {
		if strings.EqualFold(s.login, login) {
			return true
		}
	}
	return false
}

// Size implements registries.Host: the bytes under the registry's content
// directory.
func (h *registryHost) Size(ctx context.Context, name string) (int64, error) {
	var n int64
	err := filepath.WalkDir(h.dir.RegistryDir(name), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// Close stops serving every registry (content stays).
func (h *registryHost) Close() {
	h.mu.Lock()
	names := make([]string, 0, len(h.served))
	for n := range h.served {
		names = append(names, n)
	}
	h.mu.Unlock()
	for _, n := range names {
		_ = h.Stop(context.Background(), n, false)
	}
}
