// Package authorization serves Microsoft.Authorization over ARM: role
// assignments (PUT/GET/DELETE at any scope, lists with the $filter forms
// the SDKs and az send: atScope(), principalId eq '…', assignedTo('…')) and
// role definitions (GET and list at any scope, $filter=roleName eq '…'),
// backed by package rbac. Scopes come from the route's {scope*} segment:
// a subscription, a resource group or a resource, as ARM takes them.
package authorization

import (
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/rbac"
)

// Versions are the api-versions of Microsoft.Authorization's role
// assignments and definitions that berth accepts: 2022-04-01 (the Go SDK's
// armauthorization/v2 and Debian's azure-mgmt-authorization default) and
// the others those SDKs and az send.
var Versions = &arm.Versions{Type: "roleAssignments", List: []string{
	"2015-06-01", "2015-07-01", "2017-05-01", "2018-01-01-preview", "2018-07-01", "2018-09-01-preview",
	"2020-03-01-preview", "2020-04-01-preview", "2020-08-01-preview", "2020-10-01-preview", "2021-04-01-preview",
	"2022-01-01-preview", "2022-04-01", "2022-05-01-preview",
}}

// API serves Microsoft.Authorization.
type API struct {
	ARM     *arm.Server
	Service *rbac.Service
	// PageSize is the number of assignments per list page; default 100.
	PageSize int
}

// RBAC actions of Microsoft.Authorization.
const (
	ns       = "Microsoft.Authorization"
	raRead   = ns + "/roleAssignments/read"
	raWrite  = ns + "/roleAssignments/write"
	raDelete = ns + "/roleAssignments/delete"
	rdRead   = ns + "/roleDefinitions/read"
)

const (
	raPath = "/providers/Microsoft.Authorization/roleAssignments"
	rdPath = "/providers/Microsoft.Authorization/roleDefinitions"
)

// Register adds the routes. Each exists at a scope ({scope*}: one or more
// segments) and at the tenant root, where the Go SDK's GetByID/DeleteByID
// and listing at "/" land too.
func (a *API) Register() {
	v := Versions
	assignment := arm.Ops{"PUT": arm.Do(raWrite, a.put), "GET": arm.Do(raRead, a.get), "DELETE": arm.Do(raDelete, a.delete)}
	a.ARM.Handle(
		arm.Route{Pattern: "/{scope*}" + raPath, Versions: v, Methods: arm.Ops{"GET": arm.List(raRead, a.list)}},
		arm.Route{Pattern: "/{scope*}" + raPath + "/{roleAssignmentName}", Versions: v, Methods: assignment},
		arm.Route{Pattern: raPath, Versions: v, Methods: arm.Ops{"GET": arm.List(raRead, a.list)}},
		arm.Route{Pattern: raPath + "/{roleAssignmentName}", Versions: v, Methods: assignment},
		arm.Route{Pattern: "/{scope*}" + rdPath, Versions: v, Methods: arm.Ops{"GET": arm.List(rdRead, a.listDefinitions)}},
		arm.Route{Pattern: "/{scope*}" + rdPath + "/{roleDefinitionId}", Versions: v, Methods: arm.Ops{"GET": arm.List(rdRead, a.getDefinition)}},
		// Role definitions are the same for everyone: the tenant-level
		// reads are open to every principal of the tenant.
		arm.Route{Pattern: rdPath, Versions: v, Methods: arm.Ops{"GET": arm.Do(arm.AnyPrincipal, a.listDefinitions)}},
		arm.Route{Pattern: rdPath + "/{roleDefinitionId}", Versions: v, Methods: arm.Ops{"GET": arm.Do(arm.AnyPrincipal, a.getDefinition)}},
	)
}

// scope is the request's scope: the {scope*} segment, or "/".
func scope(r *arm.Request) string { return rbac.NormScope(r.Param("scope")) }

func (a *API) pageSize() int {
	if a.PageSize > 0 {
		return a.PageSize
	}
	return 100
}

// Wire shapes (2022-04-01; older versions read the fields they know).
type assignmentProps struct {
	RoleDefinitionID string     `json:"roleDefinitionId"`
	PrincipalID      string     `json:"principalId"`
	PrincipalType    string     `json:"principalType"`
	Scope            string     `json:"scope"`
	Condition        *string    `json:"condition"`
	ConditionVersion *string    `json:"conditionVersion"`
	CreatedOn        *time.Time `json:"createdOn"`
	UpdatedOn        *time.Time `json:"updatedOn"`
	CreatedBy        *string    `json:"createdBy"`
	UpdatedBy        *string    `json:"updatedBy"`
	DelegatedMIRID   *string    `json:"delegatedManagedIdentityResourceId"`
	Description      *string    `json:"description"`
}

type roleAssignment struct {
	Properties assignmentProps `json:"properties"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Name       string          `json:"name"`
}

type assignmentIn struct {
	Properties *struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType"`
		Description      string `json:"description"`
		Condition        string `json:"condition"`
		ConditionVersion string `json:"conditionVersion"`
		DelegatedMIRID   string `json:"delegatedManagedIdentityResourceId"`
	} `json:"properties"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toWire(as *rbac.Assignment) roleAssignment {
	c, u := as.CreatedOn, as.UpdatedOn
	return roleAssignment{
		Properties: assignmentProps{
			RoleDefinitionID: rbac.RoleDefinitionID(as.Scope, as.RoleDefinitionID),
			PrincipalID:      as.PrincipalID, PrincipalType: as.PrincipalType, Scope: as.Scope,
			Condition: nullable(as.Condition), ConditionVersion: nullable(as.ConditionVersion),
			CreatedOn: &c, UpdatedOn: &u, CreatedBy: nullable(as.CreatedBy), UpdatedBy: nullable(as.UpdatedBy),
			DelegatedMIRID: nullable(as.DelegatedMIRID), Description: nullable(as.Description),
		},
		ID: as.ID(), Type: "Microsoft.Authorization/roleAssignments", Name: as.Name,
	}
}

// checkScope refuses a scope whose subscription or resource group does not
// exist, as ARM does before the provider sees the request.
func (a *API) checkScope(r *arm.Request, sc string) error {
	segs := strings.Split(strings.TrimPrefix(sc, "/"), "/")
	if sc == "/" || !strings.EqualFold(segs[0], "subscriptions") {
		return nil
	}
	if len(segs) < 2 {
		return apierr.New(apierr.Invalid, "InvalidRoleAssignmentScope", "The scope '%s' is not valid.", sc)
	}
	if len(segs) >= 4 && strings.EqualFold(segs[2], "resourceGroups") && a.ARM.Resources != nil {
		if _, err := a.ARM.Resources.Get(r.Context(), segs[1], segs[3]); err != nil {
			return err
		}
	}
	return nil
}

func (a *API) put(w http.ResponseWriter, r *arm.Request) error {
	sc := scope(r)
	name := r.Param("roleAssignmentName")
	if !rbac.IsGUID(name) {
		return rbac.InvalidAssignmentName(name)
	}
	var in assignmentIn
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.Properties == nil {
		return apierr.New(apierr.Invalid, "InvalidRequestContent", "Required property 'properties' not found in JSON. Path '', line 1, position 2.")
	}
	if err := a.checkScope(r, sc); err != nil {
		return err
	}
	p := in.Properties
	as, created, err := a.Service.Create(r.Context(), rbac.Assignment{
		Name: name, Scope: sc, RoleDefinitionID: p.RoleDefinitionID, PrincipalID: p.PrincipalID, PrincipalType: p.PrincipalType,
		Description: p.Description, Condition: p.Condition, ConditionVersion: p.ConditionVersion, DelegatedMIRID: p.DelegatedMIRID,
	}, r.Principal.ObjectID)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return arm.WriteJSON(w, status, toWire(as))
}

func (a *API) get(w http.ResponseWriter, r *arm.Request) error {
	as, err := a.Service.Get(r.Context(), scope(r), r.Param("roleAssignmentName"))
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(as))
}

// delete answers 200 with the assignment it removed, 204 when there was
// none.
func (a *API) delete(w http.ResponseWriter, r *arm.Request) error {
	as, err := a.Service.Delete(r.Context(), scope(r), r.Param("roleAssignmentName"))
	if err != nil {
		return err
	}
	if as == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(as))
}

// $filter forms of role-assignment lists.
var (
	atScopeRE    = regexp.MustCompile(`(?i)^atScope\(\)$`)
	principalRE  = regexp.MustCompile(`(?i)^principalId\s+eq\s+'([^']*)'$`)
	assignedToRE = regexp.MustCompile(`(?i)^assignedTo\('([^']*)'\)$`)
	roleIDRE     = regexp.MustCompile(`(?i)^roleDefinitionId\s+eq\s+'([^']*)'$`)
	andRE        = regexp.MustCompile(`(?i)\s+and\s+`)
	roleNameRE   = regexp.MustCompile(`(?i)^roleName\s+eq\s+'([^']*)'$`)
	roleTypeRE   = regexp.MustCompile(`(?i)^type\s+eq\s+'([^']*)'$`)
)

func invalidFilter(f string) error {
	return apierr.New(apierr.Invalid, "InvalidFilterInQueryString", "The filter '%s' is not supported.", f)
}

// parseFilter reads a role-assignment list's $filter.
func parseFilter(sc, raw string) (rbac.Filter, error) {
	f := rbac.Filter{Scope: sc}
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return f, nil
	}
	for _, term := range andRE.Split(raw, -1) {
		term = strings.TrimSpace(term)
		switch {
		case atScopeRE.MatchString(term):
			f.AtScope = true
		case principalRE.MatchString(term):
			f.PrincipalID = principalRE.FindStringSubmatch(term)[1]
		case assignedToRE.MatchString(term):
			f.PrincipalID = assignedToRE.FindStringSubmatch(term)[1]
		case roleIDRE.MatchString(term):
			id := roleIDRE.FindStringSubmatch(term)[1]
			guid, ok := rbac.ParseRoleDefinitionID(id)
			if !ok {
				guid = id
			}
			f.RoleDefinitionID = guid
		default:
			return f, invalidFilter(raw)
		}
	}
	return f, nil
}

// list serves role-assignment lists: at the scope, above it and below it
// (atScope(): not below), keeping what the caller may read: everything
// that applies at the scope when it may read there, else each
// assignment it may read where the assignment is.
func (a *API) list(w http.ResponseWriter, r *arm.Request) error {
	sc := scope(r)
	f, err := parseFilter(sc, r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	atScope := r.Allowed(raRead, sc)
	var items []*rbac.Assignment
	for _, as := range a.Service.List(r.Context(), f) {
		applies := rbac.Within(sc, as.Scope)
		if (applies && atScope) || r.Allowed(raRead, as.ID()) {
			items = append(items, as)
		}
	}
	page, next := arm.Page(items, r, a.pageSize(), func(as *rbac.Assignment) string { return as.Name })
	out := struct {
		Value    []roleAssignment `json:"value"`
		NextLink string           `json:"nextLink,omitempty"`
	}{Value: []roleAssignment{}, NextLink: next}
	for _, as := range page {
		out.Value = append(out.Value, toWire(as))
	}
	return arm.WriteJSON(w, http.StatusOK, out)
}

type permissionWire struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

type roleDefinition struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Name       string `json:"name"`
	Properties struct {
		RoleName         string           `json:"roleName"`
		Type             string           `json:"type"`
		Description      string           `json:"description"`
		AssignableScopes []string         `json:"assignableScopes"`
		Permissions      []permissionWire `json:"permissions"`
		CreatedOn        time.Time        `json:"createdOn"`
		UpdatedOn        time.Time        `json:"updatedOn"`
		CreatedBy        *string          `json:"createdBy"`
		UpdatedBy        *string          `json:"updatedBy"`
	} `json:"properties"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func definitionToWire(sc string, d *rbac.RoleDefinition) roleDefinition {
	var out roleDefinition
	out.ID, out.Type, out.Name = rbac.RoleDefinitionID(sc, d.ID), "Microsoft.Authorization/roleDefinitions", d.ID
	p := &out.Properties
	p.RoleName, p.Type, p.Description, p.AssignableScopes = d.RoleName, d.RoleType, d.Description, d.AssignableScopes
	p.CreatedOn, p.UpdatedOn = d.CreatedOn, d.UpdatedOn
	p.Permissions = []permissionWire{}
	for _, pm := range d.Permissions {
		p.Permissions = append(p.Permissions, permissionWire{Actions: nonNil(pm.Actions), NotActions: nonNil(pm.NotActions),
			DataActions: nonNil(pm.DataActions), NotDataActions: nonNil(pm.NotDataActions)})
	}
	return out
}

// getDefinition serves one role definition (role definitions are not
// scoped resources: every scope sees the same ones).
func (a *API) getDefinition(w http.ResponseWriter, r *arm.Request) error {
	id := r.Param("roleDefinitionId")
	d, ok := a.Service.RoleDefinition(id)
	if !ok {
		return rbac.RoleDefinitionNotFound(id)
	}
	return arm.WriteJSON(w, http.StatusOK, definitionToWire(scope(r), d))
}

// listDefinitions serves the role definitions, with $filter roleName eq
// '…' (case-insensitive, as az and the Python SDK look a role's GUID up)
// or type eq 'BuiltInRole'|'CustomRole'.
func (a *API) listDefinitions(w http.ResponseWriter, r *arm.Request) error {
	var name, typ string
	if raw := strings.TrimSpace(r.URL.Query().Get("$filter")); raw != "" {
		for _, term := range andRE.Split(raw, -1) {
			term = strings.TrimSpace(term)
			switch {
			case roleNameRE.MatchString(term):
				name = roleNameRE.FindStringSubmatch(term)[1]
			case roleTypeRE.MatchString(term):
				typ = roleTypeRE.FindStringSubmatch(term)[1]
			default:
				return invalidFilter(raw)
			}
		}
	}
	sc := scope(r)
	out := struct {
		Value []roleDefinition `json:"value"`
	}{Value: []roleDefinition{}}
	for _, d := range a.Service.RoleDefinitions() {
		if (name != "" && !strings.EqualFold(d.RoleName, name)) || (typ != "" && !strings.EqualFold(d.RoleType, typ)) {
			continue
		}
		out.Value = append(out.Value, definitionToWire(sc, d))
	}
	return arm.WriteJSON(w, http.StatusOK, out)
}
