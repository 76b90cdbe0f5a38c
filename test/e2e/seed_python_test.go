package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-dev/berth/internal/testutil/testimage"
)

// seedResult is what private_registry_seed.py's deploy phase reports.
type seedResult struct {
	PEState     string   `json:"pe_state"`
	Connections []string `json:"connections"`
	Group       struct {
		Provisioning   string `json:"provisioning"`
		IP             string `json:"ip"`
		IdentityClient string `json:"identity_client"`
		ExitCode       *int   `json:"exit_code"`
		Logs           string `json:"logs"`
	} `json:"group"`
	NoRole         string   `json:"no_role"`
	NoRoleState    string   `json:"no_role_state"`
	NoRoleEvents   []string `json:"no_role_events"`
	OtherVnet      string   `json:"other_vnet"`
	OtherReachLogs string   `json:"other_reach_logs"`
}

// TestSeedPrivateRegistryWithPython runs the seed's no-password deployment
// (../shared/seeds/004) with Debian's python3-azure against a real berth:
// a pusher principal (berth sp create) holding AcrPush pushes the image; the
// deployer (the well-known principal) locks the Premium registry behind a
// private endpoint, gives a user-assigned identity AcrPull and deploys the
// group into the subnet with the identity as its registry credential; the
// program in the group lists the registry's repositories with a token from
// the metadata endpoint. Without the role, or from another virtual network,
// the pull fails, and the other network cannot reach the registry at all.
func TestSeedPrivateRegistryWithPython(t *testing.T) {
	requirePythonAzure(t)
	b := startBerth(t)
	ctx := ctxT(t, 10*time.Minute)

	// The pusher: a service principal of its own.
	out, err := exec.CommandContext(ctx, binary(t), "sp", "create", "--name", "seed-pusher", "--data-dir", b.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("berth sp create: %v\n%s", err, out)
	}
	var pusher struct{ AppID, Password string }
	if err := json.Unmarshal(out, &pusher); err != nil {
		t.Fatalf("sp create output: %v\n%s", err, out)
	}
	pusherOID := spObjectID(ctx, t, pusher.AppID, b)

	ca, err := os.ReadFile(filepath.Join(b.dataDir, "pki", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	python := func(args ...string) []byte {
		t.Helper()
		cmd := pythonCommand(ctx, b, append([]string{"testdata/python/private_registry_seed.py"}, args...)...)
		cmd.Env = append(cmd.Env, "PUSHER_OBJECT_ID="+pusherOID, "BERTH_CA_PEM="+string(ca),
			"OPEN_IMAGE="+pushTestImage(t, b, "seed/open:v1"))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("python %s: %v\n%s\n%s", args[0], err, out, stderr.String())
		}
		return out
	}

	// Setup: networks, identity, registry, AcrPush for the pusher. The
	// prefixes are random among berth's test ranges, retried if taken.
	var setup map[string]string
	for i := 0; ; i++ {
		a, c := 240+rand.IntN(10), 2*rand.IntN(120)
		main, other := fmt.Sprintf("10.%d.%d.0/23", a, c), fmt.Sprintf("10.%d.%d.0/24", a, c+2)
		cmd := pythonCommand(ctx, b, "testdata/python/private_registry_seed.py", "setup", main, other)
		cmd.Env = append(cmd.Env, "PUSHER_OBJECT_ID="+pusherOID)
		out, err := cmd.CombinedOutput()
		if err != nil && strings.Contains(string(out), "SubnetRangeInUseOnHost") && i < 5 {
			continue
		}
		if err != nil {
			t.Fatalf("python setup: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &setup); err != nil {
			t.Fatalf("setup output: %v\n%s", err, out)
		}
		break
	}

	// The pusher pushes the image (AcrPush, no admin user).
	testimage.Push(t, testimage.Build(t), setup["login"]+"/app:v1",
		&authn.Basic{Username: pusher.AppID, Password: pusher.Password}, b.client.Transport)

	sj, _ := json.Marshal(setup)
	var r seedResult
	raw := python("deploy", string(sj))
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("deploy output: %v\n%s", err, raw)
	}
	t.Logf("seed flow: %+v", r)
	if r.PEState != "Succeeded" || len(r.Connections) != 1 || r.Connections[0] != "Approved" {
		t.Errorf("private endpoint: %s, connections %v", r.PEState, r.Connections)
	}
	g := r.Group
	if g.Provisioning != "Succeeded" || g.ExitCode == nil || *g.ExitCode != 0 || g.IdentityClient != setup["identity_client"] {
		t.Errorf("the seed's group: %+v", g)
	}
	if !strings.Contains(g.Logs, "repositories: app") {
		t.Errorf("the program in the group did not list the registry with its identity's token:\n%s", g.Logs)
	}
	if !strings.Contains(r.NoRole, "InaccessibleImage") || r.NoRoleState != "Failed" {
		t.Errorf("without AcrPull: %s (%s)", r.NoRole, r.NoRoleState)
	}
	if ev := strings.Join(r.NoRoleEvents, "\n"); !strings.Contains(ev, "Warning Failed") {
		t.Errorf("without AcrPull, no Failed event naming the reason:\n%s", ev)
	} else {
		t.Logf("without AcrPull, the container's events:\n%s", ev)
	}
	if !strings.Contains(r.OtherVnet, "InaccessibleImage") {
		t.Errorf("from a virtual network without a private endpoint: %s", r.OtherVnet)
	}
	if !strings.Contains(r.OtherReachLogs, "status 403") {
		t.Errorf("a group on another virtual network reached the registry: %q", r.OtherReachLogs)
	}
}
