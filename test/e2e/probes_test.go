package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// TestProbes: a container whose liveness probe fails is killed and
// restarted (Unhealthy and Killing events, restartCount up); one whose
// readiness probe fails keeps running and says so in Unhealthy events; one
// whose probes pass runs undisturbed.
func TestProbes(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 10*time.Minute)
	image := pushTestImage(t, b, "probes/app:v1")
	if _, err := s.groups.CreateOrUpdate(ctx, "probes", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	delayed := func(p *aci.ContainerProbe) *aci.ContainerProbe {
		p.InitialDelaySeconds = to.Ptr[int32](3)
		return p
	}
	fast := func(p *aci.ContainerProbe) *aci.ContainerProbe {
		p.PeriodSeconds, p.FailureThreshold, p.TimeoutSeconds = to.Ptr[int32](1), to.Ptr[int32](2), to.Ptr[int32](1)
		return p
	}
	container := func(name string, port int32, live, ready *aci.ContainerProbe) *aci.Container {
		return &aci.Container{Name: to.Ptr(name), Properties: &aci.ContainerProperties{
			Image: to.Ptr(image), LivenessProbe: live, ReadinessProbe: ready,
			Command:              to.SliceOfPtrs("/app", "serve"),
			EnvironmentVariables: []*aci.EnvironmentVariable{{Name: to.Ptr("PORT"), Value: to.Ptr(strconv.Itoa(int(port)))}},
			Ports:                []*aci.ContainerPort{{Port: to.Ptr(port)}},
			Resources:            &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(0.25), MemoryInGB: to.Ptr(0.25)}},
		}}
	}
	g := aci.ContainerGroup{Location: to.Ptr("westeurope"), Properties: &aci.ContainerGroupPropertiesProperties{
		OSType: to.Ptr(aci.OperatingSystemTypesLinux), RestartPolicy: to.Ptr(aci.ContainerGroupRestartPolicyAlways),
		ImageRegistryCredentials: b.registryCred(),
		Containers: []*aci.Container{
			// Liveness on a port nobody serves: fails, restarts.
			container("dying", 8081, fast(&aci.ContainerProbe{HTTPGet: &aci.ContainerHTTPGet{Port: to.Ptr[int32](9999), Path: to.Ptr("/")}}), nil),
			// Readiness by a command that fails: never ready, not restarted.
			container("unready", 8082, nil, fast(&aci.ContainerProbe{Exec: &aci.ContainerExec{Command: to.SliceOfPtrs("/bin/cat", "/no/such/file")}})),
			// Both pass: its own port, with a header; a command that succeeds.
			// The server needs a moment to listen (a loaded machine), as a
			// real one would: initialDelaySeconds, as users write it.
			container("healthy", 8083,
				delayed(fast(&aci.ContainerProbe{HTTPGet: &aci.ContainerHTTPGet{Port: to.Ptr[int32](8083), Path: to.Ptr("/"),
					HTTPHeaders: []*aci.HTTPHeader{{Name: to.Ptr("X-Probe"), Value: to.Ptr("berth")}}}})),
				fast(&aci.ContainerProbe{Exec: &aci.ContainerExec{Command: to.SliceOfPtrs("/bin/cat", "/app")}})),
		},
	}}
	createGroup(t, s, "probes", "probed", g)

	byName := func(cg aci.ContainerGroup) map[string]*aci.ContainerPropertiesInstanceView {
		out := map[string]*aci.ContainerPropertiesInstanceView{}
		for _, c := range cg.Properties.Containers {
			out[*c.Name] = c.Properties.InstanceView
		}
		return out
	}
	events := func(v *aci.ContainerPropertiesInstanceView) map[string]int32 {
		out := map[string]int32{}
		for _, e := range v.Events {
			out[*e.Name] += *e.Count
		}
		return out
	}
	var views map[string]*aci.ContainerPropertiesInstanceView
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		r, err := s.cgs.Get(ctx, "probes", "probed", nil)
		if err != nil {
			t.Fatal(err)
		}
		views = byName(r.ContainerGroup)
		if *views["dying"].RestartCount >= 1 && events(views["unready"])["Unhealthy"] >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probes did not act: dying %+v events %v; unready events %v", *views["dying"].RestartCount, events(views["dying"]), events(views["unready"]))
		}
	}
	if ev := events(views["dying"]); ev["Unhealthy"] == 0 || ev["Killing"] == 0 {
		t.Errorf("dying: events %v, want Unhealthy and Killing", ev)
	}
	if *views["unready"].RestartCount != 0 || *views["unready"].CurrentState.State != "Running" {
		t.Errorf("unready: restarted %d, state %s", *views["unready"].RestartCount, *views["unready"].CurrentState.State)
	}
	if ev := events(views["healthy"]); ev["Unhealthy"] != 0 || ev["Killing"] != 0 || *views["healthy"].RestartCount != 0 {
		t.Errorf("healthy: events %v, restarts %d", ev, *views["healthy"].RestartCount)
	}
}
