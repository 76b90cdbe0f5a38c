package containerinstance

import (
	"time"
)

// Wire structs: the JSON shapes of Microsoft.ContainerInstance as the
// published specs define them (2021-03-01 … 2026-05-01 share these fields).
// They are separate from the domain (package aci) on purpose.

type containerGroup struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Zones      []string          `json:"zones,omitempty"`
	Properties groupProperties   `json:"properties"`
}

type groupProperties struct {
	SKU                      string             `json:"sku,omitempty"`
	ProvisioningState        string             `json:"provisioningState,omitempty"`
	Containers               []container        `json:"containers"`
	InitContainers           []any              `json:"initContainers"`
	ImageRegistryCredentials []registryCred     `json:"imageRegistryCredentials,omitempty"`
	RestartPolicy            string             `json:"restartPolicy,omitempty"`
	IPAddress                *ipAddress         `json:"ipAddress,omitempty"`
	OSType                   string             `json:"osType"`
	Priority                 string             `json:"priority,omitempty"`
	InstanceView             *groupInstanceView `json:"instanceView,omitempty"`
}

type container struct {
	Name       string              `json:"name"`
	Properties containerProperties `json:"properties"`
}

type containerProperties struct {
	Image                string                 `json:"image"`
	Command              []string               `json:"command"`
	Ports                []containerPort        `json:"ports"`
	EnvironmentVariables []envVar               `json:"environmentVariables"`
	Resources            resourceRequirements   `json:"resources"`
	InstanceView         *containerInstanceView `json:"instanceView,omitempty"`
}

type containerPort struct {
	Protocol string `json:"protocol,omitempty"`
	Port     int    `json:"port"`
}

type envVar struct {
	Name        string  `json:"name"`
	Value       *string `json:"value,omitempty"`
	SecureValue *string `json:"secureValue,omitempty"`
}

type resourceRequirements struct {
	Requests resources  `json:"requests"`
	Limits   *resources `json:"limits,omitempty"`
}

type resources struct {
	MemoryInGB float64 `json:"memoryInGB"`
	CPU        float64 `json:"cpu"`
}

type registryCred struct {
	Server   string `json:"server"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
}

type ipAddress struct {
	Ports        []port `json:"ports"`
	Type         string `json:"type"`
	IP           string `json:"ip,omitempty"`
	DNSNameLabel string `json:"dnsNameLabel,omitempty"`
	Fqdn         string `json:"fqdn,omitempty"`
}

type port struct {
	Protocol string `json:"protocol,omitempty"`
	Port     int    `json:"port"`
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
	Count          int    `json:"count"`
	FirstTimestamp azTime `json:"firstTimestamp"`
	LastTimestamp  azTime `json:"lastTimestamp"`
	Name           string `json:"name"`
	Message        string `json:"message"`
	Type           string `json:"type"`
}

// azTime marshals as ACI does: UTC with milliseconds and a Z.
type azTime time.Time

func (t azTime) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format("2006-01-02T15:04:05.000Z") + `"`), nil
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

type operationStatus struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Status     string         `json:"status"`
	StartTime  azTime         `json:"startTime"`
	EndTime    *azTime        `json:"endTime,omitempty"`
	Properties map[string]any `json:"properties"`
	Error      any            `json:"error,omitempty"`
}
