package registries

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/store"
)

// Network access of a registry (Premium): who may reach its login server.
// ACR decides on its public endpoint by publicNetworkAccess and the
// networkRuleSet (a default action and IP rules, which apply only while
// public access is enabled), lets clients in a virtual network with an
// approved private endpoint in always, and lets trusted Azure services
// through when networkRuleBypassOptions is AzureServices.

// Values of the network-access properties.
const (
	AccessEnabled  = "Enabled"
	AccessDisabled = "Disabled"
	ActionAllow    = "Allow"
	ActionDeny     = "Deny"
	BypassAzure    = "AzureServices"
	BypassNone     = "None"
	PremiumSKU     = "Premium"
)

// Private endpoint connection states.
const (
	StatusApproved     = "Approved"
	StatusPending      = "Pending"
	StatusRejected     = "Rejected"
	StatusDisconnected = "Disconnected"
)

// PrivateLinkGroup is the one private-link sub-resource (groupId) of a
// registry.
const PrivateLinkGroup = "registry"

// IPRule allows a source address or range (IPv4, CIDR) on the public
// endpoint.
type IPRule struct {
	Action string `json:"action"`
	Value  string `json:"value"`
}

// NetworkRuleSet is a registry's firewall.
type NetworkRuleSet struct {
	DefaultAction string   `json:"defaultAction"`
	IPRules       []IPRule `json:"ipRules,omitempty"`
}

// Connection is a private endpoint connection of a registry.
type Connection struct {
	Name              string `json:"name"`
	PrivateEndpointID string `json:"privateEndpointId"`
	// Network is the endpoint's virtual network (ARM id, lower case):
	// clients in it reach the registry while the connection is approved.
	Network         string `json:"network"`
	Status          string `json:"status"`
	Description     string `json:"description,omitempty"`
	ActionsRequired string `json:"actionsRequired,omitempty"`
}

// publicAccess, defaultAction and bypass read the stored values with
// ACR's defaults for records written before they existed.
func (r *Registry) publicAccess() string { return or(r.PublicNetworkAccess, AccessEnabled) }
func (r *Registry) defaultAction() string {
	if r.NetworkRuleSet == nil {
		return ActionAllow
	}
	return or(r.NetworkRuleSet.DefaultAction, ActionAllow)
}
func (r *Registry) bypass() string { return or(r.NetworkRuleBypassOptions, BypassAzure) }

// PublicAccess, DefaultAction and Bypass are the effective settings.
func (r *Registry) PublicAccess() string  { return r.publicAccess() }
func (r *Registry) DefaultAction() string { return r.defaultAction() }
func (r *Registry) Bypass() string        { return r.bypass() }

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// CallerKind says what kind of client a data-plane request comes from.
type CallerKind int

// Caller kinds.
const (
	// FromHost is a process on berth's host (a public-endpoint client
	// with its source address).
	FromHost CallerKind = iota
	// FromGroup is a container group (or the pull of its images), in a
	// virtual network or on the public network.
	FromGroup
	// FromTrustedService is an Azure service ACR trusts (importImage's
	// read of its source).
	FromTrustedService
	// FromSelf is the registry's own work (importImage's writes).
	FromSelf
)

// Caller is where a data-plane request comes from.
type Caller struct {
	Kind CallerKind
	// Addr is the client's address: the source address for the host, the
	// group's address when known.
	Addr netip.Addr
	// Network is a group's virtual network (ARM id, any case); "" for a
	// group on the public network.
	Network string
}

// Allows is the registry's network decision: whether a request from c
// reaches the registry.
func (r *Registry) Allows(c Caller) bool {
	switch c.Kind {
	case FromSelf:
		return true
	case FromTrustedService:
		if r.bypass() == BypassAzure {
			return true
		}
	case FromGroup:
		if c.Network != "" {
			for _, pc := range r.Connections {
				if pc.Status == StatusApproved && strings.EqualFold(pc.Network, c.Network) {
					return true
				}
			}
		}
	}
	// The public endpoint.
	if r.publicAccess() != AccessEnabled {
		return false
	}
	if r.defaultAction() == ActionAllow {
		return true
	}
	if !c.Addr.IsValid() || r.NetworkRuleSet == nil {
		return false
	}
	a := c.Addr.Unmap()
	for _, rule := range r.NetworkRuleSet.IPRules {
		if p, ok := parseIPRule(rule.Value); ok && p.Contains(a) {
			return true
		}
	}
	return false
}

// DeniedMessage is ACR's message for a client its firewall refuses (with
// code DENIED, status 403).
func DeniedMessage(ip string) string {
	return "client with IP '" + ip + "' is not allowed access. Refer https://aka.ms/acr/firewall to grant access."
}

// Allowed decides for registry name (case-insensitive); registries berth
// serves outside ARM (its default registry) have no network rules.
func (s *Service) Allowed(name string, c Caller) bool {
	r := s.ByName(name)
	return r == nil || r.Allows(c)
}

// parseIPRule parses an IP rule's value: an IPv4 address or CIDR range.
func parseIPRule(v string) (netip.Prefix, bool) {
	v = strings.TrimSpace(v)
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil || !p.Addr().Is4() {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, 32), true
}

// normalizeNetwork checks and canonicalises r's network-access settings.
// It does not check the SKU (checkPremium does, after a merge).
func normalizeNetwork(r *Registry) error {
	if r.PublicNetworkAccess != "" {
		v, ok := canonical(r.PublicNetworkAccess, []string{AccessEnabled, AccessDisabled})
		if !ok {
			return apierr.New(apierr.Invalid, "InvalidParameter",
				"The value '%s' of 'publicNetworkAccess' is invalid. Supported values are 'Enabled' and 'Disabled'.", r.PublicNetworkAccess)
		}
		r.PublicNetworkAccess = v
	}
	if r.NetworkRuleBypassOptions != "" {
		v, ok := canonical(r.NetworkRuleBypassOptions, []string{BypassAzure, BypassNone})
		if !ok {
			return apierr.New(apierr.Invalid, "InvalidParameter",
				"The value '%s' of 'networkRuleBypassOptions' is invalid. Supported values are 'AzureServices' and 'None'.", r.NetworkRuleBypassOptions)
		}
		r.NetworkRuleBypassOptions = v
	}
	if rs := r.NetworkRuleSet; rs != nil {
		v, ok := canonical(rs.DefaultAction, []string{ActionAllow, ActionDeny})
		if !ok {
			return apierr.New(apierr.Invalid, "InvalidParameter",
				"The value '%s' of 'networkRuleSet.defaultAction' is invalid. Supported values are 'Allow' and 'Deny'.", rs.DefaultAction)
		}
		rs.DefaultAction = v
		if len(rs.IPRules) > 100 {
			return apierr.New(apierr.Invalid, "TooManyIpRules", "A registry supports at most 100 IP rules; %d were given.", len(rs.IPRules))
		}
		for i := range rs.IPRules {
			ip := &rs.IPRules[i]
			act, ok := canonical(or(ip.Action, ActionAllow), []string{ActionAllow})
			if !ok {
				return apierr.New(apierr.Invalid, "InvalidParameter",
					"The value '%s' of 'networkRuleSet.ipRules[%d].action' is invalid. The supported value is 'Allow'.", ip.Action, i)
			}
			ip.Action = act
			if _, ok := parseIPRule(ip.Value); !ok {
				return apierr.New(apierr.Invalid, "InvalidIpRule",
					"The IP rule value '%s' is invalid. Specify an IPv4 address or an IPv4 address range in CIDR format.", ip.Value)
			}
			ip.Value = strings.TrimSpace(ip.Value)
		}
	}
	return nil
}

// checkPremium refuses network features on a registry whose SKU is not
// Premium, as ACR does (on create, on update and on a SKU downgrade).
//
// DisablingPublicNetworkAccessNotSupported and its message are ACR's
// (seen in deployment errors). The codes for IP rules and private endpoint
// connections on Basic/Standard could not be verified against the real
// service; they follow the same pattern.
func checkPremium(r *Registry) error {
	if r.SKU == PremiumSKU {
		return nil
	}
	if r.publicAccess() == AccessDisabled {
		return apierr.New(apierr.Invalid, "DisablingPublicNetworkAccessNotSupported",
			"Disabling public network access is not supported for the SKU %s. For more information, please visit https://aka.ms/acr/private-link.", r.SKU)
	}
	if rs := r.NetworkRuleSet; rs != nil && (rs.DefaultAction == ActionDeny || len(rs.IPRules) > 0) {
		return apierr.New(apierr.Invalid, "NetworkRuleSetNotSupported",
			"Network rules are not supported for the SKU %s. For more information, please visit https://aka.ms/acr/firewall.", r.SKU)
	}
	if len(r.Connections) > 0 {
		return apierr.New(apierr.Invalid, "PrivateEndpointConnectionsNotSupported",
			"Private endpoint connections are not supported for the SKU %s. Delete the registry's private endpoint connections first. For more information, please visit https://aka.ms/acr/private-link.", r.SKU)
	}
	return nil
}

// Endpoint is a private endpoint asking to connect to a registry.
type Endpoint struct {
	ID      string // ARM id of the private endpoint
	Name    string
	Network string // its virtual network's ARM id
}

// parseRegistryID splits a registry's ARM id.
func parseRegistryID(id string) (sub, rg, name string, ok bool) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if len(p) != 8 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "resourceGroups") ||
		!strings.EqualFold(p[4], "providers") || !strings.EqualFold(p[5], "Microsoft.ContainerRegistry") || !strings.EqualFold(p[6], "registries") {
		return "", "", "", false
	}
	return p[1], p[3], p[7], true
}

// errLinkTargetNotFound is the network provider's answer when a private
// endpoint names a registry that does not exist.
func errLinkTargetNotFound(id string) error {
	return apierr.New(apierr.Invalid, "PrivateLinkServiceNotFound",
		"Private link service %s referenced by the private endpoint was not found.", id)
}

// Connect records a private endpoint's connection to the registry with ARM
// id registryID (the registry must be Premium) and returns it: Approved
// when approved (the caller may approve connections to the registry),
// else Pending. Connecting the same endpoint again returns its connection
// as it is.
func (s *Service) Connect(ctx context.Context, registryID string, groupIDs []string, ep Endpoint, approved bool, message string) (Connection, error) {
	sub, rg, name, ok := parseRegistryID(registryID)
	if !ok {
		return Connection{}, errLinkTargetNotFound(registryID)
	}
	if len(groupIDs) != 1 || !strings.EqualFold(groupIDs[0], PrivateLinkGroup) {
		return Connection{}, apierr.New(apierr.Invalid, "PrivateEndpointBadRequest",
			"Call to Microsoft.ContainerRegistry/registries failed. Error message: The group ids %q are invalid; a registry has one private link resource, 'registry'.", groupIDs)
	}
	var out Connection
	reg, err := s.mutate(ctx, sub, rg, name, func(r *Registry) error {
		if r.SKU != PremiumSKU {
			return apierr.New(apierr.Invalid, "PrivateEndpointBadRequest",
				"Call to Microsoft.ContainerRegistry/registries failed. Error message: Private endpoint connections are not supported for the SKU %s. For more information, please visit https://aka.ms/acr/private-link.", r.SKU)
		}
		for _, c := range r.Connections {
			if strings.EqualFold(c.PrivateEndpointID, ep.ID) {
				out = c
				return errUnchanged
			}
		}
		out = Connection{Name: ep.Name + "." + uuid.NewString(), PrivateEndpointID: ep.ID, Network: strings.ToLower(ep.Network),
			Status: StatusApproved, Description: "Auto-Approved", ActionsRequired: "None"}
		if !approved {
			out.Status, out.Description = StatusPending, message
		}
		r.Connections = append(r.Connections, out)
		return nil
	})
	if apierr.Is(err, apierr.NotFound) && reg == nil {
		return Connection{}, errLinkTargetNotFound(registryID)
	}
	return out, err
}

// Disconnect removes the connection of private endpoint endpointID from
// the registry with ARM id registryID; a missing registry or connection is
// fine.
func (s *Service) Disconnect(ctx context.Context, registryID, endpointID string) error {
	sub, rg, name, ok := parseRegistryID(registryID)
	if !ok {
		return nil
	}
	_, err := s.mutate(ctx, sub, rg, name, func(r *Registry) error {
		for i, c := range r.Connections {
			if strings.EqualFold(c.PrivateEndpointID, endpointID) {
				r.Connections = append(r.Connections[:i:i], r.Connections[i+1:]...)
				return nil
			}
		}
		return errUnchanged
	})
	if apierr.Is(err, apierr.NotFound) {
		return nil
	}
	return err
}

// ConnectionOf returns the connection of private endpoint endpointID to the
// registry with ARM id registryID, if there is one.
func (s *Service) ConnectionOf(ctx context.Context, registryID, endpointID string) (Connection, bool) {
	_, _, name, ok := parseRegistryID(registryID)
	if !ok {
		return Connection{}, false
	}
	r := s.ByName(name)
	if r == nil || !strings.EqualFold(r.ID(), registryID) {
		return Connection{}, false
	}
	for _, c := range r.Connections {
		if strings.EqualFold(c.PrivateEndpointID, endpointID) {
			return c, true
		}
	}
	return Connection{}, false
}

// ConnectionNotFound is the error for a missing private endpoint
// connection.
func ConnectionNotFound(name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "PrivateEndpointConnectionNotFound",
		"The private endpoint connection '%s' was not found.", name)
}

// GetConnection returns a registry and its connection named conn.
func (s *Service) GetConnection(ctx context.Context, sub, rg, name, conn string) (*Registry, Connection, error) {
	r, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, Connection{}, err
	}
	for _, c := range r.Connections {
		if strings.EqualFold(c.Name, conn) {
			return r, c, nil
		}
	}
	return nil, Connection{}, ConnectionNotFound(conn)
}

// SetConnectionState approves or rejects connection conn (ACR's
// privateEndpointConnections PUT). A rejected connection cannot be
// approved again, as on Azure.
func (s *Service) SetConnectionState(ctx context.Context, sub, rg, name, conn, status, description string) (*Registry, Connection, error) {
	st, ok := canonical(status, []string{StatusApproved, StatusPending, StatusRejected, StatusDisconnected})
	if !ok || st == StatusPending || st == StatusDisconnected {
		return nil, Connection{}, apierr.New(apierr.Invalid, "InvalidPrivateEndpointConnectionStatus",
			"The private endpoint connection status '%s' is invalid. Supported values are 'Approved' and 'Rejected'.", status)
	}
	var out Connection
	reg, err := s.mutate(ctx, sub, rg, name, func(r *Registry) error {
		for i := range r.Connections {
			c := &r.Connections[i]
			if !strings.EqualFold(c.Name, conn) {
				continue
			}
			if c.Status == StatusRejected && st == StatusApproved {
				return apierr.New(apierr.Invalid, "CannotApproveRejectedPrivateEndpointConnection",
					"The private endpoint connection '%s' was rejected and cannot be approved; create the private endpoint again.", c.Name)
			}
			c.Status, c.Description, c.ActionsRequired = st, description, "None"
			out = *c
			return nil
		}
		return ConnectionNotFound(conn)
	})
	return reg, out, err
}

// DeleteConnection removes connection conn from the registry (its private
// endpoint then shows it Disconnected). It reports whether there was one.
func (s *Service) DeleteConnection(ctx context.Context, sub, rg, name, conn string) (bool, error) {
	found := false
	_, err := s.mutate(ctx, sub, rg, name, func(r *Registry) error {
		for i, c := range r.Connections {
			if strings.EqualFold(c.Name, conn) {
				r.Connections = append(r.Connections[:i:i], r.Connections[i+1:]...)
				found = true
				return nil
			}
		}
		return errUnchanged
	})
	return found, err
}

// errUnchanged ends a mutate without writing.
var errUnchanged = apierr.New(apierr.Internal, "Unchanged", "unchanged")

// mutate changes a stored registry in one transaction and refreshes the
// cache; f returning errUnchanged leaves it as it is (no error).
func (s *Service) mutate(ctx context.Context, sub, rg, name string, f func(r *Registry) error) (*Registry, error) {
	var out *Registry
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		r, err := get(tx, sub, rg, name)
		if err != nil {
			return err
		}
		out = r
		if err := f(r); err != nil {
			return err
		}
		return put(tx, r)
	})
	if errors.Is(err, errUnchanged) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	s.cache(out)
	return out, nil
}
