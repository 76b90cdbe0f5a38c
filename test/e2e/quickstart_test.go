package e2e

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

// TestQuickstartFromEnv runs examples/quickstart as a separate program whose
// only configuration is the environment `berth env` printed (TLS trust via
// SSL_CERT_FILE, credentials via EnvironmentCredential), as in the README.
func TestQuickstartFromEnv(t *testing.T) {
	b := startBerth(t)
	image := pushTestImage(t, b, "quickstart/app:v1")
	bin := t.TempDir() + "/quickstart"
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/berth-dev/berth/examples/quickstart").CombinedOutput(); err != nil {
		t.Fatalf("build quickstart: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-image", image)
	cmd.Env = os.Environ()
	for k, v := range b.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`provisioningState=Succeeded state=Running ip=(\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("quickstart printed %s", out)
	}
	env, err := waitEnv(t, string(m[1]))
	if err != nil || env["GREETING"] != "hello" {
		t.Fatalf("the quickstart's container: %v %v", env, err)
	}
}
