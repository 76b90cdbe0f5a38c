package e2e

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/containers/azcontainerregistry"
)

// TestAzureContainerRegistrySDK drives berth's default registry with the
// azcontainerregistry SDK and an Entra token from berth's token service
// (challenge → /oauth2/exchange → /oauth2/token), as against ACR.
func TestAzureContainerRegistrySDK(t *testing.T) {
	b := startBerth(t)
	ctx := ctxT(t, 5*time.Minute)
	pushTestImage(t, b, "sdk/app:v1")
	cfg := cloud.Configuration{
		ActiveDirectoryAuthorityHost: b.env["AZURE_AUTHORITY_HOST"],
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			azcontainerregistry.ServiceName: {Audience: "https://containerregistry.azure.net"},
		},
	}
	cred, err := azidentity.NewClientSecretCredential(b.env["AZURE_TENANT_ID"], b.env["AZURE_CLIENT_ID"], b.env["AZURE_CLIENT_SECRET"],
		&azidentity.ClientSecretCredentialOptions{ClientOptions: azcore.ClientOptions{Cloud: cfg, Transport: b.client}, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "https://" + b.env["BERTH_REGISTRY"]
	c, err := azcontainerregistry.NewClient(endpoint, cred, &azcontainerregistry.ClientOptions{ClientOptions: policy.ClientOptions{Cloud: cfg, Transport: b.client}})
	if err != nil {
		t.Fatal(err)
	}
	var repos []string
	for pager := c.NewListRepositoriesPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list repositories: %v", err)
		}
		for _, r := range page.Repositories.Names {
			repos = append(repos, *r)
		}
	}
	if strings.Join(repos, ",") != "sdk/app" {
		t.Fatalf("repositories = %v", repos)
	}
	tag, err := c.GetTagProperties(ctx, "sdk/app", "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	digest := *tag.Tag.Digest
	if _, err := c.UpdateManifestProperties(ctx, "sdk/app", digest, &azcontainerregistry.ClientUpdateManifestPropertiesOptions{
		Value: &azcontainerregistry.ManifestWriteableProperties{CanDelete: to.Ptr(false)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteManifest(ctx, "sdk/app", digest, nil); err == nil {
		t.Fatal("deleted a manifest with deleteEnabled=false")
	}
	m, err := c.GetManifest(ctx, "sdk/app", "v1", &azcontainerregistry.ClientGetManifestOptions{Accept: to.Ptr(string(azcontainerregistry.ContentTypeApplicationVndOciImageManifestV1JSON))})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(m.ManifestData)
	if err != nil || !bytes.Contains(body, []byte("layers")) {
		t.Fatalf("manifest: %v %s", err, body)
	}
}

var (
	cliOnce sync.Once
	cliDir  string
	cliErr  error
)

// clis installs the pinned crane and oras command lines once per run.
func clis(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		cliDir, cliErr = os.MkdirTemp("", "berth-e2e-clis")
		if cliErr != nil {
			return
		}
		for _, m := range []string{"github.com/google/go-containerregistry/cmd/crane@v0.22.1", "oras.land/oras/cmd/oras@v1.3.6"} {
			cmd := exec.Command("go", "install", m)
			cmd.Env = append(os.Environ(), "GOBIN="+cliDir, "GOFLAGS=-mod=mod")
			cmd.Dir = cliDir
			if out, err := cmd.CombinedOutput(); err != nil {
				cliErr = err
				t.Logf("go install %s: %s", m, out)
				return
			}
		}
	})
	if cliErr != nil {
		t.Fatalf("installing registry CLIs: %v", cliErr)
	}
	return cliDir
}

// TestRegistryCLIs pushes and pulls with crane, oras and skopeo against the
// berth binary, each trusting berth's CA the way its users do.
func TestRegistryCLIs(t *testing.T) {
	b := startBerth(t)
	bin := clis(t)
	t.Cleanup(func() { os.RemoveAll(cliDir) })
	reg, user, pass := b.env["BERTH_REGISTRY"], b.env["AZURE_CLIENT_ID"], b.env["AZURE_CLIENT_SECRET"]
	pushTestImage(t, b, "cli/app:v1")
	work := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+b.env["SSL_CERT_FILE"], "DOCKER_CONFIG="+filepath.Join(work, "docker"), "HOME="+work)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	crane := filepath.Join(bin, "crane")
	run(crane, "auth", "login", reg, "-u", user, "-p", pass)
	run(crane, "copy", reg+"/cli/app:v1", reg+"/cli/copy:v2")
	if out := run(crane, "ls", reg+"/cli/copy"); strings.TrimSpace(out) != "v2" {
		t.Fatalf("crane ls = %q", out)
	}
	if out := run(crane, "catalog", reg); !strings.Contains(out, "cli/copy") {
		t.Fatalf("crane catalog = %q", out)
	}

	oras := filepath.Join(bin, "oras")
	os.WriteFile(filepath.Join(work, "hello.txt"), []byte("hello from oras"), 0o644)
	run(oras, "push", "--ca-file", b.env["SSL_CERT_FILE"], "-u", user, "-p", pass, reg+"/cli/artifact:v1", "hello.txt:text/plain")
	os.Remove(filepath.Join(work, "hello.txt"))
	run(oras, "pull", "--ca-file", b.env["SSL_CERT_FILE"], "-u", user, "-p", pass, "-o", "out", reg+"/cli/artifact:v1")
	if got, _ := os.ReadFile(filepath.Join(work, "out", "hello.txt")); string(got) != "hello from oras" {
		t.Fatalf("oras pulled %q", got)
	}

	certs := filepath.Join(work, "certs")
	os.MkdirAll(certs, 0o755)
	ca, _ := os.ReadFile(b.env["NODE_EXTRA_CA_CERTS"])
	os.WriteFile(filepath.Join(certs, "ca.crt"), ca, 0o644)
	creds := user + ":" + pass
	run("skopeo", "copy", "--src-cert-dir", certs, "--dest-cert-dir", certs, "--src-creds", creds, "--dest-creds", creds,
		"docker://"+reg+"/cli/app:v1", "docker://"+reg+"/cli/skopeo:v3")
	run("skopeo", "copy", "--src-cert-dir", certs, "--src-creds", creds, "docker://"+reg+"/cli/skopeo:v3", "dir:"+filepath.Join(work, "img"))
	if _, err := os.Stat(filepath.Join(work, "img", "manifest.json")); err != nil {
		t.Fatalf("skopeo pulled no manifest: %v", err)
	}
}

// TestCtrImagePull pulls from berth's registry with Debian's `ctr` (containerd
// 1.6) as users and bench/startup do: `ctr image pull --user ID:SECRET
// --tlscacert ca.pem 127.0.0.1:PORT/repo:tag`. containerd 1.6 speaks plain
// HTTP to a loopback registry; berth's login server redirects it to https.
func TestCtrImagePull(t *testing.T) {
	b := startBerth(t)
	ctx := ctxT(t, 5*time.Minute)
	ref := pushTestImage(t, b, "ctr/app:v1")
	sock := filepath.Join(b.dataDir, "runtime", "containerd", "containerd.sock")
	ctr := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "ctr", append([]string{"-a", sock, "-n", "berth-e2e-ctr"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ctr %s %s: %v\n%s", args[0], args[1], err, out) // not the credentials
		}
		return string(out)
	}
	ctr("image", "pull", "--user", b.env["AZURE_CLIENT_ID"]+":"+b.env["AZURE_CLIENT_SECRET"],
		"--tlscacert", filepath.Join(b.dataDir, "pki", "ca.pem"), ref)
	if out := ctr("image", "ls", "-q"); !strings.Contains(out, ref) {
		t.Fatalf("ctr image ls = %q, want %s", out, ref)
	}
	ctr("image", "rm", ref)
}
