package containerregistry

import (
	"net/http"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/registries"
)

// Network rules and private link: the registry's networkRuleSet, its
// privateEndpointConnections (made by Microsoft.Network/privateEndpoints,
// approved or rejected here) and its one privateLinkResource, "registry".

type ipRule struct {
	Action string `json:"action"`
	Value  string `json:"value"`
}

type ruleSet struct {
	DefaultAction string   `json:"defaultAction"`
	IPRules       []ipRule `json:"ipRules"`
}

func (rs *ruleSet) toDomain() registries.NetworkRuleSet {
	d := registries.NetworkRuleSet{DefaultAction: rs.DefaultAction}
	for _, ip := range rs.IPRules {
		d.IPRules = append(d.IPRules, registries.IPRule{Action: ip.Action, Value: ip.Value})
	}
	return d
}

type connectionState struct {
	Status          string `json:"status"`
	Description     string `json:"description"`
	ActionsRequired string `json:"actionsRequired,omitempty"`
}

type connectionProps struct {
	PrivateEndpoint                   *endpointRef    `json:"privateEndpoint,omitempty"`
	PrivateLinkServiceConnectionState connectionState `json:"privateLinkServiceConnectionState"`
	ProvisioningState                 string          `json:"provisioningState"`
}

type connection struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Properties connectionProps `json:"properties"`
}

type endpointRef struct {
	ID string `json:"id"`
}

func toConnection(r *registries.Registry, c registries.Connection) connection {
	out := connection{ID: r.ID() + "/privateEndpointConnections/" + c.Name, Name: c.Name,
		Type: resourceType + "/privateEndpointConnections",
		Properties: connectionProps{
			PrivateLinkServiceConnectionState: connectionState{Status: c.Status, Description: c.Description, ActionsRequired: c.ActionsRequired},
			ProvisioningState:                 "Succeeded",
		}}
	out.Properties.PrivateEndpoint = &endpointRef{ID: c.PrivateEndpointID}
	return out
}

func (a *API) listConnections(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, err := a.Service.Get(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	out := []connection{}
	for _, c := range reg.Connections {
		out = append(out, toConnection(reg, c))
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (a *API) getConnection(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, c, err := a.Service.GetConnection(r.Context(), sub, rg, name, r.Param("connectionName"))
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toConnection(reg, c))
}

// putConnection approves or rejects a connection. ACR answers it as a
// long-running operation; berth's change is done before the answer, which
// the SDKs' pollers take as final.
func (a *API) putConnection(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	var in struct {
		Properties *struct {
			PrivateLinkServiceConnectionState *struct {
				Status      *string `json:"status"`
				Description string  `json:"description"`
			} `json:"privateLinkServiceConnectionState"`
		} `json:"properties"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.Properties == nil {
		return missing("properties", "")
	}
	st := in.Properties.PrivateLinkServiceConnectionState
	if st == nil {
		return missing("privateLinkServiceConnectionState", "properties")
	}
	if st.Status == nil {
		return missing("status", "properties.privateLinkServiceConnectionState")
	}
	reg, c, err := a.Service.SetConnectionState(r.Context(), sub, rg, name, r.Param("connectionName"), *st.Status, st.Description)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toConnection(reg, c))
}

func (a *API) deleteConnection(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	found, err := a.Service.DeleteConnection(r.Context(), sub, rg, name, r.Param("connectionName"))
	if err != nil {
		return err
	}
	return arm.WriteDeleted(w, found)
}

type linkResource struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		GroupID           string   `json:"groupId"`
		RequiredMembers   []string `json:"requiredMembers"`
		RequiredZoneNames []string `json:"requiredZoneNames"`
	} `json:"properties"`
}

func toLinkResource(reg *registries.Registry) linkResource {
	lr := linkResource{ID: reg.ID() + "/privateLinkResources/" + registries.PrivateLinkGroup, Name: registries.PrivateLinkGroup,
		Type: resourceType + "/privateLinkResources"}
	lr.Properties.GroupID = registries.PrivateLinkGroup
	loc := strings.ToLower(strings.ReplaceAll(reg.Location, " ", ""))
	lr.Properties.RequiredMembers = []string{"registry", "registry_data_" + loc}
	lr.Properties.RequiredZoneNames = []string{"privatelink.azurecr.io"}
	return lr
}

func (a *API) listLinkResources(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, err := a.Service.Get(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": []linkResource{toLinkResource(reg)}})
}

func (a *API) getLinkResource(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, err := a.Service.Get(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	if !strings.EqualFold(r.Param("groupName"), registries.PrivateLinkGroup) {
		return apierr.New(apierr.NotFound, "PrivateLinkResourceNotFound",
			"The private link resource '%s' was not found. A registry has one private link resource, 'registry'.", r.Param("groupName"))
	}
	return arm.WriteJSON(w, http.StatusOK, toLinkResource(reg))
}
