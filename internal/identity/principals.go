package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/store"
)

// ErrRevoked is Verify's error for a token of a principal that no longer
// exists (deleted since the token was issued). It matches ErrInvalidToken.
var ErrRevoked = errors.New("token revoked")

// ErrDefaultPrincipal is DeletePrincipal's error for the well-known service
// principal, which the quick start depends on.
var ErrDefaultPrincipal = errors.New("the default service principal cannot be deleted")

// livePrincipals is the in-memory index of the directory: every principal's
// object ID → client ID, so Verify can tell a deleted principal's token in
// constant time. Guarded by Service.mu.
type livePrincipals map[string]string

// loadLive fills the index from the store (at start).
func (s *Service) loadLive(ctx context.Context) error {
	live := livePrincipals{}
	err := s.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tablePrincipals, "", func(_ string, b []byte) bool {
			var rec principalRecord
			if json.Unmarshal(b, &rec) == nil && !rec.AppOnly {
				live[strings.ToLower(rec.ObjectID)] = strings.ToLower(rec.ClientID)
			}
			return true
		})
	})
	if err != nil {
		return fmt.Errorf("identity: loading principals: %w", err)
	}
	s.mu.Lock()
	s.live = live
	s.mu.Unlock()
	return nil
}

// Live reports whether a principal with object ID oid exists.
func (s *Service) Live(oid string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.live[strings.ToLower(oid)]
	return ok
}

// newClientSecret is a random secret shaped like Entra's (40 characters,
// a "~" after the three-character hint's prefix).
func newClientSecret() string {
	b := make([]byte, 30)
	rand.Read(b)
	s := base64.RawURLEncoding.EncodeToString(b) // 40 characters
	return s[:3] + "8Q~" + s[6:]
}

// CreateServicePrincipal creates a service principal (an application and
// its principal, as Entra pairs them) in the default tenant with one client
// secret, returned once: berth keeps only its hash.
func (s *Service) CreateServicePrincipal(ctx context.Context, displayName string) (Principal, string, error) {
	secret := newClientSecret()
	p := Principal{Kind: KindServicePrincipal, TenantID: DefaultTenantID, ClientID: uuid.NewString(),
		ObjectID: uuid.NewString(), DisplayName: displayName, AppObjectID: uuid.NewString()}
	rec := principalRecord{Principal: p, Secrets: []secretRecord{newSecret(secret, s.clk.Now())}}
	if err := s.putPrincipal(ctx, rec, false); err != nil {
		return Principal{}, "", err
	}
	return p, secret, nil
}

// AddSecret adds a client secret to the principal with clientID and returns
// it (once) with its key ID.
func (s *Service) AddSecret(ctx context.Context, clientID string) (secret, keyID string, err error) {
	secret = newClientSecret()
	err = s.store.Update(ctx, func(tx store.Tx) error {
		b, err := tx.Get(tablePrincipals, strings.ToLower(clientID))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("identity: %w: %q", ErrUnknownClient, clientID)
		}
		if err != nil {
			return err
		}
		var rec principalRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return err
		}
		if rec.Kind == KindManagedIdentity {
			return fmt.Errorf("identity: managed identity %q has no secrets", clientID)
		}
		sr := newSecret(secret, s.clk.Now())
		keyID = sr.KeyID
		rec.Secrets = append(rec.Secrets, sr)
		return putJSON(tx, tablePrincipals, rec.ClientID, rec)
	})
	if err != nil {
		return "", "", err
	}
	return secret, keyID, nil
}

// CreateManagedIdentity creates the principal of the managed identity with
// ARM id resourceID (a user-assigned identity, or a resource's system
// identity), or returns the one it has: it is idempotent per resourceID.
// Managed identities have no secrets; tokens come from IssueFor.
func (s *Service) CreateManagedIdentity(ctx context.Context, resourceID, displayName string) (Principal, error) {
	var out Principal
	err := s.store.Update(ctx, func(tx store.Tx) error {
		found := false
		err := tx.Scan(tablePrincipals, "", func(_ string, b []byte) bool {
			var rec principalRecord
			if json.Unmarshal(b, &rec) == nil && rec.Kind == KindManagedIdentity && strings.EqualFold(rec.ResourceID, resourceID) {
				out, found = rec.Principal, true
				return false
			}
			return true
		})
		if err != nil || found {
			return err
		}
		out = Principal{Kind: KindManagedIdentity, TenantID: DefaultTenantID, ClientID: uuid.NewString(),
			ObjectID: uuid.NewString(), DisplayName: displayName, ResourceID: resourceID}
		return putJSON(tx, tablePrincipals, out.ClientID, principalRecord{Principal: out})
	})
	if err != nil {
		return Principal{}, fmt.Errorf("identity: creating managed identity: %w", err)
	}
	s.mu.Lock()
	s.live[strings.ToLower(out.ObjectID)] = strings.ToLower(out.ClientID)
	s.mu.Unlock()
	return out, nil
}

// putPrincipal stores a new principal and indexes it.
func (s *Service) putPrincipal(ctx context.Context, rec principalRecord, replace bool) error {
	err := s.store.Update(ctx, func(tx store.Tx) error {
		if !replace {
			if _, err := tx.Get(tablePrincipals, strings.ToLower(rec.ClientID)); err == nil {
				return fmt.Errorf("identity: client %q exists", rec.ClientID)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return putJSON(tx, tablePrincipals, rec.ClientID, rec)
	})
	if err != nil {
		return fmt.Errorf("identity: storing principal: %w", err)
	}
	s.mu.Lock()
	s.live[strings.ToLower(rec.ObjectID)] = strings.ToLower(rec.ClientID)
	s.mu.Unlock()
	return nil
}

// unindex takes the principal with object ID oid out of the index of live
// principals and returns its client ID: from then on its tokens are refused,
// even if the store write that follows fails (then it is back after a
// restart, and the caller saw the error). ErrUnknownClient if there is none;
// ErrDefaultPrincipal for the well-known service principal.
func (s *Service) unindex(oid string) (string, error) {
	if strings.EqualFold(oid, DefaultObjectID) {
		return "", ErrDefaultPrincipal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clientID, ok := s.live[strings.ToLower(oid)]
	if !ok {
		return "", fmt.Errorf("identity: %w: object id %q", ErrUnknownClient, oid)
	}
	delete(s.live, strings.ToLower(oid))
	return clientID, nil
}

// DeletePrincipal deletes the principal with object ID oid: its secrets
// stop working and every token issued to it stops verifying at once
// (ErrRevoked). ErrUnknownClient if there is none; ErrDefaultPrincipal for
// the well-known service principal.
func (s *Service) DeletePrincipal(ctx context.Context, oid string) error {
	clientID, err := s.unindex(oid)
	if err != nil {
		return err
	}
	err = s.store.Update(ctx, func(tx store.Tx) error { return tx.Delete(tablePrincipals, clientID) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("identity: deleting principal: %w", err)
	}
	return nil
}

// PrincipalByClientID returns the principal with a client (application) ID.
func (s *Service) PrincipalByClientID(ctx context.Context, clientID string) (Principal, error) {
	rec, err := s.principal(ctx, clientID)
	if err != nil {
		return Principal{}, err
	}
	return rec.Principal, nil
}

// PrincipalByObjectID returns the principal with an object ID.
func (s *Service) PrincipalByObjectID(ctx context.Context, oid string) (Principal, error) {
	s.mu.RLock()
	clientID, ok := s.live[strings.ToLower(oid)]
	s.mu.RUnlock()
	if !ok {
		return Principal{}, fmt.Errorf("identity: %w: object id %q", ErrUnknownClient, oid)
	}
	return s.PrincipalByClientID(ctx, clientID)
}

// ListPrincipals returns every principal, ordered by client ID.
func (s *Service) ListPrincipals(ctx context.Context) ([]Principal, error) {
	var out []Principal
	err := s.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tablePrincipals, "", func(_ string, b []byte) bool {
			var rec principalRecord
			if json.Unmarshal(b, &rec) == nil {
				fixup(&rec)
				out = append(out, rec.Principal)
			}
			return true
		})
	})
	return out, err
}
