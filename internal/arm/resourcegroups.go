package arm

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/operation"
	"github.com/berth-dev/berth/internal/resources"
)

// Routes of Microsoft.Resources and ARM's own endpoints, registered by
// NewServer's caller through (*Server).HandleCore.
func (s *Server) coreRoutes() []Route {
	rv := ResourcesVersions
	return []Route{
		{Pattern: "/metadata/endpoints", Public: true, Methods: Ops{"GET": {Handler: s.metadata}}},
		{Pattern: "/subscriptions", Versions: rv, Methods: Ops{"GET": Do(AnyPrincipal, s.listSubscriptions)}}, // filtered: a principal without roles sees none
		{Pattern: "/subscriptions/{subscriptionId}", Versions: rv, Methods: Ops{"GET": List(subRead, s.getSubscription)}},
		{Pattern: "/subscriptions/{subscriptionId}/resourcegroups", Versions: rv, Methods: Ops{"GET": List(rgRead, s.listGroups)}},
		{Pattern: "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}", Versions: rv, Methods: Ops{
			"PUT": Do(rgWrite, s.putGroup), "GET": Do(rgRead, s.getGroup), "HEAD": Do(rgRead, s.headGroup),
			"PATCH": Do(rgWrite, s.patchGroup), "DELETE": Do(rgDelete, s.deleteGroup),
		}},
		// Any api-version: the URL carries the version of the request that
		// started the operation, whichever provider that was.
		{Pattern: "/subscriptions/{subscriptionId}/operationresults/{operationId}", Methods: Ops{"GET": Do(opRead, s.operationResult)}},
	}
}

// RBAC actions of Microsoft.Resources. A subscription's GET is a List: any
// role anywhere in the subscription lets its holder see it, as in Azure.
const (
	subRead  = "Microsoft.Resources/subscriptions/read"
	rgRead   = "Microsoft.Resources/subscriptions/resourcegroups/read"
	rgWrite  = "Microsoft.Resources/subscriptions/resourcegroups/write"
	rgDelete = "Microsoft.Resources/subscriptions/resourcegroups/delete"
	opRead   = "Microsoft.Resources/subscriptions/operationresults/read"
)

// HandleCore registers the Microsoft.Resources routes and ARM's own.
func (s *Server) HandleCore() { s.Handle(s.coreRoutes()...) }

type wireSubscription struct {
	ID                   string         `json:"id"`
	SubscriptionID       string         `json:"subscriptionId"`
	TenantID             string         `json:"tenantId"`
	DisplayName          string         `json:"displayName"`
	State                string         `json:"state"`
	SubscriptionPolicies map[string]any `json:"subscriptionPolicies"`
	AuthorizationSource  string         `json:"authorizationSource"`
	ManagedByTenants     []any          `json:"managedByTenants"`
}

func toWireSub(s *resources.Subscription) wireSubscription {
	return wireSubscription{
		ID: "/subscriptions/" + s.ID, SubscriptionID: s.ID, TenantID: s.TenantID, DisplayName: s.DisplayName, State: s.State,
		SubscriptionPolicies: map[string]any{"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
		AuthorizationSource:  "RoleBased", ManagedByTenants: []any{},
	}
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *Request) error {
	subs, err := s.Resources.ListSubscriptions(r.Context(), r.Principal.TenantID)
	if err != nil {
		return err
	}
	out := []wireSubscription{}
	for _, sub := range subs {
		// Any role in the subscription shows it, as in Azure.
		if r.AllowedBelow(subRead, "/subscriptions/"+sub.ID) {
			out = append(out, toWireSub(sub))
		}
	}
	return WriteJSON(w, http.StatusOK, map[string]any{"value": out, "count": map[string]any{"type": "Total", "value": len(out)}})
}

func (s *Server) getSubscription(w http.ResponseWriter, r *Request) error {
	sub, err := s.Resources.GetSubscription(r.Context(), r.Param("subscriptionId"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, toWireSub(sub))
}

type wireGroup struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties *struct {
		ProvisioningState string `json:"provisioningState,omitempty"`
	} `json:"properties,omitempty"`
}

func toWireGroup(g *resources.ResourceGroup) wireGroup {
	wg := wireGroup{ID: g.ID(), Name: g.Name, Type: "Microsoft.Resources/resourceGroups", Location: g.Location, ManagedBy: g.ManagedBy, Tags: g.Tags}
	wg.Properties = &struct {
		ProvisioningState string `json:"provisioningState,omitempty"`
	}{g.ProvisioningState}
	return wg
}

func (s *Server) listGroups(w http.ResponseWriter, r *Request) error {
	gs, err := s.Resources.List(r.Context(), r.Param("subscriptionId"))
	if err != nil {
		return err
	}
	out := []wireGroup{}
	for _, g := range gs {
		if r.Allowed(rgRead, g.ID()) {
			out = append(out, toWireGroup(g))
		}
	}
	return WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (s *Server) putGroup(w http.ResponseWriter, r *Request) error {
	var in wireGroup
	if err := DecodeJSON(r, &in); err != nil {
		return err
	}
	g, created, err := s.Resources.CreateOrUpdate(r.Context(), resources.ResourceGroup{
		Subscription: r.Param("subscriptionId"), Name: r.Param("resourceGroupName"), Location: in.Location, Tags: in.Tags, ManagedBy: in.ManagedBy,
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return WriteJSON(w, status, toWireGroup(g))
}

func (s *Server) getGroup(w http.ResponseWriter, r *Request) error {
	g, err := s.Resources.Get(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, toWireGroup(g))
}

func (s *Server) headGroup(w http.ResponseWriter, r *Request) error {
	if _, err := s.Resources.Get(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName")); err != nil {
		if apierr.Is(err, apierr.NotFound) {
			w.WriteHeader(http.StatusNotFound)
			return nil
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) patchGroup(w http.ResponseWriter, r *Request) error {
	var in struct {
		Tags *map[string]string `json:"tags"`
	}
	if err := DecodeJSON(r, &in); err != nil {
		return err
	}
	var tags map[string]string
	if in.Tags != nil {
		tags = *in.Tags
	}
	g, err := s.Resources.Patch(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), tags, in.Tags != nil)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, toWireGroup(g))
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *Request) error {
	sub := r.Param("subscriptionId")
	op, err := s.Resources.BeginDelete(r.Context(), sub, r.Param("resourceGroupName"))
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.Base+"/subscriptions/"+sub+"/operationresults/"+op.ID+"?api-version="+r.APIVersion)
	s.setRetryAfter(w)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// operationResult is the Location-style poll target: 202 while running,
// 200 when it succeeded, the error envelope when it failed.
func (s *Server) operationResult(w http.ResponseWriter, r *Request) error {
	op, err := s.Operations.Get(r.Context(), r.Param("operationId"))
	if err != nil {
		return err
	}
	if !strings.HasPrefix(strings.ToLower(op.ResourceID), "/subscriptions/"+strings.ToLower(r.Param("subscriptionId"))+"/") {
		return apierr.New(apierr.NotFound, "OperationNotFound", "The operation '%s' could not be found.", op.ID)
	}
	switch op.Status {
	case operation.InProgress:
		w.Header().Set("Location", r.Base+r.URL.RequestURI())
		s.setRetryAfter(w)
		w.WriteHeader(http.StatusAccepted)
		return nil
	case operation.Succeeded:
		w.WriteHeader(http.StatusOK)
		return nil
	default:
		return opError(op)
	}
}

func opError(op *operation.Operation) error {
	class := apierr.Conflict
	if op.ErrorCode == "InternalServerError" {
		class = apierr.Internal
	}
	return &apierr.Error{Class: class, Code: op.ErrorCode, Message: op.ErrorMsg}
}

// SetRetryAfter advertises the poll delay: Retry-After-Ms first (azcore
// reads it first), Retry-After in whole seconds for other clients.
func (s *Server) setRetryAfter(w http.ResponseWriter) {
	d := s.RetryAfter
	w.Header().Set("Retry-After-Ms", strconv.FormatInt(d.Milliseconds(), 10))
	w.Header().Set("x-ms-retry-after-ms", strconv.FormatInt(d.Milliseconds(), 10))
	secs := int((d.Milliseconds() + 999) / 1000)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
}

// SetRetryAfter is setRetryAfter for resource-provider packages.
func (s *Server) SetRetryAfter(w http.ResponseWriter) { s.setRetryAfter(w) }

func (s *Server) metadata(w http.ResponseWriter, r *Request) error {
	if s.Metadata == nil {
		return apierr.New(apierr.NotFound, "NotFound", "No metadata.")
	}
	return WriteJSON(w, http.StatusOK, s.Metadata(r.Base))
}
