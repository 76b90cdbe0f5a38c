// Package resources is the service behind ARM's Microsoft.Resources surface:
// subscriptions and resource groups. Names are case-insensitive (stored under
// lower-cased keys, returned as first written). Deleting a resource group
// deletes what it contains through the hooks other services register
// (OnDeleteGroup), so this package never imports them.
package resources

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/store"
)

const (
	tableSubs = "subscriptions"
	tableRGs  = "resourcegroups"
)

// Subscription is an Azure subscription.
type Subscription struct {
	ID          string `json:"id"` // the GUID
	TenantID    string `json:"tenantId"`
	DisplayName string `json:"displayName"`
	State       string `json:"state"`
}

// ResourceGroup is a resource group.
type ResourceGroup struct {
	Subscription      string            `json:"subscription"`
	Name              string            `json:"name"`
	Location          string            `json:"location"`
	Tags              map[string]string `json:"tags,omitempty"`
	ManagedBy         string            `json:"managedBy,omitempty"`
	ProvisioningState string            `json:"provisioningState"`
	CreatedAt         time.Time         `json:"createdAt"`
	// DeleteOperation is the async operation of a delete in progress.
	DeleteOperation string `json:"deleteOperation,omitempty"`
}

// ID is the ARM resource id.
func (g *ResourceGroup) ID() string {
	return "/subscriptions/" + g.Subscription + "/resourceGroups/" + g.Name
}

// DeleteHook deletes everything of one kind inside a resource group.
type DeleteHook func(ctx context.Context, subscription, group string) error

// Service manages subscriptions and resource groups.
type Service struct {
	Store      store.Store
	Clock      clock.Clock
	Operations *operation.Tracker
	Log        *slog.Logger

	mu      sync.Mutex
	hooks   []DeleteHook
	wg      sync.WaitGroup
	stopCtx context.Context
	stop    context.CancelFunc
	closed  bool
	running map[string]bool // group keys with a delete goroutine
}

// Start resumes resource-group deletes a previous run left unfinished. Call
// it after every service has registered its delete hook.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	s.stopCtx, s.stop = context.WithCancel(context.Background())
	s.mu.Unlock()
	var deleting []*ResourceGroup
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableRGs, "", func(_ string, v []byte) bool {
			var g ResourceGroup
			if json.Unmarshal(v, &g) == nil && g.ProvisioningState == "Deleting" {
				deleting = append(deleting, &g)
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	for _, g := range deleting {
		s.launchDelete(g.Subscription, g.Name, g.DeleteOperation)
	}
	return nil
}

// Close stops background deletes (they resume on the next Start) and waits
// for them.
func (s *Service) Close() {
	s.mu.Lock()
	s.closed = true
	if s.stop != nil {
		s.stop()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// OnDeleteGroup registers a hook run (in registration order) when a resource
// group is deleted, before the group itself disappears.
func (s *Service) OnDeleteGroup(h DeleteHook) {
	s.mu.Lock()
	s.hooks = append(s.hooks, h)
	s.mu.Unlock()
}

func subKey(id string) string { return strings.ToLower(id) }
func rgKey(sub, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(name)
}

// EnsureSubscription creates the subscription if it does not exist.
func (s *Service) EnsureSubscription(ctx context.Context, sub Subscription) error {
	return s.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(tableSubs, subKey(sub.ID)); err == nil {
			return nil
		}
		b, _ := json.Marshal(sub)
		return tx.Put(tableSubs, subKey(sub.ID), b)
	})
}

// GetSubscription returns a subscription or SubscriptionNotFound.
func (s *Service) GetSubscription(ctx context.Context, id string) (*Subscription, error) {
	var sub Subscription
	err := s.Store.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(tableSubs, subKey(id))
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", id)
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &sub)
	})
	if err != nil {
		return nil, err
	}
	return &sub, nil
}

// ListSubscriptions returns the subscriptions of a tenant.
func (s *Service) ListSubscriptions(ctx context.Context, tenant string) ([]*Subscription, error) {
	var out []*Subscription
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableSubs, "", func(_ string, v []byte) bool {
			var sub Subscription
			if json.Unmarshal(v, &sub) == nil && strings.EqualFold(sub.TenantID, tenant) {
				out = append(out, &sub)
			}
			return true
		})
	})
	return out, err
}

var rgName = regexp.MustCompile(`^[-\w._()]{1,90}$`)

// ValidateGroupName checks ARM's resource-group naming rules.
func ValidateGroupName(name string) error {
	if !rgName.MatchString(name) || strings.HasSuffix(name, ".") {
		return apierr.New(apierr.Invalid, "InvalidResourceGroup",
			"The provided resource group name '%s' has these invalid characters: The name can only be a letter, digit, '-', '.', '_', '(', ')' and cannot end with '.'. The name must be between 1 and 90 characters.", name)
	}
	return nil
}

// CreateOrUpdate creates a group or updates its tags (location cannot change).
// It reports whether the group was created.
func (s *Service) CreateOrUpdate(ctx context.Context, g ResourceGroup) (*ResourceGroup, bool, error) {
	if err := ValidateGroupName(g.Name); err != nil {
		return nil, false, err
	}
	if strings.TrimSpace(g.Location) == "" {
		return nil, false, apierr.New(apierr.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	var created bool
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		old, err := getRG(tx, g.Subscription, g.Name)
		switch {
		case err == nil:
			if old.ProvisioningState == "Deleting" {
				return apierr.New(apierr.Conflict, "ResourceGroupBeingDeleted", "The resource group '%s' is in deprovisioning state and cannot perform this operation.", old.Name)
			}
			if !strings.EqualFold(normLoc(old.Location), normLoc(g.Location)) {
				return apierr.New(apierr.Conflict, "InvalidResourceGroupLocation", "Invalid resource group location '%s'. The Resource group already exists in location '%s'.", g.Location, old.Location)
			}
			old.Tags, old.ManagedBy = g.Tags, g.ManagedBy
			g = *old
		case apierr.Is(err, apierr.NotFound):
			created = true
			g.ProvisioningState = "Succeeded"
			g.CreatedAt = s.Clock.Now().UTC()
		default:
			return err
		}
		return putRG(tx, &g)
	})
	if err != nil {
		return nil, false, err
	}
	return &g, created, nil
}

// Patch replaces the tags (and managedBy when set) of an existing group.
func (s *Service) Patch(ctx context.Context, sub, name string, tags map[string]string, setTags bool) (*ResourceGroup, error) {
	var g *ResourceGroup
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		if g, err = getRG(tx, sub, name); err != nil {
			return err
		}
		if setTags {
			g.Tags = tags
		}
		return putRG(tx, g)
	})
	return g, err
}

func normLoc(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

// Get returns a group or ResourceGroupNotFound.
func (s *Service) Get(ctx context.Context, sub, name string) (*ResourceGroup, error) {
	var g *ResourceGroup
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		g, err = getRG(tx, sub, name)
		return err
	})
	return g, err
}

// List returns the groups of a subscription ordered by name.
func (s *Service) List(ctx context.Context, sub string) ([]*ResourceGroup, error) {
	var out []*ResourceGroup
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableRGs, strings.ToLower(sub)+"/", func(_ string, v []byte) bool {
			var g ResourceGroup
			if json.Unmarshal(v, &g) == nil {
				out = append(out, &g)
			}
			return true
		})
	})
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, err
}

// BeginDelete starts deleting a group in the background: it marks the group
// Deleting and returns the operation that tracks the delete. Deleting a
// group that is already being deleted returns the delete in progress.
func (s *Service) BeginDelete(ctx context.Context, sub, name string) (*operation.Operation, error) {
	var op *operation.Operation
	var g *ResourceGroup
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		if g, err = getRG(tx, sub, name); err != nil {
			return err
		}
		if g.ProvisioningState == "Deleting" && g.DeleteOperation != "" {
			op = &operation.Operation{ID: g.DeleteOperation}
			return nil
		}
		op = s.Operations.New(g.ID(), "resourceGroups/delete")
		if err := s.Operations.StartTx(tx, op); err != nil {
			return err
		}
		g.ProvisioningState, g.DeleteOperation = "Deleting", op.ID
		return putRG(tx, g)
	})
	if err != nil {
		return nil, err
	}
	s.launchDelete(g.Subscription, g.Name, op.ID)
	return op, nil
}

// launchDelete runs one delete in the background, once per group.
func (s *Service) launchDelete(sub, name, opID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.stopCtx == nil {
		return
	}
	if s.running == nil {
		s.running = map[string]bool{}
	}
	k := rgKey(sub, name)
	if s.running[k] {
		return
	}
	s.running[k] = true
	ctx := s.stopCtx
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.delete(ctx, sub, name, opID)
		s.mu.Lock()
		delete(s.running, k)
		s.mu.Unlock()
		if err != nil && ctx.Err() == nil && s.Log != nil {
			s.Log.Warn("resource group delete failed", "group", name, "err", err)
		}
	}()
}

// delete runs the delete hooks, then removes the group and settles its
// operation in one transaction. If a hook fails, the group is kept (back to
// Succeeded, so the delete can be retried) and the operation fails. If berth
// is shutting down, nothing is settled: the next Start resumes the delete.
func (s *Service) delete(ctx context.Context, sub, name, opID string) error {
	s.mu.Lock()
	hooks := append([]DeleteHook(nil), s.hooks...)
	s.mu.Unlock()
	for _, h := range hooks {
		if err := h(ctx, sub, name); err != nil {
			if ctx.Err() != nil {
				return err
			}
			_ = s.Store.Update(context.Background(), func(tx store.Tx) error {
				if g, gerr := getRG(tx, sub, name); gerr == nil {
					g.ProvisioningState, g.DeleteOperation = "Succeeded", ""
					if err := putRG(tx, g); err != nil {
						return err
					}
				}
				return s.Operations.FinishTx(tx, opID, err)
			})
			return err
		}
	}
	return s.Store.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Delete(tableRGs, rgKey(sub, name)); err != nil {
			return err
		}
		return s.Operations.FinishTx(tx, opID, nil)
	})
}

// RequireActiveTx fails unless the resource group exists and is not being
// deleted. Services call it inside the transaction that creates a resource
// in the group, so a resource can never appear in a group being deleted.
func RequireActiveTx(tx store.Tx, sub, name string) error {
	g, err := getRG(tx, sub, name)
	if err != nil {
		return err
	}
	if g.ProvisioningState == "Deleting" {
		return apierr.New(apierr.Conflict, "ResourceGroupBeingDeleted",
			"The resource group '%s' is in deprovisioning state and cannot perform this operation.", g.Name)
	}
	return nil
}

// NotFound is the ARM error for a missing resource group.
func NotFound(name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
}

func getRG(tx store.Tx, sub, name string) (*ResourceGroup, error) {
	g, err := store.GetJSON[ResourceGroup](tx, tableRGs, rgKey(sub, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFound(name)
	}
	return g, err
}

func putRG(tx store.Tx, g *ResourceGroup) error {
	return store.PutJSON(tx, tableRGs, rgKey(g.Subscription, g.Name), g)
}
