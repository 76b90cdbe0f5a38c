package containerinstance

import (
	"encoding/json"
	"time"
)

// Wire structs: the JSON shapes of Microsoft.ContainerInstance responses,
// the union over every api-version served (render.go fills only what the
// request's version has). Field order follows real-service responses
// (properties first; sku, provisioningState, timeouts, containers, …).
// They are separate from the domain (package aci) on purpose. Nothing here
// has a field for a secret: secureValue, secret volume contents, registry
// passwords, storage account keys, workspace keys and protected settings
// cannot be rendered.

type containerGroup struct {
	Properties groupProperties   `json:"properties"`
	Identity   *identityWire     `json:"identity,omitempty"`
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags"`
	Zones      []string          `json:"zones,omitempty"`
}

type groupProperties struct {
	SKU                           string             `json:"sku,omitempty"`
	ProvisioningState             string             `json:"provisioningState,omitempty"`
	ProvisioningTimeoutInSeconds  *int               `json:"provisioningTimeoutInSeconds,omitempty"`
	IsCustomProvisioningTimeout   any                `json:"isCustomProvisioningTimeout,omitempty"` // bool, or "True"/"False"
	ContainerGroupProfile         *profileRef        `json:"containerGroupProfile,omitempty"`
	Containers                    []container        `json:"containers"`
	InitContainers                []initContainer    `json:"initContainers"`
	ImageRegistryCredentials      []registryCred     `json:"imageRegistryCredentials,omitempty"`
	RestartPolicy                 string             `json:"restartPolicy,omitempty"`
	IPAddress                     *ipAddress         `json:"ipAddress,omitempty"`
	OSType                        string             `json:"osType,omitempty"`
	Volumes                       []volume           `json:"volumes,omitempty"`
	InstanceView                  *groupInstanceView `json:"instanceView,omitempty"`
	Diagnostics                   *diagnostics       `json:"diagnostics,omitempty"`
	NetworkProfile                *networkProfile    `json:"networkProfile,omitempty"`
	SubnetIDs                     []subnetID         `json:"subnetIds,omitempty"`
	DNSConfig                     *dnsConfig         `json:"dnsConfig,omitempty"`
	EncryptionProperties          *encryption        `json:"encryptionProperties,omitempty"`
	Extensions                    []extension        `json:"extensions,omitempty"`
	ConfidentialComputeProperties *confidential      `json:"confidentialComputeProperties,omitempty"`
	Priority                      string             `json:"priority,omitempty"`
	IdentityAcls                  json.RawMessage    `json:"identityAcls,omitempty"`
	IsCreatedFromStandbyPool      *bool              `json:"isCreatedFromStandbyPool,omitempty"`
}

type container struct {
	Name       string              `json:"name"`
	Properties containerProperties `json:"properties"`
}

type containerProperties struct {
	Image                string                 `json:"image"`
	Command              []string               `json:"command,omitempty"`
	Ports                []containerPort        `json:"ports"`
	EnvironmentVariables []envVar               `json:"environmentVariables"`
	InstanceView         *containerInstanceView `json:"instanceView,omitempty"`
	Resources            resourceRequirements   `json:"resources"`
	VolumeMounts         []volumeMount          `json:"volumeMounts,omitempty"`
	LivenessProbe        *probe                 `json:"livenessProbe,omitempty"`
	ReadinessProbe       *probe                 `json:"readinessProbe,omitempty"`
	SecurityContext      *securityContext       `json:"securityContext,omitempty"`
	ConfigMap            *configMap             `json:"configMap,omitempty"`
}

type initContainer struct {
	Name       string                  `json:"name"`
	Properties initContainerProperties `json:"properties"`
}

type initContainerProperties struct {
	Image                string                 `json:"image,omitempty"`
	Command              []string               `json:"command,omitempty"`
	EnvironmentVariables []envVar               `json:"environmentVariables"`
	InstanceView         *containerInstanceView `json:"instanceView,omitempty"`
	VolumeMounts         []volumeMount          `json:"volumeMounts,omitempty"`
	SecurityContext      *securityContext       `json:"securityContext,omitempty"`
}

type containerPort struct {
	Protocol string `json:"protocol,omitempty"`
	Port     int    `json:"port"`
}

// envVar has no secureValue: secure variables come back as their name.
type envVar struct {
	Name                 string  `json:"name"`
	Value                *string `json:"value,omitempty"`
	SecureValueReference string  `json:"secureValueReference,omitempty"`
}

type resourceRequirements struct {
	Requests resources  `json:"requests"`
	Limits   *resources `json:"limits,omitempty"`
}

type resources struct {
	MemoryInGB float64 `json:"memoryInGB"`
	CPU        float64 `json:"cpu"`
	GPU        *gpu    `json:"gpu,omitempty"`
}

type gpu struct {
	Count int    `json:"count"`
	SKU   string `json:"sku"`
}

type volumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

type probe struct {
	Exec                *probeExec    `json:"exec,omitempty"`
	HTTPGet             *probeHTTPGet `json:"httpGet,omitempty"`
	InitialDelaySeconds *int          `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       *int          `json:"periodSeconds,omitempty"`
	FailureThreshold    *int          `json:"failureThreshold,omitempty"`
	SuccessThreshold    *int          `json:"successThreshold,omitempty"`
	TimeoutSeconds      *int          `json:"timeoutSeconds,omitempty"`
}

type probeExec struct {
	Command []string `json:"command"`
}

type probeHTTPGet struct {
	Path        string       `json:"path,omitempty"`
	Port        int          `json:"port"`
	Scheme      string       `json:"scheme,omitempty"`
	HTTPHeaders []httpHeader `json:"httpHeaders,omitempty"`
}

type httpHeader struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

type securityContext struct {
	Privileged               *bool         `json:"privileged,omitempty"`
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation,omitempty"`
	Capabilities             *capabilities `json:"capabilities,omitempty"`
	RunAsGroup               *int64        `json:"runAsGroup,omitempty"`
	RunAsUser                *int64        `json:"runAsUser,omitempty"`
	SeccompProfile           string        `json:"seccompProfile,omitempty"`
}

type capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

type configMap struct {
	KeyValuePairs map[string]string `json:"keyValuePairs"`
}

// registryCred has no password.
type registryCred struct {
	Server            string `json:"server"`
	Username          string `json:"username,omitempty"`
	Identity          string `json:"identity,omitempty"`
	IdentityURL       string `json:"identityUrl,omitempty"`
	PasswordReference string `json:"passwordReference,omitempty"`
}

type ipAddress struct {
	Ports                             []port `json:"ports"`
	IP                                string `json:"ip,omitempty"`
	Type                              string `json:"type"`
	DNSNameLabel                      string `json:"dnsNameLabel,omitempty"`
	AutoGeneratedDomainNameLabelScope string `json:"autoGeneratedDomainNameLabelScope,omitempty"`
	Fqdn                              string `json:"fqdn,omitempty"`
}

type port struct {
	Protocol string `json:"protocol,omitempty"`
	Port     int    `json:"port"`
}

// volume: secret volumes render as "secret": {} (contents never return).
type volume struct {
	Name            string            `json:"name"`
	AzureFile       *azureFile        `json:"azureFile,omitempty"`
	EmptyDir        *struct{}         `json:"emptyDir,omitempty"`
	Secret          *struct{}         `json:"secret,omitempty"`
	SecretReference map[string]string `json:"secretReference,omitempty"`
	GitRepo         *gitRepo          `json:"gitRepo,omitempty"`
}

// azureFile has no storageAccountKey.
type azureFile struct {
	ShareName                   string `json:"shareName"`
	ReadOnly                    bool   `json:"readOnly,omitempty"`
	StorageAccountName          string `json:"storageAccountName"`
	StorageAccountKeyReference  string `json:"storageAccountKeyReference,omitempty"`
	UserManagedIdentityClientID string `json:"userManagedIdentityClientId,omitempty"`
}

type gitRepo struct {
	Repository string `json:"repository"`
	Directory  string `json:"directory,omitempty"`
	Revision   string `json:"revision,omitempty"`
}

// diagnostics has no workspaceKey or workspaceResourceId (x-ms-secret).
type diagnostics struct {
	LogAnalytics *logAnalytics `json:"logAnalytics,omitempty"`
}

type logAnalytics struct {
	WorkspaceID string            `json:"workspaceId"`
	LogType     string            `json:"logType,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

type networkProfile struct {
	ID string `json:"id"`
}

type subnetID struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

type dnsConfig struct {
	NameServers   []string `json:"nameServers"`
	SearchDomains string   `json:"searchDomains,omitempty"`
	Options       string   `json:"options,omitempty"`
}

type encryption struct {
	VaultBaseURL string `json:"vaultBaseUrl"`
	KeyName      string `json:"keyName,omitempty"`
	KeyVersion   string `json:"keyVersion"`
	Identity     string `json:"identity,omitempty"`
}

// extension has no protectedSettings.
type extension struct {
	Name       string              `json:"name"`
	Properties extensionProperties `json:"properties"`
}

type extensionProperties struct {
	ExtensionType string          `json:"extensionType"`
	Version       string          `json:"version"`
	Settings      json.RawMessage `json:"settings,omitempty"`
}

type confidential struct {
	CCEPolicy string `json:"ccePolicy,omitempty"`
}

type profileRef struct {
	ID       string `json:"id"`
	Revision *int   `json:"revision,omitempty"`
}

type groupInstanceView struct {
	Events []event `json:"events"`
	State  string  `json:"state,omitempty"`
}

type containerInstanceView struct {
	RestartCount  int             `json:"restartCount"`
	CurrentState  *containerState `json:"currentState,omitempty"`
	PreviousState *containerState `json:"previousState,omitempty"`
	Events        []event         `json:"events"`
}

type containerState struct {
	State        string  `json:"state,omitempty"`
	StartTime    *azTime `json:"startTime,omitempty"`
	ExitCode     *int    `json:"exitCode,omitempty"`
	FinishTime   *azTime `json:"finishTime,omitempty"`
	DetailStatus string  `json:"detailStatus"`
}

type event struct {
	Count          int       `json:"count"`
	FirstTimestamp eventTime `json:"firstTimestamp"`
	LastTimestamp  eventTime `json:"lastTimestamp"`
	Name           string    `json:"name"`
	Message        string    `json:"message"`
	Type           string    `json:"type"`
}

// azTime marshals as ACI does container state times: UTC with
// milliseconds and a Z ("2023-05-05T00:15:52.212Z").
type azTime time.Time

func (t azTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
}

// eventTime marshals as ACI does event timestamps: whole seconds
// ("2023-05-05T00:15:37Z").
type eventTime time.Time

func (t eventTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05Z") + `"`), nil
}

// opTime marshals as ACI's operation documents carry startTime: seven
// fractional digits ("2023-05-05T00:15:33.1963246Z").
type opTime time.Time

func (t opTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.0000000Z") + `"`), nil
}

func timePtr(t time.Time) *azTime {
	if t.IsZero() {
		return nil
	}
	a := azTime(t)
	return &a
}

type listResult struct {
	Value    []containerGroup `json:"value"`
	NextLink string           `json:"nextLink,omitempty"`
}

type logs struct {
	Content string `json:"content"`
}

// operationStatus is ACI's operation document:
// {"id":"<group id>","status":"Pending|Succeeded|Failed","startTime":…,
// "properties":{"events":[…]}} (+ error when failed). The real service
// sends neither name nor endTime; renderOperationStatus leaves them empty
// (the fields remain for the handler that still sets them).
type operationStatus struct {
	ID         string         `json:"id"`
	Name       string         `json:"name,omitempty"`
	Status     string         `json:"status"`
	StartTime  any            `json:"startTime"`
	EndTime    *azTime        `json:"endTime,omitempty"`
	Properties map[string]any `json:"properties"`
	Error      any            `json:"error,omitempty"`
}
