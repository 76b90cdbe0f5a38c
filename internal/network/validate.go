package network

import (
	"net/netip"
	"regexp"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
)

// Azure's naming rules: a letter or digit first, then letters, digits,
// '_', '.', '-', ending with a letter, digit or '_'.
var (
	vnetName   = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9_])?$`)
	subnetName = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,78}[a-zA-Z0-9_])?$`)
)

func checkName(rule *regexp.Regexp, name string, max int) error {
	if !rule.MatchString(name) {
		return apierr.New(apierr.Invalid, "InvalidResourceName",
			"Resource name %s is invalid. The name can be up to %d characters long. Valid characters include alphanumeric, underscore, period, and hyphen. The name must begin with a letter or number and end with a letter, number or underscore.", name, max)
	}
	return nil
}

// parsePrefix parses a CIDR prefix of resource id, with Azure's errors.
func parsePrefix(s, id string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, apierr.New(apierr.Invalid, "InvalidAddressPrefixFormat",
			"Address prefix %s of resource %s is not formatted correctly. It should follow CIDR notation, for example 10.0.0.0/24.", s, id)
	}
	if p != p.Masked() {
		return netip.Prefix{}, apierr.New(apierr.Invalid, "InvalidCIDRNotation",
			"The address prefix %s in resource %s has an invalid CIDR notation. For the given prefix length, the address prefix should be %s.", s, id, p.Masked())
	}
	return p, nil
}

// validateVnet checks v on its own (names, prefixes, subnets inside the
// address space and apart from each other) and returns the subnets'
// parsed prefixes by lower-case name.
func validateVnet(v *VirtualNetwork) (map[string]netip.Prefix, error) {
	if err := checkName(vnetName, v.Name, 64); err != nil {
		return nil, err
	}
	if strings.TrimSpace(v.Location) == "" {
		return nil, apierr.New(apierr.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	var space []netip.Prefix
	for _, s := range v.AddressPrefixes {
		p, err := parsePrefix(s, v.ID())
		if err != nil {
			return nil, err
		}
		space = append(space, p)
	}
	for i, a := range space {
		for _, b := range space[i+1:] {
			if a.Overlaps(b) {
				return nil, apierr.New(apierr.Invalid, "VnetAddressSpacesOverlap",
					"Cannot create or update virtual network %s. The address space %s overlaps with the address space %s.", v.Name, a, b)
			}
		}
	}
	out := map[string]netip.Prefix{}
	for _, s := range v.Subnets {
		id := v.ID() + "/subnets/" + s.Name
		if err := checkName(subnetName, s.Name, 80); err != nil {
			return nil, err
		}
		if _, dup := out[strings.ToLower(s.Name)]; dup {
			return nil, apierr.New(apierr.Invalid, "DuplicateResourceName",
				"Virtual network %s has two subnets with the same name %s.", v.Name, s.Name)
		}
		if strings.TrimSpace(s.AddressPrefix) == "" {
			return nil, apierr.New(apierr.Invalid, "NetcfgInvalidSubnet",
				"Subnet '%s' is not valid in virtual network '%s': it has no address prefix.", s.Name, v.Name)
		}
		p, err := parsePrefix(s.AddressPrefix, id)
		if err != nil {
			return nil, err
		}
		if !p.Addr().Is4() {
			return nil, apierr.New(apierr.Invalid, "NetcfgInvalidSubnet",
				"Subnet '%s' is not valid in virtual network '%s': berth runs IPv4 subnets only.", s.Name, v.Name)
		}
		if p.Bits() > 29 {
			return nil, apierr.New(apierr.Invalid, "NetcfgInvalidSubnet",
				"Subnet '%s' is not valid in virtual network '%s': the smallest supported subnet is /29.", s.Name, v.Name)
		}
		inside := false
		for _, a := range space {
			if a.Bits() <= p.Bits() && a.Contains(p.Addr()) {
				inside = true
			}
		}
		if !inside {
			return nil, apierr.New(apierr.Invalid, "NetcfgSubnetRangeOutsideVnet",
				"Subnet '%s' is not valid because its IP address range is outside the IP address range of virtual network '%s'.", s.Name, v.Name)
		}
		for name, q := range out {
			if q.Overlaps(p) {
				return nil, apierr.New(apierr.Invalid, "NetcfgSubnetRangesOverlap",
					"Subnet '%s' is not valid because its IP address range overlaps with that of an existing subnet (%s) in virtual network '%s'.", s.Name, v.Subnet(name).Name, v.Name)
			}
		}
		for _, d := range s.Delegations {
			svc := strings.Split(d.ServiceName, "/")
			if len(svc) != 2 || svc[0] == "" || svc[1] == "" {
				return nil, apierr.New(apierr.Invalid, "InvalidServiceNameOnDelegation",
					"Delegation %s of subnet %s has an invalid service name '%s'. It should look like 'Microsoft.ContainerInstance/containerGroups'.", d.Name, id, d.ServiceName)
			}
		}
		out[strings.ToLower(s.Name)] = p
	}
	return out, nil
}
