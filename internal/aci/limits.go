package aci

import (
	"math"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/store"
)

// checkQuota refuses a group that would take its subscription over the
// region's quota (ACI's ContainerGroupQuotaReached). g replaces a group of
// the same name, which does not count.
func (s *Service) checkQuota(tx store.Tx, g *Group) error {
	q := s.quota()
	groups, err := listTx(tx, strings.ToLower(g.Subscription)+"/")
	if err != nil {
		return err
	}
	region := normLoc(g.Location)
	count, cores := 0, 0.0
	for _, o := range groups {
		if normLoc(o.Location) != region || strings.EqualFold(o.ResourceGroup, g.ResourceGroup) && strings.EqualFold(o.Name, g.Name) {
			continue
		}
		count++
		cores += groupCores(o)
	}
	exceeded := func(quota string, limit int, usage, requested float64) error {
		return apierr.New(apierr.Invalid, "ContainerGroupQuotaReached",
			"Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota '%s' exceeded in region '%s'. Limit: '%d', Usage: '%g' Requested: '%g'.",
			quota, region, limit, usage, requested)
	}
	if count+1 > q.ContainerGroups {
		return exceeded("ContainerGroups", q.ContainerGroups, float64(count), 1)
	}
	if need := groupCores(g); cores+need > float64(q.StandardCores) {
		return exceeded("StandardCores", q.StandardCores, cores, need)
	}
	return nil
}

// groupCores is the cores a group is scheduled with: its requests, rounded
// up to whole cores as ACI bills them.
func groupCores(g *Group) float64 {
	var cpu float64
	for _, c := range g.Containers {
		cpu += c.Requests.CPU
	}
	return math.Ceil(cpu)
}

// checkGPU applies the GPU policy: with Refuse, a SKU the host lacks (or
// more GPUs than it has) is refused as ACI refuses a SKU its region lacks.
func (s *Service) checkGPU(g *Group) error {
	if !s.GPU.Refuse {
		return nil
	}
	need := map[string]int{}
	for _, c := range g.Containers {
		if gpu := c.Requests.GPU; gpu != nil && gpu.Count > 0 {
			need[strings.ToUpper(gpu.SKU)] += gpu.Count
		}
	}
	for sku, n := range need {
		if s.GPU.HostSKUs[sku] < n {
			return apierr.New(apierr.Invalid, "ResourceRequestsNotAvailable",
				"The requested resource with GPU SKU '%s' and count '%d' is not available in the location '%s' at this moment. Please retry with a different resource request or in another location.", sku, n, g.Location)
		}
	}
	return nil
}
