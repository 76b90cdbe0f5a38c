package network

import (
	"strconv"

	"github.com/berth-dev/berth/internal/network"
)

// Wire shapes of Microsoft.Network (2018-… to 2025-…: the fields berth
// serves are the same in every version).

type subResource struct {
	ID string `json:"id"`
}

type delegationProps struct {
	ServiceName       string   `json:"serviceName"`
	Actions           []string `json:"actions"`
	ProvisioningState string   `json:"provisioningState"`
}

type delegation struct {
	ID         string          `json:"id,omitempty"`
	Name       string          `json:"name"`
	Etag       string          `json:"etag,omitempty"`
	Type       string          `json:"type,omitempty"`
	Properties delegationProps `json:"properties"`
}

type salProps struct {
	ProvisioningState  string   `json:"provisioningState"`
	LinkedResourceType string   `json:"linkedResourceType"`
	Link               string   `json:"link,omitempty"`
	AllowDelete        bool     `json:"allowDelete"`
	Locations          []string `json:"locations"`
}

type sal struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Etag       string   `json:"etag"`
	Type       string   `json:"type"`
	Properties salProps `json:"properties"`
}

type subnetProps struct {
	ProvisioningState                 string       `json:"provisioningState"`
	AddressPrefix                     string       `json:"addressPrefix,omitempty"`
	AddressPrefixes                   []string     `json:"addressPrefixes,omitempty"`
	Delegations                       []delegation `json:"delegations"`
	ServiceAssociationLinks           []sal        `json:"serviceAssociationLinks,omitempty"`
	PrivateEndpointNetworkPolicies    string       `json:"privateEndpointNetworkPolicies"`
	PrivateLinkServiceNetworkPolicies string       `json:"privateLinkServiceNetworkPolicies"`
}

type subnet struct {
	ID         string      `json:"id"`
	Name       string      `json:"name"`
	Etag       string      `json:"etag"`
	Type       string      `json:"type"`
	Properties subnetProps `json:"properties"`
}

type addressSpace struct {
	AddressPrefixes []string `json:"addressPrefixes"`
}

type dhcpOptions struct {
	DNSServers []string `json:"dnsServers"`
}

type vnetProps struct {
	ProvisioningState      string       `json:"provisioningState"`
	ResourceGUID           string       `json:"resourceGuid"`
	AddressSpace           addressSpace `json:"addressSpace"`
	DhcpOptions            *dhcpOptions `json:"dhcpOptions,omitempty"`
	Subnets                []subnet     `json:"subnets"`
	VirtualNetworkPeerings []any        `json:"virtualNetworkPeerings"`
	EnableDdosProtection   bool         `json:"enableDdosProtection"`
}

type vnet struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Etag       string            `json:"etag"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties vnetProps         `json:"properties"`
}

func toSubnet(v *network.VirtualNetwork, sn *network.Subnet) subnet {
	id := v.ID() + "/subnets/" + sn.Name
	p := subnetProps{ProvisioningState: "Succeeded", Delegations: []delegation{},
		PrivateEndpointNetworkPolicies: "Disabled", PrivateLinkServiceNetworkPolicies: "Enabled"}
	if sn.ListForm {
		p.AddressPrefixes = []string{sn.AddressPrefix}
	} else {
		p.AddressPrefix = sn.AddressPrefix
	}
	for _, d := range sn.Delegations {
		wd := delegation{ID: id + "/delegations/" + d.Name, Name: d.Name, Etag: v.Etag,
			Type:       "Microsoft.Network/virtualNetworks/subnets/delegations",
			Properties: delegationProps{ServiceName: d.ServiceName, Actions: []string{}, ProvisioningState: "Succeeded"}}
		if d.ServiceName == network.ACIDelegation {
			wd.Properties.Actions = []string{"Microsoft.Network/virtualNetworks/subnets/action"}
		}
		p.Delegations = append(p.Delegations, wd)
	}
	if sn.HoldsLink {
		p.ServiceAssociationLinks = []sal{{ID: id + "/serviceAssociationLinks/acisal", Name: "acisal", Etag: v.Etag,
			Type: "Microsoft.Network/virtualNetworks/subnets/serviceAssociationLinks",
			Properties: salProps{ProvisioningState: "Succeeded", LinkedResourceType: network.ACIDelegation,
				Locations: []string{v.Location}}}}
	}
	return subnet{ID: id, Name: sn.Name, Etag: v.Etag, Type: "Microsoft.Network/virtualNetworks/subnets", Properties: p}
}

func toVnet(v *network.VirtualNetwork) vnet {
	p := vnetProps{ProvisioningState: "Succeeded", ResourceGUID: v.ResourceGUID,
		AddressSpace: addressSpace{AddressPrefixes: append([]string{}, v.AddressPrefixes...)},
		Subnets:      []subnet{}, VirtualNetworkPeerings: []any{}}
	if len(v.DNSServers) > 0 {
		p.DhcpOptions = &dhcpOptions{DNSServers: v.DNSServers}
	}
	for _, sn := range v.Subnets {
		p.Subnets = append(p.Subnets, toSubnet(v, sn))
	}
	return vnet{ID: v.ID(), Name: v.Name, Type: "Microsoft.Network/virtualNetworks", Etag: v.Etag,
		Location: v.Location, Tags: v.Tags, Properties: p}
}

// Request bodies.

type subnetIn struct {
	Name       string `json:"name"`
	Properties *struct {
		AddressPrefix   string   `json:"addressPrefix"`
		AddressPrefixes []string `json:"addressPrefixes"`
		Delegations     []struct {
			Name       string `json:"name"`
			Properties *struct {
				ServiceName string `json:"serviceName"`
			} `json:"properties"`
			// Some clients (az's older code) send serviceName at the top.
			ServiceName string `json:"serviceName"`
		} `json:"delegations"`
	} `json:"properties"`
}

func (in *subnetIn) toDomain(name string) *network.Subnet {
	sn := &network.Subnet{Name: name}
	if in.Properties == nil {
		return sn
	}
	sn.AddressPrefix = in.Properties.AddressPrefix
	if sn.AddressPrefix == "" && len(in.Properties.AddressPrefixes) > 0 {
		sn.AddressPrefix, sn.ListForm = in.Properties.AddressPrefixes[0], true
		if len(in.Properties.AddressPrefixes) > 1 {
			sn.AddressPrefix = "" // refused below: berth gives a subnet one prefix
		}
	}
	for i, d := range in.Properties.Delegations {
		svc := d.ServiceName
		if d.Properties != nil && d.Properties.ServiceName != "" {
			svc = d.Properties.ServiceName
		}
		n := d.Name
		if n == "" {
			n = "delegation" + strconv.Itoa(i)
		}
		sn.Delegations = append(sn.Delegations, network.Delegation{Name: n, ServiceName: svc})
	}
	return sn
}

type vnetIn struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		AddressSpace *addressSpace `json:"addressSpace"`
		DhcpOptions  *dhcpOptions  `json:"dhcpOptions"`
		Subnets      []subnetIn    `json:"subnets"`
	} `json:"properties"`
}

type ipConfigIn struct {
	Name       string `json:"name"`
	Properties *struct {
		Subnet *subResource `json:"subnet"`
	} `json:"properties"`
}

type ifaceConfigIn struct {
	Name       string `json:"name"`
	Properties *struct {
		IPConfigurations []ipConfigIn `json:"ipConfigurations"`
	} `json:"properties"`
}

type profileIn struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		ContainerNetworkInterfaceConfigurations []ifaceConfigIn `json:"containerNetworkInterfaceConfigurations"`
	} `json:"properties"`
}

type ipConfigOut struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Etag       string `json:"etag"`
	Type       string `json:"type"`
	Properties struct {
		Subnet            subResource `json:"subnet"`
		ProvisioningState string      `json:"provisioningState"`
	} `json:"properties"`
}

type ifaceConfigOut struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Etag       string `json:"etag"`
	Type       string `json:"type"`
	Properties struct {
		IPConfigurations           []ipConfigOut `json:"ipConfigurations"`
		ContainerNetworkInterfaces []any         `json:"containerNetworkInterfaces"`
		ProvisioningState          string        `json:"provisioningState"`
	} `json:"properties"`
}

type profileOut struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Etag       string            `json:"etag"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties struct {
		ContainerNetworkInterfaceConfigurations []ifaceConfigOut `json:"containerNetworkInterfaceConfigurations"`
		ContainerNetworkInterfaces              []subResource    `json:"containerNetworkInterfaces"`
		ResourceGUID                            string           `json:"resourceGuid"`
		ProvisioningState                       string           `json:"provisioningState"`
	} `json:"properties"`
}

func toProfile(p *network.Profile) profileOut {
	out := profileOut{ID: p.ID(), Name: p.Name, Type: "Microsoft.Network/networkProfiles", Etag: p.Etag, Location: p.Location, Tags: p.Tags}
	out.Properties.ResourceGUID, out.Properties.ProvisioningState = p.ResourceGUID, "Succeeded"
	out.Properties.ContainerNetworkInterfaceConfigurations = []ifaceConfigOut{}
	out.Properties.ContainerNetworkInterfaces = []subResource{}
	for _, ic := range p.Interfaces {
		w := ifaceConfigOut{ID: p.ID() + "/containerNetworkInterfaceConfigurations/" + ic.Name, Name: ic.Name, Etag: p.Etag,
			Type: "Microsoft.Network/networkProfiles/containerNetworkInterfaceConfigurations"}
		w.Properties.ProvisioningState = "Succeeded"
		w.Properties.IPConfigurations = []ipConfigOut{}
		w.Properties.ContainerNetworkInterfaces = []any{}
		for _, ip := range ic.IPConfigs {
			o := ipConfigOut{ID: w.ID + "/ipConfigurations/" + ip.Name, Name: ip.Name, Etag: p.Etag,
				Type: "Microsoft.Network/networkProfiles/containerNetworkInterfaceConfigurations/ipConfigurations"}
			o.Properties.Subnet.ID, o.Properties.ProvisioningState = ip.SubnetID, "Succeeded"
			w.Properties.IPConfigurations = append(w.Properties.IPConfigurations, o)
		}
		out.Properties.ContainerNetworkInterfaceConfigurations = append(out.Properties.ContainerNetworkInterfaceConfigurations, w)
	}
	for _, g := range p.LinkedGroupIDs {
		out.Properties.ContainerNetworkInterfaces = append(out.Properties.ContainerNetworkInterfaces,
			subResource{ID: p.ID() + "/containerNetworkInterfaces/" + groupName(g)})
	}
	return out
}

func groupName(id string) string {
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '/' {
			return id[i+1:]
		}
	}
	return id
}
