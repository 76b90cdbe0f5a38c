package runtimetest

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
)

// testEmptyDirShared: what one container writes in an emptyDir, another
// container of the group reads (mounted elsewhere).
func testEmptyDirShared(t *testing.T, e Env) {
	spec := e.Spec(GroupID("emptydir"), runtime.RestartNever, "write", "/data/msg", "hello from writer")
	spec.Volumes = []runtime.VolumeSpec{{Name: "scratch", Kind: runtime.VolumeEmptyDir}}
	spec.Containers[0].Mounts = []runtime.Mount{{Volume: "scratch", Path: "/data"}}
	reader := e.App("reader", "read", "/cache/msg", "60")
	reader.Mounts = []runtime.Mount{{Volume: "scratch", Path: "/cache"}}
	spec.Containers = append(spec.Containers, reader)
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "both done", AllTerminated)
	if exitCode(t, st, "main") != 0 || exitCode(t, st, "reader") != 0 {
		t.Errorf("status = %+v", st.Containers)
	}
	wantLogs(t, e.Runtime, spec.ID, "reader", "hello from writer")
}

// testSecretVolume: a secret volume's files are there, also for a container
// running as another user, and cannot be written.
func testSecretVolume(t *testing.T, e Env) {
	spec := e.Spec(GroupID("secret"), runtime.RestartNever, "read", "/mnt/secrets/password")
	spec.Volumes = []runtime.VolumeSpec{{Name: "creds", Kind: runtime.VolumeSecret, Files: map[string][]byte{
		"password":    []byte("s3cr3t-value\n"),
		"config.json": []byte(`{"a":1}`),
	}}}
	mount := []runtime.Mount{{Volume: "creds", Path: "/mnt/secrets"}}
	spec.Containers[0].Mounts = mount
	user := e.App("user", "read", "/etc/app/config.json")
	user.Mounts = []runtime.Mount{{Volume: "creds", Path: "/etc/app"}}
	user.Security = &runtime.SecurityContext{RunAsUser: ptr[int64](1000), RunAsGroup: ptr[int64](1000)}
	writer := e.App("writer", "write", "/mnt/secrets/password", "changed")
	writer.Mounts = mount
	spec.Containers = append(spec.Containers, user, writer)
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "all done", AllTerminated)
	if exitCode(t, st, "main") != 0 || exitCode(t, st, "user") != 0 {
		t.Errorf("status = %+v", st.Containers)
	}
	if exitCode(t, st, "writer") == 0 {
		t.Error("a container wrote into a secret volume")
	}
	wantLogs(t, e.Runtime, spec.ID, "main", "s3cr3t-value\n")
	wantLogs(t, e.Runtime, spec.ID, "user", `{"a":1}`)
}

// testSharePersists: a share outlives the group that wrote to it and is
// seen by the next group mounting the same account and share; read-only
// share volumes refuse writes.
func testSharePersists(t *testing.T, e Env) {
	ctx := context.Background()
	share := &runtime.ShareSpec{Account: GroupID("acct"), Name: "data"}
	vol := []runtime.VolumeSpec{{Name: "files", Kind: runtime.VolumeShare, Share: share}}
	mount := []runtime.Mount{{Volume: "files", Path: "/share"}}

	one := e.Spec(GroupID("share1"), runtime.RestartNever, "write", "/share/note", "kept")
	one.Volumes, one.Containers[0].Mounts = vol, mount
	Create(t, e.Runtime, one)
	if st := WaitStatus(t, e.Runtime, one.ID, "written", Terminated); exitCode(t, st, "main") != 0 {
		t.Fatalf("writer: %+v, logs %q", st.Containers[0], Logs(t, e.Runtime, one.ID, "main"))
	}
	if err := e.Runtime.DeleteGroup(ctx, one.ID); err != nil {
		t.Fatal(err)
	}

	two := e.Spec(GroupID("share2"), runtime.RestartNever, "read", "/mnt/s/note")
	two.Volumes = []runtime.VolumeSpec{{Name: "other", Kind: runtime.VolumeShare, Share: &runtime.ShareSpec{Account: share.Account, Name: share.Name, ReadOnly: true}}}
	two.Containers[0].Mounts = []runtime.Mount{{Volume: "other", Path: "/mnt/s"}}
	writer := e.App("writer", "write", "/mnt/s/note", "overwritten")
	writer.Mounts = two.Containers[0].Mounts
	two.Containers = append(two.Containers, writer)
	Create(t, e.Runtime, two)
	st := WaitStatus(t, e.Runtime, two.ID, "read", AllTerminated)
	if exitCode(t, st, "main") != 0 {
		t.Errorf("reader: %+v", st.Containers[0])
	}
	wantLogs(t, e.Runtime, two.ID, "main", "kept")
	if exitCode(t, st, "writer") == 0 {
		t.Error("a container wrote into a read-only share")
	}
}

// testReadOnlyMount: a read-only mount of an emptyDir refuses writes while a
// writable mount of the same volume takes them.
func testReadOnlyMount(t *testing.T, e Env) {
	spec := e.Spec(GroupID("ro"), runtime.RestartNever, "write", "/data/x", "y")
	spec.Volumes = []runtime.VolumeSpec{{Name: "scratch", Kind: runtime.VolumeEmptyDir}}
	spec.Containers[0].Mounts = []runtime.Mount{{Volume: "scratch", Path: "/data", ReadOnly: true}}
	rw := e.App("rw", "write", "/data/x", "y")
	rw.Mounts = []runtime.Mount{{Volume: "scratch", Path: "/data"}}
	spec.Containers = append(spec.Containers, rw)
	Create(t, e.Runtime, spec)
	st := WaitStatus(t, e.Runtime, spec.ID, "done", AllTerminated)
	if exitCode(t, st, "main") == 0 {
		t.Errorf("a write through a read-only mount succeeded: %q", Logs(t, e.Runtime, spec.ID, "main"))
	}
	if exitCode(t, st, "rw") != 0 {
		t.Errorf("a write through a writable mount failed: %q", Logs(t, e.Runtime, spec.ID, "rw"))
	}
}

// testMountValidation: mounting an unknown volume, or two volumes at one
// path, is refused and creates nothing.
func testMountValidation(t *testing.T, e Env) {
	ctx := context.Background()
	unknown := e.Spec(GroupID("badmount"), runtime.RestartNever)
	unknown.Containers[0].Mounts = []runtime.Mount{{Volume: "nope", Path: "/x"}}
	dup := e.Spec(GroupID("dupmount"), runtime.RestartNever)
	dup.Volumes = []runtime.VolumeSpec{{Name: "a", Kind: runtime.VolumeEmptyDir}, {Name: "b", Kind: runtime.VolumeEmptyDir}}
	dup.Containers[0].Mounts = []runtime.Mount{{Volume: "a", Path: "/x"}, {Volume: "b", Path: "/x/"}}
	for _, spec := range []runtime.GroupSpec{unknown, dup} {
		if _, err := e.Runtime.CreateGroup(ctx, spec); err == nil {
			e.Runtime.DeleteGroup(ctx, spec.ID)
			t.Errorf("%s: CreateGroup succeeded", spec.ID)
			continue
		} else {
			t.Logf("%s: %v", spec.ID, err)
		}
		if _, err := e.Runtime.Status(ctx, spec.ID); err == nil {
			t.Errorf("%s: the group exists after a refused create", spec.ID)
		}
	}
}
