package arm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store/memory"
)

const (
	tenant = "t-1"
	sub    = "s-1"
)

type tokenAuth struct{}

func (tokenAuth) Authenticate(r *http.Request) (Principal, error) {
	if r.Header.Get("Authorization") != "Bearer good" {
		return Principal{}, apierr.New(apierr.Unauthenticated, "InvalidAuthenticationToken", "The access token is invalid.")
	}
	return Principal{TenantID: tenant}, nil
}

func newTestServer(t *testing.T) *httptest.Server {
	st := memory.New()
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	if err := res.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	if err := res.EnsureSubscription(context.Background(), resources.Subscription{ID: sub, TenantID: tenant, DisplayName: "x", State: "Enabled"}); err != nil {
		t.Fatal(err)
	}
	s := &Server{Auth: tokenAuth{}, Resources: res, Operations: ops, Clock: clk,
		RetryAfter: 10 * time.Millisecond, Metadata: func(base string) any { return map[string]string{"resourceManager": base} }}
	s.HandleCore()
	ts := httptest.NewTLSServer(s)
	t.Cleanup(ts.Close)
	return ts
}

func do(t *testing.T, ts *httptest.Server, method, path, body string, auth bool) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if auth {
		req.Header.Set("Authorization", "Bearer good")
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

func TestResourceGroupLifecycle(t *testing.T) {
	ts := newTestServer(t)
	const rg = "/subscriptions/" + sub + "/resourcegroups/My-RG"
	const v = "?api-version=2025-04-01"
	resp, body := do(t, ts, "PUT", rg+v, `{"location":"westeurope","tags":{"a":"b"}}`, true)
	if resp.StatusCode != 201 || body["id"] != "/subscriptions/"+sub+"/resourceGroups/My-RG" || body["type"] != "Microsoft.Resources/resourceGroups" {
		t.Fatalf("create: %d %v", resp.StatusCode, body)
	}
	if resp.Header.Get("x-ms-request-id") == "" {
		t.Error("no x-ms-request-id")
	}
	resp, _ = do(t, ts, "PUT", strings.ToUpper(rg)+v, `{"location":"westeurope"}`, true)
	if resp.StatusCode != 200 {
		t.Fatalf("update via other case: %d", resp.StatusCode)
	}
	resp, body = do(t, ts, "PUT", rg+v, `{"location":"eastus"}`, true)
	if resp.StatusCode != 409 || resp.Header.Get("x-ms-error-code") != "InvalidResourceGroupLocation" {
		t.Fatalf("location change: %d %v", resp.StatusCode, body)
	}
	resp, _ = do(t, ts, "HEAD", rg+v, "", true)
	if resp.StatusCode != 204 {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
	resp, body = do(t, ts, "PATCH", rg+v, `{"tags":{"x":"y"}}`, true)
	if resp.StatusCode != 200 || body["tags"].(map[string]any)["x"] != "y" {
		t.Fatalf("PATCH: %d %v", resp.StatusCode, body)
	}
	resp, body = do(t, ts, "GET", "/subscriptions/"+sub+"/resourceGroups"+v, "", true)
	if resp.StatusCode != 200 || len(body["value"].([]any)) != 1 {
		t.Fatalf("list: %v", body)
	}
	resp, _ = do(t, ts, "DELETE", rg+v, "", true)
	if resp.StatusCode != 202 || resp.Header.Get("Location") == "" || resp.Header.Get("Retry-After-Ms") == "" {
		t.Fatalf("DELETE: %d %v", resp.StatusCode, resp.Header)
	}
	loc := strings.TrimPrefix(resp.Header.Get("Location"), ts.URL)
	for i := 0; ; i++ {
		resp, _ = do(t, ts, "GET", loc, "", true)
		if resp.StatusCode == 200 {
			break
		}
		if resp.StatusCode != 202 || i > 100 {
			t.Fatalf("poll: %d", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, body = do(t, ts, "GET", rg+v, "", true)
	if resp.StatusCode != 404 || resp.Header.Get("x-ms-error-code") != "ResourceGroupNotFound" {
		t.Fatalf("after delete: %d %v", resp.StatusCode, body)
	}
	resp, _ = do(t, ts, "HEAD", rg+v, "", true)
	if resp.StatusCode != 404 {
		t.Fatalf("HEAD after delete: %d", resp.StatusCode)
	}
}

func TestErrors(t *testing.T) {
	ts := newTestServer(t)
	for _, c := range []struct {
		name, method, path, body string
		auth                     bool
		status                   int
		code                     string
	}{
		{"NoAuth", "GET", "/subscriptions/" + sub + "?api-version=2021-01-01", "", false, 401, "InvalidAuthenticationToken"},
		{"NoVersion", "GET", "/subscriptions/" + sub, "", true, 400, "MissingApiVersionParameter"},
		{"BadVersion", "GET", "/subscriptions/" + sub + "?api-version=1999-01-01", "", true, 400, "InvalidApiVersionParameter"},
		{"UnknownSub", "GET", "/subscriptions/nope?api-version=2021-01-01", "", true, 404, "SubscriptionNotFound"},
		{"UnknownPath", "GET", "/nothing/here?api-version=2021-01-01", "", true, 404, "InvalidResourceType"},
		{"BadMethod", "POST", "/subscriptions/" + sub + "/resourcegroups/x?api-version=2021-01-01", "", true, 405, "MethodNotAllowed"},
		{"BadRGName", "PUT", "/subscriptions/" + sub + "/resourcegroups/bad%20name?api-version=2021-01-01", `{"location":"x"}`, true, 400, "InvalidResourceGroup"},
		{"NoLocation", "PUT", "/subscriptions/" + sub + "/resourcegroups/a?api-version=2021-01-01", `{}`, true, 400, "LocationRequired"},
		{"BadJSON", "PUT", "/subscriptions/" + sub + "/resourcegroups/a?api-version=2021-01-01", `{`, true, 400, "InvalidRequestContent"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, ts, c.method, c.path, c.body, c.auth)
			if resp.StatusCode != c.status || resp.Header.Get("x-ms-error-code") != c.code {
				t.Fatalf("%d %s %v", resp.StatusCode, resp.Header.Get("x-ms-error-code"), body)
			}
			e, ok := body["error"].(map[string]any)
			if !ok || e["code"] != c.code || e["message"] == "" {
				t.Fatalf("envelope %v", body)
			}
		})
	}
}

func TestMetadataDoubleSlash(t *testing.T) {
	ts := newTestServer(t)
	resp, body := do(t, ts, "GET", "//metadata/endpoints?api-version=2015-01-01", "", false)
	if resp.StatusCode != 200 || body["resourceManager"] != ts.URL {
		t.Fatalf("%d %v", resp.StatusCode, body)
	}
}

func TestListSubscriptions(t *testing.T) {
	ts := newTestServer(t)
	_, body := do(t, ts, "GET", "/subscriptions?api-version=2022-12-01", "", true)
	v := body["value"].([]any)
	if len(v) != 1 || v[0].(map[string]any)["subscriptionId"] != sub || v[0].(map[string]any)["tenantId"] != tenant {
		t.Fatalf("%v", body)
	}
}
