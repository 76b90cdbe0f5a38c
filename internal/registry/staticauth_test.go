package registry

import (
	"context"
	"crypto/subtle"
)

// StaticAuth is an Authenticator with one fixed username and password (and,
// when AADToken is set, one fixed Entra ID token), for tests. Its principal
// has ClientID = Username and, when Principal.Actions is empty, every
// permission. Revoked, when set, tells Current which principals no longer
// hold.
type StaticAuth struct {
	Username, Password string
	AADToken           string
	Principal          Principal
	Revoked            func(Principal) bool
}

var _ Authenticator = StaticAuth{}

// CheckPassword implements Authenticator.
func (a StaticAuth) CheckPassword(_ context.Context, username, password string) (Principal, error) {
	u := subtle.ConstantTimeCompare([]byte(username), []byte(a.Username))
	p := subtle.ConstantTimeCompare([]byte(password), []byte(a.Password))
	if u&p != 1 || a.Username == "" {
		return Principal{}, ErrInvalidCredentials
	}
	return a.principal(), nil
}

// VerifyAADToken implements Authenticator.
func (a StaticAuth) VerifyAADToken(_ context.Context, token string) (Principal, error) {
	if a.AADToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(a.AADToken)) != 1 {
		return Principal{}, ErrInvalidCredentials
	}
	return a.principal(), nil
}

// Current implements Authenticator.
func (a StaticAuth) Current(_ context.Context, p Principal) error {
	if a.Revoked != nil && a.Revoked(p) {
		return ErrInvalidCredentials
	}
	return nil
}

func (a StaticAuth) principal() Principal {
	pr := a.Principal
	if pr.ClientID == "" {
		pr.ClientID = a.Username
	}
	if len(pr.Actions) == 0 {
		pr.Actions = []string{ActionAll}
	}
	return pr
}
