package aci

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

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
	tableExits   = "aci/exits"   // runtime id/container → lastExit (the last run's end)
	tableNames   = "aci/names"   // fqdn → group key (dnsNameLabel reservations)
)

const (
	maxEvents = 50 // per container; the oldest are dropped
	// Operation kinds.
	opKindWrite   = "containerGroups/write"
	opKindStart   = "containerGroups/start"
	opKindRestart = "containerGroups/restart"
	// defaultProvisioningTimeout bounds pulling and starting a group, as
	// ACI's provisioningTimeoutInSeconds (1800) does.
	defaultProvisioningTimeout = 1800 * time.Second
)

var errProvisioningTimeout = errors.New("provisioning timed out")

// Provisioning states.
const (
	Pending   = "Pending"
	Creating  = "Creating"
	Succeeded = "Succeeded"
	Failed    = "Failed"
)

// Quota is a subscription's container-instance quota in one region (ACI's
// defaults: 100 container groups, 100 standard cores).
type Quota struct {
	ContainerGroups int
	StandardCores   int
}

// DefaultQuota is ACI's default quota.
var DefaultQuota = Quota{ContainerGroups: 100, StandardCores: 100}

// GPUPolicy says what to do with GPU requests.
type GPUPolicy struct {
	// HostSKUs are the GPU SKUs (K80, P100, V100) the host really has, with
	// how many of each; empty: none.
	HostSKUs map[string]int
	// Refuse: a group requesting a GPU SKU the host lacks is refused as ACI
	// refuses a SKU its region lacks. Otherwise it runs without the device
	// (the runtime says so in a Warning event).
	Refuse bool
}

// Service manages container groups.
//
// Changes to one group are serialised through its flight: a create,
// update, start or restart holds it until its work ends (anything else
// meanwhile gets 409 ContainerGroupTransitioning); a delete cancels work in
// flight and waits for it. Every state change and the operation that
// reports it are written in one transaction, so a crash leaves either the
// old or the new state; Start resumes what a previous run left in progress.
// Every operation ends (Succeeded or Failed): store writes are retried
// until they land or berth stops, and a stopped berth resumes them.
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
	// Identities resolves and creates managed identities; nil: groups
	// with identities are refused.
	Identities Identities
	// Pull turns a managed identity into a registry credential (pulls by
	// identity); nil: such pulls fail.
	Pull IdentityPull
	// Quota per subscription and region; zero: DefaultQuota.
	Quota Quota
	// GPU decides GPU requests.
	GPU GPUPolicy
	// Host is the host's capacity (capabilities); zero: measured.
	Host HostCapacity
	// RetryDelay is the first delay between retries of a failed store write
	// or runtime call in background work (doubling up to 5 s); default
	// 100 ms.
	RetryDelay time.Duration

	sessions sessionTable // exec and attach tickets (exec.go)

	mu         sync.Mutex
	flights    map[string]*flight // by group key
	closed     bool
	ctx        context.Context // canceled by Close
	cancel     context.CancelFunc
	stopEvents func()
	wg         sync.WaitGroup
}

// flightKind is what holds a group's flight.
type flightKind int

const (
	flightWrite  flightKind = iota // create, update, start, restart (async work)
	flightStop                     // stop (synchronous)
	flightDelete                   // delete: takes over from anything else
)

type flight struct {
	kind   flightKind
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

func (s *Service) quota() Quota {
	if s.Quota == (Quota{}) {
		return DefaultQuota
	}
	return s.Quota
}

// Close refuses new changes, stops work in flight (it resumes on the next
// Start) and the event subscription, and waits for background work.
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

// reserve takes the group's flight. A delete cancels work in flight and
// waits for it; anything else finding the group busy gets
// ContainerGroupTransitioning.
func (s *Service) reserve(k string, kind flightKind, name string) (*flight, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errShutdown
		}
		cur := s.flights[k]
		if cur == nil {
			ctx, cancel := context.WithCancel(s.ctx)
			f := &flight{kind: kind, ctx: ctx, cancel: cancel, done: make(chan struct{})}
			s.flights[k] = f
			s.mu.Unlock()
			return f, nil
		}
		s.mu.Unlock()
		if kind != flightDelete || cur.kind == flightDelete {
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

// goBackground runs fn in the background unless the service is closing
// (the WaitGroup is only added to under the lock that Close sets closed
// with, so Close's Wait never races an Add). It reports whether fn runs.
func (s *Service) goBackground(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// retry calls fn until it succeeds, ctx ends, or attempts run out
// (attempts <= 0: until ctx ends), sleeping RetryDelay, doubled each time
// up to 5 s, between calls. It returns fn's last error, or ctx's.
func (s *Service) retry(ctx context.Context, attempts int, fn func() error) error {
	delay := s.RetryDelay
	if delay <= 0 {
		delay = 100 * time.Millisecond
	}
	for i := 1; ; i++ {
		err := fn()
		if err == nil {
			return nil
		}
		if attempts > 0 && i >= attempts {
			return err
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}
