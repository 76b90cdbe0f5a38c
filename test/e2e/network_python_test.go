package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// pyNetwork is SDK code that creates a virtual network with a delegated
// subnet before its container groups, written against Debian's
// azure-mgmt-network (its default api-version) and pointed at berth.
const pyNetwork = `
import os, sys
from azure.identity import ClientSecretCredential
from azure.mgmt.network import NetworkManagementClient

env = os.environ
cred = ClientSecretCredential(env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"],
                              authority=env["AZURE_AUTHORITY_HOST"], instance_discovery=False)
client = NetworkManagementClient(cred, env["AZURE_SUBSCRIPTION_ID"], base_url=env["BERTH_ENDPOINT"],
                                 credential_scopes=["https://management.core.windows.net//.default"])
prefix = sys.argv[1]
vnet = client.virtual_networks.begin_create_or_update("pyrg", "pyvnet", {
    "location": "westeurope",
    "address_space": {"address_prefixes": [prefix]},
    "subnets": [{"name": "aci", "address_prefix": prefix,
                 "delegations": [{"name": "aci", "service_name": "Microsoft.ContainerInstance/containerGroups"}]}],
}).result()
assert vnet.provisioning_state == "Succeeded", vnet.provisioning_state
subnet = client.subnets.get("pyrg", "pyvnet", "aci")
assert subnet.delegations[0].service_name == "Microsoft.ContainerInstance/containerGroups"
names = [v.name for v in client.virtual_networks.list("pyrg")]
assert names == ["pyvnet"], names
client.subnets.begin_delete("pyrg", "pyvnet", "aci").result()
client.virtual_networks.begin_delete("pyrg", "pyvnet").result()
assert [v.name for v in client.virtual_networks.list_all()] == []
print("ok", client._config.api_version if hasattr(client._config, "api_version") else "")
`

// TestVirtualNetworkWithPython runs pyNetwork with Debian's python3.
func TestVirtualNetworkWithPython(t *testing.T) {
	requirePythonAzure(t)
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := s.groups.CreateOrUpdate(ctx, "pyrg", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	var out []byte
	var err error
	for range 5 {
		prefix := fmt.Sprintf("10.%d.%d.0/24", 251+rand.IntN(4), rand.IntN(250))
		out, err = pythonCommand(ctx, b, "-c", pyNetwork, prefix).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "SubnetRangeInUseOnHost") {
			break
		}
	}
	if err != nil || !strings.HasPrefix(string(out), "ok") {
		t.Fatalf("python: %v\n%s", err, out)
	}
}
