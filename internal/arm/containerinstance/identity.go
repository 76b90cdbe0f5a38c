package containerinstance

import (
	"sort"
	"strings"

	"github.com/berth-dev/berth/internal/aci"
)

// The container group's identity block (every api-version berth serves has
// it: ContainerGroupIdentity since 2018-10-01). On input the read-only
// principalId, tenantId and each user identity's clientId/principalId are
// ignored; on output they are filled in as ACI returns them: principalId
// for the system identity, tenantId whenever there is an identity, and
// clientId/principalId for each user-assigned identity, keyed by the
// resource id as the user wrote it.

type identityWire struct {
	UserAssignedIdentities map[string]userIdentityWire `json:"userAssignedIdentities,omitempty"`
	PrincipalID            string                      `json:"principalId,omitempty"`
	TenantID               string                      `json:"tenantId,omitempty"`
	Type                   string                      `json:"type"`
}

type userIdentityWire struct {
	PrincipalID string `json:"principalId"`
	ClientID    string `json:"clientId"`
}

// identity decodes the identity block; nil for none (absent, type None).
func (d *decoder) identity(in *putIdentity) *aci.Identity {
	if in == nil {
		return nil
	}
	typ := d.enum(in.Type, aci.IdentityNone, "ResourceIdentityType", "identity.type",
		aci.IdentitySystem, aci.IdentityUser, aci.IdentitySystemUser, aci.IdentityNone)
	if in.Type == "" && len(in.UserAssignedIdentities) > 0 {
		typ = aci.IdentityUser // as ARM infers it from the identities given
	}
	if typ == aci.IdentityNone || typ == "" {
		return nil
	}
	id := &aci.Identity{Type: typ}
	keys := make([]string, 0, len(in.UserAssignedIdentities))
	for k := range in.UserAssignedIdentities {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.TrimSpace(k) == "" || id.UserAssigned != nil && containsFold(id.UserAssigned, k) {
			continue
		}
		id.UserAssigned = append(id.UserAssigned, aci.UserIdentity{ResourceID: k})
	}
	return id
}

func containsFold(us []aci.UserIdentity, k string) bool {
	for _, u := range us {
		if strings.EqualFold(u.ResourceID, k) {
			return true
		}
	}
	return false
}

// renderIdentity is the identity block of a group's responses.
func renderIdentity(id *aci.Identity) *identityWire {
	if id == nil || id.Type == "" || id.Type == aci.IdentityNone {
		return nil
	}
	out := &identityWire{Type: id.Type, TenantID: id.TenantID}
	if id.HasSystem() {
		out.PrincipalID = id.PrincipalID
	}
	if id.HasUser() && len(id.UserAssigned) > 0 {
		out.UserAssignedIdentities = map[string]userIdentityWire{}
		for _, u := range id.UserAssigned {
			out.UserAssignedIdentities[u.ResourceID] = userIdentityWire{PrincipalID: u.PrincipalID, ClientID: u.ClientID}
		}
	}
	return out
}
