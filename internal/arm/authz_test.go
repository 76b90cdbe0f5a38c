package arm

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// scopeAuthz allows one action at one scope and below.
type scopeAuthz struct{ action, scope string }

func (a scopeAuthz) Allowed(_ context.Context, _ Principal, action, scope string) bool {
	s := strings.ToLower(scope) + "/"
	return strings.EqualFold(action, a.action) && strings.HasPrefix(s, strings.ToLower(a.scope)+"/")
}

func (a scopeAuthz) AllowedBelow(_ context.Context, _ Principal, action, scope string) bool {
	s := strings.ToLower(a.scope) + "/"
	return strings.EqualFold(action, a.action) && strings.HasPrefix(s, strings.TrimSuffix(strings.ToLower(scope), "/")+"/")
}

func TestListScope(t *testing.T) {
	for in, want := range map[string]string{
		"/subscriptions":                                "/",
		"/subscriptions/s":                              "/subscriptions/s",
		"/subscriptions/s/resourcegroups":               "/subscriptions/s",
		"/subscriptions/s/providers/Microsoft.X/things": "/subscriptions/s",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.X/things":                                                     "/subscriptions/s/resourceGroups/rg",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.X/things/t/subs":                                              "/subscriptions/s/resourceGroups/rg/providers/Microsoft.X/things/t",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.X/things/t/providers/Microsoft.Authorization/roleAssignments": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.X/things/t",
		"/providers/Microsoft.Authorization/roleAssignments":                                                                  "/",
	} {
		if got := listScope(in); got != want {
			t.Errorf("listScope(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestAuthorizeAtTheChokePoint(t *testing.T) {
	const action = "Microsoft.Test/things/read"
	s := &Server{Auth: tokenAuth{}, Authz: scopeAuthz{action, "/subscriptions/s-1/resourceGroups/rg1"}}
	s.Handle(
		Route{Pattern: "/x/{rest*}/things/{name}", Methods: Ops{"GET": Do(action, func(w http.ResponseWriter, r *Request) error {
			return WriteJSON(w, 200, map[string]string{"rest": r.Param("rest"), "name": r.Param("name")})
		})}},
	)
	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer good")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec
	}
	if rec := get("/x/subscriptions/s-1/resourceGroups/rg1/things/t"); rec.Code != 403 || !strings.Contains(rec.Body.String(), `"AuthorizationFailed"`) ||
		!strings.Contains(rec.Body.String(), "over scope '/x/subscriptions/s-1/resourceGroups/rg1/things/t'") {
		t.Fatalf("outside the scope: %d %s", rec.Code, rec.Body)
	}
	s.Authz = scopeAuthz{action, "/x/subscriptions/s-1"}
	rec := get("/x/subscriptions/s-1/resourceGroups/rg%2F1/things/t")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"rest":"/subscriptions/s-1/resourceGroups/rg/1"`) || !strings.Contains(rec.Body.String(), `"name":"t"`) {
		t.Fatalf("{rest*}: %d %s", rec.Code, rec.Body)
	}
	if rec := get("/x/things/t"); rec.Code != 404 {
		t.Fatalf("{rest*} takes at least one segment: %d %s", rec.Code, rec.Body)
	}
}

func TestListFiltersBelowTheScope(t *testing.T) {
	const action = "Microsoft.Test/things/read"
	s := &Server{Auth: tokenAuth{}, Authz: scopeAuthz{action, "/p/x/rg1"}}
	var listed []string
	s.Handle(Route{Pattern: "/p/x/things", Methods: Ops{"GET": List(action, func(w http.ResponseWriter, r *Request) error {
		listed = nil
		for _, id := range []string{"/p/x/rg1/a", "/p/x/rg10/b"} {
			if r.Allowed(action, id) {
				listed = append(listed, id)
			}
		}
		return WriteJSON(w, 200, listed)
	})}})
	req := httptest.NewRequest("GET", "/p/x/things", nil)
	req.Header.Set("Authorization", "Bearer good")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 200 || len(listed) != 1 || listed[0] != "/p/x/rg1/a" {
		t.Fatalf("list: %d %v", rec.Code, listed)
	}
	s.Authz = scopeAuthz{action, "/q"}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "over scope '/p/x' or the scope is invalid") {
		t.Fatalf("nothing readable below: %d %s (a list is refused over the scope of its items)", rec.Code, rec.Body)
	}
}

func TestHandleRefusesAnOperationWithoutAction(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a route without an action was accepted")
		}
	}()
	(&Server{}).Handle(Route{Pattern: "/a", Methods: Ops{"GET": {Handler: func(http.ResponseWriter, *Request) error { return nil }}}})
}
