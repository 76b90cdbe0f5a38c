package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/fileutil"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"github.com/berth-dev/berth/internal/runtime"
)

// group is the in-memory side of a group: the lock serializing its
// lifecycle operations and its container watchers.
type group struct {
	op   sync.Mutex // held by CreateGroup, RecoverGroup, DeleteGroup
	gone bool       // deleted; guarded by op

	mu       sync.Mutex
	watchers map[string]*watcher // by container name
	forwards *forwarder          // loopback forwards into the namespace
	ports    map[string]bool     // ports the group's containers declare
	// where the group is while its forwards run (GroupByAddr): its
	// address, its bridge and that bridge's gateway
	addr, gateway netip.Addr
	bridge        string
}

type watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// lockGroup returns id's group with its op lock held.
func (r *Runtime) lockGroup(id string) (*group, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, errors.New("containerd runtime: closed")
		}
		g, ok := r.groups[id]
		if !ok {
			g = &group{watchers: map[string]*watcher{}}
			r.groups[id] = g
		}
		r.mu.Unlock()
		g.op.Lock()
		if !g.gone {
			return g, nil
		}
		g.op.Unlock() // deleted meanwhile: take the fresh one
	}
}

// forgetGroup drops g (whose op lock is held) from the runtime.
func (r *Runtime) forgetGroup(id string, g *group) {
	g.gone = true
	r.mu.Lock()
	if r.groups[id] == g {
		delete(r.groups, id)
	}
	r.mu.Unlock()
}

// stopWatchers cancels every watcher of g and waits for them to end.
func (g *group) stopWatchers() {
	g.mu.Lock()
	ws := make([]*watcher, 0, len(g.watchers))
	for _, w := range g.watchers {
		w.cancel()
		ws = append(ws, w)
	}
	g.mu.Unlock()
	for _, w := range ws {
		<-w.done
	}
}

// record is what a group runs, kept in DataDir/groups/<id>/group.json. It is
// the group's existence on disk; live state comes from containerd.
type record struct {
	ID             string                `json:"id"`
	Labels         map[string]string     `json:"labels,omitempty"`
	RestartPolicy  runtime.RestartPolicy `json:"restartPolicy"`
	InitContainers []string              `json:"initContainers,omitempty"`
	Containers     []string              `json:"containers"`
	IP             string                `json:"ip,omitempty"`
	// Network is the network the group joined ("" the default).
	Network string `json:"network,omitempty"`
	// Bridge is the default network's bridge the group is attached to
	// (shards.go); "" is the first one (Config.BridgeName), where every
	// group made before the default network had several is.
	Bridge string `json:"bridge,omitempty"`
	// InitPending: the init containers have not all completed, so the
	// containers have not been started (see init.go).
	InitPending bool `json:"initPending,omitempty"`
}

func newRecord(spec runtime.GroupSpec) *record {
	rec := &record{ID: spec.ID, Labels: spec.Labels, RestartPolicy: spec.RestartPolicy, Network: spec.Network}
	for _, c := range spec.InitContainers {
		rec.InitContainers = append(rec.InitContainers, c.Name)
	}
	for _, c := range spec.Containers {
		rec.Containers = append(rec.Containers, c.Name)
	}
	rec.InitPending = len(spec.InitContainers) > 0
	return rec
}

// hasContainer reports whether the group has a container or init container
// called name.
func (rec *record) hasContainer(name string) bool {
	return slices.Contains(rec.Containers, name) || slices.Contains(rec.InitContainers, name)
}

func (r *Runtime) recordPath(id string) string { return filepath.Join(r.groupDir(id), "group.json") }

// readRecord returns id's record, or an error wrapping runtime.ErrNotFound.
func (r *Runtime) readRecord(id string) (*record, error) {
	if !validID.MatchString(id) {
		return nil, fmt.Errorf("group %q: %w", id, runtime.ErrNotFound)
	}
	b, err := os.ReadFile(r.recordPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("group %q: %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("group %q: record: %w", id, err)
	}
	return &rec, nil
}

// errExists is returned by writeRecord in exclusive mode.
var errExists = errors.New("exists")

// writeRecord stores rec atomically; exclusive fails with errExists if a
// record is there already.
func (r *Runtime) writeRecord(rec *record, exclusive bool) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	dir := r.groupDir(rec.ID)
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o711); err != nil {
		return err
	}
	if exclusive {
		err = fileutil.WriteExclusive(r.recordPath(rec.ID), b, 0o644)
		if errors.Is(err, fileutil.ErrExist) {
			return errExists
		}
		return err
	}
	return fileutil.WriteAtomic(r.recordPath(rec.ID), b, 0o644)
}

// ListGroups returns the ids of the groups with a record under the data
// directory.
func (r *Runtime) ListGroups(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(r.cfg.DataDir, "groups"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && validID.MatchString(e.Name()) {
			if _, err := os.Stat(r.recordPath(e.Name())); err == nil {
				ids = append(ids, e.Name())
			}
		}
	}
	return ids, nil
}

var validID = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

func validateSpec(spec runtime.GroupSpec) error {
	if !validID.MatchString(spec.ID) {
		return fmt.Errorf("group id %q: want 1 to 64 of [a-z0-9-]", spec.ID)
	}
	if len(spec.Containers) == 0 {
		return fmt.Errorf("group %q: no containers", spec.ID)
	}
	seen := map[string]bool{}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if c.Name == "" || seen[c.Name] {
			return fmt.Errorf("group %q: empty or duplicate container name %q", spec.ID, c.Name)
		}
		seen[c.Name] = true
		if c.Image == "" {
			return fmt.Errorf("group %q: container %q has no image", spec.ID, c.Name)
		}
	}
	return validateCore(spec)
}

// CreateGroup pulls the images, creates the sandbox and starts the
// containers (see runtime.Runtime). On failure everything it made is
// removed again.
func (r *Runtime) CreateGroup(ctx context.Context, spec runtime.GroupSpec) (_ runtime.GroupStatus, err error) {
	if err := validateSpec(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.checkGPUs(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	g, err := r.lockGroup(spec.ID)
	if err != nil {
		return runtime.GroupStatus{}, err
	}
	defer g.op.Unlock()
	ctx = r.nsctx(ctx)

	rec := newRecord(spec)
	if err := r.writeRecord(rec, true); err != nil {
		if errors.Is(err, errExists) {
			return runtime.GroupStatus{}, fmt.Errorf("group %q already exists", spec.ID)
		}
		return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, err)
	}
	defer func() {
		if err != nil {
			g.stopWatchers()
			g.stopForwards()
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if terr := r.teardown(cctx, spec.ID); terr != nil {
				r.log.Warn("cleaning up after a failed create", "group", spec.ID, "err", terr)
			}
			r.forgetGroup(spec.ID, g)
		}
	}()

	// The sandbox (network namespace, address, hosts file) is made while
	// the images are resolved and, for a group without init containers, its
	// containers created: none of that needs the sandbox, only the tasks
	// started below do. It has ended before anything returns (the clean-up
	// above runs after it).
	sandbox := make(chan error, 1)
	go func() { sandbox <- r.setupSandbox(ctx, rec) }()
	waitSandbox := sync.OnceValue(func() error { return <-sandbox })
	defer waitSandbox()

	images, err := r.pullImages(ctx, spec)
	if err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.prepareVolumes(ctx, spec, volumesCreate); err != nil {
		return runtime.GroupStatus{}, err
	}
	conts := make([]client.Container, len(spec.Containers))
	create := func() error {
		for i, c := range spec.Containers {
			cont, err := r.createContainer(ctx, rec, spec, c, images[c.Name], false)
			if err != nil {
				return fmt.Errorf("group %q: container %q: %w", spec.ID, c.Name, err)
			}
			conts[i] = cont
		}
		return nil
	}
	if len(spec.InitContainers) == 0 {
		if err := create(); err != nil {
			return runtime.GroupStatus{}, err
		}
	}
	if err := waitSandbox(); err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: sandbox: %w", spec.ID, err)
	}
	if err := r.writeResolvConf(spec, rec); err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: resolv.conf: %w", spec.ID, err)
	}
	r.startForwards(spec.ID, g, spec)
	if err := r.runInitContainers(ctx, rec, spec, images); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.initDone(rec); err != nil {
		return runtime.GroupStatus{}, err
	}
	if len(spec.InitContainers) > 0 {
		if err := create(); err != nil {
			return runtime.GroupStatus{}, err
		}
	}
	for i, c := range spec.Containers {
		if err := r.startTask(ctx, spec.ID, c.Name, conts[i], 0); err != nil {
			return runtime.GroupStatus{}, fmt.Errorf("group %q: container %q: %w", spec.ID, c.Name, err)
		}
	}
	for _, c := range spec.Containers {
		r.startWatcher(g, spec.ID, c.Name, spec.RestartPolicy)
		r.startProbes(g, spec.ID, c, spec.RestartPolicy)
	}
	return r.status(ctx, rec)
}

// RecoverGroup re-adopts a group (see runtime.Runtime): it recreates what is
// missing (sandbox, containers) and watches every container again. Calling
// it on a healthy, watched group changes nothing.
func (r *Runtime) RecoverGroup(ctx context.Context, spec runtime.GroupSpec) (runtime.GroupStatus, error) {
	if err := validateSpec(spec); err != nil {
		return runtime.GroupStatus{}, err
	}
	g, err := r.lockGroup(spec.ID)
	if err != nil {
		return runtime.GroupStatus{}, err
	}
	defer g.op.Unlock()
	ctx = r.nsctx(ctx)

	rec := newRecord(spec)
	if old, err := r.readRecord(spec.ID); err == nil {
		rec.IP, rec.Bridge, rec.InitPending = old.IP, old.Bridge, old.InitPending && rec.InitPending
	} else if !errors.Is(err, runtime.ErrNotFound) {
		return runtime.GroupStatus{}, err
	}
	if err := r.writeRecord(rec, false); err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, err)
	}

	// The sandbox: gone after a reboot (the file stays, unmounted).
	if rec.IP == "" || !netNSMounted(r.netnsPath(spec.ID)) {
		if err := r.releaseSandbox(ctx, spec.ID); err != nil {
			return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, err)
		}
		rec.IP = ""
		if err := r.setupSandbox(ctx, rec); err != nil {
			return runtime.GroupStatus{}, fmt.Errorf("group %q: sandbox: %w", spec.ID, err)
		}
	}

	g.mu.Lock()
	forwarding := g.forwards != nil
	g.mu.Unlock()
	if !forwarding {
		r.startForwards(spec.ID, g, spec)
	}
	// Volumes: a secret's tmpfs is gone after a reboot.
	if err := r.prepareVolumes(ctx, spec, volumesRecover); err != nil {
		return runtime.GroupStatus{}, err
	}
	if err := r.writeResolvConf(spec, rec); err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: resolv.conf: %w", spec.ID, err)
	}

	// Containers no longer in the spec go.
	conts, err := r.client.Containers(ctx, groupFilter(spec.ID))
	if err != nil {
		return runtime.GroupStatus{}, fmt.Errorf("group %q: list containers: %w", spec.ID, err)
	}
	for _, c := range conts {
		info, err := c.Info(ctx)
		if err != nil {
			continue
		}
		if name := info.Labels[labelName]; !rec.hasContainer(name) {
			g.stopWatcher(name)
			if err := r.removeContainer(ctx, spec.ID, c); err != nil {
				return runtime.GroupStatus{}, fmt.Errorf("group %q: %w", spec.ID, err)
			}
		}
	}

	// Init containers that had not all completed run again (from the
	// first); once the containers have been started, they do not.
	if rec.InitPending {
		images, err := r.pullImages(ctx, runtime.GroupSpec{ID: spec.ID, InitContainers: spec.InitContainers,
			Credentials: spec.Credentials, ResolveCredential: spec.ResolveCredential})
		if err != nil {
			return runtime.GroupStatus{}, err
		}
		if err := r.runInitContainers(ctx, rec, spec, images); err != nil {
			return runtime.GroupStatus{}, err
		}
		if err := r.initDone(rec); err != nil {
			return runtime.GroupStatus{}, err
		}
	}

	// Missing containers are created; all are watched.
	var errs []error
	for _, c := range spec.Containers {
		if _, err := r.client.LoadContainer(ctx, containerID(spec.ID, c.Name)); errdefs.IsNotFound(err) {
			img, err := r.pullImage(ctx, spec, c.Name, c.Image)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			cont, err := r.createContainer(ctx, rec, spec, c, img, false)
			if err == nil {
				err = r.startTask(ctx, spec.ID, c.Name, cont, 0)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("group %q: container %q: %w", spec.ID, c.Name, err))
				continue
			}
		} else if err != nil {
			errs = append(errs, fmt.Errorf("group %q: container %q: %w", spec.ID, c.Name, err))
			continue
		}
		r.startWatcher(g, spec.ID, c.Name, spec.RestartPolicy)
		r.startProbes(g, spec.ID, c, spec.RestartPolicy)
	}
	st, err := r.status(ctx, rec)
	return st, errors.Join(append(errs, err)...)
}

// DeleteGroup kills and removes the group's containers, logs, sandbox and
// address. Unknown ids succeed.
func (r *Runtime) DeleteGroup(ctx context.Context, id string) error {
	if !validID.MatchString(id) {
		return nil // could not have been created
	}
	g, err := r.lockGroup(id)
	if err != nil {
		return err
	}
	defer g.op.Unlock()
	g.stopWatchers()
	g.stopForwards()
	if err := r.teardown(r.nsctx(ctx), id); err != nil {
		return fmt.Errorf("delete group %q: %w", id, err)
	}
	r.forgetGroup(id, g)
	return nil
}

// teardown removes everything of group id that exists. If the address
// cannot be released the group's files stay, so that a retry can.
func (r *Runtime) teardown(ctx context.Context, id string) error {
	conts, err := r.client.Containers(ctx, groupFilter(id))
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range conts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.removeContainer(ctx, id, c); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := r.releaseSandbox(ctx, id); err != nil {
		return err
	}
	if err := r.removeGroupVolumes(id); err != nil {
		return err
	}
	return os.RemoveAll(r.groupDir(id))
}

// setupSandbox creates the group's network namespace, attaches it (setting
// rec.IP), writes its hosts file and saves rec.
func (r *Runtime) setupSandbox(ctx context.Context, rec *record) error {
	path := r.netnsPath(rec.ID)
	if _, err := os.Stat(path); err == nil {
		// Left by a crash: release whatever it held first.
		if err := r.releaseSandbox(ctx, rec.ID); err != nil {
			return err
		}
	}
	nw, done, err := r.attach(ctx, rec)
	if err != nil {
		return err
	}
	if err := createNetNS(path); err != nil {
		done(false)
		return err
	}
	ip, err := nw.add(ctx, rec.ID, path)
	if err != nil {
		if derr := nw.del(ctx, rec.ID, path); derr != nil {
			r.log.Warn("releasing a half-made attachment", "group", rec.ID, "err", derr)
		}
		removeNetNS(path)
		done(false)
		return err
	}
	done(true)
	rec.IP = ip
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", ip, hostname(rec.ID))
	if err := fileutil.WriteAtomic(filepath.Join(r.groupDir(rec.ID), "hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	return r.writeRecord(rec, false)
}

// releaseSandbox detaches the group from the network (releasing its address)
// and removes its namespace. Nothing there is fine.
func (r *Runtime) releaseSandbox(ctx context.Context, id string) error {
	path := r.netnsPath(id)
	_, statErr := os.Stat(path)
	_, recErr := os.Stat(r.recordPath(id))
	if statErr != nil && recErr != nil {
		return nil // never attached
	}
	ns := ""
	if netNSMounted(path) {
		ns = path
	}
	if err := r.detach(ctx, id, ns); err != nil {
		return err
	}
	return removeNetNS(path)
}

// Status reads the group's state from containerd.
func (r *Runtime) Status(ctx context.Context, id string) (runtime.GroupStatus, error) {
	rec, err := r.readRecord(id)
	if err != nil {
		return runtime.GroupStatus{}, err
	}
	return r.status(r.nsctx(ctx), rec)
}

func (r *Runtime) status(ctx context.Context, rec *record) (runtime.GroupStatus, error) {
	st := runtime.GroupStatus{ID: rec.ID, IP: rec.IP}
	for _, name := range rec.InitContainers {
		cs, err := r.containerStatus(ctx, rec.ID, name)
		if err != nil {
			return runtime.GroupStatus{}, fmt.Errorf("group %q: init container %q: %w", rec.ID, name, err)
		}
		st.InitContainers = append(st.InitContainers, cs)
	}
	for _, name := range rec.Containers {
		cs, err := r.containerStatus(ctx, rec.ID, name)
		if err != nil {
			return runtime.GroupStatus{}, fmt.Errorf("group %q: container %q: %w", rec.ID, name, err)
		}
		st.Containers = append(st.Containers, cs)
	}
	return st, nil
}

func (r *Runtime) containerStatus(ctx context.Context, groupID, name string) (runtime.ContainerStatus, error) {
	cid := containerID(groupID, name)
	cs := runtime.ContainerStatus{Name: name, Current: runtime.ContainerState{State: runtime.StateWaiting}}
	info, err := r.client.ContainerService().Get(ctx, cid)
	if errdefs.IsNotFound(err) {
		return cs, nil // not created yet
	}
	if err != nil {
		return cs, err
	}
	bk := parseBookkeeping(info.Labels)
	cs.RestartCount, cs.Previous = bk.restarts, bk.previous

	resp, err := r.client.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: cid})
	if err = errgrpc.ToNative(err); errdefs.IsNotFound(err) {
		switch {
		case bk.exited != nil:
			cs.Current = *bk.exited
		case !bk.waitUntil.IsZero():
			cs.Current.DetailStatus = "CrashLoopBackOff"
		}
		return cs, nil
	}
	if err != nil {
		return cs, err
	}
	p := resp.GetProcess()
	switch p.GetStatus() {
	case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
		cs.Current = runtime.ContainerState{State: runtime.StateRunning, StartTime: bk.started}
	case tasktypes.Status_STOPPED:
		cs.Current = terminated(bk.started, p.GetExitedAt().AsTime(), int(p.GetExitStatus()))
		switch {
		case bk.exited != nil && bk.exited.FinishTime.Equal(cs.Current.FinishTime):
			cs.Current = *bk.exited // handled: it knows about OOM kills
		case cs.Current.ExitCode == oomExitCode:
			// Not handled yet: its watcher is behind. Read the OOM counter
			// as it will, so no reader sees an OOM kill as a plain Error.
			// If the watcher handled it meanwhile (and removed the cgroup),
			// its record says.
			if cont, err := r.client.LoadContainer(ctx, cid); err == nil && oomKilled(ctx, cont) {
				cs.Current.DetailStatus = detailOOMKilled
			} else if info, err := r.client.ContainerService().Get(ctx, cid); err == nil {
				if ex := parseBookkeeping(info.Labels).exited; ex != nil && ex.FinishTime.Equal(cs.Current.FinishTime) {
					cs.Current = *ex
				}
			}
		}
	}
	cs.Ready = readyOf(info.Labels, cs.Current)
	return cs, nil
}

// groupFilter selects a group's containers in containerd.
func groupFilter(id string) string {
	return fmt.Sprintf("labels.%q==%q", labelGroup, id)
}

// hostname is the host name of a group's containers: its id, cut to 63
// characters.
func hostname(id string) string {
	if len(id) > 63 {
		id = id[:63]
	}
	return strings.Trim(id, "-")
}
