package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/msi"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/rbac"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/runtime/fake"
	"github.com/berth-dev/berth/internal/store/memory"
)

// stack is berth's ARM side in process, with the real token service,
// RBAC, services and route table (registerAPIs), over a fake runtime and
// an in-memory store.
type stack struct {
	ids    *identity.Service
	idClk  *clock.Fake
	roles  *rbac.Service
	arm    *arm.Server
	url    string
	host   string
	client *http.Client
}

const otherSub = "be127000-0000-4000-8000-0000000000ff"

type nullHost struct {
	mu     sync.Mutex
	served map[string]bool
}

func (h *nullHost) Serve(_ context.Context, r *registries.Registry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.served[strings.ToLower(r.Name)] = true
	return nil
}
func (h *nullHost) Stop(context.Context, string, bool) error    { return nil }
func (h *nullHost) Size(context.Context, string) (int64, error) { return 0, nil }

type nullImporter struct{}

func (nullImporter) Import(context.Context, *registries.Registry, registries.ImportRequest) error {
	return nil
}

func newStack(t testing.TB) *stack {
	t.Helper()
	ctx := context.Background()
	st := memory.New()
	clk := clock.Real{}
	idClk := clock.NewFake(time.Now())
	ids, err := identity.New(identity.Config{Store: st, KeyDir: t.TempDir(), Clock: idClk})
	if err != nil {
		t.Fatal(err)
	}
	ops := &operation.Tracker{Store: st, Clock: clk}
	res := &resources.Service{Store: st, Clock: clk, Operations: ops}
	for _, s := range []resources.Subscription{
		{ID: DefaultSubscriptionID, TenantID: identity.DefaultTenantID, DisplayName: "berth", State: "Enabled"},
		{ID: otherSub, TenantID: "be127000-0000-4000-8000-0000000000fe", DisplayName: "elsewhere", State: "Enabled"},
	} {
		if err := res.EnsureSubscription(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	roles := &rbac.Service{Store: st, Clock: clk, Principals: principals{ids}, TenantID: identity.DefaultTenantID,
		DefaultPrincipal: identity.DefaultObjectID, DefaultScope: "/subscriptions/" + DefaultSubscriptionID}
	if err := roles.Start(ctx); err != nil {
		t.Fatal(err)
	}
	regs := &registries.Service{Store: st, Clock: clk, Resources: res, Operations: ops, Host: &nullHost{served: map[string]bool{}},
		Importer: nullImporter{}, LoginHost: "127.0.0.1", FirstPort: 7601}
	if err := regs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	armSrv := &arm.Server{Auth: armAuth{ids}, Authz: armAuthz{roles}, Resources: res, Operations: ops, Clock: clk, RetryAfter: 10 * time.Millisecond}
	armSrv.HandleCore()
	nets := &network.Service{Store: st, Clock: clk, Resources: res, Runtime: &network.Memory{}}
	svc := &aci.Service{Store: st, Runtime: fake.New(fake.Options{}), Resources: res, Operations: ops, Clock: clk, Networks: nets,
		Host: aci.HostCapacity{CPUs: 8, MemoryGB: 16}}
	mis := &msi.Service{Store: st, Clock: clk, Resources: res, Principals: ids}
	registerAPIs(armSrv, svc, regs, nets, mis, roles)
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := nets.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mis.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Start(ctx); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(armSrv)
	t.Cleanup(func() { ts.Close(); svc.Close(); regs.Close(); res.Close() })
	u, _ := url.Parse(ts.URL)
	return &stack{ids: ids, idClk: idClk, roles: roles, arm: armSrv, url: ts.URL, host: u.Host, client: ts.Client()}
}

// token issues an ARM token for the principal with clientID.
func (s *stack) token(t testing.TB, clientID string) string {
	t.Helper()
	tok, err := s.ids.IssueToken(context.Background(), clientID, identity.AudienceARM, s.host)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// principal creates a service principal holding role (a GUID, or "" for
// none) at scope, and returns its ARM token and object id.
func (s *stack) principal(t *testing.T, name, role, scope string) (tok, oid string) {
	t.Helper()
	ctx := context.Background()
	p, _, err := s.ids.CreateServicePrincipal(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		if _, _, err := s.roles.Create(ctx, rbac.Assignment{Name: newGUID(), Scope: scope, RoleDefinitionID: role, PrincipalID: p.ObjectID}, identity.DefaultObjectID); err != nil {
			t.Fatal(err)
		}
	}
	return s.token(t, p.ClientID), p.ObjectID
}

var guidN int

func newGUID() string {
	guidN++
	return strings.Replace("cccccccc-0000-4000-8000-00000000000N", "000N", strings.Repeat("0", 4-len(itoa(guidN)))+itoa(guidN), 1)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

type response struct {
	status int
	code   string
	body   string
}

func (s *stack) do(t testing.TB, method, path, tok string, body any) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, code: resp.Header.Get("x-ms-error-code"), body: string(b)}
}

const (
	subPath   = "/subscriptions/" + DefaultSubscriptionID
	ciVersion = "?api-version=2023-05-01"
)

func groupBody() map[string]any {
	return map[string]any{"location": "westus", "properties": map[string]any{
		"osType": "Linux",
		"containers": []any{map[string]any{"name": "web", "properties": map[string]any{
			"image": "reg/app:v1", "resources": map[string]any{"requests": map[string]any{"cpu": 1, "memoryInGB": 1}}}}},
	}}
}

func (s *stack) waitGroup(t *testing.T, path, tok string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		r := s.do(t, "GET", path+ciVersion, tok, nil)
		if strings.Contains(r.body, `"provisioningState":"Succeeded"`) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never provisioned", path)
}

// TestRolesOnContainerGroups: a Reader cannot PUT a container group (403
// AuthorizationFailed with ARM's message), a Contributor can; a principal
// without any role gets 403 on reads too.
func TestRolesOnContainerGroups(t *testing.T) {
	s := newStack(t)
	owner := s.token(t, identity.DefaultClientID)
	if r := s.do(t, "PUT", subPath+"/resourcegroups/rg?api-version=2021-04-01", owner, map[string]any{"location": "westus"}); r.status != 201 {
		t.Fatalf("rg: %+v", r)
	}
	reader, readerOID := s.principal(t, "reader", rbac.Reader, subPath)
	contributor, _ := s.principal(t, "contributor", rbac.Contributor, subPath+"/resourceGroups/rg")
	nobody, nobodyOID := s.principal(t, "nobody", "", "")
	path := subPath + "/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/cg1"

	r := s.do(t, "PUT", path+ciVersion, reader, groupBody())
	want := "The client '" + readerOID + "' with object id '" + readerOID + "' does not have authorization to perform action 'Microsoft.ContainerInstance/containerGroups/write' over scope '" + path + "' or the scope is invalid. If access was recently granted, please refresh your credentials."
	var env struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal([]byte(r.body), &env)
	if r.status != 403 || r.code != "AuthorizationFailed" || env.Error.Code != "AuthorizationFailed" || env.Error.Message != want {
		t.Fatalf("reader PUT: %+v", r)
	}
	if r := s.do(t, "PUT", path+ciVersion, contributor, groupBody()); r.status != 201 {
		t.Fatalf("contributor PUT: %+v", r)
	}
	s.waitGroup(t, path, contributor)
	if r := s.do(t, "GET", path+ciVersion, reader, nil); r.status != 200 {
		t.Fatalf("reader GET: %+v", r)
	}
	if r := s.do(t, "POST", path+"/restart"+ciVersion, reader, nil); r.status != 403 {
		t.Fatalf("reader restart: %+v", r)
	}
	r = s.do(t, "GET", path+ciVersion, nobody, nil)
	if r.status != 403 || !strings.Contains(r.body, "'"+nobodyOID+"'") {
		t.Fatalf("no role GET: %+v", r)
	}
	for _, p := range []string{subPath + "/resourcegroups?api-version=2021-04-01",
		subPath + "/providers/Microsoft.ContainerInstance/containerGroups" + ciVersion} {
		if r := s.do(t, "GET", p, nobody, nil); r.status != 403 {
			t.Fatalf("no role lists %s: %+v", p, r)
		}
	}
	// The contributor of rg cannot touch another group, nor assign roles.
	if r := s.do(t, "PUT", subPath+"/resourcegroups/rg2?api-version=2021-04-01", contributor, map[string]any{"location": "westus"}); r.status != 403 {
		t.Fatalf("contributor creates rg2: %+v", r)
	}
	if r := s.do(t, "PUT", subPath+"/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/"+newGUID()+"?api-version=2022-04-01", contributor,
		map[string]any{"properties": map[string]any{"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/" + rbac.Owner, "principalId": nobodyOID}}); r.status != 403 {
		t.Fatalf("contributor assigns: %+v", r)
	}
}

// TestListsKeepWhatTheCallerMayRead: a principal with a role on one
// resource group sees only that group's resources in subscription-wide
// lists, and that group alone among the resource groups; the subscription
// shows in its subscription list.
func TestListsKeepWhatTheCallerMayRead(t *testing.T) {
	s := newStack(t)
	owner := s.token(t, identity.DefaultClientID)
	for _, rg := range []string{"rg1", "rg2"} {
		if r := s.do(t, "PUT", subPath+"/resourcegroups/"+rg+"?api-version=2021-04-01", owner, map[string]any{"location": "westus"}); r.status != 201 {
			t.Fatalf("%s: %+v", rg, r)
		}
		base := subPath + "/resourceGroups/" + rg + "/providers/"
		cg := base + "Microsoft.ContainerInstance/containerGroups/cg-" + rg
		if r := s.do(t, "PUT", cg+ciVersion, owner, groupBody()); r.status != 201 {
			t.Fatalf("group: %+v", r)
		}
		s.waitGroup(t, cg, owner)
		if r := s.do(t, "PUT", base+"Microsoft.ContainerInstance/containerGroupProfiles/prof-"+rg+"?api-version=2025-09-01", owner, groupBody()); r.status >= 300 {
			t.Fatalf("profile: %+v", r)
		}
		if r := s.do(t, "PUT", base+"Microsoft.ContainerRegistry/registries/reg"+rg+"?api-version=2023-07-01", owner,
			map[string]any{"location": "westus", "sku": map[string]any{"name": "Basic"}}); r.status >= 300 {
			t.Fatalf("registry: %+v", r)
		}
		if r := s.do(t, "PUT", base+"Microsoft.Network/virtualNetworks/vnet-"+rg+"?api-version=2024-05-01", owner,
			map[string]any{"location": "westus", "properties": map[string]any{"addressSpace": map[string]any{"addressPrefixes": []string{"10." + map[string]string{"rg1": "71", "rg2": "72"}[rg] + ".0.0/16"}}}}); r.status >= 300 {
			t.Fatalf("vnet: %+v", r)
		}
		if r := s.do(t, "PUT", base+"Microsoft.Network/networkProfiles/np-"+rg+"?api-version=2024-05-01", owner, map[string]any{"location": "westus"}); r.status >= 300 {
			t.Fatalf("network profile: %+v", r)
		}
	}
	reader, _ := s.principal(t, "rg1 reader", rbac.Reader, subPath+"/resourceGroups/rg1")
	names := func(path, tok string) string {
		t.Helper()
		r := s.do(t, "GET", path, tok, nil)
		if r.status != 200 {
			t.Fatalf("%s: %+v", path, r)
		}
		var out struct {
			Value []struct {
				Name           string `json:"name"`
				SubscriptionID string `json:"subscriptionId"`
			} `json:"value"`
		}
		if err := json.Unmarshal([]byte(r.body), &out); err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, v := range out.Value {
			ns = append(ns, v.Name+v.SubscriptionID)
		}
		sort.Strings(ns)
		return strings.Join(ns, ",")
	}
	for _, c := range []struct{ path, owner, reader string }{
		{subPath + "/resourcegroups?api-version=2021-04-01", "rg1,rg2", "rg1"},
		{subPath + "/providers/Microsoft.ContainerInstance/containerGroups" + ciVersion, "cg-rg1,cg-rg2", "cg-rg1"},
		{subPath + "/providers/Microsoft.ContainerInstance/containerGroupProfiles?api-version=2025-09-01", "prof-rg1,prof-rg2", "prof-rg1"},
		{subPath + "/providers/Microsoft.ContainerRegistry/registries?api-version=2023-07-01", "regrg1,regrg2", "regrg1"},
		{subPath + "/providers/Microsoft.Network/virtualNetworks?api-version=2024-05-01", "vnet-rg1,vnet-rg2", "vnet-rg1"},
		{subPath + "/providers/Microsoft.Network/networkProfiles?api-version=2024-05-01", "np-rg1,np-rg2", "np-rg1"},
		{"/subscriptions?api-version=2022-12-01", DefaultSubscriptionID, DefaultSubscriptionID},
	} {
		if got := names(c.path, owner); got != c.owner {
			t.Errorf("owner lists %s: %s, want %s", c.path, got, c.owner)
		}
		if got := names(c.path, reader); got != c.reader {
			t.Errorf("rg1 reader lists %s: %s, want %s", c.path, got, c.reader)
		}
	}
	if r := s.do(t, "GET", subPath+"/resourceGroups/rg2/providers/Microsoft.ContainerInstance/containerGroups"+ciVersion, reader, nil); r.status != 403 {
		t.Fatalf("rg1 reader lists rg2: %+v", r)
	}
}

// varValue substitutes a route pattern's variables with real ids.
var varValue = map[string]string{
	"subscriptionId": DefaultSubscriptionID, "resourceGroupName": "rg", "containerGroupName": "cg1",
	"containerName": "web", "location": "westus", "operationId": "00000000-0000-0000-0000-000000000001",
	"registryName": "regrg", "vnet": "vnet1", "subnet": "sn1", "profile": "np1",
	"virtualNetworkName": "vnet1", "subnetName": "sn1", "scopeMapName": "_repositories_pull", "tokenName": "tok1",
	"name":                      "id1",
	"containerGroupProfileName": "prof1", "revisionNumber": "1", "roleAssignmentName": "dddddddd-0000-4000-8000-000000000001",
	"connectionName": "pe1.conn", "groupName": "registry", "endpoint": "pe1",
	"roleDefinitionId": rbac.Reader, "scope": subPath + "/resourceGroups/rg",
}

var varRE = regexp.MustCompile(`\{([A-Za-z]+)\*?\}`)

// TestAuthorizationMatrix walks registerAPIs' whole route table and, for
// every operation, asserts the answer for each kind of caller: no token,
// an expired one, one for another audience, one for a subscription of
// another tenant, a forged one (401); Reader, Contributor, Owner of the
// subscription and a principal without a role (403 AuthorizationFailed or
// through to the handler, as the role's actions say).
func TestAuthorizationMatrix(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	owner := s.token(t, identity.DefaultClientID)
	if r := s.do(t, "PUT", subPath+"/resourcegroups/rg?api-version=2021-04-01", owner, map[string]any{"location": "westus"}); r.status != 201 {
		t.Fatalf("rg: %+v", r)
	}
	reader, _ := s.principal(t, "reader", rbac.Reader, subPath)
	contributor, _ := s.principal(t, "contributor", rbac.Contributor, subPath)
	owner2, _ := s.principal(t, "owner", rbac.Owner, subPath)
	norole, _ := s.principal(t, "norole", "", "")

	s.idClk.Advance(-3 * time.Hour)
	expired := s.token(t, identity.DefaultClientID)
	s.idClk.Advance(3 * time.Hour)
	audience, err := s.ids.IssueToken(ctx, identity.DefaultClientID, identity.AudienceContainer, s.host)
	if err != nil {
		t.Fatal(err)
	}
	otherIDs, err := identity.New(identity.Config{Store: memory.New(), KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := otherIDs.IssueToken(ctx, identity.DefaultClientID, identity.AudienceARM, s.host)
	if err != nil {
		t.Fatal(err)
	}

	type caller struct {
		name, tok string
		may       func(action string) bool // nil: 401
	}
	isAuthzWrite := func(a string) bool {
		l := strings.ToLower(a)
		return strings.HasPrefix(l, "microsoft.authorization/") && (strings.HasSuffix(l, "/write") || strings.HasSuffix(l, "/delete"))
	}
	callers := []caller{
		{"no token", "", nil},
		{"expired", expired, nil},
		{"wrong audience", audience, nil},
		{"forged", forged, nil},
		{"reader", reader, func(a string) bool { return strings.HasSuffix(strings.ToLower(a), "/read") }},
		{"contributor", contributor, func(a string) bool { return !isAuthzWrite(a) }},
		{"owner", owner2, func(string) bool { return true }},
		{"no role", norole, func(string) bool { return false }},
	}
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	n := 0
	for _, c := range callers {
		for _, m := range methods {
			for _, rt := range s.arm.Routes() {
				op, ok := rt.Methods[m]
				if !ok || rt.Public {
					continue
				}
				path := varRE.ReplaceAllStringFunc(rt.Pattern, func(v string) string {
					name := varRE.FindStringSubmatch(v)[1]
					val, ok := varValue[name]
					if !ok {
						t.Fatalf("%s: no value for {%s}", rt.Pattern, name)
					}
					if strings.HasSuffix(v, "*}") {
						return strings.TrimPrefix(val, "/")
					}
					return val
				})
				q := ""
				if rt.Versions != nil {
					q = "?api-version=" + rt.Versions.List[len(rt.Versions.List)-1]
				}
				var body any
				if m == "PUT" || m == "PATCH" || m == "POST" {
					body = map[string]any{}
				}
				n++
				r := s.do(t, m, path+q, c.tok, body)
				label := c.name + " " + m + " " + rt.Pattern
				inSub := strings.HasPrefix(path, subPath)
				switch {
				case c.may == nil:
					if r.status != 401 {
						t.Errorf("%s: %d %s, want 401", label, r.status, r.code)
					}
				case op.Action == arm.AnyPrincipal:
					if r.status == 401 || r.status == 403 {
						t.Errorf("%s: %d %s, open to every principal", label, r.status, r.code)
					}
				case c.may(op.Action) && (inSub || op.List):
					if r.status == 401 || r.status == 403 || r.status >= 500 {
						t.Errorf("%s (%s): %d %s %s, want through", label, op.Action, r.status, r.code, r.body)
					}
				default:
					if r.status != 403 || (m != "HEAD" && r.code != "AuthorizationFailed") {
						t.Errorf("%s (%s): %d %s, want 403 AuthorizationFailed", label, op.Action, r.status, r.code)
					}
				}
				// The same route in a subscription of another tenant: 401.
				if c.name == "owner" && strings.Contains(path, DefaultSubscriptionID) {
					r := s.do(t, m, strings.ReplaceAll(path, DefaultSubscriptionID, otherSub)+q, c.tok, body)
					if r.status != 401 || (m != "HEAD" && r.code != "InvalidAuthenticationTokenTenant") {
						t.Errorf("other tenant %s %s: %d %s", m, rt.Pattern, r.status, r.code)
					}
				}
			}
		}
	}
	// Subscriptions are listed as the caller may see them: none without a
	// role (az: "No subscriptions found"), not a 403.
	for tok, want := range map[string]int{norole: 0, reader: 1} {
		r := s.do(t, "GET", "/subscriptions?api-version=2022-12-01", tok, nil)
		if got := strings.Count(r.body, `"subscriptionId"`); r.status != 200 || got != want {
			t.Errorf("subscriptions list: %d, %d listed (want %d): %s", r.status, got, want, r.body)
		}
	}
	t.Logf("%d requests", n)
	if n < 300 {
		t.Fatalf("only %d requests: the route table looks incomplete", n)
	}
}

// BenchmarkARMGet: the cost of authorization on a GET through the whole
// ARM front door (token verification, routing, RBAC, handler), with RBAC
// and without (Authz nil, as before issue 7). Compare the two ns/op.
func BenchmarkARMGet(b *testing.B) {
	s := newStack(b)
	owner := s.token(b, identity.DefaultClientID)
	if r := s.do(b, "PUT", subPath+"/resourcegroups/rg?api-version=2021-04-01", owner, map[string]any{"location": "westus"}); r.status != 201 {
		b.Fatalf("rg: %+v", r)
	}
	authz := s.arm.Authz
	for _, c := range []struct {
		name  string
		authz arm.Authorizer
	}{{"rbac", authz}, {"none", nil}} {
		b.Run(c.name, func(b *testing.B) {
			s.arm.Authz = c.authz
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if r := s.do(b, "GET", subPath+"/resourcegroups/rg?api-version=2021-04-01", owner, nil); r.status != 200 {
						b.Fatalf("%+v", r)
					}
				}
			})
		})
	}
}
