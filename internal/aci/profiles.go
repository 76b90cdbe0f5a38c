package aci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store"
)

// Container group profiles (Microsoft.ContainerInstance/containerGroupProfiles,
// 2024-05-01-preview on): a named, revisioned container group spec that
// groups are created from (properties.containerGroupProfile {id, revision}).
//
// Revisions: the first PUT makes revision 1; every later PUT whose spec
// (properties, location or zones) differs from the latest revision makes
// the next one; a PUT that changes nothing, or only the tags, keeps the
// revision (so GET output PUT back changes nothing). Revisions are
// read-only snapshots, listable and readable by number.
//
// A group created from a profile gets the profile revision's spec merged
// under its own (mergeProfile: the group's own properties win, the profile
// fills what the group leaves out) and stores the merged result: it keeps
// running as it is when the profile changes or is deleted. Deleting a
// profile that groups reference is allowed (berth's reading: a profile is
// a template, nothing runs from it); a later PUT of such a group names a
// dangling profile and is refused.

// Store tables of profiles.
const (
	tableProfiles         = "aci/profiles"         // sub/rg/name (lower-case) → Profile (latest revision)
	tableProfileRevisions = "aci/profilerevisions" // sub/rg/name/%010d → Profile (one revision)
)

// Profile is a container group profile: a group spec without bookkeeping,
// plus the profile's identity and revision. Spec uses the group's spec
// fields only (its Subscription, ResourceGroup, Name, Location, Tags and
// Zones are empty: the profile's own fields hold them; SKU and
// RestartPolicy are empty when not given). Spec.Opaque holds what only
// profiles carry (securityContext, shutdownGracePeriod, timeToLive,
// useKrypton) as given. Secrets are stored (groups made from the profile
// need them) and never rendered.
type Profile struct {
	Subscription  string            `json:"subscription"`
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Location      string            `json:"location,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	Zones         []string          `json:"zones,omitempty"`
	Spec          *Group            `json:"spec"`
	// Revision is this snapshot's revision number (the latest one for the
	// profile record).
	Revision  int       `json:"revision"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ID is the ARM resource id.
func (p *Profile) ID() string {
	return "/subscriptions/" + p.Subscription + "/resourceGroups/" + p.ResourceGroup +
		"/providers/Microsoft.ContainerInstance/containerGroupProfiles/" + p.Name
}

// ProfileSortKey orders profiles in lists (resource group, then name).
func ProfileSortKey(p *Profile) string {
	return strings.ToLower(p.ResourceGroup) + "/" + strings.ToLower(p.Name)
}

// profileName is the spec's name pattern (S25, every version's real
// service: Microsoft's own samples name profiles 'cgp_1').
var profileName = regexp.MustCompile(`^[a-zA-Z0-9]$|^[a-zA-Z0-9][-_a-zA-Z0-9]{0,61}[a-zA-Z0-9]$`)

// ValidateProfileName checks the containerGroupProfileName pattern.
// (Code and message unverified, in ACI's style.)
func ValidateProfileName(name string) error {
	if !profileName.MatchString(name) {
		return invalid("InvalidContainerGroupProfileName",
			"The container group profile name '%s' is invalid. A container group profile name must be 1 to 63 characters long, contain only letters, numbers, hyphens and underscores, and must start and end with a letter or number.", name)
	}
	return nil
}

// ProfileNotFound is ARM's error for a missing profile.
func ProfileNotFound(rg, name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.ContainerInstance/containerGroupProfiles/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, rg)
}

// ProfileRevisionNotFound is ARM's error for a missing revision.
func ProfileRevisionNotFound(rg, name, revision string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.ContainerInstance/containerGroupProfiles/%s/revisions/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, revision, rg)
}

func revisionKey(k string, rev int) string { return fmt.Sprintf("%s/%010d", k, rev) }

func getProfile(tx store.Tx, sub, rg, name string) (*Profile, error) {
	p, err := store.GetJSON[Profile](tx, tableProfiles, key(sub, rg, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ProfileNotFound(rg, name)
	}
	return p, err
}

// validateProfile checks a profile's name and spec with the group rules
// that apply to a spec (everything but the group's own name, location and
// provisioning timeout).
func validateProfile(p *Profile) error {
	if err := ValidateProfileName(p.Name); err != nil {
		return err
	}
	if p.Spec == nil {
		return invalid("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON. Path ''.'")
	}
	g := p.Spec.clone()
	g.Name, g.Location = p.Name, p.Location
	if strings.EqualFold(g.OSType, "Windows") {
		return invalid("OsTypeNotSupported",
			"The requested OS type 'Windows' is not supported in location '%s'. This host runs Linux containers only.", p.Location)
	}
	for _, check := range []func(*Group) error{
		validateVolumes, validateContainers, validateResources, validateNetwork, validatePriority, validateExtras,
	} {
		if err := check(g); err != nil {
			return err
		}
	}
	return nil
}

// sameProfileSpec reports whether b would not make a new revision of a:
// the same spec (secrets included), location and zones.
func sameProfileSpec(a, b *Profile) bool {
	ja, err1 := json.Marshal(a.Spec)
	jb, err2 := json.Marshal(b.Spec)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb) &&
		normLoc(a.Location) == normLoc(b.Location) && slices.Equal(a.Zones, b.Zones)
}

// CreateOrUpdateProfile validates and stores a profile (synchronously, as
// ACI answers this PUT). It returns the stored profile and whether it was
// created. A changed spec makes a new revision.
func (s *Service) CreateOrUpdateProfile(ctx context.Context, p *Profile) (*Profile, bool, error) {
	if err := validateProfile(p); err != nil {
		return nil, false, err
	}
	if _, err := s.Resources.Get(ctx, p.Subscription, p.ResourceGroup); err != nil {
		return nil, false, err
	}
	p = p.clone()
	k := key(p.Subscription, p.ResourceGroup, p.Name)
	var created bool
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		if err := resources.RequireActiveTx(tx, p.Subscription, p.ResourceGroup); err != nil {
			return err
		}
		now := s.Clock.Now().UTC()
		old, err := getProfile(tx, p.Subscription, p.ResourceGroup, p.Name)
		switch {
		case apierr.Is(err, apierr.NotFound):
			created = true
			p.CreatedAt, p.UpdatedAt, p.Revision = now, now, 1
		case err != nil:
			return err
		default:
			if old.Location != "" && p.Location != "" && normLoc(old.Location) != normLoc(p.Location) {
				return apierr.New(apierr.Invalid, "InvalidResourceLocation",
					"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
					old.Name, old.Location, old.ResourceGroup, p.Location)
			}
			p.Name, p.CreatedAt, p.UpdatedAt = old.Name, old.CreatedAt, now
			if p.Location == "" || normLoc(p.Location) == normLoc(old.Location) {
				p.Location = old.Location
			}
			if sameProfileSpec(old, p) {
				// Tags alone: same revision, its snapshot's tags follow.
				p.Revision = old.Revision
			} else {
				p.Revision = old.Revision + 1
			}
		}
		if err := store.PutJSON(tx, tableProfileRevisions, revisionKey(k, p.Revision), p); err != nil {
			return err
		}
		return store.PutJSON(tx, tableProfiles, k, p)
	})
	if err != nil {
		return nil, false, err
	}
	return p, created, nil
}

// GetProfile returns a profile (its latest revision).
func (s *Service) GetProfile(ctx context.Context, sub, rg, name string) (*Profile, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	var p *Profile
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = getProfile(tx, sub, rg, name)
		return err
	})
	return p, err
}

// ListProfiles returns the profiles of a subscription, or of one resource
// group when rg is not empty, ordered by ProfileSortKey.
func (s *Service) ListProfiles(ctx context.Context, sub, rg string) ([]*Profile, error) {
	prefix := strings.ToLower(sub) + "/"
	if rg != "" {
		if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
			return nil, err
		}
		prefix += strings.ToLower(rg) + "/"
	}
	var out []*Profile
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableProfiles, prefix, func(_ string, v []byte) bool {
			var p Profile
			if json.Unmarshal(v, &p) == nil {
				out = append(out, &p)
			}
			return true
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return ProfileSortKey(out[i]) < ProfileSortKey(out[j]) })
	return out, err
}

// ProfileRevisions returns every revision of a profile, oldest first.
func (s *Service) ProfileRevisions(ctx context.Context, sub, rg, name string) ([]*Profile, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	var out []*Profile
	err := s.Store.View(ctx, func(tx store.Tx) error {
		if _, err := getProfile(tx, sub, rg, name); err != nil {
			return err
		}
		return tx.Scan(tableProfileRevisions, key(sub, rg, name)+"/", func(_ string, v []byte) bool {
			var p Profile
			if json.Unmarshal(v, &p) == nil {
				out = append(out, &p)
			}
			return true
		})
	})
	return out, err
}

// ProfileRevision returns one revision of a profile; revision is the path
// segment as given (a revision that is not a number does not exist).
func (s *Service) ProfileRevision(ctx context.Context, sub, rg, name, revision string) (*Profile, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	var p *Profile
	err := s.Store.View(ctx, func(tx store.Tx) error {
		cur, err := getProfile(tx, sub, rg, name)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(revision)
		if err != nil || n < 1 {
			return ProfileRevisionNotFound(rg, cur.Name, revision)
		}
		p, err = store.GetJSON[Profile](tx, tableProfileRevisions, revisionKey(key(sub, rg, name), n))
		if errors.Is(err, store.ErrNotFound) {
			return ProfileRevisionNotFound(rg, cur.Name, revision)
		}
		return err
	})
	return p, err
}

// SetProfileTags replaces a profile's tags (PATCH). Tags are not part of
// the spec: no new revision.
func (s *Service) SetProfileTags(ctx context.Context, sub, rg, name string, tags map[string]string) (*Profile, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	var p *Profile
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		if p, err = getProfile(tx, sub, rg, name); err != nil {
			return err
		}
		p.Tags, p.UpdatedAt = tags, s.Clock.Now().UTC()
		k := key(sub, rg, name)
		if err := store.PutJSON(tx, tableProfileRevisions, revisionKey(k, p.Revision), p); err != nil {
			return err
		}
		return store.PutJSON(tx, tableProfiles, k, p)
	})
	return p, err
}

// DeleteProfile deletes a profile and its revisions. It reports whether
// the profile existed. Groups created from it keep running (they hold the
// merged spec).
func (s *Service) DeleteProfile(ctx context.Context, sub, rg, name string) (bool, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return false, err
	}
	return s.removeProfile(ctx, key(sub, rg, name))
}

func (s *Service) removeProfile(ctx context.Context, k string) (bool, error) {
	existed := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(tableProfiles, k); errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		existed = true
		var revs []string
		if err := tx.Scan(tableProfileRevisions, k+"/", func(rk string, _ []byte) bool { revs = append(revs, rk); return true }); err != nil {
			return err
		}
		for _, rk := range revs {
			if err := tx.Delete(tableProfileRevisions, rk); err != nil {
				return err
			}
		}
		return tx.Delete(tableProfiles, k)
	})
	return existed, err
}

// deleteProfilesIn removes every profile of a resource group (the
// resource-group delete hook).
func (s *Service) deleteProfilesIn(ctx context.Context, sub, rg string) error {
	var keys []string
	prefix := strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/"
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableProfiles, prefix, func(k string, _ []byte) bool { keys = append(keys, k); return true })
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := s.removeProfile(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// clone returns a deep copy of p.
func (p *Profile) clone() *Profile {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	var c Profile
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

// parseProfileID splits a containerGroupProfiles resource id (segments
// compared case-insensitively, as ARM does).
func parseProfileID(id string) (sub, rg, name string, ok bool) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if len(p) != 8 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "resourceGroups") ||
		!strings.EqualFold(p[4], "providers") || !strings.EqualFold(p[5], "Microsoft.ContainerInstance") ||
		!strings.EqualFold(p[6], "containerGroupProfiles") || p[1] == "" || p[3] == "" || p[7] == "" {
		return "", "", "", false
	}
	return p[1], p[3], p[7], true
}

// applyProfile resolves the profile g references (its ARM id compared
// case-insensitively; the given revision, or the latest) and merges the
// revision's spec into g: g's own properties win, the profile fills the
// rest, then ACI's defaults fill what neither sets. A malformed id, a
// profile that does not exist, an unknown revision, or a profile in a
// subscription of another tenant get ACI's errors. Without a reference it
// does nothing.
func (s *Service) applyProfile(ctx context.Context, g *Group) error {
	if g.Profile == nil || g.Profile.ID == "" {
		return nil
	}
	ref := g.Profile
	sub, rg, name, ok := parseProfileID(ref.ID)
	if !ok {
		// Unverified code; message in ACI's style.
		return invalid("InvalidContainerGroupProfileReference",
			"The container group profile reference '%s' of container group '%s' is invalid. It must be a resource id of the form '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerInstance/containerGroupProfiles/{containerGroupProfileName}'.", ref.ID, g.Name)
	}
	if !strings.EqualFold(sub, g.Subscription) {
		own, err := s.tenantOf(ctx, g.Subscription)
		if err != nil {
			return err
		}
		other, err := s.tenantOf(ctx, sub)
		if err != nil || !strings.EqualFold(own, other) {
			// ARM's linked-access check (real-service message shape).
			return apierr.New(apierr.Forbidden, "LinkedAuthorizationFailed",
				"The client has permission to perform action 'Microsoft.ContainerInstance/containerGroupProfiles/read' on scope '%s', however the current tenant '%s' is not authorized to access linked subscription '%s'.", g.ID(), own, sub)
		}
	}
	// Message modelled on ACI's verified NetworkProfileNotFound; code unverified.
	notFound := invalid("ContainerGroupProfileNotFound", "Container group profile '%s' is not found for container group '%s'.", ref.ID, g.Name)
	var rev *Profile
	err := s.Store.View(ctx, func(tx store.Tx) error {
		cur, err := getProfile(tx, sub, rg, name)
		if apierr.Is(err, apierr.NotFound) {
			return notFound
		}
		if err != nil {
			return err
		}
		n := cur.Revision
		if ref.Revision != nil {
			n = *ref.Revision
		}
		rev, err = store.GetJSON[Profile](tx, tableProfileRevisions, revisionKey(key(sub, rg, name), n))
		if errors.Is(err, store.ErrNotFound) {
			return invalid("ContainerGroupProfileRevisionNotFound",
				"Revision '%d' of container group profile '%s' is not found for container group '%s'. The latest revision is '%d'.", n, ref.ID, g.Name, cur.Revision)
		}
		return err
	})
	if err != nil {
		return err
	}
	mergeProfile(g, rev)
	return nil
}

// mergeProfile fills g from a profile revision: g's own properties win.
// Scalars and objects the group leaves unset come from the profile;
// volumes, init containers and extensions are merged by name and registry
// credentials by server (the group's entry wins); containers are the
// profile's, each overlaid field by field by the group's container of the
// same name. A group container naming no profile container is its own
// container — unless it has no image (an override-only entry, as
// `az container create --container-group-profile-id` sends, named after
// the group) and the profile has exactly one container: then it overlays
// that one. Restart policy and SKU default to ACI's (Always, Standard)
// when neither sets them.
func mergeProfile(g *Group, p *Profile) {
	spec := p.Spec.clone()
	if g.SKU == "" {
		g.SKU = spec.SKU
	}
	if g.SKU == "" {
		g.SKU = "Standard"
	}
	if g.OSType == "" {
		g.OSType = spec.OSType
	}
	if g.RestartPolicy == "" {
		g.RestartPolicy = spec.RestartPolicy
	}
	if g.RestartPolicy == "" {
		g.RestartPolicy = "Always"
	}
	if g.Priority == "" {
		g.Priority = spec.Priority
	}
	if g.IPAddress == nil {
		g.IPAddress = spec.IPAddress
	}
	if g.Diagnostics == nil {
		g.Diagnostics = spec.Diagnostics
	}
	if g.EncryptionProperties == nil {
		g.EncryptionProperties = spec.EncryptionProperties
	}
	if g.CCEPolicy == nil {
		g.CCEPolicy = spec.CCEPolicy
	}
	if len(g.Zones) == 0 {
		g.Zones = slices.Clone(p.Zones)
	}
	g.Volumes = mergeByKey(spec.Volumes, g.Volumes, func(v Volume) string { return v.Name }, nil)
	g.RegistryCredentials = mergeByKey(spec.RegistryCredentials, g.RegistryCredentials,
		func(rc RegistryCredential) string { return strings.ToLower(rc.Server) }, nil)
	g.Extensions = mergeByKey(spec.Extensions, g.Extensions, func(x Extension) string { return x.Name }, nil)
	g.InitContainers = mergeByKey(spec.InitContainers, g.InitContainers, func(c Container) string { return c.Name }, overlayContainer)

	own := g.Containers
	if len(spec.Containers) == 1 && len(own) == 1 && own[0].Image == "" && own[0].Name != spec.Containers[0].Name {
		stub := own[0]
		stub.Name = spec.Containers[0].Name
		own = []Container{stub}
	}
	g.Containers = mergeByKey(spec.Containers, own, func(c Container) string { return c.Name }, overlayContainer)
}

// mergeByKey returns base's entries (in order) with over's entries of the
// same key replacing them (or overlaid onto them by overlay, if given),
// then over's other entries.
func mergeByKey[T any](base, over []T, keyOf func(T) string, overlay func(T, T) T) []T {
	if len(base) == 0 {
		return over
	}
	idx := map[string]int{}
	out := slices.Clone(base)
	for i, b := range out {
		idx[keyOf(b)] = i
	}
	for _, o := range over {
		i, ok := idx[keyOf(o)]
		switch {
		case !ok:
			out = append(out, o)
		case overlay != nil:
			out[i] = overlay(out[i], o)
		default:
			out[i] = o
		}
	}
	return out
}

// overlayContainer returns base with every field over sets replacing
// base's; environment variables and configMap entries merge by name.
func overlayContainer(base, over Container) Container {
	c := base
	if over.Image != "" {
		c.Image = over.Image
	}
	if over.Command != nil {
		c.Command = over.Command
	}
	c.Env = mergeByKey(base.Env, over.Env, func(e EnvVar) string { return e.Name }, nil)
	if len(over.Ports) > 0 {
		c.Ports = over.Ports
	}
	if over.Requests.CPU > 0 || over.Requests.MemoryGB > 0 || over.Requests.GPU != nil {
		c.Requests = over.Requests
	}
	if over.Limits != nil {
		c.Limits = over.Limits
	}
	if len(over.VolumeMounts) > 0 {
		c.VolumeMounts = over.VolumeMounts
	}
	if over.LivenessProbe != nil {
		c.LivenessProbe = over.LivenessProbe
	}
	if over.ReadinessProbe != nil {
		c.ReadinessProbe = over.ReadinessProbe
	}
	if over.SecurityContext != nil {
		c.SecurityContext = over.SecurityContext
	}
	if len(over.ConfigMap) > 0 {
		m := map[string]string{}
		for k, v := range base.ConfigMap {
			m[k] = v
		}
		for k, v := range over.ConfigMap {
			m[k] = v
		}
		c.ConfigMap = m
	}
	return c
}
