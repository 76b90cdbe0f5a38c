// Package aci is the container-group service behind
// Microsoft.ContainerInstance: it validates groups, stores them, drives the
// runtime to run them, folds what the runtime reports (its event stream and
// live status) into ACI's instanceView, and reconciles running groups when
// berth starts. It knows nothing of HTTP or JSON wire shapes (see
// arm/containerinstance for those).
package aci

import (
	"encoding/json"
	"time"
)

// Group is a container group as berth stores it: its spec (what the user
// asked for, as of the last PUT) and berth's bookkeeping. Live state (the
// instanceView) is not stored here; see View.
type Group struct {
	Subscription  string            `json:"subscription"`
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Location      string            `json:"location"`
	Tags          map[string]string `json:"tags,omitempty"`
	Zones         []string          `json:"zones,omitempty"`
	// Identity is the group's managed identities; nil: none.
	Identity *Identity `json:"identity,omitempty"`

	SKU                 string               `json:"sku,omitempty"`
	OSType              string               `json:"osType"`
	RestartPolicy       string               `json:"restartPolicy"`
	Priority            string               `json:"priority,omitempty"`
	Containers          []Container          `json:"containers"`
	InitContainers      []Container          `json:"initContainers,omitempty"`
	Volumes             []Volume             `json:"volumes,omitempty"`
	IPAddress           *IPAddress           `json:"ipAddress,omitempty"`
	RegistryCredentials []RegistryCredential `json:"imageRegistryCredentials,omitempty"`
	DNSConfig           *DNSConfig           `json:"dnsConfig,omitempty"`
	Diagnostics         *Diagnostics         `json:"diagnostics,omitempty"`
	// SubnetIDs (2021-07-01 on) or NetworkProfileID (2021-03-01) place the
	// group in a virtual network.
	SubnetIDs        []SubnetID `json:"subnetIds,omitempty"`
	NetworkProfileID string     `json:"networkProfileId,omitempty"`
	// Extensions are stored and returned (protected settings never are);
	// berth runs none of them.
	Extensions           []Extension           `json:"extensions,omitempty"`
	EncryptionProperties *EncryptionProperties `json:"encryptionProperties,omitempty"`
	// CCEPolicy is confidentialComputeProperties.ccePolicy (SKU
	// Confidential); stored, not enforced: no TEE here.
	CCEPolicy *string `json:"ccePolicy,omitempty"`
	// ProvisioningTimeoutSeconds bounds provisioning; 0 = ACI's default
	// (1800). IsCustomProvisioningTimeout says the user set it.
	ProvisioningTimeoutSeconds  int  `json:"provisioningTimeoutInSeconds,omitempty"`
	IsCustomProvisioningTimeout bool `json:"isCustomProvisioningTimeout,omitempty"`
	// Profile references a containerGroupProfile (2024-05-01-preview on).
	Profile            *ProfileRef     `json:"containerGroupProfile,omitempty"`
	StandbyPoolProfile *StandbyPoolRef `json:"standbyPoolProfile,omitempty"`
	// Opaque is what later api-versions carry that berth only stores and
	// returns (secretReferences, identityAcls, …), by property name, as
	// JSON. Never secrets.
	Opaque map[string]json.RawMessage `json:"opaque,omitempty"`

	// Set by berth.
	ProvisioningState string `json:"provisioningState"`
	// Stopped: stopped by the user (POST stop) at StoppedAt; nothing runs
	// until start.
	Stopped   bool      `json:"stopped,omitempty"`
	StoppedAt time.Time `json:"stoppedAt,omitzero"`
	// Work is the background work OperationID tracks while it runs
	// ("provision" or "restart"), so that a restarted berth resumes it.
	Work      string    `json:"work,omitempty"`
	RuntimeID string    `json:"runtimeId"`
	IP        string    `json:"ip,omitempty"`
	Fqdn      string    `json:"fqdn,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// OperationID is the async operation of the last create, update, start
	// or restart.
	OperationID string `json:"operationId,omitempty"`
	// Replaces are runtime groups of earlier incarnations that provisioning
	// must delete before it creates this one (kept until they are gone, so
	// a crash mid-update cannot leak them).
	Replaces []string `json:"replaces,omitempty"`
	// FailureCode/Message describe why provisioning failed.
	FailureCode    string `json:"failureCode,omitempty"`
	FailureMessage string `json:"failureMessage,omitempty"`
}

// ID is the ARM resource id.
func (g *Group) ID() string {
	return "/subscriptions/" + g.Subscription + "/resourceGroups/" + g.ResourceGroup +
		"/providers/Microsoft.ContainerInstance/containerGroups/" + g.Name
}

// clone returns a deep copy of g.
func (g *Group) clone() *Group {
	b, err := json.Marshal(g)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	var c Group
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

// Container is one container (or init container) of a group. Init
// containers use Name, Image, Command, Env, VolumeMounts and
// SecurityContext only.
type Container struct {
	Name            string           `json:"name"`
	Image           string           `json:"image"`
	Command         []string         `json:"command,omitempty"`
	Env             []EnvVar         `json:"env,omitempty"`
	Ports           []Port           `json:"ports,omitempty"`
	Requests        Resources        `json:"requests"`
	Limits          *Resources       `json:"limits,omitempty"`
	VolumeMounts    []VolumeMount    `json:"volumeMounts,omitempty"`
	LivenessProbe   *Probe           `json:"livenessProbe,omitempty"`
	ReadinessProbe  *Probe           `json:"readinessProbe,omitempty"`
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	// ConfigMap is configMap.keyValuePairs (2024-05-01-preview on).
	ConfigMap map[string]string `json:"configMap,omitempty"`
}

// EnvVar is an environment variable; Secure ones are never returned by GET.
// SecureValueReference (2025-09-01) names a secretReference instead of a
// value.
type EnvVar struct {
	Name                 string `json:"name"`
	Value                string `json:"value"`
	Secure               bool   `json:"secure,omitempty"`
	SecureValueReference string `json:"secureValueReference,omitempty"`
}

// Port is a container or group port.
type Port struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// Resources are CPU cores, memory in GB and GPUs.
type Resources struct {
	CPU      float64 `json:"cpu"`
	MemoryGB float64 `json:"memoryInGB"`
	GPU      *GPU    `json:"gpu,omitempty"`
}

// GPU is a GPU request or limit.
type GPU struct {
	Count int    `json:"count"`
	SKU   string `json:"sku"` // K80, P100, V100
}

// IPAddress is the group's address configuration.
type IPAddress struct {
	Type         string `json:"type"`
	Ports        []Port `json:"ports"`
	DNSNameLabel string `json:"dnsNameLabel,omitempty"`
	// AutoGeneratedDomainNameLabelScope (2021-10-01 on): Unsecure (the
	// default), TenantReuse, SubscriptionReuse, ResourceGroupReuse,
	// Noreuse.
	AutoGeneratedDomainNameLabelScope string `json:"autoGeneratedDomainNameLabelScope,omitempty"`
}

// RegistryCredential authenticates image pulls from one registry.
// Identity/IdentityURL (2021-07-01 on) pull by managed identity: Identity
// is the ARM id of one of the group's user-assigned identities, or
// "system"/"[system]" for its system identity; PasswordReference (2025-09-01) names a secretReference.
type RegistryCredential struct {
	Server            string `json:"server"`
	Username          string `json:"username,omitempty"`
	Password          string `json:"password,omitempty"`
	Identity          string `json:"identity,omitempty"`
	IdentityURL       string `json:"identityUrl,omitempty"`
	PasswordReference string `json:"passwordReference,omitempty"`
}

// Volume is one volume of a group; exactly one kind is set.
type Volume struct {
	Name     string `json:"name"`
	EmptyDir bool   `json:"emptyDir,omitempty"`
	// Secret holds base64-encoded file contents by file name, as given.
	Secret          map[string]string `json:"secret,omitempty"`
	SecretReference map[string]string `json:"secretReference,omitempty"`
	GitRepo         *GitRepo          `json:"gitRepo,omitempty"`
	AzureFile       *AzureFile        `json:"azureFile,omitempty"`
}

// GitRepo is a gitRepo volume.
type GitRepo struct {
	Repository string `json:"repository"`
	Directory  string `json:"directory,omitempty"`
	Revision   string `json:"revision,omitempty"`
}

// AzureFile is an azureFile volume: a share kept by berth, keyed by
// storage account and share name.
type AzureFile struct {
	ShareName                   string `json:"shareName"`
	StorageAccountName          string `json:"storageAccountName"`
	StorageAccountKey           string `json:"storageAccountKey,omitempty"`
	StorageAccountKeyReference  string `json:"storageAccountKeyReference,omitempty"`
	ReadOnly                    bool   `json:"readOnly,omitempty"`
	UserManagedIdentityClientID string `json:"userManagedIdentityClientId,omitempty"`
}

// VolumeMount mounts a volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// Probe is a liveness or readiness probe. Zero timings mean "not given"
// (ACI's defaults apply at run time; GET returns what was given).
type Probe struct {
	Exec                []string `json:"exec,omitempty"`
	HTTPGet             *HTTPGet `json:"httpGet,omitempty"`
	InitialDelaySeconds *int     `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       *int     `json:"periodSeconds,omitempty"`
	FailureThreshold    *int     `json:"failureThreshold,omitempty"`
	SuccessThreshold    *int     `json:"successThreshold,omitempty"`
	TimeoutSeconds      *int     `json:"timeoutSeconds,omitempty"`
}

// HTTPGet is an httpGet probe.
type HTTPGet struct {
	Path    string       `json:"path,omitempty"`
	Port    int          `json:"port"`
	Scheme  string       `json:"scheme,omitempty"` // http or https
	Headers []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPHeader is a header sent by an httpGet probe.
type HTTPHeader struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// SecurityContext is a container's securityContext (2023-05-01 on).
type SecurityContext struct {
	Privileged               *bool    `json:"privileged,omitempty"`
	AllowPrivilegeEscalation *bool    `json:"allowPrivilegeEscalation,omitempty"`
	CapabilitiesAdd          []string `json:"capabilitiesAdd,omitempty"`
	CapabilitiesDrop         []string `json:"capabilitiesDrop,omitempty"`
	HasCapabilities          bool     `json:"hasCapabilities,omitempty"` // capabilities was given (maybe empty)
	RunAsGroup               *int64   `json:"runAsGroup,omitempty"`
	RunAsUser                *int64   `json:"runAsUser,omitempty"`
	SeccompProfile           string   `json:"seccompProfile,omitempty"`
}

// DNSConfig is the group's resolver configuration.
type DNSConfig struct {
	NameServers   []string `json:"nameServers"`
	SearchDomains string   `json:"searchDomains,omitempty"` // space-separated, as ACI takes it
	Options       string   `json:"options,omitempty"`       // space-separated
}

// Diagnostics is the group's diagnostics configuration: stored and
// returned without the workspace key; logs stay readable through listLogs.
type Diagnostics struct {
	LogAnalytics *LogAnalytics `json:"logAnalytics,omitempty"`
}

// LogAnalytics is diagnostics.logAnalytics.
type LogAnalytics struct {
	WorkspaceID         string            `json:"workspaceId"`
	WorkspaceKey        string            `json:"workspaceKey,omitempty"` // secret: never returned
	LogType             string            `json:"logType,omitempty"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	WorkspaceResourceID string            `json:"workspaceResourceId,omitempty"` // secret: never returned
}

// SubnetID is a subnet the group joins.
type SubnetID struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Extension is a deployment extension (2022-09-01 on).
type Extension struct {
	Name              string          `json:"name"`
	ExtensionType     string          `json:"extensionType"`
	Version           string          `json:"version"`
	Settings          json.RawMessage `json:"settings,omitempty"`
	ProtectedSettings json.RawMessage `json:"protectedSettings,omitempty"` // secret: never returned
}

// EncryptionProperties is the group's customer-managed-key configuration:
// stored and returned; berth encrypts nothing with it.
type EncryptionProperties struct {
	VaultBaseURL string `json:"vaultBaseUrl"`
	KeyName      string `json:"keyName"`
	KeyVersion   string `json:"keyVersion"`
	Identity     string `json:"identity,omitempty"`
}

// ProfileRef references a container group profile revision.
type ProfileRef struct {
	ID       string `json:"id"`
	Revision *int   `json:"revision,omitempty"`
}

// StandbyPoolRef references a standby pool.
type StandbyPoolRef struct {
	ID                                     string `json:"id"`
	FailContainerGroupCreateOnReuseFailure *bool  `json:"failContainerGroupCreateOnReuseFailure,omitempty"`
}

// Event is an ACI instanceView event (repeats are folded: Count,
// FirstTimestamp, LastTimestamp).
type Event struct {
	Count          int       `json:"count"`
	FirstTimestamp time.Time `json:"firstTimestamp"`
	LastTimestamp  time.Time `json:"lastTimestamp"`
	Name           string    `json:"name"`
	Message        string    `json:"message"`
	Type           string    `json:"type"` // Normal or Warning
}

// ContainerState is ACI's container state.
type ContainerState struct {
	State        string
	StartTime    time.Time
	ExitCode     *int
	FinishTime   time.Time
	DetailStatus string
}

// ContainerView is a container's instanceView.
type ContainerView struct {
	RestartCount  int
	CurrentState  ContainerState
	PreviousState *ContainerState
	Events        []Event
}

// View is a group with its instanceView, as GET returns it.
type View struct {
	*Group
	State      string                    // group instanceView.state
	Events     []Event                   // group-level events
	Containers map[string]*ContainerView // by container name
	// InitContainers are the init containers' views, by name.
	InitContainers map[string]*ContainerView
}
