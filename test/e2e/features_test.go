package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// TestGroupFeatures deploys, through the SDK, a group that uses init
// containers, every volume kind, a securityContext, dnsConfig and memory
// limits, then reads what its containers saw from their logs: the wire,
// the service and the runtime agree end to end.
func TestGroupFeatures(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	image := pushTestImage(t, b, "features/app:v1")
	if _, err := s.groups.CreateOrUpdate(ctx, "feat", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	repo := gitRepo(t, map[string]string{"README.md": "cloned offline\n"})
	const (
		storageKey   = "c3RvcmFnZS1rZXktdmFsdWUtZm9yLWJlcnRo"
		workspaceKey = "d29ya3NwYWNlLWtleS12YWx1ZS1mb3ItYmVydGg="
		secureEnv    = "secure-env-value-never-logged"
		secretFile   = "s3cret-file"
	)

	mount := func(vol, path string, ro bool) *aci.VolumeMount {
		return &aci.VolumeMount{Name: to.Ptr(vol), MountPath: to.Ptr(path), ReadOnly: to.Ptr(ro)}
	}
	shell := func(script string) []*string { return to.SliceOfPtrs("/bin/sh", "-c", script) }
	req := &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.5), MemoryInGB: to.Ptr(0.25)}}
	shareVol := func() *aci.Volume {
		return &aci.Volume{Name: to.Ptr("sharevol"), AzureFile: &aci.AzureFileVolume{ShareName: to.Ptr("docs"), StorageAccountName: to.Ptr("acct1"), StorageAccountKey: to.Ptr(storageKey)}}
	}
	group := aci.ContainerGroup{
		Location: to.Ptr("westeurope"),
		Properties: &aci.ContainerGroupPropertiesProperties{
			OSType:                   to.Ptr(aci.OperatingSystemTypesLinux),
			RestartPolicy:            to.Ptr(aci.ContainerGroupRestartPolicyNever),
			ImageRegistryCredentials: b.registryCred(),
			Volumes: []*aci.Volume{
				{Name: to.Ptr("scratch"), EmptyDir: map[string]any{}},
				{Name: to.Ptr("secrets"), Secret: map[string]*string{"token": to.Ptr(base64.StdEncoding.EncodeToString([]byte(secretFile)))}},
				{Name: to.Ptr("repovol"), GitRepo: &aci.GitRepoVolume{Repository: to.Ptr("file://" + repo), Directory: to.Ptr("src")}},
				shareVol(),
			},
			Diagnostics: &aci.ContainerGroupDiagnostics{LogAnalytics: &aci.LogAnalytics{WorkspaceID: to.Ptr("workspace-1"), WorkspaceKey: to.Ptr(workspaceKey)}},
			DNSConfig:   &aci.DNSConfiguration{NameServers: to.SliceOfPtrs("10.0.0.10"), SearchDomains: to.Ptr("corp.example"), Options: to.Ptr("ndots:2")},
			InitContainers: []*aci.InitContainerDefinition{{
				Name: to.Ptr("prepare"),
				Properties: &aci.InitContainerPropertiesDefinition{Image: to.Ptr(image),
					Command:      shell("echo prepared-by-init > /scratch/hello"),
					VolumeMounts: []*aci.VolumeMount{mount("scratch", "/scratch", false)}},
			}},
			Containers: []*aci.Container{
				{Name: to.Ptr("main"), Properties: &aci.ContainerProperties{Image: to.Ptr(image), Resources: req,
					EnvironmentVariables: []*aci.EnvironmentVariable{{Name: to.Ptr("SECURE"), SecureValue: to.Ptr(secureEnv)}},
					Command: shell("cat /scratch/hello; cat /secrets/token; echo; echo \"env:$SECURE\"; cat /repo/src/README.md; " +
						"grep -E '^(nameserver|search|options)' /etc/resolv.conf; " +
						"cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; " +
						"echo persisted > /share/file; echo readonly > /ro/x 2>/dev/null || echo ro-refused"),
					VolumeMounts: []*aci.VolumeMount{mount("scratch", "/scratch", false), mount("secrets", "/secrets", true),
						mount("repovol", "/repo", false), mount("sharevol", "/share", false), mount("scratch", "/ro", true)}}},
				{Name: to.Ptr("nobody"), Properties: &aci.ContainerProperties{Image: to.Ptr(image), Resources: req,
					Command:         to.SliceOfPtrs("/app", "id"),
					SecurityContext: &aci.SecurityContextDefinition{RunAsUser: to.Ptr[int32](65534), RunAsGroup: to.Ptr[int32](65534)}}},
			},
		},
	}
	created := createGroup(t, s, "feat", "features", group)
	if sec := created.Properties.Volumes[1].Secret; len(sec) != 0 {
		t.Errorf("secret volume contents returned: %v", sec)
	}
	done := waitGroupState(t, s, "feat", "features", "Succeeded")
	init := done.Properties.InitContainers[0].Properties.InstanceView
	if init == nil || *init.CurrentState.State != "Terminated" || *init.CurrentState.ExitCode != 0 {
		t.Fatalf("init container view: %+v", init)
	}
	logs := containerLogs(t, s, "feat", "features", "main")
	for _, want := range []string{"prepared-by-init", secretFile, "env:" + secureEnv, "cloned offline", "nameserver 10.0.0.10", "search corp.example",
		"options ndots:2", "268435456", "ro-refused"} {
		if !strings.Contains(logs, want) {
			t.Errorf("main's log lacks %q:\n%s", want, logs)
		}
	}
	if got := strings.TrimSpace(containerLogs(t, s, "feat", "features", "nobody")); !strings.HasPrefix(got, "uid=65534") {
		t.Errorf("securityContext: id says %q", got)
	}

	// Secrets never come back and never reach berth's log (debug level).
	_, _, raw := rawARM(t, b, s, "GET", "/subscriptions/"+b.env["AZURE_SUBSCRIPTION_ID"]+
		"/resourceGroups/feat/providers/Microsoft.ContainerInstance/containerGroups/features?api-version=2023-05-01", "")
	secrets := []string{storageKey, workspaceKey, secureEnv, secretFile, base64.StdEncoding.EncodeToString([]byte(secretFile)), b.env["AZURE_CLIENT_SECRET"]}
	assertNoSecrets(t, "GET body", fmt.Sprint(raw), secrets)
	b.assertNoSecretsInLogs(secrets)

	// The share outlives the group and is shared by the next one.
	if _, err := s.cgs.BeginDelete(ctx, "feat", "features", nil); err != nil {
		t.Fatal(err)
	}
	reader := aci.ContainerGroup{Location: to.Ptr("westeurope"), Properties: &aci.ContainerGroupPropertiesProperties{
		OSType: to.Ptr(aci.OperatingSystemTypesLinux), RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyNever),
		ImageRegistryCredentials: b.registryCred(), Volumes: []*aci.Volume{shareVol()},
		Containers: []*aci.Container{{Name: to.Ptr("reader"), Properties: &aci.ContainerProperties{Image: to.Ptr(image), Resources: req,
			Command: shell("cat /share/file"), VolumeMounts: []*aci.VolumeMount{mount("sharevol", "/share", true)}}}},
	}}
	createGroup(t, s, "feat", "reader", reader)
	waitGroupState(t, s, "feat", "reader", "Succeeded")
	if got := strings.TrimSpace(containerLogs(t, s, "feat", "reader", "reader")); got != "persisted" {
		t.Errorf("share content in the next group: %q", got)
	}

	// Over its memory limit: killed and reported as ACI reports it.
	oom := aci.ContainerGroup{Location: to.Ptr("westeurope"), Properties: &aci.ContainerGroupPropertiesProperties{
		OSType: to.Ptr(aci.OperatingSystemTypesLinux), RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyNever),
		ImageRegistryCredentials: b.registryCred(),
		Containers: []*aci.Container{{Name: to.Ptr("hog"), Properties: &aci.ContainerProperties{Image: to.Ptr(image),
			Resources: &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.5), MemoryInGB: to.Ptr(0.1)}},
			Command:   to.SliceOfPtrs("/app", "alloc", "400")}}},
	}}
	createGroup(t, s, "feat", "oom", oom)
	failed := waitGroupState(t, s, "feat", "oom", "Failed")
	st := failed.Properties.Containers[0].Properties.InstanceView.CurrentState
	if *st.State != "Terminated" || *st.DetailStatus != "OOMKilled" || *st.ExitCode != 137 {
		t.Errorf("OOM state: %s %s %d", *st.State, *st.DetailStatus, *st.ExitCode)
	}
}

// gitRepo makes a git repository with files, committed, and returns its
// path (cloned by URL file://path).
func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	run := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run("init", "-q")
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run("add", ".")
	run("commit", "-q", "-m", "files")
	return dir
}

func waitGroupState(t *testing.T, s *sdk, rg, name, want string) aci.ContainerGroup {
	t.Helper()
	ctx := ctxT(t, 3*time.Minute)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		r, err := s.cgs.Get(ctx, rg, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := ""
		if r.Properties.InstanceView != nil && r.Properties.InstanceView.State != nil {
			st = *r.Properties.InstanceView.State
		}
		if st == want {
			return r.ContainerGroup
		}
		if time.Now().After(deadline) || *r.Properties.ProvisioningState == "Failed" {
			t.Fatalf("%s: state %q (provisioning %s), want %s", name, st, *r.Properties.ProvisioningState, want)
		}
	}
}

func containerLogs(t *testing.T, s *sdk, rg, group, container string) string {
	t.Helper()
	r, err := s.ctrs.ListLogs(ctxT(t, time.Minute), rg, group, container, nil)
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", group, container, err)
	}
	return *r.Content
}

// assertNoSecrets fails t if text contains any of secrets.
func assertNoSecrets(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(text, sec) {
			t.Errorf("%s contains a secret (%.6s…)", what, sec)
		}
	}
}

// assertNoSecretsInLogs fails if a log berth (or its containerd) wrote
// under the data directory contains any of secrets.
func (b *berth) assertNoSecretsInLogs(secrets []string) {
	b.t.Helper()
	scanned := 0
	_ = filepath.WalkDir(b.dataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") || strings.Contains(path, "/groups/") {
			return nil // container logs are the containers' own output
		}
		body, err := os.ReadFile(path)
		if err == nil && len(body) > 0 {
			scanned++
			assertNoSecrets(b.t, path, string(body), secrets)
		}
		return nil
	})
	if scanned == 0 {
		b.t.Error("no berth log found to check for secrets")
	}
}
