// Package aci is the container-group service behind
// Microsoft.ContainerInstance: it validates groups, stores them, drives the
// runtime to run them, folds what the runtime reports (its event stream and
// live status) into ACI's instanceView, and reconciles running groups when
// berth starts. It knows nothing of HTTP or JSON wire shapes (see
// arm/containerinstance for those).
package aci

import "time"

// Group is a container group as berth stores it.
type Group struct {
	Subscription  string            `json:"subscription"`
	ResourceGroup string            `json:"resourceGroup"`
	Name          string            `json:"name"`
	Location      string            `json:"location"`
	Tags          map[string]string `json:"tags,omitempty"`
	Zones         []string          `json:"zones,omitempty"`

	SKU                 string               `json:"sku,omitempty"`
	OSType              string               `json:"osType"`
	RestartPolicy       string               `json:"restartPolicy"`
	Priority            string               `json:"priority,omitempty"`
	Containers          []Container          `json:"containers"`
	IPAddress           *IPAddress           `json:"ipAddress,omitempty"`
	RegistryCredentials []RegistryCredential `json:"imageRegistryCredentials,omitempty"`

	// Set by berth.
	ProvisioningState string    `json:"provisioningState"`
	RuntimeID         string    `json:"runtimeId"`
	IP                string    `json:"ip,omitempty"`
	CreatedAt         time.Time `json:"createdAt"`
	UpdatedAt         time.Time `json:"updatedAt"`
	// OperationID is the async operation of the last create or update.
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
	c := *g
	c.Tags = cloneMap(g.Tags)
	c.Zones = append([]string(nil), g.Zones...)
	c.Replaces = append([]string(nil), g.Replaces...)
	c.Containers = make([]Container, len(g.Containers))
	for i, ct := range g.Containers {
		ct.Command = append([]string(nil), ct.Command...)
		ct.Env = append([]EnvVar(nil), ct.Env...)
		ct.Ports = append([]Port(nil), ct.Ports...)
		if ct.Limits != nil {
			l := *ct.Limits
			ct.Limits = &l
		}
		c.Containers[i] = ct
	}
	if g.IPAddress != nil {
		ip := *g.IPAddress
		ip.Ports = append([]Port(nil), g.IPAddress.Ports...)
		c.IPAddress = &ip
	}
	c.RegistryCredentials = append([]RegistryCredential(nil), g.RegistryCredentials...)
	return &c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Container is one container of a group.
type Container struct {
	Name     string     `json:"name"`
	Image    string     `json:"image"`
	Command  []string   `json:"command,omitempty"`
	Env      []EnvVar   `json:"env,omitempty"`
	Ports    []Port     `json:"ports,omitempty"`
	Requests Resources  `json:"requests"`
	Limits   *Resources `json:"limits,omitempty"`
}

// EnvVar is an environment variable; Secure ones are never returned by GET.
type EnvVar struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Secure bool   `json:"secure,omitempty"`
}

// Port is a container or group port.
type Port struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// Resources are CPU cores and memory in GB.
type Resources struct {
	CPU      float64 `json:"cpu"`
	MemoryGB float64 `json:"memoryInGB"`
}

// IPAddress is the group's address configuration.
type IPAddress struct {
	Type         string `json:"type"`
	Ports        []Port `json:"ports"`
	DNSNameLabel string `json:"dnsNameLabel,omitempty"`
}

// RegistryCredential authenticates image pulls from one registry.
type RegistryCredential struct {
	Server   string `json:"server"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
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
}
