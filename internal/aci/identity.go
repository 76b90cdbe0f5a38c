package aci

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/store"
)

// Managed identities of container groups: a group may have a system
// identity (created with it, deleted with it or when a PUT drops it) and
// user-assigned identities (Microsoft.ManagedIdentity resources, looked up
// through Identities). Their principals are the token service's; code in
// the group gets tokens for them from the metadata endpoint, and image
// pulls may authenticate as one of them (imageRegistryCredentials[].identity).

// Identity types, as ACI spells them.
const (
	IdentitySystem     = "SystemAssigned"
	IdentityUser       = "UserAssigned"
	IdentitySystemUser = "SystemAssigned, UserAssigned"
	IdentityNone       = "None"
)

// Identity is a group's identity block.
type Identity struct {
	// Type is one of the Identity* constants.
	Type string `json:"type"`
	// PrincipalID and TenantID are the system identity's (set by berth).
	PrincipalID string `json:"principalId,omitempty"`
	TenantID    string `json:"tenantId,omitempty"`
	// ClientID is the system identity's client id (not rendered: ACI
	// returns only principalId and tenantId for it; the metadata endpoint
	// needs it).
	ClientID string `json:"clientId,omitempty"`
	// UserAssigned are the user-assigned identities, in the order given.
	UserAssigned []UserIdentity `json:"userAssigned,omitempty"`
}

// UserIdentity is one user-assigned identity of a group.
type UserIdentity struct {
	// ResourceID is the identity's ARM id, as the user wrote it.
	ResourceID  string `json:"resourceId"`
	PrincipalID string `json:"principalId,omitempty"`
	ClientID    string `json:"clientId,omitempty"`
}

// HasSystem reports whether the identity includes a system identity.
func (id *Identity) HasSystem() bool {
	return id != nil && (id.Type == IdentitySystem || id.Type == IdentitySystemUser)
}

// HasUser reports whether the identity includes user-assigned identities.
func (id *Identity) HasUser() bool {
	return id != nil && (id.Type == IdentityUser || id.Type == IdentitySystemUser)
}

// Any reports whether the group has at least one identity.
func (id *Identity) Any() bool { return id.HasSystem() || (id.HasUser() && len(id.UserAssigned) > 0) }

// User returns the user-assigned identity with ARM id resourceID
// (compared case-insensitively, as ARM does), or nil.
func (id *Identity) User(resourceID string) *UserIdentity {
	if !id.HasUser() {
		return nil
	}
	for i := range id.UserAssigned {
		if strings.EqualFold(id.UserAssigned[i].ResourceID, resourceID) {
			return &id.UserAssigned[i]
		}
	}
	return nil
}

// Principal is a managed identity's principal in the token service.
type Principal struct {
	ObjectID string // the principalId
	ClientID string
	TenantID string
}

// ErrIdentityNotFound is Identities.UserAssigned's error for an ARM id that
// names no user-assigned identity.
var ErrIdentityNotFound = errors.New("managed identity not found")

// Identities are the managed identities' principals.
type Identities interface {
	// CreateSystem creates (or returns: idempotent per resourceID) the
	// system identity of the resource with ARM id resourceID.
	CreateSystem(ctx context.Context, resourceID, displayName string) (Principal, error)
	// DeleteSystem deletes a system identity's principal; its tokens stop
	// working at once. Deleting one that is gone succeeds.
	DeleteSystem(ctx context.Context, objectID string) error
	// UserAssigned returns the principal of the user-assigned identity with
	// ARM id resourceID (case-insensitive); ErrIdentityNotFound if none.
	UserAssigned(ctx context.Context, resourceID string) (Principal, error)
}

// errIdentityNotFound is ARM's answer to a user-assigned identity that does
// not exist. (Shape from ARM's identity operations, FailedIdentityOperation;
// the inner text is unverified against a recording.)
func errIdentityNotFound(groupID, identityID string) error {
	return apierr.New(apierr.Invalid, "FailedIdentityOperation",
		"Identity operation for resource '%s' failed with error 'Failed to perform resource identity operation. Status: 'NotFound'. Response: '{\"error\":{\"code\":\"NotFound\",\"message\":\"Resource '%s' was not found.\"}}'.'.",
		groupID, identityID)
}

// errNoIdentities answers an identity block whose type needs user-assigned
// identities but names none, or names some with a type that has none.
// (Unverified text; ARM's common identity validation.)
func errBadUserIdentities(typ string) error {
	return apierr.New(apierr.Invalid, "BadRequest",
		"The identity type '%s' and the userAssignedIdentities do not match: user-assigned identities must be given exactly when the type includes 'UserAssigned'.", typ)
}

// systemCredential are the values of imageRegistryCredentials[].identity
// that name the group's system identity.
func systemCredential(s string) bool {
	return strings.EqualFold(s, "system") || strings.EqualFold(s, "[system]")
}

// errCredentialIdentity answers a registry credential naming an identity
// the group does not have. (Unverified text.)
func errCredentialIdentity(i int, ident string) error {
	return apierr.New(apierr.Invalid, "InvalidImageRegistryCredentialIdentity",
		"The identity '%s' of image registry credential %d is not an identity of the container group. Add it to the container group's identity.", ident, i).
		WithTarget(fmt.Sprintf("properties.imageRegistryCredentials[%d].identity", i))
}

// checkIdentity validates g's identity block and credentials by identity
// (no lookups).
func checkIdentity(g *Group) error {
	id := g.Identity
	if id != nil {
		if id.HasUser() != (len(id.UserAssigned) > 0) {
			return errBadUserIdentities(id.Type)
		}
	}
	for i, rc := range g.RegistryCredentials {
		switch {
		case rc.Identity == "":
		case systemCredential(rc.Identity):
			if !id.HasSystem() {
				return errCredentialIdentity(i, rc.Identity)
			}
		case id.User(rc.Identity) == nil:
			return errCredentialIdentity(i, rc.Identity)
		}
	}
	return nil
}

// resolveUserIdentities fills in the principals of g's user-assigned
// identities.
func (s *Service) resolveUserIdentities(ctx context.Context, g *Group) error {
	if !g.Identity.HasUser() {
		return nil
	}
	for i := range g.Identity.UserAssigned {
		u := &g.Identity.UserAssigned[i]
		if s.Identities == nil {
			return errIdentityNotFound(g.ID(), u.ResourceID)
		}
		p, err := s.Identities.UserAssigned(ctx, u.ResourceID)
		if errors.Is(err, ErrIdentityNotFound) {
			return errIdentityNotFound(g.ID(), u.ResourceID)
		}
		if err != nil {
			return err
		}
		u.PrincipalID, u.ClientID = p.ObjectID, p.ClientID
	}
	return nil
}

// ensureSystemIdentity gives g its system identity when it asks for one:
// the one old (the stored group) has, or a new one. created reports a new
// one (the caller deletes it if the request fails after all).
func (s *Service) ensureSystemIdentity(ctx context.Context, g, old *Group) (created bool, err error) {
	if !g.Identity.HasSystem() {
		return false, nil
	}
	if old != nil && old.Identity.HasSystem() && old.Identity.PrincipalID != "" {
		g.Identity.PrincipalID, g.Identity.TenantID, g.Identity.ClientID = old.Identity.PrincipalID, old.Identity.TenantID, old.Identity.ClientID
		return false, nil
	}
	if s.Identities == nil {
		return false, apierr.New(apierr.Internal, "FailedIdentityOperation", "berth has no managed identities configured.")
	}
	p, err := s.Identities.CreateSystem(ctx, g.ID(), g.Name)
	if err != nil {
		return false, fmt.Errorf("create system identity of %s: %w", g.ID(), err)
	}
	g.Identity.PrincipalID, g.Identity.TenantID, g.Identity.ClientID = p.ObjectID, p.TenantID, p.ClientID
	return true, nil
}

// dropSystemIdentity deletes a system identity no longer wanted (the group
// went, or a PUT dropped it). Failures are logged: the principal is then
// left over, but nothing refers to it any more.
func (s *Service) dropSystemIdentity(ctx context.Context, id *Identity) {
	if !id.HasSystem() || id.PrincipalID == "" || s.Identities == nil {
		return
	}
	if err := s.Identities.DeleteSystem(ctx, id.PrincipalID); err != nil {
		s.logf("delete system identity %s: %v", id.PrincipalID, err)
	}
}

// GroupByRuntimeID returns the group one of whose runtime groups has id
// runtimeID (the metadata endpoint asks which group a connection came
// from). ResourceNotFound-like apierr when none.
func (s *Service) GroupByRuntimeID(ctx context.Context, runtimeID string) (*Group, error) {
	var g *Group
	err := s.Store.View(ctx, func(tx store.Tx) error {
		k, err := tx.Get(tableRuntime, runtimeID)
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "ResourceNotFound", "no container group runs as %q", runtimeID)
		}
		if err != nil {
			return err
		}
		g, err = store.GetJSON[Group](tx, tableGroups, string(k))
		if errors.Is(err, store.ErrNotFound) {
			return apierr.New(apierr.NotFound, "ResourceNotFound", "no container group runs as %q", runtimeID)
		}
		return err
	})
	return g, err
}

// IdentityPull obtains registry credentials for managed identities.
type IdentityPull interface {
	// RegistryCredential returns a credential for pulls from registry host
	// server as the managed identity with client id clientID: its Entra
	// token exchanged at the registry (ACR's /oauth2/exchange) for a
	// refresh token, with the null-GUID user name.
	RegistryCredential(ctx context.Context, clientID, server string) (username, password string, err error)
}
