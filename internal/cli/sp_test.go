package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/berth-dev/berth/internal/datadir"
	"github.com/berth-dev/berth/internal/graph"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/store/memory"
)

// graphServer serves berth's token service and Graph subset over TLS with
// the data directory's certificate, as `berth serve` does.
func graphServer(t *testing.T, dir string) (*identity.Service, string, *http.Client) {
	t.Helper()
	d, err := datadir.Open(dir, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.New(identity.Config{Store: memory.New(), KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	g := &graph.Handler{IDs: ids}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if graph.Match(r.URL.Path) {
			g.ServeHTTP(w, r)
			return
		}
		ids.ServeHTTP(w, r)
	})}
	go srv.Serve(tls.NewListener(ln, d.PKI.TLSConfig()))
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: d.PKI.CertPool()}}}
	return ids, "https://" + ln.Addr().String(), client
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestSPCreateListDelete: `berth sp create` prints az's create-for-rbac
// shape; the new secret gets an ARM token through azidentity's
// ClientSecretCredential; `berth sp list` shows it; `berth sp delete`
// revokes its tokens at once and its secret stops working.
func TestSPCreateListDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ids, base, client := graphServer(t, dir)
	flags := []string{"--data-dir", dir, "--endpoint", base}

	stdout, stderr, code := run(t, append([]string{"sp", "create", "--name", "ci-deployer"}, flags...)...)
	if code != 0 {
		t.Fatalf("sp create: exit %d: %s", code, stderr)
	}
	var sp struct{ AppID, DisplayName, Password, Tenant string }
	if err := json.Unmarshal([]byte(stdout), &sp); err != nil {
		t.Fatalf("sp create output %q: %v", stdout, err)
	}
	if sp.DisplayName != "ci-deployer" || sp.Tenant != identity.DefaultTenantID || sp.AppID == "" || len(sp.Password) < 30 {
		t.Fatalf("sp create printed %+v", sp)
	}

	cfg := cloud.Configuration{ActiveDirectoryAuthorityHost: base + "/"}
	cred, err := azidentity.NewClientSecretCredential(sp.Tenant, sp.AppID, sp.Password, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{Cloud: cfg, Transport: client}, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := ids.Verify(tok.Token, identity.AudienceARMAlt)
	if err != nil || claims.AppID != sp.AppID {
		t.Fatalf("token of the new principal: %+v %v", claims, err)
	}

	stdout, stderr, code = run(t, append([]string{"sp", "list"}, flags...)...)
	if code != 0 {
		t.Fatalf("sp list: exit %d: %s", code, stderr)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(stdout), &list); err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, o := range list {
		found[o["appId"].(string)] = o["id"].(string)
	}
	if found[sp.AppID] != claims.ObjectID || found[identity.DefaultClientID] != identity.DefaultObjectID {
		t.Fatalf("sp list: %v", found)
	}
	if strings.Contains(stdout, sp.Password) {
		t.Fatal("sp list shows the secret")
	}

	if _, stderr, code = run(t, append(append([]string{"sp", "delete"}, flags...), sp.AppID)...); code != 0 {
		t.Fatalf("sp delete: exit %d: %s", code, stderr)
	}
	if _, err := ids.Verify(tok.Token, identity.AudienceARMAlt); !errors.Is(err, identity.ErrRevoked) {
		t.Fatalf("token after delete: %v, want ErrRevoked", err)
	}
	if _, err := ids.CheckClientSecret(context.Background(), sp.AppID, sp.Password); !errors.Is(err, identity.ErrUnknownClient) {
		t.Fatalf("secret after delete: %v", err)
	}
	// Deleting again, or the default principal, fails with Graph's error.
	if _, stderr, code = run(t, append(append([]string{"sp", "delete"}, flags...), sp.AppID)...); code != 1 || !strings.Contains(stderr, "Request_ResourceNotFound") {
		t.Fatalf("second delete: exit %d: %s", code, stderr)
	}
	if _, stderr, code = run(t, append(append([]string{"sp", "delete"}, flags...), identity.DefaultClientID)...); code != 1 || !strings.Contains(stderr, "Authorization_RequestDenied") {
		t.Fatalf("deleting the default principal: exit %d: %s", code, stderr)
	}
	if !ids.Live(identity.DefaultObjectID) {
		t.Fatal("the default principal is gone")
	}
}

func TestSPUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if _, _, code := run(t, "sp"); code != 1 {
		t.Fatalf("sp without subcommand: exit %d", code)
	}
	if _, stderr, code := run(t, "sp", "frob", "--data-dir", dir); code != 1 || !strings.Contains(stderr, "unknown subcommand") {
		t.Fatalf("unknown subcommand: exit %d %s", code, stderr)
	}
	if _, stderr, code := run(t, "sp", "delete", "--data-dir", dir); code != 1 || !strings.Contains(stderr, "one APP_ID") {
		t.Fatalf("delete without id: exit %d %s", code, stderr)
	}
	// No berth running at the endpoint: a clear error.
	if _, stderr, code := run(t, "sp", "list", "--data-dir", dir, "--endpoint", "https://127.0.0.1:1"); code != 1 || !strings.Contains(stderr, "is berth running") {
		t.Fatalf("no server: exit %d %s", code, stderr)
	}
}
