// Package arch checks berth's architecture rules: every package documents
// itself, and imports point down (wire → service → store/blob/runtime).
package arch

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/berth-dev/berth/"

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
	GoFiles    []string
}

func packages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range packages(t) {
		if len(p.GoFiles) == 0 {
			continue // tests only: documented in their _test files
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}

// forbidden lists, per package prefix, the berth packages it must not
// import: lower layers never import upper ones.
var forbidden = map[string][]string{
	"internal/store":     {"internal/aci", "internal/arm", "internal/registry", "internal/server", "internal/runtime", "internal/identity"},
	"internal/blob":      {"internal/aci", "internal/arm", "internal/registry", "internal/server", "internal/runtime", "internal/identity"},
	"internal/runtime":   {"internal/aci", "internal/arm", "internal/registry", "internal/server", "internal/identity", "internal/resources", "internal/network", "internal/dns"},
	"internal/aci":       {"internal/arm", "internal/server", "internal/registry", "internal/network", "internal/dns"},
	"internal/network":   {"internal/arm", "internal/server", "internal/runtime", "internal/aci", "internal/registry", "internal/identity", "internal/dns"},
	"internal/dns":       {"internal/aci", "internal/arm", "internal/server", "internal/runtime", "internal/network", "internal/registry", "internal/identity", "internal/store", "internal/resources"},
	"internal/resources": {"internal/arm", "internal/server", "internal/aci"},
	"internal/registry":  {"internal/arm", "internal/server", "internal/aci", "internal/identity", "internal/runtime"},
	"internal/identity":  {"internal/arm", "internal/server", "internal/aci", "internal/registry", "internal/runtime"},
	"internal/rbac":      {"internal/arm", "internal/server", "internal/aci", "internal/registry", "internal/registries", "internal/runtime", "internal/identity", "internal/network"},
	"internal/msi":       {"internal/arm", "internal/server", "internal/aci", "internal/registry", "internal/runtime", "internal/graph"},
	"internal/graph":     {"internal/arm", "internal/server", "internal/aci", "internal/registry", "internal/runtime", "internal/msi", "internal/store"},
	"internal/apierr":    {"internal/"},
	"internal/arm":       {"internal/server", "internal/runtime", "internal/store/bolt"},
}

func TestImportsPointDown(t *testing.T) {
	for _, p := range packages(t) {
		rel := strings.TrimPrefix(p.ImportPath, mod)
		for prefix, bad := range forbidden {
			if rel != prefix && !strings.HasPrefix(rel, prefix+"/") {
				continue
			}
			for _, imp := range p.Imports {
				irel, ok := strings.CutPrefix(imp, mod)
				if !ok {
					continue
				}
				for _, b := range bad {
					if irel == b || strings.HasPrefix(irel, strings.TrimSuffix(b, "/")+"/") || (strings.HasSuffix(b, "/") && strings.HasPrefix(irel, b)) {
						if strings.HasPrefix(irel, prefix) {
							continue // its own sub-packages
						}
						t.Errorf("%s imports %s", rel, irel)
					}
				}
			}
		}
	}
}
