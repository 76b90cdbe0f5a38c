package aci

import (
	"context"
	"math"
	"runtime"
	"sort"
	"strings"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/store"
)

// Usage is a subscription's use of its quota in one region.
type Usage struct {
	ContainerGroups int
	StandardCores   float64
	Quota           Quota
}

// Usage counts a subscription's container groups and cores in a region.
func (s *Service) Usage(ctx context.Context, sub, location string) (Usage, error) {
	u := Usage{Quota: s.quota()}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		groups, err := listTx(tx, strings.ToLower(sub)+"/")
		for _, g := range groups {
			if normLoc(g.Location) == normLoc(location) {
				u.ContainerGroups++
				u.StandardCores += groupCores(g)
			}
		}
		return err
	})
	return u, err
}

// ImageLister is implemented by runtimes that can list the images they
// hold (the region's cached images, in ACI's terms).
type ImageLister interface {
	Images(ctx context.Context) ([]string, error)
}

// CachedImages lists the images this host has cached (pulled before), so
// groups using them start without a pull.
func (s *Service) CachedImages(ctx context.Context, sub string) ([]string, error) {
	if _, err := s.Resources.GetSubscription(ctx, sub); err != nil {
		return nil, err
	}
	l, ok := s.Runtime.(ImageLister)
	if !ok {
		return nil, nil
	}
	images, err := l.Images(ctx)
	sort.Strings(images)
	return images, err
}

// Capability is what one kind of group may request on this host.
type Capability struct {
	GPU         string // "None" or a SKU
	MaxCPU      float64
	MaxMemoryGB float64
	MaxGPUCount int
}

// HostCapacity is what the host has: capabilities never promise more.
type HostCapacity struct {
	CPUs     int
	MemoryGB float64
}

// Capabilities reports what groups may request here: ACI's per-group
// maxima (4 CPU, 16 GB), lowered to what the host really has, and one entry
// per GPU SKU the host really has.
func (s *Service) Capabilities() []Capability {
	cpus := s.Host.CPUs
	if cpus <= 0 {
		cpus = runtime.NumCPU()
	}
	mem := float64(maxGroupMemGB)
	if s.Host.MemoryGB > 0 {
		mem = math.Min(mem, math.Floor(s.Host.MemoryGB))
	}
	out := []Capability{{GPU: "None", MaxCPU: math.Min(maxGroupCPU, float64(cpus)), MaxMemoryGB: mem}}
	skus := make([]string, 0, len(s.GPU.HostSKUs))
	for sku := range s.GPU.HostSKUs {
		skus = append(skus, sku)
	}
	sort.Strings(skus)
	for _, sku := range skus {
		out = append(out, Capability{GPU: sku, MaxCPU: out[0].MaxCPU, MaxMemoryGB: mem, MaxGPUCount: s.GPU.HostSKUs[sku]})
	}
	return out
}

// DeleteSubnetLink removes ACI's service association link from a subnet
// (so the subnet can be deleted). It reports whether the subnet held the
// link (false for a second delete, or a subnet that never had one); groups
// still in the subnet make it a conflict.
func (s *Service) DeleteSubnetLink(ctx context.Context, subnetID string) (bool, error) {
	groups, err := s.list(ctx, "")
	if err != nil {
		return false, err
	}
	for _, g := range groups {
		for _, sn := range g.SubnetIDs {
			if strings.EqualFold(sn.ID, subnetID) {
				return false, apierr.New(apierr.Conflict, "SubnetInUse",
					"The subnet '%s' is in use by container group '%s'. Delete the container groups in the subnet first.", subnetID, g.ID())
			}
		}
	}
	if s.Networks == nil {
		return false, nil
	}
	removed, err := s.Networks.DeleteServiceAssociationLink(ctx, subnetID)
	if apierr.Is(err, apierr.NotFound) {
		return false, nil
	}
	return removed, err
}
