package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/store"
)

// ErrServicePrincipalExists is CreateServicePrincipalFor's error for an
// application that already has its service principal.
var ErrServicePrincipalExists = errors.New("the application already has a service principal")

// PasswordCredential describes one client secret of an application (never
// the secret itself: berth keeps only its hash).
type PasswordCredential struct {
	KeyID       string
	DisplayName string
	Hint        string // the secret's first three characters
	Start       time.Time
	End         time.Time // zero: never expires
}

// CreateApplication creates an application (Microsoft Graph's application
// object) without a service principal and without secrets: it gets no
// tokens until CreateServicePrincipalFor. The returned Principal has no
// ObjectID (its service principal gets one).
func (s *Service) CreateApplication(ctx context.Context, displayName string) (Principal, error) {
	p := Principal{Kind: KindServicePrincipal, TenantID: DefaultTenantID, ClientID: uuid.NewString(),
		DisplayName: displayName, AppObjectID: uuid.NewString(), AppOnly: true}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		return putJSON(tx, tablePrincipals, p.ClientID, principalRecord{Principal: p})
	})
	if err != nil {
		return Principal{}, fmt.Errorf("identity: storing application: %w", err)
	}
	return p, nil
}

// updateRecord changes the principal with clientID in one transaction.
func (s *Service) updateRecord(ctx context.Context, clientID string, change func(rec *principalRecord) error) (*principalRecord, error) {
	var out principalRecord
	err := s.store.Update(ctx, func(tx store.Tx) error {
		b, err := tx.Get(tablePrincipals, strings.ToLower(clientID))
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("identity: %w: %q", ErrUnknownClient, clientID)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return err
		}
		fixup(&out)
		if err := change(&out); err != nil {
			return err
		}
		return putJSON(tx, tablePrincipals, out.ClientID, out)
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateServicePrincipalFor creates the service principal of the
// application with clientID: from now on its secrets get tokens (oid: the
// returned ObjectID). ErrServicePrincipalExists if it has one.
func (s *Service) CreateServicePrincipalFor(ctx context.Context, clientID string) (Principal, error) {
	rec, err := s.updateRecord(ctx, clientID, func(rec *principalRecord) error {
		if rec.Kind != KindServicePrincipal {
			return fmt.Errorf("identity: %w: %q is a managed identity", ErrUnknownClient, clientID)
		}
		if !rec.AppOnly {
			return ErrServicePrincipalExists
		}
		rec.AppOnly = false
		// A new directory object, as Entra makes one: tokens of an earlier
		// service principal of the application stay revoked.
		rec.ObjectID = uuid.NewString()
		return nil
	})
	if err != nil {
		return Principal{}, err
	}
	s.mu.Lock()
	s.live[strings.ToLower(rec.ObjectID)] = strings.ToLower(rec.ClientID)
	s.mu.Unlock()
	return rec.Principal, nil
}

// RemoveServicePrincipal deletes the service principal with object ID oid
// and keeps its application (with its secrets, which authenticate nothing
// until a new service principal is created): its tokens stop verifying at
// once. ErrUnknownClient if there is none; ErrDefaultPrincipal for the
// well-known one. Managed identities are deleted whole (DeletePrincipal).
func (s *Service) RemoveServicePrincipal(ctx context.Context, oid string) error {
	clientID, err := s.unindex(oid)
	if err != nil {
		return err
	}
	_, err = s.updateRecord(ctx, clientID, func(rec *principalRecord) error {
		if rec.Kind == KindManagedIdentity {
			return nil // gone from the index; DeletePrincipal removes it
		}
		rec.AppOnly, rec.ObjectID = true, ""
		return nil
	})
	if err != nil && !errors.Is(err, ErrUnknownClient) {
		return fmt.Errorf("identity: deleting service principal: %w", err)
	}
	return nil
}

// DeleteApplication deletes the application with clientID and its service
// principal, if any (whose tokens stop verifying at once).
// ErrUnknownClient if there is none; ErrDefaultPrincipal for the
// well-known one.
func (s *Service) DeleteApplication(ctx context.Context, clientID string) error {
	if strings.EqualFold(clientID, DefaultClientID) {
		return ErrDefaultPrincipal
	}
	rec, err := s.principal(ctx, clientID)
	if err != nil {
		return err
	}
	if rec.Kind != KindServicePrincipal {
		return fmt.Errorf("identity: %w: %q is a managed identity", ErrUnknownClient, clientID)
	}
	s.mu.Lock()
	delete(s.live, strings.ToLower(rec.ObjectID))
	s.mu.Unlock()
	err = s.store.Update(ctx, func(tx store.Tx) error { return tx.Delete(tablePrincipals, strings.ToLower(rec.ClientID)) })
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("identity: deleting application: %w", err)
	}
	return nil
}

// AddPassword adds a client secret named displayName to the application
// with clientID, valid until end (zero: never expires), and returns it once
// with its description.
func (s *Service) AddPassword(ctx context.Context, clientID, displayName string, end time.Time) (string, PasswordCredential, error) {
	secret := newClientSecret()
	var cred PasswordCredential
	_, err := s.updateRecord(ctx, clientID, func(rec *principalRecord) error {
		if rec.Kind == KindManagedIdentity {
			return fmt.Errorf("identity: managed identity %q has no secrets", clientID)
		}
		sr := newSecret(secret, s.clk.Now())
		sr.DisplayName = displayName
		if !end.IsZero() {
			sr.ExpiresAt = end.UTC()
		}
		rec.Secrets = append(rec.Secrets, sr)
		cred = sr.credential()
		return nil
	})
	if err != nil {
		return "", PasswordCredential{}, err
	}
	return secret, cred, nil
}

// RemovePassword removes the client secret keyID of the application with
// clientID; it reports whether there was one.
func (s *Service) RemovePassword(ctx context.Context, clientID, keyID string) (bool, error) {
	found := false
	_, err := s.updateRecord(ctx, clientID, func(rec *principalRecord) error {
		for i, c := range rec.Secrets {
			if strings.EqualFold(c.KeyID, keyID) {
				rec.Secrets = append(rec.Secrets[:i], rec.Secrets[i+1:]...)
				found = true
				return nil
			}
		}
		return nil
	})
	return found, err
}

// PasswordCredentials describes the client secrets of the application with
// clientID.
func (s *Service) PasswordCredentials(ctx context.Context, clientID string) ([]PasswordCredential, error) {
	rec, err := s.principal(ctx, clientID)
	if err != nil {
		return nil, err
	}
	out := []PasswordCredential{}
	for _, c := range rec.Secrets {
		out = append(out, c.credential())
	}
	return out, nil
}

func (c secretRecord) credential() PasswordCredential {
	return PasswordCredential{KeyID: c.KeyID, DisplayName: c.DisplayName, Hint: c.Hint, Start: c.CreatedAt, End: c.ExpiresAt}
}

// SetDisplayName renames the application (and service principal) with
// clientID.
func (s *Service) SetDisplayName(ctx context.Context, clientID, name string) error {
	_, err := s.updateRecord(ctx, clientID, func(rec *principalRecord) error {
		rec.DisplayName = name
		return nil
	})
	return err
}
