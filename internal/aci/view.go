package aci

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/store"
)

// NotFound is ARM's error for a missing container group.
func NotFound(rg, name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.ContainerInstance/containerGroups/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, rg)
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
	// While provisioning, the runtime already reports what it has started
	// (init containers running or done): the view tells the truth at every
	// moment.
	if (g.ProvisioningState == Succeeded || g.ProvisioningState == Creating) && !g.Stopped {
		st, err := s.Runtime.Status(ctx, g.RuntimeID)
		switch {
		case err == nil:
			live = &st
		case errors.Is(err, runtime.ErrNotFound):
		default:
			return nil, err
		}
	}
	v := buildView(g, events, live)
	if live == nil && !g.Stopped {
		// Nothing live (a failed deployment was torn down): how each
		// container's last run ended is what is known.
		exits, err := s.exits(ctx, g.RuntimeID)
		if err != nil {
			return nil, err
		}
		for name, e := range exits {
			cv := v.Containers[name]
			if cv == nil {
				cv = v.InitContainers[name]
			}
			if cv != nil && cv.CurrentState.State == string(runtime.StateWaiting) {
				code := e.ExitCode
				cv.CurrentState = ContainerState{State: string(runtime.StateTerminated), ExitCode: &code, FinishTime: e.Time, DetailStatus: detailOf(code)}
			}
		}
	}
	return v, nil
}

// detailOf is ACI's detailStatus of a run that ended with code.
func detailOf(code int) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

func buildView(g *Group, events map[string][]Event, live *runtime.GroupStatus) *View {
	v := &View{Group: g, Events: []Event{}, Containers: map[string]*ContainerView{}, InitContainers: map[string]*ContainerView{}}
	byName := map[string]runtime.ContainerStatus{}
	if live != nil {
		for _, c := range append(append([]runtime.ContainerStatus(nil), live.InitContainers...), live.Containers...) {
			byName[c.Name] = c
		}
	}
	fill := func(c Container, into map[string]*ContainerView) {
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
		} else if g.Stopped {
			cv.CurrentState = ContainerState{State: string(runtime.StateTerminated), FinishTime: g.StoppedAt, DetailStatus: "Stopped"}
		}
		into[c.Name] = cv
	}
	for _, c := range g.InitContainers {
		fill(c, v.InitContainers)
	}
	for _, c := range g.Containers {
		fill(c, v.Containers)
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
	if g.Stopped {
		return "Stopped"
	}
	if g.ProvisioningState != Succeeded {
		if g.ProvisioningState == Failed && g.FailureCode == codeInitContainerFailed {
			return "Failed"
		}
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

// SortKey orders groups in lists: by resource group, then name, case
// insensitively.
func SortKey(g *Group) string {
	return strings.ToLower(g.ResourceGroup) + "/" + strings.ToLower(g.Name)
}

// List returns the groups of a subscription, or of one resource group when
// rg is not empty, ordered by SortKey.
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
		var err error
		out, err = listTx(tx, prefix)
		return err
	})
	return out, err
}

func listTx(tx store.Tx, prefix string) ([]*Group, error) {
	var out []*Group
	err := tx.Scan(tableGroups, prefix, func(_ string, v []byte) bool {
		var g Group
		if json.Unmarshal(v, &g) == nil {
			out = append(out, &g)
		}
		return true
	})
	sort.SliceStable(out, func(i, j int) bool { return SortKey(out[i]) < SortKey(out[j]) })
	return out, err
}
