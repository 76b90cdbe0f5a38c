package aci

import (
	"context"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/store"
)

// Start subscribes to the runtime's events, registers the resource-group
// delete hook and reconciles with the runtime after a (re)start: running
// groups are re-adopted (their restart policies and probes apply again),
// interrupted work resumes (creates, starts, restarts) or finishes
// (stops), operations left in progress are settled, and runtime groups no
// record owns are deleted.
func (s *Service) Start(ctx context.Context) error {
	s.flights = map[string]*flight{}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	events, stop := s.Runtime.Subscribe()
	s.stopEvents = stop
	s.goBackground(func() { s.consumeEvents(events) })
	s.Resources.OnDeleteGroup(s.deleteAllIn)
	s.Resources.OnDeleteGroup(s.deleteProfilesIn)

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
		k := key(g.Subscription, g.ResourceGroup, g.Name)
		switch {
		case g.Work == workStop:
			if err := s.finishStop(ctx, g); err != nil {
				s.logf("finish stopping %s: %v", g.ID(), err)
			}
		case g.Stopped:
		case g.Work == workProvision || g.ProvisioningState == Pending || g.ProvisioningState == Creating:
			f, err := s.reserve(k, flightWrite, g.Name)
			if err != nil {
				return err
			}
			resuming[g.OperationID] = true
			s.launch(k, f, g, workProvision, true)
		case g.ProvisioningState == Succeeded:
			network, err := s.network(ctx, g)
			if err != nil {
				s.logf("recover group %s: %v", g.ID(), err)
				continue
			}
			st, err := s.Runtime.RecoverGroup(ctx, s.runtimeSpec(g, network))
			if err != nil {
				s.logf("recover group %s: %v", g.ID(), err)
				continue
			}
			if st.IP != "" && st.IP != g.IP {
				_, _ = s.update(ctx, g, func(_ store.Tx, g *Group) error { g.IP = st.IP; return nil })
			}
			s.publish(g.Fqdn, st.IP)
			if g.Work == workRestart {
				f, err := s.reserve(k, flightWrite, g.Name)
				if err != nil {
					return err
				}
				resuming[g.OperationID] = true
				s.launch(k, f, g, workRestart, true)
			}
		}
	}
	// Settle operations nobody resumes.
	ops, err := s.Operations.InProgress(ctx)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if resuming[op.ID] || (op.Kind != opKindWrite && op.Kind != opKindStart && op.Kind != opKindRestart) {
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
