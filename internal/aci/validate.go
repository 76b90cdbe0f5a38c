package aci

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
)

// Validation of a container group: every rule of aci.md §4 with ACI's
// codes and messages. Messages marked "verified" are ACI's own (from
// real-service output quoted in public issues and Microsoft's support
// articles); the others are unverified, written in ACI's style. The wire
// layer has already checked required properties and enums (ACI's
// deserializer errors); Validate runs before anything is written, so a
// refused request changes nothing.

// Limits of one container group (ACI, Linux; standard, spot and
// confidential SKUs alike).
const (
	maxContainers = 60
	maxVolumes    = 20
	maxIPPorts    = 5 // ports per IP address (DOCS quota limits)
	maxGroupCPU   = 4
	maxGroupMemGB = 16
	// MaxProvisioningTimeout is ACI's (and the default) provisioning
	// timeout in seconds.
	MaxProvisioningTimeout = 1800
)

// gpuLimits are the group maxima with GPUs, by SKU and count (DOCS
// container-instances-gpu): CPU cores and memory in GB.
var gpuLimits = map[string]map[int][2]float64{
	"K80":  {1: {6, 56}, 2: {12, 112}, 4: {24, 224}},
	"P100": {1: {6, 112}, 2: {12, 224}, 4: {24, 448}},
	"V100": {1: {6, 112}, 2: {12, 224}, 4: {24, 448}},
}

var (
	groupName     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	containerName = groupName
	volumeName    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{3,61}[a-z0-9])$`)
	envName       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	dnsLabel      = regexp.MustCompile(`^[a-z][a-z0-9-]{3,61}[a-z0-9]$`)
)

func invalid(code, format string, args ...any) *apierr.Error {
	return apierr.New(apierr.Invalid, code, format, args...)
}

// ValidateName checks ACI's container-group naming rule: 1-63 lowercase
// letters, digits and hyphens, not starting or ending with a hyphen, no
// two hyphens in a row. (Code widely reported; message unverified.)
func ValidateName(name string) error {
	if !groupName.MatchString(name) || strings.Contains(name, "--") {
		return invalid("InvalidContainerGroupName",
			"The container group name '%s' is invalid. A container group name must contain no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').", name)
	}
	return nil
}

// Validate checks a group's semantics. A group that references a
// containerGroupProfile must have been merged with it first.
func Validate(g *Group) error {
	for _, check := range []func(*Group) error{
		validateGroup, validateVolumes, validateContainers, validateResources,
		validateNetwork, validatePriority, validateExtras, checkIdentity,
	} {
		if err := check(g); err != nil {
			return err
		}
	}
	return nil
}

func validateGroup(g *Group) error {
	if err := ValidateName(g.Name); err != nil {
		return err
	}
	if strings.TrimSpace(g.Location) == "" {
		return invalid("LocationRequired", "The location property is required for this definition.")
	}
	switch {
	case g.OSType == "":
		// Reachable when a 2024-05-01-preview+ create (where osType is
		// optional) has neither it nor a profile supplying it; ACI's
		// message, as az users report it (Azure/azure-cli#30496).
		return invalid("InvalidOsType", "The 'osType' for container group '<null>' is invalid. The value must be one of 'Windows,Linux'.")
	case strings.EqualFold(g.OSType, "Windows"):
		return invalid("OsTypeNotSupported",
			"The requested OS type 'Windows' is not supported in location '%s'. This host runs Linux containers only.", g.Location)
	}
	if g.IsCustomProvisioningTimeout && (g.ProvisioningTimeoutSeconds < 1 || g.ProvisioningTimeoutSeconds > MaxProvisioningTimeout) {
		// Unverified; the limit is the schema's ("the allowed maximum value is 1800 seconds").
		return invalid("InvalidProvisioningTimeout",
			"The provisioning timeout '%d' of container group '%s' is invalid. It must be between 1 and %d seconds.", g.ProvisioningTimeoutSeconds, g.Name, MaxProvisioningTimeout)
	}
	return nil
}

func validateContainers(g *Group) error {
	if len(g.Containers) == 0 {
		return invalid("NoContainersInContainerGroup", "The container group '%s' must contain at least one container.", g.Name)
	}
	if len(g.Containers) > maxContainers {
		return invalid("TooManyContainersInContainerGroup", "The number of containers in container group '%s' exceeds the limit of %d.", g.Name, maxContainers)
	}
	// Verified (docker/compose-cli#2150).
	if len(g.RegistryCredentials) > len(g.Containers) {
		return invalid("MoreImageRegistryCredentialsThanContainers", "More image registry credentials provided than containers in container group '%s'.", g.Name)
	}
	for _, rc := range g.RegistryCredentials {
		if strings.TrimSpace(rc.Server) == "" || strings.ContainsAny(rc.Server, "/ ") {
			return invalid("InvalidImageRegistryServer", "The image registry server '%s' of container group '%s' is invalid.", rc.Server, g.Name)
		}
	}
	seen := map[string]bool{}
	for _, c := range g.Containers {
		if err := validateContainer(g, c, seen, false); err != nil {
			return err
		}
	}
	for _, c := range g.InitContainers {
		if err := validateContainer(g, c, seen, true); err != nil {
			return err
		}
	}
	return nil
}

// validateContainer checks one container or init container; seen holds
// the names so far (init containers' names are unique against the
// containers' too).
func validateContainer(g *Group, c Container, seen map[string]bool, init bool) error {
	kind := "container"
	if init {
		kind = "init container"
	}
	if !containerName.MatchString(c.Name) || strings.Contains(c.Name, "--") {
		return invalid("InvalidContainerName",
			"The %s name '%s' in container group '%s' is invalid. A container name must contain no more than 63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').", kind, c.Name, g.Name)
	}
	if seen[c.Name] {
		return invalid("DuplicateContainerName", "Duplicate container name '%s' in container group '%s'.", c.Name, g.Name)
	}
	seen[c.Name] = true
	if strings.TrimSpace(c.Image) == "" || strings.ContainsAny(c.Image, " \t\n") {
		return invalid("InvalidImageName", "The image name '%s' of %s '%s' in container group '%s' is invalid.", c.Image, kind, c.Name, g.Name)
	}
	envSeen := map[string]bool{}
	for _, e := range c.Env {
		if len(e.Name) > 63 || !envName.MatchString(e.Name) {
			// Verified (ACI's own message, including its double spaces).
			return invalid("InvalidContainerEnvironmentVariable",
				"The environment variable name in container '%s' of container group '%s' is invalid. A valid environment variable name must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName').", c.Name, g.Name)
		}
		if envSeen[e.Name] {
			return invalid("DuplicateEnvironmentVariables",
				"Duplicate environment variable '%s' in container '%s' of container group '%s'.", e.Name, c.Name, g.Name)
		}
		envSeen[e.Name] = true
	}
	if !init {
		if c.Requests.CPU == 0 && c.Requests.MemoryGB == 0 {
			// ACI's message (Azure/azure-cli#30439), typo included.
			return invalid("ResourceRequestsNotSpecified",
				"The resource requests are not specified in container '%s' of contain group '%s'. Both memory and CPU requests are required since API version '2017-07-01-preview'.", c.Name, g.Name)
		}
		if c.Requests.CPU <= 0 || c.Requests.MemoryGB <= 0 {
			return invalid("InvalidContainerResourceRequests",
				"The resource requests of container '%s' in container group '%s' are invalid: cpu and memoryInGB must be greater than 0.", c.Name, g.Name)
		}
		if l := c.Limits; l != nil && (l.CPU < c.Requests.CPU || l.MemoryGB < c.Requests.MemoryGB ||
			(c.Requests.GPU != nil && l.GPU != nil && l.GPU.Count < c.Requests.GPU.Count)) {
			return invalid("InvalidContainerResourceLimits",
				"The resource limits of container '%s' in container group '%s' must be greater than or equal to its resource requests.", c.Name, g.Name)
		}
		for _, p := range c.Ports {
			if err := validPort(g.Name, p); err != nil {
				return err
			}
		}
		for _, probe := range []struct {
			name string
			p    *Probe
		}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}} {
			if err := validateProbe(g, c, probe.name, probe.p); err != nil {
				return err
			}
		}
	}
	if err := validateMounts(g, c); err != nil {
		return err
	}
	return validateSecurityContext(g, c)
}

func validateMounts(g *Group, c Container) error {
	vols := map[string]bool{}
	for _, v := range g.Volumes {
		vols[v.Name] = true
	}
	paths := map[string]bool{}
	for _, m := range c.VolumeMounts {
		if !vols[m.Name] {
			return invalid("InvalidVolumeMount",
				"The volume mount '%s' of container '%s' in container group '%s' does not refer to a volume of the container group.", m.Name, c.Name, g.Name)
		}
		if strings.TrimSpace(m.MountPath) == "" || strings.Contains(m.MountPath, ":") {
			return invalid("InvalidVolumeMountPath",
				"The mount path '%s' of volume mount '%s' in container '%s' of container group '%s' is invalid. The volume mount path cannot be empty or contain ':'.", m.MountPath, m.Name, c.Name, g.Name)
		}
		if paths[m.MountPath] {
			return invalid("DuplicateVolumeMountPath",
				"The mount path '%s' is used by more than one volume mount of container '%s' in container group '%s'.", m.MountPath, c.Name, g.Name)
		}
		paths[m.MountPath] = true
	}
	return nil
}

func validateProbe(g *Group, c Container, name string, p *Probe) error {
	if p == nil {
		return nil
	}
	bad := func(why string) error {
		return invalid("InvalidContainerProbe", "The %s of container '%s' in container group '%s' is invalid: %s.", name, c.Name, g.Name, why)
	}
	switch {
	case (p.Exec != nil) == (p.HTTPGet != nil):
		return bad("exactly one of 'exec' and 'httpGet' must be specified")
	case p.Exec != nil && len(p.Exec) == 0:
		return bad("'exec.command' must not be empty")
	case p.HTTPGet != nil && (p.HTTPGet.Port < 1 || p.HTTPGet.Port > 65535):
		return bad(fmt.Sprintf("the port '%d' must be between 1 and 65535", p.HTTPGet.Port))
	}
	for _, t := range []struct {
		name string
		v    *int
		min  int
	}{{"initialDelaySeconds", p.InitialDelaySeconds, 0}, {"periodSeconds", p.PeriodSeconds, 1},
		{"failureThreshold", p.FailureThreshold, 1}, {"successThreshold", p.SuccessThreshold, 1}, {"timeoutSeconds", p.TimeoutSeconds, 1}} {
		if t.v != nil && *t.v < t.min {
			return bad(fmt.Sprintf("'%s' must be at least %d", t.name, t.min))
		}
	}
	return nil
}

// linuxCapabilities are the capability names securityContext accepts,
// with or without the CAP_ prefix (ACI's own example adds CAP_NET_ADMIN).
var linuxCapabilities = map[string]bool{}

func init() {
	for _, c := range strings.Fields(`CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
		LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO
		SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD
		LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ
		PERFMON BPF CHECKPOINT_RESTORE ALL`) {
		linuxCapabilities[c] = true
	}
}

func validateSecurityContext(g *Group, c Container) error {
	sc := c.SecurityContext
	if sc == nil {
		return nil
	}
	if sc.Privileged != nil && *sc.Privileged && !strings.EqualFold(g.SKU, "Confidential") {
		// Unverified: ACI documents securityContext privileged for the
		// Confidential SKU only.
		return invalid("PrivilegedContainerNotSupported",
			"Privileged containers are not supported for container '%s' in container group '%s' with sku '%s'.", c.Name, g.Name, g.SKU)
	}
	for _, cp := range append(append([]string(nil), sc.CapabilitiesAdd...), sc.CapabilitiesDrop...) {
		if !linuxCapabilities[strings.TrimPrefix(strings.ToUpper(cp), "CAP_")] {
			return invalid("InvalidSecurityContextCapability",
				"The capability '%s' in the security context of container '%s' in container group '%s' is invalid.", cp, c.Name, g.Name)
		}
	}
	if (sc.RunAsUser != nil && *sc.RunAsUser < 0) || (sc.RunAsGroup != nil && *sc.RunAsGroup < 0) {
		return invalid("InvalidSecurityContext",
			"The security context of container '%s' in container group '%s' is invalid: 'runAsUser' and 'runAsGroup' must not be negative.", c.Name, g.Name)
	}
	if sc.SeccompProfile != "" {
		b, err := base64.StdEncoding.DecodeString(sc.SeccompProfile)
		if err != nil || !json.Valid(b) {
			return invalid("InvalidSecurityContext",
				"The seccomp profile of container '%s' in container group '%s' is invalid: it must be a base64 encoded JSON seccomp profile.", c.Name, g.Name)
		}
	}
	return nil
}

func validateResources(g *Group) error {
	var cpu, mem float64
	gpuSKU, gpuCount := "", 0
	for _, c := range g.Containers {
		cpu += c.Requests.CPU
		mem += c.Requests.MemoryGB
		for _, r := range []*Resources{&c.Requests, c.Limits} {
			if r == nil || r.GPU == nil {
				continue
			}
			if _, ok := gpuLimits[r.GPU.SKU]; !ok {
				return invalid("InvalidGpuSku", "The GPU sku '%s' of container '%s' in container group '%s' is invalid. Supported values are 'K80', 'P100' and 'V100'.", r.GPU.SKU, c.Name, g.Name)
			}
			if r.GPU.Count < 1 || gpuLimits[r.GPU.SKU][r.GPU.Count] == [2]float64{} {
				return invalid("InvalidGpuCount", "The GPU count '%d' of container '%s' in container group '%s' is invalid. Supported values are 1, 2 and 4.", r.GPU.Count, c.Name, g.Name)
			}
			if gpuSKU != "" && gpuSKU != r.GPU.SKU {
				return invalid("MultipleGpuSkusNotSupported", "The containers of container group '%s' request more than one GPU sku ('%s' and '%s').", g.Name, gpuSKU, r.GPU.SKU)
			}
			gpuSKU = r.GPU.SKU
		}
		if c.Requests.GPU != nil {
			gpuCount += c.Requests.GPU.Count
		}
	}
	maxCPU, maxMem := float64(maxGroupCPU), float64(maxGroupMemGB)
	if gpuSKU != "" {
		lim, ok := gpuLimits[gpuSKU][gpuCount]
		if !ok {
			return invalid("InvalidGpuCount", "The total GPU count '%d' of container group '%s' is invalid. Supported values are 1, 2 and 4.", gpuCount, g.Name)
		}
		maxCPU, maxMem = lim[0], lim[1]
		if strings.EqualFold(g.SKU, "Confidential") {
			return invalid("GpuNotSupportedInConfidentialSku", "GPU resources are not supported for container group '%s' with sku 'Confidential'.", g.Name)
		}
	}
	if cpu > maxCPU || mem > maxMem {
		return invalid("ResourceRequestsNotAvailable",
			"The requested resource with '%g' CPU and '%g' GB memory is not available in the location '%s'. The maximum per container group is '%g' CPU and '%g' GB memory.", cpu, mem, g.Location, maxCPU, maxMem)
	}
	for _, c := range g.Containers {
		if l := c.Limits; l != nil && (l.CPU > maxCPU || l.MemoryGB > maxMem) {
			return invalid("InvalidContainerResourceLimits",
				"The resource limits of container '%s' in container group '%s' exceed the maximum per container group of '%g' CPU and '%g' GB memory.", c.Name, g.Name, maxCPU, maxMem)
		}
	}
	return nil
}

func validPort(group string, p Port) error {
	if p.Port < 1 || p.Port > 65535 {
		return invalid("InvalidPort", "The port '%d' in container group '%s' is invalid. Ports must be between 1 and 65535.", p.Port, group)
	}
	if p.Protocol != "" && !strings.EqualFold(p.Protocol, "TCP") && !strings.EqualFold(p.Protocol, "UDP") {
		return invalid("InvalidProtocol", "The protocol '%s' in container group '%s' is invalid. Supported values are 'TCP' and 'UDP'.", p.Protocol, group)
	}
	return nil
}

func validateNetwork(g *Group) error {
	inVNet := g.NetworkProfileID != "" || len(g.SubnetIDs) > 0
	for _, s := range g.SubnetIDs {
		if strings.TrimSpace(s.ID) == "" {
			return invalid("InvalidSubnetId", "The subnet id of container group '%s' must not be empty.", g.Name)
		}
	}
	if g.NetworkProfileID != "" && len(g.SubnetIDs) > 0 {
		return invalid("InvalidNetworkConfiguration", "The container group '%s' cannot have both a network profile and subnet ids.", g.Name)
	}
	ip := g.IPAddress
	if ip == nil {
		return nil
	}
	if !strings.EqualFold(ip.Type, "Public") && !strings.EqualFold(ip.Type, "Private") {
		return invalid("InvalidIpAddressType", "The IP address type '%s' of container group '%s' is invalid. Supported values are 'Public' and 'Private'.", ip.Type, g.Name)
	}
	if len(ip.Ports) == 0 {
		// Verified.
		return invalid("MissingIpAddressPorts", "The ports in the 'ipAddress' of container group '%s' cannot be empty.", g.Name)
	}
	if inVNet && strings.EqualFold(ip.Type, "Public") {
		// Verified (also for subnetIds).
		return invalid("InvalidIpAddressTypeForNetworkProfile", "IP Address type can't be public when network profile is set.")
	}
	if len(ip.Ports) > maxIPPorts {
		return invalid("TooManyIpAddressPorts", "The number of ports in the 'ipAddress' of container group '%s' exceeds the limit of %d.", g.Name, maxIPPorts)
	}
	exposed := map[Port]bool{}
	for _, c := range g.Containers {
		for _, p := range c.Ports {
			exposed[Port{Port: p.Port, Protocol: canonProto(p.Protocol)}] = true
		}
	}
	seen := map[Port]bool{}
	for _, p := range ip.Ports {
		if err := validPort(g.Name, p); err != nil {
			return err
		}
		k := Port{Port: p.Port, Protocol: canonProto(p.Protocol)}
		if seen[k] {
			return invalid("DuplicateIpAddressPorts", "The port '%d' (%s) appears more than once in the 'ipAddress' of container group '%s'.", p.Port, k.Protocol, g.Name)
		}
		seen[k] = true
		if !exposed[k] {
			return invalid("InvalidContainerGroupIpAddressPort",
				"The ports in the 'ipAddress' of container group '%s' must be exposed by at least one container. Port '%d' is not.", g.Name, p.Port)
		}
	}
	if ip.DNSNameLabel != "" && !dnsLabel.MatchString(ip.DNSNameLabel) {
		// Message verified; code unverified.
		return invalid("InvalidDnsNameLabel",
			"The DNS name label '%s' is invalid. It can contain only lowercase letters, numbers and hyphens. The first character must be a letter. The last character must be a letter or number. The value must be between 5 and 63 characters long.", ip.DNSNameLabel)
	}
	return nil
}

// canonProto is a port's protocol with ACI's default (TCP).
func canonProto(p string) string {
	if strings.EqualFold(p, "UDP") {
		return "UDP"
	}
	return "TCP"
}

func validateVolumes(g *Group) error {
	if len(g.Volumes) > maxVolumes {
		return invalid("TooManyVolumesInContainerGroup", "The number of volumes in container group '%s' exceeds the limit of %d.", g.Name, maxVolumes)
	}
	seen := map[string]bool{}
	for _, v := range g.Volumes {
		if !volumeName.MatchString(v.Name) || strings.Contains(v.Name, "--") {
			return invalid("InvalidVolumeName",
				"The volume name '%s' in container group '%s' is invalid. A volume name must be 5 to 63 characters of lowercase letters, numbers and hyphens, and must not start or end with a hyphen or contain '--'.", v.Name, g.Name)
		}
		if seen[v.Name] {
			return invalid("DuplicateVolumeName", "Duplicate volume name '%s' in container group '%s'.", v.Name, g.Name)
		}
		seen[v.Name] = true
		kinds := 0
		for _, set := range []bool{v.AzureFile != nil, v.EmptyDir, v.Secret != nil, v.GitRepo != nil, v.SecretReference != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			return invalid("InvalidVolume",
				"The volume '%s' in container group '%s' is invalid. Exactly one of 'azureFile', 'emptyDir', 'gitRepo', 'secret' must be specified.", v.Name, g.Name)
		}
		switch {
		case v.AzureFile != nil:
			if strings.TrimSpace(v.AzureFile.ShareName) == "" || strings.TrimSpace(v.AzureFile.StorageAccountName) == "" {
				return invalid("InvalidAzureFileVolume", "The azure file volume '%s' in container group '%s' must have a share name and a storage account name.", v.Name, g.Name)
			}
		case v.Secret != nil:
			if len(v.Secret) == 0 {
				return invalid("InvalidSecretVolume", "The secret volume '%s' in container group '%s' must have at least one secret.", v.Name, g.Name)
			}
			for k, val := range v.Secret {
				if k == "" || strings.ContainsAny(k, "/\\") || k == "." || k == ".." {
					return invalid("InvalidSecretVolume", "The secret key '%s' of secret volume '%s' in container group '%s' is not a valid file name.", k, v.Name, g.Name)
				}
				if _, err := base64.StdEncoding.DecodeString(val); err != nil {
					return invalid("InvalidSecretVolume", "The value of secret '%s' of secret volume '%s' in container group '%s' is not valid base64.", k, v.Name, g.Name)
				}
			}
		case v.GitRepo != nil:
			gr := v.GitRepo
			if strings.TrimSpace(gr.Repository) == "" {
				return invalid("InvalidGitRepoVolume", "The git repo volume '%s' in container group '%s' must have a repository.", v.Name, g.Name)
			}
			// The schema: "Must not contain or start with '..'".
			if strings.Contains(gr.Directory, "..") || strings.HasPrefix(gr.Directory, "/") {
				return invalid("InvalidGitRepoVolume", "The directory '%s' of git repo volume '%s' in container group '%s' must be relative and must not contain '..'.", gr.Directory, v.Name, g.Name)
			}
		}
	}
	return nil
}

func validatePriority(g *Group) error {
	switch g.Priority {
	case "", "Regular":
		return nil
	case "Spot":
	default:
		// Verified.
		return invalid("PriorityNotSpecified", "The 'Priority' must be one of 'Regular,Spot' for container group '%s'.", g.Name)
	}
	// Verified messages (SupportArticles: error-codes-spot-container-creation).
	if g.IPAddress != nil || g.NetworkProfileID != "" || len(g.SubnetIDs) > 0 {
		return invalid("SpotPriorityContainerGroupNotSupportedForInboundConnectivity", "Spot Priority is not supported for container groups with inbound connectivity.")
	}
	if g.SKU != "" && !strings.EqualFold(g.SKU, "Standard") {
		return invalid("SpotPriorityContainerGroupNotSupportedInSku", "Spot Priority Container Group is not supported in '%s' Sku.", g.SKU)
	}
	for _, c := range g.Containers {
		if c.Requests.GPU != nil || (c.Limits != nil && c.Limits.GPU != nil) {
			return invalid("SpotPriorityContainerGroupWithGPUResourcesNotSupported", "Spot Priority Container Groups that include containers requesting GPU resources are not supported.")
		}
	}
	return nil
}

// validateExtras checks dnsConfig, diagnostics, encryption, extensions and
// the confidential compute policy.
func validateExtras(g *Group) error {
	if dc := g.DNSConfig; dc != nil {
		if len(dc.NameServers) == 0 {
			return invalid("InvalidDnsConfiguration", "The 'nameServers' of the DNS configuration of container group '%s' cannot be empty.", g.Name)
		}
		for _, ns := range dc.NameServers {
			if net.ParseIP(ns) == nil {
				return invalid("InvalidDnsConfiguration", "The name server '%s' in the DNS configuration of container group '%s' is not a valid IP address.", ns, g.Name)
			}
		}
	}
	if d := g.Diagnostics; d != nil && d.LogAnalytics != nil {
		if strings.TrimSpace(d.LogAnalytics.WorkspaceID) == "" || strings.TrimSpace(d.LogAnalytics.WorkspaceKey) == "" {
			return invalid("InvalidLogAnalytics", "The log analytics 'workspaceId' and 'workspaceKey' of container group '%s' cannot be empty.", g.Name)
		}
	}
	if e := g.EncryptionProperties; e != nil {
		if strings.TrimSpace(e.VaultBaseURL) == "" || strings.TrimSpace(e.KeyVersion) == "" {
			return invalid("InvalidEncryptionProperties", "The encryption properties 'vaultBaseUrl', 'keyName' and 'keyVersion' of container group '%s' cannot be empty.", g.Name)
		}
	}
	names := map[string]bool{}
	for _, x := range g.Extensions {
		if strings.TrimSpace(x.Name) == "" || strings.TrimSpace(x.ExtensionType) == "" || strings.TrimSpace(x.Version) == "" {
			return invalid("InvalidExtension", "The extensions of container group '%s' must each have a name, an extension type and a version.", g.Name)
		}
		if names[x.Name] {
			return invalid("DuplicateExtensionName", "Duplicate extension name '%s' in container group '%s'.", x.Name, g.Name)
		}
		names[x.Name] = true
	}
	if g.CCEPolicy != nil && *g.CCEPolicy != "" {
		if _, err := base64.StdEncoding.DecodeString(*g.CCEPolicy); err != nil {
			// Message verified (SupportArticles: common-confidential-container-errors); code unverified.
			return invalid("InvalidCcePolicy", "The CCE Policy is not valid Base64.")
		}
	}
	return nil
}
