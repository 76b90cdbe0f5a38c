package containerinstance

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
)

// Microsoft.ContainerInstance/containerGroupProfiles (and their read-only
// revisions). Every operation is synchronous (S25: CreateOrUpdateSync,
// CustomPatchSync, DeleteSync): PUT answers 201 on create and 200 on
// update, PATCH (tags) 200, DELETE 200 with an empty body (204 when there
// was nothing), as the real service's recordings show (azure-cli
// test_container_group_profile_update, api-version 2024-05-01-preview).
// A revision answers with the profile's own id, name and type and that
// revision's properties, as the real service does.

const profileResourceType = "Microsoft.ContainerInstance/containerGroupProfiles"

// profileVersions are the api-versions that have containerGroupProfiles:
// the published specs of 2024-05-01-preview, 2024-11-01-preview,
// 2025-09-01, 2026-05-01 and 2026-06-01-preview, plus 2024-09-01-preview,
// whose published spec lacks the type but which the real service accepts
// for it (Microsoft's NGroups samples deploy
// containerGroupProfiles@2024-09-01-preview). 2024-10-01-preview has no
// profiles.
var profileVersions = &arm.Versions{Type: "containerGroupProfiles", List: []string{
	"2024-05-01-preview", "2024-09-01-preview", "2024-11-01-preview", "2025-09-01", "2026-05-01", "2026-06-01-preview",
}}

// profileFeature is what only some versions' profile schema has.
type profileFeature uint8

const (
	// pfExtras: profile-level securityContext, shutdownGracePeriod,
	// timeToLive and useKrypton (2024-11-01-preview on).
	pfExtras profileFeature = 1 << iota
	// pfOSTypeOptional: osType is not required (2024-11-01-preview only).
	pfOSTypeOptional
)

var profileVersionFeatures = map[string]profileFeature{
	"2024-11-01-preview": pfExtras | pfOSTypeOptional,
	"2025-09-01":         pfExtras,
	"2026-05-01":         pfExtras,
	"2026-06-01-preview": pfExtras,
}

// profileExtras are the profile-only properties, stored as given in the
// spec's Opaque map under their property names. None is a secret.
var profileExtras = []string{"securityContext", "shutdownGracePeriod", "timeToLive", "useKrypton"}

const (
	profilesPath = rgPath + "/containerGroupProfiles"
	profilePath  = profilesPath + "/{containerGroupProfileName}"
)

// RBAC actions of containerGroupProfiles.
const (
	profRead   = ns + "/containerGroupProfiles/read"
	profWrite  = ns + "/containerGroupProfiles/write"
	profDelete = ns + "/containerGroupProfiles/delete"
)

func (a *API) profileRoutes() []arm.Route {
	return []arm.Route{
		{Pattern: provPath + "/containerGroupProfiles", Versions: profileVersions,
			Methods: arm.Ops{"GET": arm.List(profRead, a.listProfilesSubscription)}},
		{Pattern: profilesPath, Versions: profileVersions, Methods: arm.Ops{"GET": arm.List(profRead, a.listProfilesGroup)}},
		{Pattern: profilePath, Versions: profileVersions, Methods: arm.Ops{
			"PUT": arm.Do(profWrite, a.putProfile), "GET": arm.Do(profRead, a.getProfile),
			"PATCH": arm.Do(profWrite, a.patchProfile), "DELETE": arm.Do(profDelete, a.deleteProfile)}},
		{Pattern: profilePath + "/revisions", Versions: profileVersions, Methods: arm.Ops{"GET": arm.Do(profRead, a.listProfileRevisions)}},
		{Pattern: profilePath + "/revisions/{revisionNumber}", Versions: profileVersions,
			Methods: arm.Ops{"GET": arm.Do(profRead, a.getProfileRevision)}},
	}
}

func profileIDs(r *arm.Request) (sub, rg, name string) {
	return r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("containerGroupProfileName")
}

// Wire shapes of a profile, field order as the real service's.
type containerGroupProfile struct {
	Properties profileProperties `json:"properties"`
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags"`
	Zones      []string          `json:"zones,omitempty"`
}

// profileProperties reuses the group's wire shapes, which have no field
// for a secret.
type profileProperties struct {
	SKU                           string          `json:"sku,omitempty"`
	Containers                    []container     `json:"containers"`
	InitContainers                []initContainer `json:"initContainers,omitempty"`
	ImageRegistryCredentials      []registryCred  `json:"imageRegistryCredentials,omitempty"`
	RestartPolicy                 string          `json:"restartPolicy,omitempty"`
	IPAddress                     *ipAddress      `json:"ipAddress,omitempty"`
	OSType                        string          `json:"osType,omitempty"`
	Volumes                       []volume        `json:"volumes,omitempty"`
	Diagnostics                   *diagnostics    `json:"diagnostics,omitempty"`
	EncryptionProperties          *encryption     `json:"encryptionProperties,omitempty"`
	Extensions                    []extension     `json:"extensions,omitempty"`
	ConfidentialComputeProperties *confidential   `json:"confidentialComputeProperties,omitempty"`
	Priority                      string          `json:"priority,omitempty"`
	SecurityContext               json.RawMessage `json:"securityContext,omitempty"`
	ShutdownGracePeriod           json.RawMessage `json:"shutdownGracePeriod,omitempty"`
	TimeToLive                    json.RawMessage `json:"timeToLive,omitempty"`
	UseKrypton                    json.RawMessage `json:"useKrypton,omitempty"`
	Revision                      int             `json:"revision"`
}

type profileListResult struct {
	Value    []containerGroupProfile `json:"value"`
	NextLink string                  `json:"nextLink,omitempty"`
}

// decodeProfile turns a profile PUT body of apiVersion into a domain
// profile (without subscription, resource group and name). The body is a
// group's minus what a profile's schema lacks (identity, dnsConfig,
// subnetIds, networkProfile, provisioningTimeoutInSeconds, profile and
// standby-pool references, secretReferences, identityAcls: ignored, as
// ACI's deserializer ignores unknown properties), plus the profile-only
// properties of later versions. location is optional; SKU and restart
// policy stay empty when not given (the real service echoes neither).
func decodeProfile(body []byte, apiVersion string) (*aci.Profile, error) {
	var in putGroup
	if err := arm.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	var extra struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	_ = json.Unmarshal(body, &extra) // the same body decoded above: cannot fail where it matters
	pf := profileVersionFeatures[apiVersion]
	in.Identity = nil
	if p := in.Properties; p != nil {
		p.NetworkProfile, p.SubnetIDs, p.DNSConfig = nil, nil, nil
		p.ProvisioningTimeoutInSeconds, p.ContainerGroupProfile, p.StandbyPoolProfile = nil, nil, nil
		p.SecretReferences, p.IdentityAcls = nil, nil
		if p.OSType == nil && pf&pfOSTypeOptional != 0 {
			none := ""
			p.OSType = &none
		}
	}
	loc := ""
	if in.Location != nil {
		loc = *in.Location
	} else {
		in.Location = &loc
	}
	g, err := toDomain(&in, apiVersion)
	if err != nil {
		return nil, err
	}
	p := in.Properties
	if p.SKU == "" {
		g.SKU = ""
	}
	if p.RestartPolicy == "" {
		g.RestartPolicy = ""
	}
	g.Opaque = nil
	if pf&pfExtras != 0 {
		for _, name := range profileExtras {
			v := jsonValue(extra.Properties[name])
			if v == nil {
				continue
			}
			if err := checkExtra(name, v); err != nil {
				return nil, err
			}
			if g.Opaque == nil {
				g.Opaque = map[string]json.RawMessage{}
			}
			g.Opaque[name] = v
		}
	}
	prof := &aci.Profile{Location: loc, Tags: in.Tags, Zones: g.Zones, Spec: g}
	g.Location, g.Tags, g.Zones = "", nil, nil
	return prof, nil
}

// checkExtra checks a profile-only property's JSON type, answering the
// deserializer's error.
func checkExtra(name string, v json.RawMessage) error {
	var ok bool
	switch name {
	case "securityContext":
		var m map[string]json.RawMessage
		ok = json.Unmarshal(v, &m) == nil
	case "useKrypton":
		var b bool
		ok = json.Unmarshal(v, &b) == nil
	default: // durations, as strings
		var s string
		ok = json.Unmarshal(v, &s) == nil
	}
	if !ok {
		return apierr.New(apierr.Invalid, "InvalidRequestContent",
			"The request content was invalid and could not be deserialized: 'Error converting value %s. Path 'properties.%s'.'", string(v), name)
	}
	return nil
}

// profileToWire renders a profile (or one revision of it) as apiVersion
// returns it, with the group renderer's shapes (so only that version's
// fields, and no secret). A pure function of its arguments.
func profileToWire(p *aci.Profile, apiVersion string) containerGroupProfile {
	g := *p.Spec
	g.Subscription, g.ResourceGroup, g.Name, g.Location = p.Subscription, p.ResourceGroup, p.Name, p.Location
	gw := toWire(&aci.View{Group: &g}, apiVersion, false).Properties
	tags := p.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	out := containerGroupProfile{ID: p.ID(), Name: p.Name, Type: profileResourceType, Location: p.Location, Tags: tags,
		Properties: profileProperties{
			SKU: p.Spec.SKU, Containers: gw.Containers, ImageRegistryCredentials: gw.ImageRegistryCredentials,
			RestartPolicy: p.Spec.RestartPolicy, OSType: p.Spec.OSType, Volumes: gw.Volumes, Diagnostics: gw.Diagnostics,
			EncryptionProperties: gw.EncryptionProperties, Extensions: gw.Extensions,
			ConfidentialComputeProperties: gw.ConfidentialComputeProperties, Priority: gw.Priority, Revision: p.Revision,
		}}
	if len(p.Zones) > 0 {
		out.Zones = p.Zones
	}
	if len(gw.InitContainers) > 0 {
		out.Properties.InitContainers = gw.InitContainers
	}
	if ip := gw.IPAddress; ip != nil {
		// A profile has no address and no fqdn.
		c := *ip
		c.IP, c.Fqdn = "", ""
		out.Properties.IPAddress = &c
	}
	if profileVersionFeatures[apiVersion]&pfExtras != 0 {
		o := p.Spec.Opaque
		out.Properties.SecurityContext, out.Properties.ShutdownGracePeriod = o["securityContext"], o["shutdownGracePeriod"]
		out.Properties.TimeToLive, out.Properties.UseKrypton = o["timeToLive"], o["useKrypton"]
	}
	return out
}

func (a *API) putProfile(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := profileIDs(r)
	body, err := arm.ReadBody(r)
	if err != nil {
		return err
	}
	p, err := decodeProfile(body, r.APIVersion)
	if err != nil {
		return err
	}
	p.Subscription, p.ResourceGroup, p.Name = sub, rg, name
	stored, created, err := a.Service.CreateOrUpdateProfile(r.Context(), p)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return arm.WriteJSON(w, status, profileToWire(stored, r.APIVersion))
}

func (a *API) getProfile(w http.ResponseWriter, r *arm.Request) error {
	p, err := a.Service.GetProfile(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("containerGroupProfileName"))
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, profileToWire(p, r.APIVersion))
}

// patchProfile updates tags (all a profile PATCH carries). A body without
// "tags" leaves them as they are.
func (a *API) patchProfile(w http.ResponseWriter, r *arm.Request) error {
	var in struct {
		Tags *json.RawMessage `json:"tags"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	sub, rg, name := profileIDs(r)
	var (
		p   *aci.Profile
		err error
	)
	if in.Tags != nil {
		var tags map[string]string
		if err := arm.Unmarshal(*in.Tags, &tags); err != nil {
			return err
		}
		p, err = a.Service.SetProfileTags(r.Context(), sub, rg, name, tags)
	} else {
		p, err = a.Service.GetProfile(r.Context(), sub, rg, name)
	}
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, profileToWire(p, r.APIVersion))
}

func (a *API) deleteProfile(w http.ResponseWriter, r *arm.Request) error {
	existed, err := a.Service.DeleteProfile(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("containerGroupProfileName"))
	if err != nil {
		return err
	}
	return arm.WriteDeleted(w, existed)
}

func (a *API) listProfilesGroup(w http.ResponseWriter, r *arm.Request) error {
	return a.listProfiles(w, r, r.Param("resourceGroupName"))
}

func (a *API) listProfilesSubscription(w http.ResponseWriter, r *arm.Request) error {
	return a.listProfiles(w, r, "")
}

func (a *API) listProfiles(w http.ResponseWriter, r *arm.Request, rg string) error {
	all, err := a.Service.ListProfiles(r.Context(), r.Param("subscriptionId"), rg)
	if err != nil {
		return err
	}
	ps := all[:0:0]
	for _, p := range all {
		if r.Allowed(profRead, p.ID()) {
			ps = append(ps, p)
		}
	}
	return a.writeProfiles(w, r, ps, aci.ProfileSortKey)
}

func (a *API) listProfileRevisions(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := profileIDs(r)
	revs, err := a.Service.ProfileRevisions(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	return a.writeProfiles(w, r, revs, func(p *aci.Profile) string { return fmt.Sprintf("%010d", p.Revision) })
}

func (a *API) writeProfiles(w http.ResponseWriter, r *arm.Request, ps []*aci.Profile, key func(*aci.Profile) string) error {
	page, next := arm.Page(ps, r, a.pageSize(), key)
	out := profileListResult{Value: []containerGroupProfile{}, NextLink: next}
	for _, p := range page {
		out.Value = append(out.Value, profileToWire(p, r.APIVersion))
	}
	return arm.WriteJSON(w, http.StatusOK, out)
}

func (a *API) getProfileRevision(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := profileIDs(r)
	p, err := a.Service.ProfileRevision(r.Context(), sub, rg, name, r.Param("revisionNumber"))
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, profileToWire(p, r.APIVersion))
}
