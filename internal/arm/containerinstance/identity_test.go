package containerinstance

import (
	"fmt"
	"testing"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
)

const uai1 = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/puller"
const uai2 = "/subscriptions/sub/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader"

// identityBody is a PUT body with both kinds of identity; the read-only
// fields a client echoes from a GET are ignored. The credential by identity
// is only in the schema from 2021-07-01 on (gated away before).
func identityBody(typ string) []byte {
	return []byte(fmt.Sprintf(`{"location":"westus","identity":{"type":%q,"principalId":"ignored","tenantId":"ignored",
		"userAssignedIdentities":{%q:{},%q:{"clientId":"ignored","principalId":"ignored"}}},
		"properties":{"containers":[{"name":"c","properties":{"image":"reg.example:7444/app:v1","resources":{"requests":{"cpu":1,"memoryInGB":1.5}}}}],
		"osType":"Linux","imageRegistryCredentials":[{"server":"reg.example:7444","username":"","identity":%q}]}}`, typ, uai1, uai2, uai1))
}

// withPrincipals fills in what berth sets when it stores the group.
func withPrincipals(g *aci.Group) {
	if g.Identity == nil {
		return
	}
	g.Identity.TenantID = "tenant-1"
	if g.Identity.HasSystem() {
		g.Identity.PrincipalID, g.Identity.ClientID = "system-oid", "system-appid"
	}
	for i := range g.Identity.UserAssigned {
		u := &g.Identity.UserAssigned[i]
		u.PrincipalID, u.ClientID = fmt.Sprintf("user-oid-%d", i), fmt.Sprintf("user-appid-%d", i)
	}
}

// TestIdentityGolden renders a group with a system and two user-assigned
// identities on representative api-versions (the identity block is in
// every version's schema; the registry credential's identity from
// 2021-07-01 on).
func TestIdentityGolden(t *testing.T) {
	for _, ver := range []string{"2021-03-01", "2021-07-01", "2023-05-01", "2025-09-01"} {
		t.Run(ver, func(t *testing.T) {
			g, err := decodeGroup(identityBody("systemassigned, userassigned"), ver)
			if err != nil {
				t.Fatal(err)
			}
			if g.Identity == nil || g.Identity.Type != aci.IdentitySystemUser || len(g.Identity.UserAssigned) != 2 {
				t.Fatalf("identity %+v", g.Identity)
			}
			g.Subscription, g.ResourceGroup, g.Name, g.ProvisioningState = "sub", "rg", "ident", "Succeeded"
			if err := aci.Validate(g); err != nil {
				t.Fatal(err)
			}
			withPrincipals(g)
			w := toWire(&aci.View{Group: g}, ver, false)
			checkGolden(t, ver+"-identity.json", w)
			if featuresOf(ver).has(fRegistryIdentity) != (w.Properties.ImageRegistryCredentials[0].Identity == uai1) {
				t.Errorf("registry credential identity %q on %s", w.Properties.ImageRegistryCredentials[0].Identity, ver)
			}
		})
	}
}

func TestIdentityTypes(t *testing.T) {
	for typ, want := range map[string]string{
		"SystemAssigned": aci.IdentitySystem, "userassigned": aci.IdentityUser,
		"SystemAssigned, UserAssigned": aci.IdentitySystemUser, "None": "",
	} {
		body := identityBody(typ)
		if want == aci.IdentitySystem || want == "" {
			body = []byte(fmt.Sprintf(`{"location":"westus","identity":{"type":%q},"properties":{"containers":[{"name":"c","properties":{"image":"r/app","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}],"osType":"Linux"}}`, typ))
		}
		g, err := decodeGroup(body, "2023-05-01")
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		got := ""
		if g.Identity != nil {
			got = g.Identity.Type
		}
		if got != want {
			t.Errorf("%s: type %q, want %q", typ, got, want)
		}
		g.Name = "x"
		if err := aci.Validate(g); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
		withPrincipals(g)
		w := toWire(&aci.View{Group: g}, "2023-05-01", false)
		switch {
		case want == "" && w.Identity != nil:
			t.Errorf("None rendered as %+v", w.Identity)
		case want == aci.IdentitySystem && (w.Identity.PrincipalID != "system-oid" || w.Identity.TenantID != "tenant-1" || w.Identity.UserAssignedIdentities != nil):
			t.Errorf("system identity rendered as %+v", w.Identity)
		case want == aci.IdentityUser && (w.Identity.PrincipalID != "" || w.Identity.UserAssignedIdentities[uai2].ClientID != "user-appid-1"):
			t.Errorf("user identities rendered as %+v", w.Identity)
		}
	}
}

func TestIdentityErrors(t *testing.T) {
	// An unknown type is the deserializer's error.
	_, err := decodeGroup([]byte(`{"location":"westus","identity":{"type":"Both"},"properties":{"containers":[],"osType":"Linux"}}`), "2023-05-01")
	if e := apierr.As(err); err == nil || e.Code != "InvalidRequestContent" {
		t.Fatalf("unknown type: %v", err)
	}
	// A type with user identities needs some, and one without has none.
	for _, body := range []string{
		`{"location":"westus","identity":{"type":"UserAssigned"},"properties":{"containers":[{"name":"c","properties":{"image":"r/app","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}],"osType":"Linux"}}`,
		`{"location":"westus","identity":{"type":"SystemAssigned","userAssignedIdentities":{"` + uai1 + `":{}}},"properties":{"containers":[{"name":"c","properties":{"image":"r/app","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}],"osType":"Linux"}}`,
	} {
		g, err := decodeGroup([]byte(body), "2023-05-01")
		if err != nil {
			t.Fatal(err)
		}
		g.Name = "x"
		if err := aci.Validate(g); err == nil {
			t.Errorf("accepted %s", body)
		}
	}
	// A registry credential must name one of the group's identities.
	g, err := decodeGroup([]byte(`{"location":"westus","identity":{"type":"SystemAssigned"},"properties":{"containers":[{"name":"c","properties":{"image":"r/app","resources":{"requests":{"cpu":1,"memoryInGB":1}}}}],"osType":"Linux",
		"imageRegistryCredentials":[{"server":"r","identity":"`+uai1+`"}]}}`), "2023-05-01")
	if err != nil {
		t.Fatal(err)
	}
	g.Name = "x"
	if e := apierr.As(aci.Validate(g)); e == nil || e.Target != "properties.imageRegistryCredentials[0].identity" {
		t.Errorf("credential naming a foreign identity: %v", e)
	}
	g.RegistryCredentials[0].Identity = "[system]"
	if err := aci.Validate(g); err != nil {
		t.Errorf("credential naming the system identity: %v", err)
	}
}
