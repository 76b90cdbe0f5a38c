package network

import (
	"net/http"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/network"
)

// Private endpoints (armnetwork v7 PrivateEndpoint shapes).

// approvalAction is the action on a private-link service that lets a
// caller's connections to it be approved at once (else they wait,
// Pending, for the service's owner).
const approvalAction = "Microsoft.ContainerRegistry/registries/privateEndpointConnectionsApproval/action"

type linkStateWire struct {
	Status          string `json:"status"`
	Description     string `json:"description"`
	ActionsRequired string `json:"actionsRequired"`
}

type linkConnProps struct {
	ProvisioningState                 string         `json:"provisioningState,omitempty"`
	PrivateLinkServiceID              string         `json:"privateLinkServiceId"`
	GroupIDs                          []string       `json:"groupIds"`
	RequestMessage                    string         `json:"requestMessage,omitempty"`
	PrivateLinkServiceConnectionState *linkStateWire `json:"privateLinkServiceConnectionState,omitempty"`
}

type linkConn struct {
	ID         string         `json:"id,omitempty"`
	Name       string         `json:"name"`
	Type       string         `json:"type,omitempty"`
	Etag       string         `json:"etag,omitempty"`
	Properties *linkConnProps `json:"properties"`
}

type dnsConfig struct {
	Fqdn        string   `json:"fqdn"`
	IPAddresses []string `json:"ipAddresses"`
}

type endpointProps struct {
	ProvisioningState                   string        `json:"provisioningState,omitempty"`
	Subnet                              *subResource  `json:"subnet"`
	NetworkInterfaces                   []subResource `json:"networkInterfaces,omitempty"`
	PrivateLinkServiceConnections       []linkConn    `json:"privateLinkServiceConnections"`
	ManualPrivateLinkServiceConnections []linkConn    `json:"manualPrivateLinkServiceConnections"`
	CustomDNSConfigs                    []dnsConfig   `json:"customDnsConfigs"`
	IPConfigurations                    []any         `json:"ipConfigurations"`
	ApplicationSecurityGroups           []any         `json:"applicationSecurityGroups,omitempty"`
	CustomNetworkInterfaceName          string        `json:"customNetworkInterfaceName,omitempty"`
}

type endpoint struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Etag       string            `json:"etag,omitempty"`
	Properties *endpointProps    `json:"properties"`
}

func toEndpoint(p *network.PrivateEndpoint) endpoint {
	props := &endpointProps{ProvisioningState: "Succeeded", Subnet: &subResource{ID: p.SubnetID},
		NetworkInterfaces:                   []subResource{{ID: p.NICID()}},
		PrivateLinkServiceConnections:       []linkConn{},
		ManualPrivateLinkServiceConnections: []linkConn{},
		CustomDNSConfigs:                    []dnsConfig{}, IPConfigurations: []any{}, ApplicationSecurityGroups: []any{},
	}
	for _, c := range p.Connections {
		lc := linkConn{ID: p.ID() + "/privateLinkServiceConnections/" + c.Name, Name: c.Name,
			Type: "Microsoft.Network/privateEndpoints/privateLinkServiceConnections", Etag: p.Etag,
			Properties: &linkConnProps{ProvisioningState: "Succeeded", PrivateLinkServiceID: c.ServiceID, GroupIDs: c.GroupIDs,
				RequestMessage: c.RequestMessage,
				PrivateLinkServiceConnectionState: &linkStateWire{Status: c.State.Status, Description: c.State.Description,
					ActionsRequired: c.State.ActionsRequired}}}
		if lc.Properties.GroupIDs == nil {
			lc.Properties.GroupIDs = []string{}
		}
		if c.Manual {
			lc.ID = p.ID() + "/manualPrivateLinkServiceConnections/" + c.Name
			props.ManualPrivateLinkServiceConnections = append(props.ManualPrivateLinkServiceConnections, lc)
		} else {
			props.PrivateLinkServiceConnections = append(props.PrivateLinkServiceConnections, lc)
		}
	}
	return endpoint{ID: p.ID(), Name: p.Name, Type: "Microsoft.Network/privateEndpoints", Location: p.Location, Tags: p.Tags,
		Etag: p.Etag, Properties: props}
}

func (a *API) putEndpoint(w http.ResponseWriter, r *arm.Request) error {
	var in endpoint
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	p := &network.PrivateEndpoint{Subscription: r.Param("subscriptionId"), ResourceGroup: r.Param("resourceGroupName"),
		Name: r.Param("endpoint"), Location: in.Location, Tags: in.Tags}
	if in.Properties == nil {
		return apierr.New(apierr.Invalid, "InvalidRequestFormat", "Cannot parse the request: private endpoint '%s' has no properties.", p.Name)
	}
	if in.Properties.Subnet != nil {
		p.SubnetID = in.Properties.Subnet.ID
	}
	add := func(cs []linkConn, manual bool) error {
		for _, c := range cs {
			if c.Properties == nil {
				return apierr.New(apierr.Invalid, "InvalidRequestFormat",
					"Cannot parse the request: connection '%s' of private endpoint '%s' has no properties.", c.Name, p.Name)
			}
			name := c.Name
			if name == "" {
				name = p.Name
			}
			p.Connections = append(p.Connections, network.LinkConnection{Name: name, ServiceID: c.Properties.PrivateLinkServiceID,
				GroupIDs: c.Properties.GroupIDs, RequestMessage: c.Properties.RequestMessage, Manual: manual})
		}
		return nil
	}
	if err := add(in.Properties.PrivateLinkServiceConnections, false); err != nil {
		return err
	}
	if err := add(in.Properties.ManualPrivateLinkServiceConnections, true); err != nil {
		return err
	}
	approve := func(serviceID string) bool { return r.Allowed(approvalAction, serviceID) }
	out, isNew, err := a.Service.PutPrivateEndpoint(r.Context(), p, approve)
	if err != nil {
		return err
	}
	if err := a.finished(w, r, out.ID(), "privateEndpoints/write", out.Location, false); err != nil {
		return err
	}
	return arm.WriteJSON(w, created(isNew), toEndpoint(out))
}

func (a *API) getEndpoint(w http.ResponseWriter, r *arm.Request) error {
	p, err := a.Service.GetPrivateEndpoint(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("endpoint"))
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toEndpoint(p))
}

func (a *API) deleteEndpoint(w http.ResponseWriter, r *arm.Request) error {
	ctx := r.Context()
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("endpoint")
	p, err := a.Service.GetPrivateEndpoint(ctx, sub, rg, name)
	if apierr.Is(err, apierr.NotFound) && apierr.As(err).Code == "ResourceNotFound" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	existed, err := a.Service.DeletePrivateEndpoint(ctx, sub, rg, name)
	if err != nil {
		return err
	}
	if !existed {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := a.finished(w, r, p.ID(), "privateEndpoints/delete", p.Location, true); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (a *API) listEndpoints(w http.ResponseWriter, r *arm.Request) error {
	ps, err := a.Service.ListPrivateEndpoints(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"))
	if err != nil {
		return err
	}
	out := []endpoint{}
	for _, p := range ps {
		if r.Allowed(epRead, p.ID()) {
			out = append(out, toEndpoint(p))
		}
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

const (
	epRead   = "Microsoft.Network/privateEndpoints/read"
	epWrite  = "Microsoft.Network/privateEndpoints/write"
	epDelete = "Microsoft.Network/privateEndpoints/delete"
)
