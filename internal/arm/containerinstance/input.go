package containerinstance

import "encoding/json"

// Input shapes: the union of every api-version's PUT body. Pointers mark
// required properties so a missing one gets the error ACI's deserializer
// gives, with the JSON path. gate() drops what the request's version does
// not have before anything is checked, so such a property is ignored.

type putGroup struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Zones      []string          `json:"zones"`
	Identity   *putIdentity      `json:"identity"`
	Properties *putProperties    `json:"properties"`
}

// putIdentity is the group's identity block; principalId, tenantId and
// each user identity's clientId/principalId are read-only and ignored.
type putIdentity struct {
	Type                   string                     `json:"type"`
	UserAssignedIdentities map[string]json.RawMessage `json:"userAssignedIdentities"`
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
