// Package network is the ARM surface of berth's minimal Microsoft.Network:
// virtualNetworks (with inline subnets), subnets as child resources,
// networkProfiles (as ACI's 2021-03-01 uses them) and privateEndpoints
// (to registries): routes, wire shapes and
// the translation to the network service. Writes complete before the
// answer; like the real provider, PUT and DELETE still answer with an
// Azure-AsyncOperation URL (and DELETE with a Location), whose operation has
// already succeeded, so the SDKs' pollers take their usual path.
package network

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/arm"
	"github.com/berth-dev/berth/internal/network"
	"github.com/berth-dev/berth/internal/operation"
)

// Versions are the Microsoft.Network api-versions berth accepts: those of
// the Go SDK (armnetwork v7: 2025-01-01), Debian's azure-mgmt-network
// (2022-07-01 by default) and every stable version in between and around.
var Versions = &arm.Versions{Type: "virtualNetworks", List: []string{
	"2017-06-01", "2017-08-01", "2017-09-01", "2017-10-01", "2017-11-01", "2018-01-01", "2018-02-01",
	"2018-04-01", "2018-06-01", "2018-07-01", "2018-08-01", "2018-10-01", "2018-11-01", "2018-12-01",
	"2019-02-01", "2019-04-01", "2019-06-01", "2019-07-01", "2019-08-01", "2019-09-01", "2019-11-01",
	"2019-12-01", "2020-03-01", "2020-04-01", "2020-05-01", "2020-06-01", "2020-07-01", "2020-08-01",
	"2020-11-01", "2021-02-01", "2021-03-01", "2021-05-01", "2021-08-01", "2022-01-01", "2022-05-01",
	"2022-07-01", "2022-09-01", "2022-11-01", "2023-02-01", "2023-04-01", "2023-05-01", "2023-06-01",
	"2023-09-01", "2023-11-01", "2024-01-01", "2024-03-01", "2024-05-01", "2024-07-01", "2024-10-01",
	"2025-01-01", "2025-03-01", "2025-05-01",
}}

// API serves Microsoft.Network.
type API struct {
	ARM     *arm.Server
	Service *network.Service
}

// Register adds the routes to the ARM server.
func (a *API) Register() {
	const sub = "/subscriptions/{subscriptionId}/providers/Microsoft.Network"
	const rg = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Network"
	const vn = rg + "/virtualNetworks/{vnet}"
	const np = rg + "/networkProfiles/{profile}"
	const (
		n      = "Microsoft.Network/"
		vnR    = n + "virtualNetworks/read"
		vnW    = n + "virtualNetworks/write"
		vnD    = n + "virtualNetworks/delete"
		snR    = n + "virtualNetworks/subnets/read"
		snW    = n + "virtualNetworks/subnets/write"
		snD    = n + "virtualNetworks/subnets/delete"
		npR    = n + "networkProfiles/read"
		npW    = n + "networkProfiles/write"
		npD    = n + "networkProfiles/delete"
		opRead = n + "locations/operations/read"
	)
	do, list := arm.Do, arm.List
	v := Versions
	a.ARM.Handle(
		arm.Route{Pattern: sub + "/virtualNetworks", Versions: v, Methods: arm.Ops{"GET": list(vnR, a.listVnets)}},
		arm.Route{Pattern: rg + "/virtualNetworks", Versions: v, Methods: arm.Ops{"GET": list(vnR, a.listVnets)}},
		arm.Route{Pattern: vn, Versions: v, Methods: arm.Ops{"PUT": do(vnW, a.putVnet), "GET": do(vnR, a.getVnet), "PATCH": do(vnW, a.patchVnet), "DELETE": do(vnD, a.deleteVnet)}},
		arm.Route{Pattern: vn + "/subnets", Versions: v, Methods: arm.Ops{"GET": do(snR, a.listSubnets)}},
		arm.Route{Pattern: vn + "/subnets/{subnet}", Versions: v, Methods: arm.Ops{"PUT": do(snW, a.putSubnet), "GET": do(snR, a.getSubnet), "DELETE": do(snD, a.deleteSubnet)}},
		arm.Route{Pattern: sub + "/networkProfiles", Versions: v, Methods: arm.Ops{"GET": list(npR, a.listProfiles)}},
		arm.Route{Pattern: rg + "/networkProfiles", Versions: v, Methods: arm.Ops{"GET": list(npR, a.listProfiles)}},
		arm.Route{Pattern: np, Versions: v, Methods: arm.Ops{"PUT": do(npW, a.putProfile), "GET": do(npR, a.getProfile), "PATCH": do(npW, a.patchProfile), "DELETE": do(npD, a.deleteProfile)}},
		arm.Route{Pattern: sub + "/privateEndpoints", Versions: v, Methods: arm.Ops{"GET": list(epRead, a.listEndpoints)}},
		arm.Route{Pattern: rg + "/privateEndpoints", Versions: v, Methods: arm.Ops{"GET": list(epRead, a.listEndpoints)}},
		arm.Route{Pattern: rg + "/privateEndpoints/{endpoint}", Versions: v, Methods: arm.Ops{"PUT": do(epWrite, a.putEndpoint), "GET": do(epRead, a.getEndpoint), "DELETE": do(epDelete, a.deleteEndpoint)}},
		arm.Route{Pattern: sub + "/locations/{location}/operations/{operationId}", Versions: v, Methods: arm.Ops{"GET": do(opRead, a.operation)}},
		arm.Route{Pattern: sub + "/locations/{location}/operationResults/{operationId}", Versions: v, Methods: arm.Ops{"GET": do(opRead, a.operationResult)}},
	)
}

// finished records an operation on resourceID that has already succeeded
// and points the answer's Azure-AsyncOperation (and, for deletes,
// Location) at it.
func (a *API) finished(w http.ResponseWriter, r *arm.Request, resourceID, kind, location string, withLocation bool) error {
	ctx := r.Context()
	op, err := a.ARM.Operations.Start(ctx, resourceID, kind)
	if err != nil {
		return err
	}
	if err := a.ARM.Operations.Finish(ctx, op.ID, nil); err != nil {
		return err
	}
	loc := strings.ToLower(strings.ReplaceAll(location, " ", ""))
	if loc == "" {
		loc = "global"
	}
	base := r.Base + "/subscriptions/" + r.Param("subscriptionId") + "/providers/Microsoft.Network/locations/" + url.PathEscape(loc)
	q := "?api-version=" + r.APIVersion
	w.Header().Set("Azure-AsyncOperation", base+"/operations/"+op.ID+q)
	if withLocation {
		w.Header().Set("Location", base+"/operationResults/"+op.ID+q)
	}
	a.ARM.SetRetryAfter(w)
	return nil
}

func (a *API) opFor(r *arm.Request) (*operation.Operation, error) {
	op, err := a.ARM.Operations.Get(r.Context(), r.Param("operationId"))
	if err == nil && !strings.HasPrefix(strings.ToLower(op.ResourceID), "/subscriptions/"+strings.ToLower(r.Param("subscriptionId"))+"/") {
		err = apierr.New(apierr.NotFound, "OperationNotFound", "The operation '%s' could not be found.", r.Param("operationId"))
	}
	return op, err
}

// operation is the Azure-AsyncOperation status document.
func (a *API) operation(w http.ResponseWriter, r *arm.Request) error {
	op, err := a.opFor(r)
	if err != nil {
		return err
	}
	out := map[string]any{"status": string(op.Status)}
	if op.Status == operation.Failed || op.Status == operation.Canceled {
		out["error"] = map[string]string{"code": op.ErrorCode, "message": op.ErrorMsg}
	}
	return arm.WriteJSON(w, http.StatusOK, out)
}

// operationResult is the Location poll target of deletes.
func (a *API) operationResult(w http.ResponseWriter, r *arm.Request) error {
	op, err := a.opFor(r)
	if err != nil {
		return err
	}
	switch op.Status {
	case operation.InProgress:
		w.Header().Set("Location", r.Base+r.URL.RequestURI())
		a.ARM.SetRetryAfter(w)
		w.WriteHeader(http.StatusAccepted)
	case operation.Succeeded:
		w.WriteHeader(http.StatusNoContent)
	default:
		return &apierr.Error{Class: apierr.Conflict, Code: op.ErrorCode, Message: op.ErrorMsg}
	}
	return nil
}

func created(ok bool) int {
	if ok {
		return http.StatusCreated
	}
	return http.StatusOK
}

// Virtual networks.

func (a *API) putVnet(w http.ResponseWriter, r *arm.Request) error {
	var in vnetIn
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	v := &network.VirtualNetwork{Subscription: r.Param("subscriptionId"), ResourceGroup: r.Param("resourceGroupName"),
		Name: r.Param("vnet"), Location: in.Location, Tags: in.Tags}
	if p := in.Properties; p != nil {
		if p.AddressSpace != nil {
			v.AddressPrefixes = p.AddressSpace.AddressPrefixes
		}
		if p.DhcpOptions != nil {
			v.DNSServers = p.DhcpOptions.DNSServers
		}
		for i := range p.Subnets {
			if p.Subnets[i].Name == "" {
				return apierr.New(apierr.Invalid, "InvalidRequestFormat", "Cannot parse the request: a subnet of virtual network '%s' has no name.", v.Name)
			}
			v.Subnets = append(v.Subnets, p.Subnets[i].toDomain(p.Subnets[i].Name))
		}
	}
	out, isNew, err := a.Service.PutVirtualNetwork(r.Context(), v)
	if err != nil {
		return err
	}
	if err := a.finished(w, r, out.ID(), "virtualNetworks/write", out.Location, false); err != nil {
		return err
	}
	return arm.WriteJSON(w, created(isNew), toVnet(out))
}

func (a *API) getVnet(w http.ResponseWriter, r *arm.Request) error {
	v, err := a.Service.GetVirtualNetwork(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vnet"))
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toVnet(v))
}

// patchVnet is UpdateTags.
func (a *API) patchVnet(w http.ResponseWriter, r *arm.Request) error {
	var in struct {
		Tags *map[string]string `json:"tags"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	v, err := a.Service.GetVirtualNetwork(ctx, r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vnet"))
	if err != nil {
		return err
	}
	if in.Tags != nil {
		v.Tags = *in.Tags
		if v, _, err = a.Service.PutVirtualNetwork(ctx, v); err != nil {
			return err
		}
	}
	return arm.WriteJSON(w, http.StatusOK, toVnet(v))
}

func (a *API) deleteVnet(w http.ResponseWriter, r *arm.Request) error {
	ctx := r.Context()
	sub, rg, name := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vnet")
	v, err := a.Service.GetVirtualNetwork(ctx, sub, rg, name)
	if apierr.Is(err, apierr.NotFound) && apierr.As(err).Code == "ResourceNotFound" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	existed, err := a.Service.DeleteVirtualNetwork(ctx, sub, rg, name)
	if err != nil {
		return err
	}
	if !existed {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := a.finished(w, r, v.ID(), "virtualNetworks/delete", v.Location, true); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (a *API) listVnets(w http.ResponseWriter, r *arm.Request) error {
	vs, err := a.Service.ListVirtualNetworks(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"))
	if err != nil {
		return err
	}
	out := []vnet{}
	for _, v := range vs {
		if r.Allowed("Microsoft.Network/virtualNetworks/read", v.ID()) {
			out = append(out, toVnet(v))
		}
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

// Subnets.

func (a *API) putSubnet(w http.ResponseWriter, r *arm.Request) error {
	var in subnetIn
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	sub, rg, vn := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vnet")
	sn, isNew, err := a.Service.PutSubnet(ctx, sub, rg, vn, in.toDomain(r.Param("subnet")))
	if err != nil {
		return err
	}
	v, err := a.Service.GetVirtualNetwork(ctx, sub, rg, vn)
	if err != nil {
		return err
	}
	if s := v.Subnet(sn.Name); s != nil {
		sn = s
	}
	if err := a.finished(w, r, v.ID()+"/subnets/"+sn.Name, "subnets/write", v.Location, false); err != nil {
		return err
	}
	return arm.WriteJSON(w, created(isNew), toSubnet(v, sn))
}

func (a *API) getSubnet(w http.ResponseWriter, r *arm.Request) error {
	v, sn, err := a.Service.GetSubnet(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vnet"), r.Param("subnet"))
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toSubnet(v, sn))
}

func (a *API) deleteSubnet(w http.ResponseWriter, r *arm.Request) error {
	ctx := r.Context()
	sub, rg, vn := r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vnet")
	existed, err := a.Service.DeleteSubnet(ctx, sub, rg, vn, r.Param("subnet"))
	if err != nil {
		return err
	}
	if !existed {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	v, err := a.Service.GetVirtualNetwork(ctx, sub, rg, vn)
	if err != nil {
		return err
	}
	if err := a.finished(w, r, v.ID()+"/subnets/"+r.Param("subnet"), "subnets/delete", v.Location, true); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (a *API) listSubnets(w http.ResponseWriter, r *arm.Request) error {
	v, err := a.Service.GetVirtualNetwork(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("vnet"))
	if err != nil {
		return err
	}
	out := []subnet{}
	for _, sn := range v.Subnets {
		out = append(out, toSubnet(v, sn))
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

// Network profiles.

func (a *API) putProfile(w http.ResponseWriter, r *arm.Request) error {
	var in profileIn
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	p := &network.Profile{Subscription: r.Param("subscriptionId"), ResourceGroup: r.Param("resourceGroupName"),
		Name: r.Param("profile"), Location: in.Location, Tags: in.Tags}
	if in.Properties != nil {
		for _, ic := range in.Properties.ContainerNetworkInterfaceConfigurations {
			c := network.InterfaceConfig{Name: ic.Name}
			if ic.Properties != nil {
				for _, ip := range ic.Properties.IPConfigurations {
					cfg := network.IPConfig{Name: ip.Name}
					if ip.Properties == nil || ip.Properties.Subnet == nil || ip.Properties.Subnet.ID == "" {
						return apierr.New(apierr.Invalid, "InvalidRequestFormat",
							"Cannot parse the request: ip configuration '%s' of network profile '%s' has no subnet.", ip.Name, p.Name)
					}
					cfg.SubnetID = ip.Properties.Subnet.ID
					c.IPConfigs = append(c.IPConfigs, cfg)
				}
			}
			p.Interfaces = append(p.Interfaces, c)
		}
	}
	out, isNew, err := a.Service.PutProfile(r.Context(), p)
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, created(isNew), toProfile(out))
}

func (a *API) getProfile(w http.ResponseWriter, r *arm.Request) error {
	p, err := a.Service.GetProfile(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("profile"))
	if err != nil {
		return err
	}
	return arm.WriteJSON(w, http.StatusOK, toProfile(p))
}

func (a *API) patchProfile(w http.ResponseWriter, r *arm.Request) error {
	var in struct {
		Tags *map[string]string `json:"tags"`
	}
	if err := arm.DecodeJSON(r, &in); err != nil {
		return err
	}
	ctx := r.Context()
	p, err := a.Service.GetProfile(ctx, r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("profile"))
	if err != nil {
		return err
	}
	if in.Tags != nil {
		p.Tags = *in.Tags
		if p, _, err = a.Service.PutProfile(ctx, p); err != nil {
			return err
		}
	}
	return arm.WriteJSON(w, http.StatusOK, toProfile(p))
}

func (a *API) deleteProfile(w http.ResponseWriter, r *arm.Request) error {
	existed, err := a.Service.DeleteProfile(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"), r.Param("profile"))
	if err != nil {
		return err
	}
	return arm.WriteDeleted(w, existed)
}

func (a *API) listProfiles(w http.ResponseWriter, r *arm.Request) error {
	ps, err := a.Service.ListProfiles(r.Context(), r.Param("subscriptionId"), r.Param("resourceGroupName"))
	if err != nil {
		return err
	}
	out := []profileOut{}
	for _, p := range ps {
		if r.Allowed("Microsoft.Network/networkProfiles/read", p.ID()) {
			out = append(out, toProfile(p))
		}
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}
