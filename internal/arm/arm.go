// Package arm is berth's Azure Resource Manager front door: routing (path
// segments matched case-insensitively, as ARM does), api-version checks,
// bearer-token authentication on every request, ARM's error envelope with
// x-ms-error-code and x-ms-request-id, asynchronous-operation status
// endpoints and paging helpers. It serves Microsoft.Resources (subscriptions
// and resource groups) itself; resource providers (containerinstance, …)
// live in sub-packages and add their routes with Handle.
package arm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
)

// Principal is the authenticated caller.
type Principal struct {
	TenantID string
	ObjectID string
	ClientID string
}

// Authenticator checks a request's bearer token. It returns an *apierr.Error
// of class Unauthenticated (with ARM's code, e.g. InvalidAuthenticationToken)
// when the request must be refused.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// Request is what a handler receives.
type Request struct {
	*http.Request
	Params     map[string]string // pattern variables, by the name in the pattern
	APIVersion string
	Principal  Principal
	// Base is the scheme://host the client used, for absolute URLs.
	Base string

	authz Authorizer
}

// Param returns a path parameter.
func (r *Request) Param(name string) string { return r.Params[name] }

// Allowed reports whether the caller may perform action on the resource
// with id; list handlers keep only the items it allows. Public routes and
// servers without an Authorizer allow everything.
func (r *Request) Allowed(action, id string) bool {
	if r.authz == nil || action == AnyPrincipal {
		return true
	}
	return r.authz.Allowed(r.Context(), r.Principal, action, id)
}

// AllowedBelow reports whether the caller may perform action at the
// resource with id or somewhere below it (a subscription is listed to a
// principal with a role on one of its resource groups).
func (r *Request) AllowedBelow(action, id string) bool {
	if r.authz == nil || action == AnyPrincipal {
		return true
	}
	return r.authz.AllowedBelow(r.Context(), r.Principal, action, id)
}

// HandlerFunc handles one method of one route. A returned error is written
// as ARM's error envelope (see writeError); nothing may have been written.
type HandlerFunc func(w http.ResponseWriter, r *Request) error

// Route is one path pattern with its operations by HTTP method. Pattern
// segments are literals (matched case-insensitively), {name} variables (one
// segment) or one {name*} variable (one or more segments, e.g. a role
// assignment's scope).
type Route struct {
	Pattern  string
	Versions *Versions // nil: no api-version required
	Public   bool      // true: no authentication and no authorization
	Methods  Ops
}

// Ops are a route's operations by HTTP method.
type Ops map[string]Op

// Op is one method of one route: the RBAC action it needs and its handler.
// Every operation of a non-public route declares its action (test/arch and
// the route-table test in package server check it): authorization happens in
// one place, Server.serve, before the handler runs.
type Op struct {
	// Action is the RBAC action checked at the request's scope (its path),
	// e.g. "Microsoft.ContainerInstance/containerGroups/read", or
	// AnyPrincipal.
	Action string
	// List marks a list: a caller allowed the action only somewhere below the
	// scope (say, on one resource group of the subscription listed) gets
	// through, and the handler keeps what Request.Allowed says it may read.
	List    bool
	Handler HandlerFunc
}

// AnyPrincipal is the Action of operations any authenticated principal of
// the tenant may call, as ARM treats them (the operations lists, a
// subscription's own GET is still checked).
const AnyPrincipal = "*authenticated*"

// Do is an operation needing action.
func Do(action string, h HandlerFunc) Op { return Op{Action: action, Handler: h} }

// List is a list operation needing action on the listed items.
func List(action string, h HandlerFunc) Op { return Op{Action: action, List: true, Handler: h} }

// Authorizer decides whether a principal may perform an action at a scope
// (an ARM resource id or a prefix of one: /subscriptions/{s}[/resourceGroups/
// {rg}[/providers/…]]). Scopes are compared case-insensitively; an
// assignment at a scope covers everything below it.
type Authorizer interface {
	// Allowed reports whether p may perform action at scope.
	Allowed(ctx context.Context, p Principal, action, scope string) bool
	// AllowedBelow reports whether p may perform action at scope or at some
	// scope below it.
	AllowedBelow(ctx context.Context, p Principal, action, scope string) bool
}

// Server is the ARM HTTP handler.
type Server struct {
	Auth Authenticator
	// Authz authorizes every non-public operation (RBAC). Nil allows every
	// authenticated principal everything (handler unit tests only).
	Authz      Authorizer
	Resources  *resources.Service
	Operations *operation.Tracker
	Clock      clock.Clock
	Log        *slog.Logger
	// Metadata is served at /metadata/endpoints (az cloud register).
	Metadata func(base string) any
	// RetryAfter is the polling delay advertised on async operations.
	RetryAfter time.Duration

	routes []*compiledRoute
}

// Handle adds routes. It panics on an operation without a handler, or of
// a non-public route without an action: authorization cannot be forgotten.
func (s *Server) Handle(routes ...Route) {
	for _, rt := range routes {
		for m, op := range rt.Methods {
			if op.Handler == nil || (!rt.Public && op.Action == "") {
				panic("arm: " + m + " " + rt.Pattern + " declares no handler or no RBAC action")
			}
		}
		s.routes = append(s.routes, compile(rt))
	}
}

// Routes returns the routes added so far, in matching order.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	for i, c := range s.routes {
		out[i] = c.Route
	}
	return out
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	start := time.Now()
	reqID := uuid.NewString()
	h := w.Header()
	h.Set("x-ms-request-id", reqID)
	corr := hr.Header.Get("x-ms-correlation-request-id")
	if corr == "" {
		corr = reqID
	}
	h.Set("x-ms-correlation-request-id", corr)
	if id := hr.Header.Get("x-ms-client-request-id"); id != "" && strings.EqualFold(hr.Header.Get("x-ms-return-client-request-id"), "true") {
		h.Set("x-ms-client-request-id", id)
	}
	sw := &statusWriter{ResponseWriter: w}
	err := s.serve(sw, hr)
	if err != nil {
		s.writeError(sw, hr, err)
	}
	if s.Log != nil {
		s.Log.Debug("arm", "method", hr.Method, "path", hr.URL.Path, "status", sw.status, "ms", time.Since(start).Milliseconds(), "request_id", reqID)
	}
}

func (s *Server) serve(w http.ResponseWriter, hr *http.Request) error {
	segs := splitPath(hr.URL.EscapedPath())
	var matched *compiledRoute
	var params map[string]string
	for _, rt := range s.routes {
		if p, ok := rt.match(segs); ok {
			matched, params = rt, p
			break
		}
	}
	if matched == nil {
		return apierr.New(apierr.NotFound, "InvalidResourceType", "The resource type could not be found in the namespace for api version '%s'.", hr.URL.Query().Get("api-version"))
	}
	method := hr.Method
	op, ok := matched.Methods[method]
	if !ok && method == http.MethodHead {
		op, ok = matched.Methods[http.MethodGet]
	}
	if !ok {
		w.Header().Set("Allow", matched.allow)
		return &apierr.Error{Class: apierr.Invalid, Code: "MethodNotAllowed", Message: "The requested resource does not support http method '" + method + "'.", Err: errMethod}
	}
	req := &Request{Request: hr, Params: params, Base: baseURL(hr)}
	if !matched.Public {
		p, err := s.Auth.Authenticate(hr)
		if err != nil {
			return err
		}
		req.Principal = p
	}
	if matched.Versions != nil {
		v, err := matched.Versions.check(hr.URL.Query())
		if err != nil {
			return err
		}
		req.APIVersion = v
	}
	sub := params["subscriptionId"]
	if sub == "" && len(segs) >= 2 && strings.EqualFold(segs[0], "subscriptions") {
		// A {scope*} route (role assignments): the scope's subscription.
		sub, _ = url.PathUnescape(segs[1])
	}
	if sub != "" && !matched.Public {
		s, err := s.Resources.GetSubscription(hr.Context(), sub)
		if err != nil {
			return err
		}
		if !strings.EqualFold(s.TenantID, req.Principal.TenantID) {
			return apierr.New(apierr.Unauthenticated, "InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer '%s'. It must match the tenant associated with this subscription.", req.Principal.TenantID)
		}
	}
	if !matched.Public {
		if err := s.authorize(req, op); err != nil {
			return err
		}
	}
	return op.Handler(w, req)
}

// authorize is the one place ARM requests are authorized: the operation's
// action at the request's scope (its path), or for a list anywhere below it.
func (s *Server) authorize(r *Request, op Op) error {
	if s.Authz == nil {
		return nil
	}
	r.authz = s.Authz
	if op.Action == AnyPrincipal {
		return nil
	}
	scope := Scope(r.URL.Path)
	if s.Authz.Allowed(r.Context(), r.Principal, op.Action, scope) {
		return nil
	}
	if op.List {
		// A list is refused over the scope its items live under, as ARM
		// names it ("over scope '/subscriptions/s'" for resource groups).
		scope = listScope(scope)
		if s.Authz.AllowedBelow(r.Context(), r.Principal, op.Action, scope) {
			return nil
		}
	}
	return AuthorizationFailed(r.Principal, op.Action, scope)
}

// listScope is the scope a list's items live under: a collection path
// without its collection ("/subscriptions/s/resourcegroups" →
// "/subscriptions/s"), and without the provider namespace that introduces
// it ("…/rg/providers/Microsoft.X/things" → "…/rg"); an item path stays.
// A principal with a role on one resource group passes a subscription-wide
// list through it (the handler keeps that group's items).
func listScope(scope string) string {
	segs := splitPath(scope)
	if len(segs)%2 == 1 {
		segs = segs[:len(segs)-1]
		if n := len(segs); n >= 2 && strings.EqualFold(segs[n-2], "providers") {
			segs = segs[:n-2]
		}
	}
	return "/" + strings.Join(segs, "/")
}

// Scope is the authorization scope of a request path: the path with empty
// segments dropped, as "/a/b/c".
func Scope(path string) string { return "/" + strings.Join(splitPath(path), "/") }

// AuthorizationFailed is ARM's 403 for a principal without action at scope.
func AuthorizationFailed(p Principal, action, scope string) error {
	return apierr.New(apierr.Forbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		p.ObjectID, p.ObjectID, action, scope)
}

// baseURL is the scheme and host the client used.
func baseURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

// WriteJSON writes v as JSON with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, err = w.Write(b)
	return err
}

// WriteDeleted answers a synchronous DELETE as ARM does: 200 when the
// resource existed, 204 when there was nothing to delete.
func WriteDeleted(w http.ResponseWriter, existed bool) error {
	if existed {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// DecodeJSON reads a request body (at most 4 MiB) and decodes it into v,
// answering ARM's errors for an empty, oversized or malformed body.
func DecodeJSON(r *Request, v any) error {
	b, err := ReadBody(r)
	if err != nil {
		return err
	}
	return Unmarshal(b, v)
}

// ReadBody reads a request body of at most 4 MiB.
func ReadBody(r *Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 4<<20))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, apierr.New(apierr.TooLarge, "RequestEntityTooLarge", "The request content size exceeds the maximum of 4194304 bytes.")
	}
	if err != nil {
		return nil, apierr.New(apierr.Invalid, "InvalidRequestContent", "The request content could not be read.")
	}
	return b, nil
}

// Unmarshal decodes a JSON body into v with ARM's error for bad content.
func Unmarshal(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return apierr.New(apierr.Invalid, "InvalidRequestContent", "The request content was invalid and could not be deserialized: 'The request body is empty.'")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return apierr.New(apierr.Invalid, "InvalidRequestContent", "The request content was invalid and could not be deserialized: '%s'.", err.Error())
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming handlers flush.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
