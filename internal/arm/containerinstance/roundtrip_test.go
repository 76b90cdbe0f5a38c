package containerinstance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/aci"
)

// decodeFull decodes testdata/full-put.json (every field of every version)
// at apiVersion and names the group.
func decodeFull(t *testing.T, apiVersion string) *aci.Group {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("testdata", "full-put.json"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := decodeGroup(body, apiVersion)
	if err != nil {
		t.Fatalf("%s: %v", apiVersion, err)
	}
	g.Subscription, g.ResourceGroup, g.Name = "sub", "rg", "full"
	return g
}

// fullView is decodeFull's group as GET shows it: provisioned, with an
// address and a live instanceView.
func fullView(t *testing.T, apiVersion string) *aci.View {
	g := decodeFull(t, apiVersion)
	g.ProvisioningState, g.IP = "Succeeded", "10.213.0.5"
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 123e6, time.UTC)
	code := 0
	ev := func(name, msg string) aci.Event {
		return aci.Event{Count: 1, FirstTimestamp: t0, LastTimestamp: t0, Name: name, Message: msg, Type: "Normal"}
	}
	return &aci.View{Group: g, State: "Running", Events: []aci.Event{},
		Containers: map[string]*aci.ContainerView{
			"app":     {CurrentState: aci.ContainerState{State: "Running", StartTime: t0}, Events: []aci.Event{ev("Pulling", `pulling image "127.0.0.1:7444/app:v1"`), ev("Started", "Started container")}},
			"sidecar": {RestartCount: 1, CurrentState: aci.ContainerState{State: "Running", StartTime: t0}, PreviousState: &aci.ContainerState{State: "Terminated", StartTime: t0, FinishTime: t0, ExitCode: &code, DetailStatus: "Completed"}, Events: []aci.Event{}},
		},
		InitContainers: map[string]*aci.ContainerView{
			"init-schema": {CurrentState: aci.ContainerState{State: "Terminated", StartTime: t0, FinishTime: t0.Add(time.Second), ExitCode: &code, DetailStatus: "Completed"}, Events: []aci.Event{ev("Started", "Started container")}},
		},
	}
}

type jsonObj = map[string]any

func obj(v any, keys ...any) jsonObj {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			v = v.(jsonObj)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	o, _ := v.(jsonObj)
	return o
}

// resupply puts back into a rendered GET body the secrets GET never
// returns, taking them from the group it was rendered from.
func resupply(t *testing.T, body []byte, g *aci.Group) []byte {
	t.Helper()
	var doc jsonObj
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	p := obj(doc, "properties")
	env := func(list string, cs []aci.Container) {
		for i, c := range cs {
			for j, e := range c.Env {
				if e.Secure {
					obj(p, list, i, "properties", "environmentVariables", j)["secureValue"] = e.Value
				}
			}
		}
	}
	env("containers", g.Containers)
	env("initContainers", g.InitContainers)
	for i, rc := range g.RegistryCredentials {
		obj(p, "imageRegistryCredentials", i)["password"] = rc.Password
	}
	for i, v := range g.Volumes {
		if v.Secret != nil {
			obj(p, "volumes", i)["secret"] = v.Secret
		}
		if v.AzureFile != nil {
			obj(p, "volumes", i, "azureFile")["storageAccountKey"] = v.AzureFile.StorageAccountKey
		}
	}
	if d := g.Diagnostics; d != nil {
		la := obj(p, "diagnostics", "logAnalytics")
		la["workspaceKey"], la["workspaceResourceId"] = d.LogAnalytics.WorkspaceKey, d.LogAnalytics.WorkspaceResourceID
	}
	if x, ok := p["extensions"].([]any); ok {
		for i := range x {
			obj(x, i, "properties")["protectedSettings"] = g.Extensions[i].ProtectedSettings
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRoundTrip: for every api-version, a GET body PUT back (with the
// secrets GET never returns supplied again) decodes to the same group.
func TestRoundTrip(t *testing.T) {
	for _, ver := range Versions.List {
		t.Run(ver, func(t *testing.T) {
			v := fullView(t, ver)
			if err := aci.Validate(v.Group); err != nil {
				t.Fatalf("full group does not validate: %v", err)
			}
			got, err := json.Marshal(toWire(v, ver, true))
			if err != nil {
				t.Fatal(err)
			}
			again, err := decodeGroup(resupply(t, got, v.Group), ver)
			if err != nil {
				t.Fatalf("GET body does not decode: %v\n%s", err, got)
			}
			want := decodeFull(t, ver)
			again.Subscription, again.ResourceGroup, again.Name = want.Subscription, want.ResourceGroup, want.Name
			if !reflect.DeepEqual(again, want) {
				a, _ := json.MarshalIndent(again, "", " ")
				b, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("round trip changed the group:\ngot  %s\nwant %s", a, b)
			}
		})
	}
}

// TestSecretsNeverRendered searches every rendering (GET, list, every
// version) for each secret of the full group.
func TestSecretsNeverRendered(t *testing.T) {
	for _, ver := range Versions.List {
		v := fullView(t, ver)
		var secrets []string
		for _, cs := range [][]aci.Container{v.Group.Containers, v.Group.InitContainers} {
			for _, c := range cs {
				for _, e := range c.Env {
					if e.Secure {
						secrets = append(secrets, e.Value)
					}
				}
			}
		}
		for _, rc := range v.RegistryCredentials {
			secrets = append(secrets, rc.Password)
		}
		for _, vol := range v.Volumes {
			for k, s := range vol.Secret {
				secrets = append(secrets, s, k)
			}
			if vol.AzureFile != nil {
				secrets = append(secrets, vol.AzureFile.StorageAccountKey)
			}
		}
		if d := v.Diagnostics; d != nil {
			secrets = append(secrets, d.LogAnalytics.WorkspaceKey, d.LogAnalytics.WorkspaceResourceID)
		}
		for _, x := range v.Extensions {
			secrets = append(secrets, "s3cr3t-kubeconfig", string(x.ProtectedSettings))
		}
		if len(secrets) < 8 {
			t.Fatalf("%s: the full group lost its secrets: %q", ver, secrets)
		}
		for _, out := range []any{toWire(v, ver, true), listResult{Value: []containerGroup{toWire(v, ver, false)}}} {
			b, _ := json.Marshal(out)
			for _, s := range append(secrets, "s3cr3t", "czNjcjN0") {
				if s != "" && strings.Contains(string(b), s) {
					t.Errorf("%s: rendered body contains secret %q:\n%s", ver, s, b)
				}
			}
		}
	}
}
