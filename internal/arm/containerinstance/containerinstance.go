// Package containerinstance is the ARM surface of
// Microsoft.ContainerInstance: routes, wire shapes and the translation
// between them and the container-group service (package aci).
package containerinstance

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/aci"
	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/operation"
)

const resourceType = "Microsoft.ContainerInstance/containerGroups"

// Versions are the api-versions berth serves for container groups: every
// published stable and preview version from 2021-03-01 on.
var Versions = &arm.Versions{Type: "containerGroups", List: []string{
	"2021-03-01", "2021-07-01", "2021-09-01", "2021-10-01", "2022-09-01", "2022-10-01-preview",
	"2023-02-01-preview", "2023-05-01", "2024-05-01-preview", "2024-09-01-preview", "2024-10-01-preview",
	"2024-11-01-preview", "2025-09-01", "2026-05-01", "2026-06-01-preview",
}}

// operationVersions adds 2018-06-01, the version of ACI's own
// operation-status URLs.
var operationVersions = &arm.Versions{Type: "locations/operations",
	List: append([]string{"2018-06-01"}, Versions.List...)}

// API serves container groups.
type API struct {
	ARM     *arm.Server
	Service *aci.Service
	// PageSize is the number of groups per list page; default 100.
	PageSize int
}

// Paths of the routes.
const (
	subPath   = "/subscriptions/{subscriptionId}"
	provPath  = subPath + "/providers/Microsoft.ContainerInstance"
	rgPath    = subPath + "/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerInstance"
	groupPath = rgPath + "/containerGroups/{containerGroupName}"
)

// RBAC actions (Microsoft.ContainerInstance's operations list names them).
const (
	ns        = "Microsoft.ContainerInstance"
	actRead   = ns + "/containerGroups/read"
	actWrite  = ns + "/containerGroups/write"
	actDelete = ns + "/containerGroups/delete"
)

// Register adds the routes to the ARM server: the table reads on one
// screen; each feature's handlers live in their own file.
func (a *API) Register() {
	a.ARM.Handle(
		arm.Route{Pattern: provPath + "/containerGroups", Versions: Versions, Methods: arm.Ops{"GET": arm.List(actRead, a.listSubscription)}},
		arm.Route{Pattern: rgPath + "/containerGroups", Versions: Versions, Methods: arm.Ops{"GET": arm.List(actRead, a.listGroup)}},
		arm.Route{Pattern: groupPath, Versions: Versions, Methods: arm.Ops{
			"PUT": arm.Do(actWrite, a.put), "GET": arm.Do(actRead, a.get),
			"PATCH": arm.Do(actWrite, a.patch), "DELETE": arm.Do(actDelete, a.delete)}},
		arm.Route{Pattern: groupPath + "/containers/{containerName}/logs", Versions: Versions,
			Methods: arm.Ops{"GET": arm.Do(ns+"/containerGroups/containers/logs/read", a.logs)}},
		arm.Route{Pattern: provPath + "/locations/{location}/operations/{operationId}",
			Versions: operationVersions, Methods: arm.Ops{"GET": arm.Do(ns+"/locations/operations/read", a.operation)}},
	)
	a.ARM.Handle(a.execRoutes()...)
	a.ARM.Handle(a.actionRoutes()...)
	a.ARM.Handle(a.locationRoutes()...)
	a.ARM.Handle(a.profileRoutes()...)
}

func ids(r *arm.Request) (sub, rg, name string) {
	return r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("containerGroupName")
}

func (a *API) put(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	body, err := arm.ReadBody(r)
	if err != nil {
		return err
	}
	g, err := decodeGroup(body, r.APIVersion)
	if err != nil {
		return err
	}
	g.Subscription, g.ResourceGroup, g.Name = sub, rg, name
	v, created, op, err := a.Service.CreateOrUpdate(r.Context(), g)
	if err != nil {
		return err
	}
	a.setAsyncOperation(w, r, v.Group, op)
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	// The real service's 201 carries the instanceView (state Pending).
	return arm.WriteJSON(w, status, toWire(v, r.APIVersion, true))
}

// setAsyncOperation points the client at op's status, in ACI's URL shape.
func (a *API) setAsyncOperation(w http.ResponseWriter, r *arm.Request, g *aci.Group, op *operation.Operation) {
	loc := strings.ToLower(strings.ReplaceAll(g.Location, " ", ""))
	w.Header().Set("Azure-AsyncOperation", r.Base+"/subscriptions/"+g.Subscription+"/providers/Microsoft.ContainerInstance/locations/"+loc+
		"/operations/"+op.ID+"?api-version=2018-06-01")
	a.ARM.SetRetryAfter(w)
}

func (a *API) get(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	v, err := a.Service.View(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(v, r.APIVersion, true))
}

// patch updates tags (the only property PATCH changes). A body without
// "tags" leaves them as they are; "tags": {} or null clears them.
func (a *API) patch(w http.ResponseWriter, r *arm.Request) error {
	var in struct {
		Tags *json.RawMessage `json:"tags"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	sub, rg, name := ids(r)
	if in.Tags != nil {
		var tags map[string]string
		if err := arm.Unmarshal(*in.Tags, &tags); err != nil {
			return err
		}
		if err := a.Service.SetTags(r.Context(), sub, rg, name, tags); err != nil {
			return err
		}
	}
	v, err := a.Service.View(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(v, r.APIVersion, true))
}

func (a *API) delete(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	v, err := a.Service.Delete(r.Context(), sub, rg, name)
	if apierr.Is(err, apierr.NotFound) && apierr.As(err).Code == "ResourceNotFound" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(v, r.APIVersion, true))
}

func (a *API) listGroup(w http.ResponseWriter, r *arm.Request) error {
	return a.list(w, r, r.Param("resourceGroupName"))
}

func (a *API) listSubscription(w http.ResponseWriter, r *arm.Request) error {
	return a.list(w, r, "")
}

// pageSize is how many groups a list page holds (nextLink continues).
func (a *API) pageSize() int {
	if a.PageSize > 0 {
		return a.PageSize
	}
	return 100
}

func (a *API) list(w http.ResponseWriter, r *arm.Request, rg string) error {
	all, err := a.Service.List(r.Context(), r.Param("subscriptionId"), rg)
	if err != nil {
		return err
	}
	gs := all[:0:0]
	for _, g := range all {
		if r.Allowed(actRead, g.ID()) {
			gs = append(gs, g)
		}
	}
	page, next := arm.Page(gs, r, a.pageSize(), aci.SortKey)
	out := listResult{Value: []containerGroup{}, NextLink: next}
	for _, g := range page {
		out.Value = append(out.Value, toWire(&aci.View{Group: g}, r.APIVersion, false))
	}
	return arm.WriteJSON(w, http.StatusOK, out)
}

func (a *API) logs(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	q := r.URL.Query()
	tail := 0
	if t := q.Get("tail"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return apierr.New(apierr.Invalid, "InvalidTailValue", "The 'tail' value '%s' is invalid. It must be a non-negative integer.", t)
		}
		tail = n
	}
	timestamps := false
	if v := r.URL.Query().Get("timestamps"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return apierr.New(apierr.Invalid, "InvalidTimestampsValue", "The 'timestamps' value '%s' is invalid. It must be 'true' or 'false'.", v)
		}
		timestamps = b
	}
	content, err := a.Service.Logs(r.Context(), sub, rg, name, r.Param("containerName"), aci.LogOptions{Tail: tail, Timestamps: timestamps})
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, logs{Content: content})
}

func (a *API) operation(w http.ResponseWriter, r *arm.Request) error {
	op, err := a.ARM.Operations.Get(r.Context(), r.Param("operationId"))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(strings.ToLower(op.ResourceID), "/subscriptions/"+strings.ToLower(r.Param("subscriptionId"))+"/") {
		return apierr.New(apierr.NotFound, "OperationNotFound", "The operation '%s' could not be found.", op.ID)
	}
	// The real status body lists the group's events.
	var events []aci.Event
	if sub, rg, name, ok := parseGroupID(op.ResourceID); ok {
		events, _ = a.Service.GroupEvents(r.Context(), sub, rg, name)
	}
	st := operationStatusOf(op, events)
	if op.Status == operation.InProgress {
		a.ARM.SetRetryAfter(w)
	}
	return arm.WriteJSON(w, http.StatusOK, st)
}

// parseGroupID splits a container group's resource id.
func parseGroupID(id string) (sub, rg, name string, ok bool) {
	p := strings.Split(strings.Trim(id, "/"), "/")
	if len(p) != 8 || !strings.EqualFold(p[0], "subscriptions") || !strings.EqualFold(p[2], "resourceGroups") {
		return "", "", "", false
	}
	return p[1], p[3], p[7], true
}
