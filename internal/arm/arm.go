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
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
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
}

// Param returns a path parameter.
func (r *Request) Param(name string) string { return r.Params[name] }

// HandlerFunc handles one method of one route. A returned error is written
// as ARM's error envelope (see writeError); nothing may have been written.
type HandlerFunc func(w http.ResponseWriter, r *Request) error

// Route is one path pattern with its handlers. Pattern segments are literals
// (matched case-insensitively) or {name} variables.
type Route struct {
	Pattern  string
	Versions *Versions // nil: no api-version required
	Public   bool      // true: no authentication
	Methods  map[string]HandlerFunc
}

// Server is the ARM HTTP handler.
type Server struct {
	Auth       Authenticator
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

// Handle adds routes.
func (s *Server) Handle(routes ...Route) {
	for _, rt := range routes {
		s.routes = append(s.routes, compile(rt))
	}
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
	h, ok := matched.Methods[method]
	if !ok && method == http.MethodHead {
		h, ok = matched.Methods[http.MethodGet]
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
	if sub := params["subscriptionId"]; sub != "" && !matched.Public {
		s, err := s.Resources.GetSubscription(hr.Context(), sub)
		if err != nil {
			return err
		}
		if !strings.EqualFold(s.TenantID, req.Principal.TenantID) {
			return apierr.New(apierr.Unauthenticated, "InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer '%s'. It must match the tenant associated with this subscription.", req.Principal.TenantID)
		}
	}
	return h(w, req)
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
