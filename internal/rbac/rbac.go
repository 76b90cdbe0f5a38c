// Package rbac is berth's Azure role-based access control: the built-in role
// definitions (Owner, Contributor, Reader, AcrPull, AcrPush, AcrDelete,
// AcrImageSigner, AcrQuarantineReader/Writer, with Azure's GUIDs and
// permissions), role assignments (a principal holds a role at a scope), and
// the decisions the ARM front door and the registries' token service ask
// for: may this principal perform this action at this scope?
//
// Scopes are ARM ids or prefixes of them ("/", "/subscriptions/{s}",
// "…/resourceGroups/{rg}", "…/providers/{ns}/{type}/{name}"): an
// assignment covers its scope and everything below it, compared by whole
// path segments, case-insensitively. Actions match a role's actions
// case-insensitively with "*" wildcards; notActions subtract.
//
// State: assignments live in the state store (table "rbac.assignments",
// JSON documents keyed by the lower-case assignment name, a GUID). The
// Service keeps an in-memory index by principal, so a decision costs no
// store read; writes go to the store first, then to the index. Start
// loads the index and makes sure the bootstrap assignment exists: the
// default principal is Owner of the default scope (the well-known service
// principal of the default subscription, so the quick start works).
package rbac

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/store"
)

// Principals tells whether a principal exists (role assignments are
// refused for unknown principals, as Entra-backed ARM does).
type Principals interface {
	// Exists reports whether a principal with that object id exists. It is
	// called once per assignment PUT; it should be an in-memory lookup.
	Exists(ctx context.Context, objectID string) bool
}

// BootstrapName is the name (a GUID) of the assignment that makes the
// default principal Owner of the default scope.
const BootstrapName = "be127000-0000-4000-8000-000000000010"

// tableAssignments is the store table of role assignments.
const tableAssignments = "rbac.assignments"

// Service holds role definitions and assignments and answers decisions.
type Service struct {
	Store      store.Store
	Clock      clock.Clock
	Principals Principals
	// DefaultPrincipal (an object id) is made Owner of DefaultScope at Start
	// (assignment BootstrapName), unless either is empty.
	DefaultPrincipal string
	DefaultScope     string
	// TenantID names the directory in PrincipalNotFound.
	TenantID string

	roles   map[string]*RoleDefinition // by lower-case GUID
	ordered []*RoleDefinition          // by role name

	wmu         sync.Mutex // serialises writes (store + index)
	mu          sync.RWMutex
	byName      map[string]*entry   // lower-case name
	byPrincipal map[string][]*entry // lower-case object id
}

// entry is an indexed assignment: the assignment, its scope's key and its
// role, resolved.
type entry struct {
	a     *Assignment
	scope string // scopeKey(a.Scope)
	role  *RoleDefinition
}

// Assignment is a role assignment: PrincipalID holds role RoleDefinitionID
// at Scope.
type Assignment struct {
	Name             string    `json:"name"`  // a GUID
	Scope            string    `json:"scope"` // as the client wrote it, normalised (see NormScope)
	RoleDefinitionID string    `json:"roleDefinitionId"`
	PrincipalID      string    `json:"principalId"`
	PrincipalType    string    `json:"principalType"`
	Description      string    `json:"description,omitempty"`
	Condition        string    `json:"condition,omitempty"`
	ConditionVersion string    `json:"conditionVersion,omitempty"`
	DelegatedMIRID   string    `json:"delegatedManagedIdentityResourceId,omitempty"`
	CreatedOn        time.Time `json:"createdOn"`
	UpdatedOn        time.Time `json:"updatedOn"`
	CreatedBy        string    `json:"createdBy,omitempty"`
	UpdatedBy        string    `json:"updatedBy,omitempty"`
}

// ID is the assignment's ARM id.
func (a *Assignment) ID() string { return AssignmentID(a.Scope, a.Name) }

// AssignmentID is the ARM id of the assignment name at scope.
func AssignmentID(scope, name string) string {
	return strings.TrimSuffix(NormScope(scope), "/") + "/providers/Microsoft.Authorization/roleAssignments/" + name
}

// RoleDefinitionID is the ARM id of role definition guid as seen from
// scope: under a subscription it is the subscription's
// (/subscriptions/{s}/providers/…), elsewhere the tenant's.
func RoleDefinitionID(scope, guid string) string {
	prefix := ""
	if sub := SubscriptionOf(scope); sub != "" {
		prefix = "/subscriptions/" + sub
	}
	return prefix + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

// SubscriptionOf returns the subscription id a scope lies in, or "".
func SubscriptionOf(scope string) string {
	segs := splitScope(scope)
	if len(segs) >= 2 && strings.EqualFold(segs[0], "subscriptions") {
		return segs[1]
	}
	return ""
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsGUID reports whether s is a GUID.
func IsGUID(s string) bool { return guidRE.MatchString(s) }

var roleDefRE = regexp.MustCompile(`(?i)^(?:/subscriptions/[^/]+)?/providers/Microsoft\.Authorization/roleDefinitions/([^/]+)$`)

// ParseRoleDefinitionID returns the GUID of a role definition id
// ("[/subscriptions/{s}]/providers/Microsoft.Authorization/roleDefinitions/{guid}").
func ParseRoleDefinitionID(id string) (string, bool) {
	m := roleDefRE.FindStringSubmatch(strings.TrimSpace(id))
	if m == nil || !IsGUID(m[1]) {
		return "", false
	}
	return strings.ToLower(m[1]), true
}

// NormScope is scope with empty segments dropped: "/a/b", or "/" for the
// root. Case is kept.
func NormScope(scope string) string { return "/" + strings.Join(splitScope(scope), "/") }

func splitScope(scope string) []string {
	var out []string
	for _, s := range strings.Split(scope, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// scopeKey is the form in which scopes are compared: normalised, lower
// case, "" for the root.
func scopeKey(scope string) string {
	if strings.HasPrefix(scope, "/") && !strings.Contains(scope, "//") && (len(scope) == 1 || !strings.HasSuffix(scope, "/")) {
		// Already normal (the common case: a request path): no split.
		if scope == "/" {
			return ""
		}
		return strings.ToLower(scope)
	}
	s := strings.ToLower(NormScope(scope))
	if s == "/" {
		return ""
	}
	return s
}

// within reports whether scope key s is anc or below it, by whole segments.
func within(s, anc string) bool {
	return anc == "" || s == anc || (len(s) > len(anc) && s[len(anc)] == '/' && strings.HasPrefix(s, anc))
}

// Start loads the role definitions and the assignments, and makes sure the
// bootstrap assignment exists.
func (s *Service) Start(ctx context.Context) error {
	if s.Clock == nil {
		s.Clock = clock.Real{}
	}
	s.roles = map[string]*RoleDefinition{}
	s.ordered = builtIn()
	for _, d := range s.ordered {
		d.compile()
		s.roles[strings.ToLower(d.ID)] = d
	}
	sort.Slice(s.ordered, func(i, j int) bool { return s.ordered[i].RoleName < s.ordered[j].RoleName })
	var all []*Assignment
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableAssignments, "", func(_ string, b []byte) bool {
			var a Assignment
			if json.Unmarshal(b, &a) == nil {
				all = append(all, &a)
			}
			return true
		})
	})
	if err != nil {
		return fmt.Errorf("rbac: loading role assignments: %w", err)
	}
	s.mu.Lock()
	s.byName, s.byPrincipal = map[string]*entry{}, map[string][]*entry{}
	for _, a := range all {
		s.indexLocked(a)
	}
	s.mu.Unlock()
	if s.DefaultPrincipal == "" || s.DefaultScope == "" {
		return nil
	}
	if s.lookup(BootstrapName) != nil {
		return nil
	}
	now := s.Clock.Now().UTC()
	boot := &Assignment{Name: BootstrapName, Scope: NormScope(s.DefaultScope), RoleDefinitionID: Owner,
		PrincipalID: strings.ToLower(s.DefaultPrincipal), PrincipalType: "ServicePrincipal", CreatedOn: now, UpdatedOn: now}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.put(ctx, boot)
}

// indexLocked adds (or replaces) a in the index; s.mu is held.
func (s *Service) indexLocked(a *Assignment) {
	s.unindexLocked(a.Name)
	e := &entry{a: a, scope: scopeKey(a.Scope), role: s.roles[strings.ToLower(a.RoleDefinitionID)]}
	s.byName[strings.ToLower(a.Name)] = e
	p := strings.ToLower(a.PrincipalID)
	s.byPrincipal[p] = append(s.byPrincipal[p], e)
}

func (s *Service) unindexLocked(name string) {
	old := s.byName[strings.ToLower(name)]
	if old == nil {
		return
	}
	delete(s.byName, strings.ToLower(name))
	p := strings.ToLower(old.a.PrincipalID)
	list := s.byPrincipal[p]
	out := make([]*entry, 0, len(list))
	for _, e := range list {
		if e != old {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		delete(s.byPrincipal, p)
	} else {
		s.byPrincipal[p] = out
	}
}

func (s *Service) lookup(name string) *entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byName[strings.ToLower(name)]
}

// put stores a and indexes it; s.wmu is held.
func (s *Service) put(ctx context.Context, a *Assignment) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := s.Store.Update(ctx, func(tx store.Tx) error {
		return tx.Put(tableAssignments, strings.ToLower(a.Name), b)
	}); err != nil {
		return fmt.Errorf("rbac: storing role assignment: %w", err)
	}
	s.mu.Lock()
	s.indexLocked(a)
	s.mu.Unlock()
	return nil
}

// Allowed reports whether principal objectID may perform the control-plane
// action at scope: some assignment of it at scope or above holds a role
// that grants the action. It reads only memory.
func (s *Service) Allowed(_ context.Context, objectID, action, scope string) bool {
	return s.decide(objectID, action, scope, false, false)
}

// AllowedBelow reports whether principal objectID may perform action at
// scope or at some scope below it (a list of a subscription's resources is
// open to a principal with a role on one of its resource groups).
func (s *Service) AllowedBelow(_ context.Context, objectID, action, scope string) bool {
	return s.decide(objectID, action, scope, true, false)
}

// AllowedData is Allowed for a data action (a role's dataActions).
func (s *Service) AllowedData(_ context.Context, objectID, action, scope string) bool {
	return s.decide(objectID, action, scope, false, true)
}

func (s *Service) decide(objectID, action, scope string, below, data bool) bool {
	if objectID == "" {
		return false
	}
	sc := scopeKey(scope)
	act := strings.ToLower(action)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, e := range s.byPrincipal[strings.ToLower(objectID)] {
		if e.role == nil || !(within(sc, e.scope) || (below && within(e.scope, sc))) {
			continue
		}
		if e.role.permitsLower(act, data) {
			return true
		}
	}
	return false
}

// RoleDefinitions returns the role definitions, ordered by role name.
func (s *Service) RoleDefinitions() []*RoleDefinition { return s.ordered }

// RoleDefinition returns the role definition with GUID id.
func (s *Service) RoleDefinition(id string) (*RoleDefinition, bool) {
	d, ok := s.roles[strings.ToLower(id)]
	return d, ok
}

// RoleDefinitionNotFound is ARM's answer for an unknown role definition.
func RoleDefinitionNotFound(id string) error {
	return apierr.New(apierr.NotFound, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", id)
}

// AssignmentNotFound is ARM's 404 for an unknown role assignment.
func AssignmentNotFound(name string) error {
	return apierr.New(apierr.NotFound, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", name)
}

// InvalidAssignmentName is ARM's 400 for an assignment name that is not a GUID.
func InvalidAssignmentName(name string) error {
	return apierr.New(apierr.Invalid, "InvalidRoleAssignmentId", "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", name)
}

// Principal types a role assignment may name.
var principalTypes = []string{"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"}

// Create creates the assignment a (Name, Scope, RoleDefinitionID — an id or
// a GUID —, PrincipalID, PrincipalType, Description, Condition…) on behalf
// of caller (an object id). An assignment of the same name, principal, role
// and scope is updated (description, condition) and created is false. The
// errors are ARM's: InvalidRoleAssignmentId, InvalidPrincipalId,
// InvalidRoleDefinitionId, RoleDefinitionDoesNotExist, PrincipalNotFound,
// RoleAssignmentUpdateNotPermitted, RoleAssignmentExists.
func (s *Service) Create(ctx context.Context, in Assignment, caller string) (out *Assignment, created bool, err error) {
	if !IsGUID(in.Name) {
		return nil, false, InvalidAssignmentName(in.Name)
	}
	if in.PrincipalID == "" {
		return nil, false, apierr.New(apierr.Invalid, "InvalidRequestContent", "Required property 'principalId' not found in JSON. Path 'properties'.")
	}
	if !IsGUID(in.PrincipalID) {
		return nil, false, apierr.New(apierr.Invalid, "InvalidPrincipalId", "The Principal ID '%s' is not valid. Principal ID must be a GUID.", in.PrincipalID)
	}
	if in.RoleDefinitionID == "" {
		return nil, false, apierr.New(apierr.Invalid, "InvalidRequestContent", "Required property 'roleDefinitionId' not found in JSON. Path 'properties'.")
	}
	roleID, ok := ParseRoleDefinitionID(in.RoleDefinitionID)
	if !ok {
		if !IsGUID(in.RoleDefinitionID) {
			return nil, false, apierr.New(apierr.Invalid, "InvalidRoleDefinitionId", "The role definition ID '%s' is not valid.", in.RoleDefinitionID)
		}
		roleID = strings.ToLower(in.RoleDefinitionID)
	}
	if _, ok := s.roles[roleID]; !ok {
		return nil, false, apierr.New(apierr.Invalid, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", roleID)
	}
	if in.PrincipalType == "" {
		in.PrincipalType = "ServicePrincipal"
	} else {
		pt := ""
		for _, t := range principalTypes {
			if strings.EqualFold(t, in.PrincipalType) {
				pt = t
			}
		}
		if pt == "" {
			return nil, false, apierr.New(apierr.Invalid, "InvalidPrincipalType", "The principal type '%s' is not valid. It must be one of: %s.", in.PrincipalType, strings.Join(principalTypes, ", "))
		}
		in.PrincipalType = pt
	}
	if in.Condition != "" && in.ConditionVersion == "" {
		in.ConditionVersion = "2.0"
	}
	if in.Condition == "" && in.ConditionVersion != "" {
		return nil, false, apierr.New(apierr.Invalid, "InvalidRoleAssignmentRequest", "The role assignment request is not valid: condition version '%s' is set without a condition.", in.ConditionVersion)
	}
	if s.Principals != nil && !s.Principals.Exists(ctx, in.PrincipalID) {
		return nil, false, apierr.New(apierr.Invalid, "PrincipalNotFound",
			"Principal %s does not exist in the directory %s. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
			strings.ReplaceAll(in.PrincipalID, "-", ""), s.TenantID)
	}
	in.Name = strings.ToLower(in.Name)
	in.Scope = NormScope(in.Scope)
	in.RoleDefinitionID = roleID
	in.PrincipalID = strings.ToLower(in.PrincipalID)

	s.wmu.Lock()
	defer s.wmu.Unlock()
	now := s.Clock.Now().UTC()
	key := scopeKey(in.Scope)
	if old := s.lookup(in.Name); old != nil {
		o := old.a
		if old.scope != key || !strings.EqualFold(o.PrincipalID, in.PrincipalID) || !strings.EqualFold(o.RoleDefinitionID, roleID) {
			return nil, false, apierr.New(apierr.Invalid, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		}
		c := *o
		c.Description, c.Condition, c.ConditionVersion, c.DelegatedMIRID = in.Description, in.Condition, in.ConditionVersion, in.DelegatedMIRID
		c.PrincipalType = in.PrincipalType
		c.UpdatedOn, c.UpdatedBy = now, caller
		if err := s.put(ctx, &c); err != nil {
			return nil, false, err
		}
		return &c, false, nil
	}
	s.mu.RLock()
	for _, e := range s.byPrincipal[in.PrincipalID] {
		if e.scope == key && strings.EqualFold(e.a.RoleDefinitionID, roleID) {
			s.mu.RUnlock()
			return nil, false, apierr.New(apierr.Conflict, "RoleAssignmentExists", "The role assignment already exists.")
		}
	}
	s.mu.RUnlock()
	in.CreatedOn, in.UpdatedOn, in.CreatedBy, in.UpdatedBy = now, now, caller, caller
	a := in
	if err := s.put(ctx, &a); err != nil {
		return nil, false, err
	}
	return &a, true, nil
}

// Get returns the assignment name at scope (RoleAssignmentNotFound if there
// is none there).
func (s *Service) Get(_ context.Context, scope, name string) (*Assignment, error) {
	if !IsGUID(name) {
		return nil, InvalidAssignmentName(name)
	}
	e := s.lookup(name)
	if e == nil || e.scope != scopeKey(scope) {
		return nil, AssignmentNotFound(name)
	}
	c := *e.a
	return &c, nil
}

// Delete removes the assignment name at scope and returns it; nil (and no
// error) if there was none.
func (s *Service) Delete(ctx context.Context, scope, name string) (*Assignment, error) {
	if !IsGUID(name) {
		return nil, InvalidAssignmentName(name)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	e := s.lookup(name)
	if e == nil || e.scope != scopeKey(scope) {
		return nil, nil
	}
	if err := s.Store.Update(ctx, func(tx store.Tx) error {
		return tx.Delete(tableAssignments, strings.ToLower(name))
	}); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("rbac: deleting role assignment: %w", err)
	}
	s.mu.Lock()
	s.unindexLocked(name)
	s.mu.Unlock()
	c := *e.a
	return &c, nil
}

// Filter selects assignments for List.
type Filter struct {
	// Scope is the scope listed. Assignments at it and above it are
	// listed, and below it unless AtScope.
	Scope   string
	AtScope bool
	// PrincipalID, if set, keeps only that principal's assignments.
	PrincipalID string
	// RoleDefinitionID (a GUID), if set, keeps only that role's.
	RoleDefinitionID string
}

// List returns the assignments f selects, ordered by name.
func (s *Service) List(_ context.Context, f Filter) []*Assignment {
	sc := scopeKey(f.Scope)
	s.mu.RLock()
	var out []*Assignment
	for _, e := range s.byName {
		if f.PrincipalID != "" && !strings.EqualFold(e.a.PrincipalID, f.PrincipalID) {
			continue
		}
		if f.RoleDefinitionID != "" && !strings.EqualFold(e.a.RoleDefinitionID, f.RoleDefinitionID) {
			continue
		}
		if !within(sc, e.scope) && (f.AtScope || !within(e.scope, sc)) {
			continue
		}
		c := *e.a
		out = append(out, &c)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Of returns principal objectID's assignments (for tests and the CLI).
func (s *Service) Of(objectID string) []*Assignment {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Assignment
	for _, e := range s.byPrincipal[strings.ToLower(objectID)] {
		c := *e.a
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Within reports whether scope is anc or below it (whole segments,
// case-insensitively).
func Within(scope, anc string) bool { return within(scopeKey(scope), scopeKey(anc)) }
