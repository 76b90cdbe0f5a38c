package containerinstance

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/apierr"
)

func TestToDomain(t *testing.T) {
	const good = `{"location":"eastus","properties":{"osType":"linux","restartPolicy":"never","containers":[{"name":"c","properties":{"image":"r/x:1","command":["/bin/echo","hi"],"ports":[{"port":80}],"environmentVariables":[{"name":"A","value":"1"},{"name":"S","secureValue":"s"}],"resources":{"requests":{"cpu":1,"memoryInGB":1.5}}}}],"ipAddress":{"type":"public","ports":[{"port":80}]},"imageRegistryCredentials":[{"server":"r","username":"u","password":"p"}]}}`
	var in putGroup
	if err := json.Unmarshal([]byte(good), &in); err != nil {
		t.Fatal(err)
	}
	g, err := toDomain(&in, "2023-05-01")
	if err != nil {
		t.Fatal(err)
	}
	if g.OSType != "Linux" || g.RestartPolicy != "Never" || g.IPAddress.Type != "Public" || g.IPAddress.Ports[0].Protocol != "TCP" {
		t.Fatalf("enums not canonical: %+v", g)
	}
	c := g.Containers[0]
	if !c.Env[1].Secure || c.Env[1].Value != "s" || c.Env[0].Secure || c.Requests.MemoryGB != 1.5 || g.RegistryCredentials[0].Password != "p" {
		t.Fatalf("container %+v", c)
	}

	for _, tc := range []struct{ name, edit, from, want string }{
		{"no location", `"location":"eastus",`, ``, "'location'"},
		{"no containers", `"containers"`, `"containerz"`, "Path 'properties'"},
		{"no name", `"name":"c",`, ``, "Path 'properties.containers[0]'"},
		{"no cpu", `"cpu":1,`, ``, "'cpu'"},
		{"no memory", `,"memoryInGB":1.5`, ``, "'memoryInGB'"},
		{"no port", `"ports":[{"port":80}],"environmentVariables"`, `"ports":[{}],"environmentVariables"`, "'port'"},
		{"bad restart policy", `"never"`, `"sometimes"`, "sometimes"},
		{"bad os", `"linux"`, `"plan9"`, "plan9"},
		{"no ip type", `"type":"public",`, ``, "'type'"},
		{"env without name", `{"name":"A","value":"1"}`, `{"value":"1"}`, "environmentVariables[0]"},
		{"registry without server", `"server":"r",`, ``, "'server'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(good, tc.edit, tc.from, 1)
			if body == good {
				t.Fatalf("edit %q did not apply", tc.edit)
			}
			var in putGroup
			if err := json.Unmarshal([]byte(body), &in); err != nil {
				t.Fatal(err)
			}
			_, err := toDomain(&in, "2023-05-01")
			e := apierr.As(err)
			if err == nil || e.Class != apierr.Invalid || e.Code != "InvalidRequestContent" || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("got %v, want InvalidRequestContent mentioning %q", err, tc.want)
			}
		})
	}

	// Registry username is required before 2023-05-01.
	in = putGroup{}
	_ = json.Unmarshal([]byte(strings.Replace(good, `"username":"u",`, ``, 1)), &in)
	if _, err := toDomain(&in, "2021-03-01"); err == nil {
		t.Fatal("2021-03-01 accepted a registry credential without username")
	}
	if _, err := toDomain(&in, "2023-05-01"); err != nil {
		t.Fatalf("2023-05-01 refused a registry credential without username: %v", err)
	}
}

func TestUnsupportedProperties(t *testing.T) {
	const base = `{"location":"x","properties":{"osType":"Linux","initContainers":[],"volumes":null,"containers":[{"name":"c","properties":{"image":"i","volumeMounts":[],"resources":{"requests":{"cpu":1,"memoryInGB":1}}}}]}}`
	if err := checkUnsupported([]byte(base)); err != nil {
		t.Fatalf("empty values refused: %v", err)
	}
	for _, tc := range []struct{ from, to, path string }{
		{`"volumes":null`, `"volumes":[{"name":"v","emptyDir":{}}]`, "properties.volumes"},
		{`"initContainers":[]`, `"initContainers":[{"name":"i"}]`, "properties.initContainers"},
		{`"volumeMounts":[]`, `"volumeMounts":[{"name":"v","mountPath":"/m"}]`, "properties.containers[0].properties.volumeMounts"},
		{`"memoryInGB":1}`, `"memoryInGB":1,"gpu":{"count":1,"sku":"K80"}}`, "properties.containers[0].properties.resources.requests.gpu"},
		{`{"location":"x",`, `{"location":"x","identity":{"type":"UserAssigned"},`, "identity"},
	} {
		body := strings.Replace(base, tc.from, tc.to, 1)
		err := checkUnsupported([]byte(body))
		if e := apierr.As(err); err == nil || e.Code != "FeatureNotSupported" || e.Target != tc.path {
			t.Errorf("%s: %v", tc.path, err)
		}
	}
	if err := checkUnsupported([]byte(strings.Replace(base, `{"location":"x",`, `{"location":"x","identity":{"type":"None"},`, 1))); err != nil {
		t.Errorf("identity None refused: %v", err)
	}
}
