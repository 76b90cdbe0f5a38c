package cli

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnvPrintsExports(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	if code := Main([]string{"env", "--data-dir", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		kv, ok := strings.CutPrefix(line, "export ")
		if !ok {
			t.Fatalf("not an export: %q", line)
		}
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	want := map[string]string{
		"AZURE_TENANT_ID":       "be127000-0000-4000-8000-000000000001",
		"AZURE_SUBSCRIPTION_ID": "be127000-0000-4000-8000-000000000002",
		"AZURE_CLIENT_ID":       "be127000-0000-4000-8000-000000000003",
		"AZURE_AUTHORITY_HOST":  "https://127.0.0.1:7443/",
		"BERTH_ENDPOINT":        "https://127.0.0.1:7443",
		"BERTH_REGISTRY":        "127.0.0.1:7444",
		"SSL_CERT_FILE":         filepath.Join(dir, "ca-bundle.pem"),
		"REQUESTS_CA_BUNDLE":    filepath.Join(dir, "ca-bundle.pem"),
		"NODE_EXTRA_CA_CERTS":   filepath.Join(dir, "pki", "ca.pem"),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if got["AZURE_CLIENT_SECRET"] == "" {
		t.Error("no AZURE_CLIENT_SECRET")
	}
}

func TestUsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main(nil, &out, &errb); code != 2 {
		t.Fatalf("no args: exit %d", code)
	}
	if code := Main([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: exit %d %s", code, errb.String())
	}
	if code := Main([]string{"serve", "--log-level", "loud"}, &out, &errb); code != 1 {
		t.Fatalf("bad log level: exit %d", code)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"abc": "abc", "a b": "'a b'", "it's": `'it'\''s'`, "": "''"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
