package registry

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// tokenResponseWire is the body of a successful /oauth2/token call. token and
// access_token carry the same JWT: docker-style clients read the first, ACR
// and OAuth clients the second.
type tokenResponseWire struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
}

// maxFormSize bounds a token request's form body.
const maxFormSize = 64 << 10

// tokenEndpoint serves /oauth2/token.
func (r *Registry) tokenEndpoint(w http.ResponseWriter, req *http.Request) error {
	switch req.Method {
	case http.MethodGet:
		return r.getToken(w, req)
	case http.MethodPost:
		return r.postToken(w, req)
	}
	return newError(errMethodNotAllowed)
}

// getToken serves GET /oauth2/token?service=&scope=… with Basic auth (ACR's
// docker-login flow), or without credentials when anonymous pull is on.
// offline_token=true adds a refresh token, unless the password was a token.
func (r *Registry) getToken(w http.ResponseWriter, req *http.Request) error {
	q := req.URL.Query()
	var g grant
	if user, pass, ok := req.BasicAuth(); ok {
		var err error
		if g, err = r.tokenCredentials(req, user, pass); err != nil {
			return err
		}
	} else if req.Header.Get("Authorization") != "" {
		return errorf(errUnauthorized, "basic authentication is required")
	} else if g, ok = r.anonymousGrant(); !ok {
		return errorf(errUnauthorized, "basic authentication is required (anonymous pull is disabled)")
	}
	offline := q.Get("offline_token") == "true" && !g.principal.anonymous()
	return r.sendTokens(w, q.Get("service"), q["scope"], g, offline)
}

// postToken serves POST /oauth2/token, the OAuth2 form: grant_type=password
// (username, password; access_type=offline adds a refresh token unless the
// password was a token; neither means anonymous) or
// grant_type=refresh_token (a refresh token this registry issued).
func (r *Registry) postToken(w http.ResponseWriter, req *http.Request) error {
	f, err := parseForm(w, req)
	if err != nil {
		return err
	}
	var (
		g       grant
		offline bool
	)
	switch gt := f.Get("grant_type"); gt {
	case "password":
		user, pass := f.Get("username"), f.Get("password")
		if user == "" && pass == "" {
			// The SDKs' anonymous flow: password grant, empty refresh_token.
			var ok bool
			if g, ok = r.anonymousGrant(); !ok {
				return errorf(errUnauthorized, "credentials are required (anonymous pull is disabled)")
			}
			break
		}
		if g, err = r.tokenCredentials(req, user, pass); err != nil {
			return err
		}
		offline = f.Get("access_type") == "offline"
	case "refresh_token":
		g, err = r.tokenGrant(req.Context(), f.Get("refresh_token"))
		if err == nil && g.token.GrantType != grantRefreshToken {
			err = fmt.Errorf("%w: not a refresh token", ErrInvalidCredentials)
		}
		if errors.Is(err, ErrInvalidCredentials) {
			return errorf(errUnauthorized, "invalid refresh token").because(err)
		}
		if err != nil {
			return err
		}
	default:
		return errorf(errUnsupported, "unsupported grant_type %q", gt)
	}
	return r.sendTokens(w, f.Get("service"), f["scope"], g, offline)
}

// exchangeResponseWire is the body of a successful /oauth2/exchange call.
type exchangeResponseWire struct {
	RefreshToken string `json:"refresh_token"`
}

// exchangeEndpoint serves POST /oauth2/exchange: an Entra ID access token
// (grant_type=access_token, or the deprecated access_token_refresh_token)
// for a registry refresh token.
func (r *Registry) exchangeEndpoint(w http.ResponseWriter, req *http.Request) error {
	if req.Method != http.MethodPost {
		return newError(errMethodNotAllowed)
	}
	f, err := parseForm(w, req)
	if err != nil {
		return err
	}
	switch gt := f.Get("grant_type"); gt {
	case "access_token", "access_token_refresh_token":
	default:
		return errorf(errUnsupported, "unsupported grant_type %q", gt)
	}
	if service := f.Get("service"); !strings.EqualFold(service, r.loginServer) {
		return errorf(errUnsupported, "service %q is not this registry (%s)", service, r.loginServer)
	}
	tok := f.Get("access_token")
	if tok == "" {
		return errorf(errUnauthorized, "access_token is required")
	}
	p, err := r.auth.VerifyAADToken(req.Context(), tok)
	if errors.Is(err, ErrInvalidCredentials) {
		return errorf(errUnauthorized, "invalid Entra ID token").because(err)
	}
	if err == nil {
		err = checkPrincipal(p)
	}
	if err != nil {
		return err
	}
	rt, err := r.issueToken(grantRefreshToken, p, nil, r.clock.Now().Add(r.refreshTTL))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, exchangeResponseWire{RefreshToken: rt})
}

// parseForm reads a bounded form body.
func parseForm(w http.ResponseWriter, req *http.Request) (url.Values, error) {
	req.Body = http.MaxBytesReader(w, req.Body, maxFormSize)
	if err := req.ParseForm(); err != nil {
		return nil, errorf(errUnsupported, "invalid form body").because(err)
	}
	return req.PostForm, nil
}

// tokenCredentials authenticates a token request's username and password.
func (r *Registry) tokenCredentials(req *http.Request, user, pass string) (grant, error) {
	g, err := r.checkPassword(req.Context(), user, pass)
	if errors.Is(err, ErrInvalidCredentials) {
		return grant{}, errorf(errUnauthorized, "invalid username or password").because(err)
	}
	return g, err
}

// sendTokens issues an access token for the scopes the grant covers (a
// partial grant is not an error) and, when offline, a refresh token. On a
// token's grant the access token expires no later than that token, and no
// refresh token is issued (tokens cannot renew themselves): docker login
// with NullUser and a token then keeps the token as its password.
func (r *Registry) sendTokens(w http.ResponseWriter, service string, scopes []string, g grant, offline bool) error {
	if service != "" && !strings.EqualFold(service, r.loginServer) {
		return errorf(errUnsupported, "service %q is not this registry (%s)", service, r.loginServer)
	}
	var access []Access
	for _, want := range parseScopes(scopes) {
		if got := g.allowed(want); len(got.Actions) > 0 {
			access = append(access, got)
		}
	}
	now := r.clock.Now()
	exp := now.Add(r.accessTTL)
	if g.token != nil && g.token.expires().Before(exp) {
		exp = g.token.expires()
	}
	at, err := r.issueToken(grantAccessToken, g.principal, access, exp)
	if err != nil {
		return err
	}
	resp := tokenResponseWire{
		Token:       at,
		AccessToken: at,
		ExpiresIn:   int(exp.Sub(now).Seconds()),
		IssuedAt:    now.UTC().Format("2006-01-02T15:04:05Z"),
	}
	if offline && g.token == nil {
		if resp.RefreshToken, err = r.issueToken(grantRefreshToken, g.principal, nil, now.Add(r.refreshTTL)); err != nil {
			return err
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, resp)
}
