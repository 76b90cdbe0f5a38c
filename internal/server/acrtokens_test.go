package server

// ACR tokens end to end on the data plane: registries.Service (scope maps,
// tokens, generateCredentials) behind the server's registryAuth adapter, a
// real registry.Registry on its login server, and real clients (crane, and
// the token endpoint as docker and the SDKs call it).

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	blobmem "github.com/berth-dev/berth/internal/blob/memory"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/registry"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store"
	storemem "github.com/berth-dev/berth/internal/store/memory"
)

// testRegistryHost serves each registry on its login server with the
// server's registryAuth, as registryHost does, on memory stores.
type testRegistryHost struct {
	t     *testing.T
	st    store.Store
	ids   *identity.Service
	key   *rsa.PrivateKey
	svc   *registries.Service
	mu    sync.Mutex
	srv   map[string]*httptest.Server
	trans http.RoundTripper
}

func (h *testRegistryHost) Serve(_ context.Context, r *registries.Registry) error {
	ln, err := net.Listen("tcp", r.LoginServer)
	if err != nil {
		return errors.Join(registries.ErrAddressInUse, err)
	}
	reg, err := registry.New(registry.Config{Name: r.Name, LoginServer: r.LoginServer, ID: r.UID, Blobs: blobmem.New(), Store: h.st,
		Auth: registryAuth{ids: h.ids, svc: h.svc, registry: r.Name}, SigningKey: h.key, KeyID: "k",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		ln.Close()
		return err
	}
	s := httptest.NewUnstartedServer(reg.Handler())
	s.Listener.Close()
	s.Listener = ln
	s.StartTLS()
	h.mu.Lock()
	h.srv[strings.ToLower(r.Name)] = s
	h.trans = s.Client().Transport
	h.mu.Unlock()
	return nil
}

func (h *testRegistryHost) Stop(_ context.Context, name string, _ bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.srv[strings.ToLower(name)]; s != nil {
		s.Close()
		delete(h.srv, strings.ToLower(name))
	}
	return nil
}

func (h *testRegistryHost) Size(context.Context, string) (int64, error) { return 0, nil }

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestACRTokenDataPlane(t *testing.T) {
	ctx := context.Background()
	st := storemem.New()
	clk := clock.Real{}
	ids, err := identity.New(identity.Config{Store: st, KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	host := &testRegistryHost{t: t, st: st, ids: ids, key: key, srv: map[string]*httptest.Server{}}
	svc := &registries.Service{Store: st, Clock: clk, Resources: res, Operations: ops, Host: host, LoginHost: "127.0.0.1", FirstPort: freePort(t)}
	host.svc = svc
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		res.Close()
		svc.Close()
		for name := range host.srv {
			_ = host.Stop(ctx, name, true)
		}
	})
	if err := res.EnsureSubscription(ctx, resources.Subscription{ID: "sub", TenantID: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := res.CreateOrUpdate(ctx, resources.ResourceGroup{Subscription: "sub", Name: "rg", Location: "westus"}); err != nil {
		t.Fatal(err)
	}
	r, _, err := svc.CreateOrUpdate(ctx, &registries.Registry{Subscription: "sub", ResourceGroup: "rg", Name: "tokreg01", Location: "westus",
		SKU: "Basic", AdminUserEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	login := r.LoginServer
	admin := crane.WithAuth(&authn.Basic{Username: r.Name, Password: r.Passwords[0]})
	tr := crane.WithTransport(host.trans)
	for _, repo := range []string{"app", "other"} {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := crane.Push(img, login+"/"+repo+":v1", admin, tr); err != nil {
			t.Fatalf("push %s as admin: %v", repo, err)
		}
	}

	// A token with repositories/app/content/read.
	if _, _, _, err := svc.PutScopeMap(ctx, "sub", "rg", "tokreg01", "appread",
		registries.ScopeMapUpdate{Actions: &[]string{"repositories/app/content/read"}}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := svc.PutToken(ctx, "sub", "rg", "tokreg01", "apptoken",
		registries.TokenUpdate{ScopeMapID: ptrTo(registries.ScopeMapID(r, "appread"))}); err != nil {
		t.Fatal(err)
	}
	_, gen, err := svc.GenerateCredentials(ctx, "sub", "rg", "tokreg01", registries.TokenID(r, "apptoken"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := crane.WithAuth(&authn.Basic{Username: "apptoken", Password: gen[0].Value})

	if _, err := crane.Pull(login+"/app:v1", tok, tr); err != nil {
		t.Fatalf("token pull of app: %v", err)
	}
	img, _ := random.Image(512, 1)
	if err := crane.Push(img, login+"/app:v2", tok, tr); !isStatus(err, http.StatusUnauthorized, http.StatusForbidden) {
		t.Fatalf("token push to app: %v", err)
	}
	if _, err := crane.Pull(login+"/other:v1", tok, tr); !isStatus(err, http.StatusUnauthorized, http.StatusForbidden) {
		t.Fatalf("token pull of other: %v", err)
	}
	if _, err := crane.Catalog(login, tok, tr); !isStatus(err, http.StatusUnauthorized, http.StatusForbidden) {
		t.Fatalf("token catalog: %v", err)
	}
	// The password grant asks for more than the map allows: it gets the
	// intersection.
	client := &http.Client{Transport: host.trans}
	form := url.Values{"grant_type": {"password"}, "service": {login}, "username": {"apptoken"}, "password": {gen[1].Value},
		"scope": {"repository:app:pull,push", "repository:other:pull", "registry:catalog:*"}}
	resp, err := client.PostForm("https://"+login+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("password grant: %d", resp.StatusCode)
	}
	if access := accessClaim(t, body.AccessToken); access != `[{"type":"repository","name":"app","actions":["pull"]}]` {
		t.Fatalf("access %s", access)
	}
	get := func(bearer string) int {
		req, _ := http.NewRequest("GET", "https://"+login+"/v2/app/manifests/v1", nil)
		req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get(body.AccessToken); c != 200 {
		t.Fatalf("bearer pull: %d", c)
	}
	// Changing the scope map revokes the issued token at once; the
	// password logs in again with the new map.
	if _, _, err := svc.PatchScopeMap(ctx, "sub", "rg", "tokreg01", "appread",
		registries.ScopeMapUpdate{Actions: &[]string{"repositories/app/content/read", "repositories/other/content/read"}}); err != nil {
		t.Fatal(err)
	}
	if c := get(body.AccessToken); c != http.StatusUnauthorized {
		t.Fatalf("bearer after a scope map change: %d", c)
	}
	if _, err := crane.Pull(login+"/other:v1", tok, tr); err != nil {
		t.Fatalf("pull of other after the map allows it: %v", err)
	}
	// Disabling and deleting the token lock it out.
	if _, _, err := svc.PatchToken(ctx, "sub", "rg", "tokreg01", "apptoken", registries.TokenUpdate{Status: ptrTo("disabled")}); err != nil {
		t.Fatal(err)
	}
	if _, err := crane.Pull(login+"/app:v1", tok, tr); !isStatus(err, http.StatusUnauthorized) {
		t.Fatalf("disabled token pull: %v", err)
	}
	if err := svc.DeleteToken(ctx, "sub", "rg", "tokreg01", "apptoken"); err != nil {
		t.Fatal(err)
	}
	if _, err := crane.Pull(login+"/app:v1", tok, tr); !isStatus(err, http.StatusUnauthorized) {
		t.Fatalf("deleted token pull: %v", err)
	}
}

func ptrTo[T any](v T) *T { return &v }

func isStatus(err error, codes ...int) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, c := range codes {
		if te.StatusCode == c {
			return true
		}
	}
	return false
}

func accessClaim(t *testing.T, jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Access json.RawMessage `json:"access"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return string(c.Access)
}
