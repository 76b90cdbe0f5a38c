package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	aci "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources/v3"
)

func TestBadInput(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 5*time.Minute)
	if _, err := s.groups.CreateOrUpdate(ctx, "rg-bad", armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil); err != nil {
		t.Fatal(err)
	}
	sub := b.env["AZURE_SUBSCRIPTION_ID"]
	cg := "/subscriptions/" + sub + "/resourceGroups/rg-bad/providers/Microsoft.ContainerInstance/containerGroups/"
	const v = "?api-version=2023-05-01"
	good := `{"location":"eastus","properties":{"osType":"Linux","containers":[{"name":"c","properties":{"image":"` +
		b.env["BERTH_REGISTRY"] + `/x:1","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}]}}`

	t.Run("NoToken", func(t *testing.T) {
		resp, err := b.client.Get(b.env["BERTH_ENDPOINT"] + "/subscriptions/" + sub + "/resourcegroups?api-version=2021-04-01")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer ") {
			t.Fatalf("status %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("WrongSecret", func(t *testing.T) {
		cfg := cloud.Configuration{ActiveDirectoryAuthorityHost: b.env["AZURE_AUTHORITY_HOST"]}
		cred, err := azidentity.NewClientSecretCredential(b.env["AZURE_TENANT_ID"], b.env["AZURE_CLIENT_ID"], "wrong",
			&azidentity.ClientSecretCredentialOptions{ClientOptions: azcore.ClientOptions{Cloud: cfg, Transport: b.client}, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Fatalf("wrong secret: %v", err)
		}
	})

	cases := []struct {
		name, method, path, body string
		status                   int
		code, msgHas             string
	}{
		{"MissingAPIVersion", "PUT", cg + "a", good, 400, "MissingApiVersionParameter", "api-version"},
		{"UnknownAPIVersion", "PUT", cg + "a?api-version=2019-01-01", good, 400, "NoRegisteredProviderFound", "2023-05-01"},
		{"MalformedJSON", "PUT", cg + "a" + v, `{"location":`, 400, "InvalidRequestContent", ""},
		{"EmptyBody", "PUT", cg + "a" + v, ``, 400, "InvalidRequestContent", ""},
		{"NoContainers", "PUT", cg + "a" + v, `{"location":"eastus","properties":{"osType":"Linux"}}`, 400, "InvalidRequestContent", "'containers'"},
		{"NoOSType", "PUT", cg + "a" + v, strings.Replace(good, `"osType":"Linux",`, "", 1), 400, "InvalidRequestContent", "'osType'"},
		{"NoImage", "PUT", cg + "a" + v, strings.Replace(good, `"image":"`+b.env["BERTH_REGISTRY"]+`/x:1",`, "", 1), 400, "InvalidRequestContent", "'image'"},
		{"NoResources", "PUT", cg + "a" + v, strings.Replace(good, `,"resources":{"requests":{"cpu":1,"memoryInGB":1}}`, "", 1), 400, "InvalidRequestContent", "'resources'"},
		{"UpperCaseName", "PUT", cg + "Bad" + v, good, 400, "InvalidContainerGroupName", "Bad"},
		{"LeadingHyphen", "PUT", cg + "-a" + v, good, 400, "InvalidContainerGroupName", ""},
		{"DoubleHyphen", "PUT", cg + "a--b" + v, good, 400, "InvalidContainerGroupName", ""},
		{"TooLong", "PUT", cg + strings.Repeat("a", 64) + v, good, 400, "InvalidContainerGroupName", ""},
		{"Windows", "PUT", cg + "win" + v, strings.Replace(good, `"Linux"`, `"Windows"`, 1), 400, "OsTypeNotSupported", "Windows"},
		{"UnknownResourceGroup", "PUT", strings.Replace(cg, "rg-bad", "nope", 1) + "a" + v, good, 404, "ResourceGroupNotFound", "nope"},
		{"GetMissing", "GET", cg + "missing" + v, "", 404, "ResourceNotFound", "missing"},
		{"UnknownSubscription", "GET", "/subscriptions/00000000-0000-0000-0000-000000000009/resourcegroups?api-version=2021-04-01", "", 404, "SubscriptionNotFound", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, hdr, body := rawARM(t, b, s, c.method, c.path, c.body)
			if status != c.status || hdr != c.code {
				t.Fatalf("%s %s: %d %s %v; want %d %s", c.method, c.path, status, hdr, body, c.status, c.code)
			}
			e, _ := body["error"].(map[string]any)
			if e == nil || e["code"] != c.code || !strings.Contains(e["message"].(string), c.msgHas) {
				t.Fatalf("error body %v", body)
			}
		})
	}
	// Nothing was stored by any of them.
	pager := s.cgs.NewListByResourceGroupPager("rg-bad", nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Value) != 0 {
			t.Fatalf("bad requests stored groups: %d", len(page.Value))
		}
	}

	t.Run("ResourceGroupCaseInsensitive", func(t *testing.T) {
		status, _, body := rawARM(t, b, s, "GET", "/SUBSCRIPTIONS/"+sub+"/resourceGroups/RG-BAD?api-version=2021-04-01", "")
		if status != http.StatusOK || body["name"] != "rg-bad" {
			t.Fatalf("%d %v", status, body)
		}
	})

	t.Run("InaccessibleImage", func(t *testing.T) {
		g := aci.ContainerGroup{
			Location: to.Ptr("eastus"),
			Properties: &aci.ContainerGroupPropertiesProperties{
				OSType: to.Ptr(aci.OperatingSystemTypesLinux),
				Containers: []*aci.Container{{Name: to.Ptr("c"), Properties: &aci.ContainerProperties{
					Image:     to.Ptr(b.env["BERTH_REGISTRY"] + "/does/not:exist"),
					Resources: &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(1.0), MemoryInGB: to.Ptr(1.0)}},
				}}},
				ImageRegistryCredentials: b.registryCred(),
			},
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		poller, err := s.cgs.BeginCreateOrUpdate(pctx, "rg-bad", "noimage", g, nil)
		if err == nil {
			_, err = poller.PollUntilDone(pctx, nil)
		}
		if respCode(err) != "InaccessibleImage" {
			t.Fatalf("create with a missing image: %v", err)
		}
		got, err := s.cgs.Get(ctx, "rg-bad", "noimage", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Properties.ProvisioningState != "Failed" {
			t.Fatalf("provisioningState %s", *got.Properties.ProvisioningState)
		}
		var failed bool
		for _, e := range got.Properties.Containers[0].Properties.InstanceView.Events {
			failed = failed || (*e.Name == "Failed" && *e.Type == "Warning")
		}
		if !failed {
			t.Fatalf("no Failed event: %+v", got.Properties.Containers[0].Properties.InstanceView.Events)
		}
	})
}

// TestUnreachableRegistryFailsFast: an image on a registry berth cannot
// reach (no internet here: docker.io) fails the group, it does not hang.
func TestUnreachableRegistryFailsFast(t *testing.T) {
	b := startBerth(t)
	s := newSDK(t, b)
	ctx := ctxT(t, 5*time.Minute)
	if _, err := s.groups.CreateOrUpdate(ctx, "rg-net", armresources.ResourceGroup{Location: to.Ptr("eastus")}, nil); err != nil {
		t.Fatal(err)
	}
	g := aci.ContainerGroup{
		Location: to.Ptr("eastus"),
		Properties: &aci.ContainerGroupPropertiesProperties{
			OSType: to.Ptr(aci.OperatingSystemTypesLinux),
			Containers: []*aci.Container{{Name: to.Ptr("c"), Properties: &aci.ContainerProperties{
				Image:     to.Ptr("nginx:latest"),
				Resources: &aci.ResourceRequirements{Requests: &aci.ResourceRequests{CPU: to.Ptr(1.0), MemoryInGB: to.Ptr(1.0)}},
			}}},
		},
	}
	poller, err := s.cgs.BeginCreateOrUpdate(ctx, "rg-net", "nginx", g, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, nil)
	}
	if respCode(err) != "InaccessibleImage" {
		t.Fatalf("create with an unreachable registry: %v", err)
	}
}
