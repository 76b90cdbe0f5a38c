package identity

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/berth-dev/berth/internal/store/bolt"
)

// TestAzidentity drives the token service with the official Go SDK
// (azidentity + MSAL Go), over TLS with berth's CA and the real state store.
func TestAzidentity(t *testing.T) {
	t.Parallel()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newEnv(t, st)

	for _, host := range []string{"127.0.0.1", "localhost"} {
		base := e.url(host, "")
		cfg := cloud.Configuration{
			ActiveDirectoryAuthorityHost: base + "/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Audience: AudienceARM, Endpoint: base},
			},
		}
		newCred := func(secret string) azcore.TokenCredential {
			cred, err := azidentity.NewClientSecretCredential(DefaultTenantID, DefaultClientID, secret,
				&azidentity.ClientSecretCredentialOptions{
					ClientOptions:            azcore.ClientOptions{Cloud: cfg, Transport: e.client},
					DisableInstanceDiscovery: true,
				})
			if err != nil {
				t.Fatal(err)
			}
			return cred
		}
		cred := newCred(DefaultClientSecret)
		for _, tc := range []struct {
			scope, aud string
			cae        bool
		}{
			{"https://management.core.windows.net//.default", AudienceARM, true},
			{"https://management.azure.com/.default", AudienceARMAlt, false},
			{"https://containerregistry.azure.net/.default", AudienceContainer, false},
		} {
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{tc.scope}, EnableCAE: tc.cae})
			if err != nil {
				t.Fatalf("%s %s: %v", host, tc.scope, err)
			}
			c, err := e.svc.Verify(tok.Token, tc.aud)
			if err != nil {
				t.Fatalf("%s %s: %v", host, tc.scope, err)
			}
			if c.Audience != tc.aud || c.Issuer != base+"/"+DefaultTenantID+"/v2.0" || c.AppID != DefaultClientID || c.TenantID != DefaultTenantID {
				t.Errorf("%s %s: claims %+v", host, tc.scope, c)
			}
			if d := tok.ExpiresOn.Sub(e.clk.Now()); d < 3000e9 || d > 3700e9 {
				t.Errorf("%s %s: ExpiresOn %v from now", host, tc.scope, d)
			}
			// An ARM token does not pass as a registry token.
			if tc.aud == AudienceARM {
				if _, err := e.svc.Verify(tok.Token, AudienceContainer); err == nil {
					t.Errorf("ARM token accepted for the registry audience")
				}
			}
		}

		_, err := newCred("wrong-secret").GetToken(context.Background(),
			policy.TokenRequestOptions{Scopes: []string{"https://management.core.windows.net//.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Fatalf("%s: wrong secret gave %v", host, err)
		}
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) || afe.RawResponse == nil || afe.RawResponse.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: wrong secret: %#v", host, err)
		}
	}
}
