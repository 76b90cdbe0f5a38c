package aci

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/store"
)

// The lifecycle of a container group, as transitions:
//
//	action   from                         work (background)      ends as
//	PUT      (none), any not in flight    provision: new runtime  Succeeded | Failed
//	                                      group replaces the old
//	start    Stopped, Failed              provision               Succeeded | Failed
//	start    Succeeded (running)          none (204)              unchanged
//	restart  Succeeded                    restart in place        Succeeded | Failed
//	restart  Stopped, Failed              provision (as start)    Succeeded | Failed
//	stop     any not in flight            none: runtime deleted   Stopped
//	delete   any (cancels work)           none: runtime deleted   (gone)
//
// Work is recorded on the group (Work, OperationID) in the same
// transaction as the request, so a restarted berth resumes it (reconcile.go).

// Work kinds recorded on a group while they run.
const (
	workProvision = "provision"
	workRestart   = "restart"
	workStop      = "stop"
)

// Failure codes.
const (
	codeInitContainerFailed = "InitContainerFailed"
)

// CreateOrUpdate validates and stores g, then provisions it in the
// background. It returns the stored group's view (instanceView Pending),
// whether it was created, and the async operation that tracks provisioning.
// A refused request changes nothing.
func (s *Service) CreateOrUpdate(ctx context.Context, g *Group) (*View, bool, *operation.Operation, error) {
	if err := s.applyProfile(ctx, g); err != nil {
		return nil, false, nil, err
	}
	if err := Validate(g); err != nil {
		return nil, false, nil, err
	}
	if err := s.checkGPU(g); err != nil {
		return nil, false, nil, err
	}
	if _, err := s.Resources.Get(ctx, g.Subscription, g.ResourceGroup); err != nil {
		return nil, false, nil, err
	}
	if _, err := s.network(ctx, g); err != nil {
		return nil, false, nil, err
	}
	tenant, err := s.tenantOf(ctx, g.Subscription)
	if err != nil {
		return nil, false, nil, err
	}
	k := key(g.Subscription, g.ResourceGroup, g.Name)
	f, err := s.reserve(k, flightWrite, g.Name)
	if err != nil {
		return nil, false, nil, err
	}
	g = g.clone()
	// Identities: user-assigned ones must exist; the system identity is the
	// stored group's, or made now (and removed again if the request fails).
	prev, err := s.Get(ctx, g.Subscription, g.ResourceGroup, g.Name)
	if err != nil && !apierr.Is(err, apierr.NotFound) {
		s.release(k, f)
		return nil, false, nil, err
	}
	if err := s.resolveUserIdentities(ctx, g); err != nil {
		s.release(k, f)
		return nil, false, nil, err
	}
	newSystem, err := s.ensureSystemIdentity(ctx, g, prev)
	if err != nil {
		s.release(k, f)
		return nil, false, nil, err
	}
	if g.Identity != nil && g.Identity.TenantID == "" {
		g.Identity.TenantID = tenant
	}
	op := s.Operations.New(g.ID(), opKindWrite)
	var created bool
	var oldFqdn string
	var oldIdentity *Identity
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
			oldIdentity = old.Identity
			if old.Identity.HasSystem() && g.Identity.HasSystem() && old.Identity.PrincipalID != g.Identity.PrincipalID {
				// Another request changed the group since it was read
				// (cannot happen under the flight; kept for safety).
				g.Identity.PrincipalID, g.Identity.TenantID, g.Identity.ClientID = old.Identity.PrincipalID, old.Identity.TenantID, old.Identity.ClientID
			}
			g.Replaces = append(append([]string(nil), old.Replaces...), old.RuntimeID)
			oldFqdn = old.Fqdn
		}
		if err := s.checkQuota(tx, g); err != nil {
			return err
		}
		if err := s.reserveName(tx, g, tenant, oldFqdn); err != nil {
			return err
		}
		g.ProvisioningState, g.UpdatedAt, g.IP = Pending, now, ""
		g.Stopped, g.StoppedAt = false, time.Time{}
		g.RuntimeID = newRuntimeID()
		g.OperationID, g.Work = op.ID, workProvision
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
		if newSystem {
			s.dropSystemIdentity(context.WithoutCancel(ctx), g.Identity)
		}
		return nil, false, nil, err
	}
	if oldIdentity.HasSystem() && !g.Identity.HasSystem() {
		s.dropSystemIdentity(context.WithoutCancel(ctx), oldIdentity)
	}
	if oldFqdn != "" && oldFqdn != g.Fqdn {
		s.publish(oldFqdn, "")
	}
	s.useSubnet(g)
	if !s.launch(k, f, g.clone(), workProvision, false) {
		return nil, false, nil, errShutdown
	}
	return buildView(g, nil, nil), created, op, nil
}

func newRuntimeID() string { return strings.ReplaceAll(uuid.NewString(), "-", "") }

// errUpdateNotAllowed is ACI's answer to an update it only allows by
// deleting the group first.
func errUpdateNotAllowed(name string) error {
	return apierr.New(apierr.Invalid, "InvalidContainerGroupUpdate",
		"The updates on container group '%s' are invalid. If you are going to update the os type, restart policy, network profile, CPU, memory or GPU resources for a container group, you must delete it first and then create a new one.", name)
}

// checkUpdate refuses changes ACI only allows by deleting the group first.
func checkUpdate(old, g *Group) error {
	if !strings.EqualFold(normLoc(old.Location), normLoc(g.Location)) {
		return apierr.New(apierr.Invalid, "InvalidResourceLocation",
			"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
			old.Name, old.Location, old.ResourceGroup, g.Location)
	}
	if !strings.EqualFold(old.OSType, g.OSType) || !strings.EqualFold(old.RestartPolicy, g.RestartPolicy) {
		return errUpdateNotAllowed(old.Name)
	}
	if !slices.Equal(subnetKeys(old), subnetKeys(g)) || !strings.EqualFold(old.NetworkProfileID, g.NetworkProfileID) {
		return errUpdateNotAllowed(old.Name)
	}
	for _, c := range g.Containers {
		for _, oc := range old.Containers {
			if oc.Name == c.Name && !sameResources(oc, c) {
				return errUpdateNotAllowed(old.Name)
			}
		}
	}
	return nil
}

func subnetKeys(g *Group) []string {
	var out []string
	for _, s := range g.SubnetIDs {
		out = append(out, strings.ToLower(s.ID))
	}
	return out
}

func sameResources(a, b Container) bool {
	eqRes := func(x, y *Resources) bool {
		if x == nil || y == nil {
			return x == y
		}
		if x.CPU != y.CPU || x.MemoryGB != y.MemoryGB {
			return false
		}
		if x.GPU == nil || y.GPU == nil {
			return x.GPU == y.GPU
		}
		return *x.GPU == *y.GPU
	}
	return eqRes(&a.Requests, &b.Requests) && eqRes(a.Limits, b.Limits)
}

func normLoc(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

// StopGroup stops a group: its containers are killed and removed, its
// address released; it keeps its configuration and reports Stopped until
// started. Stopping a stopped group, or one whose containers all ended
// under restart policy Never/OnFailure, changes nothing (as ACI).
func (s *Service) StopGroup(ctx context.Context, sub, rg, name string) error {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return err
	}
	k := key(sub, rg, name)
	f, err := s.reserve(k, flightStop, name)
	if err != nil {
		return err
	}
	defer s.release(k, f)
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return err
	}
	if g.Stopped {
		return nil
	}
	if v, err := s.view(ctx, g); err == nil && (v.State == "Succeeded" || v.State == "Failed") && g.ProvisioningState == Succeeded {
		return nil
	}
	// Record the intent first: a berth that stops halfway finishes the stop
	// when it starts again instead of re-adopting the group.
	if _, err := s.update(ctx, g, func(_ store.Tx, g *Group) error { g.Work = workStop; return nil }); err != nil {
		return err
	}
	return s.finishStop(context.WithoutCancel(ctx), g)
}

// finishStop removes g's runtime groups and records it stopped.
func (s *Service) finishStop(ctx context.Context, g *Group) error {
	for _, id := range append(append([]string(nil), g.Replaces...), g.RuntimeID) {
		if err := s.Runtime.DeleteGroup(ctx, id); err != nil {
			return fmt.Errorf("stop: delete runtime group %s: %w", id, err)
		}
	}
	_, err := s.update(ctx, g, func(tx store.Tx, g *Group) error {
		for _, id := range g.Replaces {
			if err := forgetRuntime(tx, id); err != nil {
				return err
			}
		}
		g.Replaces = nil
		g.Stopped, g.StoppedAt, g.IP, g.Work = true, s.Clock.Now().UTC(), "", ""
		if g.ProvisioningState != Failed {
			g.ProvisioningState = Succeeded
		}
		return nil
	})
	if err == nil {
		s.publish(g.Fqdn, "")
	}
	return err
}

// StartGroup starts a stopped (or failed) group again: a new deployment of
// the same configuration (images pulled again, maybe a new address). It
// returns nil and no error when the group runs already.
func (s *Service) StartGroup(ctx context.Context, sub, rg, name string) (*operation.Operation, error) {
	return s.redeploy(ctx, sub, rg, name, false)
}

// RestartGroup restarts a running group's containers in place (same
// address); a stopped or failed group is started instead.
func (s *Service) RestartGroup(ctx context.Context, sub, rg, name string) (*operation.Operation, error) {
	return s.redeploy(ctx, sub, rg, name, true)
}

func (s *Service) redeploy(ctx context.Context, sub, rg, name string, restart bool) (*operation.Operation, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	k := key(sub, rg, name)
	f, err := s.reserve(k, flightWrite, name)
	if err != nil {
		return nil, err
	}
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		s.release(k, f)
		return nil, err
	}
	running := !g.Stopped && g.ProvisioningState == Succeeded
	if running && !restart {
		s.release(k, f)
		return nil, nil
	}
	kind, work := opKindStart, workProvision
	if running {
		kind, work = opKindRestart, workRestart
	}
	op := s.Operations.New(g.ID(), kind)
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		cur, err := getGroup(tx, sub, rg, name)
		if err != nil {
			return err
		}
		if cur.RuntimeID != g.RuntimeID {
			return errTransition(name)
		}
		if work == workProvision {
			cur.Replaces = append(cur.Replaces, cur.RuntimeID)
			cur.RuntimeID = newRuntimeID()
			cur.ProvisioningState, cur.IP = Pending, ""
			cur.Stopped, cur.StoppedAt = false, time.Time{}
			cur.FailureCode, cur.FailureMessage = "", ""
			if err := tx.Put(tableRuntime, cur.RuntimeID, []byte(k)); err != nil {
				return err
			}
		}
		cur.OperationID, cur.Work, cur.UpdatedAt = op.ID, work, s.Clock.Now().UTC()
		if err := s.Operations.StartTx(tx, op); err != nil {
			return err
		}
		*g = *cur
		return putGroup(tx, cur)
	})
	if err != nil {
		s.release(k, f)
		return nil, err
	}
	if !s.launch(k, f, g.clone(), work, false) {
		return nil, errShutdown
	}
	return op, nil
}

// launch runs g's work in the background under the flight f. It reports
// false (and releases f) if berth is shutting down: the work resumes on the
// next start.
func (s *Service) launch(k string, f *flight, g *Group, work string, resume bool) bool {
	ok := s.goBackground(func() {
		defer s.release(k, f)
		switch work {
		case workRestart:
			s.restart(f.ctx, g)
		default:
			s.provision(f.ctx, g, resume)
		}
	})
	if !ok {
		s.release(k, f)
	}
	return ok
}

// provision deletes the runtime groups g replaces, creates g's, and settles
// the group's state and its operation in one transaction. If berth shuts
// down meanwhile, nothing is settled: Start resumes it. A delete taking over
// (ctx canceled) settles the operation itself.
func (s *Service) provision(ctx context.Context, g *Group, resume bool) {
	for _, old := range slices.Clone(g.Replaces) {
		err := s.retry(ctx, 5, func() error { return s.Runtime.DeleteGroup(ctx, old) })
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.logf("delete replaced runtime group %s: %v", old, err)
			s.finish(g, apierr.New(apierr.Internal, "ContainerGroupDeploymentFailed",
				"The container group '%s' could not be deployed: its previous containers could not be removed. Retry the request.", g.Name), nil)
			return
		}
		if !s.mustUpdate(g, func(tx store.Tx, g *Group) error {
			g.Replaces = slices.DeleteFunc(g.Replaces, func(r string) bool { return r == old })
			return forgetRuntime(tx, old)
		}) {
			s.abandon(g)
			return
		}
	}
	if !s.mustUpdate(g, func(_ store.Tx, g *Group) error { g.ProvisioningState = Creating; return nil }) {
		s.abandon(g)
		return
	}
	// A previous run may have left a half-created runtime group behind (a
	// fresh create has a new runtime id: nothing to clear).
	if resume {
		if err := s.retry(ctx, 5, func() error { return s.Runtime.DeleteGroup(ctx, g.RuntimeID) }); err != nil && ctx.Err() == nil {
			s.logf("clear runtime group %s: %v", g.RuntimeID, err)
		}
	}
	network, err := s.network(ctx, g)
	if err != nil {
		s.finish(g, err, nil)
		return
	}
	cctx, cancel := context.WithTimeoutCause(ctx, s.provisioningTimeout(g), errProvisioningTimeout)
	st, err := s.Runtime.CreateGroup(cctx, s.runtimeSpec(g, network))
	cause := context.Cause(cctx)
	cancel()
	if s.ctx.Err() != nil || ctx.Err() != nil {
		// Shutting down (resumed on the next start) or a delete took over
		// (it removes the runtime group and settles the operation).
		return
	}
	if err != nil {
		s.logf("provision %s: %v", g.ID(), err)
		s.finish(g, failure(g, err, cause), nil)
		return
	}
	s.finish(g, nil, &st)
}

// restart restarts g's containers in place and settles the operation.
func (s *Service) restart(ctx context.Context, g *Group) {
	network, err := s.network(ctx, g)
	if err != nil {
		s.finish(g, err, nil)
		return
	}
	spec := s.runtimeSpec(g, network)
	st, err := s.Runtime.RestartGroup(ctx, spec)
	if errors.Is(err, runtime.ErrNotFound) {
		// The runtime lost the group (host reboot): bring it back.
		st, err = s.Runtime.RecoverGroup(ctx, spec)
	}
	if s.ctx.Err() != nil || ctx.Err() != nil {
		return
	}
	if err != nil {
		s.logf("restart %s: %v", g.ID(), err)
		s.finish(g, failure(g, err, nil), nil)
		return
	}
	s.finish(g, nil, &st)
}

func (s *Service) provisioningTimeout(g *Group) time.Duration {
	if g.ProvisioningTimeoutSeconds > 0 {
		return time.Duration(g.ProvisioningTimeoutSeconds) * time.Second
	}
	return defaultProvisioningTimeout
}

// failure maps a runtime error to ACI's error for the operation.
func failure(g *Group, err, cause error) error {
	var ie *runtime.ImageError
	switch {
	case errors.Is(cause, errProvisioningTimeout):
		timeout := g.ProvisioningTimeoutSeconds
		if timeout == 0 {
			timeout = int(defaultProvisioningTimeout.Seconds())
		}
		return apierr.New(apierr.Invalid, "ContainerGroupProvisioningTimeout",
			"The container group '%s' did not finish provisioning within %d seconds.", g.Name, timeout)
	case errors.As(err, &ie):
		return apierr.New(apierr.Invalid, "InaccessibleImage",
			"The image '%s' in container group '%s' is not accessible. Please check the image and registry credential.", ie.Image, g.Name)
	case errors.Is(err, runtime.ErrInitContainer):
		return apierr.New(apierr.Invalid, codeInitContainerFailed,
			"An init container of container group '%s' failed: %s. The containers were not started.", g.Name, cleanErr(err))
	case errors.Is(err, runtime.ErrVolume):
		return apierr.New(apierr.Invalid, "VolumeMountFailed",
			"A volume of container group '%s' could not be mounted: %s.", g.Name, cleanErr(err))
	case errors.Is(err, runtime.ErrUnsupported):
		return apierr.New(apierr.Invalid, "UnsupportedFeature", "The container group '%s' could not be deployed: %s.", g.Name, cleanErr(err))
	}
	return apierr.New(apierr.Invalid, "ContainerGroupDeploymentFailed",
		"The container group '%s' could not be deployed. See the containers' events for details.", g.Name)
}

// cleanErr is an error's message without the runtime's class prefixes.
func cleanErr(err error) string {
	msg := err.Error()
	for _, p := range []string{runtime.ErrInitContainer.Error() + ": ", runtime.ErrVolume.Error() + ": ", runtime.ErrUnsupported.Error() + ": "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

// finish settles g's work: its state and its operation in one transaction
// (retried until it lands; if berth stops first, the next start settles
// it). If g's record moved on meanwhile, the runtime group it made goes
// and the operation ends as canceled.
func (s *Service) finish(g *Group, cause error, st *runtime.GroupStatus) {
	applied := s.mustUpdate(g, func(tx store.Tx, g *Group) error {
		if cause != nil {
			e := apierr.As(cause)
			g.ProvisioningState, g.FailureCode, g.FailureMessage = Failed, e.Code, e.Message
		} else {
			g.ProvisioningState, g.FailureCode, g.FailureMessage = Succeeded, "", ""
			if st != nil {
				g.IP = st.IP
			}
		}
		g.Work = ""
		return s.Operations.FinishTx(tx, g.OperationID, cause)
	})
	if applied {
		if cause == nil {
			s.publish(g.Fqdn, g.IP)
		}
		return
	}
	s.abandon(g)
}

// abandon ends work whose group record moved on (or could not be written
// before berth stopped): unless berth is stopping (the next start resumes),
// the runtime group the work made goes and its operation ends as canceled.
func (s *Service) abandon(g *Group) {
	if s.ctx.Err() != nil {
		return
	}
	bg := context.Background()
	_ = s.retry(s.ctx, 5, func() error { return s.Runtime.DeleteGroup(bg, g.RuntimeID) })
	_ = s.retry(s.ctx, 0, func() error { return s.Operations.Finish(bg, g.OperationID, errCanceledOp) })
}

// Delete removes a group: cancels work in flight, deletes the runtime
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
	f, err := s.reserve(k, flightDelete, name)
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
		if cur.Work != "" && cur.Work != workStop {
			if err := s.Operations.FinishTx(tx, cur.OperationID, errCanceledOp); err != nil {
				return err
			}
		}
		if err := releaseNameTx(tx, cur.Fqdn, k); err != nil {
			return err
		}
		return tx.Delete(tableGroups, k)
	})
	if err != nil {
		return nil, err
	}
	s.publish(g.Fqdn, "")
	s.releaseSubnet(g)
	s.dropSystemIdentity(dctx, g.Identity)
	return v, nil
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

// Logs returns a container's (or init container's) log, the last tail
// lines when tail > 0, each line prefixed with its time when timestamps.
func (s *Service) Logs(ctx context.Context, sub, rg, name, container string, opts LogOptions) (string, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return "", err
	}
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return "", err
	}
	if err := hasContainer(g, container); err != nil {
		return "", err
	}
	if g.Stopped {
		return "", nil
	}
	b, err := runtime.ReadLogs(ctx, s.Runtime, g.RuntimeID, container, runtime.LogOptions{Tail: opts.Tail, Timestamps: opts.Timestamps})
	if errors.Is(err, runtime.ErrNotFound) {
		return "", nil // not started yet
	}
	return string(b), err
}

func hasContainer(g *Group, name string) error {
	for _, c := range append(append([]Container(nil), g.InitContainers...), g.Containers...) {
		if c.Name == name {
			return nil
		}
	}
	return apierr.New(apierr.NotFound, "ContainerNotFound", "The container '%s' could not be found in container group '%s'.", name, g.Name)
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
