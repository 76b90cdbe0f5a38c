package server

import (
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/arm"
)

// actionShape is an RBAC action: Provider.Namespace/type[/type…]/verb.
var actionShape = regexp.MustCompile(`^Microsoft\.[A-Za-z]+(/[A-Za-z]+)+/(read|write|delete|action)$`)

// TestEveryRouteDeclaresAnAction walks berth's whole ARM route table: every
// operation of a non-public route names the RBAC action the choke point
// checks, shaped as Azure's actions are, and public routes are only the
// ones decisions.md leaves unauthenticated.
func TestEveryRouteDeclaresAnAction(t *testing.T) {
	s := &arm.Server{}
	s.HandleCore()
	registerAPIs(s, nil, nil, nil, nil, nil)
	publicOK := map[string]bool{"/metadata/endpoints": true}
	n := 0
	for _, rt := range s.Routes() {
		if rt.Public {
			if !publicOK[rt.Pattern] {
				t.Errorf("%s is public (no authentication, no authorization)", rt.Pattern)
			}
			continue
		}
		for m, op := range rt.Methods {
			n++
			switch {
			case op.Action == arm.AnyPrincipal:
				if !strings.HasPrefix(rt.Pattern, "/providers/") && rt.Pattern != "/subscriptions" {
					t.Errorf("%s %s: only tenant-level lists may be open to any principal", m, rt.Pattern)
				}
			case !actionShape.MatchString(op.Action):
				t.Errorf("%s %s: action %q is not an RBAC action", m, rt.Pattern, op.Action)
			case (m == "GET" || m == "HEAD") && !strings.HasSuffix(op.Action, "/read"):
				t.Errorf("%s %s: a read needs a /read action, has %q", m, rt.Pattern, op.Action)
			case (m == "PUT" || m == "PATCH") && !strings.HasSuffix(op.Action, "/write"):
				t.Errorf("%s %s: a write needs a /write action, has %q", m, rt.Pattern, op.Action)
			case m == "DELETE" && !strings.HasSuffix(op.Action, "/delete"):
				t.Errorf("%s %s: a delete needs a /delete action, has %q", m, rt.Pattern, op.Action)
			}
		}
	}
	if n < 40 {
		t.Fatalf("walked %d operations; the route table looks incomplete", n)
	}
}
