package registries

// Tokens and scope maps: repository-scoped credentials of a registry
// (registries/scopeMaps, registries/tokens, generateCredentials). A scope map
// lists actions "repositories/<repo>/<content|metadata>/<verb>"; a token
// names one scope map and has up to two passwords, each with an optional
// expiry. Passwords are stored as salted SHA-256 hashes only (they are 192
// random bits, so a slow hash buys nothing and would cost every Basic-auth
// request); their values leave berth once, in generateCredentials' answer.
//
// The data plane authenticates tokens from memory (CheckToken) and re-checks
// the credential behind every registry token it issued (TokenCurrent): a
// login's Revision names the token's generation (renewed when its status or
// scope map changes), the password's generation and the scope map's
// revision, so disabling or deleting the token, regenerating or removing the
// password, its expiry, or any change of the scope map revokes at once.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/store"
)

// Store tables of tokens and scope maps, keyed by the registry's key and the
// lower-case name: sub/rg/registry/name.
const (
	tableScopeMaps = "registries/scopemaps"
	tableTokens    = "registries/tokens"
)

// Scope map types, as ACR reports them.
const (
	ScopeMapSystemDefined = "SystemDefined"
	ScopeMapUserDefined   = "UserDefined"
)

// Token statuses.
const (
	TokenEnabled  = "enabled"
	TokenDisabled = "disabled"
)

// TokenPasswordNames are the names of a token's two passwords.
var TokenPasswordNames = [2]string{"password1", "password2"}

// Limits of scope maps and tokens (ACR's, for every tier).
const (
	MaxScopeMapRepositories = 500
	MaxScopeMaps            = 50000
	MaxTokens               = 50000
)

// ScopeMap is a set of repository permissions.
type ScopeMap struct {
	Name         string    `json:"name"`
	Description  string    `json:"description,omitempty"`
	Actions      []string  `json:"actions"`
	System       bool      `json:"-"` // one of the registry's built-in maps (never stored)
	CreationDate time.Time `json:"creationDate"`
	// Rev changes on every update of the map (and with a new map of the same
	// name): logins carry it.
	Rev string `json:"rev"`
}

// Type is SystemDefined or UserDefined.
func (m *ScopeMap) Type() string {
	if m.System {
		return ScopeMapSystemDefined
	}
	return ScopeMapUserDefined
}

// Token is a repository-scoped credential.
type Token struct {
	Name         string          `json:"name"`
	ScopeMap     string          `json:"scopeMap"` // the scope map's name, as it is spelled
	Status       string          `json:"status"`
	Passwords    []TokenPassword `json:"passwords,omitempty"` // by name
	CreationDate time.Time       `json:"creationDate"`
	// Gen changes when the token's status or scope map changes: logins
	// carry it.
	Gen string `json:"gen"`
}

// TokenPassword is one of a token's passwords, without its value.
type TokenPassword struct {
	Name         string     `json:"name"` // password1 or password2
	CreationTime time.Time  `json:"creationTime"`
	Expiry       *time.Time `json:"expiry,omitempty"`
	Salt         string     `json:"salt"`
	Hash         string     `json:"hash"` // hex SHA-256 of salt and value
	Gen          string     `json:"gen"`  // logins with this password carry it
}

// GeneratedPassword is a password generateCredentials made, with its value.
type GeneratedPassword struct {
	Name         string
	Value        string
	CreationTime time.Time
	Expiry       *time.Time
}

// RepoRule is one repository pattern of a scope map with the registry
// actions (pull, push, delete, metadata_read, metadata_write) it grants.
// Repository is a name, "*" or "prefix/*".
type RepoRule struct {
	Repository string
	Actions    []string
}

// TokenLogin is a token authenticated with one of its passwords.
type TokenLogin struct {
	Name     string
	Revision string // opaque, not secret: TokenCurrent's argument
	Rules    []RepoRule
}

// systemScopeMaps are present on every registry.
var systemScopeMaps = []ScopeMap{
	{Name: "_repositories_admin", Description: "Can perform all read, write and delete operations on the registry",
		Actions: []string{"repositories/*/metadata/read", "repositories/*/metadata/write", "repositories/*/content/read", "repositories/*/content/write", "repositories/*/content/delete"}},
	{Name: "_repositories_pull", Description: "Can pull any repository of the registry",
		Actions: []string{"repositories/*/content/read"}},
	{Name: "_repositories_pull_metadata_read", Description: "Can perform all read operations on the registry",
		Actions: []string{"repositories/*/content/read", "repositories/*/metadata/read"}},
	{Name: "_repositories_push", Description: "Can push to any repository of the registry",
		Actions: []string{"repositories/*/content/read", "repositories/*/content/write"}},
	{Name: "_repositories_push_metadata_write", Description: "Can perform all read and write operations on the registry",
		Actions: []string{"repositories/*/metadata/read", "repositories/*/metadata/write", "repositories/*/content/read", "repositories/*/content/write"}},
}

// systemScopeMap returns the built-in scope map name of registry r, or nil.
func systemScopeMap(r *Registry, name string) *ScopeMap {
	for _, m := range systemScopeMaps {
		if strings.EqualFold(m.Name, name) {
			c := m
			c.Actions = slices.Clone(m.Actions)
			c.System, c.CreationDate, c.Rev = true, r.CreationDate, "system:"+m.Name
			return &c
		}
	}
	return nil
}

// scopeActions maps a scope-map verb to the registry action it grants.
var scopeActions = map[string]string{
	"content/read":   "pull",
	"content/write":  "push",
	"content/delete": "delete",
	"metadata/read":  "metadata_read",
	"metadata/write": "metadata_write",
}

// repoName is the OCI distribution rule for repository names.
var repoName = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

// childName is ACR's rule for scope map and token names.
var childName = regexp.MustCompile(`^[a-zA-Z0-9_-]{5,50}$`)

// parseAction splits a scope-map action into its repository pattern and the
// registry action it grants.
func parseAction(a string) (repo, action string, err error) {
	rest, ok := strings.CutPrefix(a, "repositories/")
	i := strings.LastIndex(rest, "/")
	if ok && i > 0 {
		if j := strings.LastIndex(rest[:i], "/"); j > 0 {
			repo, verb := rest[:j], rest[j+1:]
			if act, ok := scopeActions[verb]; ok {
				if err := checkRepoPattern(repo); err != nil {
					return "", "", apierr.New(apierr.Invalid, "InvalidScopeMapAction", "The scope map action '%s' is invalid: %s", a, err.Error())
				}
				return repo, act, nil
			}
		}
	}
	return "", "", apierr.New(apierr.Invalid, "InvalidScopeMapAction",
		"The scope map action '%s' is invalid. Actions have the form 'repositories/<repository>/<action>' where <action> is one of content/read, content/write, content/delete, metadata/read and metadata/write.", a)
}

func checkRepoPattern(repo string) error {
	if repo == "*" {
		return nil
	}
	name := strings.TrimSuffix(repo, "/*")
	if strings.Contains(name, "*") {
		return errors.New("a wildcard may appear only once, as the whole repository name or as a final '/*'")
	}
	if !repoName.MatchString(name) {
		return errors.New("the repository name must be lower-case letters, digits and separators ('.', '_', '__', '-', '/')")
	}
	return nil
}

// checkActions validates a scope map's actions and returns them without
// duplicates, in order.
func checkActions(actions []string) ([]string, error) {
	if len(actions) == 0 {
		return nil, apierr.New(apierr.Invalid, "InvalidScopeMapActions", "The scope map must have at least one action.")
	}
	var out []string
	repos := map[string]bool{}
	for _, a := range actions {
		repo, _, err := parseAction(a)
		if err != nil {
			return nil, err
		}
		repos[repo] = true
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(repos) > MaxScopeMapRepositories {
		return nil, apierr.New(apierr.Invalid, "ScopeMapRepositoriesLimitExceeded",
			"The scope map has %d repositories; at most %d are allowed.", len(repos), MaxScopeMapRepositories)
	}
	return out, nil
}

// Rules returns the map's actions grouped by repository pattern.
func (m *ScopeMap) Rules() []RepoRule {
	var out []RepoRule
	idx := map[string]int{}
	for _, a := range m.Actions {
		repo, act, err := parseAction(a)
		if err != nil {
			continue // stored maps were validated
		}
		i, ok := idx[repo]
		if !ok {
			i = len(out)
			idx[repo] = i
			out = append(out, RepoRule{Repository: repo})
		}
		if !slices.Contains(out[i].Actions, act) {
			out[i].Actions = append(out[i].Actions, act)
		}
	}
	return out
}

// ScopeMapID is the ARM id of scope map name of registry r.
func ScopeMapID(r *Registry, name string) string { return r.ID() + "/scopeMaps/" + name }

// TokenID is the ARM id of token name of registry r.
func TokenID(r *Registry, name string) string { return r.ID() + "/tokens/" + name }

// childOf returns the name in id if id is a child of type kind
// ("scopeMaps", "tokens") of registry r.
func childOf(r *Registry, id, kind string) (string, bool) {
	prefix := strings.ToLower(r.ID() + "/" + kind + "/")
	id = strings.TrimSuffix(id, "/")
	if !strings.HasPrefix(strings.ToLower(id), prefix) {
		return "", false
	}
	name := id[len(prefix):]
	return name, name != "" && !strings.Contains(name, "/")
}

func childKey(r *Registry, name string) string {
	return key(r.Subscription, r.ResourceGroup, r.Name) + "/" + strings.ToLower(name)
}

func childNotFound(r *Registry, kind, name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.ContainerRegistry/registries/%s/%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
		r.Name, kind, name, r.ResourceGroup)
}

func checkChildName(kind, name string) error {
	if !childName.MatchString(name) {
		return apierr.New(apierr.Invalid, "InvalidResourceName",
			"Resource name '%s' is invalid. %s names may contain only alpha numeric characters, '-' and '_', and must be between 5 and 50 characters.", name, kind)
	}
	return nil
}

// tokenSet is the in-memory copy of one registry's user scope maps and
// tokens, for the data plane.
type tokenSet struct {
	reg       *Registry
	scopeMaps map[string]*ScopeMap // lower-case name → map
	tokens    map[string]*Token    // lower-case name → token
}

// tokenState is the Service's token cache.
type tokenState struct {
	sets map[string]*tokenSet // lower-case registry name → set; guarded by Service.mu
}

// reloadTokens refreshes the cache of registry r from the store. Callers
// hold tokMu, so reloads happen in the order of the writes.
func (s *Service) reloadTokens(ctx context.Context, r *Registry) error {
	set := &tokenSet{reg: r, scopeMaps: map[string]*ScopeMap{}, tokens: map[string]*Token{}}
	prefix := key(r.Subscription, r.ResourceGroup, r.Name) + "/"
	err := s.Store.View(ctx, func(tx store.Tx) error {
		if err := scanJSON(tx, tableScopeMaps, prefix, func(m *ScopeMap) { set.scopeMaps[strings.ToLower(m.Name)] = m }); err != nil {
			return err
		}
		return scanJSON(tx, tableTokens, prefix, func(t *Token) { set.tokens[strings.ToLower(t.Name)] = t })
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.tok.sets == nil {
		s.tok.sets = map[string]*tokenSet{}
	}
	s.tok.sets[strings.ToLower(r.Name)] = set
	s.mu.Unlock()
	return nil
}

func (s *Service) dropTokens(name string) {
	s.mu.Lock()
	delete(s.tok.sets, strings.ToLower(name))
	s.mu.Unlock()
}

func scanJSON[T any](tx store.Tx, table, prefix string, f func(*T)) error {
	var derr error
	err := tx.Scan(table, prefix, func(_ string, v []byte) bool {
		var x T
		if derr = json.Unmarshal(v, &x); derr != nil {
			return false
		}
		f(&x)
		return true
	})
	if err != nil {
		return err
	}
	return derr
}

// deleteChildrenTx deletes the scope maps and tokens of registry r.
func deleteChildrenTx(tx store.Tx, r *Registry) error {
	prefix := key(r.Subscription, r.ResourceGroup, r.Name) + "/"
	for _, table := range []string{tableScopeMaps, tableTokens} {
		var keys []string
		if err := tx.Scan(table, prefix, func(k string, _ []byte) bool { keys = append(keys, k); return true }); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(table, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// ListScopeMaps returns the registry's scope maps: the system ones and the
// user-defined ones, by name.
func (s *Service) ListScopeMaps(ctx context.Context, sub, rg, name string) ([]*ScopeMap, error) {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	var out []*ScopeMap
	for _, m := range systemScopeMaps {
		out = append(out, systemScopeMap(r, m.Name))
	}
	err = s.Store.View(ctx, func(tx store.Tx) error {
		return scanJSON(tx, tableScopeMaps, key(sub, rg, name)+"/", func(m *ScopeMap) { out = append(out, m) })
	})
	sort.SliceStable(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, err
}

// GetScopeMap returns one scope map.
func (s *Service) GetScopeMap(ctx context.Context, sub, rg, name, mapName string) (*Registry, *ScopeMap, error) {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, nil, err
	}
	var m *ScopeMap
	err = s.Store.View(ctx, func(tx store.Tx) error {
		m, err = getScopeMap(tx, r, mapName)
		return err
	})
	return r, m, err
}

func getScopeMap(tx store.Tx, r *Registry, name string) (*ScopeMap, error) {
	if m := systemScopeMap(r, name); m != nil {
		return m, nil
	}
	m, err := store.GetJSON[ScopeMap](tx, tableScopeMaps, childKey(r, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, childNotFound(r, "scopeMaps", name)
	}
	return m, err
}

func errSystemScopeMap(name string) error {
	return apierr.New(apierr.Invalid, "SystemDefinedScopeMapReadOnly",
		"The scope map '%s' is system defined and cannot be modified or deleted.", name)
}

// ScopeMapUpdate is what a PUT or PATCH of a scope map sets.
type ScopeMapUpdate struct {
	Description *string
	Actions     *[]string
}

// PutScopeMap creates scope map mapName, or replaces its description and
// actions. It reports whether it was created.
func (s *Service) PutScopeMap(ctx context.Context, sub, rg, name, mapName string, u ScopeMapUpdate) (*Registry, *ScopeMap, bool, error) {
	if u.Actions == nil {
		return nil, nil, false, apierr.New(apierr.Invalid, "InvalidRequestContent",
			"The request content was invalid and could not be deserialized: 'Required property 'actions' not found in JSON. Path 'properties'.'")
	}
	desc := ""
	if u.Description != nil {
		desc = *u.Description
	}
	u.Description = &desc
	return s.writeScopeMap(ctx, sub, rg, name, mapName, u, true)
}

// PatchScopeMap updates a scope map's description or actions.
func (s *Service) PatchScopeMap(ctx context.Context, sub, rg, name, mapName string, u ScopeMapUpdate) (*Registry, *ScopeMap, error) {
	r, m, _, err := s.writeScopeMap(ctx, sub, rg, name, mapName, u, false)
	return r, m, err
}

func (s *Service) writeScopeMap(ctx context.Context, sub, rg, name, mapName string, u ScopeMapUpdate, create bool) (*Registry, *ScopeMap, bool, error) {
	if err := checkChildName("Scope map", mapName); err != nil {
		return nil, nil, false, err
	}
	var actions []string
	if u.Actions != nil {
		var err error
		if actions, err = checkActions(*u.Actions); err != nil {
			return nil, nil, false, err
		}
	}
	if u.Description != nil && len(*u.Description) > 256 {
		return nil, nil, false, apierr.New(apierr.Invalid, "InvalidScopeMapDescription", "The scope map description may have at most 256 characters.")
	}
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, nil, false, err
	}
	if systemScopeMap(r, mapName) != nil {
		return nil, nil, false, errSystemScopeMap(mapName)
	}
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	var (
		out     *ScopeMap
		created bool
	)
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := get(tx, sub, rg, name); err != nil {
			return err
		}
		m, err := getScopeMap(tx, r, mapName)
		switch {
		case apierr.Is(err, apierr.NotFound) && create:
			n, err := countPrefix(tx, tableScopeMaps, key(sub, rg, name)+"/")
			if err != nil {
				return err
			}
			if n >= MaxScopeMaps {
				return apierr.New(apierr.Conflict, "QuotaExceeded", "The registry has reached its limit of %d scope maps.", MaxScopeMaps)
			}
			m, created = &ScopeMap{Name: mapName, CreationDate: s.Clock.Now().UTC()}, true
		case err != nil:
			return err
		}
		if u.Description != nil {
			m.Description = *u.Description
		}
		if u.Actions != nil {
			m.Actions = actions
		}
		m.Rev = newUID()
		out = m
		return store.PutJSON(tx, tableScopeMaps, childKey(r, mapName), m)
	})
	if err != nil {
		return nil, nil, false, err
	}
	return r, out, created, s.reloadTokens(ctx, r)
}

// DeleteScopeMap deletes a user-defined scope map no token uses.
func (s *Service) DeleteScopeMap(ctx context.Context, sub, rg, name, mapName string) error {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return err
	}
	if systemScopeMap(r, mapName) != nil {
		return errSystemScopeMap(mapName)
	}
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := getScopeMap(tx, r, mapName); err != nil {
			return err
		}
		var users []string
		if err := scanJSON(tx, tableTokens, key(sub, rg, name)+"/", func(t *Token) {
			if strings.EqualFold(t.ScopeMap, mapName) {
				users = append(users, t.Name)
			}
		}); err != nil {
			return err
		}
		if len(users) > 0 {
			return apierr.New(apierr.Conflict, "ScopeMapInUse",
				"The scope map '%s' cannot be deleted because it is used by the tokens: %s.", mapName, strings.Join(users, ", "))
		}
		return tx.Delete(tableScopeMaps, childKey(r, mapName))
	})
	if err != nil {
		return err
	}
	return s.reloadTokens(ctx, r)
}

// CountChildren returns how many user-defined scope maps and tokens the
// registry has.
func (s *Service) CountChildren(ctx context.Context, r *Registry) (scopeMaps, tokens int, err error) {
	prefix := key(r.Subscription, r.ResourceGroup, r.Name) + "/"
	err = s.Store.View(ctx, func(tx store.Tx) error {
		if scopeMaps, err = countPrefix(tx, tableScopeMaps, prefix); err != nil {
			return err
		}
		tokens, err = countPrefix(tx, tableTokens, prefix)
		return err
	})
	return scopeMaps, tokens, err
}

func countPrefix(tx store.Tx, table, prefix string) (int, error) {
	n := 0
	err := tx.Scan(table, prefix, func(string, []byte) bool { n++; return true })
	return n, err
}

// ListTokens returns the registry's tokens by name.
func (s *Service) ListTokens(ctx context.Context, sub, rg, name string) (*Registry, []*Token, error) {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, nil, err
	}
	var out []*Token
	err = s.Store.View(ctx, func(tx store.Tx) error {
		return scanJSON(tx, tableTokens, key(sub, rg, name)+"/", func(t *Token) { out = append(out, t) })
	})
	sort.SliceStable(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return r, out, err
}

// GetToken returns one token.
func (s *Service) GetToken(ctx context.Context, sub, rg, name, tokenName string) (*Registry, *Token, error) {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, nil, err
	}
	var t *Token
	err = s.Store.View(ctx, func(tx store.Tx) error {
		t, err = getToken(tx, r, tokenName)
		return err
	})
	return r, t, err
}

func getToken(tx store.Tx, r *Registry, name string) (*Token, error) {
	t, err := store.GetJSON[Token](tx, tableTokens, childKey(r, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, childNotFound(r, "tokens", name)
	}
	return t, err
}

// TokenUpdate is what a PUT or PATCH of a token sets. KeepPasswords, when
// set, names the passwords to keep (credentials.passwords of the body, by
// name): the others are removed.
type TokenUpdate struct {
	ScopeMapID    *string
	Status        *string
	KeepPasswords *[]string
}

// PutToken creates token tokenName or updates it. It reports whether it was
// created.
func (s *Service) PutToken(ctx context.Context, sub, rg, name, tokenName string, u TokenUpdate) (*Registry, *Token, bool, error) {
	if u.ScopeMapID == nil || *u.ScopeMapID == "" {
		return nil, nil, false, apierr.New(apierr.Invalid, "InvalidScopeMapId", "The token's scopeMapId is required.")
	}
	return s.writeToken(ctx, sub, rg, name, tokenName, u, true)
}

// PatchToken updates a token.
func (s *Service) PatchToken(ctx context.Context, sub, rg, name, tokenName string, u TokenUpdate) (*Registry, *Token, error) {
	r, t, _, err := s.writeToken(ctx, sub, rg, name, tokenName, u, false)
	return r, t, err
}

func (s *Service) writeToken(ctx context.Context, sub, rg, name, tokenName string, u TokenUpdate, create bool) (*Registry, *Token, bool, error) {
	if err := checkChildName("Token", tokenName); err != nil {
		return nil, nil, false, err
	}
	var status string
	if u.Status != nil {
		switch strings.ToLower(*u.Status) {
		case TokenEnabled, TokenDisabled:
			status = strings.ToLower(*u.Status)
		default:
			return nil, nil, false, apierr.New(apierr.Invalid, "InvalidTokenStatus", "The token status '%s' is invalid. Supported values are 'enabled' and 'disabled'.", *u.Status)
		}
	}
	if u.KeepPasswords != nil {
		for _, n := range *u.KeepPasswords {
			if !slices.Contains(TokenPasswordNames[:], strings.ToLower(n)) {
				return nil, nil, false, errPasswordName(n)
			}
		}
	}
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, nil, false, err
	}
	var mapName string
	if u.ScopeMapID != nil {
		n, ok := childOf(r, *u.ScopeMapID, "scopeMaps")
		if !ok {
			return nil, nil, false, apierr.New(apierr.Invalid, "InvalidScopeMapId",
				"The scope map id '%s' is not a scope map of registry '%s'.", *u.ScopeMapID, r.Name)
		}
		mapName = n
	}
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	var (
		out     *Token
		created bool
	)
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := get(tx, sub, rg, name); err != nil {
			return err
		}
		t, err := getToken(tx, r, tokenName)
		switch {
		case apierr.Is(err, apierr.NotFound) && create:
			n, err := countPrefix(tx, tableTokens, key(sub, rg, name)+"/")
			if err != nil {
				return err
			}
			if n >= MaxTokens {
				return apierr.New(apierr.Conflict, "QuotaExceeded", "The registry has reached its limit of %d tokens.", MaxTokens)
			}
			t, created = &Token{Name: tokenName, Status: TokenEnabled, CreationDate: s.Clock.Now().UTC()}, true
		case err != nil:
			return err
		}
		changed := created
		if mapName != "" {
			m, err := getScopeMap(tx, r, mapName)
			if apierr.Is(err, apierr.NotFound) {
				return apierr.New(apierr.Invalid, "ScopeMapNotFound", "The scope map '%s' does not exist in registry '%s'.", mapName, r.Name)
			}
			if err != nil {
				return err
			}
			changed = changed || !strings.EqualFold(t.ScopeMap, m.Name)
			t.ScopeMap = m.Name
		}
		if status != "" {
			changed = changed || t.Status != status
			t.Status = status
		}
		if u.KeepPasswords != nil && !created {
			kept := t.Passwords[:0:0]
			for _, p := range t.Passwords {
				if slices.ContainsFunc(*u.KeepPasswords, func(n string) bool { return strings.EqualFold(n, p.Name) }) {
					kept = append(kept, p)
				}
			}
			t.Passwords = kept
		}
		if changed {
			t.Gen = newUID()
		}
		out = t
		return store.PutJSON(tx, tableTokens, childKey(r, tokenName), t)
	})
	if err != nil {
		return nil, nil, false, err
	}
	return r, out, created, s.reloadTokens(ctx, r)
}

// DeleteToken deletes a token: its passwords and every registry token issued
// on them stop working at once.
func (s *Service) DeleteToken(ctx context.Context, sub, rg, name, tokenName string) error {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return err
	}
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := getToken(tx, r, tokenName); err != nil {
			return err
		}
		return tx.Delete(tableTokens, childKey(r, tokenName))
	})
	if err != nil {
		return err
	}
	return s.reloadTokens(ctx, r)
}

func errPasswordName(n string) error {
	return apierr.New(apierr.Invalid, "InvalidPasswordName", "The password name '%s' is invalid. Supported values are 'password1' and 'password2'.", n)
}

// GenerateCredentials makes new values for the passwords of the token with
// ARM id tokenID (which, "" for both), with an optional expiry. The values
// are returned here only.
func (s *Service) GenerateCredentials(ctx context.Context, sub, rg, name, tokenID, which string, expiry *time.Time) (*Token, []GeneratedPassword, error) {
	names := TokenPasswordNames[:]
	if which != "" {
		n := strings.ToLower(which)
		if !slices.Contains(names, n) {
			return nil, nil, errPasswordName(which)
		}
		names = []string{n}
	}
	now := s.Clock.Now().UTC()
	if expiry != nil && !expiry.After(now) {
		return nil, nil, apierr.New(apierr.Invalid, "InvalidExpiry", "The expiry '%s' must be in the future.", expiry.UTC().Format(time.RFC3339))
	}
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, nil, err
	}
	tokenName, ok := childOf(r, tokenID, "tokens")
	if !ok {
		return nil, nil, apierr.New(apierr.Invalid, "InvalidTokenId", "The token id '%s' is not a token of registry '%s'.", tokenID, r.Name)
	}
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	var (
		out *Token
		gen []GeneratedPassword
	)
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		t, err := getToken(tx, r, tokenName)
		if err != nil {
			return err
		}
		gen = gen[:0]
		for _, n := range names {
			value := newTokenPassword()
			salt := newUID()
			p := TokenPassword{Name: n, CreationTime: now, Salt: salt, Hash: hashPassword(salt, value), Gen: newUID()}
			if expiry != nil {
				e := expiry.UTC()
				p.Expiry = &e
			}
			t.Passwords = slices.DeleteFunc(t.Passwords, func(q TokenPassword) bool { return q.Name == n })
			t.Passwords = append(t.Passwords, p)
			gen = append(gen, GeneratedPassword{Name: n, Value: value, CreationTime: now, Expiry: p.Expiry})
		}
		sort.Slice(t.Passwords, func(i, j int) bool { return t.Passwords[i].Name < t.Passwords[j].Name })
		out = t
		return store.PutJSON(tx, tableTokens, childKey(r, tokenName), t)
	})
	if err != nil {
		return nil, nil, err
	}
	return out, gen, s.reloadTokens(ctx, r)
}

// CheckToken authenticates a token of registry name by its name and one of
// its passwords (from memory; cheap). The token must be enabled and the
// password not expired.
func (s *Service) CheckToken(name, username, password string) (TokenLogin, bool) {
	if password == "" {
		return TokenLogin{}, false
	}
	now := s.Clock.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	set := s.tok.sets[strings.ToLower(name)]
	if set == nil {
		return TokenLogin{}, false
	}
	t := set.tokens[strings.ToLower(username)]
	if t == nil || t.Status != TokenEnabled {
		return TokenLogin{}, false
	}
	m := set.scopeMap(t.ScopeMap)
	if m == nil {
		return TokenLogin{}, false
	}
	for _, p := range t.Passwords {
		ok := subtle.ConstantTimeCompare([]byte(hashPassword(p.Salt, password)), []byte(p.Hash)) == 1
		if ok && (p.Expiry == nil || now.Before(*p.Expiry)) {
			return TokenLogin{Name: t.Name, Revision: revision(t, &p, m), Rules: m.Rules()}, true
		}
	}
	return TokenLogin{}, false
}

// TokenCurrent reports whether a login of token tokenName of registry name
// with revision still holds: the token exists and is enabled, the password
// is unchanged and unexpired, and the token's scope map is unchanged.
func (s *Service) TokenCurrent(name, tokenName, rev string) bool {
	now := s.Clock.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	set := s.tok.sets[strings.ToLower(name)]
	if set == nil {
		return false
	}
	t := set.tokens[strings.ToLower(tokenName)]
	if t == nil || t.Status != TokenEnabled {
		return false
	}
	m := set.scopeMap(t.ScopeMap)
	if m == nil {
		return false
	}
	for _, p := range t.Passwords {
		if (p.Expiry == nil || now.Before(*p.Expiry)) && revision(t, &p, m) == rev {
			return true
		}
	}
	return false
}

func (set *tokenSet) scopeMap(name string) *ScopeMap {
	if m := systemScopeMap(set.reg, name); m != nil {
		return m
	}
	return set.scopeMaps[strings.ToLower(name)]
}

func revision(t *Token, p *TokenPassword, m *ScopeMap) string {
	return t.Gen + "." + p.Gen + "." + m.Rev
}

func hashPassword(salt, value string) string {
	h := sha256.Sum256([]byte(salt + "\x00" + value))
	return hex.EncodeToString(h[:])
}

// newTokenPassword returns a random token password: 32 characters of
// base64 (192 bits), as long as ACR's.
func newTokenPassword() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
