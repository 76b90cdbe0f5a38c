package network

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store"
)

// Private endpoints: a Microsoft.Network/privateEndpoints resource sits on
// a subnet and connects it to a private-link service (a registry). The
// service it connects to keeps the connection (and its approval); clients
// in the endpoint's virtual network then reach that service however its
// public network access is set.

const tableEndpoints = "network/endpoints" // sub/rg/name (lower case) → PrivateEndpoint

// PrivateEndpoint is a Microsoft.Network/privateEndpoints resource.
type PrivateEndpoint struct {
	Subscription  string            `json:"subscription"`
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Location      string            `json:"location"`
	Tags          map[string]string `json:"tags,omitempty"`
	SubnetID      string            `json:"subnetId"`
	// Connections are privateLinkServiceConnections, or (Manual)
	// manualPrivateLinkServiceConnections.
	Connections  []LinkConnection `json:"connections"`
	NIC          string           `json:"nic"` // its network interface's name
	ResourceGUID string           `json:"resourceGuid"`
	Etag         string           `json:"etag"`
	CreatedAt    time.Time        `json:"createdAt"`
}

// ID is the ARM resource id.
func (p *PrivateEndpoint) ID() string {
	return "/subscriptions/" + p.Subscription + "/resourceGroups/" + p.ResourceGroup +
		"/providers/Microsoft.Network/privateEndpoints/" + p.Name
}

// NICID is the ARM id of the endpoint's network interface.
func (p *PrivateEndpoint) NICID() string {
	return "/subscriptions/" + p.Subscription + "/resourceGroups/" + p.ResourceGroup +
		"/providers/Microsoft.Network/networkInterfaces/" + p.NIC
}

// LinkConnection is one connection of a private endpoint to a private-link
// service.
type LinkConnection struct {
	Name           string   `json:"name"`
	ServiceID      string   `json:"serviceId"` // privateLinkServiceId
	GroupIDs       []string `json:"groupIds"`
	RequestMessage string   `json:"requestMessage,omitempty"`
	Manual         bool     `json:"manual,omitempty"`
	// State is filled on reads from the service's side of the connection.
	State LinkState `json:"-"`
}

// LinkState is a connection's state as the service keeps it.
type LinkState struct {
	Status          string // Approved, Pending, Rejected, Disconnected
	Description     string
	ActionsRequired string
}

// EndpointRef describes a private endpoint to the service it connects to.
type EndpointRef struct {
	ID   string
	Name string
	// Network is the endpoint's virtual network (ARM id).
	Network string
}

// LinkTarget is the side of the private-link services (registries): it
// keeps each endpoint's connection. The server adapts the registries
// service to it.
type LinkTarget interface {
	// Connect makes (or returns, if it exists) ep's connection to service
	// serviceID: approved (the caller may approve connections to it) or
	// pending with message.
	Connect(ctx context.Context, serviceID string, groupIDs []string, ep EndpointRef, approved bool, message string) (LinkState, error)
	// Disconnect removes ep's connection; none is fine.
	Disconnect(ctx context.Context, serviceID, endpointID string) error
	// State is the connection's state; ok false: there is none (any more).
	State(ctx context.Context, serviceID, endpointID string) (LinkState, bool)
}

// EndpointNotFound is ARM's error for a missing private endpoint.
func EndpointNotFound(rg, name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.Network/privateEndpoints/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, rg)
}

// PutPrivateEndpoint creates or updates a private endpoint: the subnet must
// exist and cannot change; each connection's service must exist (and take
// it). approve says whether the caller may approve connections to a
// service; manual connections are always pending. It reports whether the
// endpoint was created.
func (s *Service) PutPrivateEndpoint(ctx context.Context, p *PrivateEndpoint, approve func(serviceID string) bool) (*PrivateEndpoint, bool, error) {
	if err := checkName(vnetName, p.Name, 64); err != nil {
		return nil, false, err
	}
	if strings.TrimSpace(p.Location) == "" {
		return nil, false, apierr.New(apierr.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	if p.SubnetID == "" {
		return nil, false, apierr.New(apierr.Invalid, "InvalidRequestFormat",
			"Cannot parse the request: private endpoint '%s' has no subnet.", p.Name)
	}
	if len(p.Connections) != 1 {
		return nil, false, apierr.New(apierr.Invalid, "PrivateEndpointMustHaveOneConnection",
			"Private endpoint %s must have exactly one private link service connection or one manual private link service connection.", p.ID())
	}
	for _, c := range p.Connections {
		if c.ServiceID == "" {
			return nil, false, apierr.New(apierr.Invalid, "InvalidRequestFormat",
				"Cannot parse the request: connection '%s' of private endpoint '%s' has no privateLinkServiceId.", c.Name, p.Name)
		}
	}
	if s.Links == nil {
		return nil, false, apierr.New(apierr.Invalid, "PrivateLinkServiceNotFound",
			"Private link service %s referenced by the private endpoint was not found.", p.Connections[0].ServiceID)
	}
	r, ok := parseID(p.SubnetID)
	if !ok || r.subnet == "" {
		return nil, false, apierr.New(apierr.Invalid, "InvalidResourceId", "The subnet id '%s' is not a valid resource id.", p.SubnetID)
	}
	v, sn, err := s.GetSubnet(ctx, r.sub, r.rg, r.vnet, r.subnet)
	if apierr.Is(err, apierr.NotFound) {
		return nil, false, danglingRef(p.SubnetID)
	}
	if err != nil {
		return nil, false, err
	}
	p.SubnetID = v.ID() + "/subnets/" + sn.Name
	old, err := s.GetPrivateEndpoint(ctx, p.Subscription, p.ResourceGroup, p.Name)
	switch {
	case err == nil:
		if !strings.EqualFold(old.SubnetID, p.SubnetID) {
			return nil, false, apierr.New(apierr.Invalid, "CannotChangeSubnetOfPrivateEndpoint",
				"The subnet of private endpoint %s cannot be changed from %s to %s.", old.ID(), old.SubnetID, p.SubnetID)
		}
		if normLoc(old.Location) != normLoc(p.Location) {
			return nil, false, apierr.New(apierr.Invalid, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				old.Name, old.Location, old.ResourceGroup, p.Location)
		}
		p.NIC, p.ResourceGUID, p.CreatedAt = old.NIC, old.ResourceGUID, old.CreatedAt
	case apierr.Is(err, apierr.NotFound) && apierr.As(err).Code == "ResourceNotFound":
		old = nil
		p.NIC = p.Name + ".nic." + uuid.NewString()
		p.ResourceGUID, p.CreatedAt = uuid.NewString(), s.Clock.Now().UTC()
	default:
		return nil, false, err
	}
	ref := EndpointRef{ID: p.ID(), Name: p.Name, Network: v.ID()}
	// Connect the new connections first; on a failure, undo those made
	// here (connections the endpoint had stay).
	had := map[string]bool{}
	if old != nil {
		for _, c := range old.Connections {
			had[strings.ToLower(c.ServiceID)] = true
		}
	}
	var made []string
	undo := func() {
		for _, id := range made {
			_ = s.Links.Disconnect(context.WithoutCancel(ctx), id, p.ID())
		}
	}
	for _, c := range p.Connections {
		if had[strings.ToLower(c.ServiceID)] {
			continue
		}
		ok := !c.Manual && approve != nil && approve(c.ServiceID)
		if _, err := s.Links.Connect(ctx, c.ServiceID, c.GroupIDs, ref, ok, c.RequestMessage); err != nil {
			undo()
			return nil, false, err
		}
		made = append(made, c.ServiceID)
	}
	p.Etag = newEtag()
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if err := resources.RequireActiveTx(tx, p.Subscription, p.ResourceGroup); err != nil {
			return err
		}
		return store.PutJSON(tx, tableEndpoints, key(p.Subscription, p.ResourceGroup, p.Name), p)
	})
	if err != nil {
		undo()
		return nil, false, err
	}
	// Connections the endpoint no longer has go.
	if old != nil {
		keep := map[string]bool{}
		for _, c := range p.Connections {
			keep[strings.ToLower(c.ServiceID)] = true
		}
		for _, c := range old.Connections {
			if !keep[strings.ToLower(c.ServiceID)] {
				if err := s.Links.Disconnect(ctx, c.ServiceID, p.ID()); err != nil {
					s.warn("disconnecting a private endpoint", "endpoint", p.ID(), "service", c.ServiceID, "err", err)
				}
			}
		}
	}
	s.fillEndpoint(ctx, p)
	return p, old == nil, nil
}

// fillEndpoint sets the connections' states from the services.
func (s *Service) fillEndpoint(ctx context.Context, p *PrivateEndpoint) {
	for i := range p.Connections {
		c := &p.Connections[i]
		c.State = LinkState{Status: "Disconnected", Description: "The private link service connection was removed by the service.", ActionsRequired: "None"}
		if s.Links != nil {
			if st, ok := s.Links.State(ctx, c.ServiceID, p.ID()); ok {
				c.State = st
			}
		}
	}
}

// GetPrivateEndpoint returns a private endpoint or ResourceNotFound.
func (s *Service) GetPrivateEndpoint(ctx context.Context, sub, rg, name string) (*PrivateEndpoint, error) {
	if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
		return nil, err
	}
	var p *PrivateEndpoint
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = store.GetJSON[PrivateEndpoint](tx, tableEndpoints, key(sub, rg, name))
		if errors.Is(err, store.ErrNotFound) {
			return EndpointNotFound(rg, name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.fillEndpoint(ctx, p)
	return p, nil
}

// ListPrivateEndpoints lists the private endpoints of a resource group, or
// of a subscription (rg "").
func (s *Service) ListPrivateEndpoints(ctx context.Context, sub, rg string) ([]*PrivateEndpoint, error) {
	prefix := strings.ToLower(sub) + "/"
	if rg != "" {
		if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
			return nil, err
		}
		prefix += strings.ToLower(rg) + "/"
	}
	var out []*PrivateEndpoint
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableEndpoints, prefix, func(_ string, b []byte) bool {
			var p PrivateEndpoint
			if json.Unmarshal(b, &p) == nil {
				out = append(out, &p)
			}
			return true
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	for _, p := range out {
		s.fillEndpoint(ctx, p)
	}
	return out, nil
}

// DeletePrivateEndpoint deletes a private endpoint and its connections. It
// reports whether it existed.
func (s *Service) DeletePrivateEndpoint(ctx context.Context, sub, rg, name string) (bool, error) {
	var p *PrivateEndpoint
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		p, err = store.GetJSON[PrivateEndpoint](tx, tableEndpoints, key(sub, rg, name))
		if errors.Is(err, store.ErrNotFound) {
			p = nil
			return nil
		}
		if err != nil {
			return err
		}
		return tx.Delete(tableEndpoints, key(sub, rg, name))
	})
	if err != nil || p == nil {
		return false, err
	}
	if s.Links != nil {
		for _, c := range p.Connections {
			if err := s.Links.Disconnect(context.WithoutCancel(ctx), c.ServiceID, p.ID()); err != nil {
				s.warn("disconnecting a deleted private endpoint", "endpoint", p.ID(), "service", c.ServiceID, "err", err)
			}
		}
	}
	return true, nil
}

// endpointUsing returns the id of the ip configuration of a private
// endpoint on the subnet, or "".
func endpointUsing(tx store.Tx, subnetID string) (string, error) {
	found := ""
	err := tx.Scan(tableEndpoints, "", func(_ string, b []byte) bool {
		var p PrivateEndpoint
		if json.Unmarshal(b, &p) == nil && strings.EqualFold(p.SubnetID, subnetID) {
			found = p.NICID() + "/ipConfigurations/privateEndpointIpConfig." + p.ResourceGUID
			return false
		}
		return true
	})
	return found, err
}
