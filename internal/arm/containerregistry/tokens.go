package containerregistry

// registries/scopeMaps, registries/tokens and generateCredentials. Writes
// complete synchronously: PUT answers 201 (created) or 200 with
// provisioningState Succeeded, DELETE 200 (204 when absent), and
// generateCredentials 200 with the new passwords — the SDKs' pollers accept
// each as a finished operation. A token's passwords are listed by name,
// creation time and expiry; their values appear only in generateCredentials'
// answer.

import (
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/registries"
)

const (
	scopeMapType = resourceType + "/scopeMaps"
	tokenType    = resourceType + "/tokens"
)

// registerTokens adds the routes of scope maps, tokens and
// generateCredentials under registry path one.
func (a *API) registerTokens(one string) {
	const ns = "Microsoft.ContainerRegistry/registries"
	a.ARM.Handle(
		arm.Route{Pattern: one + "/scopeMaps", Versions: Versions, Methods: arm.Ops{"GET": arm.List(ns+"/scopeMaps/read", a.listScopeMaps)}},
		arm.Route{Pattern: one + "/scopeMaps/{scopeMapName}", Versions: Versions, Methods: arm.Ops{
			"PUT": arm.Do(ns+"/scopeMaps/write", a.putScopeMap), "GET": arm.Do(ns+"/scopeMaps/read", a.getScopeMap),
			"PATCH": arm.Do(ns+"/scopeMaps/write", a.patchScopeMap), "DELETE": arm.Do(ns+"/scopeMaps/delete", a.deleteScopeMap)}},
		arm.Route{Pattern: one + "/tokens", Versions: Versions, Methods: arm.Ops{"GET": arm.List(ns+"/tokens/read", a.listTokens)}},
		arm.Route{Pattern: one + "/tokens/{tokenName}", Versions: Versions, Methods: arm.Ops{
			"PUT": arm.Do(ns+"/tokens/write", a.putToken), "GET": arm.Do(ns+"/tokens/read", a.getToken),
			"PATCH": arm.Do(ns+"/tokens/write", a.patchToken), "DELETE": arm.Do(ns+"/tokens/delete", a.deleteToken)}},
		arm.Route{Pattern: one + "/generateCredentials", Versions: Versions, Methods: arm.Ops{
			"POST": arm.Do(ns+"/generateCredentials/action", a.generateCredentials)}},
	)
}

// Wire shapes.

type scopeMapProperties struct {
	Description       string    `json:"description,omitempty"`
	Type              string    `json:"type"`
	CreationDate      time.Time `json:"creationDate"`
	ProvisioningState string    `json:"provisioningState"`
	Actions           []string  `json:"actions"`
}

type scopeMap struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Properties scopeMapProperties `json:"properties"`
}

func scopeMapToWire(r *registries.Registry, m *registries.ScopeMap) scopeMap {
	actions := m.Actions
	if actions == nil {
		actions = []string{}
	}
	return scopeMap{ID: registries.ScopeMapID(r, m.Name), Name: m.Name, Type: scopeMapType,
		Properties: scopeMapProperties{Description: m.Description, Type: m.Type(), CreationDate: m.CreationDate,
			ProvisioningState: "Succeeded", Actions: actions}}
}

type tokenPassword struct {
	CreationTime *time.Time `json:"creationTime,omitempty"`
	Expiry       *time.Time `json:"expiry,omitempty"`
	Name         string     `json:"name"`
	Value        string     `json:"value,omitempty"`
}

type tokenCredentials struct {
	Certificates []any           `json:"certificates"`
	Passwords    []tokenPassword `json:"passwords"`
}

type tokenProperties struct {
	CreationDate      time.Time        `json:"creationDate"`
	ScopeMapID        string           `json:"scopeMapId"`
	Credentials       tokenCredentials `json:"credentials"`
	ProvisioningState string           `json:"provisioningState"`
	Status            string           `json:"status"`
}

type token struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Properties tokenProperties `json:"properties"`
}

// tokenToWire never carries password values: the service does not have them.
func tokenToWire(r *registries.Registry, t *registries.Token) token {
	pw := []tokenPassword{}
	for _, p := range t.Passwords {
		ct := p.CreationTime
		pw = append(pw, tokenPassword{CreationTime: &ct, Expiry: p.Expiry, Name: p.Name})
	}
	return token{ID: registries.TokenID(r, t.Name), Name: t.Name, Type: tokenType,
		Properties: tokenProperties{CreationDate: t.CreationDate, ScopeMapID: registries.ScopeMapID(r, t.ScopeMap),
			Credentials:       tokenCredentials{Certificates: []any{}, Passwords: pw},
			ProvisioningState: "Succeeded", Status: t.Status}}
}

func childIDs(r *arm.Request, child string) (sub, rg, name, c string) {
	sub, rg, name = ids(r)
	return sub, rg, name, r.Param(child)
}

func created(ok bool) int {
	if ok {
		return http.StatusCreated
	}
	return http.StatusOK
}

// deleted answers a DELETE: 200, or 204 when the resource was absent.
func deleted(w http.ResponseWriter, err error) error {
	if apierr.Is(err, apierr.NotFound) && apierr.As(err).Code == "ResourceNotFound" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// Scope maps.

type scopeMapBody struct {
	Properties *struct {
		Description *string   `json:"description"`
		Actions     *[]string `json:"actions"`
	} `json:"properties"`
}

func (b scopeMapBody) update() registries.ScopeMapUpdate {
	if b.Properties == nil {
		return registries.ScopeMapUpdate{}
	}
	return registries.ScopeMapUpdate{Description: b.Properties.Description, Actions: b.Properties.Actions}
}

func (a *API) listScopeMaps(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, err := a.Service.Get(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	maps, err := a.Service.ListScopeMaps(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	out := []scopeMap{}
	for _, m := range maps {
		if wm := scopeMapToWire(reg, m); r.Allowed(scopeMapType+"/read", wm.ID) {
			out = append(out, wm)
		}
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (a *API) getScopeMap(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name, m := childIDs(r, "scopeMapName")
	reg, sm, err := a.Service.GetScopeMap(r.Context(), sub, rg, name, m)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, scopeMapToWire(reg, sm))
}

func (a *API) putScopeMap(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name, m := childIDs(r, "scopeMapName")
	var in scopeMapBody
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.Properties == nil {
		return missing("properties", "")
	}
	if in.Properties.Actions == nil {
		return missing("actions", "properties")
	}
	reg, sm, ok, err := a.Service.PutScopeMap(r.Context(), sub, rg, name, m, in.update())
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, created(ok), scopeMapToWire(reg, sm))
}

func (a *API) patchScopeMap(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name, m := childIDs(r, "scopeMapName")
	var in scopeMapBody
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	reg, sm, err := a.Service.PatchScopeMap(r.Context(), sub, rg, name, m, in.update())
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, scopeMapToWire(reg, sm))
}

func (a *API) deleteScopeMap(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name, m := childIDs(r, "scopeMapName")
	return deleted(w, a.Service.DeleteScopeMap(r.Context(), sub, rg, name, m))
}

// Tokens.

type tokenBody struct {
	Properties *struct {
		ScopeMapID  *string `json:"scopeMapId"`
		Status      *string `json:"status"`
		Credentials *struct {
			Certificates []struct {
				Name string `json:"name"`
			} `json:"certificates"`
			Passwords *[]struct {
				Name string `json:"name"`
			} `json:"passwords"`
		} `json:"credentials"`
	} `json:"properties"`
}

func (b tokenBody) update() (registries.TokenUpdate, error) {
	p := b.Properties
	if p == nil {
		return registries.TokenUpdate{}, nil
	}
	u := registries.TokenUpdate{ScopeMapID: p.ScopeMapID, Status: p.Status}
	if c := p.Credentials; c != nil {
		if len(c.Certificates) > 0 {
			return u, apierr.New(apierr.Invalid, "TokenCertificatesNotSupported",
				"berth does not support token certificates (used by connected registries); use passwords from generateCredentials.")
		}
		if c.Passwords != nil {
			keep := []string{}
			for _, pw := range *c.Passwords {
				keep = append(keep, pw.Name)
			}
			u.KeepPasswords = &keep
		}
	}
	return u, nil
}

func (a *API) listTokens(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, toks, err := a.Service.ListTokens(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	out := []token{}
	for _, t := range toks {
		if wt := tokenToWire(reg, t); r.Allowed(tokenType+"/read", wt.ID) {
			out = append(out, wt)
		}
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (a *API) getToken(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name, t := childIDs(r, "tokenName")
	reg, tok, err := a.Service.GetToken(r.Context(), sub, rg, name, t)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, tokenToWire(reg, tok))
}

func (a *API) putToken(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name, t := childIDs(r, "tokenName")
	var in tokenBody
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.Properties == nil {
		return missing("properties", "")
	}
	u, err := in.update()
	if err != nil {
		return err
	}
	reg, tok, ok, err := a.Service.PutToken(r.Context(), sub, rg, name, t, u)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, created(ok), tokenToWire(reg, tok))
}

func (a *API) patchToken(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name, t := childIDs(r, "tokenName")
	var in tokenBody
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	u, err := in.update()
	if err != nil {
		return err
	}
	reg, tok, err := a.Service.PatchToken(r.Context(), sub, rg, name, t, u)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, tokenToWire(reg, tok))
}

func (a *API) deleteToken(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name, t := childIDs(r, "tokenName")
	return deleted(w, a.Service.DeleteToken(r.Context(), sub, rg, name, t))
}

// generateCredentials answers {username, passwords:[{name, value,
// creationTime, expiry}]} with the passwords it made (one when the body
// names it, both otherwise).
func (a *API) generateCredentials(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	var in struct {
		TokenID *string    `json:"tokenId"`
		Expiry  *time.Time `json:"expiry"`
		Name    *string    `json:"name"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.TokenID == nil {
		return missing("tokenId", "")
	}
	which := ""
	if in.Name != nil {
		which = *in.Name
	}
	tok, gen, err := a.Service.GenerateCredentials(r.Context(), sub, rg, name, *in.TokenID, which, in.Expiry)
	if err != nil {
		return err
	}
	pw := []tokenPassword{}
	for _, g := range gen {
		ct := g.CreationTime
		pw = append(pw, tokenPassword{CreationTime: &ct, Expiry: g.Expiry, Name: g.Name, Value: g.Value})
	}
	w.Header().Set("Cache-Control", "no-store")
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"username": tok.Name, "passwords": pw})
}
