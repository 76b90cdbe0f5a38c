package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Routes are the path patterns the Service serves. {tenant} is a tenant ID,
// "common", "organizations" or, where shown, "adfs"; all segments are
// matched case-insensitively and repeated slashes are ignored. None of them
// needs authentication.
var Routes = []string{
	"GET  /{tenant}/v2.0/.well-known/openid-configuration",
	"GET  /{tenant}/.well-known/openid-configuration", // v1; /adfs/.well-known/openid-configuration for az
	"GET  /{tenant}/discovery/v2.0/keys",
	"GET  /{tenant}/discovery/keys", // also /common/discovery/keys and /adfs/discovery/keys
	"POST /{tenant}/oauth2/v2.0/token",
	"POST /{tenant}/oauth2/token", // v1 (resource=); /adfs/oauth2/token for az
	"GET  /{tenant}/oauth2/v2.0/authorize",
	"GET  /{tenant}/oauth2/authorize", // interactive sign-in: always an error
}

type endpoint int

const (
	epNone endpoint = iota
	epDiscoveryV2
	epDiscoveryV1
	epKeys
	epTokenV2
	epTokenV1
	epAuthorize
)

// route maps the segments after {tenant} (lower case) to an endpoint.
var route = map[string]endpoint{
	"v2.0/.well-known/openid-configuration": epDiscoveryV2,
	".well-known/openid-configuration":      epDiscoveryV1,
	"discovery/v2.0/keys":                   epKeys,
	"discovery/keys":                        epKeys,
	"oauth2/v2.0/token":                     epTokenV2,
	"oauth2/token":                          epTokenV1,
	"oauth2/v2.0/authorize":                 epAuthorize,
	"oauth2/authorize":                      epAuthorize,
}

// split returns the tenant segment and endpoint of path.
func split(path string) (string, endpoint) {
	segs := slices.DeleteFunc(strings.Split(path, "/"), func(s string) bool { return s == "" })
	if len(segs) < 2 {
		return "", epNone
	}
	return strings.ToLower(segs[0]), route[strings.ToLower(strings.Join(segs[1:], "/"))]
}

// Match reports whether the Service serves path (whatever the method and
// tenant: unknown tenants get Entra's AADSTS90002 error from the Service).
func Match(path string) bool {
	_, ep := split(path)
	return ep != epNone
}

// ServeHTTP serves the endpoints in Routes; other paths get 404.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tenantSeg, ep := split(r.URL.Path)
	req := &request{w: w, r: r, s: s, traceID: uuid.NewString(), correlationID: r.Header.Get("client-request-id")}
	if req.correlationID == "" {
		req.correlationID = uuid.NewString()
	}
	w.Header().Set("x-ms-request-id", req.traceID)
	w.Header().Set("client-request-id", req.correlationID)

	method := http.MethodGet
	switch ep {
	case epNone:
		http.NotFound(w, r)
		return
	case epTokenV1, epTokenV2:
		method = http.MethodPost
	}
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		if method == http.MethodGet {
			w.Header().Set("Allow", "GET, HEAD")
		}
		req.fail(http.StatusMethodNotAllowed, "invalid_request", 900561,
			fmt.Sprintf("The endpoint only accepts %s requests. Received a %s request.", method, r.Method))
		return
	}
	if r.Host == "" || !s.hostAllowed(r.Host) {
		req.fail(http.StatusBadRequest, "invalid_request", 90000,
			fmt.Sprintf("berth's token service is not served on host %q; use one of the hosts berth was started with.", r.Host))
		return
	}

	// Resolve the tenant segment.
	flavour, tenant := flavourV2, tenantSeg
	switch {
	case tenantSeg == "adfs":
		flavour, tenant = flavourADFS, DefaultTenantID
	case tenantSeg == "common" || tenantSeg == "organizations":
		tenant = "" // resolved per endpoint
	case !s.knownTenant(tenantSeg):
		code := "invalid_tenant"
		if ep == epTokenV1 || ep == epTokenV2 {
			code = "invalid_request"
		}
		req.fail(http.StatusBadRequest, code, 90002, fmt.Sprintf(
			"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenantSeg))
		return
	}
	if flavour != flavourADFS && (ep == epDiscoveryV1 || ep == epTokenV1) {
		flavour = flavourV1
	}

	switch ep {
	case epDiscoveryV1, epDiscoveryV2:
		s.serveDiscovery(req, tenantSeg, tenant, flavour)
	case epKeys:
		writeJSON(w, http.StatusOK, map[string]any{"keys": []jwk{publicJWK(s.key)}})
	case epTokenV1, epTokenV2:
		if tenant == "" {
			tenant = DefaultTenantID
		}
		s.serveToken(req, tenant, flavour)
	case epAuthorize:
		req.fail(http.StatusBadRequest, "unsupported_response_type", 70000,
			"berth supports only the client credentials grant; interactive sign-in is not available.")
	}
}

// request carries per-request state for error responses.
type request struct {
	w             http.ResponseWriter
	r             *http.Request
	s             *Service
	traceID       string
	correlationID string
}

// base is the scheme://host the client used.
func (q *request) base() string {
	scheme := "https"
	if q.r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + strings.ToLower(q.r.Host)
}

// oauthError is Entra's OAuth error body, fields in Entra's order.
type oauthError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes"`
	Timestamp        string `json:"timestamp"`
	TraceID          string `json:"trace_id"`
	CorrelationID    string `json:"correlation_id"`
}

// fail writes an error in Entra's OAuth error shape.
func (q *request) fail(status int, code string, aadsts int, msg string) {
	ts := q.s.clk.Now().UTC().Format("2006-01-02 15:04:05Z")
	writeJSON(q.w, status, oauthError{
		Error: code,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			aadsts, msg, q.traceID, q.correlationID, ts),
		ErrorCodes:    []int{aadsts},
		Timestamp:     ts,
		TraceID:       q.traceID,
		CorrelationID: q.correlationID,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store, no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// serveDiscovery writes an OpenID Connect discovery document. seg is the
// tenant segment as addressed; tenant is "" for common/organizations.
func (s *Service) serveDiscovery(q *request, seg, tenant, flavour string) {
	base := q.base()
	issuerTenant := tenant
	if tenant == "" {
		issuerTenant = "{tenantid}" // as Entra's multi-tenant documents
	}
	issuer := issuerURL(base, issuerTenant, flavour)
	prefix := base + "/" + seg
	doc := map[string]any{
		"issuer":                                issuer,
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"grant_types_supported":                 []string{"client_credentials"},
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "azp",
			"idtyp", "ver", "uti", "jti"},
		"request_uri_parameter_supported": false,
		"cloud_instance_name":             "berth",
	}
	switch flavour {
	case flavourV2:
		doc["token_endpoint"] = prefix + "/oauth2/v2.0/token"
		doc["authorization_endpoint"] = prefix + "/oauth2/v2.0/authorize"
		doc["jwks_uri"] = prefix + "/discovery/v2.0/keys"
	case flavourV1:
		doc["token_endpoint"] = prefix + "/oauth2/token"
		doc["authorization_endpoint"] = prefix + "/oauth2/authorize"
		doc["jwks_uri"] = prefix + "/discovery/keys"
	case flavourADFS:
		doc["token_endpoint"] = prefix + "/oauth2/token"
		doc["authorization_endpoint"] = prefix + "/oauth2/authorize"
		doc["jwks_uri"] = prefix + "/discovery/keys"
		doc["access_token_issuer"] = issuer
	}
	if tenant != "" {
		doc["tenant_id"] = tenant
	}
	writeJSON(q.w, http.StatusOK, doc)
}

// oidcScopes are scopes MSAL adds to every request; they are ignored.
var oidcScopes = map[string]bool{"openid": true, "offline_access": true, "profile": true, "email": true}

const maxFormBytes = 64 << 10

// serveToken implements the client-credentials grant.
func (s *Service) serveToken(q *request, tenant, flavour string) {
	r := q.r
	r.Body = http.MaxBytesReader(q.w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		q.fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must be form-encoded: "+err.Error())
		return
	}
	form := r.PostForm
	missing := func(param string) {
		q.fail(http.StatusBadRequest, "invalid_request", 900144,
			fmt.Sprintf("The request body must contain the following parameter: '%s'.", param))
	}

	grant := form.Get("grant_type")
	switch grant {
	case "":
		missing("grant_type")
		return
	case "client_credentials":
	default:
		q.fail(http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'. berth supports only 'client_credentials'.", grant))
		return
	}

	// Client authentication: client_secret_post or client_secret_basic.
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok && secret == "" {
		if u, err := url.QueryUnescape(user); err == nil {
			user = u
		}
		if p, err := url.QueryUnescape(pass); err == nil {
			pass = p
		}
		if clientID != "" && !strings.EqualFold(clientID, user) {
			q.fail(http.StatusBadRequest, "invalid_request", 900144, "client_id in the body differs from the Authorization header.")
			return
		}
		clientID, secret = user, pass
	}
	if clientID == "" {
		missing("client_id")
		return
	}

	// The resource: scope (v2, MSAL) or resource (v1, ADAL).
	var resource string
	v2Response := true
	if scope := form.Get("scope"); scope != "" {
		var ok bool
		if resource, ok = q.parseScope(scope); !ok {
			return
		}
	} else if resource = form.Get("resource"); resource != "" {
		v2Response = false
	} else if flavour == flavourV2 {
		missing("scope")
		return
	} else {
		missing("resource")
		return
	}

	rec, err := s.principal(r.Context(), clientID)
	if err == nil && !strings.EqualFold(rec.TenantID, tenant) {
		err = ErrUnknownClient
	}
	if errors.Is(err, ErrUnknownClient) {
		q.fail(http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
			clientID, tenant))
		return
	}
	if err != nil {
		q.fail(http.StatusInternalServerError, "temporarily_unavailable", 90033, "berth could not read its directory; retry the request.")
		return
	}
	if rec.AppOnly {
		q.fail(http.StatusBadRequest, "invalid_client", 7000229, fmt.Sprintf(
			"The client application %s is missing service principal in the tenant %s. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
			rec.ClientID, tenant))
		return
	}
	if secret == "" {
		q.fail(http.StatusUnauthorized, "invalid_client", 7000216,
			"'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return
	}
	if !rec.matches(secret, s.clk.Now()) {
		q.fail(http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.",
			rec.ClientID))
		return
	}
	aud, ok := s.audienceFor(resource)
	if !ok {
		q.fail(http.StatusBadRequest, "invalid_resource", 500011, fmt.Sprintf(
			"The resource principal named %s was not found in the tenant named berth. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
			resource))
		return
	}

	tok, c, err := s.issue(rec.Principal, aud, q.base(), flavour)
	if err != nil {
		q.fail(http.StatusInternalServerError, "temporarily_unavailable", 90033, "berth could not sign the token; retry the request.")
		return
	}
	expiresIn := c.Expiry - c.IssuedAt - 1 // 3599, as Entra
	if v2Response {
		writeJSON(q.w, http.StatusOK, tokenResponseV2{TokenType: "Bearer", ExpiresIn: expiresIn, ExtExpiresIn: expiresIn, AccessToken: tok})
		return
	}
	in := strconv.FormatInt(expiresIn, 10)
	writeJSON(q.w, http.StatusOK, tokenResponseV1{
		TokenType: "Bearer", ExpiresIn: in, ExtExpiresIn: in,
		ExpiresOn: strconv.FormatInt(c.Expiry, 10), NotBefore: strconv.FormatInt(c.NotBefore, 10),
		Resource: resource, AccessToken: tok,
	})
}

// tokenResponseV2 is the v2 endpoint's token response.
type tokenResponseV2 struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

// tokenResponseV1 is the v1 (resource=) token response: numbers as strings.
type tokenResponseV1 struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    string `json:"expires_in"`
	ExtExpiresIn string `json:"ext_expires_in"`
	ExpiresOn    string `json:"expires_on"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	AccessToken  string `json:"access_token"`
}

// parseScope extracts the resource from a client-credentials scope such as
// "https://management.core.windows.net//.default openid offline_access
// profile". It writes the error response and returns false if the scope is
// unusable.
func (q *request) parseScope(scope string) (string, bool) {
	var res []string
	for _, f := range strings.Fields(scope) {
		if !oidcScopes[strings.ToLower(f)] && !slices.Contains(res, f) {
			res = append(res, f)
		}
	}
	if len(res) > 1 {
		q.fail(http.StatusBadRequest, "invalid_scope", 28000, fmt.Sprintf(
			"Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", scope))
		return "", false
	}
	const suffix = "/.default"
	if len(res) == 0 || !strings.HasSuffix(strings.ToLower(res[0]), suffix) {
		q.fail(http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf(
			"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope))
		return "", false
	}
	return res[0][:len(res[0])-len(suffix)], true
}
