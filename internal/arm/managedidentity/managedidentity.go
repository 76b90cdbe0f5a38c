// Package managedidentity is the ARM surface of Microsoft.ManagedIdentity:
// userAssignedIdentities (PUT, GET, PATCH, DELETE, lists by resource group
// and subscription): routes, wire shapes and the translation to the msi
// service. Every write completes before the answer (the real provider is
// synchronous too).
package managedidentity

import (
	"net/http"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/msi"
)

// Versions are the Microsoft.ManagedIdentity api-versions berth accepts:
// armmsi v1.3.0 sends 2024-11-30, Debian's azure-mgmt-msi 6.1.0 2018-11-30
// (and 2021-09-30-preview, 2022-01-31-preview on request).
var Versions = &arm.Versions{Type: "userAssignedIdentities", List: []string{
	"2018-11-30", "2021-09-30-preview", "2022-01-31-preview", "2023-01-31",
	"2023-07-31-preview", "2024-11-30", "2025-01-31-preview",
}}

// hasIsolationScope reports whether api-version v has properties.isolationScope.
func hasIsolationScope(v string) bool { return v >= "2024-11-30" }

// Actions.
const (
	actionRead   = "Microsoft.ManagedIdentity/userAssignedIdentities/read"
	actionWrite  = "Microsoft.ManagedIdentity/userAssignedIdentities/write"
	actionDelete = "Microsoft.ManagedIdentity/userAssignedIdentities/delete"
)

// API serves Microsoft.ManagedIdentity.
type API struct {
	ARM     *arm.Server
	Service *msi.Service
	// PageSize is how many identities a list page holds; 0: 100.
	PageSize int
}

// Register adds the routes to the ARM server.
func (a *API) Register() {
	const sub = "/subscriptions/{subscriptionId}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
	const rg = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
	v := Versions
	a.ARM.Handle(
		arm.Route{Pattern: sub, Versions: v, Methods: arm.Ops{"GET": arm.List(actionRead, a.listSubscription)}},
		arm.Route{Pattern: rg, Versions: v, Methods: arm.Ops{"GET": arm.List(actionRead, a.listGroup)}},
		arm.Route{Pattern: rg + "/{name}", Versions: v, Methods: arm.Ops{
			"PUT":    arm.Do(actionWrite, a.put),
			"GET":    arm.Do(actionRead, a.get),
			"PATCH":  arm.Do(actionWrite, a.patch),
			"DELETE": arm.Do(actionDelete, a.delete),
		}},
	)
}

// identityIn is the PUT and PATCH body.
type identityIn struct {
	Location   *string            `json:"location"`
	Tags       *map[string]string `json:"tags"`
	Properties *struct {
		IsolationScope *string `json:"isolationScope"`
	} `json:"properties"`
}

// identityOut is a userAssignedIdentity on the wire.
type identityOut struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties propertiesOut     `json:"properties"`
}

type propertiesOut struct {
	TenantID       string `json:"tenantId"`
	PrincipalID    string `json:"principalId"`
	ClientID       string `json:"clientId"`
	IsolationScope string `json:"isolationScope,omitempty"`
}

type listOut struct {
	Value    []identityOut `json:"value"`
	NextLink string        `json:"nextLink,omitempty"`
}

func toWire(i *msi.Identity, version string) identityOut {
	tags := i.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	out := identityOut{ID: i.ID(), Name: i.Name, Type: msi.ResourceType, Location: i.Location, Tags: tags,
		Properties: propertiesOut{TenantID: i.TenantID, PrincipalID: i.PrincipalID, ClientID: i.ClientID}}
	if hasIsolationScope(version) {
		out.Properties.IsolationScope = i.IsolationScope
		if out.Properties.IsolationScope == "" {
			out.Properties.IsolationScope = msi.IsolationNone
		}
	}
	return out
}

func ids(r *arm.Request) (sub, rg, name string) {
	return r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("name")
}

func (a *API) put(w http.ResponseWriter, r *arm.Request) error {
	var in identityIn
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	sub, rg, name := ids(r)
	if in.Location == nil {
		return apierr.New(apierr.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	id := &msi.Identity{Subscription: sub, ResourceGroup: rg, Name: name, Location: *in.Location}
	if in.Tags != nil {
		id.Tags = *in.Tags
	}
	if in.Properties != nil && in.Properties.IsolationScope != nil && hasIsolationScope(r.APIVersion) {
		id.IsolationScope = *in.Properties.IsolationScope
	} else if !hasIsolationScope(r.APIVersion) {
		// Older versions do not carry it: a PUT keeps what is stored.
		if cur, err := a.Service.GetIn(r.Context(), sub, rg, name); err == nil {
			id.IsolationScope = cur.IsolationScope
		}
	}
	out, created, err := a.Service.Put(r.Context(), id)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return arm.WriteJSON(w, status, toWire(out, r.APIVersion))
}

func (a *API) get(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	out, err := a.Service.GetIn(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(out, r.APIVersion))
}

// patch is Update: tags (and, where the version has it, the isolation
// scope); a location that differs is refused as ARM refuses moves.
func (a *API) patch(w http.ResponseWriter, r *arm.Request) error {
	var in identityIn
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	sub, rg, name := ids(r)
	var scope *string
	if in.Properties != nil && hasIsolationScope(r.APIVersion) {
		scope = in.Properties.IsolationScope
	}
	if in.Location != nil {
		cur, err := a.Service.GetIn(r.Context(), sub, rg, name)
		if err != nil {
			return err
		}
		if *in.Location != "" && !sameLocation(cur.Location, *in.Location) {
			return apierr.New(apierr.Invalid, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				cur.Name, cur.Location, cur.ResourceGroup, *in.Location)
		}
	}
	out, err := a.Service.Patch(r.Context(), sub, rg, name, in.Tags, scope)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(out, r.APIVersion))
}

func sameLocation(a, b string) bool {
	return strings.EqualFold(strings.ReplaceAll(a, " ", ""), strings.ReplaceAll(b, " ", ""))
}

func (a *API) delete(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	existed, err := a.Service.Delete(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	return arm.WriteDeleted(w, existed)
}

func (a *API) listGroup(w http.ResponseWriter, r *arm.Request) error {
	return a.list(w, r, r.Param("resourceGroupName"))
}

func (a *API) listSubscription(w http.ResponseWriter, r *arm.Request) error { return a.list(w, r, "") }

func (a *API) list(w http.ResponseWriter, r *arm.Request, rg string) error {
	all, err := a.Service.List(r.Context(), r.Param("subscriptionId"), rg)
	if err != nil {
		return err
	}
	var visible []*msi.Identity
	for _, i := range all {
		if r.Allowed(actionRead, i.ID()) {
			visible = append(visible, i)
		}
	}
	size := a.PageSize
	if size <= 0 {
		size = 100
	}
	page, next := arm.Page(visible, r, size, msi.SortKey)
	out := listOut{Value: []identityOut{}, NextLink: next}
	for _, i := range page {
		out.Value = append(out.Value, toWire(i, r.APIVersion))
	}
	return arm.WriteJSON(w, http.StatusOK, out)
}
