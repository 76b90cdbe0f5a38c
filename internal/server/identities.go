package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/msi"
)

// groupIdentities gives container groups their managed identities from the
// token service: system identities are principals made per group (keyed by
// the group's ARM id), user-assigned identities are the
// Microsoft.ManagedIdentity resources (package msi). It implements
// aci.Identities and aci.IdentityPull.
type groupIdentities struct {
	ids *identity.Service
	mis *msi.Service
	// base is the issuer base of tokens berth mints for identities
	// ("https://" + berth's ARM address).
	base string
	// client talks to berth's registries (trusts berth's CA).
	client *http.Client
}

var (
	_ aci.Identities   = groupIdentities{}
	_ aci.IdentityPull = groupIdentities{}
)

func (g groupIdentities) CreateSystem(ctx context.Context, resourceID, displayName string) (aci.Principal, error) {
	p, err := g.ids.CreateManagedIdentity(ctx, resourceID, displayName)
	if err != nil {
		return aci.Principal{}, err
	}
	return aci.Principal{ObjectID: p.ObjectID, ClientID: p.ClientID, TenantID: p.TenantID}, nil
}

func (g groupIdentities) DeleteSystem(ctx context.Context, objectID string) error {
	err := g.ids.DeletePrincipal(ctx, objectID)
	if errors.Is(err, identity.ErrUnknownClient) {
		return nil
	}
	return err
}

func (g groupIdentities) UserAssigned(ctx context.Context, resourceID string) (aci.Principal, error) {
	mi, err := g.mis.Get(ctx, resourceID)
	if errors.Is(err, msi.ErrNotFound) {
		return aci.Principal{}, aci.ErrIdentityNotFound
	}
	if err != nil {
		return aci.Principal{}, err
	}
	return aci.Principal{ObjectID: mi.PrincipalID, ClientID: mi.ClientID, TenantID: mi.TenantID}, nil
}

// nullGUID is the user name that marks an ACR refresh token as password.
const nullGUID = "00000000-0000-0000-0000-000000000000"

// RegistryCredential exchanges the identity's Entra token (audience ARM)
// at the registry for a refresh token, as ACR's flow goes.
func (g groupIdentities) RegistryCredential(ctx context.Context, clientID, server string) (string, string, error) {
	tok, _, err := g.ids.IssueFor(ctx, clientID, identity.AudienceARM, g.base)
	if err != nil {
		return "", "", fmt.Errorf("managed identity %s: %w", clientID, err)
	}
	form := url.Values{"grant_type": {"access_token"}, "service": {server}, "access_token": {tok}}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+server+"/oauth2/exchange", strings.NewReader(form.Encode()))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := g.client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("token exchange at %s: %w", server, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("token exchange at %s refused the managed identity %s: %s %s", server, clientID, resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.RefreshToken == "" {
		return "", "", fmt.Errorf("token exchange at %s: no refresh token in the answer", server)
	}
	return nullGUID, out.RefreshToken, nil
}
