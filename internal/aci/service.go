package aci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

const (
	tableGroups = "aci/groups" // key: sub/rg/name (lower-case) → Group
	tableEvents = "aci/events" // key: runtimeID/container → []Event
	maxEvents   = 50           // per container, oldest dropped
	opKindWrite = "containerGroups/write"
)

// Provisioning states.
const (
	Pending   = "Pending"
	Creating  = "Creating"
	Succeeded = "Succeeded"
	Failed    = "Failed"
)

// Service manages container groups.
type Service struct {
	Store      store.Store
	Runtime    runtime.Runtime
	Resources  *resources.Service
	Operations *operation.Tracker
	Clock      clock.Clock
	Log        *slog.Logger

	mu       sync.Mutex
	inflight map[string]*flight // by group key
	stop     func()
	wg       sync.WaitGroup
}

type flight struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func key(sub, rg, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

// Start subscribes to the runtime's events, registers the resource-group
// delete hook and re-adopts every stored group (berth restarted). Call once.
func (s *Service) Start(ctx context.Context) error {
	s.inflight = map[string]*flight{}
	events, cancel := s.Runtime.Subscribe()
	s.stop = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for ev := range events {
			s.record(ev)
		}
	}()
	s.Resources.OnDeleteGroup(s.deleteAllIn)

	groups, err := s.list(ctx, "")
	if err != nil {
		return err
	}
	ops, err := s.Operations.InProgress(ctx)
	if err != nil {
		return err
	}
	pendingOps := map[string]string{}
	for _, op := range ops {
		if op.Kind == opKindWrite {
			pendingOps[strings.ToLower(op.ResourceID)] = op.ID
		}
	}
	for _, g := range groups {
		switch g.ProvisioningState {
		case Succeeded:
			st, err := s.Runtime.RecoverGroup(ctx, s.runtimeSpec(g))
			if err != nil {
				s.logf("recover group %s: %v", g.ID(), err)
				continue
			}
			if st.IP != g.IP && st.IP != "" {
				s.update(ctx, g, func(g *Group) { g.IP = st.IP })
			}
		case Pending, Creating:
			// A create was cut off by a restart: drive it again.
			opID := pendingOps[strings.ToLower(g.ID())]
			s.launch(g, opID)
		}
	}
	return nil
}

// Close stops the event subscription and waits for background work.
func (s *Service) Close() {
	s.mu.Lock()
	for _, f := range s.inflight {
		f.cancel()
	}
	s.mu.Unlock()
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
}

func (s *Service) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Warn(fmt.Sprintf(format, args...))
	}
}

// CreateOrUpdate validates and stores g, then provisions it in the
// background. It returns the stored group, whether it was created, and the
// async operation that tracks provisioning.
func (s *Service) CreateOrUpdate(ctx context.Context, g *Group) (*Group, bool, *operation.Operation, error) {
	if _, err := s.Resources.Get(ctx, g.Subscription, g.ResourceGroup); err != nil {
		return nil, false, nil, err
	}
	if err := Validate(g); err != nil {
		return nil, false, nil, err
	}
	k := key(g.Subscription, g.ResourceGroup, g.Name)
	s.mu.Lock()
	if _, busy := s.inflight[k]; busy {
		s.mu.Unlock()
		return nil, false, nil, apierr.New(apierr.Conflict, "ContainerGroupTransitioning", "The container group '%s' is still transitioning, please retry later.", g.Name)
	}
	s.mu.Unlock()

	now := s.Clock.Now().UTC()
	old, err := s.Get(ctx, g.Subscription, g.ResourceGroup, g.Name)
	created := apierr.Is(err, apierr.NotFound)
	if err != nil && !created {
		return nil, false, nil, err
	}
	if !created {
		if !strings.EqualFold(old.OSType, g.OSType) {
			return nil, false, nil, apierr.New(apierr.Invalid, "ContainerGroupUpdateNotAllowed",
				"The 'osType' of container group '%s' cannot be updated. Please delete the container group and create it again.", g.Name)
		}
		g.Name = old.Name // keep the name as first written
		g.CreatedAt = old.CreatedAt
	} else {
		g.CreatedAt = now
	}
	g.ProvisioningState = Pending
	g.UpdatedAt = now
	g.IP = ""
	g.RuntimeID = strings.ReplaceAll(uuid.NewString(), "-", "")
	g.FailureCode, g.FailureMessage = "", ""
	op, err := s.Operations.Start(ctx, g.ID(), opKindWrite)
	if err != nil {
		return nil, false, nil, err
	}
	if err := s.put(ctx, g); err != nil {
		return nil, false, nil, err
	}
	var oldRT string
	if !created {
		oldRT = old.RuntimeID
	}
	s.launchReplacing(g, op.ID, oldRT)
	return g, created, op, nil
}

func (s *Service) launch(g *Group, opID string) { s.launchReplacing(g, opID, "") }

// launchReplacing provisions g in the background, first removing the
// runtime group oldRT that an update replaces.
func (s *Service) launchReplacing(g *Group, opID, oldRT string) {
	k := key(g.Subscription, g.ResourceGroup, g.Name)
	ctx, cancel := context.WithCancel(context.Background())
	f := &flight{cancel: cancel, done: make(chan struct{})}
	s.mu.Lock()
	s.inflight[k] = f
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(f.done)
		defer cancel()
		err := s.provision(ctx, g, oldRT)
		s.mu.Lock()
		delete(s.inflight, k)
		s.mu.Unlock()
		if opID != "" {
			if ferr := s.Operations.Finish(context.Background(), opID, err); ferr != nil {
				s.logf("finish operation %s: %v", opID, ferr)
			}
		}
	}()
}

func (s *Service) provision(ctx context.Context, g *Group, oldRT string) error {
	if oldRT != "" {
		if err := s.Runtime.DeleteGroup(ctx, oldRT); err != nil {
			s.logf("delete replaced runtime group %s: %v", oldRT, err)
		}
		s.dropEvents(context.Background(), oldRT)
	}
	s.update(context.Background(), g, func(g *Group) { g.ProvisioningState = Creating })
	// A previous run may have left a half-created runtime group behind.
	_ = s.Runtime.DeleteGroup(ctx, g.RuntimeID)
	st, err := s.Runtime.CreateGroup(ctx, s.runtimeSpec(g))
	if ctx.Err() != nil {
		return apierr.New(apierr.Conflict, "Canceled", "The operation was canceled.")
	}
	if err != nil {
		code, msg := "ContainerGroupDeploymentFailed", fmt.Sprintf("The container group '%s' could not be deployed: %v", g.Name, err)
		if errors.Is(err, runtime.ErrImagePull) {
			img := imageOf(err, g)
			code = "InaccessibleImage"
			msg = fmt.Sprintf("The image '%s' in container group '%s' is not accessible. Please check the image and registry credential.", img, g.Name)
		}
		s.update(context.Background(), g, func(g *Group) {
			g.ProvisioningState, g.FailureCode, g.FailureMessage = Failed, code, msg
		})
		return apierr.New(apierr.Invalid, code, "%s", msg)
	}
	s.update(context.Background(), g, func(g *Group) {
		g.ProvisioningState, g.IP = Succeeded, st.IP
	})
	return nil
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
		b, err := tx.Get(tableGroups, key(sub, rg, name))
		if errors.Is(err, store.ErrNotFound) {
			return NotFound(rg, name)
		}
		if err != nil {
			return err
		}
		g = new(Group)
		return json.Unmarshal(b, g)
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
	v := &View{Group: g, Events: []Event{}, Containers: map[string]*ContainerView{}}
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
	return v, nil
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
	if g.ProvisioningState != Succeeded || live == nil {
		if g.ProvisioningState == Succeeded {
			return "Stopped"
		}
		return "Pending"
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
	case terminated > 0 || len(live.Containers) > 0:
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
// group (processes, network namespace, address), then the record. It
// returns the group as it was.
func (s *Service) Delete(ctx context.Context, sub, rg, name string) (*View, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	v, err := s.view(ctx, g)
	if err != nil {
		return nil, err
	}
	return v, s.remove(ctx, g)
}

func (s *Service) remove(ctx context.Context, g *Group) error {
	k := key(g.Subscription, g.ResourceGroup, g.Name)
	s.mu.Lock()
	f := s.inflight[k]
	s.mu.Unlock()
	if f != nil {
		f.cancel()
		<-f.done
	}
	if err := s.Runtime.DeleteGroup(ctx, g.RuntimeID); err != nil {
		return fmt.Errorf("delete runtime group: %w", err)
	}
	s.dropEvents(ctx, g.RuntimeID)
	return s.Store.Update(ctx, func(tx store.Tx) error { return tx.Delete(tableGroups, k) })
}

func (s *Service) deleteAllIn(ctx context.Context, sub, rg string) error {
	groups, err := s.list(ctx, strings.ToLower(sub)+"/"+strings.ToLower(rg)+"/")
	if err != nil {
		return err
	}
	for _, g := range groups {
		if err := s.remove(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

// Logs returns a container's log, the last tail lines when tail > 0.
func (s *Service) Logs(ctx context.Context, sub, rg, name, container string, tail int) (string, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return "", err
	}
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return "", err
	}
	found := false
	for _, c := range g.Containers {
		if c.Name == container {
			found = true
		}
	}
	if !found {
		return "", apierr.New(apierr.NotFound, "ContainerNotFound", "The container '%s' could not be found in container group '%s'.", container, g.Name)
	}
	b, err := s.Runtime.Logs(ctx, g.RuntimeID, container, tail)
	if errors.Is(err, runtime.ErrNotFound) {
		return "", nil // not started yet
	}
	return string(b), err
}

func (s *Service) put(ctx context.Context, g *Group) error {
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return s.Store.Update(ctx, func(tx store.Tx) error {
		return tx.Put(tableGroups, key(g.Subscription, g.ResourceGroup, g.Name), b)
	})
}

// update applies fn to the stored copy of g if it is still the same
// incarnation (same runtime id), and mirrors the change into g.
func (s *Service) update(ctx context.Context, g *Group, fn func(*Group)) {
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		k := key(g.Subscription, g.ResourceGroup, g.Name)
		b, err := tx.Get(tableGroups, k)
		if err != nil {
			return err
		}
		var cur Group
		if err := json.Unmarshal(b, &cur); err != nil {
			return err
		}
		if cur.RuntimeID != g.RuntimeID {
			return nil
		}
		fn(&cur)
		cur.UpdatedAt = s.Clock.Now().UTC()
		if b, err = json.Marshal(&cur); err != nil {
			return err
		}
		*g = cur
		return tx.Put(tableGroups, k, b)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.logf("update group %s: %v", g.ID(), err)
	}
}

// record folds a runtime event into the stored events of its container.
func (s *Service) record(ev runtime.Event) {
	name := string(ev.Kind)
	if ev.Kind == runtime.EventExited {
		return // exits show in the container state, not as ACI events
	}
	typ := "Normal"
	if ev.Warning {
		typ = "Warning"
	}
	t := ev.Time.UTC().Truncate(time.Second)
	k := ev.GroupID + "/" + ev.Container
	err := s.Store.Update(context.Background(), func(tx store.Tx) error {
		var list []Event
		if b, err := tx.Get(tableEvents, k); err == nil {
			_ = json.Unmarshal(b, &list)
		}
		if n := len(list); n > 0 && list[n-1].Name == name && list[n-1].Message == ev.Message {
			list[n-1].Count++
			list[n-1].LastTimestamp = t
		} else {
			list = append(list, Event{Count: 1, FirstTimestamp: t, LastTimestamp: t, Name: name, Message: ev.Message, Type: typ})
		}
		if len(list) > maxEvents {
			list = list[len(list)-maxEvents:]
		}
		b, err := json.Marshal(list)
		if err != nil {
			return err
		}
		return tx.Put(tableEvents, k, b)
	})
	if err != nil {
		s.logf("record event: %v", err)
	}
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

func (s *Service) dropEvents(ctx context.Context, runtimeID string) {
	_ = s.Store.Update(ctx, func(tx store.Tx) error {
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
	})
}

// SetTags replaces a group's tags (PATCH).
func (s *Service) SetTags(ctx context.Context, sub, rg, name string, tags map[string]string) error {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return err
	}
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return err
	}
	s.update(ctx, g, func(g *Group) { g.Tags = tags })
	return nil
}
