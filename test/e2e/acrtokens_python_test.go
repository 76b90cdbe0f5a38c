package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

// pyTokens creates a scope map, a token and its passwords with Debian's
// azure-mgmt-containerregistry (its newest api-version with tokens), then
// logs in to the registry as the token (docker's GET /oauth2/token with
// Basic auth) and checks the granted scope is the intersection.
const pyTokens = `
import base64, json, os, ssl, sys, urllib.parse, urllib.request
from datetime import datetime, timedelta, timezone
from azure.identity import ClientSecretCredential
from azure.mgmt.containerregistry import ContainerRegistryManagementClient
from azure.mgmt.containerregistry.v2022_02_01_preview.models import (
    GenerateCredentialsParameters, Registry, ScopeMap, Sku, Token)

env = os.environ
cred = ClientSecretCredential(env["AZURE_TENANT_ID"], env["AZURE_CLIENT_ID"], env["AZURE_CLIENT_SECRET"],
                              authority=env["AZURE_AUTHORITY_HOST"], instance_discovery=False)
client = ContainerRegistryManagementClient(cred, env["AZURE_SUBSCRIPTION_ID"], base_url=env["BERTH_ENDPOINT"],
                                           credential_scopes=["https://management.core.windows.net//.default"],
                                           api_version="2022-02-01-preview")
reg = client.registries.begin_create("pytokrg", "pytokreg01", Registry(location="westeurope", sku=Sku(name="Basic"))).result()
names = sorted(m.name for m in client.scope_maps.list("pytokrg", "pytokreg01"))
assert names[0] == "_repositories_admin" and len(names) == 5, names
sm = client.scope_maps.begin_create("pytokrg", "pytokreg01", "pyappread",
                                    ScopeMap(actions=["repositories/app/content/read"], description="py")).result()
assert sm.type_properties_type == "UserDefined", sm.type_properties_type
tok = client.tokens.begin_create("pytokrg", "pytokreg01", "pytoken", Token(scope_map_id=sm.id, status="enabled")).result()
assert tok.status == "enabled" and tok.scope_map_id == sm.id, tok
expiry = datetime.now(timezone.utc) + timedelta(days=7)
creds = client.registries.begin_generate_credentials("pytokrg", "pytokreg01",
                                                     GenerateCredentialsParameters(token_id=tok.id, expiry=expiry)).result()
assert creds.username == "pytoken" and [p.name for p in creds.passwords] == ["password1", "password2"], creds
got = client.tokens.get("pytokrg", "pytokreg01", "pytoken")
assert all(p.value is None for p in got.credentials.passwords) and len(got.credentials.passwords) == 2, got

login = reg.login_server
ctx = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
q = urllib.parse.urlencode([("service", login), ("scope", "repository:app:pull,push"),
                            ("scope", "repository:other:pull"), ("scope", "registry:catalog:*")])
req = urllib.request.Request("https://%s/oauth2/token?%s" % (login, q))
basic = base64.b64encode(("pytoken:" + creds.passwords[0].value).encode()).decode()
req.add_header("Authorization", "Basic " + basic)
body = json.load(urllib.request.urlopen(req, context=ctx))
payload = body["access_token"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
assert claims["access"] == [{"type": "repository", "name": "app", "actions": ["pull"]}], claims["access"]

client.tokens.begin_delete("pytokrg", "pytokreg01", "pytoken").result()
client.scope_maps.begin_delete("pytokrg", "pytokreg01", "pyappread").result()
try:
    urllib.request.urlopen(req, context=ctx)
    sys.exit("a deleted token logged in")
except urllib.error.HTTPError as e:
    assert e.code == 401, e.code
client.registries.begin_delete("pytokrg", "pytokreg01").result()
print("ok")
`

// TestACRTokensWithPython runs pyTokens with Debian's python3.
func TestACRTokensWithPython(t *testing.T) {
	requirePythonAzure(t)
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 2*time.Minute)
	if _, err := s.groups.CreateOrUpdate(ctx, "pytokrg", armresources.ResourceGroup{Location: to.Ptr("westeurope")}, nil); err != nil {
		t.Fatal(err)
	}
	out, err := pythonCommand(ctx, b, "-c", pyTokens).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok") {
		t.Fatalf("python: %v\n%s", err, out)
	}
}
