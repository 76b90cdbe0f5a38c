package containerinstance

import (
	"net/http"

	"github.com/berth-dev/berth/internal/arm"
)

// locationRoutes are the location-scoped reads (usages, cachedImages,
// capabilities), the operations list and the subnet
// service-association-link delete.
func (a *API) locationRoutes() []arm.Route {
	get := func(action string, h arm.HandlerFunc) arm.Ops { return arm.Ops{"GET": arm.Do(action, h)} }
	return []arm.Route{
		{Pattern: provPath + "/locations/{location}/usages", Versions: Versions, Methods: get(ns+"/locations/usages/read", a.usages)},
		{Pattern: provPath + "/locations/{location}/cachedImages", Versions: Versions, Methods: get(ns+"/locations/cachedImages/read", a.cachedImages)},
		{Pattern: provPath + "/locations/{location}/capabilities", Versions: Versions, Methods: get(ns+"/locations/capabilities/read", a.capabilities)},
		{Pattern: "/providers/Microsoft.ContainerInstance/operations", Versions: Versions, Methods: get(arm.AnyPrincipal, a.operations)},
		{Pattern: subPath + "/resourceGroups/{resourceGroupName}/providers/Microsoft.Network/virtualNetworks/{virtualNetworkName}/subnets/{subnetName}/providers/Microsoft.ContainerInstance/serviceAssociationLinks/default",
			Versions: Versions, Methods: arm.Ops{"DELETE": arm.Do(ns+"/serviceAssociationLinks/delete", a.deleteServiceAssociationLink)}},
	}
}

type usageName struct {
	Value          string `json:"value"`
	LocalizedValue string `json:"localizedValue"`
}

type usage struct {
	ID           string    `json:"id,omitempty"`
	Unit         string    `json:"unit"`
	CurrentValue float64   `json:"currentValue"`
	Limit        float64   `json:"limit"`
	Name         usageName `json:"name"`
}

func (a *API) usages(w http.ResponseWriter, r *arm.Request) error {
	sub, loc := r.Param("subscriptionId"), r.Param("location")
	u, err := a.Service.Usage(r.Context(), sub, loc)
	if err != nil {
		return err
	}
	id := func(name string) string {
		return "/subscriptions/" + sub + "/providers/Microsoft.ContainerInstance/locations/" + loc + "/usages/" + name
	}
	out := []usage{
		{ID: id("ContainerGroups"), Unit: "Count", CurrentValue: float64(u.ContainerGroups), Limit: float64(u.Quota.ContainerGroups),
			Name: usageName{"ContainerGroups", "Container Groups"}},
		{ID: id("StandardCores"), Unit: "Count", CurrentValue: u.StandardCores, Limit: float64(u.Quota.StandardCores),
			Name: usageName{"StandardCores", "Standard Cores"}},
	}
	if r.APIVersion < "2021-10-01" { // Usage.id came with 2021-10-01
		for i := range out {
			out[i].ID = ""
		}
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

type cachedImage struct {
	OSType string `json:"osType"`
	Image  string `json:"image"`
}

func (a *API) cachedImages(w http.ResponseWriter, r *arm.Request) error {
	images, err := a.Service.CachedImages(r.Context(), r.Param("subscriptionId"))
	if err != nil {
		return err
	}
	out := []cachedImage{}
	for _, img := range images {
		out = append(out, cachedImage{OSType: "Linux", Image: img})
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

type capability struct {
	ResourceType  string `json:"resourceType"`
	OSType        string `json:"osType"`
	Location      string `json:"location"`
	IPAddressType string `json:"ipAddressType"`
	GPU           string `json:"gpu"`
	// ConfidentialCompute says whether a trusted execution environment is
	// present (berth's addition: the Confidential SKU is accepted and
	// stored, but runs without one here).
	ConfidentialCompute string         `json:"confidentialCompute"`
	Capabilities        capabilityVals `json:"capabilities"`
}

type capabilityVals struct {
	MaxMemoryInGB float64 `json:"maxMemoryInGB"`
	MaxCPU        float64 `json:"maxCpu"`
	MaxGPUCount   float64 `json:"maxGpuCount"`
}

func (a *API) capabilities(w http.ResponseWriter, r *arm.Request) error {
	caps := a.Service.Capabilities()
	out := []capability{}
	for _, ipType := range []string{"Public", "Private"} {
		for _, c := range caps {
			out = append(out, capability{ResourceType: "containerGroups", OSType: "Linux", Location: r.Param("location"),
				IPAddressType: ipType, GPU: c.GPU, ConfidentialCompute: "NotAvailable",
				Capabilities: capabilityVals{MaxMemoryInGB: c.MaxMemoryGB, MaxCPU: c.MaxCPU, MaxGPUCount: float64(c.MaxGPUCount)}})
		}
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

type operationDisplay struct {
	Provider    string `json:"provider"`
	Resource    string `json:"resource"`
	Operation   string `json:"operation"`
	Description string `json:"description"`
}

type operationEntry struct {
	Name    string           `json:"name"`
	Display operationDisplay `json:"display"`
	Origin  string           `json:"origin"`
}

// providerOperations are the operations of Microsoft.ContainerInstance
// (the names RBAC roles refer to).
var providerOperations = []struct{ name, resource, op, desc string }{
	{"containerGroups/read", "Container Group", "Get Container Groups", "Get all container groups."},
	{"containerGroups/write", "Container Group", "Create or Update Container Group", "Create or update a specific container group."},
	{"containerGroups/delete", "Container Group", "Delete Container Group", "Delete the specific container group."},
	{"containerGroups/restart/action", "Container Group", "Restart Container Group", "Restarts a specific container group."},
	{"containerGroups/stop/action", "Container Group", "Stop Container Group", "Stops a specific container group."},
	{"containerGroups/start/action", "Container Group", "Start Container Group", "Starts a specific container group."},
	{"containerGroups/containers/logs/read", "Container", "Get Container Logs", "Get the logs for a specific container."},
	{"containerGroups/containers/exec/action", "Container", "Container Exec", "Exec into a specific container."},
	{"containerGroups/containers/attach/action", "Container", "Container Attach", "Attach to the output stream of a specific container."},
	{"containerGroups/outboundNetworkDependenciesEndpoints/read", "Container Group", "List Outbound Network Dependencies Endpoints", "List the outbound network dependencies endpoints of a container group."},
	{"containerGroupProfiles/read", "Container Group Profile", "Get Container Group Profiles", "Get all container group profiles."},
	{"containerGroupProfiles/write", "Container Group Profile", "Create or Update Container Group Profile", "Create or update a specific container group profile."},
	{"containerGroupProfiles/delete", "Container Group Profile", "Delete Container Group Profile", "Delete the specific container group profile."},
	{"containerGroupProfiles/revisions/read", "Container Group Profile Revision", "Get Container Group Profile Revisions", "Get the revisions of a container group profile."},
	{"locations/usages/read", "Usage", "Get Usage", "Get the usage for a specific location."},
	{"locations/cachedImages/read", "Cached Images", "Get Cached Images", "Get cached images for a specific location."},
	{"locations/capabilities/read", "Capabilities", "Get Capabilities", "Get the capabilities for a specific location."},
	{"locations/operations/read", "Operation", "Get Operation", "Get the status of an asynchronous operation."},
	{"serviceAssociationLinks/delete", "Service Association Link", "Delete Service Association Link", "Delete the service association link of a subnet."},
	{"operations/read", "Operation", "List Operations", "List the operations for Azure Container Instance service."},
}

func (a *API) operations(w http.ResponseWriter, r *arm.Request) error {
	out := []operationEntry{}
	for _, o := range providerOperations {
		out = append(out, operationEntry{Name: "Microsoft.ContainerInstance/" + o.name, Origin: "User",
			Display: operationDisplay{Provider: "Microsoft Container Instance", Resource: o.resource, Operation: o.op, Description: o.desc}})
	}
	return arm.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

// deleteServiceAssociationLink removes ACI's link to a subnet so that the
// subnet can be deleted: 200 when the subnet had groups' link and none use
// it any more, 204 when there was nothing to remove; 409 while container
// groups are in the subnet.
func (a *API) deleteServiceAssociationLink(w http.ResponseWriter, r *arm.Request) error {
	sub, rg := r.Param("subscriptionId"), r.Param("resourceGroupName")
	subnetID := "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.Network/virtualNetworks/" +
		r.Param("virtualNetworkName") + "/subnets/" + r.Param("subnetName")
	removed, err := a.Service.DeleteSubnetLink(r.Context(), subnetID)
	if err != nil {
		return err
	}
	return arm.WriteDeleted(w, removed)
}
