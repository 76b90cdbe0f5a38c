package containerd

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/distribution/reference"

	"github.com/berth-dev/berth/internal/runtime"
)

// pullImage pulls ref (unless it is a digest already present and unpacked)
// with the group's credentials, emitting Pulling and then Pulled or Failed.
// Errors are *runtime.ImageError.
func (r *Runtime) pullImage(ctx context.Context, spec runtime.GroupSpec, container, ref string) (client.Image, error) {
	r.emit(spec.ID, container, runtime.EventPulling, fmt.Sprintf("pulling image %q", ref), false, 0)
	img, err := r.pull(ctx, ref, spec)
	if err != nil {
		r.emit(spec.ID, container, runtime.EventFailed, fmt.Sprintf("Failed to pull image %q: %v", ref, err), true, 0)
		return nil, &runtime.ImageError{Image: ref, Err: err}
	}
	r.emit(spec.ID, container, runtime.EventPulled, fmt.Sprintf("Successfully pulled image %q", ref), false, 0)
	return img, nil
}

func (r *Runtime) pull(ctx context.Context, ref string, spec runtime.GroupSpec) (client.Image, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid reference: %w", err)
	}
	name := named.String()
	if _, byDigest := named.(reference.Digested); byDigest {
		// Content-addressed and already here: no registry round trip.
		if img, err := r.client.GetImage(ctx, name); err == nil {
			if ok, err := img.IsUnpacked(ctx, r.snapshotter); err == nil && ok {
				return img, nil
			}
		}
	}
	creds, err := pullCredentials(ctx, spec, reference.Domain(named))
	if err != nil {
		return nil, err
	}
	// By tag, resolving is a manifest request. When the image of that name
	// is already that digest and unpacked, it is used as it is: no content
	// walk, lease or image write in containerd. Otherwise pull: layers
	// already in the content store are not fetched again and unpacked layers
	// not unpacked again.
	res := r.resolver(creds, spec.Network)
	if img, err := r.client.GetImage(ctx, name); err == nil {
		if _, desc, err := res.Resolve(ctx, name); err == nil && desc.Digest == img.Target().Digest {
			if ok, err := img.IsUnpacked(ctx, r.snapshotter); err == nil && ok {
				return img, nil
			}
		}
	}
	return r.client.Pull(ctx, name,
		client.WithResolver(res),
		client.WithPullUnpack,
		client.WithPullSnapshotter(r.snapshotter))
}

// pullCredentials returns the credentials for a pull from host: the one
// spec.ResolveCredential gives (asked at every pull, so that tokens it
// hands out are fresh), ahead of spec.Credentials.
func pullCredentials(ctx context.Context, spec runtime.GroupSpec, host string) ([]runtime.RegistryCredential, error) {
	if spec.ResolveCredential == nil {
		return spec.Credentials, nil
	}
	cred, ok, err := spec.ResolveCredential(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("credential for %s: %w", host, err)
	}
	if !ok {
		return spec.Credentials, nil
	}
	if cred.Server == "" {
		cred.Server = host
	}
	return append([]runtime.RegistryCredential{cred}, spec.Credentials...), nil
}

// dockerHub are the names users give Docker Hub's registry; the resolver
// talks to registry-1.docker.io.
var dockerHub = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true, "registry.hub.docker.com": true}

// sameRegistry reports whether a credential's server names host.
func sameRegistry(server, host string) bool {
	server = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://"), "/"))
	host = strings.ToLower(host)
	return server == host || (dockerHub[server] && dockerHub[host])
}

// resolver returns a docker resolver answering registry challenges (Basic, or
// Bearer through the token endpoint) with creds matched by registry host.
// Its connections count as network's (the pulling group's network; see
// Caller): a registry decides by the group's network, not the host's.
func (r *Runtime) resolver(creds []runtime.RegistryCredential, network string) remotes.Resolver {
	hc := r.pullClient(network)
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithClient(hc),
			docker.WithAuthorizer(r.authorizer(creds, network, hc))),
	})
}

// authorizer returns the authorizer for a set of credentials, shared by
// pulls with the same credentials so that registry tokens are reused until
// they expire instead of fetched for every pull.
func (r *Runtime) authorizer(creds []runtime.RegistryCredential, network string, hc *http.Client) docker.Authorizer {
	h := sha256.New()
	fmt.Fprintf(h, "%q\n", network)
	for _, c := range creds {
		fmt.Fprintf(h, "%q %q %q\n", c.Server, c.Username, c.Password)
	}
	key := string(h.Sum(nil))
	r.authMu.Lock()
	defer r.authMu.Unlock()
	if a, ok := r.authorizers[key]; ok {
		return a
	}
	if len(r.authorizers) >= 128 {
		clear(r.authorizers)
	}
	creds = slices.Clone(creds)
	a := docker.NewDockerAuthorizer(
		docker.WithAuthClient(hc),
		docker.WithAuthCreds(func(host string) (string, string, error) {
			for _, c := range creds {
				if sameRegistry(c.Server, host) {
					return c.Username, c.Password, nil
				}
			}
			return "", "", nil
		}))
	r.authorizers[key] = a
	return a
}

// dialFunc opens a connection with d (registryClient's dialer).
type dialFunc func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error)

func plainDial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	return d.DialContext(ctx, network, addr)
}

// registryClient returns the HTTP client for registries: it trusts the
// system roots and, if extra is set, extra as well. dial (nil: a plain
// dial) opens its connections.
func registryClient(extra *x509.CertPool, dial dialFunc) *http.Client {
	t := docker.DefaultHTTPTransport(nil)
	// A registry that accepts a connection and then says nothing must fail
	// the pull, not hang it.
	t.ResponseHeaderTimeout = time.Minute
	if dial == nil {
		dial = plainDial
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dial(ctx, dialer, network, addr)
	}
	if extra != nil {
		system, err := x509.SystemCertPool()
		if err != nil {
			system = x509.NewCertPool()
		}
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			conn, err := dial(ctx, dialer, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(conn, &tls.Config{
				ServerName: host,
				NextProtos: []string{"http/1.1"},
				// Not skipped: VerifyConnection verifies, once per pool,
				// since x509 pools cannot be merged.
				InsecureSkipVerify: true,
				VerifyConnection:   verifyWithPools(host, extra, system),
			})
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, err
			}
			return tc, nil
		}
	}
	return &http.Client{Transport: t}
}

// verifyWithPools verifies a server's chain for host against each pool in
// turn; the first pool's error is reported.
func verifyWithPools(host string, pools ...*x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: server sent no certificate")
		}
		opts := x509.VerifyOptions{DNSName: host, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		var first error
		for _, p := range pools {
			opts.Roots = p
			_, err := cs.PeerCertificates[0].Verify(opts)
			if err == nil {
				return nil
			}
			if first == nil {
				first = err
			}
		}
		return first
	}
}
