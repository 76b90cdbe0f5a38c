package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// pyIdentity creates and lists a user-assigned identity with Debian's
// azure-mgmt-msi (its default api-version, 2018-11-30), as the service
// principal whose credentials it is given.
const pyIdentity = `
import os, sys, json
from azure.identity import ClientSecretCredential
from azure.mgmt.msi import ManagedServiceIdentityClient

env = os.environ
cred = ClientSecretCredential(env["AZURE_TENANT_ID"], sys.argv[1], sys.argv[2],
                              authority=env["AZURE_AUTHORITY_HOST"], instance_discovery=False)
client = ManagedServiceIdentityClient(cred, env["AZURE_SUBSCRIPTION_ID"], base_url=env["BERTH_ENDPOINT"],
                                      credential_scopes=["https://management.core.windows.net//.default"])
ident = client.user_assigned_identities.create_or_update("msirg", "py-identity", {"location": "westeurope", "tags": {"made": "python"}})
assert ident.tenant_id == env["AZURE_TENANT_ID"], ident.tenant_id
assert ident.principal_id and ident.client_id, ident
got = client.user_assigned_identities.get("msirg", "py-identity")
assert got.principal_id == ident.principal_id and got.tags == {"made": "python"}, got
names = [i.name for i in client.user_assigned_identities.list_by_resource_group("msirg")]
assert names == ["py-identity"], names
assert "py-identity" in [i.name for i in client.user_assigned_identities.list_by_subscription()]
print(json.dumps({"id": ident.id, "principalId": ident.principal_id, "clientId": ident.client_id}))
`

// TestManagedIdentityWithPython: `berth sp create` makes a service
// principal; Python's azure-mgmt-msi, signed in as it, creates and lists a
// user-assigned identity; berth's debug log holds neither secret.
func TestManagedIdentityWithPython(t *testing.T) {
	requirePythonAzure(t)
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := s.groups.CreateOrUpdate(ctx, "msirg", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, binary(t), "sp", "create", "--name", "e2e-deployer", "--data-dir", b.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("berth sp create: %v\n%s", err, out)
	}
	var sp struct{ AppID, Password, Tenant, DisplayName string }
	if err := json.Unmarshal(out, &sp); err != nil || sp.Password == "" {
		t.Fatalf("berth sp create printed %s (%v)", out, err)
	}

	// RBAC: the new principal may manage msirg once it is Contributor there.
	out, err = exec.CommandContext(ctx, binary(t), "sp", "list", "--data-dir", b.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("berth sp list: %v\n%s", err, out)
	}
	var listed []map[string]any
	if err := json.Unmarshal(out, &listed); err != nil {
		t.Fatalf("berth sp list printed %s (%v)", out, err)
	}
	spOID := ""
	for _, o := range listed {
		if o["appId"] == sp.AppID {
			spOID, _ = o["id"].(string)
		}
	}
	assignRole(ctx, t, s, "/subscriptions/"+s.sub+"/resourceGroups/msirg", "Contributor", spOID)

	out, err = pythonCommand(ctx, b, "-c", pyIdentity, sp.AppID, sp.Password).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var ident struct{ ID, PrincipalID, ClientID string }
	if err := json.Unmarshal(out, &ident); err != nil || !strings.HasSuffix(ident.ID, "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/py-identity") {
		t.Fatalf("python printed %s (%v)", out, err)
	}

	// The identity is a principal of berth's directory (Graph lists it).
	out, err = exec.CommandContext(ctx, binary(t), "sp", "list", "--data-dir", b.dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("berth sp list: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), ident.PrincipalID) || !strings.Contains(string(out), sp.AppID) || strings.Contains(string(out), sp.Password) {
		t.Fatalf("berth sp list:\n%s", out)
	}
	if out, err := exec.CommandContext(ctx, binary(t), "sp", "delete", "--data-dir", b.dataDir, sp.AppID).CombinedOutput(); err != nil {
		t.Fatalf("berth sp delete: %v\n%s", err, out)
	}

	logb, err := os.ReadFile(b.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(logb) == 0 {
		t.Fatal("empty debug log")
	}
	for _, secret := range []string{sp.Password, "berth-dev-secret-do-not-use-in-production"} {
		if strings.Contains(string(logb), secret) {
			t.Fatalf("a secret is in berth's log %s", b.logPath)
		}
	}
}
