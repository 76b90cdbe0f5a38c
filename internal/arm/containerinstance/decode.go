package containerinstance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
)

// Input shapes: the union of every api-version's PUT body. Pointers mark
// required properties so a missing one gets the error ACI's deserializer
// gives, with the JSON path. gate() drops what the request's version does
// not have before anything is checked, so such a property is ignored.

type putGroup struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Zones      []string          `json:"zones"`
	Identity   json.RawMessage   `json:"identity"`
	Properties *putProperties    `json:"properties"`
}

type putProperties struct {
	SKU                           string             `json:"sku"`
	Containers                    *[]putContainer    `json:"containers"`
	InitContainers                []putInitContainer `json:"initContainers"`
	ImageRegistryCredentials      []putRegistry      `json:"imageRegistryCredentials"`
	RestartPolicy                 string             `json:"restartPolicy"`
	IPAddress                     *putIPAddress      `json:"ipAddress"`
	OSType                        *string            `json:"osType"`
	Volumes                       []putVolume        `json:"volumes"`
	Diagnostics                   *putDiagnostics    `json:"diagnostics"`
	NetworkProfile                *putID             `json:"networkProfile"`
	SubnetIDs                     []putSubnet        `json:"subnetIds"`
	DNSConfig                     *putDNSConfig      `json:"dnsConfig"`
	EncryptionProperties          *putEncryption     `json:"encryptionProperties"`
	Extensions                    []putExtension     `json:"extensions"`
	ConfidentialComputeProperties *struct {
		CCEPolicy *string `json:"ccePolicy"`
	} `json:"confidentialComputeProperties"`
	Priority                     string          `json:"priority"`
	ProvisioningTimeoutInSeconds *int            `json:"provisioningTimeoutInSeconds"`
	ContainerGroupProfile        *putProfileRef  `json:"containerGroupProfile"`
	StandbyPoolProfile           *putStandbyPool `json:"standbyPoolProfile"`
	SecretReferences             json.RawMessage `json:"secretReferences"`
	IdentityAcls                 json.RawMessage `json:"identityAcls"`
}

type putContainer struct {
	Name       *string           `json:"name"`
	Properties *putContainerProp `json:"properties"`
}

type putContainerProp struct {
	Image                *string         `json:"image"`
	Command              []string        `json:"command"`
	Ports                []putPort       `json:"ports"`
	EnvironmentVariables []putEnv        `json:"environmentVariables"`
	Resources            *putResource    `json:"resources"`
	VolumeMounts         []putMount      `json:"volumeMounts"`
	LivenessProbe        *putProbe       `json:"livenessProbe"`
	ReadinessProbe       *putProbe       `json:"readinessProbe"`
	SecurityContext      *putSecurityCtx `json:"securityContext"`
	ConfigMap            *struct {
		KeyValuePairs map[string]string `json:"keyValuePairs"`
	} `json:"configMap"`
}

type putInitContainer struct {
	Name       *string `json:"name"`
	Properties *struct {
		Image                *string         `json:"image"`
		Command              []string        `json:"command"`
		EnvironmentVariables []putEnv        `json:"environmentVariables"`
		VolumeMounts         []putMount      `json:"volumeMounts"`
		SecurityContext      *putSecurityCtx `json:"securityContext"`
	} `json:"properties"`
}

type putPort struct {
	Protocol string `json:"protocol"`
	Port     *int   `json:"port"`
}

type putEnv struct {
	Name                 *string `json:"name"`
	Value                *string `json:"value"`
	SecureValue          *string `json:"secureValue"`
	SecureValueReference string  `json:"secureValueReference"`
}

type putResource struct {
	Requests *putCPUMemory `json:"requests"`
	Limits   *putCPUMemory `json:"limits"`
}

type putCPUMemory struct {
	MemoryInGB *float64 `json:"memoryInGB"`
	CPU        *float64 `json:"cpu"`
	GPU        *putGPU  `json:"gpu"`
}

type putGPU struct {
	Count *int    `json:"count"`
	SKU   *string `json:"sku"`
}

type putMount struct {
	Name      *string `json:"name"`
	MountPath *string `json:"mountPath"`
	ReadOnly  bool    `json:"readOnly"`
}

type putProbe struct {
	Exec *struct {
		Command []string `json:"command"`
	} `json:"exec"`
	HTTPGet *struct {
		Path        string `json:"path"`
		Port        *int   `json:"port"`
		Scheme      string `json:"scheme"`
		HTTPHeaders []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"httpHeaders"`
	} `json:"httpGet"`
	InitialDelaySeconds *int `json:"initialDelaySeconds"`
	PeriodSeconds       *int `json:"periodSeconds"`
	FailureThreshold    *int `json:"failureThreshold"`
	SuccessThreshold    *int `json:"successThreshold"`
	TimeoutSeconds      *int `json:"timeoutSeconds"`
}

type putSecurityCtx struct {
	Privileged               *bool `json:"privileged"`
	AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
	Capabilities             *struct {
		Add  []string `json:"add"`
		Drop []string `json:"drop"`
	} `json:"capabilities"`
	RunAsGroup     *int64 `json:"runAsGroup"`
	RunAsUser      *int64 `json:"runAsUser"`
	SeccompProfile string `json:"seccompProfile"`
}

type putRegistry struct {
	Server            *string `json:"server"`
	Username          *string `json:"username"`
	Password          string  `json:"password"`
	Identity          string  `json:"identity"`
	IdentityURL       string  `json:"identityUrl"`
	PasswordReference string  `json:"passwordReference"`
}

type putIPAddress struct {
	Ports                             *[]putPort `json:"ports"`
	Type                              *string    `json:"type"`
	DNSNameLabel                      string     `json:"dnsNameLabel"`
	AutoGeneratedDomainNameLabelScope string     `json:"autoGeneratedDomainNameLabelScope"`
}

type putVolume struct {
	Name      *string `json:"name"`
	AzureFile *struct {
		ShareName                   *string `json:"shareName"`
		ReadOnly                    bool    `json:"readOnly"`
		StorageAccountName          *string `json:"storageAccountName"`
		StorageAccountKey           string  `json:"storageAccountKey"`
		StorageAccountKeyReference  string  `json:"storageAccountKeyReference"`
		UserManagedIdentityClientID string  `json:"userManagedIdentityClientId"`
	} `json:"azureFile"`
	EmptyDir        json.RawMessage   `json:"emptyDir"`
	Secret          map[string]string `json:"secret"`
	SecretReference map[string]string `json:"secretReference"`
	GitRepo         *struct {
		Directory  string  `json:"directory"`
		Repository *string `json:"repository"`
		Revision   string  `json:"revision"`
	} `json:"gitRepo"`
}

type putDiagnostics struct {
	LogAnalytics *struct {
		WorkspaceID         *string           `json:"workspaceId"`
		WorkspaceKey        *string           `json:"workspaceKey"`
		LogType             string            `json:"logType"`
		Metadata            map[string]string `json:"metadata"`
		WorkspaceResourceID string            `json:"workspaceResourceId"`
	} `json:"logAnalytics"`
}

type putID struct {
	ID *string `json:"id"`
}

type putSubnet struct {
	ID   *string `json:"id"`
	Name string  `json:"name"`
}

type putDNSConfig struct {
	NameServers   *[]string `json:"nameServers"`
	SearchDomains string    `json:"searchDomains"`
	Options       string    `json:"options"`
}

type putEncryption struct {
	VaultBaseURL *string `json:"vaultBaseUrl"`
	KeyName      *string `json:"keyName"`
	KeyVersion   *string `json:"keyVersion"`
	Identity     string  `json:"identity"`
}

type putExtension struct {
	Name       *string `json:"name"`
	Properties *struct {
		ExtensionType     *string         `json:"extensionType"`
		Version           *string         `json:"version"`
		Settings          json.RawMessage `json:"settings"`
		ProtectedSettings json.RawMessage `json:"protectedSettings"`
	} `json:"properties"`
}

type putProfileRef struct {
	ID       string `json:"id"`
	Revision *int   `json:"revision"`
}

type putStandbyPool struct {
	ID                                     string `json:"id"`
	FailContainerGroupCreateOnReuseFailure *bool  `json:"failContainerGroupCreateOnReuseFailure"`
}

// defaultProvisioningTimeout is ACI's provisioning timeout (and its
// maximum): a group that asks for exactly this has not customised it.
const defaultProvisioningTimeout = 1800

// decodeGroup turns a PUT body of api-version apiVersion into a domain
// group (without subscription, resource group and name), answering ACI's
// deserializer errors and FeatureNotSupported for what berth refuses.
// Semantic rules are aci.Validate's.
func decodeGroup(body []byte, apiVersion string) (*aci.Group, error) {
	var in putGroup
	if err := arm.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	return toDomain(&in, apiVersion)
}

// gate drops every property the version's schema does not have.
func (in *putGroup) gate(f feature) {
	if !f.has(fZones) {
		in.Zones = nil
	}
	p := in.Properties
	if p == nil {
		return
	}
	if !f.has(fNetworkProfile) {
		p.NetworkProfile = nil
	}
	if !f.has(fSubnetIDs) {
		p.SubnetIDs = nil
	}
	if !f.has(fExtensions) {
		p.Extensions = nil
		if p.EncryptionProperties != nil {
			p.EncryptionProperties.Identity = ""
		}
	}
	if !f.has(fConfidential) {
		p.ConfidentialComputeProperties = nil
	}
	if !f.has(fPriority) {
		p.Priority = ""
	}
	if !f.has(fProvisioningTimeout) {
		p.ProvisioningTimeoutInSeconds = nil
	}
	if !f.has(fProfiles) {
		p.ContainerGroupProfile, p.StandbyPoolProfile = nil, nil
	}
	if !f.has(fSecretReferences) {
		p.SecretReferences = nil
	}
	if !f.has(fIdentityAcls) {
		p.IdentityAcls = nil
	}
	if ip := p.IPAddress; ip != nil && !f.has(fDNSReuseScope) {
		ip.AutoGeneratedDomainNameLabelScope = ""
	}
	for i := range p.ImageRegistryCredentials {
		rc := &p.ImageRegistryCredentials[i]
		if !f.has(fRegistryIdentity) {
			rc.Identity, rc.IdentityURL = "", ""
		}
		if !f.has(fSecretReferences) {
			rc.PasswordReference = ""
		}
	}
	for i := range p.Volumes {
		v := &p.Volumes[i]
		if !f.has(fSecretReferences) {
			v.SecretReference = nil
			if v.AzureFile != nil {
				v.AzureFile.StorageAccountKeyReference = ""
			}
		}
		if v.AzureFile != nil && !f.has(fAzureFileIdentity) {
			v.AzureFile.UserManagedIdentityClientID = ""
		}
	}
	gateEnv := func(env []putEnv) {
		if !f.has(fSecretReferences) {
			for i := range env {
				env[i].SecureValueReference = ""
			}
		}
	}
	if p.Containers != nil {
		for _, c := range *p.Containers {
			if cp := c.Properties; cp != nil {
				if !f.has(fSecurityContext) {
					cp.SecurityContext = nil
				}
				if !f.has(fProfiles) {
					cp.ConfigMap = nil
				}
				gateEnv(cp.EnvironmentVariables)
			}
		}
	}
	for _, c := range p.InitContainers {
		if cp := c.Properties; cp != nil {
			if !f.has(fInitSecurityContext) {
				cp.SecurityContext = nil
			}
			gateEnv(cp.EnvironmentVariables)
		}
	}
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

// decoder accumulates the first error while building the group, so the
// translation reads straight through.
type decoder struct {
	f   feature
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) enum(v, def, typ, path string, allowed ...string) string {
	s, ok := enum(v, def, allowed...)
	if !ok {
		d.fail(badEnum(v, typ, path))
	}
	return s
}

// toDomain turns a PUT body into a domain group, checking what the
// version's schema marks required and its enums.
func toDomain(in *putGroup, apiVersion string) (*aci.Group, error) {
	f := featuresOf(apiVersion)
	in.gate(f)
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
	profiled := p.ContainerGroupProfile != nil && p.ContainerGroupProfile.ID != ""
	// With fRelaxedRequired the schema lets a containerGroupProfile supply
	// osType, images and resources; without a profile they are required
	// all the same.
	relaxed := f.has(fRelaxedRequired) && profiled
	if p.OSType == nil && !relaxed {
		return nil, missing("osType", "properties")
	}
	d := &decoder{f: f}
	g := &aci.Group{Location: *in.Location, Tags: in.Tags, Zones: in.Zones}
	if p.OSType != nil {
		g.OSType = d.enum(*p.OSType, "", "OperatingSystemTypes", "properties.osType", "Linux", "Windows")
	}
	// A profile-based group leaves restart policy and SKU unset when not
	// given: the profile fills them (aci applies ACI's defaults after).
	defRestart, defSKU := "Always", "Standard"
	if relaxed {
		defRestart, defSKU = "", ""
	}
	g.RestartPolicy = d.enum(p.RestartPolicy, defRestart, "ContainerGroupRestartPolicy", "properties.restartPolicy", "Always", "OnFailure", "Never")
	skus := []string{"Standard", "Dedicated"}
	if f.has(fConfidential) {
		skus = append(skus, "Confidential")
	}
	if f.has(fIdentityAcls) {
		skus = append(skus, "NotSpecified")
	}
	if g.SKU = d.enum(p.SKU, defSKU, "ContainerGroupSku", "properties.sku", skus...); g.SKU == "NotSpecified" {
		g.SKU = defSKU
	}
	// An unknown priority is kept as given: aci.Validate answers it with
	// ACI's PriorityNotSpecified, which names the group.
	if s, ok := enum(p.Priority, "", "Regular", "Spot"); ok {
		g.Priority = s
	} else {
		g.Priority = p.Priority
	}
	if t := p.ProvisioningTimeoutInSeconds; t != nil && *t != defaultProvisioningTimeout {
		g.ProvisioningTimeoutSeconds, g.IsCustomProvisioningTimeout = *t, true
	}

	for i, c := range *p.Containers {
		g.Containers = append(g.Containers, d.container(c, fmt.Sprintf("properties.containers[%d]", i), relaxed))
	}
	for i, c := range p.InitContainers {
		g.InitContainers = append(g.InitContainers, d.initContainer(c, fmt.Sprintf("properties.initContainers[%d]", i)))
	}
	for i, rc := range p.ImageRegistryCredentials {
		path := fmt.Sprintf("properties.imageRegistryCredentials[%d]", i)
		if rc.Server == nil {
			d.fail(missing("server", path))
			continue
		}
		if rc.Username == nil && f.has(fRegistryUsernameRequired) {
			d.fail(missing("username", path))
		}
		cred := aci.RegistryCredential{Server: *rc.Server, Password: rc.Password, Identity: rc.Identity,
			IdentityURL: rc.IdentityURL, PasswordReference: rc.PasswordReference}
		if rc.Username != nil {
			cred.Username = *rc.Username
		}
		g.RegistryCredentials = append(g.RegistryCredentials, cred)
	}
	if ip := p.IPAddress; ip != nil {
		g.IPAddress = d.ipAddress(ip)
	}
	for i, v := range p.Volumes {
		g.Volumes = append(g.Volumes, d.volume(v, fmt.Sprintf("properties.volumes[%d]", i)))
	}
	if dg := p.Diagnostics; dg != nil && dg.LogAnalytics != nil {
		la := dg.LogAnalytics
		const path = "properties.diagnostics.logAnalytics"
		switch {
		case la.WorkspaceID == nil:
			d.fail(missing("workspaceId", path))
		case la.WorkspaceKey == nil:
			d.fail(missing("workspaceKey", path))
		default:
			g.Diagnostics = &aci.Diagnostics{LogAnalytics: &aci.LogAnalytics{
				WorkspaceID: *la.WorkspaceID, WorkspaceKey: *la.WorkspaceKey, Metadata: la.Metadata,
				WorkspaceResourceID: la.WorkspaceResourceID,
				LogType:             d.enum(la.LogType, "", "LogAnalyticsLogType", path+".logType", "ContainerInsights", "ContainerInstanceLogs"),
			}}
		}
	}
	if np := p.NetworkProfile; np != nil {
		if np.ID == nil {
			d.fail(missing("id", "properties.networkProfile"))
		} else {
			g.NetworkProfileID = *np.ID
		}
	}
	for i, s := range p.SubnetIDs {
		if s.ID == nil {
			d.fail(missing("id", fmt.Sprintf("properties.subnetIds[%d]", i)))
			continue
		}
		g.SubnetIDs = append(g.SubnetIDs, aci.SubnetID{ID: *s.ID, Name: s.Name})
	}
	if dc := p.DNSConfig; dc != nil {
		if dc.NameServers == nil {
			d.fail(missing("nameServers", "properties.dnsConfig"))
		} else {
			g.DNSConfig = &aci.DNSConfig{NameServers: *dc.NameServers, SearchDomains: dc.SearchDomains, Options: dc.Options}
		}
	}
	if ep := p.EncryptionProperties; ep != nil {
		const path = "properties.encryptionProperties"
		switch {
		case ep.VaultBaseURL == nil:
			d.fail(missing("vaultBaseUrl", path))
		case ep.KeyName == nil && !f.has(fKeyNameOptional):
			d.fail(missing("keyName", path))
		case ep.KeyVersion == nil:
			d.fail(missing("keyVersion", path))
		default:
			e := &aci.EncryptionProperties{VaultBaseURL: *ep.VaultBaseURL, KeyVersion: *ep.KeyVersion, Identity: ep.Identity}
			if ep.KeyName != nil {
				e.KeyName = *ep.KeyName
			}
			g.EncryptionProperties = e
		}
	}
	for i, x := range p.Extensions {
		path := fmt.Sprintf("properties.extensions[%d]", i)
		switch {
		case x.Name == nil:
			d.fail(missing("name", path))
		case x.Properties == nil:
			d.fail(missing("properties", path))
		case x.Properties.ExtensionType == nil:
			d.fail(missing("extensionType", path+".properties"))
		case x.Properties.Version == nil:
			d.fail(missing("version", path+".properties"))
		default:
			g.Extensions = append(g.Extensions, aci.Extension{Name: *x.Name, ExtensionType: *x.Properties.ExtensionType,
				Version: *x.Properties.Version, Settings: jsonValue(x.Properties.Settings), ProtectedSettings: jsonValue(x.Properties.ProtectedSettings)})
		}
	}
	if cc := p.ConfidentialComputeProperties; cc != nil && cc.CCEPolicy != nil {
		policy := *cc.CCEPolicy
		g.CCEPolicy = &policy
	}
	if pr := p.ContainerGroupProfile; profiled {
		g.Profile = &aci.ProfileRef{ID: pr.ID, Revision: pr.Revision}
	}
	if sp := p.StandbyPoolProfile; sp != nil && sp.ID != "" {
		g.StandbyPoolProfile = &aci.StandbyPoolRef{ID: sp.ID, FailContainerGroupCreateOnReuseFailure: sp.FailContainerGroupCreateOnReuseFailure}
	}
	if v := jsonValue(p.IdentityAcls); v != nil {
		g.Opaque = map[string]json.RawMessage{"identityAcls": v}
	}
	if d.err != nil {
		return nil, d.err
	}
	if err := checkUnsupported(in, g); err != nil {
		return nil, err
	}
	return g, nil
}

// nonEmpty returns s, or nil when it is empty (an empty command is no
// command).
func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// jsonValue returns v in canonical form (compact, object keys sorted,
// numbers as written), or nil when it is absent or null: free-form JSON
// that berth stores and returns (extension settings, identityAcls) then
// compares equal however a client orders it.
func jsonValue(v json.RawMessage) json.RawMessage {
	if t := strings.TrimSpace(string(v)); t == "" || t == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if dec.Decode(&x) != nil {
		return v // already checked by the main decoder; keep as given
	}
	b, err := json.Marshal(x)
	if err != nil {
		return v
	}
	return b
}

func (d *decoder) container(c putContainer, path string, relaxed bool) aci.Container {
	if c.Name == nil {
		d.fail(missing("name", path))
		return aci.Container{}
	}
	if c.Properties == nil {
		d.fail(missing("properties", path))
		return aci.Container{}
	}
	cp := c.Properties
	path += ".properties"
	dc := aci.Container{Name: *c.Name, Command: nonEmpty(cp.Command)}
	if cp.Image != nil {
		dc.Image = *cp.Image
	} else if !relaxed {
		d.fail(missing("image", path))
	}
	if cp.Resources == nil {
		if !relaxed {
			d.fail(missing("resources", path))
		}
	} else if rq := cp.Resources.Requests; rq == nil {
		d.fail(missing("requests", path+".resources"))
	} else {
		rpath := path + ".resources.requests"
		switch {
		case rq.CPU == nil:
			d.fail(missing("cpu", rpath))
		case rq.MemoryInGB == nil:
			d.fail(missing("memoryInGB", rpath))
		default:
			dc.Requests = aci.Resources{CPU: *rq.CPU, MemoryGB: *rq.MemoryInGB, GPU: d.gpu(rq.GPU, rpath+".gpu")}
		}
		if l := cp.Resources.Limits; l != nil {
			// A limit not given is the request (ACI's default).
			dc.Limits = &aci.Resources{CPU: dc.Requests.CPU, MemoryGB: dc.Requests.MemoryGB, GPU: d.gpu(l.GPU, path+".resources.limits.gpu")}
			if l.CPU != nil {
				dc.Limits.CPU = *l.CPU
			}
			if l.MemoryInGB != nil {
				dc.Limits.MemoryGB = *l.MemoryInGB
			}
		}
	}
	for j, pp := range cp.Ports {
		ppath := fmt.Sprintf("%s.ports[%d]", path, j)
		if pp.Port == nil {
			d.fail(missing("port", ppath))
			continue
		}
		dc.Ports = append(dc.Ports, aci.Port{Port: *pp.Port,
			Protocol: d.enum(pp.Protocol, "", "ContainerNetworkProtocol", ppath+".protocol", "TCP", "UDP")})
	}
	dc.Env = d.env(cp.EnvironmentVariables, path)
	dc.VolumeMounts = d.mounts(cp.VolumeMounts, path)
	dc.LivenessProbe = d.probe(cp.LivenessProbe, path+".livenessProbe")
	dc.ReadinessProbe = d.probe(cp.ReadinessProbe, path+".readinessProbe")
	dc.SecurityContext = securityContextOf(cp.SecurityContext)
	if cm := cp.ConfigMap; cm != nil && len(cm.KeyValuePairs) > 0 {
		dc.ConfigMap = cm.KeyValuePairs
	}
	return dc
}

func (d *decoder) initContainer(c putInitContainer, path string) aci.Container {
	if c.Name == nil {
		d.fail(missing("name", path))
		return aci.Container{}
	}
	if c.Properties == nil {
		d.fail(missing("properties", path))
		return aci.Container{}
	}
	cp := c.Properties
	path += ".properties"
	dc := aci.Container{Name: *c.Name, Command: nonEmpty(cp.Command)}
	if cp.Image != nil {
		dc.Image = *cp.Image
	}
	dc.Env = d.env(cp.EnvironmentVariables, path)
	dc.VolumeMounts = d.mounts(cp.VolumeMounts, path)
	dc.SecurityContext = securityContextOf(cp.SecurityContext)
	return dc
}

func (d *decoder) gpu(in *putGPU, path string) *aci.GPU {
	if in == nil {
		return nil
	}
	if in.Count == nil {
		d.fail(missing("count", path))
		return nil
	}
	if in.SKU == nil {
		d.fail(missing("sku", path))
		return nil
	}
	return &aci.GPU{Count: *in.Count, SKU: d.enum(*in.SKU, "", "GpuSku", path+".sku", "K80", "P100", "V100")}
}

func (d *decoder) env(in []putEnv, path string) []aci.EnvVar {
	var out []aci.EnvVar
	for j, e := range in {
		if e.Name == nil {
			d.fail(missing("name", fmt.Sprintf("%s.environmentVariables[%d]", path, j)))
			continue
		}
		ev := aci.EnvVar{Name: *e.Name, SecureValueReference: e.SecureValueReference}
		switch {
		case e.SecureValue != nil:
			ev.Value, ev.Secure = *e.SecureValue, true
		case e.SecureValueReference != "":
			ev.Secure = true
		case e.Value != nil:
			ev.Value = *e.Value
		}
		out = append(out, ev)
	}
	return out
}

func (d *decoder) mounts(in []putMount, path string) []aci.VolumeMount {
	var out []aci.VolumeMount
	for j, m := range in {
		mpath := fmt.Sprintf("%s.volumeMounts[%d]", path, j)
		switch {
		case m.Name == nil:
			d.fail(missing("name", mpath))
		case m.MountPath == nil:
			d.fail(missing("mountPath", mpath))
		default:
			out = append(out, aci.VolumeMount{Name: *m.Name, MountPath: *m.MountPath, ReadOnly: m.ReadOnly})
		}
	}
	return out
}

func (d *decoder) probe(in *putProbe, path string) *aci.Probe {
	if in == nil {
		return nil
	}
	p := &aci.Probe{InitialDelaySeconds: in.InitialDelaySeconds, PeriodSeconds: in.PeriodSeconds,
		FailureThreshold: in.FailureThreshold, SuccessThreshold: in.SuccessThreshold, TimeoutSeconds: in.TimeoutSeconds}
	if in.Exec != nil {
		p.Exec = append([]string{}, in.Exec.Command...) // non-nil: exec was given
	}
	if h := in.HTTPGet; h != nil {
		if h.Port == nil {
			d.fail(missing("port", path+".httpGet"))
			return nil
		}
		p.HTTPGet = &aci.HTTPGet{Path: h.Path, Port: *h.Port,
			Scheme: d.enum(h.Scheme, "", "Scheme", path+".httpGet.scheme", "http", "https")}
		for _, hh := range h.HTTPHeaders {
			p.HTTPGet.Headers = append(p.HTTPGet.Headers, aci.HTTPHeader{Name: hh.Name, Value: hh.Value})
		}
	}
	return p
}

func securityContextOf(in *putSecurityCtx) *aci.SecurityContext {
	if in == nil {
		return nil
	}
	sc := &aci.SecurityContext{Privileged: in.Privileged, AllowPrivilegeEscalation: in.AllowPrivilegeEscalation,
		RunAsGroup: in.RunAsGroup, RunAsUser: in.RunAsUser, SeccompProfile: in.SeccompProfile}
	if c := in.Capabilities; c != nil {
		sc.HasCapabilities, sc.CapabilitiesAdd, sc.CapabilitiesDrop = true, c.Add, c.Drop
	}
	return sc
}

func (d *decoder) ipAddress(ip *putIPAddress) *aci.IPAddress {
	const path = "properties.ipAddress"
	if ip.Ports == nil {
		d.fail(missing("ports", path))
		return nil
	}
	if ip.Type == nil {
		d.fail(missing("type", path))
		return nil
	}
	dip := &aci.IPAddress{
		Type:         d.enum(*ip.Type, "", "ContainerGroupIpAddressType", path+".type", "Public", "Private"),
		DNSNameLabel: ip.DNSNameLabel,
		// Every version's service default; stored explicitly so a GET
		// (which shows it) PUT back changes nothing.
		AutoGeneratedDomainNameLabelScope: d.enum(ip.AutoGeneratedDomainNameLabelScope, "Unsecure", "DnsNameLabelReusePolicy",
			path+".autoGeneratedDomainNameLabelScope", "Unsecure", "TenantReuse", "SubscriptionReuse", "ResourceGroupReuse", "Noreuse"),
	}
	dip.Ports = []aci.Port{}
	for j, pp := range *ip.Ports {
		ppath := fmt.Sprintf("%s.ports[%d]", path, j)
		if pp.Port == nil {
			d.fail(missing("port", ppath))
			continue
		}
		dip.Ports = append(dip.Ports, aci.Port{Port: *pp.Port,
			Protocol: d.enum(pp.Protocol, "TCP", "ContainerGroupNetworkProtocol", ppath+".protocol", "TCP", "UDP")})
	}
	return dip
}

func (d *decoder) volume(v putVolume, path string) aci.Volume {
	if v.Name == nil {
		d.fail(missing("name", path))
		return aci.Volume{}
	}
	dv := aci.Volume{Name: *v.Name, Secret: v.Secret, SecretReference: v.SecretReference}
	if jsonValue(v.EmptyDir) != nil {
		dv.EmptyDir = true
	}
	if af := v.AzureFile; af != nil {
		switch {
		case af.ShareName == nil:
			d.fail(missing("shareName", path+".azureFile"))
		case af.StorageAccountName == nil:
			d.fail(missing("storageAccountName", path+".azureFile"))
		default:
			dv.AzureFile = &aci.AzureFile{ShareName: *af.ShareName, StorageAccountName: *af.StorageAccountName,
				StorageAccountKey: af.StorageAccountKey, StorageAccountKeyReference: af.StorageAccountKeyReference,
				ReadOnly: af.ReadOnly, UserManagedIdentityClientID: af.UserManagedIdentityClientID}
		}
	}
	if gr := v.GitRepo; gr != nil {
		if gr.Repository == nil {
			d.fail(missing("repository", path+".gitRepo"))
		} else {
			dv.GitRepo = &aci.GitRepo{Repository: *gr.Repository, Directory: gr.Directory, Revision: gr.Revision}
		}
	}
	return dv
}
