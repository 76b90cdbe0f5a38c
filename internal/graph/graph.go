// Package graph is berth's Microsoft Graph subset: the applications and
// servicePrincipals endpoints of /v1.0 that `az ad sp create-for-rbac`,
// `az ad sp list|show|delete`, `az ad app list|delete` and `berth sp` call,
// over berth's token service (package identity), which holds the directory.
//
// Requests need a berth token of Graph's audience (https://graph.microsoft.com,
// Graph's app id, or berth's own base URL, which az uses as Graph's resource
// from /metadata/endpoints). Only principals Manager allows may call it —
// by default the well-known service principal alone. Errors use Graph's
// envelope {"error":{"code","message","innerError":{…}}}.
//
// Mapping to the directory: an application is a principal's application
// object (Principal.AppObjectID, AppOnly until its service principal
// exists); a service principal is the principal's object (Principal.ObjectID,
// a token's oid). Managed identities are listed as servicePrincipals of type
// ManagedIdentity and cannot be deleted here (they go with their resource).
package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/identity"
)

// PathPrefix is the prefix of every path the Handler serves.
const PathPrefix = "/v1.0/"

// Match reports whether the Handler serves path.
func Match(path string) bool { return strings.HasPrefix(strings.ToLower(path), PathPrefix) }

// Handler serves the Graph subset.
type Handler struct {
	IDs *identity.Service
	// Manager says whether the principal with object ID oid may manage
	// applications and service principals. Nil: only the well-known
	// service principal.
	Manager func(ctx context.Context, oid string) bool
	// Now dates errors; nil: time.Now.
	Now func() time.Time
}

// graphError is Graph's error envelope.
type graphError struct {
	status  int
	code    string
	message string
}

func (e *graphError) Error() string { return e.code + ": " + e.message }

func gerr(status int, code, format string, args ...any) *graphError {
	return &graphError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func notFound(id string) *graphError {
	return gerr(http.StatusNotFound, "Request_ResourceNotFound",
		"Resource '%s' does not exist or one of its queried reference-property objects are not present.", id)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, reqID string, e *graphError) {
	inner := map[string]string{
		"date":       h.now().UTC().Format("2006-01-02T15:04:05"),
		"request-id": reqID,
	}
	if c := r.Header.Get("client-request-id"); c != "" {
		inner["client-request-id"] = c
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://`+r.Host+`/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`)
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]any{"code": e.code, "message": e.message, "innerError": inner}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// authenticate checks the bearer token and the caller's right to manage
// the directory.
func (h *Handler) authenticate(r *http.Request) *graphError {
	auth := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(auth, " ")
	tok = strings.TrimSpace(tok)
	if auth == "" || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
	}
	c, err := h.IDs.Verify(tok, identity.AudienceGraph, identity.AudienceGraphAppID)
	switch {
	case err == nil:
	case errors.Is(err, identity.ErrTokenExpired):
		return gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
	case errors.Is(err, identity.ErrWrongAudience):
		return gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
	case errors.Is(err, identity.ErrBadSignature):
		return gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Signature validation failed.")
	default:
		return gerr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure.")
	}
	allowed := strings.EqualFold(c.ObjectID, identity.DefaultObjectID)
	if h.Manager != nil {
		allowed = h.Manager(r.Context(), c.ObjectID)
	}
	if !allowed {
		return gerr(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
	}
	return nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := uuid.NewString()
	w.Header().Set("request-id", reqID)
	if c := r.Header.Get("client-request-id"); c != "" {
		w.Header().Set("client-request-id", c)
	}
	if e := h.authenticate(r); e != nil {
		h.writeError(w, r, reqID, e)
		return
	}
	if e := h.route(w, r); e != nil {
		h.writeError(w, r, reqID, e)
	}
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request) *graphError {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(segs) < 2 {
		return gerr(http.StatusBadRequest, "BadRequest", "Invalid version.")
	}
	coll, rest := strings.ToLower(segs[1]), segs[2:]
	ctx := r.Context()
	switch {
	case coll == "applications" && len(rest) == 0:
		switch r.Method {
		case http.MethodGet:
			return h.listApplications(ctx, w, r)
		case http.MethodPost:
			return h.createApplication(ctx, w, r)
		}
	case coll == "applications" && len(rest) == 1:
		switch r.Method {
		case http.MethodGet:
			p, e := h.application(ctx, rest[0])
			if e != nil {
				return e
			}
			return h.writeApplication(ctx, w, r, http.StatusOK, p, "")
		case http.MethodPatch:
			return h.patchApplication(ctx, w, r, rest[0])
		case http.MethodDelete:
			p, e := h.application(ctx, rest[0])
			if e != nil {
				return e
			}
			if err := h.IDs.DeleteApplication(ctx, p.ClientID); err != nil {
				return directoryError(err, rest[0])
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	case coll == "applications" && len(rest) == 2 && r.Method == http.MethodPost:
		switch strings.ToLower(rest[1]) {
		case "addpassword":
			return h.addPassword(ctx, w, r, rest[0])
		case "removepassword":
			return h.removePassword(ctx, w, r, rest[0])
		}
	case coll == "serviceprincipals" && len(rest) == 0:
		switch r.Method {
		case http.MethodGet:
			return h.listServicePrincipals(ctx, w, r)
		case http.MethodPost:
			return h.createServicePrincipal(ctx, w, r)
		}
	case coll == "serviceprincipals" && len(rest) == 1:
		switch r.Method {
		case http.MethodGet:
			p, e := h.servicePrincipal(ctx, rest[0])
			if e != nil {
				return e
			}
			return h.writeServicePrincipal(ctx, w, r, http.StatusOK, p)
		case http.MethodDelete:
			p, e := h.servicePrincipal(ctx, rest[0])
			if e != nil {
				return e
			}
			if p.Kind == identity.KindManagedIdentity {
				return gerr(http.StatusBadRequest, "Request_BadRequest",
					"The service principal of a managed identity cannot be deleted; delete the identity's resource instead.")
			}
			if err := h.IDs.RemoveServicePrincipal(ctx, p.ObjectID); err != nil {
				return directoryError(err, rest[0])
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	default:
		return gerr(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", segs[1])
	}
	return gerr(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
}

// directoryError maps identity errors.
func directoryError(err error, id string) *graphError {
	switch {
	case errors.Is(err, identity.ErrUnknownClient):
		return notFound(id)
	case errors.Is(err, identity.ErrDefaultPrincipal):
		return gerr(http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation: berth's well-known service principal cannot be deleted.")
	}
	return gerr(http.StatusInternalServerError, "InternalServerError", "berth could not update its directory; retry the request.")
}

// decode reads a JSON body (at most 1 MiB).
func decode(r *http.Request, v any) *graphError {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 1<<20))
	if err != nil {
		return gerr(http.StatusBadRequest, "BadRequest", "The request body could not be read.")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return gerr(http.StatusBadRequest, "BadRequest", "Empty Payload. JSON content expected.")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return gerr(http.StatusBadRequest, "BadRequest", "Invalid JSON payload: %s", err.Error())
	}
	return nil
}

// principals lists the directory.
func (h *Handler) principals(ctx context.Context) ([]identity.Principal, *graphError) {
	ps, err := h.IDs.ListPrincipals(ctx)
	if err != nil {
		return nil, gerr(http.StatusInternalServerError, "InternalServerError", "berth could not read its directory; retry the request.")
	}
	sort.Slice(ps, func(a, b int) bool { return ps[a].ClientID < ps[b].ClientID })
	return ps, nil
}

// application finds an application by object id.
func (h *Handler) application(ctx context.Context, id string) (identity.Principal, *graphError) {
	ps, e := h.principals(ctx)
	if e != nil {
		return identity.Principal{}, e
	}
	for _, p := range ps {
		if p.Kind == identity.KindServicePrincipal && strings.EqualFold(p.AppObjectID, id) {
			return p, nil
		}
	}
	return identity.Principal{}, notFound(id)
}

// servicePrincipal finds a service principal by object id.
func (h *Handler) servicePrincipal(ctx context.Context, id string) (identity.Principal, *graphError) {
	if !h.IDs.Live(id) {
		return identity.Principal{}, notFound(id)
	}
	p, err := h.IDs.PrincipalByObjectID(ctx, id)
	if err != nil {
		return identity.Principal{}, notFound(id)
	}
	return p, nil
}

// filter is a parsed $filter: clauses joined by "and".
type filter []func(o map[string]any) bool

var (
	reEq         = regexp.MustCompile(`(?i)^(appId|displayName|id)\s+eq\s+'((?:[^']|'')*)'$`)
	reStartsWith = regexp.MustCompile(`(?i)^startswith\(\s*displayName\s*,\s*'((?:[^']|'')*)'\s*\)$`)
	reAny        = regexp.MustCompile(`(?i)^(servicePrincipalNames|identifierUris)/any\(\s*(\w+)\s*:\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*\)$`)
	reAnd        = regexp.MustCompile(`(?i)\s+and\s+`)
)

func unquote(s string) string { return strings.ReplaceAll(s, "''", "'") }

// parseFilter understands what az and berth send.
func parseFilter(q string) (filter, *graphError) {
	q = strings.TrimSpace(q)
	if q == "" {
		return nil, nil
	}
	var f filter
	for _, c := range reAnd.Split(q, -1) {
		c = strings.TrimSpace(c)
		if m := reEq.FindStringSubmatch(c); m != nil {
			field, want := m[1], unquote(m[2])
			f = append(f, func(o map[string]any) bool {
				for k, v := range o {
					if strings.EqualFold(k, field) {
						s, _ := v.(string)
						return strings.EqualFold(s, want)
					}
				}
				return false
			})
			continue
		}
		if m := reStartsWith.FindStringSubmatch(c); m != nil {
			prefix := strings.ToLower(unquote(m[1]))
			f = append(f, func(o map[string]any) bool {
				s, _ := o["displayName"].(string)
				return strings.HasPrefix(strings.ToLower(s), prefix)
			})
			continue
		}
		if m := reAny.FindStringSubmatch(c); m != nil && strings.EqualFold(m[2], m[3]) {
			field, want := m[1], unquote(m[4])
			f = append(f, func(o map[string]any) bool {
				for k, v := range o {
					if strings.EqualFold(k, field) {
						l, _ := v.([]string)
						for _, s := range l {
							if strings.EqualFold(s, want) {
								return true
							}
						}
					}
				}
				return false
			})
			continue
		}
		return nil, gerr(http.StatusBadRequest, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified for property '%s' of resource.", c)
	}
	return f, nil
}

func (f filter) match(o map[string]any) bool {
	for _, c := range f {
		if !c(o) {
			return false
		}
	}
	return true
}

func (h *Handler) context(r *http.Request, set string) string {
	return "https://" + r.Host + "/v1.0/$metadata#" + set
}

// Applications.

func (h *Handler) applicationObject(ctx context.Context, p identity.Principal) map[string]any {
	creds := []map[string]any{}
	if cs, err := h.IDs.PasswordCredentials(ctx, p.ClientID); err == nil {
		for _, c := range cs {
			creds = append(creds, passwordCredential(c, ""))
		}
	}
	return map[string]any{
		"id": p.AppObjectID, "appId": p.ClientID, "displayName": p.DisplayName,
		"signInAudience": "AzureADMyOrg", "identifierUris": []string{}, "passwordCredentials": creds,
		"keyCredentials": []any{}, "requiredResourceAccess": []any{}, "tags": []string{},
		"publisherDomain": "berth.local", "deletedDateTime": nil,
		"api":             map[string]any{"oauth2PermissionScopes": []any{}},
		"web":             map[string]any{"redirectUris": []string{}},
		"appRoles":        []any{},
		"info":            map[string]any{},
		"createdDateTime": nil,
	}
}

func passwordCredential(c identity.PasswordCredential, secret string) map[string]any {
	out := map[string]any{
		"customKeyIdentifier": nil, "displayName": nullable(c.DisplayName), "hint": c.Hint, "keyId": c.KeyID,
		"secretText": nil, "startDateTime": c.Start.UTC().Format(time.RFC3339Nano), "endDateTime": nil,
	}
	if !c.End.IsZero() {
		out["endDateTime"] = c.End.UTC().Format(time.RFC3339Nano)
	}
	if secret != "" {
		out["secretText"] = secret
	}
	return out
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (h *Handler) writeApplication(ctx context.Context, w http.ResponseWriter, r *http.Request, status int, p identity.Principal, _ string) *graphError {
	o := h.applicationObject(ctx, p)
	o["@odata.context"] = h.context(r, "applications/$entity")
	writeJSON(w, status, o)
	return nil
}

func (h *Handler) listApplications(ctx context.Context, w http.ResponseWriter, r *http.Request) *graphError {
	return h.listObjects(ctx, w, r, "applications", func(p identity.Principal) map[string]any {
		if p.Kind != identity.KindServicePrincipal {
			return nil
		}
		return h.applicationObject(ctx, p)
	})
}

// listObjects answers a Graph collection: the objects object makes of the
// directory's principals (nil: not of this collection) that match $filter.
func (h *Handler) listObjects(ctx context.Context, w http.ResponseWriter, r *http.Request, collection string, object func(identity.Principal) map[string]any) *graphError {
	f, e := parseFilter(r.URL.Query().Get("$filter"))
	if e != nil {
		return e
	}
	ps, e := h.principals(ctx)
	if e != nil {
		return e
	}
	out := []map[string]any{}
	for _, p := range ps {
		if o := object(p); o != nil && f.match(o) {
			out = append(out, o)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": h.context(r, collection), "value": out})
	return nil
}

func (h *Handler) createApplication(ctx context.Context, w http.ResponseWriter, r *http.Request) *graphError {
	var in struct {
		DisplayName         *string           `json:"displayName"`
		PasswordCredentials []json.RawMessage `json:"passwordCredentials"`
		KeyCredentials      []json.RawMessage `json:"keyCredentials"`
	}
	if e := decode(r, &in); e != nil {
		return e
	}
	if in.DisplayName == nil || strings.TrimSpace(*in.DisplayName) == "" {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Property 'displayName' is required.")
	}
	if len(in.KeyCredentials) > 0 {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "berth supports only password credentials; certificates (keyCredentials) are not available.")
	}
	if len(in.PasswordCredentials) > 0 {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Password credentials are added with addPassword.")
	}
	p, err := h.IDs.CreateApplication(ctx, *in.DisplayName)
	if err != nil {
		return directoryError(err, "")
	}
	return h.writeApplication(ctx, w, r, http.StatusCreated, p, "")
}

func (h *Handler) patchApplication(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) *graphError {
	p, e := h.application(ctx, id)
	if e != nil {
		return e
	}
	var in map[string]json.RawMessage
	if e := decode(r, &in); e != nil {
		return e
	}
	for k, v := range in {
		switch k {
		case "displayName":
			var name string
			if json.Unmarshal(v, &name) != nil || strings.TrimSpace(name) == "" {
				return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'displayName' of resource 'Application'.")
			}
			if err := h.IDs.SetDisplayName(ctx, p.ClientID, name); err != nil {
				return directoryError(err, id)
			}
		default:
			return gerr(http.StatusBadRequest, "Request_BadRequest", "berth does not support changing property '%s' of resource 'Application'.", k)
		}
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) addPassword(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) *graphError {
	p, e := h.application(ctx, id)
	if e != nil {
		return e
	}
	var in struct {
		PasswordCredential *struct {
			DisplayName   string `json:"displayName"`
			EndDateTime   string `json:"endDateTime"`
			StartDateTime string `json:"startDateTime"`
		} `json:"passwordCredential"`
	}
	if r.ContentLength != 0 {
		if e := decode(r, &in); e != nil {
			return e
		}
	}
	name := ""
	end := h.now().AddDate(2, 0, 0) // Graph's default: two years
	if pc := in.PasswordCredential; pc != nil {
		name = pc.DisplayName
		if pc.EndDateTime != "" {
			t, err := time.Parse(time.RFC3339Nano, pc.EndDateTime)
			if err != nil {
				return gerr(http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.")
			}
			end = t
		}
	}
	secret, cred, err := h.IDs.AddPassword(ctx, p.ClientID, name, end)
	if err != nil {
		return directoryError(err, id)
	}
	o := passwordCredential(cred, secret)
	o["@odata.context"] = h.context(r, "microsoft.graph.passwordCredential")
	writeJSON(w, http.StatusOK, o)
	return nil
}

func (h *Handler) removePassword(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) *graphError {
	p, e := h.application(ctx, id)
	if e != nil {
		return e
	}
	var in struct {
		KeyID string `json:"keyId"`
	}
	if e := decode(r, &in); e != nil {
		return e
	}
	found, err := h.IDs.RemovePassword(ctx, p.ClientID, in.KeyID)
	if err != nil {
		return directoryError(err, id)
	}
	if !found {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "No password credential found with keyId '%s'.", in.KeyID)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Service principals.

func servicePrincipalObject(p identity.Principal) map[string]any {
	names := []string{p.ClientID}
	typ, alt := "Application", []string{}
	if p.Kind == identity.KindManagedIdentity {
		typ = "ManagedIdentity"
		names = append(names, p.ResourceID)
		alt = []string{"isExplicit=" + isExplicit(p.ResourceID), p.ResourceID}
	}
	return map[string]any{
		"id": p.ObjectID, "appId": p.ClientID, "displayName": p.DisplayName, "appDisplayName": p.DisplayName,
		"accountEnabled": true, "servicePrincipalType": typ, "servicePrincipalNames": names,
		"appOwnerOrganizationId": p.TenantID, "signInAudience": "AzureADMyOrg", "alternativeNames": alt,
		"tags": []string{}, "passwordCredentials": []any{}, "keyCredentials": []any{}, "appRoles": []any{},
		"oauth2PermissionScopes": []any{}, "replyUrls": []string{}, "deletedDateTime": nil,
	}
}

// isExplicit is "True" for user-assigned identities, as Entra marks them.
func isExplicit(resourceID string) string {
	if strings.Contains(strings.ToLower(resourceID), "/providers/microsoft.managedidentity/userassignedidentities/") {
		return "True"
	}
	return "False"
}

func (h *Handler) writeServicePrincipal(_ context.Context, w http.ResponseWriter, r *http.Request, status int, p identity.Principal) *graphError {
	o := servicePrincipalObject(p)
	o["@odata.context"] = h.context(r, "servicePrincipals/$entity")
	writeJSON(w, status, o)
	return nil
}

func (h *Handler) listServicePrincipals(ctx context.Context, w http.ResponseWriter, r *http.Request) *graphError {
	return h.listObjects(ctx, w, r, "servicePrincipals", func(p identity.Principal) map[string]any {
		if p.AppOnly {
			return nil
		}
		return servicePrincipalObject(p)
	})
}

func (h *Handler) createServicePrincipal(ctx context.Context, w http.ResponseWriter, r *http.Request) *graphError {
	var in struct {
		AppID string `json:"appId"`
	}
	if e := decode(r, &in); e != nil {
		return e
	}
	if in.AppID == "" {
		return gerr(http.StatusBadRequest, "Request_BadRequest", "Property 'appId' is required.")
	}
	p, err := h.IDs.CreateServicePrincipalFor(ctx, in.AppID)
	switch {
	case errors.Is(err, identity.ErrUnknownClient):
		return gerr(http.StatusBadRequest, "Request_BadRequest",
			"The appId '%s' of the service principal does not reference a valid application object.", in.AppID)
	case errors.Is(err, identity.ErrServicePrincipalExists):
		return gerr(http.StatusConflict, "Request_MultipleObjectsWithSameKeyValue",
			"The service principal cannot be created, updated, or restored because the service principal name %s is already in use.", in.AppID)
	case err != nil:
		return directoryError(err, in.AppID)
	}
	return h.writeServicePrincipal(ctx, w, r, http.StatusCreated, p)
}
