package containerd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/runtime"
)

// Volumes live under the data directory; nothing above the runtime names a
// host path:
//
//	groups/<group>/volumes/<name>   emptyDir and gitRepo volumes (gone with the group)
//	groups/<group>/secrets/<name>   a tmpfs per secret volume (unmounted with the group)
//	shares/<account>/<share>        persistent shares, kept across groups

// gitCloneTimeout bounds one clone of a gitRepo volume.
const gitCloneTimeout = 10 * time.Minute

// maxSecretBytes bounds the contents of one secret volume (it lives in
// memory).
const maxSecretBytes = 16 << 20

func (r *Runtime) volumeDir(id, name string) string {
	return filepath.Join(r.groupDir(id), "volumes", escapeName(name, false))
}

func (r *Runtime) secretDir(id, name string) string {
	return filepath.Join(r.groupDir(id), "secrets", escapeName(name, false))
}

func (r *Runtime) shareDir(s *runtime.ShareSpec) string {
	return filepath.Join(r.cfg.DataDir, "shares", escapeName(s.Account, true), escapeName(s.Name, true))
}

// escapeName makes a name safe as one path element, injectively: [a-z0-9-]
// (and A-Z unless lower) stay, every other byte becomes %XX, so "." and ".."
// cannot occur. lower folds case first (storage account and share names
// are case-insensitive).
func escapeName(s string, lower bool) string {
	if lower {
		s = strings.ToLower(s)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || (!lower && c >= 'A' && c <= 'Z') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// validateVolumes checks the group's volumes and every mount of its
// containers and init containers.
func validateVolumes(spec runtime.GroupSpec) error {
	vols := map[string]runtime.VolumeSpec{}
	for _, v := range spec.Volumes {
		if v.Name == "" {
			return fmt.Errorf("group %q: a volume has no name", spec.ID)
		}
		if _, dup := vols[v.Name]; dup {
			return fmt.Errorf("group %q: duplicate volume name %q", spec.ID, v.Name)
		}
		vols[v.Name] = v
		if err := validateVolume(v); err != nil {
			return fmt.Errorf("group %q: volume %q: %w", spec.ID, v.Name, err)
		}
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		paths := map[string]bool{}
		for _, m := range c.Mounts {
			if _, ok := vols[m.Volume]; !ok {
				return fmt.Errorf("group %q: container %q mounts unknown volume %q", spec.ID, c.Name, m.Volume)
			}
			if !path.IsAbs(m.Path) || m.Path == "/" || strings.ContainsRune(m.Path, 0) {
				return fmt.Errorf("group %q: container %q: mount path %q of volume %q: want an absolute path other than /", spec.ID, c.Name, m.Path, m.Volume)
			}
			p := path.Clean(m.Path)
			if paths[p] {
				return fmt.Errorf("group %q: container %q: two volumes mounted at %q", spec.ID, c.Name, p)
			}
			paths[p] = true
			if p == "/etc/hosts" || p == "/etc/resolv.conf" || p == "/proc" || strings.HasPrefix(p, "/proc/") {
				return fmt.Errorf("group %q: container %q: volume %q cannot be mounted at %q", spec.ID, c.Name, m.Volume, p)
			}
		}
	}
	return nil
}

func validateVolume(v runtime.VolumeSpec) error {
	switch v.Kind {
	case runtime.VolumeEmptyDir:
	case runtime.VolumeSecret:
		total := 0
		for name, data := range v.Files {
			if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
				return fmt.Errorf("secret file name %q: want a file name without /", name)
			}
			total += len(data)
		}
		if total > maxSecretBytes {
			return fmt.Errorf("secret files total %d bytes, more than %d", total, maxSecretBytes)
		}
	case runtime.VolumeGitRepo:
		g := v.GitRepo
		if g == nil || g.Repository == "" {
			return errors.New("gitRepo volume without a repository")
		}
		u, err := url.Parse(g.Repository)
		if err != nil {
			return fmt.Errorf("repository %q: %w", redactURL(g.Repository), err)
		}
		switch u.Scheme {
		case "file", "http", "https", "git":
		default:
			return fmt.Errorf("repository %q: want a file, http, https or git URL", redactURL(g.Repository))
		}
		if strings.HasPrefix(g.Revision, "-") || strings.ContainsAny(g.Revision, "\x00\n") {
			return fmt.Errorf("revision %q is not a git revision", g.Revision)
		}
		if d := g.Directory; d != "" && d != "." {
			if path.IsAbs(d) || !filepath.IsLocal(d) || strings.ContainsRune(d, 0) {
				return fmt.Errorf("directory %q: want a path inside the volume", d)
			}
		}
	case runtime.VolumeShare:
		s := v.Share
		if s == nil || s.Account == "" || s.Name == "" {
			return errors.New("share volume without a storage account and share name")
		}
	default:
		return fmt.Errorf("unknown volume kind %q", v.Kind)
	}
	return nil
}

// volumeMode says how prepareVolumes treats volumes that exist already.
type volumeMode int

const (
	volumesCreate  volumeMode = iota // new group: nothing exists yet
	volumesRecover                   // re-adopt: keep what is there, recreate what vanished
	volumesRestart                   // restart in place: secrets rewritten, the rest kept
)

// prepareVolumes makes every volume of spec ready to mount: directories,
// secret tmpfs mounts, git clones. Volumes of the group that spec no longer
// has are removed. A failure is an error wrapping runtime.ErrVolume, with a
// FailedMount event naming the volume.
func (r *Runtime) prepareVolumes(ctx context.Context, spec runtime.GroupSpec, mode volumeMode) error {
	for _, v := range spec.Volumes {
		var err error
		switch v.Kind {
		case runtime.VolumeEmptyDir:
			err = mkdirMode(r.volumeDir(spec.ID, v.Name), 0o777)
		case runtime.VolumeSecret:
			err = r.mountSecret(spec, v, mode)
		case runtime.VolumeGitRepo:
			err = r.cloneGitRepo(ctx, spec.ID, v)
		case runtime.VolumeShare:
			err = mkdirMode(r.shareDir(v.Share), 0o777)
		}
		if err != nil {
			r.emit(spec.ID, firstMounter(spec, v.Name), runtime.EventFailedMount,
				fmt.Sprintf("Failed to prepare volume %q: %v", v.Name, err), true, 0)
			return fmt.Errorf("group %q: volume %q: %v: %w", spec.ID, v.Name, err, runtime.ErrVolume)
		}
	}
	return r.pruneVolumes(spec)
}

// firstMounter names the first container (init containers first) that
// mounts volume name, or "" if none does.
func firstMounter(spec runtime.GroupSpec, name string) string {
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		for _, m := range c.Mounts {
			if m.Volume == name {
				return c.Name
			}
		}
	}
	return ""
}

// mkdirMode creates dir (and its parents, for root only: runc resolves bind
// mount sources as root, and a 0777 volume must not be reachable by the
// host's other users) and gives it mode, whatever the umask.
func mkdirMode(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// pruneVolumes removes the group's volume directories and secret mounts
// that spec does not name (after a restart with a changed spec).
func (r *Runtime) pruneVolumes(spec runtime.GroupSpec) error {
	keep := map[string]bool{}
	for _, v := range spec.Volumes {
		switch v.Kind {
		case runtime.VolumeEmptyDir, runtime.VolumeGitRepo:
			keep[r.volumeDir(spec.ID, v.Name)] = true
		case runtime.VolumeSecret:
			keep[r.secretDir(spec.ID, v.Name)] = true
		}
	}
	for _, sub := range []string{"volumes", "secrets"} {
		parent := filepath.Join(r.groupDir(spec.ID), sub)
		entries, err := os.ReadDir(parent)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		for _, e := range entries {
			p := filepath.Join(parent, e.Name())
			if keep[p] {
				continue
			}
			if err := unmountAll(p); err != nil {
				return err
			}
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeGroupVolumes unmounts the group's secret volumes, so that its
// directory can be removed. Shares stay.
func (r *Runtime) removeGroupVolumes(id string) error {
	parent := filepath.Join(r.groupDir(id), "secrets")
	entries, err := os.ReadDir(parent)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if err := unmountAll(filepath.Join(parent, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// secretOwner is the uid and gid owning a secret volume's files: those of
// the first container mounting it that runs as a given user (init
// containers first), else root.
func secretOwner(spec runtime.GroupSpec, name string) (uid, gid int) {
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.Security == nil || (c.Security.RunAsUser == nil && c.Security.RunAsGroup == nil) {
			continue
		}
		for _, m := range c.Mounts {
			if m.Volume != name {
				continue
			}
			if c.Security.RunAsUser != nil {
				uid = int(*c.Security.RunAsUser)
			}
			if c.Security.RunAsGroup != nil {
				gid = int(*c.Security.RunAsGroup)
			}
			return uid, gid
		}
	}
	return 0, 0
}

// mountSecret puts a secret volume's files on a tmpfs of its own: files mode
// 0400, the directory 0500, owned by secretOwner, the tmpfs read-only once
// written. An existing mount is kept when recovering and replaced when
// restarting.
func (r *Runtime) mountSecret(spec runtime.GroupSpec, v runtime.VolumeSpec, mode volumeMode) error {
	dir := r.secretDir(spec.ID, v.Name)
	if isMountPoint(dir) {
		if mode == volumesRecover {
			return nil
		}
		if err := unmountAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	uid, gid := secretOwner(spec, v.Name)
	total := 0
	for _, data := range v.Files {
		total += len(data) + 4096 // a page per file at most in slack
	}
	size := total + 64<<10
	const flags = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC
	opts := fmt.Sprintf("mode=0700,size=%d,nr_inodes=%d", size, len(v.Files)+16)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, opts); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	fail := func(err error) error {
		if uerr := unmountAll(dir); uerr != nil {
			return errors.Join(err, uerr)
		}
		return err
	}
	for name, data := range v.Files {
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
		if err != nil {
			return fail(err)
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Chown(uid, gid)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(fmt.Errorf("write secret file: %w", err))
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return fail(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		return fail(err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY|flags, ""); err != nil {
		return fail(fmt.Errorf("remount read-only: %w", err))
	}
	return nil
}

// isMountPoint reports whether dir is the root of a mount (its device
// differs from its parent's).
func isMountPoint(dir string) bool {
	var st, parent syscall.Stat_t
	if syscall.Lstat(dir, &st) != nil || syscall.Lstat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// unmountAll unmounts whatever is mounted at dir (possibly stacked). A
// mount still busy is detached.
func unmountAll(dir string) error {
	for range 8 {
		if !isMountPoint(dir) {
			return nil
		}
		err := syscall.Unmount(dir, 0)
		if errors.Is(err, syscall.EBUSY) {
			err = syscall.Unmount(dir, syscall.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted", dir)
}

// cloneGitRepo clones a gitRepo volume (once: an existing clone is kept)
// into a temporary directory, checks out the revision and moves it into
// place, so that a failure leaves nothing.
func (r *Runtime) cloneGitRepo(ctx context.Context, id string, v runtime.VolumeSpec) error {
	dir := r.volumeDir(id, v.Name)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp := dir + ".clone"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := mkdirMode(tmp, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	target := tmp
	if d := v.GitRepo.Directory; d != "" && d != "." {
		target = filepath.Join(tmp, filepath.Clean(d))
	}
	ctx, cancel := context.WithTimeout(ctx, gitCloneTimeout)
	defer cancel()
	repo := v.GitRepo.Repository
	if err := runGit(ctx, tmp, repo, "clone", "--quiet", "--", repo, target); err != nil {
		return fmt.Errorf("git clone %s: %w", redactURL(repo), err)
	}
	if rev := v.GitRepo.Revision; rev != "" {
		if err := runGit(ctx, target, repo, "checkout", "--quiet", rev, "--"); err != nil {
			return fmt.Errorf("git checkout %s of %s: %w", rev, redactURL(repo), err)
		}
	}
	return os.Rename(tmp, dir)
}

// runGit runs git in dir with no terminal prompts, no user or system
// configuration, and only the file, http(s) and git transports. Its error
// carries git's last line of output, with repo's credentials redacted.
func runGit(ctx context.Context, dir, repo string, args ...string) error {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_ALLOW_PROTOCOL=file:http:https:git",
		"LC_ALL=C",
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("the git program is not installed: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if red := redactURL(repo); red != repo {
		last = strings.ReplaceAll(last, repo, red)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s", ctx.Err(), last)
	}
	if last == "" {
		return err
	}
	return fmt.Errorf("%v: %s", err, last)
}

// redactURL hides the password of a URL's user information.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

// volumeMounts returns the OCI mounts of container c's volumes.
func (r *Runtime) volumeMounts(spec runtime.GroupSpec, c runtime.ContainerSpec) []specs.Mount {
	vols := map[string]runtime.VolumeSpec{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	var mounts []specs.Mount
	for _, m := range c.Mounts {
		v := vols[m.Volume]
		ro := m.ReadOnly
		var src string
		switch v.Kind {
		case runtime.VolumeEmptyDir, runtime.VolumeGitRepo:
			src = r.volumeDir(spec.ID, v.Name)
		case runtime.VolumeSecret:
			src, ro = r.secretDir(spec.ID, v.Name), true
		case runtime.VolumeShare:
			src, ro = r.shareDir(v.Share), ro || v.Share.ReadOnly
		}
		opts := []string{"rbind", "rprivate", "nosuid", "nodev"}
		if ro {
			opts = append(opts, "ro")
		} else {
			opts = append(opts, "rw")
		}
		if v.Kind == runtime.VolumeSecret {
			opts = append(opts, "noexec")
		}
		mounts = append(mounts, specs.Mount{Destination: path.Clean(m.Path), Type: "bind", Source: src, Options: opts})
	}
	return mounts
}
