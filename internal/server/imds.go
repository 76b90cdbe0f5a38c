package server

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/identity"
	"github.com/berth-dev/berth/internal/imds"
)

// imdsGroups tells the metadata endpoint a group's identities, by the
// runtime group a connection came from.
type imdsGroups struct{ svc *aci.Service }

func (g imdsGroups) Identities(ctx context.Context, runtimeID string) (imds.GroupIdentities, error) {
	grp, err := g.svc.GroupByRuntimeID(ctx, runtimeID)
	if apierr.Is(err, apierr.NotFound) {
		return imds.GroupIdentities{}, nil
	}
	if err != nil {
		return imds.GroupIdentities{}, err
	}
	var out imds.GroupIdentities
	id := grp.Identity
	if id.HasSystem() && id.ClientID != "" {
		out.System = &imds.Identity{ClientID: id.ClientID, ObjectID: id.PrincipalID}
	}
	if id.HasUser() {
		for _, u := range id.UserAssigned {
			out.User = append(out.User, imds.Identity{ClientID: u.ClientID, ObjectID: u.PrincipalID, ResourceID: u.ResourceID})
		}
	}
	return out, nil
}

// imdsTokens issues the metadata endpoint's tokens from the token service,
// with berth's ARM address as issuer base.
type imdsTokens struct {
	ids  *identity.Service
	base string
}

func (t imdsTokens) Issue(ctx context.Context, clientID, resource string) (imds.Token, error) {
	if !knownResource(resource) {
		return imds.Token{}, imds.ErrUnknownResource
	}
	tok, c, err := t.ids.IssueFor(ctx, clientID, resource, t.base)
	if err != nil {
		return imds.Token{}, err
	}
	return imds.Token{AccessToken: tok, NotBefore: time.Unix(c.NotBefore, 0), Expires: c.ExpiresAt()}, nil
}

func (t imdsTokens) Live(oid string) bool { return t.ids.Live(oid) }

// knownResource reports whether the token service has an audience for
// resource (compared as it compares them: case and trailing slashes aside).
func knownResource(resource string) bool {
	norm := func(s string) string { return strings.TrimRight(strings.ToLower(strings.TrimSpace(s)), "/") }
	for _, a := range []string{identity.AudienceARM, identity.AudienceARMAlt, identity.AudienceContainer} {
		if norm(a) == norm(resource) {
			return true
		}
	}
	return false
}

// inGroupAddr is the address berth's ARM endpoint is forwarded to inside
// groups: the address clients use on the host (a wildcard or localhost
// means loopback).
func inGroupAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0", "localhost", "::", "::1":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
