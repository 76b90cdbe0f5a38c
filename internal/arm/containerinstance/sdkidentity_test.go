package containerinstance

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	sdk "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/store/memory"
)

// tokenIdentities is aci.Identities over the real token service, as the
// server wires it (user-assigned identities found by their ARM id among
// the managed-identity principals).
type tokenIdentities struct{ ids *identity.Service }

func (t tokenIdentities) CreateSystem(ctx context.Context, id, name string) (aci.Principal, error) {
	p, err := t.ids.CreateManagedIdentity(ctx, id, name)
	return aci.Principal{ObjectID: p.ObjectID, ClientID: p.ClientID, TenantID: p.TenantID}, err
}

func (t tokenIdentities) DeleteSystem(ctx context.Context, oid string) error {
	if err := t.ids.DeletePrincipal(ctx, oid); err != nil && !errors.Is(err, identity.ErrUnknownClient) {
		return err
	}
	return nil
}

func (t tokenIdentities) UserAssigned(ctx context.Context, id string) (aci.Principal, error) {
	ps, err := t.ids.ListPrincipals(ctx)
	if err != nil {
		return aci.Principal{}, err
	}
	for _, p := range ps {
		if p.Kind == identity.KindManagedIdentity && strings.EqualFold(p.ResourceID, id) {
			return aci.Principal{ObjectID: p.ObjectID, ClientID: p.ClientID, TenantID: p.TenantID}, nil
		}
	}
	return aci.Principal{}, aci.ErrIdentityNotFound
}

// TestSDKIdentities creates a group with a system and a user-assigned
// identity through the Go SDK and reads the principals back; the system
// identity is a principal of the token service that goes when a PUT drops
// it and when the group is deleted; an identity that does not exist is
// refused.
func TestSDKIdentities(t *testing.T) {
	e := newSDKEnv(t, 0)
	ctx := context.Background()
	ids, err := identity.New(identity.Config{Store: memory.New(), KeyDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Identities = tokenIdentities{ids}
	uaiID := "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/puller"
	uai, err := ids.CreateManagedIdentity(ctx, uaiID, "puller")
	if err != nil {
		t.Fatal(err)
	}

	g := sdkGroup()
	// The key is written in another case than the identity's id: ARM
	// compares resource ids case-insensitively.
	key := strings.ToLower(uaiID)
	g.Identity = &sdk.ContainerGroupIdentity{Type: to.Ptr(sdk.ResourceIdentityTypeSystemAssignedUserAssigned),
		UserAssignedIdentities: map[string]*sdk.UserAssignedIdentities{key: {}}}
	created := e.create(t, "ident", g)
	got, err := e.groups.Get(ctx, "rg", "ident", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, cg := range []sdk.ContainerGroup{created, got.ContainerGroup} {
		id := cg.Identity
		if id == nil || id.Type == nil || *id.Type != sdk.ResourceIdentityTypeSystemAssignedUserAssigned {
			t.Fatalf("identity %+v", id)
		}
		if id.PrincipalID == nil || id.TenantID == nil || *id.TenantID != identity.DefaultTenantID {
			t.Fatalf("system identity principal %v tenant %v", id.PrincipalID, id.TenantID)
		}
		u := id.UserAssignedIdentities[key]
		if u == nil || u.PrincipalID == nil || *u.PrincipalID != uai.ObjectID || *u.ClientID != uai.ClientID {
			t.Fatalf("user identity %+v, want %s/%s", u, uai.ObjectID, uai.ClientID)
		}
	}
	system := *got.Identity.PrincipalID
	sp, err := ids.PrincipalByObjectID(ctx, system)
	if err != nil || sp.Kind != identity.KindManagedIdentity || !strings.EqualFold(sp.ResourceID, *got.ID) {
		t.Fatalf("system identity's principal: %+v %v", sp, err)
	}

	// A PUT keeping the system identity keeps its principal.
	again := e.create(t, "ident", g)
	if *again.Identity.PrincipalID != system {
		t.Fatalf("system identity changed on update: %s → %s", system, *again.Identity.PrincipalID)
	}
	// A PUT dropping it deletes it.
	g.Identity.Type = to.Ptr(sdk.ResourceIdentityTypeUserAssigned)
	dropped := e.create(t, "ident", g)
	if dropped.Identity.PrincipalID != nil || ids.Live(system) {
		t.Fatalf("system identity not dropped: %v, live %v", dropped.Identity.PrincipalID, ids.Live(system))
	}
	// Deleting the group deletes its (new) system identity; user-assigned
	// identities stay.
	g.Identity.Type = to.Ptr(sdk.ResourceIdentityTypeSystemAssignedUserAssigned)
	second := *e.create(t, "ident", g).Identity.PrincipalID
	if second == system || !ids.Live(second) {
		t.Fatalf("new system identity %s (old %s)", second, system)
	}
	dp, err := e.groups.BeginDelete(ctx, "rg", "ident", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, &azruntimePollOpts); err != nil {
		t.Fatal(err)
	}
	if ids.Live(second) || !ids.Live(uai.ObjectID) {
		t.Fatalf("after delete: system live %v, user-assigned live %v", ids.Live(second), ids.Live(uai.ObjectID))
	}

	// A user-assigned identity that does not exist: ARM's error, nothing
	// created (no system identity left behind either).
	before, _ := ids.ListPrincipals(ctx)
	g.Identity.UserAssignedIdentities = map[string]*sdk.UserAssignedIdentities{uaiID + "-gone": {}}
	_, err = e.groups.BeginCreateOrUpdate(ctx, "rg", "ident2", g, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || re.ErrorCode != "FailedIdentityOperation" {
		t.Fatalf("unknown user-assigned identity: %v", err)
	}
	after, _ := ids.ListPrincipals(ctx)
	if len(after) != len(before) {
		t.Fatalf("principals %d → %d after a refused create", len(before), len(after))
	}
	if _, err := e.groups.Get(ctx, "rg", "ident2", nil); err == nil {
		t.Fatal("refused group was stored")
	}
}
