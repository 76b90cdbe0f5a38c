package containerinstance

import (
	"strings"

	"github.com/berth-dev/berth/internal/aci"
)

// toWire renders a group; withView adds the instanceView (GET, not list).
func toWire(v *aci.View, withView bool) containerGroup {
	g := v.Group
	out := containerGroup{
		ID: g.ID(), Name: g.Name, Type: resourceType, Location: g.Location, Tags: g.Tags, Zones: g.Zones,
		Properties: groupProperties{
			SKU: g.SKU, ProvisioningState: g.ProvisioningState, Containers: []container{}, InitContainers: []any{},
			RestartPolicy: g.RestartPolicy, OSType: g.OSType, Priority: g.Priority,
		},
	}
	for _, c := range g.Containers {
		wc := container{Name: c.Name, Properties: containerProperties{
			Image: c.Image, Command: c.Command, Ports: []containerPort{}, EnvironmentVariables: []envVar{},
			Resources: resourceRequirements{Requests: resources{CPU: c.Requests.CPU, MemoryInGB: c.Requests.MemoryGB}},
		}}
		if wc.Properties.Command == nil {
			wc.Properties.Command = []string{}
		}
		if c.Limits != nil {
			wc.Properties.Resources.Limits = &resources{CPU: c.Limits.CPU, MemoryInGB: c.Limits.MemoryGB}
		}
		for _, p := range c.Ports {
			wc.Properties.Ports = append(wc.Properties.Ports, containerPort{Port: p.Port, Protocol: p.Protocol})
		}
		for _, e := range c.Env {
			we := envVar{Name: e.Name}
			if !e.Secure {
				val := e.Value
				we.Value = &val
			}
			wc.Properties.EnvironmentVariables = append(wc.Properties.EnvironmentVariables, we)
		}
		if withView && v.Containers != nil {
			if cv := v.Containers[c.Name]; cv != nil {
				wc.Properties.InstanceView = containerView(cv)
			}
		}
		out.Properties.Containers = append(out.Properties.Containers, wc)
	}
	for _, rc := range g.RegistryCredentials {
		out.Properties.ImageRegistryCredentials = append(out.Properties.ImageRegistryCredentials, registryCred{Server: rc.Server, Username: rc.Username})
	}
	if ip := g.IPAddress; ip != nil {
		wip := &ipAddress{Type: ip.Type, IP: g.IP, DNSNameLabel: ip.DNSNameLabel, Ports: []port{}}
		for _, p := range ip.Ports {
			wip.Ports = append(wip.Ports, port{Port: p.Port, Protocol: p.Protocol})
		}
		if ip.DNSNameLabel != "" {
			wip.Fqdn = ip.DNSNameLabel + "." + strings.ToLower(strings.ReplaceAll(g.Location, " ", "")) + ".azurecontainer.io"
		}
		out.Properties.IPAddress = wip
	}
	if withView && v.State != "" {
		out.Properties.InstanceView = &groupInstanceView{Events: wireEvents(v.Events), State: v.State}
	}
	return out
}

func containerView(cv *aci.ContainerView) *containerInstanceView {
	out := &containerInstanceView{RestartCount: cv.RestartCount, CurrentState: wireState(&cv.CurrentState), Events: wireEvents(cv.Events)}
	if cv.PreviousState != nil {
		out.PreviousState = wireState(cv.PreviousState)
	}
	return out
}

func wireState(s *aci.ContainerState) *containerState {
	return &containerState{State: s.State, StartTime: timePtr(s.StartTime), ExitCode: s.ExitCode, FinishTime: timePtr(s.FinishTime), DetailStatus: s.DetailStatus}
}

func wireEvents(evs []aci.Event) []event {
	out := []event{}
	for _, e := range evs {
		out = append(out, event{Count: e.Count, FirstTimestamp: azTime(e.FirstTimestamp), LastTimestamp: azTime(e.LastTimestamp), Name: e.Name, Message: e.Message, Type: e.Type})
	}
	return out
}
