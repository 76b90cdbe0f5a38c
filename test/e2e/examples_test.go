package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// identityExamples carry managed identities: the user-assigned identities
// they name are created first (Microsoft.ManagedIdentity, through ARM) and
// the references pointed at them (adapt); the answer must then carry the
// identities' principal and client ids.
//
//   - 2021-03-01/ContainerGroupsCreateOrUpdate.json: identity "SystemAssigned, UserAssigned"
//   - 2023-05-01/ContainerGroupsCreateOrUpdate.json: identity "SystemAssigned, UserAssigned"
//   - 2023-05-01/ContainerGroupEncryptionProperties.json: identity UserAssigned (the
//     encryption key is read from Key Vault with it)
//
// No example has imageRegistryCredentials with an identity.
var identityExamples = []string{
	"2021-03-01/ContainerGroupsCreateOrUpdate.json",
	"2023-05-01/ContainerGroupsCreateOrUpdate.json",
	"2023-05-01/ContainerGroupEncryptionProperties.json",
}

// replayOrder is the order operations are replayed in, so that each finds
// what it needs: groups first, then reads, actions, and deletes last.
var replayOrder = []string{
	"ContainerGroups_CreateOrUpdate",
	"ContainerGroups_Get",
	"ContainerGroups_List",
	"ContainerGroups_ListByResourceGroup",
	"ContainerGroups_Update",
	"Containers_ListLogs",
	"Containers_ExecuteCommand",
	"Containers_Attach",
	"ContainerGroups_Restart",
	"ContainerGroups_Stop",
	"ContainerGroups_Start",
	"ContainerGroups_GetOutboundNetworkDependenciesEndpoints",
	"Location_ListUsage",
	"Location_ListCachedImages",
	"Location_ListCapabilities",
	"Operations_List",
	"ContainerGroups_Delete",
	// The subnet's service association link goes once no group is in the
	// subnet, so after the Delete example removed demo1 from it.
	"SubnetServiceAssociationLink_Delete",
}

// TestPublishedExamples replays every example of the published
// Microsoft.ContainerInstance specs (2021-03-01, 2023-05-01) against the
// real berth with real containers: each must get a status its operation
// documents and a body that validates against that version's schema.
// Examples with managed identities (identityExamples) get them created
// first.
//
// What the examples reference and berth cannot have is made first or
// pointed at what the test made (adapt says which, per example):
//   - images (nginx, alpine, confiimage on Docker Hub) → berth's test image
//     pushed into berth's registry under the same name (library/nginx:latest…),
//     with berth's registry credentials in imageRegistryCredentials;
//   - subnetIds (an ARM template expression, another subscription's subnet)
//     and the 2021-03-01 networkProfile id ("test-network-profile-id") → a
//     virtual network demo2 with subnet demo3 delegated to container groups
//     and a network profile named test-network-profile-id, made through
//     berth's Microsoft.Network API;
//   - a Public ipAddress on a group in a virtual network → Private (ACI
//     refuses Public there: InvalidIpAddressTypeForNetworkProfile);
//   - resource groups → made by the test: "demo" (and 2021-03-01's
//     "demoResource") is <tag>-demo; each create example gets a resource group
//     of its own, since all of them name their group demo1;
//   - container "container1" (logs, exec, attach) → "demo1", the container
//     of the group those examples name (no example creates a container1).
//
// azureFile shares, logAnalytics, dnsConfig, GPU, extensions,
// encryptionProperties, confidential and priority are sent as given.
//
// The group demo1 the read/action/delete examples work on is the version's
// ContainerGroupsCreateOrUpdate example without its identity (a GPU, every
// volume kind, logAnalytics, dnsConfig, a virtual network): the identity is
// the only thing berth cannot run of it. The GPU runs without a device on a
// host without one, with a Warning event. Get_Failed reads a group that
// really failed: its image does not exist.
//
// x-ms-examples also names example files that are not published
// (ContainerGroupsRestart.json in both versions; ContainerGroupsUpdate.json
// and ContainerGroupsGetPriority.json in 2023-05-01), and 2023-05-01's
// outboundNetworkDependenciesEndpoints has none: those operations are replayed
// with a request built from the operation's parameters alone.
func TestPublishedExamples(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	r := newReplayer(t, b, s)
	for _, ver := range []string{"2021-03-01", "2023-05-01"} {
		t.Run(ver, func(t *testing.T) {
			v := &versionRun{replayer: r, sp: loadSpec(t, ver), tag: "v" + strings.ReplaceAll(ver, "-", "")[:4],
				createdIn: map[string]string{}}
			v.rg = v.tag + "-demo"
			v.run(t)
		})
	}
	sort.Strings(r.ran)
	t.Logf("replayed:\n%s", strings.Join(r.ran, "\n"))
}

// versionRun replays the examples of one api-version.
type versionRun struct {
	*replayer
	sp  *publishedSpec
	tag string // "v2021", "v2023"
	// rg is the examples' resource group "demo": it holds demo1, the group
	// the read, action and delete examples work on, and virtual network
	// demo2 with subnet demo3 (2023-05-01's SubnetServiceAssociationLinkDelete).
	rg        string
	subnetID  string
	profileID string // 2021-03-01: networkProfile test-network-profile-id
	failedRG  string // holds demo1 whose image does not exist
	// createdIn maps each replayed create example's name to its resource group.
	createdIn map[string]string
}

func (v *versionRun) run(t *testing.T) {
	exs := v.sp.examples(t)
	byOp := map[string][]*publishedExample{}
	for _, ex := range exs {
		byOp[ex.op.id] = append(byOp[ex.op.id], ex)
	}
	for _, op := range v.sp.ops {
		if !slices.Contains(replayOrder, op.id) {
			t.Errorf("operation %s has no place in replayOrder", op.id)
		}
		if len(op.examples) == 0 {
			// No example: replay one built from the operation's parameters.
			byOp[op.id] = append(byOp[op.id], &publishedExample{version: v.sp.version, name: op.id, file: "(none)", op: op, missing: true})
		}
	}

	v.resourceGroup(t, v.rg)
	v.subnetID = v.delegatedSubnet(t, v.rg, "demo2", "demo3")
	if v.sp.version == "2021-03-01" {
		v.profileID = v.networkProfile(t, v.rg, "test-network-profile-id", v.subnetID)
	}

	replayed := map[string]bool{}
	for _, opID := range replayOrder {
		for _, ex := range byOp[opID] {
			if ex.missing {
				ex.params = v.synthesizedParams(ex)
			}
			t.Run(ex.name, func(t *testing.T) {
				v.replayOne(t, ex)
			})
			replayed[ex.key()] = true
		}
		if opID == "ContainerGroups_CreateOrUpdate" {
			t.Run("fixtures", v.fixtures)
		}
	}
	for _, ex := range exs {
		if !replayed[ex.key()] {
			t.Errorf("%s (%s) was not replayed", ex.key(), ex.op.id)
		}
	}
}

// synthesizedParams stand in for an example file x-ms-examples names but
// that is not published: the operation's parameters with the values the
// published examples of the version use.
func (v *versionRun) synthesizedParams(ex *publishedExample) map[string]json.RawMessage {
	vals := map[string]any{"subscriptionId": "subid", "api-version": v.sp.version, "resourceGroupName": "demo",
		"containerGroupName": "demo1", "location": "westus"}
	out := map[string]json.RawMessage{}
	for _, p := range ex.op.params {
		if val, ok := vals[p.Name]; ok {
			out[p.Name] = mustJSON(val)
		}
	}
	if ex.op.id == "ContainerGroups_Update" {
		out["Resource"] = mustJSON(map[string]any{"tags": map[string]string{"tag1key": "tag1Value"}})
	}
	return out
}

// names maps an example's path parameters to what the test made.
func (v *versionRun) names(overrides map[string]string) func(param, value string) string {
	return func(param, value string) string {
		if o, ok := overrides[param]; ok {
			return o
		}
		switch param {
		case "subscriptionId":
			return v.b.env["AZURE_SUBSCRIPTION_ID"]
		case "resourceGroupName":
			return v.rg // "demo", and 2021-03-01 Update's "demoResource"
		case "containerName":
			if value == "container1" {
				return "demo1" // the container of group demo1
			}
		}
		return value
	}
}

// send replays ex with the names given and body (nil: the example's),
// and checks the answer: a documented success whose body validates.
func (v *versionRun) send(t *testing.T, ex *publishedExample, overrides map[string]string, body []byte) answer {
	t.Helper()
	req := ex.request(v.names(overrides), body)
	a := v.do(t, req.method, req.path, req.body)
	label := ex.key()
	if ex.missing {
		label = v.sp.version + "/" + ex.name + " (no published example)"
	}
	v.mu.Lock()
	v.ran = append(v.ran, fmt.Sprintf("%-75s %-45s %s %d", label, ex.op.id, req.method, a.status))
	v.mu.Unlock()
	if !ex.documented(a.status) {
		t.Fatalf("%s %s: %s; documented: %v", req.method, req.path, a, ex.documentedCodes())
	}
	if msg := v.sp.validate(ex.op, a.status, a.body); msg != "" {
		t.Errorf("%s %s → %d: %s", req.method, req.path, a.status, msg)
	}
	return a
}

// groupPath is the path of group name in rg, at this version.
func (v *versionRun) groupPath(rg, name string) string {
	return "/subscriptions/" + v.b.env["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/" + rg +
		"/providers/Microsoft.ContainerInstance/containerGroups/" + name + "?api-version=" + v.sp.version
}

// getGroup GETs a group and validates the body.
func (v *versionRun) getGroup(t *testing.T, rg, name string) (answer, groupView) {
	t.Helper()
	a := v.do(t, "GET", v.groupPath(rg, name), nil)
	if a.status != http.StatusOK {
		t.Fatalf("GET %s/%s: %s", rg, name, a)
	}
	if msg := v.sp.validate(v.sp.op(t, "ContainerGroups_Get"), a.status, a.body); msg != "" {
		t.Errorf("GET %s/%s: %s", rg, name, msg)
	}
	return a, decodeGroupView(t, a)
}

// adapt points what a create example references at what the test made,
// and says what it changed.
func (v *versionRun) adapt(t *testing.T, doc map[string]any) []string {
	t.Helper()
	var notes []string
	p, _ := doc["properties"].(map[string]any)
	if p == nil {
		t.Fatal("example has no properties")
	}
	notes = append(notes, v.identities(t, doc)...)
	for _, k := range []string{"containers", "initContainers"} {
		list, _ := p[k].([]any)
		for _, c := range list {
			cp, _ := c.(map[string]any)["properties"].(map[string]any)
			if img, ok := cp["image"].(string); ok {
				cp["image"] = v.image(t, img)
				notes = append(notes, "image "+img+" → "+cp["image"].(string))
			}
		}
	}
	if creds, _ := p["imageRegistryCredentials"].([]any); len(creds) > 0 {
		notes = append(notes, "imageRegistryCredentials replaced by berth's registry")
	} else {
		notes = append(notes, "imageRegistryCredentials: berth's registry added")
	}
	p["imageRegistryCredentials"] = []any{v.registryCred()}
	inVNet := false
	if np, ok := p["networkProfile"].(map[string]any); ok {
		notes = append(notes, fmt.Sprintf("networkProfile %v → %s", np["id"], v.profileID))
		np["id"] = v.profileID
		inVNet = true
	}
	if ids, _ := p["subnetIds"].([]any); len(ids) > 0 {
		for _, id := range ids {
			m := id.(map[string]any)
			notes = append(notes, fmt.Sprintf("subnetId %v → %s", m["id"], v.subnetID))
			m["id"] = v.subnetID
		}
		inVNet = true
	}
	if ip, _ := p["ipAddress"].(map[string]any); inVNet && ip != nil && ip["type"] == "Public" {
		ip["type"] = "Private"
		notes = append(notes, "ipAddress Public → Private (ACI refuses a Public address in a virtual network)")
	}
	vols, _ := p["volumes"].([]any)
	for _, vol := range vols {
		if g, ok := vol.(map[string]any)["gitRepo"].(map[string]any); ok {
			repo := "file://" + gitRepo(t, map[string]string{"README.md": "replayed\n"})
			notes = append(notes, fmt.Sprintf("gitRepo %v → %s", g["repository"], repo))
			g["repository"] = repo
		}
	}
	return notes
}

// secretsOf lists the secret values a group body carries: they must never
// come back.
func secretsOf(doc map[string]any) []string {
	var out []string
	add := func(v any) {
		if s, ok := v.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	walk(doc, func(m map[string]any) {
		for _, k := range []string{"secureValue", "storageAccountKey", "workspaceKey", "password"} {
			add(m[k])
		}
		for _, k := range []string{"secret", "protectedSettings"} {
			if sec, ok := m[k].(map[string]any); ok {
				for _, val := range sec {
					add(val)
				}
			}
		}
	})
	return out
}

// checkNoSecrets fails if a body returns any of secrets.
func checkNoSecrets(t *testing.T, what string, body []byte, secrets []string) {
	t.Helper()
	var v any
	_ = json.Unmarshal(body, &v)
	var leak func(any)
	leak = func(x any) {
		switch y := x.(type) {
		case string:
			if slices.Contains(secrets, y) {
				t.Errorf("%s returns the secret value %q", what, y)
			}
		case map[string]any:
			for _, c := range y {
				leak(c)
			}
		case []any:
			for _, c := range y {
				leak(c)
			}
		}
	}
	leak(v)
}

// createGroupFrom PUTs a group body and waits for its operation; want is
// the operation's end ("Succeeded", "Failed").
func (v *versionRun) createGroupFrom(t *testing.T, rg, name string, doc map[string]any, want string) answer {
	t.Helper()
	put := v.sp.op(t, "ContainerGroups_CreateOrUpdate")
	a := v.do(t, "PUT", v.groupPath(rg, name), mustJSON(doc))
	if a.status != http.StatusCreated {
		t.Fatalf("PUT %s/%s: %s", rg, name, a)
	}
	if msg := v.sp.validate(put, a.status, a.body); msg != "" {
		t.Errorf("PUT %s/%s: %s", rg, name, msg)
	}
	if st, body := v.waitOperation(t, a); st != want {
		t.Fatalf("PUT %s/%s: operation %s, want %s: %s", rg, name, st, want, body)
	}
	return a
}

// identities creates the user-assigned identities doc names (in the
// examples' resource group, by the last segment of each id) and points
// the references at them: identity.userAssignedIdentities keys and
// encryptionProperties.identity.
func (v *versionRun) identities(t *testing.T, doc map[string]any) []string {
	t.Helper()
	id, _ := doc["identity"].(map[string]any)
	uai, _ := id["userAssignedIdentities"].(map[string]any)
	if len(uai) == 0 {
		return nil
	}
	var notes []string
	moved := map[string]string{}
	for old, val := range uai {
		name := old[strings.LastIndex(old, "/")+1:]
		path := "/subscriptions/" + v.b.env["AZURE_SUBSCRIPTION_ID"] + "/resourceGroups/" + v.rg +
			"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
		if a := v.do(t, "PUT", path+"?api-version=2023-01-31", []byte(`{"location":"westeurope"}`)); a.status != http.StatusOK && a.status != http.StatusCreated {
			t.Fatalf("user-assigned identity %s: %s", name, a)
		}
		delete(uai, old)
		uai[path] = val
		moved[strings.ToLower(old)] = path
		notes = append(notes, fmt.Sprintf("userAssignedIdentity %s → %s (created)", old, path))
	}
	if ep, _ := doc["properties"].(map[string]any)["encryptionProperties"].(map[string]any); ep != nil {
		if ref, _ := ep["identity"].(string); moved[strings.ToLower(ref)] != "" {
			ep["identity"] = moved[strings.ToLower(ref)]
		}
	}
	return notes
}

// checkIdentities checks that a group's answer names its identities as
// ACI does: a principalId for the system identity, each user-assigned one
// with its clientId and principalId.
func checkIdentities(t *testing.T, key string, body []byte, want map[string]any) {
	t.Helper()
	var got struct {
		Identity struct {
			Type                   string `json:"type"`
			PrincipalID            string `json:"principalId"`
			TenantID               string `json:"tenantId"`
			UserAssignedIdentities map[string]struct {
				PrincipalID string `json:"principalId"`
				ClientID    string `json:"clientId"`
			} `json:"userAssignedIdentities"`
		} `json:"identity"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	typ, _ := want["type"].(string)
	if !strings.EqualFold(got.Identity.Type, typ) || got.Identity.TenantID == "" {
		t.Errorf("%s: identity %+v, want type %s with a tenant", key, got.Identity, typ)
	}
	if strings.Contains(typ, "SystemAssigned") && got.Identity.PrincipalID == "" {
		t.Errorf("%s: the system identity has no principalId", key)
	}
	uai, _ := want["userAssignedIdentities"].(map[string]any)
	for id := range uai {
		u, ok := got.Identity.UserAssignedIdentities[id]
		if !ok || u.PrincipalID == "" || u.ClientID == "" {
			t.Errorf("%s: user-assigned identity %s rendered as %+v", key, id, got.Identity.UserAssignedIdentities)
		}
	}
}

// fixtures makes what the examples after the create examples work on:
// demo1 in the examples' resource group (the version's
// ContainerGroupsCreateOrUpdate example, its identities included), and a
// group that really failed for Get_Failed.
func (v *versionRun) fixtures(t *testing.T) {
	var ex *publishedExample
	for _, e := range v.sp.examples(t) {
		if e.name == "ContainerGroupsCreateOrUpdate" {
			ex = e
		}
	}
	if ex == nil {
		t.Fatal("no ContainerGroupsCreateOrUpdate example")
	}
	doc := cloneJSON(t, ex.params["containerGroup"])
	notes := v.adapt(t, doc)
	t.Logf("demo1 is %s; %s", ex.key(), strings.Join(notes, "; "))
	secrets := secretsOf(doc)
	a := v.createGroupFrom(t, v.rg, "demo1", doc, "Succeeded")
	checkNoSecrets(t, "PUT demo1", a.body, secrets)
	got, g := v.getGroup(t, v.rg, "demo1")
	checkNoSecrets(t, "GET demo1", got.body, secrets)
	if g.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("demo1: provisioningState %s", g.Properties.ProvisioningState)
	}
	// Its GPU request runs without a device on a host without one (berth
	// serve --gpu emulate, the default), and says so.
	warned := false
	for _, c := range g.Properties.Containers {
		if c.Properties.InstanceView == nil {
			continue
		}
		for _, e := range c.Properties.InstanceView.Events {
			warned = warned || (e.Type == "Warning" && strings.Contains(strings.ToLower(e.Message), "gpu"))
		}
	}
	if _, err := os.Stat("/dev/nvidiactl"); err != nil && !warned {
		t.Errorf("demo1 requests a K80 GPU on a host without one, but no container has a Warning event about it: %s", got.body)
	}
	v.waitGroup(t, v.groupPath(v.rg, "demo1"), "Running")

	// Get_Failed: a group whose image does not exist in berth's registry.
	v.failedRG = v.tag + "-failed"
	v.resourceGroup(t, v.failedRG)
	failed := map[string]any{"location": "westus", "properties": map[string]any{
		"osType": "Linux", "imageRegistryCredentials": []any{v.registryCred()},
		"containers": []any{map[string]any{"name": "demo1", "properties": map[string]any{
			"image": v.b.env["BERTH_REGISTRY"] + "/library/no-such-image:latest", "ports": []any{map[string]any{"port": 80}},
			"resources": map[string]any{"requests": map[string]any{"cpu": 1, "memoryInGB": 1.5}}}}},
	}}
	v.createGroupFrom(t, v.failedRG, "demo1", failed, "Failed")
}

// replayOne replays one example, with what its operation needs before and
// checks after.
func (v *versionRun) replayOne(t *testing.T, ex *publishedExample) {
	switch ex.op.id {
	case "ContainerGroups_CreateOrUpdate":
		v.replayCreate(t, ex)

	case "ContainerGroups_Get":
		rg, want := v.rg, "Succeeded"
		switch ex.name {
		case "ContainerGroupsGet_Succeeded":
		case "ContainerGroupsGet_Failed":
			rg, want = v.failedRG, "Failed"
		case "ContainerGroupsGetWithPriority":
			rg = v.createdIn["ContainerGroupsCreateWithPriority"]
		default:
			t.Fatalf("no replay for Get example %s", ex.name)
		}
		a := v.send(t, ex, map[string]string{"resourceGroupName": rg}, nil)
		g := decodeGroupView(t, a)
		if g.Properties.ProvisioningState != want {
			t.Errorf("provisioningState %s, want %s", g.Properties.ProvisioningState, want)
		}
		if ex.name == "ContainerGroupsGetWithPriority" && g.Properties.Priority != "Spot" {
			t.Errorf("priority %q, want Spot", g.Properties.Priority)
		}

	case "ContainerGroups_List", "ContainerGroups_ListByResourceGroup":
		a := v.send(t, ex, nil, nil)
		ids := map[string]bool{}
		for page := 0; ; page++ {
			var list struct {
				Value    []groupView `json:"value"`
				NextLink string      `json:"nextLink"`
			}
			if err := json.Unmarshal(a.body, &list); err != nil {
				t.Fatal(err)
			}
			for _, g := range list.Value {
				ids[strings.ToLower(g.ID)] = true
			}
			if list.NextLink == "" || page > 50 {
				break
			}
			a = v.do(t, "GET", list.NextLink, nil)
			if a.status != http.StatusOK {
				t.Fatalf("next page: %s", a)
			}
			if msg := v.sp.validate(ex.op, a.status, a.body); msg != "" {
				t.Errorf("next page: %s", msg)
			}
		}
		want := strings.ToLower(strings.TrimSuffix(v.groupPath(v.rg, "demo1"), "?api-version="+v.sp.version))
		if !ids[want] {
			t.Errorf("list lacks %s: %v", want, ids)
		}

	case "ContainerGroups_Update":
		a := v.send(t, ex, nil, nil)
		var sent struct {
			Tags map[string]string `json:"tags"`
		}
		_ = json.Unmarshal(ex.params["Resource"], &sent)
		if g := decodeGroupView(t, a); fmt.Sprint(g.Tags) != fmt.Sprint(sent.Tags) {
			t.Errorf("tags after PATCH: %v, want %v", g.Tags, sent.Tags)
		}

	case "Containers_ListLogs":
		a := v.send(t, ex, nil, nil)
		var logs struct {
			Content *string `json:"content"`
		}
		if json.Unmarshal(a.body, &logs); logs.Content == nil {
			t.Errorf("logs without content: %s", a.body)
		}

	case "Containers_ExecuteCommand", "Containers_Attach":
		a := v.send(t, ex, nil, nil)
		var r struct {
			WebSocketURI string `json:"webSocketUri"`
			Password     string `json:"password"`
		}
		if json.Unmarshal(a.body, &r); r.WebSocketURI == "" || r.Password == "" {
			t.Errorf("%s: no webSocketUri or password: %s", ex.op.id, a.body)
		}

	case "ContainerGroups_Restart":
		a := v.send(t, ex, nil, nil)
		if a.header.Get("Azure-AsyncOperation") != "" {
			if st, body := v.waitOperation(t, a); st != "Succeeded" {
				t.Fatalf("restart: operation %s: %s", st, body)
			}
		}
		v.waitGroup(t, v.groupPath(v.rg, "demo1"), "Running")

	case "ContainerGroups_Stop":
		v.send(t, ex, nil, nil)
		if _, g := v.getGroup(t, v.rg, "demo1"); g.state() != "Stopped" {
			t.Errorf("state after stop: %q", g.state())
		}

	case "ContainerGroups_Start":
		if a := v.send(t, ex, nil, nil); a.status == http.StatusAccepted {
			if st, body := v.waitOperation(t, a); st != "Succeeded" {
				t.Fatalf("start: operation %s: %s", st, body)
			}
		}
		v.waitGroup(t, v.groupPath(v.rg, "demo1"), "Running")
		v.getGroup(t, v.rg, "demo1")

	case "ContainerGroups_GetOutboundNetworkDependenciesEndpoints",
		"Location_ListUsage", "Location_ListCachedImages", "Location_ListCapabilities", "Operations_List":
		v.send(t, ex, nil, nil)

	case "ContainerGroups_Delete":
		a := v.send(t, ex, nil, nil)
		if a.status == http.StatusAccepted || a.header.Get("Azure-AsyncOperation") != "" {
			if st, body := v.waitOperation(t, a); st != "Succeeded" {
				t.Fatalf("delete: operation %s: %s", st, body)
			}
		}
		if got := v.do(t, "GET", v.groupPath(v.rg, "demo1"), nil); got.status != http.StatusNotFound {
			t.Errorf("GET after delete: %s", got)
		}

	case "SubnetServiceAssociationLink_Delete":
		v.replaySubnetLinkDelete(t, ex)

	default:
		t.Fatalf("no replay for operation %s", ex.op.id)
	}
}

// replayCreate replays a create-or-update example: in a resource group of
// its own, its operation must end Succeeded (identities the example names
// created first, see identities).
func (v *versionRun) replayCreate(t *testing.T, ex *publishedExample) {
	doc := cloneJSON(t, ex.params["containerGroup"])
	notes := v.adapt(t, doc)
	t.Logf("%s: %s", ex.key(), strings.Join(notes, "; "))
	if _, ok := doc["identity"]; ok != slices.Contains(identityExamples, ex.key()) {
		t.Fatalf("%s: identity in body %v, listed in identityExamples %v", ex.key(), ok, slices.Contains(identityExamples, ex.key()))
	}
	rg := v.tag + "-" + strings.ToLower(ex.name)
	v.resourceGroup(t, rg)
	secrets := secretsOf(doc)
	a := v.send(t, ex, map[string]string{"resourceGroupName": rg}, mustJSON(doc))
	if a.status != http.StatusCreated {
		t.Errorf("a new group: %d, want 201", a.status)
	}
	checkNoSecrets(t, "PUT", a.body, secrets)
	if id, ok := doc["identity"].(map[string]any); ok {
		checkIdentities(t, ex.key(), a.body, id)
	}
	if st, body := v.waitOperation(t, a); st != "Succeeded" {
		t.Fatalf("operation %s: %s", st, body)
	}
	v.createdIn[ex.name] = rg
	got, g := v.getGroup(t, rg, ex.param("containerGroupName"))
	checkNoSecrets(t, "GET", got.body, secrets)
	if g.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("provisioningState %s", g.Properties.ProvisioningState)
	}
	// Its containers really run (the priority example's runs `sleep 10`
	// under restartPolicy Never, and may have finished).
	if st := g.state(); st != "Running" && st != "Succeeded" {
		t.Errorf("instanceView state %q, want Running (or Succeeded): %s", st, got.body)
	}
	// The ContainerGroupsCreateOrUpdate example is also demo1, the fixture
	// the later examples work on (fixtures): it goes once checked, giving
	// back its DNS name label (one group holds a label in a region, as in
	// Azure) and its subnet.
	if ex.name == "ContainerGroupsCreateOrUpdate" {
		a := v.do(t, "DELETE", v.groupPath(rg, ex.param("containerGroupName")), nil)
		if a.status != http.StatusOK && a.status != http.StatusNoContent {
			t.Fatalf("delete %s: %s", rg, a)
		}
		delete(v.createdIn, ex.name)
	}
}

// replaySubnetLinkDelete deletes subnet demo3's service association link:
// refused while a group is in the subnet, done once none is.
func (v *versionRun) replaySubnetLinkDelete(t *testing.T, ex *publishedExample) {
	var inSubnet []string
	for name, rg := range v.createdIn {
		if name == "ContainerGroupCreateWithExtensions" { // its subnetIds point at demo3
			inSubnet = append(inSubnet, rg)
		}
	}
	if len(inSubnet) > 0 {
		req := ex.request(v.names(nil), nil)
		if a := v.do(t, req.method, req.path, nil); a.status < 400 {
			t.Errorf("link delete with groups in the subnet: %s", a)
		}
	}
	for _, rg := range inSubnet {
		a := v.do(t, "DELETE", v.groupPath(rg, "demo1"), nil)
		if a.status == http.StatusAccepted {
			if st, body := v.waitOperation(t, a); st != "Succeeded" {
				t.Fatalf("delete %s/demo1: %s %s", rg, st, body)
			}
		} else if a.status != http.StatusOK && a.status != http.StatusNoContent {
			t.Fatalf("delete %s/demo1: %s", rg, a)
		}
	}
	a := v.send(t, ex, nil, nil)
	if a.status == http.StatusAccepted {
		if st, body := v.waitOperation(t, a); st != "Succeeded" {
			t.Fatalf("link delete: operation %s: %s", st, body)
		}
	} else if len(inSubnet) > 0 && a.status != http.StatusOK {
		t.Errorf("link delete after the groups left: %s, want 200 (the subnet held the link)", a)
	}
	// The link is gone: a second delete finds none.
	req := ex.request(v.names(nil), nil)
	if a := v.do(t, req.method, req.path, nil); a.status != http.StatusNoContent {
		t.Errorf("second link delete: %s, want 204", a)
	}
}
