package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/store"
)

// Store tables.
const (
	tableTenants    = "identity.tenants"
	tablePrincipals = "identity.principals"
)

// PrincipalKind says what a principal is.
type PrincipalKind string

// Principal kinds.
const (
	KindServicePrincipal PrincipalKind = "ServicePrincipal"
	// KindManagedIdentity is a user-assigned identity or a resource's system
	// identity: no secrets; its tokens come from IssueFor (the metadata
	// endpoint, pulls by identity).
	KindManagedIdentity PrincipalKind = "ManagedIdentity"
)

// Principal is an identity that can obtain tokens.
type Principal struct {
	Kind        PrincipalKind `json:"kind"`
	TenantID    string        `json:"tenantId"`
	ClientID    string        `json:"clientId"` // the application (client) ID, a token's appid
	ObjectID    string        `json:"objectId"` // a token's oid and sub
	DisplayName string        `json:"displayName"`
	ResourceID  string        `json:"resourceId,omitempty"` // a managed identity's ARM id
	// AppObjectID is the object ID of a service principal's application
	// object (Microsoft Graph's application id); empty for managed
	// identities.
	AppObjectID string `json:"appObjectId,omitempty"`
	// AppOnly marks an application without a service principal in the
	// tenant (created through Graph, before its servicePrincipal, or after
	// the servicePrincipal was deleted): it has no object ID in use, gets no
	// tokens and its secrets authenticate nothing.
	AppOnly bool `json:"appOnly,omitempty"`
}

// tenantRecord is a stored tenant.
type tenantRecord struct {
	TenantID    string `json:"tenantId"`
	DisplayName string `json:"displayName"`
}

// principalRecord is a stored principal with its credentials.
type principalRecord struct {
	Principal
	Secrets []secretRecord `json:"secrets,omitempty"`
}

// secretRecord is one client secret, stored as SHA-256(salt || secret).
// Client secrets are long random strings, so a fast hash is enough.
type secretRecord struct {
	KeyID       string    `json:"keyId"`
	DisplayName string    `json:"displayName,omitempty"`
	Hint        string    `json:"hint"` // first three characters, as Entra shows
	Salt        []byte    `json:"salt"`
	Hash        []byte    `json:"hash"`
	CreatedAt   time.Time `json:"createdAt"`
	ExpiresAt   time.Time `json:"expiresAt,omitzero"` // zero: never
}

func newSecret(secret string, now time.Time) secretRecord {
	salt := make([]byte, 16)
	rand.Read(salt)
	hint := secret
	if len(hint) > 3 {
		hint = hint[:3]
	}
	return secretRecord{KeyID: uuid.NewString(), Hint: hint, Salt: salt, Hash: hashSecret(salt, secret), CreatedAt: now.UTC()}
}

func hashSecret(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// matches compares secret with every unexpired credential in constant time.
func (p *principalRecord) matches(secret string, now time.Time) bool {
	ok := 0
	for _, c := range p.Secrets {
		eq := subtle.ConstantTimeCompare(hashSecret(c.Salt, secret), c.Hash)
		if !c.ExpiresAt.IsZero() && now.After(c.ExpiresAt) {
			eq = 0
		}
		ok |= eq
	}
	return ok == 1
}

// bootstrap creates the default tenant and service principal if missing and
// loads the tenant list.
func (s *Service) bootstrap(ctx context.Context) error {
	now := s.clk.Now()
	err := s.store.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(tableTenants, DefaultTenantID); errors.Is(err, store.ErrNotFound) {
			if err := putJSON(tx, tableTenants, DefaultTenantID, tenantRecord{TenantID: DefaultTenantID, DisplayName: "berth"}); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if _, err := tx.Get(tablePrincipals, DefaultClientID); errors.Is(err, store.ErrNotFound) {
			rec := principalRecord{
				Principal: Principal{
					Kind:        KindServicePrincipal,
					TenantID:    DefaultTenantID,
					ClientID:    DefaultClientID,
					ObjectID:    DefaultObjectID,
					DisplayName: "berth default service principal",
					AppObjectID: DefaultAppObjectID,
				},
				Secrets: []secretRecord{newSecret(DefaultClientSecret, now)},
			}
			return putJSON(tx, tablePrincipals, DefaultClientID, rec)
		} else {
			return err
		}
	})
	if err != nil {
		return fmt.Errorf("identity: creating the default directory: %w", err)
	}
	return s.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableTenants, "", func(key string, _ []byte) bool {
			s.tenants[strings.ToLower(key)] = true
			return true
		})
	})
}

func putJSON(tx store.Tx, table, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(table, strings.ToLower(key), b)
}

// principal loads the principal with clientID; ErrUnknownClient if none.
func (s *Service) principal(ctx context.Context, clientID string) (*principalRecord, error) {
	var rec principalRecord
	err := s.store.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(tablePrincipals, strings.ToLower(clientID))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return err
		}
		fixup(&rec)
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("identity: %w: %q", ErrUnknownClient, clientID)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: loading principal: %w", err)
	}
	return &rec, nil
}

// fixup fills what records written by older berths lack.
func fixup(rec *principalRecord) {
	if rec.AppObjectID == "" && strings.EqualFold(rec.ClientID, DefaultClientID) {
		rec.AppObjectID = DefaultAppObjectID
	}
}

// activePrincipal is principal, but ErrUnknownClient for an application
// without a service principal (it may not authenticate).
func (s *Service) activePrincipal(ctx context.Context, clientID string) (*principalRecord, error) {
	rec, err := s.principal(ctx, clientID)
	if err == nil && rec.AppOnly {
		return nil, fmt.Errorf("identity: %w: application %q has no service principal", ErrUnknownClient, clientID)
	}
	return rec, err
}

// CheckClientSecret authenticates a client by ID and secret (client ID
// matched case-insensitively, secret compared in constant time). It returns
// ErrUnknownClient or ErrInvalidSecret (wrapped), or a store error.
func (s *Service) CheckClientSecret(ctx context.Context, clientID, secret string) (Principal, error) {
	rec, err := s.activePrincipal(ctx, clientID)
	if err != nil {
		return Principal{}, err
	}
	if !rec.matches(secret, s.clk.Now()) {
		return Principal{}, fmt.Errorf("identity: %w for client %q", ErrInvalidSecret, clientID)
	}
	return rec.Principal, nil
}
