package aci

import (
	"regexp"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
)

// Limits of one container group (ACI standard SKU, Linux).
const (
	maxContainers = 60
	maxGroupCPU   = 4
	maxGroupMemGB = 16
)

var (
	groupName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envName   = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9_])?$`)
	dnsLabel  = regexp.MustCompile(`^[a-z][a-z0-9-]{3,61}[a-z0-9]$`)
)

// ValidateName checks ACI's container-group naming rule: 1-63 lowercase
// letters, digits and hyphens, not starting or ending with a hyphen, no
// two hyphens in a row.
func ValidateName(name string) error {
	if !groupName.MatchString(name) || strings.Contains(name, "--") {
		return apierr.New(apierr.Invalid, "InvalidContainerGroupName",
			"The container group name '%s' is invalid. A container group name must contain no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').", name)
	}
	return nil
}

func validateContainerName(group, name string) error {
	if !groupName.MatchString(name) || strings.Contains(name, "--") {
		return apierr.New(apierr.Invalid, "InvalidContainerName",
			"The container name '%s' in container group '%s' is invalid. A container name must contain no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').", name, group)
	}
	return nil
}

// Validate checks a group's semantics (the wire layer has already checked
// that required properties are present and enums parse).
func Validate(g *Group) error {
	if err := ValidateName(g.Name); err != nil {
		return err
	}
	if strings.TrimSpace(g.Location) == "" {
		return apierr.New(apierr.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	if strings.EqualFold(g.OSType, "Windows") {
		return apierr.New(apierr.Invalid, "OsTypeNotSupported",
			"The requested OS type 'Windows' is not supported in location '%s'. This host runs Linux containers only.", g.Location)
	}
	if len(g.Containers) == 0 {
		return apierr.New(apierr.Invalid, "NoContainersInContainerGroup", "The container group '%s' must contain at least one container.", g.Name)
	}
	if len(g.Containers) > maxContainers {
		return apierr.New(apierr.Invalid, "TooManyContainersInContainerGroup", "The number of containers in container group '%s' exceeds the limit of %d.", g.Name, maxContainers)
	}
	if len(g.RegistryCredentials) > len(g.Containers) {
		return apierr.New(apierr.Invalid, "MoreImageRegistryCredentialsThanContainers", "More image registry credentials provided than containers in container group '%s'.", g.Name)
	}
	seen := map[string]bool{}
	var cpu, mem float64
	containerPorts := map[int]bool{}
	for _, c := range g.Containers {
		if err := validateContainerName(g.Name, c.Name); err != nil {
			return err
		}
		if seen[c.Name] {
			return apierr.New(apierr.Invalid, "DuplicateContainerName", "Duplicate container name '%s' in container group '%s'.", c.Name, g.Name)
		}
		seen[c.Name] = true
		if strings.TrimSpace(c.Image) == "" || strings.ContainsAny(c.Image, " \t\n") {
			return apierr.New(apierr.Invalid, "InvalidImageName", "The image name '%s' of container '%s' in container group '%s' is invalid.", c.Image, c.Name, g.Name)
		}
		if c.Requests.CPU <= 0 || c.Requests.MemoryGB <= 0 {
			return apierr.New(apierr.Invalid, "InvalidContainerResourceRequests",
				"The resource requests of container '%s' in container group '%s' are invalid: cpu and memoryInGB must be greater than 0.", c.Name, g.Name)
		}
		if c.Limits != nil && (c.Limits.CPU < c.Requests.CPU || c.Limits.MemoryGB < c.Requests.MemoryGB) {
			return apierr.New(apierr.Invalid, "InvalidContainerResourceLimits",
				"The resource limits of container '%s' in container group '%s' must be greater than or equal to its resource requests.", c.Name, g.Name)
		}
		cpu += c.Requests.CPU
		mem += c.Requests.MemoryGB
		envSeen := map[string]bool{}
		for _, e := range c.Env {
			if !envName.MatchString(e.Name) {
				return apierr.New(apierr.Invalid, "InvalidEnvironmentVariableName",
					"The environment variable name '%s' of container '%s' in container group '%s' is invalid.", e.Name, c.Name, g.Name)
			}
			if envSeen[e.Name] {
				return apierr.New(apierr.Invalid, "DuplicateEnvironmentVariables",
					"Duplicate environment variable '%s' in container '%s' of container group '%s'.", e.Name, c.Name, g.Name)
			}
			envSeen[e.Name] = true
		}
		for _, p := range c.Ports {
			if err := validPort(g.Name, p); err != nil {
				return err
			}
			containerPorts[p.Port] = true
		}
	}
	if cpu > maxGroupCPU || mem > maxGroupMemGB {
		return apierr.New(apierr.Invalid, "ResourceRequestsNotAvailable",
			"The requested resource with '%g' CPU and '%g' GB memory is not available in the location '%s'. The maximum per container group is '%d' CPU and '%d' GB memory.", cpu, mem, g.Location, maxGroupCPU, maxGroupMemGB)
	}
	if ip := g.IPAddress; ip != nil {
		if !strings.EqualFold(ip.Type, "Public") && !strings.EqualFold(ip.Type, "Private") {
			return apierr.New(apierr.Invalid, "InvalidIpAddressType", "The IP address type '%s' of container group '%s' is invalid. Supported values are 'Public' and 'Private'.", ip.Type, g.Name)
		}
		if len(ip.Ports) == 0 {
			return apierr.New(apierr.Invalid, "IpAddressPortsRequired", "The IP address of container group '%s' must have at least one port.", g.Name)
		}
		for _, p := range ip.Ports {
			if err := validPort(g.Name, p); err != nil {
				return err
			}
			if !containerPorts[p.Port] {
				return apierr.New(apierr.Invalid, "InvalidContainerGroupIpAddressPort",
					"The ports in the 'ipAddress' of container group '%s' must be exposed by at least one container. Port '%d' is not.", g.Name, p.Port)
			}
		}
		if ip.DNSNameLabel != "" && !dnsLabel.MatchString(ip.DNSNameLabel) {
			return apierr.New(apierr.Invalid, "InvalidDnsNameLabel",
				"The DNS name label '%s' is invalid. It can contain only lowercase letters, numbers and hyphens. The first character must be a letter. The last character must be a letter or number. The value must be between 5 and 63 characters long.", ip.DNSNameLabel)
		}
	}
	for _, rc := range g.RegistryCredentials {
		if strings.TrimSpace(rc.Server) == "" || strings.ContainsAny(rc.Server, "/ ") {
			return apierr.New(apierr.Invalid, "InvalidImageRegistryServer", "The image registry server '%s' of container group '%s' is invalid.", rc.Server, g.Name)
		}
	}
	return nil
}

func validPort(group string, p Port) error {
	if p.Port < 1 || p.Port > 65535 {
		return apierr.New(apierr.Invalid, "InvalidPort", "The port '%d' in container group '%s' is invalid. Ports must be between 1 and 65535.", p.Port, group)
	}
	if p.Protocol != "" && !strings.EqualFold(p.Protocol, "TCP") && !strings.EqualFold(p.Protocol, "UDP") {
		return apierr.New(apierr.Invalid, "InvalidProtocol", "The protocol '%s' in container group '%s' is invalid. Supported values are 'TCP' and 'UDP'.", p.Protocol, group)
	}
	return nil
}
