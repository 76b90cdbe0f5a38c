// Package network is the service behind berth's minimal Microsoft.Network
// surface: virtual networks with their subnets (and the subnets' delegations
// and service association links), and the 2021-03-01-style networkProfiles
// that name a subnet for container groups. Resources live in the state
// store; each subnet that container groups use becomes a network of the
// runtime (a bridge with the subnet's own address prefix, isolated from
// other virtual networks), made on demand through the Runtime interface and
// removed with the subnet.
//
// All of berth's virtual networks share one host, so address prefixes must
// be unique across them (Azure allows overlapping virtual networks; berth
// refuses a subnet that overlaps another virtual network's subnet or a route
// of the host). The service also implements aci.Networks: it resolves a
// group's subnet or network profile to the runtime network and keeps the
// service association links that stop a subnet in use from being deleted.
package network

import (
	"context"
	"net/netip"
	"strings"
	"time"
)

// ACIDelegation is the delegation container groups need on their subnet.
const ACIDelegation = "Microsoft.ContainerInstance/containerGroups"

// VirtualNetwork is a Microsoft.Network/virtualNetworks resource.
type VirtualNetwork struct {
	Subscription  string            `json:"subscription"`
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Location      string            `json:"location"`
	Tags          map[string]string `json:"tags,omitempty"`
	// AddressPrefixes is the address space (CIDR prefixes).
	AddressPrefixes []string `json:"addressPrefixes"`
	// DNSServers are the dhcpOptions' servers (stored and returned).
	DNSServers   []string  `json:"dnsServers,omitempty"`
	Subnets      []*Subnet `json:"subnets"`
	ResourceGUID string    `json:"resourceGuid"`
	Etag         string    `json:"etag"`
	CreatedAt    time.Time `json:"createdAt"`
}

// ID is the ARM resource id.
func (v *VirtualNetwork) ID() string {
	return "/subscriptions/" + v.Subscription + "/resourceGroups/" + v.ResourceGroup +
		"/providers/Microsoft.Network/virtualNetworks/" + v.Name
}

// Subnet returns the subnet with that name (case-insensitive), or nil.
func (v *VirtualNetwork) Subnet(name string) *Subnet {
	for _, s := range v.Subnets {
		if strings.EqualFold(s.Name, name) {
			return s
		}
	}
	return nil
}

// Subnet is a subnet of a virtual network.
type Subnet struct {
	Name string `json:"name"`
	// AddressPrefix is the subnet's CIDR prefix.
	AddressPrefix string `json:"addressPrefix"`
	// ListForm: the client sent addressPrefixes (a one-element list)
	// rather than addressPrefix; answers use the same form.
	ListForm    bool         `json:"listForm,omitempty"`
	Delegations []Delegation `json:"delegations,omitempty"`
	// Links are filled on reads: the container groups using the subnet
	// (their service association link), by ARM id.
	Links []string `json:"-"`
	// HoldsLink is filled on reads: the subnet holds ACI's service
	// association link (groups use it, or did and the link was not
	// deleted since).
	HoldsLink bool `json:"-"`
}

// Delegated reports whether the subnet is delegated to service.
func (s *Subnet) Delegated(service string) bool {
	for _, d := range s.Delegations {
		if strings.EqualFold(d.ServiceName, service) {
			return true
		}
	}
	return false
}

// Delegation hands a subnet to a service.
type Delegation struct {
	Name        string `json:"name"`
	ServiceName string `json:"serviceName"`
}

// Profile is a Microsoft.Network/networkProfiles resource as ACI uses it:
// container network interface configurations whose ip configurations name
// a subnet.
type Profile struct {
	Subscription   string            `json:"subscription"`
	ResourceGroup  string            `json:"resourceGroup"`
	Name           string            `json:"name"`
	Location       string            `json:"location"`
	Tags           map[string]string `json:"tags,omitempty"`
	Interfaces     []InterfaceConfig `json:"interfaces"`
	ResourceGUID   string            `json:"resourceGuid"`
	Etag           string            `json:"etag"`
	CreatedAt      time.Time         `json:"createdAt"`
	LinkedGroupIDs []string          `json:"-"`
}

// ID is the ARM resource id.
func (p *Profile) ID() string {
	return "/subscriptions/" + p.Subscription + "/resourceGroups/" + p.ResourceGroup +
		"/providers/Microsoft.Network/networkProfiles/" + p.Name
}

// InterfaceConfig is a containerNetworkInterfaceConfiguration.
type InterfaceConfig struct {
	Name      string     `json:"name"`
	IPConfigs []IPConfig `json:"ipConfigs"`
}

// IPConfig is an ip configuration profile naming a subnet by ARM id.
type IPConfig struct {
	Name     string `json:"name"`
	SubnetID string `json:"subnetId"`
}

// RuntimeNetwork is a subnet as the runtime makes it.
type RuntimeNetwork struct {
	// Name is what groups name in runtime.GroupSpec.Network: the subnet's
	// ARM id, lower case.
	Name string
	// Domain is the virtual network's ARM id, lower case: networks of one
	// domain reach each other, no others.
	Domain string
	Prefix netip.Prefix
}

// Runtime makes subnets into networks that groups join. It is implemented
// by the containerd runtime (adapted in the server package) and by Memory
// for tests.
type Runtime interface {
	// EnsureNetwork creates n or checks that it exists as given
	// (idempotent).
	EnsureNetwork(ctx context.Context, n RuntimeNetwork) error
	// RemoveNetwork removes network name; unknown names succeed. It fails
	// while groups are attached.
	RemoveNetwork(ctx context.Context, name string) error
	// Networks lists the networks made by EnsureNetwork.
	Networks(ctx context.Context) ([]RuntimeNetwork, error)
	// HostPrefixes lists the prefixes a network must not overlap (host
	// routes, the default group network, reserved ranges), leaving out the
	// runtime's own virtual networks.
	HostPrefixes(ctx context.Context) ([]netip.Prefix, error)
}
