package containerinstance

import (
	"fmt"
	"strings"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
)

// Input shapes: pointers mark required properties so a missing one gets the
// error ACI's deserializer gives, with the JSON path.

type putGroup struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Zones      []string          `json:"zones"`
	Properties *putProperties    `json:"properties"`
}

type putProperties struct {
	SKU                      string          `json:"sku"`
	Containers               *[]putContainer `json:"containers"`
	ImageRegistryCredentials []putRegistry   `json:"imageRegistryCredentials"`
	RestartPolicy            string          `json:"restartPolicy"`
	IPAddress                *putIPAddress   `json:"ipAddress"`
	OSType                   *string         `json:"osType"`
	Priority                 string          `json:"priority"`
}

type putContainer struct {
	Name       *string           `json:"name"`
	Properties *putContainerProp `json:"properties"`
}

type putContainerProp struct {
	Image                *string      `json:"image"`
	Command              []string     `json:"command"`
	Ports                []putPort    `json:"ports"`
	EnvironmentVariables []putEnv     `json:"environmentVariables"`
	Resources            *putResource `json:"resources"`
}

type putPort struct {
	Protocol string `json:"protocol"`
	Port     *int   `json:"port"`
}

type putEnv struct {
	Name        *string `json:"name"`
	Value       *string `json:"value"`
	SecureValue *string `json:"secureValue"`
}

type putResource struct {
	Requests *putCPUMemory `json:"requests"`
	Limits   *putCPUMemory `json:"limits"`
}

type putCPUMemory struct {
	MemoryInGB *float64 `json:"memoryInGB"`
	CPU        *float64 `json:"cpu"`
}

type putRegistry struct {
	Server   *string `json:"server"`
	Username *string `json:"username"`
	Password string  `json:"password"`
}

type putIPAddress struct {
	Ports        *[]putPort `json:"ports"`
	Type         *string    `json:"type"`
	DNSNameLabel string     `json:"dnsNameLabel"`
}

func missing(prop, path string) error {
	return apierr.New(apierr.Invalid, "InvalidRequestContent",
		"The request content was invalid and could not be deserialized: 'Required property '%s' not found in JSON. Path '%s'.'", prop, path)
}

func badEnum(value, typ, path string) error {
	return apierr.New(apierr.Invalid, "InvalidRequestContent",
		"The request content was invalid and could not be deserialized: 'Error converting value \"%s\" to type 'Microsoft.Azure.CloudConsole.Providers.Common.Entities.Resources.%s'. Path '%s'.'", value, typ, path)
}

// enum returns the canonical spelling of v among allowed (matched
// case-insensitively, as ACI's deserializer does), or def when v is empty.
func enum(v, def string, allowed ...string) (string, bool) {
	if v == "" {
		return def, true
	}
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			return a, true
		}
	}
	return "", false
}

// toDomain turns a PUT body into a domain group, checking what the spec
// marks required. apiVersion decides version-specific rules.
func toDomain(in *putGroup, apiVersion string) (*aci.Group, error) {
	if in.Location == nil {
		return nil, missing("location", "")
	}
	if in.Properties == nil {
		return nil, missing("properties", "")
	}
	p := in.Properties
	if p.Containers == nil {
		return nil, missing("containers", "properties")
	}
	if p.OSType == nil {
		return nil, missing("osType", "properties")
	}
	g := &aci.Group{Location: *in.Location, Tags: in.Tags, Zones: in.Zones}
	var ok bool
	if g.OSType, ok = enum(*p.OSType, "", "Linux", "Windows"); !ok {
		return nil, badEnum(*p.OSType, "OperatingSystemTypes", "properties.osType")
	}
	if g.RestartPolicy, ok = enum(p.RestartPolicy, "Always", "Always", "OnFailure", "Never"); !ok {
		return nil, badEnum(p.RestartPolicy, "ContainerGroupRestartPolicy", "properties.restartPolicy")
	}
	if g.SKU, ok = enum(p.SKU, "Standard", "Standard", "Dedicated", "Confidential"); !ok {
		return nil, badEnum(p.SKU, "ContainerGroupSku", "properties.sku")
	}
	if p.Priority != "" {
		if g.Priority, ok = enum(p.Priority, "", "Regular", "Spot"); !ok {
			return nil, apierr.New(apierr.Invalid, "PriorityNotSpecified", "The 'Priority' must be one of 'Regular,Spot' for container group.")
		}
	}
	for i, c := range *p.Containers {
		path := fmt.Sprintf("properties.containers[%d]", i)
		if c.Name == nil {
			return nil, missing("name", path)
		}
		if c.Properties == nil {
			return nil, missing("properties", path)
		}
		cp := c.Properties
		path += ".properties"
		if cp.Image == nil {
			return nil, missing("image", path)
		}
		if cp.Resources == nil {
			return nil, missing("resources", path)
		}
		if cp.Resources.Requests == nil {
			return nil, missing("requests", path+".resources")
		}
		rq := cp.Resources.Requests
		if rq.CPU == nil {
			return nil, missing("cpu", path+".resources.requests")
		}
		if rq.MemoryInGB == nil {
			return nil, missing("memoryInGB", path+".resources.requests")
		}
		dc := aci.Container{Name: *c.Name, Image: *cp.Image, Command: cp.Command,
			Requests: aci.Resources{CPU: *rq.CPU, MemoryGB: *rq.MemoryInGB}}
		if l := cp.Resources.Limits; l != nil {
			dc.Limits = &aci.Resources{CPU: dc.Requests.CPU, MemoryGB: dc.Requests.MemoryGB}
			if l.CPU != nil {
				dc.Limits.CPU = *l.CPU
			}
			if l.MemoryInGB != nil {
				dc.Limits.MemoryGB = *l.MemoryInGB
			}
		}
		for j, pp := range cp.Ports {
			if pp.Port == nil {
				return nil, missing("port", fmt.Sprintf("%s.ports[%d]", path, j))
			}
			proto, ok := enum(pp.Protocol, "", "TCP", "UDP")
			if !ok {
				return nil, badEnum(pp.Protocol, "ContainerNetworkProtocol", fmt.Sprintf("%s.ports[%d].protocol", path, j))
			}
			dc.Ports = append(dc.Ports, aci.Port{Port: *pp.Port, Protocol: proto})
		}
		for j, e := range cp.EnvironmentVariables {
			if e.Name == nil {
				return nil, missing("name", fmt.Sprintf("%s.environmentVariables[%d]", path, j))
			}
			ev := aci.EnvVar{Name: *e.Name}
			switch {
			case e.SecureValue != nil:
				ev.Value, ev.Secure = *e.SecureValue, true
			case e.Value != nil:
				ev.Value = *e.Value
			}
			dc.Env = append(dc.Env, ev)
		}
		g.Containers = append(g.Containers, dc)
	}
	for i, rc := range p.ImageRegistryCredentials {
		path := fmt.Sprintf("properties.imageRegistryCredentials[%d]", i)
		if rc.Server == nil {
			return nil, missing("server", path)
		}
		if rc.Username == nil && apiVersion < "2023-05-01" {
			return nil, missing("username", path)
		}
		cred := aci.RegistryCredential{Server: *rc.Server, Password: rc.Password}
		if rc.Username != nil {
			cred.Username = *rc.Username
		}
		g.RegistryCredentials = append(g.RegistryCredentials, cred)
	}
	if ip := p.IPAddress; ip != nil {
		if ip.Ports == nil {
			return nil, missing("ports", "properties.ipAddress")
		}
		if ip.Type == nil {
			return nil, missing("type", "properties.ipAddress")
		}
		typ, ok := enum(*ip.Type, "", "Public", "Private")
		if !ok {
			return nil, badEnum(*ip.Type, "ContainerGroupIpAddressType", "properties.ipAddress.type")
		}
		dip := &aci.IPAddress{Type: typ, DNSNameLabel: ip.DNSNameLabel}
		for j, pp := range *ip.Ports {
			if pp.Port == nil {
				return nil, missing("port", fmt.Sprintf("properties.ipAddress.ports[%d]", j))
			}
			proto, ok := enum(pp.Protocol, "TCP", "TCP", "UDP")
			if !ok {
				return nil, badEnum(pp.Protocol, "ContainerGroupNetworkProtocol", fmt.Sprintf("properties.ipAddress.ports[%d].protocol", j))
			}
			dip.Ports = append(dip.Ports, aci.Port{Port: *pp.Port, Protocol: proto})
		}
		g.IPAddress = dip
	}
	return g, nil
}
