// Package msi is the service behind Microsoft.ManagedIdentity: user-assigned
// managed identities as ARM resources. Each identity is a principal of
// berth's token service (Principals.CreateManagedIdentity with the
// identity's resource id), created with the resource and deleted with it —
// so its tokens stop verifying the moment the resource goes, with its
// resource group too (a resources delete hook).
//
// State: one table, "msi/identities", keyed sub/rg/name (lower case), JSON
// Identity documents. The principal is created before the record and
// deleted before it, so a crash in between leaves at worst a principal
// without a record, which Start removes.
package msi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store"
)

const tableIdentities = "msi/identities"

// ResourceType is the identities' ARM type.
const ResourceType = "Microsoft.ManagedIdentity/userAssignedIdentities"

// Isolation scopes (2024-11-30 and later).
const (
	IsolationNone     = "None"
	IsolationRegional = "Regional"
)

// ErrNotFound matches (errors.Is) the error of Get and GetIn for an
// identity that does not exist; the error is also an *apierr.Error of class
// NotFound with ARM's ResourceNotFound.
var ErrNotFound = errors.New("user-assigned identity not found")

// Identity is a user-assigned managed identity.
type Identity struct {
	Subscription   string            `json:"subscription"`
	ResourceGroup  string            `json:"resourceGroup"`
	Name           string            `json:"name"`
	Location       string            `json:"location"`
	Tags           map[string]string `json:"tags,omitempty"`
	IsolationScope string            `json:"isolationScope,omitempty"` // "" means None
	// The identity's principal in berth's tenant.
	TenantID    string    `json:"tenantId"`
	PrincipalID string    `json:"principalId"` // object ID: a token's oid
	ClientID    string    `json:"clientId"`    // application ID: a token's appid
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// ID is the identity's ARM resource id.
func (i *Identity) ID() string {
	return ResourceID(i.Subscription, i.ResourceGroup, i.Name)
}

// ResourceID is the ARM id of user-assigned identity name.
func ResourceID(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/" + ResourceType + "/" + name
}

// Principals is the part of the token service identities need
// (*identity.Service).
type Principals interface {
	CreateManagedIdentity(ctx context.Context, resourceID, displayName string) (identity.Principal, error)
	DeletePrincipal(ctx context.Context, objectID string) error
	ListPrincipals(ctx context.Context) ([]identity.Principal, error)
}

// Service manages user-assigned identities.
type Service struct {
	Store      store.Store
	Clock      clock.Clock
	Resources  *resources.Service
	Principals Principals
	Log        *slog.Logger
}

func key(sub, rg, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

// nameRule is ARM's rule for identity names: 3–128 characters, letters,
// digits, hyphens and underscores, starting with a letter or digit.
var nameRule = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$`)

// CheckName validates an identity name with ARM's error.
func CheckName(name string) error {
	if !nameRule.MatchString(name) {
		return apierr.New(apierr.Invalid, "InvalidResourceName",
			"Resource name '%s' is invalid. The name can be between 3 and 128 characters long. Valid characters include letters, numbers, underscores and hyphens. The name must begin with a letter or number.", name)
	}
	return nil
}

// NotFound is ARM's error for a missing identity.
func NotFound(rg, name string) error {
	e := apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", ResourceType, name, rg)
	e.Err = ErrNotFound
	return e
}

func normLoc(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

func (s *Service) warn(msg string, args ...any) {
	if s.Log != nil {
		s.Log.Warn(msg, args...)
	}
}

// Start registers the resource-group delete hook and removes managed
// identity principals of user-assigned identities that have no record (a
// crash between the two writes of a Put or a Delete).
func (s *Service) Start(ctx context.Context) error {
	s.Resources.OnDeleteGroup(s.deleteAllIn)
	have := map[string]bool{}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableIdentities, "", func(_ string, b []byte) bool {
			var i Identity
			if json.Unmarshal(b, &i) == nil {
				have[strings.ToLower(i.PrincipalID)] = true
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	ps, err := s.Principals.ListPrincipals(ctx)
	if err != nil {
		return err
	}
	marker := strings.ToLower("/providers/" + ResourceType + "/")
	for _, p := range ps {
		if p.Kind != identity.KindManagedIdentity || !strings.Contains(strings.ToLower(p.ResourceID), marker) || have[strings.ToLower(p.ObjectID)] {
			continue
		}
		if err := s.Principals.DeletePrincipal(ctx, p.ObjectID); err != nil && !errors.Is(err, identity.ErrUnknownClient) {
			s.warn("removing the principal of a user-assigned identity that is gone", "resource", p.ResourceID, "err", err)
		}
	}
	return nil
}

// Put creates or updates an identity (location, tags, isolation scope); it
// reports whether it was created. A new identity gets its principal first.
func (s *Service) Put(ctx context.Context, in *Identity) (*Identity, bool, error) {
	if err := CheckName(in.Name); err != nil {
		return nil, false, err
	}
	if strings.TrimSpace(in.Location) == "" {
		return nil, false, apierr.New(apierr.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	if err := checkIsolation(in.IsolationScope); err != nil {
		return nil, false, err
	}
	sub, rg, name := in.Subscription, in.ResourceGroup, in.Name
	// Does it exist (and is the group there)? The principal of a new
	// identity is made outside the store transaction.
	cur, err := s.GetIn(ctx, sub, rg, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	var p identity.Principal
	rgName := rg
	if cur == nil {
		rgv, err := s.Resources.Get(ctx, sub, rg)
		if err != nil {
			return nil, false, err
		}
		rgName = rgv.Name
		p, err = s.Principals.CreateManagedIdentity(ctx, ResourceID(sub, rgName, name), name)
		if err != nil {
			return nil, false, err
		}
	}
	now := s.Clock.Now().UTC()
	var out *Identity
	created := false
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if err := resources.RequireActiveTx(tx, sub, rg); err != nil {
			return err
		}
		old, err := store.GetJSON[Identity](tx, tableIdentities, key(sub, rg, name))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		next := *in
		next.Tags = in.Tags
		if old != nil {
			if normLoc(old.Location) != normLoc(in.Location) {
				return apierr.New(apierr.Invalid, "InvalidResourceLocation",
					"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
					old.Name, old.Location, old.ResourceGroup, in.Location)
			}
			next.Subscription, next.ResourceGroup, next.Name, next.Location = old.Subscription, old.ResourceGroup, old.Name, old.Location
			next.TenantID, next.PrincipalID, next.ClientID, next.CreatedAt = old.TenantID, old.PrincipalID, old.ClientID, old.CreatedAt
		} else {
			if p.ObjectID == "" {
				// It existed when we looked and is gone now: a delete raced us.
				return apierr.New(apierr.Conflict, "Conflict", "The identity '%s' was deleted while it was being updated; retry the request.", name)
			}
			next.ResourceGroup = rgName
			next.TenantID, next.PrincipalID, next.ClientID, next.CreatedAt = p.TenantID, p.ObjectID, p.ClientID, now
			created = true
		}
		next.UpdatedAt = now
		out = &next
		return store.PutJSON(tx, tableIdentities, key(sub, rg, name), &next)
	})
	if err != nil {
		if p.ObjectID != "" {
			// Nothing half-created: the new principal goes unless a
			// concurrent Put stored it (CreateManagedIdentity is idempotent
			// per resource id).
			if got, gerr := s.GetIn(ctx, sub, rg, name); !(gerr == nil && strings.EqualFold(got.PrincipalID, p.ObjectID)) {
				if derr := s.Principals.DeletePrincipal(ctx, p.ObjectID); derr != nil && !errors.Is(derr, identity.ErrUnknownClient) {
					s.warn("removing the principal of an identity that was not created", "name", name, "err", derr)
				}
			}
		}
		return nil, false, err
	}
	return out, created, nil
}

func checkIsolation(v string) error {
	switch v {
	case "", IsolationNone, IsolationRegional:
		return nil
	}
	return apierr.New(apierr.Invalid, "InvalidRequestContent",
		"The request content was invalid and could not be deserialized: 'Error converting value \"%s\" to type 'IsolationScope'. Path 'properties.isolationScope'.'.", v)
}

// Patch changes an identity's tags (when tags is not nil) and isolation
// scope (when scope is not nil).
func (s *Service) Patch(ctx context.Context, sub, rg, name string, tags *map[string]string, scope *string) (*Identity, error) {
	if scope != nil {
		if err := checkIsolation(*scope); err != nil {
			return nil, err
		}
	}
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	var out *Identity
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		cur, err := store.GetJSON[Identity](tx, tableIdentities, key(sub, rg, name))
		if errors.Is(err, store.ErrNotFound) {
			return NotFound(rg, name)
		}
		if err != nil {
			return err
		}
		if tags != nil {
			cur.Tags = *tags
		}
		if scope != nil {
			cur.IsolationScope = *scope
		}
		cur.UpdatedAt = s.Clock.Now().UTC()
		out = cur
		return store.PutJSON(tx, tableIdentities, key(sub, rg, name), cur)
	})
	return out, err
}

// GetIn returns identity name of resource group rg (ResourceGroupNotFound
// if the group does not exist; NotFound, matching ErrNotFound, if the
// identity does not).
func (s *Service) GetIn(ctx context.Context, sub, rg, name string) (*Identity, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	return s.read(ctx, sub, rg, name)
}

// Get returns the identity with ARM resource id resourceID (compared
// case-insensitively). Its error matches ErrNotFound (and is ARM's
// ResourceNotFound) when there is none, the id being malformed included.
func (s *Service) Get(ctx context.Context, resourceID string) (*Identity, error) {
	sub, rg, name, ok := ParseID(resourceID)
	if !ok {
		return nil, NotFound("", resourceID)
	}
	return s.read(ctx, sub, rg, name)
}

// read returns the stored identity (NotFound if there is none).
func (s *Service) read(ctx context.Context, sub, rg, name string) (*Identity, error) {
	var out *Identity
	err := s.Store.View(ctx, func(tx store.Tx) error {
		i, err := store.GetJSON[Identity](tx, tableIdentities, key(sub, rg, name))
		if errors.Is(err, store.ErrNotFound) {
			return NotFound(rg, name)
		}
		out = i
		return err
	})
	return out, err
}

// ParseID splits a user-assigned identity's resource id.
func ParseID(id string) (sub, rg, name string, ok bool) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) != 8 || !strings.EqualFold(segs[0], "subscriptions") || !strings.EqualFold(segs[2], "resourceGroups") ||
		!strings.EqualFold(segs[4], "providers") || !strings.EqualFold(segs[5], "Microsoft.ManagedIdentity") ||
		!strings.EqualFold(segs[6], "userAssignedIdentities") {
		return "", "", "", false
	}
	for _, s := range segs {
		if s == "" {
			return "", "", "", false
		}
	}
	return segs[1], segs[3], segs[7], true
}

// SortKey orders identities in lists.
func SortKey(i *Identity) string { return key(i.Subscription, i.ResourceGroup, i.Name) }

// List lists the identities of a subscription, or of resource group rg
// when it is set (ResourceGroupNotFound if it does not exist), ordered by
// SortKey.
func (s *Service) List(ctx context.Context, sub, rg string) ([]*Identity, error) {
	prefix := strings.ToLower(sub) + "/"
	if rg != "" {
		if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
			return nil, err
		}
		prefix += strings.ToLower(rg) + "/"
	}
	var out []*Identity
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableIdentities, prefix, func(_ string, b []byte) bool {
			var i Identity
			if json.Unmarshal(b, &i) == nil {
				out = append(out, &i)
			}
			return true
		})
	})
	sort.Slice(out, func(a, b int) bool { return SortKey(out[a]) < SortKey(out[b]) })
	return out, err
}

// Delete deletes an identity: its principal first (its tokens stop
// verifying at once), then the record. It reports whether there was one
// (ResourceGroupNotFound if the group does not exist).
func (s *Service) Delete(ctx context.Context, sub, rg, name string) (bool, error) {
	cur, err := s.GetIn(ctx, sub, rg, name)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, s.remove(ctx, cur)
}

func (s *Service) remove(ctx context.Context, i *Identity) error {
	if err := s.Principals.DeletePrincipal(ctx, i.PrincipalID); err != nil && !errors.Is(err, identity.ErrUnknownClient) {
		return fmt.Errorf("msi: deleting the principal of %s: %w", i.ID(), err)
	}
	return s.Store.Update(ctx, func(tx store.Tx) error {
		err := tx.Delete(tableIdentities, key(i.Subscription, i.ResourceGroup, i.Name))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
}

// deleteAllIn is the resource-group delete hook.
func (s *Service) deleteAllIn(ctx context.Context, sub, rg string) error {
	var all []*Identity
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableIdentities, strings.ToLower(sub)+"/"+strings.ToLower(rg)+"/", func(_ string, b []byte) bool {
			var i Identity
			if json.Unmarshal(b, &i) == nil {
				all = append(all, &i)
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	for _, i := range all {
		if err := s.remove(ctx, i); err != nil {
			return err
		}
	}
	return nil
}
