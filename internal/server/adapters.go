package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/rbac"
	"github.com/berth-dev/berth/internal/registries"
	"github.com/berth-dev/berth/internal/registry"
)

// armAuth authenticates ARM requests with tokens from berth's token service.
type armAuth struct{ ids *identity.Service }

func (a armAuth) Authenticate(r *http.Request) (arm.Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	c, err := a.ids.Verify(strings.TrimSpace(tok), identity.AudienceARM, identity.AudienceARMAlt)
	switch {
	case err == nil:
		return arm.Principal{TenantID: c.TenantID, ObjectID: c.ObjectID, ClientID: c.AppID}, nil
	case errors.Is(err, identity.ErrTokenExpired):
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.")
	case errors.Is(err, identity.ErrWrongTenant):
		authority := "https://" + r.Host + "/" + identity.DefaultTenantID
		return arm.Principal{}, &apierr.Error{Class: apierr.Unauthenticated, Code: "InvalidAuthenticationTokenTenant", Err: err, Message: "The access token is from the wrong issuer. It must match the tenant '" +
			authority + "/' associated with this subscription. Please use the authority (URL) '" + authority + "' to get the token."}
	case errors.Is(err, identity.ErrWrongAudience):
		return arm.Principal{}, apierr.New(apierr.Unauthenticated, "InvalidAuthenticationTokenAudience", "The access token has been obtained for wrong audience or resource. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'.")
	default:
		return arm.Principal{}, &apierr.Error{Class: apierr.Unauthenticated, Code: "InvalidAuthenticationToken", Message: "The access token is invalid.", Err: err}
	}
}

// registryAuth authenticates registry clients: service principals with
// their client id and secret (ACR's service-principal login), the
// registry's admin user when it is enabled, its tokens (registries/tokens:
// token name and password, scoped to the token's scope map), and Entra ID
// tokens for the /oauth2/exchange flow. Service principals and Entra
// identities get the registry actions their roles grant at the registry's
// ARM id (the default registry's scope is the default subscription); the
// admin user gets everything.
type registryAuth struct {
	ids      *identity.Service
	roles    *rbac.Service
	svc      *registries.Service // nil: no admin user (the default registry)
	registry string
	// defaultScope is the scope of the default registry (svc == nil).
	defaultScope string
}

// allActions: the admin user may do everything.
var allActions = []string{registry.ActionAll}

// rbacRevision marks registry principals whose actions come from their
// roles: Current re-checks them against the roles they hold now.
const rbacRevision = "rbac"

// scope is the registry's ARM id ("" when it is gone).
func (a registryAuth) scope() string {
	if a.svc == nil {
		return a.defaultScope
	}
	if r := a.svc.ByName(a.registry); r != nil {
		return r.ID()
	}
	return ""
}

// actions are the registry actions principal oid's roles grant at the
// registry: pull (with metadata reads and the catalog) for
// registries/pull/read (AcrPull, AcrPush, Reader), push (with metadata
// writes) for registries/push/write (AcrPush), delete for
// registries/artifacts/delete (AcrDelete); Owner and Contributor hold all
// three, which is everything.
func (a registryAuth) actions(ctx context.Context, oid string) []string {
	sc := a.scope()
	if sc == "" || a.roles == nil {
		return []string{}
	}
	pull := a.roles.Allowed(ctx, oid, rbac.ActionRegistryPull, sc)
	push := a.roles.Allowed(ctx, oid, rbac.ActionRegistryPush, sc)
	del := a.roles.Allowed(ctx, oid, rbac.ActionRegistryDelete, sc)
	if pull && push && del {
		return allActions
	}
	out := []string{}
	if pull {
		out = append(out, registry.ActionPull, registry.ActionMetadataRead, registry.ActionCatalog)
	}
	if push {
		out = append(out, registry.ActionPush, registry.ActionMetadataWrite)
	}
	if del {
		out = append(out, registry.ActionDelete)
	}
	return out
}

// adminRevision prefixes the Revision of admin-user principals.
const adminRevision = "admin:"

func (a registryAuth) CheckPassword(ctx context.Context, username, password string) (registry.Principal, error) {
	if a.svc != nil {
		if gen, ok := a.svc.CheckAdmin(a.registry, username, password); ok {
			return registry.Principal{ClientID: username, Actions: allActions, Revision: adminRevision + gen}, nil
		}
		if t, ok := a.svc.CheckToken(a.registry, username, password); ok {
			return tokenPrincipal(t), nil
		}
	}
	p, err := a.ids.CheckClientSecret(ctx, username, password)
	if errors.Is(err, identity.ErrUnknownClient) || errors.Is(err, identity.ErrInvalidSecret) {
		return registry.Principal{}, fmt.Errorf("%w: %v", registry.ErrInvalidCredentials, err)
	}
	if err != nil {
		return registry.Principal{}, err
	}
	return registry.Principal{ObjectID: p.ObjectID, ClientID: p.ClientID, TenantID: p.TenantID,
		Actions: a.actions(ctx, p.ObjectID), Revision: rbacRevision}, nil
}

// Current says whether the credential behind a registry token still holds:
// an admin user must still be enabled with that password; a service
// principal or managed identity must still exist.
func (a registryAuth) Current(ctx context.Context, p registry.Principal) error {
	if p.ObjectID != "" && !a.ids.Live(p.ObjectID) {
		return fmt.Errorf("%w: the principal %s no longer exists", registry.ErrInvalidCredentials, p.ObjectID)
	}
	if p.Revision == rbacRevision {
		// A role removed since the token was issued takes its actions
		// away at once: the token stops working, the client asks again.
		now := a.actions(ctx, p.ObjectID)
		for _, act := range p.Actions {
			if !slices.Contains(now, registry.ActionAll) && !slices.Contains(now, act) {
				return fmt.Errorf("%w: the principal %s no longer holds a role granting %q on this registry", registry.ErrInvalidCredentials, p.ObjectID, act)
			}
		}
	}
	if gen, ok := strings.CutPrefix(p.Revision, adminRevision); ok {
		if a.svc == nil || !a.svc.AdminCurrent(a.registry, gen) {
			return fmt.Errorf("%w: the admin user's password changed or the admin user was disabled", registry.ErrInvalidCredentials)
		}
	}
	if rest, ok := strings.CutPrefix(p.Revision, tokenRevision); ok {
		rev, name, _ := strings.Cut(rest, ":")
		if a.svc == nil || !a.svc.TokenCurrent(a.registry, name, rev) {
			return fmt.Errorf("%w: the token was disabled or deleted, its password changed or expired, or its scope map changed", registry.ErrInvalidCredentials)
		}
	}
	return nil
}

// tokenRevision prefixes the Revision of ACR tokens (registries/tokens):
// "token:<revision>:<token name>".
const tokenRevision = "token:"

// tokenPrincipal is the registry principal of a token login: scoped to
// its scope map's repositories.
func tokenPrincipal(t registries.TokenLogin) registry.Principal {
	p := registry.Principal{ClientID: t.Name, Revision: tokenRevision + t.Revision + ":" + t.Name, Scoped: true,
		Repositories: []registry.RepositoryActions{}}
	for _, r := range t.Rules {
		p.Repositories = append(p.Repositories, registry.RepositoryActions{Repository: r.Repository, Actions: r.Actions})
	}
	return p
}

func (a registryAuth) VerifyAADToken(ctx context.Context, token string) (registry.Principal, error) {
	c, err := a.ids.Verify(token, identity.AudienceContainer, identity.AudienceARM, identity.AudienceARMAlt)
	if err != nil {
		return registry.Principal{}, fmt.Errorf("%w: %v", registry.ErrInvalidCredentials, err)
	}
	return registry.Principal{ObjectID: c.ObjectID, ClientID: c.AppID, TenantID: c.TenantID,
		Actions: a.actions(ctx, c.ObjectID), Revision: rbacRevision}, nil
}

// principals lets rbac check that a role assignment names a principal of
// berth's directory (identity's in-memory index).
type principals struct{ ids *identity.Service }

func (p principals) Exists(_ context.Context, oid string) bool { return p.ids.Live(oid) }

// armAuthz is the ARM front door's Authorizer: RBAC decisions by the
// caller's object id.
type armAuthz struct{ roles *rbac.Service }

var _ arm.Authorizer = armAuthz{}

func (a armAuthz) Allowed(ctx context.Context, p arm.Principal, action, scope string) bool {
	return a.roles.Allowed(ctx, p.ObjectID, action, scope)
}

func (a armAuthz) AllowedBelow(ctx context.Context, p arm.Principal, action, scope string) bool {
	return a.roles.AllowedBelow(ctx, p.ObjectID, action, scope)
}
