package containerregistry

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	acr "github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerregistry/armcontainerregistry/v3"
)

// TestTokensWithSDK drives scope maps, tokens and generateCredentials
// through armcontainerregistry, on a Basic registry (tokens are in every
// tier).
func TestTokensWithSDK(t *testing.T) {
	opts, _ := newServer(t)
	f, err := acr.NewClientFactory(sub, staticCred{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	regs, maps, toks := f.NewRegistriesClient(), f.NewScopeMapsClient(), f.NewTokensClient()
	ctx := context.Background()
	poll := &runtime.PollUntilDoneOptions{Frequency: time.Second}
	p, err := regs.BeginCreate(ctx, "rg", "tokreg01", acr.Registry{Location: to.Ptr("westus"), SKU: &acr.SKU{Name: to.Ptr(acr.SKUNameBasic)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := p.PollUntilDone(ctx, poll)
	if err != nil {
		t.Fatal(err)
	}
	regID := *reg.ID

	// System scope maps.
	var names []string
	for pager := maps.NewListPager("rg", "tokreg01", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Value {
			names = append(names, *m.Name+"/"+*m.Properties.Type)
		}
	}
	if !slices.Equal(names, []string{"_repositories_admin/SystemDefined", "_repositories_pull/SystemDefined", "_repositories_pull_metadata_read/SystemDefined",
		"_repositories_push/SystemDefined", "_repositories_push_metadata_write/SystemDefined"}) {
		t.Fatalf("scope maps %v", names)
	}
	pull, err := maps.Get(ctx, "rg", "tokreg01", "_repositories_pull", nil)
	if err != nil || *pull.ID != regID+"/scopeMaps/_repositories_pull" || *pull.Type != "Microsoft.ContainerRegistry/registries/scopeMaps" ||
		*pull.Properties.Actions[0] != "repositories/*/content/read" {
		t.Fatalf("system map: %v %+v", err, pull)
	}
	if _, err := maps.BeginDelete(ctx, "rg", "tokreg01", "_repositories_pull", nil); code(err) != "SystemDefinedScopeMapReadOnly" {
		t.Fatalf("delete system map: %v", err)
	}

	// A user scope map.
	if _, err := maps.BeginCreate(ctx, "rg", "tokreg01", "badmap1", acr.ScopeMap{Properties: &acr.ScopeMapProperties{
		Actions: []*string{to.Ptr("repositories/app/pull")}}}, nil); code(err) != "InvalidScopeMapAction" {
		t.Fatalf("bad action: %v", err)
	}
	mp, err := maps.BeginCreate(ctx, "rg", "tokreg01", "appread", acr.ScopeMap{Properties: &acr.ScopeMapProperties{
		Description: to.Ptr("app pull"), Actions: []*string{to.Ptr("repositories/app/content/read")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := mp.PollUntilDone(ctx, poll)
	if err != nil || *sm.Properties.Type != "UserDefined" || *sm.Properties.ProvisioningState != acr.ProvisioningStateSucceeded ||
		*sm.Properties.Description != "app pull" || sm.Properties.CreationDate.IsZero() {
		t.Fatalf("create map: %v %+v", err, sm.Properties)
	}
	up, err := maps.BeginUpdate(ctx, "rg", "tokreg01", "appread", acr.ScopeMapUpdateParameters{Properties: &acr.ScopeMapPropertiesUpdateParameters{
		Actions: []*string{to.Ptr("repositories/app/content/read"), to.Ptr("repositories/app/metadata/read")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if um, err := up.PollUntilDone(ctx, poll); err != nil || len(um.Properties.Actions) != 2 || *um.Properties.Description != "app pull" {
		t.Fatalf("update map: %v %+v", err, um.Properties)
	}

	// A token.
	if _, err := toks.BeginCreate(ctx, "rg", "tokreg01", "apptoken", acr.Token{Properties: &acr.TokenProperties{
		ScopeMapID: to.Ptr(regID + "/scopeMaps/nosuchmap")}}, nil); code(err) != "ScopeMapNotFound" {
		t.Fatalf("token on a missing map: %v", err)
	}
	tp, err := toks.BeginCreate(ctx, "rg", "tokreg01", "apptoken", acr.Token{Properties: &acr.TokenProperties{ScopeMapID: sm.ID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tp.PollUntilDone(ctx, poll)
	if err != nil || *tok.Properties.Status != acr.TokenStatusEnabled || *tok.Properties.ScopeMapID != *sm.ID ||
		len(tok.Properties.Credentials.Passwords) != 0 || *tok.Type != "Microsoft.ContainerRegistry/registries/tokens" {
		t.Fatalf("create token: %v %+v", err, tok.Properties)
	}
	if _, err := maps.BeginDelete(ctx, "rg", "tokreg01", "appread", nil); code(err) != "ScopeMapInUse" {
		t.Fatalf("delete map in use: %v", err)
	}

	// generateCredentials: both passwords, with an expiry.
	expiry := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	gp, err := regs.BeginGenerateCredentials(ctx, "rg", "tokreg01", acr.GenerateCredentialsParameters{TokenID: tok.ID, Expiry: &expiry}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := gp.PollUntilDone(ctx, poll)
	if err != nil || *gen.Username != "apptoken" || len(gen.Passwords) != 2 || *gen.Passwords[0].Name != acr.TokenPasswordNamePassword1 ||
		*gen.Passwords[1].Name != acr.TokenPasswordNamePassword2 || *gen.Passwords[0].Value == "" || !gen.Passwords[0].Expiry.Equal(expiry) {
		t.Fatalf("generate: %v %+v", err, gen)
	}
	// GET lists the passwords without their values.
	got, err := toks.Get(ctx, "rg", "tokreg01", "apptoken", nil)
	if err != nil || len(got.Properties.Credentials.Passwords) != 2 {
		t.Fatalf("get token: %v %+v", err, got.Properties)
	}
	for _, pw := range got.Properties.Credentials.Passwords {
		if pw.Value != nil || pw.CreationTime == nil || !pw.Expiry.Equal(expiry) {
			t.Fatalf("listed password %+v", pw)
		}
	}
	// One password, no expiry.
	gp, err = regs.BeginGenerateCredentials(ctx, "rg", "tokreg01", acr.GenerateCredentialsParameters{TokenID: tok.ID,
		Name: to.Ptr(acr.TokenPasswordNamePassword2)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gen2, err := gp.PollUntilDone(ctx, poll); err != nil || len(gen2.Passwords) != 1 || *gen2.Passwords[0].Name != acr.TokenPasswordNamePassword2 ||
		gen2.Passwords[0].Expiry != nil || *gen2.Passwords[0].Value == *gen.Passwords[1].Value {
		t.Fatalf("generate password2: %v %+v", err, gen2)
	}
	// az acr token credential delete --password2: PATCH keeping password1;
	// and disable the token.
	tu, err := toks.BeginUpdate(ctx, "rg", "tokreg01", "apptoken", acr.TokenUpdateParameters{Properties: &acr.TokenUpdateProperties{
		Status:      to.Ptr(acr.TokenStatusDisabled),
		Credentials: &acr.TokenCredentialsProperties{Passwords: []*acr.TokenPassword{{Name: to.Ptr(acr.TokenPasswordNamePassword1)}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ut, err := tu.PollUntilDone(ctx, poll); err != nil || *ut.Properties.Status != acr.TokenStatusDisabled ||
		len(ut.Properties.Credentials.Passwords) != 1 || *ut.Properties.Credentials.Passwords[0].Name != acr.TokenPasswordNamePassword1 {
		t.Fatalf("update token: %v %+v", err, ut.Properties)
	}
	n := 0
	for pager := toks.NewListPager("rg", "tokreg01", nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 1 {
		t.Fatalf("listed %d tokens", n)
	}
	usages, err := regs.ListUsages(ctx, "rg", "tokreg01", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range usages.Value {
		if (*u.Name == "ScopeMaps" || *u.Name == "Tokens") && *u.CurrentValue != 1 {
			t.Errorf("usage %s = %d", *u.Name, *u.CurrentValue)
		}
	}

	// Deletes: the token, then its map.
	dp, err := toks.BeginDelete(ctx, "rg", "tokreg01", "apptoken", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	mdp, err := maps.BeginDelete(ctx, "rg", "tokreg01", "appread", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mdp.PollUntilDone(ctx, poll); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Get(ctx, "rg", "tokreg01", "apptoken", nil); code(err) != "ResourceNotFound" {
		t.Fatalf("get deleted token: %v", err)
	}
	if _, err := regs.BeginGenerateCredentials(ctx, "rg", "tokreg01", acr.GenerateCredentialsParameters{TokenID: tok.ID}, nil); code(err) != "ResourceNotFound" {
		t.Fatalf("generate for a deleted token: %v", err)
	}
}
