package aci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/store"
)

// Store tables.
const (
	tableGroups  = "aci/groups"  // sub/rg/name (lower-case) → Group
	tableRuntime = "aci/runtime" // runtime id → group key, for every runtime group a record owns
	tableEvents  = "aci/events"  // runtime id/container → []Event
)

const (
	maxEvents   = 50 // per container; the oldest are dropped
	opKindWrite = "containerGroups/write"
	// provisioningTimeout bounds pulling and starting a group, as ACI's
	// provisioningTimeoutInSeconds (1800) does.
	provisioningTimeout = 30 * time.Minute
)

var errProvisioningTimeout = errors.New("provisioning timed out")

// Provisioning states.
const (
	Pending   = "Pending"
	Creating  = "Creating"
	Succeeded = "Succeeded"
	Failed    = "Failed"
)

// Service manages container groups.
//
// Changes to one group are serialised: a create or update holds the group's
// flight until provisioning ends (a second PUT meanwhile gets 409
// ContainerGroupTransitioning); a delete cancels a create in flight and
// waits for it. Every state change and the operation that reports it are
// written in one transaction, so a crash leaves either the old or the new
// state; Start resumes what a previous run left in progress.
type Service struct {
	Store      store.Store
	Runtime    runtime.Runtime
	Resources  *resources.Service
	Operations *operation.Tracker
	Clock      clock.Clock
	Log        *slog.Logger
	// Networks resolves subnets and network profiles; nil: none exist.
	Networks Networks
	// Names publishes dnsNameLabel fqdns; nil: not published.
	Names Names

	sessions sessionTable // exec and attach tickets (exec.go)

	mu         sync.Mutex
	flights    map[string]*flight // by group key
	closed     bool
	ctx        context.Context // canceled by Close
	cancel     context.CancelFunc
	stopEvents func()
	wg         sync.WaitGroup
}

type flight struct {
	delete bool
	ctx    context.Context // canceled when a delete takes over or berth stops
	cancel context.CancelFunc
	done   chan struct{}
}

var (
	errShutdown   = apierr.New(apierr.Unavailable, "ServiceUnavailable", "berth is shutting down; please retry.")
	errTransition = func(name string) error {
		return apierr.New(apierr.Conflict, "ContainerGroupTransitioning", "The container group '%s' is still transitioning, please retry later.", name)
	}
	errCanceledOp  = apierr.New(apierr.Conflict, "Canceled", "The operation was canceled because the container group was deleted.")
	errInterrupted = apierr.New(apierr.Internal, "OperationInterrupted", "berth restarted while the operation was running; please retry.")
)

func key(sub, rg, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

func (s *Service) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Warn(fmt.Sprintf(format, args...))
	}
}

// Start subscribes to the runtime's events, registers the resource-group
// delete hook and reconciles with the runtime after a (re)start: running
// groups are re-adopted, interrupted creates resume, operations left in
// progress are settled, and runtime groups no record owns are deleted.
func (s *Service) Start(ctx context.Context) error {
	s.flights = map[string]*flight{}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	events, stop := s.Runtime.Subscribe()
	s.stopEvents = stop
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		// Record what has arrived in one transaction (one fsync) at a time.
		for ev := range events {
			batch := []runtime.Event{ev}
		drain:
			for len(batch) < 64 {
				select {
				case more, ok := <-events:
					if !ok {
						break drain
					}
					batch = append(batch, more)
				default:
					break drain
				}
			}
			s.record(batch...)
		}
	}()
	s.Resources.OnDeleteGroup(s.deleteAllIn)

	groups, err := s.list(ctx, "")
	if err != nil {
		return err
	}
	owned := map[string]bool{}
	resuming := map[string]bool{} // operation ids
	for _, g := range groups {
		owned[g.RuntimeID] = true
		for _, r := range g.Replaces {
			owned[r] = true
		}
		switch g.ProvisioningState {
		case Succeeded:
			st, err := s.Runtime.RecoverGroup(ctx, s.runtimeSpec(g))
			if err != nil {
				s.logf("recover group %s: %v", g.ID(), err)
				continue
			}
			if st.IP != "" && st.IP != g.IP {
				_, _ = s.update(ctx, g, func(_ store.Tx, g *Group) error { g.IP = st.IP; return nil })
			}
		case Pending, Creating:
			k := key(g.Subscription, g.ResourceGroup, g.Name)
			f, err := s.reserve(k, false, g.Name)
			if err != nil {
				return err
			}
			resuming[g.OperationID] = true
			s.launch(k, f, g, true)
		}
	}
	// Settle write operations nobody resumes.
	ops, err := s.Operations.InProgress(ctx)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if op.Kind != opKindWrite || resuming[op.ID] {
			continue
		}
		var cause error = errInterrupted
		for _, g := range groups {
			if g.OperationID == op.ID && strings.EqualFold(g.ID(), op.ResourceID) {
				switch g.ProvisioningState {
				case Succeeded:
					cause = nil
				case Failed:
					cause = apierr.New(apierr.Invalid, g.FailureCode, "%s", g.FailureMessage)
				}
			}
		}
		if err := s.Operations.Finish(ctx, op.ID, cause); err != nil {
			return err
		}
	}
	// Sweep runtime groups no record owns (a crash between creating one and
	// recording it, or an old runtime that predates this data).
	ids, err := s.Runtime.ListGroups(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !owned[id] {
			s.logf("deleting runtime group %s: no container group owns it", id)
			if err := s.Runtime.DeleteGroup(ctx, id); err != nil {
				s.logf("delete orphan runtime group %s: %v", id, err)
			}
		}
	}
	return nil
}

// Close refuses new changes, stops provisioning in flight (it resumes on the
// next Start) and the event subscription, and waits for background work.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	if s.stopEvents != nil {
		s.stopEvents()
	}
	s.wg.Wait()
}

// reserve takes the group's flight. A delete cancels a create in flight and
// waits for it; anything else finding the group busy gets
// ContainerGroupTransitioning.
func (s *Service) reserve(k string, del bool, name string) (*flight, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errShutdown
		}
		cur := s.flights[k]
		if cur == nil {
			ctx, cancel := context.WithCancel(s.ctx)
			f := &flight{delete: del, ctx: ctx, cancel: cancel, done: make(chan struct{})}
			s.flights[k] = f
			s.mu.Unlock()
			return f, nil
		}
		s.mu.Unlock()
		if !del || cur.delete {
			return nil, errTransition(name)
		}
		cur.cancel()
		<-cur.done
	}
}

// release gives the flight back (only if it is still the group's).
func (s *Service) release(k string, f *flight) {
	s.mu.Lock()
	if s.flights[k] == f {
		delete(s.flights, k)
	}
	s.mu.Unlock()
	f.cancel()
	close(f.done)
}

// CreateOrUpdate validates and stores g, then provisions it in the
// background. It returns the stored group, whether it was created, and the
// async operation that tracks provisioning.
func (s *Service) CreateOrUpdate(ctx context.Context, g *Group) (*Group, bool, *operation.Operation, error) {
	if err := Validate(g); err != nil {
		return nil, false, nil, err
	}
	k := key(g.Subscription, g.ResourceGroup, g.Name)
	f, err := s.reserve(k, false, g.Name)
	if err != nil {
		return nil, false, nil, err
	}
	g = g.clone()
	op := s.Operations.New(g.ID(), opKindWrite)
	var created bool
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if err := resources.RequireActiveTx(tx, g.Subscription, g.ResourceGroup); err != nil {
			return err
		}
		now := s.Clock.Now().UTC()
		old, err := getGroup(tx, g.Subscription, g.ResourceGroup, g.Name)
		switch {
		case apierr.Is(err, apierr.NotFound):
			created = true
			g.CreatedAt = now
		case err != nil:
			return err
		default:
			if err := checkUpdate(old, g); err != nil {
				return err
			}
			g.Name, g.CreatedAt = old.Name, old.CreatedAt
			g.Replaces = append(append([]string(nil), old.Replaces...), old.RuntimeID)
		}
		g.ProvisioningState, g.UpdatedAt, g.IP = Pending, now, ""
		g.RuntimeID = strings.ReplaceAll(uuid.NewString(), "-", "")
		g.OperationID = op.ID
		g.FailureCode, g.FailureMessage = "", ""
		if err := s.Operations.StartTx(tx, op); err != nil {
			return err
		}
		if err := tx.Put(tableRuntime, g.RuntimeID, []byte(k)); err != nil {
			return err
		}
		return putGroup(tx, g)
	})
	if err != nil {
		s.release(k, f)
		return nil, false, nil, err
	}
	s.launch(k, f, g.clone(), false)
	return g, created, op, nil
}

// checkUpdate refuses changes ACI only allows by deleting the group first.
func checkUpdate(old, g *Group) error {
	if !strings.EqualFold(normLoc(old.Location), normLoc(g.Location)) {
		return apierr.New(apierr.Invalid, "InvalidResourceLocation",
			"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
			old.Name, old.Location, old.ResourceGroup, g.Location)
	}
	notAllowed := func(prop string) error {
		return apierr.New(apierr.Invalid, "ContainerGroupUpdateNotAllowed",
			"The property '%s' of container group '%s' cannot be updated. Delete the container group and create it again to change it.", prop, old.Name)
	}
	if !strings.EqualFold(old.OSType, g.OSType) {
		return notAllowed("osType")
	}
	if !strings.EqualFold(old.RestartPolicy, g.RestartPolicy) {
		return notAllowed("restartPolicy")
	}
	for _, c := range g.Containers {
		for _, oc := range old.Containers {
			if oc.Name == c.Name && oc.Requests != c.Requests {
				return notAllowed("containers[" + c.Name + "].resources.requests")
			}
		}
	}
	return nil
}

func normLoc(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

// launch provisions g in the background under the flight f.
func (s *Service) launch(k string, f *flight, g *Group, resume bool) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.release(k, f)
		s.provision(f.ctx, g, resume)
	}()
}

// provision deletes the runtime groups g replaces, creates g's, and settles
// the group's state and its operation in one transaction. If berth shuts
// down meanwhile, nothing is settled: Start resumes it.
func (s *Service) provision(ctx context.Context, g *Group, resume bool) {
	for _, old := range g.Replaces {
		if err := s.Runtime.DeleteGroup(ctx, old); err != nil {
			if ctx.Err() == nil {
				s.logf("delete replaced runtime group %s: %v", old, err)
			}
			return
		}
		_, _ = s.update(context.Background(), g, func(tx store.Tx, g *Group) error {
			g.Replaces = slices.DeleteFunc(g.Replaces, func(r string) bool { return r == old })
			return forgetRuntime(tx, old)
		})
	}
	if ok, _ := s.update(context.Background(), g, func(_ store.Tx, g *Group) error { g.ProvisioningState = Creating; return nil }); !ok {
		return
	}
	// A previous run may have left a half-created runtime group behind (a
	// fresh create has a new runtime id: nothing to clear).
	if resume {
		if err := s.Runtime.DeleteGroup(ctx, g.RuntimeID); err != nil && ctx.Err() == nil {
			s.logf("clear runtime group %s: %v", g.RuntimeID, err)
		}
	}
	cctx, cancel := context.WithTimeoutCause(ctx, provisioningTimeout, errProvisioningTimeout)
	st, err := s.Runtime.CreateGroup(cctx, s.runtimeSpec(g))
	cancel()
	if s.ctx.Err() != nil {
		return // shutting down: resumed on the next Start
	}
	if ctx.Err() != nil {
		return // canceled by a delete, which removes the group and settles
	}
	var cause error
	if err != nil {
		code := "ContainerGroupDeploymentFailed"
		msg := fmt.Sprintf("The container group '%s' could not be deployed. See the containers' events for details.", g.Name)
		if errors.Is(context.Cause(cctx), errProvisioningTimeout) {
			code = "ContainerGroupProvisioningTimeout"
			msg = fmt.Sprintf("The container group '%s' did not finish provisioning within %d seconds.", g.Name, int(provisioningTimeout.Seconds()))
		} else if errors.Is(err, runtime.ErrImagePull) {
			code = "InaccessibleImage"
			msg = fmt.Sprintf("The image '%s' in container group '%s' is not accessible. Please check the image and registry credential.", imageOf(err, g), g.Name)
		}
		s.logf("provision %s: %v", g.ID(), err)
		cause = apierr.New(apierr.Invalid, code, "%s", msg)
	}
	ok, uerr := s.update(context.Background(), g, func(tx store.Tx, g *Group) error {
		if cause != nil {
			e := apierr.As(cause)
			g.ProvisioningState, g.FailureCode, g.FailureMessage = Failed, e.Code, e.Message
		} else {
			g.ProvisioningState, g.IP = Succeeded, st.IP
		}
		return s.Operations.FinishTx(tx, g.OperationID, cause)
	})
	if !ok && uerr == nil {
		// The record moved on without us: do not leave our containers behind.
		_ = s.Runtime.DeleteGroup(context.Background(), g.RuntimeID)
		_ = s.Operations.Finish(context.Background(), g.OperationID, errCanceledOp)
	}
}

// imageOf finds which image of g a pull error is about.
func imageOf(err error, g *Group) string {
	for _, c := range g.Containers {
		if strings.Contains(err.Error(), c.Image) {
			return c.Image
		}
	}
	if len(g.Containers) > 0 {
		return g.Containers[0].Image
	}
	return ""
}

func (s *Service) runtimeSpec(g *Group) runtime.GroupSpec {
	spec := runtime.GroupSpec{
		ID:            g.RuntimeID,
		RestartPolicy: runtime.RestartPolicy(g.RestartPolicy),
		Labels: map[string]string{
			"berth.subscription": g.Subscription, "berth.resourceGroup": g.ResourceGroup, "berth.containerGroup": g.Name,
		},
	}
	for _, c := range g.Containers {
		rc := runtime.ContainerSpec{Name: c.Name, Image: c.Image, Command: c.Command}
		rc.Liveness, rc.Readiness = runtimeProbe(c.LivenessProbe), runtimeProbe(c.ReadinessProbe)
		for _, e := range c.Env {
			rc.Env = append(rc.Env, runtime.EnvVar{Name: e.Name, Value: e.Value})
		}
		lim := c.Requests
		if c.Limits != nil {
			lim = *c.Limits
		}
		rc.CPU = lim.CPU
		rc.MemoryBytes = int64(lim.MemoryGB * (1 << 30))
		for _, p := range c.Ports {
			rc.Ports = append(rc.Ports, runtime.Port{Port: p.Port, Protocol: p.Protocol})
		}
		spec.Containers = append(spec.Containers, rc)
	}
	for _, rc := range g.RegistryCredentials {
		spec.Credentials = append(spec.Credentials, runtime.RegistryCredential{Server: rc.Server, Username: rc.Username, Password: rc.Password})
	}
	return spec
}

// Get returns a stored group (without instanceView) or ResourceNotFound.
func (s *Service) Get(ctx context.Context, sub, rg, name string) (*Group, error) {
	var g *Group
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		g, err = getGroup(tx, sub, rg, name)
		return err
	})
	return g, err
}

// NotFound is ARM's error for a missing container group.
func NotFound(rg, name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.ContainerInstance/containerGroups/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, rg)
}

// View returns a group with its live instanceView.
func (s *Service) View(ctx context.Context, sub, rg, name string) (*View, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	return s.view(ctx, g)
}

func (s *Service) view(ctx context.Context, g *Group) (*View, error) {
	events, err := s.events(ctx, g.RuntimeID)
	if err != nil {
		return nil, err
	}
	var live *runtime.GroupStatus
	if g.ProvisioningState == Succeeded {
		st, err := s.Runtime.Status(ctx, g.RuntimeID)
		switch {
		case err == nil:
			live = &st
		case errors.Is(err, runtime.ErrNotFound):
		default:
			return nil, err
		}
	}
	return buildView(g, events, live), nil
}

func buildView(g *Group, events map[string][]Event, live *runtime.GroupStatus) *View {
	v := &View{Group: g, Events: []Event{}, Containers: map[string]*ContainerView{}}
	byName := map[string]runtime.ContainerStatus{}
	if live != nil {
		for _, c := range live.Containers {
			byName[c.Name] = c
		}
	}
	for _, c := range g.Containers {
		cv := &ContainerView{CurrentState: ContainerState{State: string(runtime.StateWaiting)}, Events: events[c.Name]}
		if cv.Events == nil {
			cv.Events = []Event{}
		}
		if st, ok := byName[c.Name]; ok {
			cv.RestartCount = st.RestartCount
			cv.CurrentState = fromRuntime(st.Current)
			if st.Previous != nil {
				p := fromRuntime(*st.Previous)
				cv.PreviousState = &p
			}
		}
		v.Containers[c.Name] = cv
	}
	v.State = groupState(g, live)
	return v
}

func fromRuntime(st runtime.ContainerState) ContainerState {
	cs := ContainerState{State: string(st.State), StartTime: st.StartTime, FinishTime: st.FinishTime, DetailStatus: st.DetailStatus}
	if st.State == runtime.StateTerminated {
		code := st.ExitCode
		cs.ExitCode = &code
	}
	return cs
}

// groupState derives instanceView.state as ACI reports it.
func groupState(g *Group, live *runtime.GroupStatus) string {
	if g.ProvisioningState != Succeeded {
		return "Pending"
	}
	if live == nil {
		return "Stopped"
	}
	running, terminated, failed := 0, 0, 0
	for _, c := range live.Containers {
		switch c.Current.State {
		case runtime.StateRunning:
			running++
		case runtime.StateTerminated:
			terminated++
			if c.Current.ExitCode != 0 {
				failed++
			}
		}
	}
	switch {
	case running > 0:
		return "Running"
	case terminated == len(live.Containers) && g.RestartPolicy != string(runtime.RestartAlways):
		if failed > 0 {
			return "Failed"
		}
		return "Succeeded"
	case len(live.Containers) > 0:
		// Waiting to restart (back-off) counts as running, as ACI reports.
		return "Running"
	}
	return "Pending"
}

// List returns the groups of a subscription, or of one resource group when
// rg is not empty, ordered by name.
func (s *Service) List(ctx context.Context, sub, rg string) ([]*Group, error) {
	if rg != "" {
		if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
			return nil, err
		}
		return s.list(ctx, strings.ToLower(sub)+"/"+strings.ToLower(rg)+"/")
	}
	return s.list(ctx, strings.ToLower(sub)+"/")
}

func (s *Service) list(ctx context.Context, prefix string) ([]*Group, error) {
	var out []*Group
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableGroups, prefix, func(_ string, v []byte) bool {
			var g Group
			if json.Unmarshal(v, &g) == nil {
				out = append(out, &g)
			}
			return true
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, err
}

// Delete removes a group: cancels a create in flight, deletes the runtime
// groups (processes, network namespace, address), then the record. It
// returns the group as it was.
func (s *Service) Delete(ctx context.Context, sub, rg, name string) (*View, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	return s.remove(ctx, sub, rg, name)
}

func (s *Service) remove(ctx context.Context, sub, rg, name string) (*View, error) {
	k := key(sub, rg, name)
	f, err := s.reserve(k, true, name)
	if err != nil {
		return nil, err
	}
	defer s.release(k, f)
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, g)
	if err != nil {
		// The runtime could not say; answer with what is stored.
		v = buildView(g, nil, nil)
	}
	// Teardown must finish even if the client goes away.
	dctx := context.WithoutCancel(ctx)
	for _, id := range append(append([]string(nil), g.Replaces...), g.RuntimeID) {
		if err := s.Runtime.DeleteGroup(dctx, id); err != nil {
			return nil, fmt.Errorf("delete runtime group %s: %w", id, err)
		}
	}
	err = s.Store.Update(dctx, func(tx store.Tx) error {
		cur, err := getGroup(tx, sub, rg, name)
		if err != nil {
			return err
		}
		if cur.RuntimeID != g.RuntimeID {
			return fmt.Errorf("container group %s changed during delete", name)
		}
		for _, id := range append(cur.Replaces, cur.RuntimeID) {
			if err := forgetRuntime(tx, id); err != nil {
				return err
			}
		}
		if err := s.Operations.FinishTx(tx, cur.OperationID, errCanceledOp); err != nil {
			return err
		}
		return tx.Delete(tableGroups, k)
	})
	return v, err
}

func (s *Service) deleteAllIn(ctx context.Context, sub, rg string) error {
	groups, err := s.list(ctx, strings.ToLower(sub)+"/"+strings.ToLower(rg)+"/")
	if err != nil {
		return err
	}
	for _, g := range groups {
		if _, err := s.remove(ctx, g.Subscription, g.ResourceGroup, g.Name); err != nil && !apierr.Is(err, apierr.NotFound) {
			return err
		}
	}
	return nil
}

// Logs returns a container's log (see LogOptions).
func (s *Service) Logs(ctx context.Context, sub, rg, name, container string, opts LogOptions) (string, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return "", err
	}
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return "", err
	}
	if !slices.ContainsFunc(g.Containers, func(c Container) bool { return c.Name == container }) {
		return "", apierr.New(apierr.NotFound, "ContainerNotFound", "The container '%s' could not be found in container group '%s'.", container, g.Name)
	}
	b, err := runtime.ReadLogs(ctx, s.Runtime, g.RuntimeID, container, runtime.LogOptions{Tail: opts.Tail, Timestamps: opts.Timestamps})
	if errors.Is(err, runtime.ErrNotFound) {
		return "", nil // not started yet
	}
	return string(b), err
}

// SetTags replaces a group's tags (PATCH).
func (s *Service) SetTags(ctx context.Context, sub, rg, name string, tags map[string]string) error {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return err
	}
	return s.Store.Update(ctx, func(tx store.Tx) error {
		g, err := getGroup(tx, sub, rg, name)
		if err != nil {
			return err
		}
		g.Tags, g.UpdatedAt = tags, s.Clock.Now().UTC()
		return putGroup(tx, g)
	})
}

func getGroup(tx store.Tx, sub, rg, name string) (*Group, error) {
	g, err := store.GetJSON[Group](tx, tableGroups, key(sub, rg, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFound(rg, name)
	}
	return g, err
}

func putGroup(tx store.Tx, g *Group) error {
	return store.PutJSON(tx, tableGroups, key(g.Subscription, g.ResourceGroup, g.Name), g)
}

// forgetRuntime drops what is stored about one runtime group: its owner
// index entry and its events.
func forgetRuntime(tx store.Tx, runtimeID string) error {
	if err := tx.Delete(tableRuntime, runtimeID); err != nil {
		return err
	}
	var keys []string
	if err := tx.Scan(tableEvents, runtimeID+"/", func(k string, _ []byte) bool { keys = append(keys, k); return true }); err != nil {
		return err
	}
	for _, k := range keys {
		if err := tx.Delete(tableEvents, k); err != nil {
			return err
		}
	}
	return nil
}

// update applies fn to the stored group in one transaction if it is still
// g's incarnation (same runtime id), and mirrors the result into g. It
// reports whether it applied.
func (s *Service) update(ctx context.Context, g *Group, fn func(store.Tx, *Group) error) (bool, error) {
	applied := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		cur, err := getGroup(tx, g.Subscription, g.ResourceGroup, g.Name)
		if apierr.Is(err, apierr.NotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.RuntimeID != g.RuntimeID {
			return nil
		}
		if err := fn(tx, cur); err != nil {
			return err
		}
		cur.UpdatedAt = s.Clock.Now().UTC()
		if err := putGroup(tx, cur); err != nil {
			return err
		}
		*g = *cur
		applied = true
		return nil
	})
	if err != nil {
		s.logf("update group %s: %v", g.ID(), err)
	}
	return applied, err
}

// record folds a runtime event into the stored events of its container, if
// a container group still owns that runtime group. Repeats of an event
// (same name and message) are folded into one entry with a count.
func (s *Service) record(evs ...runtime.Event) {
	err := s.Store.Update(context.Background(), func(tx store.Tx) error {
		for _, ev := range evs {
			if err := recordTx(tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.logf("record events: %v", err)
	}
}

func recordTx(tx store.Tx, ev runtime.Event) error {
	if ev.Kind == runtime.EventExited {
		return nil // exits show in the container state, not as ACI events
	}
	name := string(ev.Kind)
	typ := "Normal"
	if ev.Warning {
		typ = "Warning"
	}
	t := ev.Time.UTC().Truncate(time.Second)
	k := ev.GroupID + "/" + ev.Container
	if _, err := tx.Get(tableRuntime, ev.GroupID); errors.Is(err, store.ErrNotFound) {
		return nil // deleted, or not ours
	} else if err != nil {
		return err
	}
	var list []Event
	if b, err := tx.Get(tableEvents, k); err == nil {
		_ = json.Unmarshal(b, &list)
	}
	e := Event{Count: 1, FirstTimestamp: t, Name: name, Message: ev.Message, Type: typ}
	if i := slices.IndexFunc(list, func(x Event) bool { return x.Name == name && x.Message == ev.Message }); i >= 0 {
		e.Count, e.FirstTimestamp = list[i].Count+1, list[i].FirstTimestamp
		list = slices.Delete(list, i, i+1)
	}
	e.LastTimestamp = t
	list = append(list, e)
	if len(list) > maxEvents {
		list = list[len(list)-maxEvents:]
	}
	return store.PutJSON(tx, tableEvents, k, list)
}

func (s *Service) events(ctx context.Context, runtimeID string) (map[string][]Event, error) {
	out := map[string][]Event{}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableEvents, runtimeID+"/", func(k string, v []byte) bool {
			var list []Event
			if json.Unmarshal(v, &list) == nil {
				out[strings.TrimPrefix(k, runtimeID+"/")] = list
			}
			return true
		})
	})
	return out, err
}
