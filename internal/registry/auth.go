package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// NullUser is the username that marks the password as an ACR token (refresh or
// access) issued by this registry, as `docker login -u 0000…` does on ACR.
const NullUser = "00000000-0000-0000-0000-000000000000"

// ErrInvalidCredentials is what an Authenticator returns (wrapped or not) for
// an unknown user or a wrong password. Any other error is treated as a
// failure of the authenticator itself (HTTP 500), not of the client.
var ErrInvalidCredentials = errors.New("registry: invalid credentials")

// Authenticator checks the credentials a client presents: a username and
// password (Basic auth on any request, or the token endpoint), or an Entra
// ID token (the /oauth2/exchange endpoint); and whether the credential
// behind a token the registry issued still holds.
type Authenticator interface {
	// CheckPassword returns the principal that username and password identify,
	// or an error wrapping ErrInvalidCredentials. It is called once per token
	// request and once per request that carries Basic auth; it should be cheap.
	// Usernames are not necessarily GUIDs (an admin user is the registry's
	// name).
	CheckPassword(ctx context.Context, username, password string) (Principal, error)

	// VerifyAADToken returns the principal of an Entra ID access token whose
	// audience is ARM or https://containerregistry.azure.net, or an error
	// wrapping ErrInvalidCredentials. It is called once per exchange.
	VerifyAADToken(ctx context.Context, token string) (Principal, error)

	// Current reports whether the credential that authenticated p still
	// holds: nil if so, an error wrapping ErrInvalidCredentials if it was
	// revoked (the admin user disabled or its password regenerated, the
	// service principal or its secret removed …), any other error for a
	// failure of the authenticator itself. p is a principal CheckPassword or
	// VerifyAADToken returned, as a registry token carries it (ObjectID,
	// ClientID, TenantID, Actions, Revision). It is called on every request
	// that presents a token of the registry (Bearer, Basic with NullUser,
	// the refresh_token grant), but not for anonymous tokens, so it must be
	// cheap: an in-memory lookup, no I/O.
	Current(ctx context.Context, p Principal) error
}

// Principal is an authenticated caller and what it may do in the registry.
type Principal struct {
	ObjectID string // Entra object id; a token's sub
	ClientID string // application (client) id; a token's appid
	TenantID string // a token's tenant

	// Revision is opaque to the registry: the Authenticator's name for the
	// version of the credential that authenticated the principal (say, a
	// counter of the admin user's password changes), for Current to
	// compare. Tokens carry it in their rev claim, which the client can
	// read: it must not be a secret or a hash of one. Empty is allowed.
	Revision string

	// Actions lists what the principal may do on every repository of the
	// registry: ActionPull, ActionPush, ActionDelete, ActionMetadataRead,
	// ActionMetadataWrite, ActionCatalog (list the repositories), or
	// ActionAll for all of them and the catalog. Ignored when Scoped.
	Actions []string

	// Scoped limits the principal to Repositories (an ACR token's scope
	// map): it may do on a repository what the rules matching its name
	// allow together, and never list the catalog.
	Scoped       bool
	Repositories []RepositoryActions
}

// RepositoryActions is one rule of a scoped principal: Actions (repository
// actions, not ActionAll) on the repositories Repository names — one
// repository, "*" (every repository) or "prefix/*" (every repository below
// prefix/, at any depth).
type RepositoryActions struct {
	Repository string   `json:"repository"`
	Actions    []string `json:"actions"`
}

// repositoryActions are the actions ActionAll stands for on a repository.
var repositoryActions = []string{ActionPull, ActionPush, ActionDelete, ActionMetadataRead, ActionMetadataWrite}

// matches reports whether the rule covers repository repo.
func (ra RepositoryActions) matches(repo string) bool {
	switch {
	case ra.Repository == "*":
		return true
	case strings.HasSuffix(ra.Repository, "/*"):
		return strings.HasPrefix(repo, strings.TrimSuffix(ra.Repository, "*"))
	}
	return ra.Repository == repo
}

// mayOn reports whether p may perform action on repository repo: for a
// scoped principal the union of the rules that match repo (ActionAll needs
// every repository action), otherwise its registry-wide Actions.
func (p Principal) mayOn(repo, action string) bool {
	if !p.Scoped {
		return p.may(action)
	}
	if action == ActionAll {
		for _, a := range repositoryActions {
			if !p.mayOn(repo, a) {
				return false
			}
		}
		return true
	}
	for _, ra := range p.Repositories {
		if ra.matches(repo) && slices.Contains(ra.Actions, action) {
			return true
		}
	}
	return false
}

// Repository actions, as they appear in scopes and tokens.
const (
	ActionAll           = "*"
	ActionPull          = "pull"
	ActionPush          = "push"
	ActionDelete        = "delete"
	ActionMetadataRead  = "metadata_read"
	ActionMetadataWrite = "metadata_write"
	// ActionCatalog lets a principal list the registry's repositories
	// (the registry:catalog:* scope) without the other actions ActionAll
	// brings: ACR grants it to every role that may pull.
	ActionCatalog = "catalog"
)

// may reports whether p may perform action on every repository. A scoped
// principal may do nothing registry-wide.
func (p Principal) may(action string) bool {
	if p.Scoped {
		return false
	}
	return slices.Contains(p.Actions, ActionAll) || slices.Contains(p.Actions, action)
}

// anonymous reports whether p is nobody: the principal of anonymous pull.
// Authenticators never return such a principal (checkPrincipal).
func (p Principal) anonymous() bool { return p.ObjectID == "" && p.ClientID == "" }

// checkPrincipal refuses a principal an Authenticator returned that could
// pass for anonymous.
func checkPrincipal(p Principal) error {
	if p.anonymous() {
		return errors.New("registry: the Authenticator returned a principal with neither ObjectID nor ClientID")
	}
	return nil
}

// anonymousActions are what anyone may do when the registry allows
// anonymous pull: pull, and read metadata (the SDKs list tags anonymously).
var anonymousActions = []string{ActionPull, ActionMetadataRead}

// anonymous returns the grant of a client without credentials, and whether
// the registry allows anonymous pull now.
func (r *Registry) anonymousGrant() (grant, bool) {
	if !r.anonymous() {
		return grant{}, false
	}
	return grant{principal: Principal{Actions: anonymousActions}}, true
}

// Access is one scope entry: actions on a named resource. It is both the
// parsed form of a scope "repository:a/b:push,pull" and the token claim
// {"type","name","actions"}.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String formats a as a scope.
func (a Access) String() string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// parseScopes parses the scope parameters of a token request. Each value may
// hold several space-separated scopes. Malformed scopes are ignored, as
// distribution's token servers do.
func parseScopes(values []string) []Access {
	var out []Access
	for _, v := range values {
		for _, s := range strings.Fields(v) {
			i, j := strings.Index(s, ":"), strings.LastIndex(s, ":")
			if i <= 0 || j <= i+1 || j == len(s)-1 {
				continue
			}
			out = append(out, Access{Type: s[:i], Name: s[i+1 : j], Actions: strings.Split(s[j+1:], ",")})
		}
	}
	return out
}

// A grant is what one credential allows: either everything its principal may
// do (a password, a refresh token) or only the access list of an access token.
type grant struct {
	principal Principal
	access    []Access // used when limited
	limited   bool
	// token is the registry token the grant comes from, nil for a password
	// or anonymous pull. Tokens issued on a token's grant expire no later
	// than it, and no refresh token is issued on one.
	token *tokenClaims
}

// allowed returns the part of want this grant covers: the intersection of the
// requested and the permitted actions, which may be empty.
func (g grant) allowed(want Access) Access {
	got := Access{Type: want.Type, Name: want.Name}
	for _, action := range want.Actions {
		if g.permits(want.Type, want.Name, action) && !slices.Contains(got.Actions, action) {
			got.Actions = append(got.Actions, action)
		}
	}
	return got
}

func (g grant) permits(typ, name, action string) bool {
	if g.limited {
		for _, a := range g.access {
			if a.Type == typ && a.Name == name && (slices.Contains(a.Actions, action) || slices.Contains(a.Actions, ActionAll)) {
				return true
			}
		}
		return false
	}
	switch typ {
	case "repository":
		return g.principal.mayOn(name, action)
	case "registry":
		return name == "catalog" && (g.principal.may(ActionAll) || g.principal.may(ActionCatalog))
	}
	return false
}

// covers reports whether the grant allows every action of need.
func (g grant) covers(need Access) bool {
	return len(g.allowed(need).Actions) == len(need.Actions)
}

// authenticate returns the grant of the credentials in req's Authorization
// header. It fails with a 401 apiError carrying the challenge for need (nil
// for requests that need only a valid credential).
func (r *Registry) authenticate(req *http.Request, need *Access) (grant, error) {
	h := req.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	var (
		g   grant
		err error
	)
	switch {
	case h == "":
		// Anonymous pull serves repository reads directly; the API root
		// still challenges, so that clients learn where to log in.
		if g, ok := r.anonymousGrant(); ok && need != nil && need.Type == "repository" && g.covers(*need) {
			return g, nil
		}
		return grant{}, r.challenge(need, "").because(errors.New("no credentials"))
	case strings.EqualFold(scheme, "Bearer"):
		g, err = r.tokenGrant(req.Context(), strings.TrimSpace(cred))
		if err == nil && g.token.GrantType != grantAccessToken {
			err = fmt.Errorf("%w: not an access token", ErrInvalidCredentials)
		}
		if errors.Is(err, ErrInvalidCredentials) {
			return grant{}, r.challenge(need, "invalid_token").because(err)
		}
		if err != nil {
			return grant{}, err
		}
	case strings.EqualFold(scheme, "Basic"):
		user, pass, ok := req.BasicAuth()
		if !ok {
			return grant{}, r.challenge(need, "").because(errors.New("malformed basic auth"))
		}
		g, err = r.checkPassword(req.Context(), user, pass)
		if err != nil {
			if errors.Is(err, ErrInvalidCredentials) {
				return grant{}, r.challenge(need, "").because(err)
			}
			return grant{}, err
		}
	default:
		return grant{}, r.challenge(need, "").because(fmt.Errorf("unsupported scheme %q", scheme))
	}
	if need != nil && !g.covers(*need) {
		return grant{}, r.challenge(need, "insufficient_scope").because(fmt.Errorf("grant does not cover %s", need))
	}
	return g, nil
}

// checkPassword authenticates a username and password: an ACR token for
// NullUser, the Authenticator otherwise.
func (r *Registry) checkPassword(ctx context.Context, user, pass string) (grant, error) {
	if user == NullUser {
		return r.tokenGrant(ctx, pass)
	}
	p, err := r.auth.CheckPassword(ctx, user, pass)
	if err == nil {
		err = checkPrincipal(p)
	}
	if err != nil {
		return grant{}, err
	}
	return grant{principal: p}, nil
}

// tokenGrant returns the grant of a token this registry issued, if it is
// valid and what it stands for still holds: an anonymous token only while
// anonymous pull is allowed, any other only while the Authenticator says
// its credential is current. Errors wrap ErrInvalidCredentials, except the
// Authenticator's own failures.
func (r *Registry) tokenGrant(ctx context.Context, tok string) (grant, error) {
	c, err := r.verifyToken(tok)
	if err != nil {
		return grant{}, fmt.Errorf("%w: %v", ErrInvalidCredentials, err)
	}
	g := c.grant()
	if g.principal.anonymous() {
		if !r.anonymous() {
			return grant{}, fmt.Errorf("%w: anonymous token, anonymous pull is disabled", ErrInvalidCredentials)
		}
		return g, nil
	}
	if err := r.auth.Current(ctx, g.principal); err != nil {
		return grant{}, fmt.Errorf("the token's credential: %w", err)
	}
	return g, nil
}

// challenge returns the 401 for a request that needs access need. errParam is
// "" (no or bad credentials), "invalid_token" or "insufficient_scope".
func (r *Registry) challenge(need *Access, errParam string) *apiError {
	// Every value quoted and free of '=': the Azure SDKs split on `",` and '='.
	c := fmt.Sprintf(`Bearer realm="https://%s/oauth2/token",service="%s"`, r.loginServer, r.loginServer)
	var detail any
	if need != nil {
		c += fmt.Sprintf(`,scope="%s"`, need)
		detail = []map[string]string{{"Type": need.Type, "Name": need.Name, "Action": strings.Join(need.Actions, ",")}}
	}
	if errParam != "" {
		c += fmt.Sprintf(`,error="%s"`, errParam)
	}
	return &apiError{code: errUnauthorized, challenge: c, detail: detail}
}
