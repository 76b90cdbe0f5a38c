// Package imds is the managed-identity part of the instance metadata
// endpoint (IMDS) that code inside a container group reaches at
// 169.254.169.254:80: GET /metadata/identity/oauth2/token with the
// Metadata: true header answers an access token for one of the group's
// managed identities, in IMDS's shape and with IMDS's errors, so
// azidentity's ManagedIdentityCredential and Python's azure-identity work
// unchanged. Connections arrive from the runtime (Serve), which says which
// group each came from (the runtime redirects a group's traffic for
// 169.254.169.254:80 to a listener on its bridge's gateway and tells the
// group by the connection's source address on that bridge): a group gets
// tokens for its own identities only. Tokens are cached per identity and resource
// until five minutes before they expire.
package imds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/clock"
)

// Address is where groups reach the endpoint. Nothing listens there inside
// a group: the runtime redirects what a group sends to it to berth (see
// containerd.Redirect), which hands each connection to Serve.
var Address = netip.MustParseAddrPort("169.254.169.254:80")

// TokenPath is the managed-identity token path.
const TokenPath = "/metadata/identity/oauth2/token"

// Identity is one managed identity of a group.
type Identity struct {
	ClientID   string
	ObjectID   string // principal id
	ResourceID string // a user-assigned identity's ARM id; "" for the system identity
}

// GroupIdentities is what a group has.
type GroupIdentities struct {
	System *Identity  // nil: none
	User   []Identity // user-assigned
}

// Groups tells the identities of the group a connection came from.
type Groups interface {
	// Identities returns the identities of the group that runs as runtime
	// group id (an unknown id has none).
	Identities(ctx context.Context, runtimeID string) (GroupIdentities, error)
}

// Token is an access token and its validity.
type Token struct {
	AccessToken        string
	NotBefore, Expires time.Time
}

// ErrUnknownResource is Tokens.Issue's error for a resource the token
// service has no audience for.
var ErrUnknownResource = errors.New("unknown resource")

// Tokens issues tokens for managed identities.
type Tokens interface {
	// Issue returns a token for the identity with client id clientID for
	// resource (an audience such as https://management.azure.com/).
	Issue(ctx context.Context, clientID, resource string) (Token, error)
	// Live reports whether the principal with object id oid still exists.
	Live(oid string) bool
}

// Server answers metadata requests arriving on groups' connections.
type Server struct {
	Groups Groups
	Tokens Tokens
	Clock  clock.Clock
	Log    *slog.Logger
	// Tenant names the tenant in errors for unknown resources.
	Tenant string

	once  sync.Once
	ln    *connListener
	srv   *http.Server
	mu    sync.Mutex
	cache map[string]Token // client id + "\x00" + resource (lower case)
}

// refreshBefore: a cached token this close to its expiry is replaced.
const refreshBefore = 5 * time.Minute

type groupKey struct{}

// groupConn is a connection from inside group id.
type groupConn struct {
	net.Conn
	group string
}

func (s *Server) start() {
	s.once.Do(func() {
		if s.Clock == nil {
			s.Clock = clock.Real{}
		}
		s.cache = map[string]Token{}
		s.ln = newConnListener()
		log := s.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		s.srv = &http.Server{
			Handler:           s,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				if gc, ok := c.(*groupConn); ok {
					return context.WithValue(ctx, groupKey{}, gc.group)
				}
				return ctx
			},
		}
		go func() { _ = s.srv.Serve(s.ln) }()
	})
}

// Serve handles one connection from runtime group groupID (the runtime
// hands it over; see containerd.Redirect).
func (s *Server) Serve(groupID string, c net.Conn) {
	s.start()
	if !s.ln.push(&groupConn{Conn: c, group: groupID}) {
		c.Close()
	}
}

// Close stops serving; connections still open are closed.
func (s *Server) Close() {
	s.start()
	s.ln.Close()
	_ = s.srv.Close()
}

// imdsError is IMDS's error body.
type imdsError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Server", "IMDS/150.870.65.1854")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badRequest(w http.ResponseWriter, desc string) {
	writeJSON(w, http.StatusBadRequest, imdsError{Error: "invalid_request", Description: desc})
}

// tokenResponse is IMDS's token answer: every value a string.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	ClientID     string `json:"client_id"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	ExtExpiresIn string `json:"ext_expires_in"`
	NotBefore    string `json:"not_before"`
	Resource     string `json:"resource"`
	TokenType    string `json:"token_type"`
}

// ServeHTTP answers one metadata request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	group, _ := r.Context().Value(groupKey{}).(string)
	if r.URL.Path != TokenPath && r.URL.Path != TokenPath+"/" {
		// berth's IMDS serves identities only (ACI has no instance
		// metadata).
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not found"})
		return
	}
	if !strings.EqualFold(r.Header.Get("Metadata"), "true") {
		badRequest(w, "Required metadata header not specified")
		return
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, imdsError{Error: "invalid_request", Description: "Only GET is supported"})
		return
	}
	q := r.URL.Query()
	if q.Get("api-version") == "" {
		badRequest(w, "Required query variable 'api-version' is missing")
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		badRequest(w, "Required audience parameter not specified")
		return
	}
	named := 0
	for _, k := range []string{"client_id", "object_id", "msi_res_id", "mi_res_id"} {
		if q.Get(k) != "" {
			named++
		}
	}
	if named > 1 {
		badRequest(w, "Only one of client_id, object_id, msi_res_id or mi_res_id may be specified")
		return
	}
	ids, err := s.Groups.Identities(r.Context(), group)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, imdsError{Error: "server_error", Description: "The identities of the container group could not be read. Please retry."})
		return
	}
	id, desc := pick(ids, q.Get("client_id"), q.Get("object_id"), q.Get("msi_res_id")+q.Get("mi_res_id"))
	if id == nil {
		badRequest(w, desc)
		return
	}
	tok, err := s.token(r.Context(), *id, resource)
	if errors.Is(err, ErrUnknownResource) {
		writeJSON(w, http.StatusBadRequest, imdsError{Error: "invalid_resource",
			Description: fmt.Sprintf("AADSTS500011: The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", resource, s.Tenant)})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, imdsError{Error: "server_error", Description: "A token could not be issued for the identity. Please retry."})
		return
	}
	now := s.Clock.Now()
	left := int64(tok.Expires.Sub(now) / time.Second)
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: tok.AccessToken, ClientID: id.ClientID,
		ExpiresIn: strconv.FormatInt(left, 10), ExpiresOn: strconv.FormatInt(tok.Expires.Unix(), 10),
		ExtExpiresIn: strconv.FormatInt(left, 10), NotBefore: strconv.FormatInt(tok.NotBefore.Unix(), 10),
		Resource: resource, TokenType: "Bearer",
	})
}

// pick chooses the identity a request means: the one named (by client id,
// object id or resource id), else the system identity, else the only
// user-assigned one. nil and IMDS's description when there is none.
func pick(ids GroupIdentities, clientID, objectID, resID string) (*Identity, string) {
	all := ids.User
	if ids.System != nil {
		all = append([]Identity{*ids.System}, ids.User...)
	}
	if clientID != "" || objectID != "" || resID != "" {
		for i := range all {
			id := &all[i]
			if (clientID != "" && strings.EqualFold(id.ClientID, clientID)) ||
				(objectID != "" && strings.EqualFold(id.ObjectID, objectID)) ||
				(resID != "" && id.ResourceID != "" && strings.EqualFold(id.ResourceID, resID)) {
				return id, ""
			}
		}
		return nil, "Identity not found"
	}
	switch {
	case ids.System != nil:
		return ids.System, ""
	case len(ids.User) == 1:
		return &ids.User[0], ""
	case len(ids.User) > 1:
		return nil, "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"
	}
	return nil, "Identity not found"
}

// token returns a cached token for id and resource, or a new one.
func (s *Server) token(ctx context.Context, id Identity, resource string) (Token, error) {
	k := strings.ToLower(id.ClientID) + "\x00" + strings.TrimRight(strings.ToLower(resource), "/")
	now := s.Clock.Now()
	s.mu.Lock()
	t, ok := s.cache[k]
	s.mu.Unlock()
	if ok && t.Expires.Sub(now) > refreshBefore && s.Tokens.Live(id.ObjectID) {
		return t, nil
	}
	t, err := s.Tokens.Issue(ctx, id.ClientID, resource)
	if err != nil {
		return Token{}, err
	}
	s.mu.Lock()
	for ck, ct := range s.cache { // drop what expired, so the cache stays small
		if !ct.Expires.After(now) {
			delete(s.cache, ck)
		}
	}
	s.cache[k] = t
	s.mu.Unlock()
	return t, nil
}

// connListener is a net.Listener fed with connections accepted elsewhere.
type connListener struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr {
	return net.TCPAddrFromAddrPort(Address)
}
