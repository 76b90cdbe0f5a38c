// Package registries is the service behind Microsoft.ContainerRegistry/
// registries: it creates, updates and deletes registries as ARM resources,
// gives each a login server (a loopback port of its own, stable across
// restarts), keeps its admin credentials, and imports images into it. It
// does not serve registries itself: a Host (the server package) serves each
// registry's data plane (package registry) on its login server, and an
// Importer copies images; both are I/O boundaries.
package registries

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store"
)

// Store tables.
const (
	tableRegistries = "registries"       // sub/rg/name (lower-case) → Registry
	tableNames      = "registries/names" // name (lower-case) → sub/rg/name key: names are global
	tableMeta       = "registries/meta"  // "nextPort" → the next login-server port to try
)

// ErrAddressInUse is returned (wrapped) by Host.Serve when the login server's
// address is taken; the service then tries the next port.
var ErrAddressInUse = errors.New("address in use")

// Registry is a container registry resource.
type Registry struct {
	Subscription  string            `json:"subscription"`
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Location      string            `json:"location"`
	Tags          map[string]string `json:"tags,omitempty"`
	SKU           string            `json:"sku"`

	AdminUserEnabled     bool `json:"adminUserEnabled"`
	AnonymousPullEnabled bool `json:"anonymousPullEnabled"`

	LoginServer string `json:"loginServer"`
	// UID identifies this incarnation of the registry (a new one after a
	// delete and re-create of the same name); registry tokens carry it.
	UID       string    `json:"uid"`
	Passwords [2]string `json:"passwords"` // admin user: password, password2
	// PasswordGens identify each password's generation (not derived from
	// it): registry tokens obtained with a password carry it, so
	// regenerating that password revokes them.
	PasswordGens      [2]string `json:"passwordGens"`
	CreationDate      time.Time `json:"creationDate"`
	ProvisioningState string    `json:"provisioningState"`
}

// ID is the ARM resource id.
func (r *Registry) ID() string {
	return "/subscriptions/" + r.Subscription + "/resourceGroups/" + r.ResourceGroup +
		"/providers/Microsoft.ContainerRegistry/registries/" + r.Name
}

// PasswordNames are the names of the admin user's two passwords.
var PasswordNames = [2]string{"password", "password2"}

// Host serves registries' data planes.
type Host interface {
	// Serve starts serving r on r.LoginServer. It fails with an error
	// wrapping ErrAddressInUse if the address is taken (by another process
	// or another registry).
	Serve(ctx context.Context, r *Registry) error
	// Stop stops serving the registry; purge also deletes its content.
	Stop(ctx context.Context, name string, purge bool) error
	// Size is how many bytes of content the registry stores.
	Size(ctx context.Context, name string) (int64, error)
}

// Importer copies images into a registry.
type Importer interface {
	Import(ctx context.Context, into *Registry, req ImportRequest) error
}

// ImportRequest is an importImage request, with the source resolved to a
// registry host.
type ImportRequest struct {
	SourceRegistry string // host[:port]
	SourceImage    string // repo[:tag|@digest]
	Username       string // optional source credentials
	Password       string
	TargetTags     []string // repo:tag
	Untagged       []string // repositories to import into by digest only
	Force          bool     // overwrite existing target tags
}

// Service manages registries.
type Service struct {
	Store      store.Store
	Clock      clock.Clock
	Resources  *resources.Service
	Operations *operation.Tracker
	Host       Host
	Importer   Importer
	Log        *slog.Logger
	// Reserved names are taken by registries berth runs outside ARM (its
	// default registry).
	Reserved []string
	// LoginHost and FirstPort say where login servers go: LoginHost:port,
	// ports counting up from FirstPort and never reused (a token for a
	// deleted registry must not meet a new one at the same address).
	LoginHost string
	FirstPort int

	createMu sync.Mutex // one create at a time: names and ports are global
	ctx      context.Context
	cancel   context.CancelFunc
	mu       sync.RWMutex
	byName   map[string]*Registry // lower-case name → registry, for the data plane's hot path
	wg       sync.WaitGroup
	tokMu    sync.Mutex // one write of scope maps and tokens at a time (tokens.go)
	tok      tokenState // guarded by mu
}

var nameRule = regexp.MustCompile(`^[a-zA-Z0-9]{5,50}$`)

func key(sub, rg, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

// NotFound is ARM's error for a missing registry.
func NotFound(rg, name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.ContainerRegistry/registries/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, rg)
}

// Start serves every stored registry on its login server and registers the
// resource-group delete hook.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	s.byName = map[string]*Registry{}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.Unlock()
	s.Resources.OnDeleteGroup(s.deleteAllIn)
	regs, err := s.list(ctx, "")
	if err != nil {
		return err
	}
	for _, r := range regs {
		if err := s.Host.Serve(ctx, r); err != nil {
			s.logf("cannot serve registry", "registry", r.Name, "loginServer", r.LoginServer, "err", err)
		}
		s.cache(r)
		if err := s.reloadTokens(ctx, r); err != nil {
			return err
		}
	}
	// Imports a previous run left in progress cannot resume: settle them.
	ops, err := s.Operations.InProgress(ctx)
	if err != nil {
		return err
	}
	for _, op := range ops {
		if op.Kind == opKindImport {
			if err := s.Operations.Finish(ctx, op.ID, errInterrupted); err != nil {
				return err
			}
		}
	}
	return nil
}

const opKindImport = "registries/importImage"

var errInterrupted = apierr.New(apierr.Internal, "OperationInterrupted", "berth restarted while the import was running; please retry.")

// Close cancels imports in flight (their operations fail) and waits for
// them.
func (s *Service) Close() {
	s.mu.Lock()
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Service) logf(msg string, args ...any) {
	if s.Log != nil {
		s.Log.Warn(msg, args...)
	}
}

func (s *Service) cache(r *Registry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r == nil {
		return
	}
	c := *r
	s.byName[strings.ToLower(r.Name)] = &c
}

func (s *Service) uncache(name string) {
	s.mu.Lock()
	delete(s.byName, strings.ToLower(name))
	s.mu.Unlock()
}

// ByName returns a copy of the registry with that name (cheap: served from
// memory), or nil.
func (s *Service) ByName(name string) *Registry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.byName[strings.ToLower(name)]
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

// CheckAdmin reports whether username/password are the admin user of the
// registry name (admin user enabled, either password), and if so the
// generation of the password used.
func (s *Service) CheckAdmin(name, username, password string) (gen string, ok bool) {
	r := s.ByName(name)
	if r == nil || !r.AdminUserEnabled || !strings.EqualFold(username, r.Name) || password == "" {
		return "", false
	}
	for i := range r.Passwords {
		if constEq(password, r.Passwords[i]) {
			return r.PasswordGens[i], true
		}
	}
	return "", false
}

// AdminCurrent reports whether the admin user of registry name is enabled
// and gen is the generation of one of its current passwords.
func (s *Service) AdminCurrent(name, gen string) bool {
	r := s.ByName(name)
	return r != nil && r.AdminUserEnabled && gen != "" && (gen == r.PasswordGens[0] || gen == r.PasswordGens[1])
}

// AnonymousPull reports whether registry name allows anonymous pulls.
func (s *Service) AnonymousPull(name string) bool {
	r := s.ByName(name)
	return r != nil && r.AnonymousPullEnabled
}

// NameAvailable answers checkNameAvailability.
func (s *Service) NameAvailable(ctx context.Context, name string) (ok bool, reason, message string, err error) {
	if !nameRule.MatchString(name) {
		return false, "Invalid", "The specified resource name is invalid. Registry names may contain only alpha numeric characters and must be between 5 and 50 characters.", nil
	}
	for _, r := range s.Reserved {
		if strings.EqualFold(r, name) {
			return false, "AlreadyExists", "The registry " + name + " is already in use.", nil
		}
	}
	err = s.Store.View(ctx, func(tx store.Tx) error {
		_, gerr := tx.Get(tableNames, strings.ToLower(name))
		if gerr == nil {
			ok, reason, message = false, "AlreadyExists", "The registry "+name+" is already in use."
			return nil
		}
		if errors.Is(gerr, store.ErrNotFound) {
			ok = true
			return nil
		}
		return gerr
	})
	return ok, reason, message, err
}

// Update is what a PUT or PATCH may change.
type Update struct {
	Tags                 *map[string]string
	SKU                  *string
	AdminUserEnabled     *bool
	AnonymousPullEnabled *bool
}

var skus = []string{"Basic", "Standard", "Premium"}

// CreateOrUpdate creates registry r (PUT), or applies r's settings to the
// existing one. It reports whether it was created.
func (s *Service) CreateOrUpdate(ctx context.Context, r *Registry) (*Registry, bool, error) {
	if !nameRule.MatchString(r.Name) {
		return nil, false, apierr.New(apierr.Invalid, "InvalidResourceName",
			"Resource name '%s' is invalid. Registry names may contain only alpha numeric characters and must be between 5 and 50 characters.", r.Name)
	}
	sku, ok := canonical(r.SKU, skus)
	if !ok {
		return nil, false, apierr.New(apierr.Invalid, "InvalidSkuName", "The SKU name '%s' is invalid. Supported values are 'Basic', 'Standard' and 'Premium'.", r.SKU)
	}
	r.SKU = sku
	if strings.TrimSpace(r.Location) == "" {
		return nil, false, apierr.New(apierr.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	if err := s.requireGroup(ctx, r.Subscription, r.ResourceGroup); err != nil {
		return nil, false, err
	}
	if r.AnonymousPullEnabled && r.SKU == "Basic" {
		return nil, false, errAnonymousBasic
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	if old, err := s.Get(ctx, r.Subscription, r.ResourceGroup, r.Name); err == nil {
		if normLoc(old.Location) != normLoc(r.Location) {
			return nil, false, apierr.New(apierr.Invalid, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				old.Name, old.Location, old.ResourceGroup, r.Location)
		}
		tags := r.Tags
		u, err := s.Patch(ctx, r.Subscription, r.ResourceGroup, r.Name, Update{Tags: &tags, SKU: &r.SKU,
			AdminUserEnabled: &r.AdminUserEnabled, AnonymousPullEnabled: &r.AnonymousPullEnabled})
		return u, false, err
	} else if !apierr.Is(err, apierr.NotFound) {
		return nil, false, err
	}
	if ok, reason, msg, err := s.NameAvailable(ctx, r.Name); err != nil {
		return nil, false, err
	} else if !ok && reason == "AlreadyExists" {
		return nil, false, apierr.New(apierr.Conflict, "AlreadyInUse", "%s", msg)
	}
	r.Passwords = [2]string{newPassword(), newPassword()}
	r.PasswordGens = [2]string{newUID(), newUID()}
	r.UID = newUID()
	r.CreationDate = s.Clock.Now().UTC()
	r.ProvisioningState = "Succeeded"
	if err := s.serveNew(ctx, r); err != nil {
		return nil, false, err
	}
	k := key(r.Subscription, r.ResourceGroup, r.Name)
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		if err := resources.RequireActiveTx(tx, r.Subscription, r.ResourceGroup); err != nil {
			return err
		}
		if _, err := tx.Get(tableNames, strings.ToLower(r.Name)); err == nil {
			return apierr.New(apierr.Conflict, "AlreadyInUse", "The registry %s is already in use.", r.Name)
		}
		if err := tx.Put(tableNames, strings.ToLower(r.Name), []byte(k)); err != nil {
			return err
		}
		return put(tx, r)
	})
	if err != nil {
		_ = s.Host.Stop(context.WithoutCancel(ctx), r.Name, true)
		return nil, false, err
	}
	s.cache(r)
	return r, true, nil
}

func (s *Service) requireGroup(ctx context.Context, sub, rg string) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return resources.RequireActiveTx(tx, sub, rg) })
}

// serveNew gives r the next login server whose address is free and serves
// it there. Ports are taken from a persisted counter, never reused.
func (s *Service) serveNew(ctx context.Context, r *Registry) error {
	for tries := 0; tries < 200; tries++ {
		var port int
		err := s.Store.Update(ctx, func(tx store.Tx) error {
			port = s.FirstPort
			if b, err := tx.Get(tableMeta, "nextPort"); err == nil {
				if n, err := strconv.Atoi(string(b)); err == nil && n > port {
					port = n
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return tx.Put(tableMeta, "nextPort", []byte(strconv.Itoa(port+1)))
		})
		if err != nil {
			return err
		}
		if port > 65535 {
			break
		}
		r.LoginServer = net.JoinHostPort(s.LoginHost, strconv.Itoa(port))
		err = s.Host.Serve(ctx, r)
		if errors.Is(err, ErrAddressInUse) {
			continue
		}
		return err
	}
	return apierr.New(apierr.Unavailable, "NoLoginServerAvailable", "No free port is left for the registry's login server.")
}

var errAnonymousBasic = apierr.New(apierr.Invalid, "AnonymousPullNotSupported", "Anonymous pull is not supported for the 'Basic' SKU. Use the 'Standard' or 'Premium' SKU.")

// Patch updates a registry's settings.
func (s *Service) Patch(ctx context.Context, sub, rg, name string, u Update) (*Registry, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	var out *Registry
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		r, err := get(tx, sub, rg, name)
		if err != nil {
			return err
		}
		if u.Tags != nil {
			r.Tags = *u.Tags
		}
		if u.SKU != nil {
			sku, ok := canonical(*u.SKU, skus)
			if !ok {
				return apierr.New(apierr.Invalid, "InvalidSkuName", "The SKU name '%s' is invalid. Supported values are 'Basic', 'Standard' and 'Premium'.", *u.SKU)
			}
			r.SKU = sku
		}
		if u.AdminUserEnabled != nil {
			r.AdminUserEnabled = *u.AdminUserEnabled
		}
		if u.AnonymousPullEnabled != nil {
			r.AnonymousPullEnabled = *u.AnonymousPullEnabled
		}
		if r.AnonymousPullEnabled && r.SKU == "Basic" {
			return errAnonymousBasic
		}
		out = r
		return put(tx, r)
	})
	if err != nil {
		return nil, err
	}
	s.cache(out)
	return out, nil
}

// Get returns a registry or ResourceNotFound.
func (s *Service) Get(ctx context.Context, sub, rg, name string) (*Registry, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	var r *Registry
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		r, err = get(tx, sub, rg, name)
		return err
	})
	return r, err
}

// List returns the registries of a subscription, or of a resource group.
func (s *Service) List(ctx context.Context, sub, rg string) ([]*Registry, error) {
	if rg != "" {
		if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
			return nil, err
		}
		return s.list(ctx, strings.ToLower(sub)+"/"+strings.ToLower(rg)+"/")
	}
	return s.list(ctx, strings.ToLower(sub)+"/")
}

func (s *Service) list(ctx context.Context, prefix string) ([]*Registry, error) {
	var out []*Registry
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableRegistries, prefix, func(_ string, v []byte) bool {
			var r Registry
			if json.Unmarshal(v, &r) == nil {
				out = append(out, &r)
			}
			return true
		})
	})
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, err
}

// Delete deletes a registry and all its content. It returns the registry as
// it was.
func (s *Service) Delete(ctx context.Context, sub, rg, name string) (*Registry, error) {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	return r, s.remove(context.WithoutCancel(ctx), r)
}

func (s *Service) remove(ctx context.Context, r *Registry) error {
	s.uncache(r.Name)
	if err := s.Host.Stop(ctx, r.Name, true); err != nil {
		s.cache(r)
		return err
	}
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	s.dropTokens(r.Name)
	return s.Store.Update(ctx, func(tx store.Tx) error {
		if err := tx.Delete(tableNames, strings.ToLower(r.Name)); err != nil {
			return err
		}
		if err := deleteChildrenTx(tx, r); err != nil {
			return err
		}
		return tx.Delete(tableRegistries, key(r.Subscription, r.ResourceGroup, r.Name))
	})
}

func (s *Service) deleteAllIn(ctx context.Context, sub, rg string) error {
	regs, err := s.list(ctx, strings.ToLower(sub)+"/"+strings.ToLower(rg)+"/")
	if err != nil {
		return err
	}
	for _, r := range regs {
		if err := s.remove(context.WithoutCancel(ctx), r); err != nil {
			return err
		}
	}
	return nil
}

// Size is the registry's stored content in bytes.
func (s *Service) Size(ctx context.Context, r *Registry) (int64, error) {
	return s.Host.Size(ctx, r.Name)
}

// Credentials returns the admin user's credentials; the admin user must be
// enabled.
func (s *Service) Credentials(ctx context.Context, sub, rg, name string) (*Registry, error) {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	if !r.AdminUserEnabled {
		return nil, apierr.New(apierr.Invalid, "UnAuthorizedForCredentialOperations",
			"Cannot perform credential operations for %s as admin user is disabled. Kindly enable admin user as per docs: https://docs.microsoft.com/azure/container-registry/container-registry-authentication#admin-account", r.ID())
	}
	return r, nil
}

// Regenerate replaces one of the admin user's passwords.
func (s *Service) Regenerate(ctx context.Context, sub, rg, name, which string) (*Registry, error) {
	if _, err := s.Credentials(ctx, sub, rg, name); err != nil {
		return nil, err
	}
	i := -1
	for n, pn := range PasswordNames {
		if strings.EqualFold(pn, which) {
			i = n
		}
	}
	if i < 0 {
		return nil, apierr.New(apierr.Invalid, "InvalidPasswordName", "The password name '%s' is invalid. Supported values are 'password' and 'password2'.", which)
	}
	var out *Registry
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		r, err := get(tx, sub, rg, name)
		if err != nil {
			return err
		}
		r.Passwords[i], r.PasswordGens[i] = newPassword(), newUID()
		out = r
		return put(tx, r)
	})
	if err != nil {
		return nil, err
	}
	s.cache(out)
	return out, nil
}

// BeginImport validates an import and runs it in the background; the
// returned operation reports its outcome.
func (s *Service) BeginImport(ctx context.Context, sub, rg, name string, req ImportRequest) (*operation.Operation, error) {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	if req.SourceRegistry == "" || req.SourceImage == "" {
		return nil, apierr.New(apierr.Invalid, "InvalidParameter", "The source registry and image are required.")
	}
	op, err := s.Operations.Start(ctx, r.ID(), opKindImport)
	if err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ictx, cancel := context.WithTimeout(s.ctx, 30*time.Minute)
		defer cancel()
		err := s.Importer.Import(ictx, r, req)
		if err != nil {
			s.logf("import into registry failed", "registry", r.Name, "err", err)
		}
		if ferr := s.Operations.Finish(context.Background(), op.ID, err); ferr != nil {
			s.logf("finish import operation", "op", op.ID, "err", ferr)
		}
	}()
	return op, nil
}

// ResolveSource returns the login server of the berth registry with ARM id
// resourceID.
func (s *Service) ResolveSource(ctx context.Context, resourceID string) (string, error) {
	parts := strings.Split(strings.Trim(resourceID, "/"), "/")
	// subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}
	if len(parts) != 8 || !strings.EqualFold(parts[0], "subscriptions") || !strings.EqualFold(parts[2], "resourceGroups") ||
		!strings.EqualFold(parts[5], "Microsoft.ContainerRegistry") || !strings.EqualFold(parts[6], "registries") {
		return "", apierr.New(apierr.Invalid, "InvalidParameter", "The source resource id '%s' is not a container registry id.", resourceID)
	}
	r, err := s.Get(ctx, parts[1], parts[3], parts[7])
	if err != nil {
		return "", err
	}
	return r.LoginServer, nil
}

func get(tx store.Tx, sub, rg, name string) (*Registry, error) {
	r, err := store.GetJSON[Registry](tx, tableRegistries, key(sub, rg, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFound(rg, name)
	}
	return r, err
}

func put(tx store.Tx, r *Registry) error {
	return store.PutJSON(tx, tableRegistries, key(r.Subscription, r.ResourceGroup, r.Name), r)
}

func canonical(v string, allowed []string) (string, bool) {
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			return a, true
		}
	}
	return "", false
}

func normLoc(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

// newUID returns a random identifier.
func newUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// newPassword returns a random admin password (ACR's are 52 characters of
// letters, digits, '+' and '/').
func newPassword() string {
	b := make([]byte, 39)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func constEq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
