// Package containerregistry is the ARM surface of
// Microsoft.ContainerRegistry/registries: routes, wire shapes and the
// translation to the registries service.
package containerregistry

import (
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/registries"
)

const resourceType = "Microsoft.ContainerRegistry/registries"

// Versions are the api-versions the SDKs and az send for registries.
var Versions = &arm.Versions{Type: "registries", List: []string{
	"2017-03-01", "2017-10-01", "2019-05-01", "2019-12-01-preview", "2020-11-01-preview", "2021-06-01-preview",
	"2021-08-01-preview", "2021-09-01", "2021-12-01-preview", "2022-02-01-preview", "2022-12-01", "2023-01-01-preview",
	"2023-06-01-preview", "2023-07-01", "2023-08-01-preview", "2023-11-01-preview", "2024-11-01-preview", "2025-03-01-preview",
	"2025-04-01", "2025-05-01-preview", "2025-11-01",
}}

// API serves registries.
type API struct {
	ARM     *arm.Server
	Service *registries.Service
}

// Register adds the routes to the ARM server.
func (a *API) Register() {
	const base = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.ContainerRegistry/registries"
	const one = base + "/{registryName}"
	const ns = "Microsoft.ContainerRegistry/registries"
	post := func(action string, h arm.HandlerFunc) arm.Ops { return arm.Ops{"POST": arm.Do(ns+action, h)} }
	a.ARM.Handle(
		arm.Route{Pattern: "/subscriptions/{subscriptionId}/providers/Microsoft.ContainerRegistry/registries", Versions: Versions,
			Methods: arm.Ops{"GET": arm.List(ns+"/read", a.listSubscription)}},
		arm.Route{Pattern: "/subscriptions/{subscriptionId}/providers/Microsoft.ContainerRegistry/checkNameAvailability", Versions: Versions,
			Methods: arm.Ops{"POST": arm.Do("Microsoft.ContainerRegistry/checkNameAvailability/read", a.checkName)}},
		arm.Route{Pattern: base, Versions: Versions, Methods: arm.Ops{"GET": arm.List(ns+"/read", a.listGroup)}},
		arm.Route{Pattern: one, Versions: Versions, Methods: arm.Ops{
			"PUT": arm.Do(ns+"/write", a.put), "GET": arm.Do(ns+"/read", a.get),
			"PATCH": arm.Do(ns+"/write", a.patch), "DELETE": arm.Do(ns+"/delete", a.delete)}},
		arm.Route{Pattern: one + "/listCredentials", Versions: Versions, Methods: post("/listCredentials/action", a.listCredentials)},
		arm.Route{Pattern: one + "/regenerateCredential", Versions: Versions, Methods: post("/regenerateCredential/action", a.regenerate)},
		arm.Route{Pattern: one + "/listUsages", Versions: Versions, Methods: arm.Ops{"GET": arm.Do(ns+"/listUsages/read", a.usages)}},
		arm.Route{Pattern: one + "/importImage", Versions: Versions, Methods: post("/importImage/action", a.importImage)},
		arm.Route{Pattern: one + "/privateEndpointConnections", Versions: Versions, Methods: arm.Ops{
			"GET": arm.Do(ns+"/privateEndpointConnections/read", a.listConnections)}},
		arm.Route{Pattern: one + "/privateEndpointConnections/{connectionName}", Versions: Versions, Methods: arm.Ops{
			"GET":    arm.Do(ns+"/privateEndpointConnections/read", a.getConnection),
			"PUT":    arm.Do(ns+"/privateEndpointConnections/write", a.putConnection),
			"DELETE": arm.Do(ns+"/privateEndpointConnections/delete", a.deleteConnection)}},
		arm.Route{Pattern: one + "/privateLinkResources", Versions: Versions, Methods: arm.Ops{
			"GET": arm.Do(ns+"/privateLinkResources/read", a.listLinkResources)}},
		arm.Route{Pattern: one + "/privateLinkResources/{groupName}", Versions: Versions, Methods: arm.Ops{
			"GET": arm.Do(ns+"/privateLinkResources/read", a.getLinkResource)}},
	)
	a.registerTokens(one)
}

func ids(r *arm.Request) (sub, rg, name string) {
	return r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("registryName")
}

// Wire shapes (2019-05-01 … 2025-11-01 share these).

type sku struct {
	Name string `json:"name"`
	Tier string `json:"tier,omitempty"`
}

type status struct {
	Status string `json:"status"`
}

type policies struct {
	QuarantinePolicy status `json:"quarantinePolicy"`
	TrustPolicy      struct {
		Type   string `json:"type"`
		Status string `json:"status"`
	} `json:"trustPolicy"`
	RetentionPolicy struct {
		Days   int    `json:"days"`
		Status string `json:"status"`
	} `json:"retentionPolicy"`
	ExportPolicy                     status `json:"exportPolicy"`
	AzureADAuthenticationAsArmPolicy status `json:"azureADAuthenticationAsArmPolicy"`
}

type properties struct {
	LoginServer                string       `json:"loginServer"`
	CreationDate               time.Time    `json:"creationDate"`
	ProvisioningState          string       `json:"provisioningState"`
	AdminUserEnabled           bool         `json:"adminUserEnabled"`
	AnonymousPullEnabled       bool         `json:"anonymousPullEnabled"`
	Policies                   policies     `json:"policies"`
	Encryption                 status       `json:"encryption"`
	DataEndpointEnabled        bool         `json:"dataEndpointEnabled"`
	DataEndpointHostNames      []string     `json:"dataEndpointHostNames"`
	NetworkRuleSet             *ruleSet     `json:"networkRuleSet,omitempty"`
	PrivateEndpointConnections []connection `json:"privateEndpointConnections"`
	PublicNetworkAccess        string       `json:"publicNetworkAccess"`
	NetworkRuleBypassOptions   string       `json:"networkRuleBypassOptions"`
	ZoneRedundancy             string       `json:"zoneRedundancy"`
}

type registry struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	SKU        sku               `json:"sku"`
	Properties properties        `json:"properties"`
}

func toWire(r *registries.Registry) registry {
	p := properties{
		LoginServer: r.LoginServer, CreationDate: r.CreationDate, ProvisioningState: r.ProvisioningState,
		AdminUserEnabled: r.AdminUserEnabled, AnonymousPullEnabled: r.AnonymousPullEnabled,
		Encryption: status{"disabled"}, DataEndpointHostNames: []string{}, PrivateEndpointConnections: []connection{},
		PublicNetworkAccess: r.PublicAccess(), NetworkRuleBypassOptions: r.Bypass(), ZoneRedundancy: "Disabled",
	}
	if r.SKU == registries.PremiumSKU {
		// ACR shows the rule set of Premium registries only.
		p.NetworkRuleSet = &ruleSet{DefaultAction: r.DefaultAction(), IPRules: []ipRule{}}
		if r.NetworkRuleSet != nil {
			for _, ip := range r.NetworkRuleSet.IPRules {
				p.NetworkRuleSet.IPRules = append(p.NetworkRuleSet.IPRules, ipRule{Action: ip.Action, Value: ip.Value})
			}
		}
	}
	for _, c := range r.Connections {
		p.PrivateEndpointConnections = append(p.PrivateEndpointConnections, toConnection(r, c))
	}
	p.Policies.QuarantinePolicy = status{"disabled"}
	p.Policies.TrustPolicy.Type, p.Policies.TrustPolicy.Status = "Notary", "disabled"
	p.Policies.RetentionPolicy.Days, p.Policies.RetentionPolicy.Status = 7, "disabled"
	p.Policies.ExportPolicy = status{"enabled"}
	p.Policies.AzureADAuthenticationAsArmPolicy = status{"enabled"}
	return registry{ID: r.ID(), Name: r.Name, Type: resourceType, Location: r.Location, Tags: r.Tags,
		SKU: sku{Name: r.SKU, Tier: r.SKU}, Properties: p}
}

// propertiesIn are the writable properties of PUT and PATCH.
type propertiesIn struct {
	AdminUserEnabled         *bool    `json:"adminUserEnabled"`
	AnonymousPullEnabled     *bool    `json:"anonymousPullEnabled"`
	PublicNetworkAccess      *string  `json:"publicNetworkAccess"`
	NetworkRuleSet           *ruleSet `json:"networkRuleSet"`
	NetworkRuleBypassOptions *string  `json:"networkRuleBypassOptions"`
}

type putBody struct {
	Location   *string                `json:"location"`
	Tags       map[string]string      `json:"tags"`
	SKU        *struct{ Name string } `json:"sku"`
	Properties *propertiesIn          `json:"properties"`
}

func missing(prop, path string) error {
	return apierr.New(apierr.Invalid, "InvalidRequestContent",
		"The request content was invalid and could not be deserialized: 'Required property '%s' not found in JSON. Path '%s'.'", prop, path)
}

func (a *API) put(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	var in putBody
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.Location == nil {
		return missing("location", "")
	}
	if in.SKU == nil {
		return missing("sku", "")
	}
	reg := &registries.Registry{Subscription: sub, ResourceGroup: rg, Name: name, Location: *in.Location, Tags: in.Tags, SKU: in.SKU.Name}
	if in.Properties != nil {
		if in.Properties.AdminUserEnabled != nil {
			reg.AdminUserEnabled = *in.Properties.AdminUserEnabled
		}
		if in.Properties.AnonymousPullEnabled != nil {
			reg.AnonymousPullEnabled = *in.Properties.AnonymousPullEnabled
		}
		if v := in.Properties.PublicNetworkAccess; v != nil {
			reg.PublicNetworkAccess = *v
		}
		if v := in.Properties.NetworkRuleBypassOptions; v != nil {
			reg.NetworkRuleBypassOptions = *v
		}
		if rs := in.Properties.NetworkRuleSet; rs != nil {
			d := rs.toDomain()
			reg.NetworkRuleSet = &d
		}
	}
	out, created, err := a.Service.CreateOrUpdate(r.Context(), reg)
	if err != nil {
		return err
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	return arm.WriteJSON(w, code, toWire(out))
}

func (a *API) get(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, err := a.Service.Get(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(reg))
}

func (a *API) patch(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	var in struct {
		Tags       *map[string]string     `json:"tags"`
		SKU        *struct{ Name string } `json:"sku"`
		Properties *propertiesIn          `json:"properties"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	u := registries.Update{Tags: in.Tags}
	if in.SKU != nil {
		u.SKU = &in.SKU.Name
	}
	if in.Properties != nil {
		p := in.Properties
		u.AdminUserEnabled, u.AnonymousPullEnabled = p.AdminUserEnabled, p.AnonymousPullEnabled
		u.PublicNetworkAccess, u.NetworkRuleBypassOptions = p.PublicNetworkAccess, p.NetworkRuleBypassOptions
		if p.NetworkRuleSet != nil {
			d := p.NetworkRuleSet.toDomain()
			u.NetworkRuleSet = &d
		}
	}
	reg, err := a.Service.Patch(r.Context(), sub, rg, name, u)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toWire(reg))
}

func (a *API) delete(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	_, err := a.Service.Delete(r.Context(), sub, rg, name)
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

func (a *API) listGroup(w http.ResponseWriter, r *arm.Request) error {
	return a.list(w, r, r.Param("resourceGroupName"))
}

func (a *API) listSubscription(w http.ResponseWriter, r *arm.Request) error { return a.list(w, r, "") }

func (a *API) list(w http.ResponseWriter, r *arm.Request, rg string) error {
	regs, err := a.Service.List(r.Context(), r.Param("subscriptionId"), rg)
	if err != nil {
		return err
	}
	out := []registry{}
	for _, reg := range regs {
		if r.Allowed("Microsoft.ContainerRegistry/registries/read", reg.ID()) {
			out = append(out, toWire(reg))
		}
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (a *API) checkName(w http.ResponseWriter, r *arm.Request) error {
	var in struct {
		Name *string `json:"name"`
		Type *string `json:"type"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return missing("name", "")
	}
	if in.Type == nil {
		return missing("type", "")
	}
	if !strings.EqualFold(*in.Type, resourceType) {
		return apierr.New(apierr.Invalid, "InvalidResourceType", "The resource type '%s' is not valid. Use '%s'.", *in.Type, resourceType)
	}
	ok, reason, msg, err := a.Service.NameAvailable(r.Context(), *in.Name)
	if err != nil {
		return err
	}
	out := map[string]any{"nameAvailable": ok}
	if !ok {
		out["reason"], out["message"] = reason, msg
	}
	return arm.WriteJSON(w, http.StatusOK, out)
}

func credentials(reg *registries.Registry) map[string]any {
	pw := []map[string]string{}
	for i, n := range registries.PasswordNames {
		pw = append(pw, map[string]string{"name": n, "value": reg.Passwords[i]})
	}
	return map[string]any{"username": reg.Name, "passwords": pw}
}

func (a *API) listCredentials(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, err := a.Service.Credentials(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, credentials(reg))
}

func (a *API) regenerate(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	var in struct {
		Name *string `json:"name"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return missing("name", "")
	}
	reg, err := a.Service.Regenerate(r.Context(), sub, rg, name, *in.Name)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, credentials(reg))
}

func (a *API) usages(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	reg, err := a.Service.Get(r.Context(), sub, rg, name)
	if err != nil {
		return err
	}
	limits := map[string]int64{"Basic": 10 << 30, "Standard": 100 << 30, "Premium": 500 << 30}
	webhooks := map[string]int64{"Basic": 2, "Standard": 10, "Premium": 500}
	size, err := a.Service.Size(r.Context(), reg)
	if err != nil {
		return err
	}
	scopeMaps, tokens, err := a.Service.CountChildren(r.Context(), reg)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": []map[string]any{
		{"name": "Size", "limit": limits[reg.SKU], "currentValue": size, "unit": "Bytes"},
		{"name": "Webhooks", "limit": webhooks[reg.SKU], "currentValue": 0, "unit": "Count"},
		{"name": "ScopeMaps", "limit": registries.MaxScopeMaps, "currentValue": scopeMaps, "unit": "Count"},
		{"name": "Tokens", "limit": registries.MaxTokens, "currentValue": tokens, "unit": "Count"},
	}})
}

func (a *API) importImage(w http.ResponseWriter, r *arm.Request) error {
	sub, rg, name := ids(r)
	var in struct {
		Source *struct {
			ResourceID  string  `json:"resourceId"`
			RegistryURI string  `json:"registryUri"`
			SourceImage *string `json:"sourceImage"`
			Credentials *struct {
				Username string `json:"username"`
				Password string `json:"password"`
			} `json:"credentials"`
		} `json:"source"`
		TargetTags                 []string `json:"targetTags"`
		UntaggedTargetRepositories []string `json:"untaggedTargetRepositories"`
		Mode                       string   `json:"mode"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	if in.Source == nil {
		return missing("source", "")
	}
	if in.Source.SourceImage == nil {
		return missing("sourceImage", "source")
	}
	req := registries.ImportRequest{SourceImage: *in.Source.SourceImage, TargetTags: in.TargetTags, Untagged: in.UntaggedTargetRepositories}
	switch {
	case strings.EqualFold(in.Mode, "Force"):
		req.Force = true
	case in.Mode == "" || strings.EqualFold(in.Mode, "NoForce"):
	default:
		return apierr.New(apierr.Invalid, "InvalidParameter", "The import mode '%s' is invalid. Supported values are 'NoForce' and 'Force'.", in.Mode)
	}
	if c := in.Source.Credentials; c != nil {
		req.Username, req.Password = c.Username, c.Password
	}
	switch {
	case in.Source.ResourceID != "":
		login, err := a.Service.ResolveSource(r.Context(), in.Source.ResourceID)
		if err != nil {
			return err
		}
		req.SourceRegistry = login
	case in.Source.RegistryURI != "":
		req.SourceRegistry = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(in.Source.RegistryURI, "https://"), "http://"), "/")
	default:
		return apierr.New(apierr.Invalid, "InvalidParameter", "Either 'source.resourceId' or 'source.registryUri' is required.")
	}
	op, err := a.Service.BeginImport(r.Context(), sub, rg, name, req)
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.Base+"/subscriptions/"+sub+"/operationresults/"+op.ID+"?api-version="+r.APIVersion)
	a.ARM.SetRetryAfter(w)
	w.WriteHeader(http.StatusAccepted)
	return nil
}
