package registry

// The OCI distribution-spec conformance runner, built from the module proxy
// and run against the registry on its product stores over TLS with auth.

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// conformanceModule is the runner's module at a version the proxy serves
// (../shared/reference/clients.md §7b).
const conformanceModule = "github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111"

// buildConformance downloads and builds the runner, returning its path.
func buildConformance(t *testing.T) string {
	t.Helper()
	gocmd := filepath.Join(goRoot(t), "bin", "go")
	out, err := exec.Command(gocmd, "mod", "download", "-json", conformanceModule).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", conformanceModule, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %s %v", out, err)
	}
	bin := filepath.Join(t.TempDir(), "conformance")
	cmd := exec.Command(gocmd, "build", "-o", bin, ".")
	cmd.Dir = mod.Dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the conformance runner: %v\n%s", err, out)
	}
	return bin
}

func goRoot(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// junitSuites is the part of the runner's junit.xml the test reads.
type junitSuites struct {
	Tests    int `xml:"tests,attr"`
	Errors   int `xml:"errors,attr"`
	Failures int `xml:"failures,attr"`
	Skipped  int `xml:"skipped,attr"`
	Disabled int `xml:"disabled,attr"`
	Suites   []struct {
		Cases []struct {
			Name      string `xml:"name,attr"`
			Status    string `xml:"status,attr"`
			SystemOut string `xml:"system-out"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func TestOCIConformance(t *testing.T) {
	t.Parallel()
	bin := buildConformance(t)
	for _, version := range []string{"1.1", "dev"} {
		t.Run(version, func(t *testing.T) {
			e := newEnv(t, realStores(t))
			results := t.TempDir()
			// The runner verifies TLS with the system roots (it has no working
			// OCI_TLS=insecure), so it trusts the test server's certificate.
			ca := filepath.Join(results, "ca.pem")
			if err := os.WriteFile(ca, e.caPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin)
			cmd.Dir = results
			cmd.Env = append(os.Environ(),
				"OCI_REGISTRY="+e.host,
				"OCI_TLS=enabled",
				"SSL_CERT_FILE="+ca,
				"OCI_REPO1=conformance/repo1",
				"OCI_REPO2=conformance/repo2",
				"OCI_USERNAME="+testUser,
				"OCI_PASSWORD="+testPassword,
				"OCI_VERSION="+version,
				"OCI_DATA_SHA512=true",
				"OCI_RESULTS_DIR="+results,
			)
			out, runErr := cmd.CombinedOutput()
			b, err := os.ReadFile(filepath.Join(results, "junit.xml"))
			if err != nil {
				t.Fatalf("runner wrote no junit.xml (%v): %v\n%s", runErr, err, out)
			}
			var js junitSuites
			if err := xml.Unmarshal(b, &js); err != nil {
				t.Fatal(err)
			}
			passed := 0
			for _, s := range js.Suites {
				for _, c := range s.Cases {
					switch c.Status {
					case "passed":
						passed++
					case "skipped":
						t.Logf("skipped: %s %s", c.Name, c.SystemOut)
					default:
						t.Errorf("%s: %s\n%s", c.Name, c.Status, c.SystemOut)
					}
				}
			}
			t.Logf("conformance %s: %d tests, %d passed, %d failures, %d errors, %d skipped, %d disabled",
				version, js.Tests, passed, js.Failures, js.Errors, js.Skipped, js.Disabled)
			if js.Failures+js.Errors > 0 || runErr != nil || passed == 0 {
				t.Errorf("runner: %v, %d failures, %d errors", runErr, js.Failures, js.Errors)
			}
		})
	}
}
