package fake

import (
	"fmt"
	"maps"
	"path"
	"strings"

	"github.com/berth-dev/berth/internal/runtime"
)

// validateVolumes checks volumes and mounts as the real runtime does.
func validateVolumes(spec runtime.GroupSpec) error {
	vols := map[string]runtime.VolumeSpec{}
	for _, v := range spec.Volumes {
		if v.Name == "" {
			return fmt.Errorf("fake runtime: group %q: a volume has no name", spec.ID)
		}
		if _, dup := vols[v.Name]; dup {
			return fmt.Errorf("fake runtime: group %q: duplicate volume name %q", spec.ID, v.Name)
		}
		vols[v.Name] = v
		bad := ""
		switch v.Kind {
		case runtime.VolumeEmptyDir:
		case runtime.VolumeSecret:
			for name := range v.Files {
				if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
					bad = fmt.Sprintf("secret file name %q", name)
				}
			}
		case runtime.VolumeGitRepo:
			if v.GitRepo == nil || v.GitRepo.Repository == "" {
				bad = "gitRepo volume without a repository"
			}
		case runtime.VolumeShare:
			if v.Share == nil || v.Share.Account == "" || v.Share.Name == "" {
				bad = "share volume without a storage account and share name"
			}
		default:
			bad = fmt.Sprintf("unknown volume kind %q", v.Kind)
		}
		if bad != "" {
			return fmt.Errorf("fake runtime: group %q: volume %q: %s", spec.ID, v.Name, bad)
		}
	}
	for _, c := range allContainers(spec) {
		paths := map[string]bool{}
		for _, m := range c.Mounts {
			if _, ok := vols[m.Volume]; !ok {
				return fmt.Errorf("fake runtime: group %q: container %q mounts unknown volume %q", spec.ID, c.Name, m.Volume)
			}
			if !path.IsAbs(m.Path) || path.Clean(m.Path) == "/" {
				return fmt.Errorf("fake runtime: group %q: container %q: mount path %q: want an absolute path other than /", spec.ID, c.Name, m.Path)
			}
			p := path.Clean(m.Path)
			if paths[p] {
				return fmt.Errorf("fake runtime: group %q: container %q: two volumes mounted at %q", spec.ID, c.Name, p)
			}
			paths[p] = true
		}
	}
	return nil
}

// prepareVolumes gives g the volumes of spec: existing emptyDir and gitRepo
// volumes of the same name and kind are kept (a restart), secrets are
// written afresh, shares are the runtime's. A gitRepo whose repository is
// not in Options.GitRepos fails with a FailedMount event and an error
// wrapping runtime.ErrVolume, changing nothing. r.mu is held.
func (r *Runtime) prepareVolumes(g *group, spec runtime.GroupSpec) error {
	vols := map[string]*volume{}
	for _, vs := range spec.Volumes {
		if old := g.volumes[vs.Name]; old != nil && old.kind == vs.Kind && (vs.Kind == runtime.VolumeEmptyDir || vs.Kind == runtime.VolumeGitRepo) {
			vols[vs.Name] = old
			continue
		}
		v := newVolume(vs.Kind)
		switch vs.Kind {
		case runtime.VolumeSecret:
			maps.Copy(v.files, cloneFiles(vs.Files))
			v.readOnly = true
			v.uid, v.gid = secretOwner(spec, vs.Name)
		case runtime.VolumeGitRepo:
			files, ok := r.opts.GitRepos[vs.GitRepo.Repository]
			if !ok {
				r.emit(spec.ID, firstMounter(spec, vs.Name), runtime.EventFailedMount,
					fmt.Sprintf("Failed to prepare volume %q: git clone: repository not found", vs.Name), true, 0)
				return fmt.Errorf("fake runtime: group %q: volume %q: git clone: repository not found: %w", spec.ID, vs.Name, runtime.ErrVolume)
			}
			dir := path.Clean(vs.GitRepo.Directory)
			for p, b := range files {
				if dir != "." && dir != "" {
					p = path.Join(dir, p)
				}
				v.files[p] = append([]byte(nil), b...)
			}
		case runtime.VolumeShare:
			key := strings.ToLower(vs.Share.Account) + "/" + strings.ToLower(vs.Share.Name)
			share := r.shares[key]
			if share == nil {
				share = newVolume(runtime.VolumeShare)
				r.shares[key] = share
			}
			// The same files, read-only through this volume if it says so.
			v = &volume{kind: runtime.VolumeShare, files: share.files, readOnly: vs.Share.ReadOnly}
		}
		vols[vs.Name] = v
	}
	g.volumes = vols
	return nil
}

// secretOwner: the first container mounting the secret that runs as a
// given user, as the real runtime chooses.
func secretOwner(spec runtime.GroupSpec, name string) (uid, gid int64) {
	for _, c := range allContainers(spec) {
		if c.Security == nil || (c.Security.RunAsUser == nil && c.Security.RunAsGroup == nil) {
			continue
		}
		for _, m := range c.Mounts {
			if m.Volume == name {
				return ids(c.Security)
			}
		}
	}
	return 0, 0
}

func firstMounter(spec runtime.GroupSpec, name string) string {
	for _, c := range allContainers(spec) {
		for _, m := range c.Mounts {
			if m.Volume == name {
				return c.Name
			}
		}
	}
	return ""
}

func cloneFiles(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = append([]byte(nil), v...)
	}
	return out
}

// VolumeFiles returns a copy of the files in volume name of group id (paths
// relative to the volume's root): a test hook to see what the simulated
// containers wrote.
func (r *Runtime) VolumeFiles(id, name string) (map[string][]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.groups[id]
	if !ok {
		return nil, fmt.Errorf("group %q: %w", id, runtime.ErrNotFound)
	}
	v, ok := g.volumes[name]
	if !ok {
		return nil, fmt.Errorf("volume %q of group %q: %w", name, id, runtime.ErrNotFound)
	}
	return cloneFiles(v.files), nil
}
