package containerinstance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/aci"
)

// identityExamples carry a managed identity: the test checks that it is
// decoded (type and user-assigned identities).
var identityExamples = map[string]bool{
	"2021-03-01/ContainerGroupsCreateOrUpdate.json":      true,
	"2023-05-01/ContainerGroupsCreateOrUpdate.json":      true,
	"2023-05-01/ContainerGroupEncryptionProperties.json": true,
}

// exampleFixups are the edits an example needs before berth accepts it,
// each for a reason ACI shares. The identity-bearing CreateOrUpdate
// examples put a Public address on a group in a virtual network, which
// ACI refuses (InvalidIpAddressTypeForNetworkProfile); they run with a
// Private address. Images (nginx, confiimage,
// alpine) and subnet/network-profile ids are only resolved at provisioning
// (InaccessibleImage, the network service), not by the wire layer.
var exampleFixups = map[string]func(p map[string]any){
	"2021-03-01/ContainerGroupsCreateOrUpdate.json": privateAddress,
	"2023-05-01/ContainerGroupsCreateOrUpdate.json": privateAddress,
}

func privateAddress(p map[string]any) {
	p["ipAddress"].(map[string]any)["type"] = "Private"
}

// TestPublishedExamples decodes every create-or-update example of the
// published specs, validates the group, and checks that the body berth
// renders for it validates against that version's schema.
func TestPublishedExamples(t *testing.T) {
	var ran []string
	for _, ver := range []string{"2021-03-01", "2023-05-01"} {
		schemas := specSchemas(t, ver)
		files, _ := filepath.Glob(filepath.Join("testdata", "examples", ver, "*.json"))
		sort.Strings(files)
		for _, file := range files {
			key := ver + "/" + filepath.Base(file)
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var ex struct {
				Parameters map[string]json.RawMessage `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &ex); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
			body, ok := ex.Parameters["containerGroup"]
			if !ok {
				continue // not a create-or-update
			}
			var name string
			_ = json.Unmarshal(ex.Parameters["containerGroupName"], &name)
			t.Run(key, func(t *testing.T) {
				var doc map[string]any
				if err := json.Unmarshal(body, &doc); err != nil {
					t.Fatal(err)
				}
				if _, ok := doc["identity"]; ok != identityExamples[key] {
					t.Fatalf("example carries an identity: %v, listed in identityExamples: %v", ok, identityExamples[key])
				}
				if fix := exampleFixups[key]; fix != nil {
					fix(doc["properties"].(map[string]any))
				}
				b, _ := json.Marshal(doc)
				g, err := decodeGroup(b, ver)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				g.Subscription, g.ResourceGroup, g.Name = "subid", "demo", name
				if identityExamples[key] && (g.Identity == nil || len(g.Identity.UserAssigned) != 1) {
					t.Fatalf("identity not decoded: %+v", g.Identity)
				}
				withPrincipals(g)
				if err := aci.Validate(g); err != nil {
					t.Fatalf("validate: %v", err)
				}
				g.ProvisioningState = "Succeeded"
				validateResponse(t, schemas, "ContainerGroup", toWire(&aci.View{Group: g, State: "Running"}, ver, true))
			})
			ran = append(ran, key)
		}
	}
	want := []string{
		"2021-03-01/ContainerGroupsCreateOrUpdate.json",
		"2023-05-01/ContainerGroupCreateConfidential.json", "2023-05-01/ContainerGroupEncryptionProperties.json",
		"2023-05-01/ContainerGroupExtensions.json", "2023-05-01/ContainerGroupsCreateOrUpdate.json",
		"2023-05-01/ContainerGroupsCreatePriority.json",
	}
	if strings.Join(ran, " ") != strings.Join(want, " ") {
		t.Errorf("ran examples %v, want %v", ran, want)
	}
}
