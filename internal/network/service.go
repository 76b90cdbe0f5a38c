package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store"
)

// Store tables.
const (
	tableVnets       = "network/vnets"       // sub/rg/name (lower case) → VirtualNetwork
	tableProfiles    = "network/profiles"    // sub/rg/name (lower case) → Profile
	tableLinks       = "network/links"       // group id (lower case) → link
	tableSubnetLinks = "network/subnetlinks" // subnet key + "|" + group id (lower case) → link
	tableSALs        = "network/sals"        // subnet key → sal: the subnet holds ACI's link
)

// sal records that a subnet holds ACI's service association link: from the
// first container group placed in it until the link's DELETE (or the
// subnet's), whether or not groups still use it.
type sal struct {
	SubnetID string    `json:"subnetId"`
	Since    time.Time `json:"since"`
}

// link records that a container group uses a subnet (its service
// association link), perhaps through a network profile.
type link struct {
	Group     string `json:"group"`
	SubnetID  string `json:"subnetId"`
	SubnetKey string `json:"subnetKey"`
	Profile   string `json:"profile,omitempty"` // lower-case profile key, when used through one
}

// Service manages virtual networks, subnets and network profiles.
type Service struct {
	Store     store.Store
	Clock     clock.Clock
	Resources *resources.Service
	Runtime   Runtime
	Log       *slog.Logger

	// mu orders writes with the runtime changes that follow them (a
	// subnet's network removed after the subnet is gone).
	mu sync.Mutex
}

func key(sub, rg, name string) string {
	return strings.ToLower(sub) + "/" + strings.ToLower(rg) + "/" + strings.ToLower(name)
}

func subnetKey(sub, rg, vnet, subnet string) string {
	return key(sub, rg, vnet) + "/" + strings.ToLower(subnet)
}

// runtimeNetwork is subnet sn of v as the runtime makes it.
func runtimeNetwork(v *VirtualNetwork, sn *Subnet) (RuntimeNetwork, error) {
	p, err := netip.ParsePrefix(sn.AddressPrefix)
	if err != nil {
		return RuntimeNetwork{}, err
	}
	return RuntimeNetwork{Name: strings.ToLower(v.ID() + "/subnets/" + sn.Name), Domain: strings.ToLower(v.ID()), Prefix: p}, nil
}

// VnetNotFound is ARM's error for a missing virtual network.
func VnetNotFound(rg, name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.Network/virtualNetworks/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, rg)
}

// SubnetNotFound is the network provider's error for a missing subnet.
func SubnetNotFound(id string) *apierr.Error {
	return apierr.New(apierr.NotFound, "NotFound", "Resource %s not found.", id)
}

// ProfileNotFound is ARM's error for a missing network profile.
func ProfileNotFound(rg, name string) *apierr.Error {
	return apierr.New(apierr.NotFound, "ResourceNotFound",
		"The Resource 'Microsoft.Network/networkProfiles/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", name, rg)
}

func newEtag() string { return `W/"` + uuid.NewString() + `"` }

func (s *Service) warn(msg string, args ...any) {
	if s.Log != nil {
		s.Log.Warn(msg, args...)
	}
}

// Start registers the resource-group delete hook (call it after the
// container-group service's Start, so that groups leave their subnets
// first) and reconciles the runtime: networks whose subnet is gone or
// changed are removed, subnets in use have their network.
func (s *Service) Start(ctx context.Context) error {
	s.Resources.OnDeleteGroup(s.deleteAllIn)
	want := map[string]RuntimeNetwork{}
	used := map[string]bool{}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		if err := tx.Scan(tableVnets, "", func(_ string, b []byte) bool {
			var v VirtualNetwork
			if json.Unmarshal(b, &v) == nil {
				for _, sn := range v.Subnets {
					if n, err := runtimeNetwork(&v, sn); err == nil {
						want[n.Name] = n
					}
				}
			}
			return true
		}); err != nil {
			return err
		}
		return tx.Scan(tableLinks, "", func(_ string, b []byte) bool {
			var l link
			if json.Unmarshal(b, &l) == nil {
				used[strings.ToLower(l.SubnetID)] = true
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	have, err := s.Runtime.Networks(ctx)
	if err != nil {
		return err
	}
	for _, n := range have {
		if w, ok := want[n.Name]; !ok || w != n {
			if err := s.Runtime.RemoveNetwork(ctx, n.Name); err != nil {
				s.warn("removing a network whose subnet is gone", "network", n.Name, "err", err)
			}
		}
	}
	for name := range used {
		if n, ok := want[name]; ok {
			if err := s.Runtime.EnsureNetwork(ctx, n); err != nil {
				s.warn("re-creating a subnet's network", "network", name, "err", err)
			}
		}
	}
	return nil
}

// getVnet reads a virtual network in tx (nil, nil when absent).
func getVnet(tx store.Tx, sub, rg, name string) (*VirtualNetwork, error) {
	v, err := store.GetJSON[VirtualNetwork](tx, tableVnets, key(sub, rg, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// linksOf lists the groups using a subnet.
func linksOf(tx store.Tx, sk string) ([]link, error) {
	var out []link
	err := tx.Scan(tableSubnetLinks, sk+"|", func(_ string, b []byte) bool {
		var l link
		if json.Unmarshal(b, &l) == nil {
			out = append(out, l)
		}
		return true
	})
	return out, err
}

// fill sets the subnets' Links.
func fill(tx store.Tx, v *VirtualNetwork) error {
	for _, sn := range v.Subnets {
		ls, err := linksOf(tx, subnetKey(v.Subscription, v.ResourceGroup, v.Name, sn.Name))
		if err != nil {
			return err
		}
		sn.Links = nil
		for _, l := range ls {
			sn.Links = append(sn.Links, l.Group)
		}
		held, err := holdsLink(tx, subnetKey(v.Subscription, v.ResourceGroup, v.Name, sn.Name))
		if err != nil {
			return err
		}
		sn.HoldsLink = held || len(sn.Links) > 0
	}
	return nil
}

// holdsLink reports whether the subnet (by key) holds ACI's link.
func holdsLink(tx store.Tx, sk string) (bool, error) {
	_, err := tx.Get(tableSALs, sk)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// profileUsing returns the id of an ip configuration of a profile that
// names the subnet, or "".
func profileUsing(tx store.Tx, subnetID string) (string, error) {
	found := ""
	err := tx.Scan(tableProfiles, "", func(_ string, b []byte) bool {
		var p Profile
		if json.Unmarshal(b, &p) != nil {
			return true
		}
		for _, ic := range p.Interfaces {
			for _, ip := range ic.IPConfigs {
				if strings.EqualFold(ip.SubnetID, subnetID) {
					found = p.ID() + "/containerNetworkInterfaceConfigurations/" + ic.Name + "/ipConfigurations/" + ip.Name
					return false
				}
			}
		}
		return true
	})
	return found, err
}

func inUse(sn *Subnet, by string) *apierr.Error {
	return apierr.New(apierr.Invalid, "InUseSubnetCannotBeDeleted",
		"Subnet %s is in use by %s and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.", sn.Name, by)
}

func salID(subnetID string) string { return subnetID + "/serviceAssociationLinks/acisal" }

// update changes virtual network sub/rg/name in one transaction: mutate
// gets the stored network (nil if none) and returns what it should become
// (nil: delete it). Every rule is checked against the stored state: the
// virtual network on its own, its subnets against host routes and other
// virtual networks, and subnets in use against removal or change. Runtime
// networks of subnets removed or changed go afterwards.
func (s *Service) update(ctx context.Context, sub, rg, name string, mutate func(old *VirtualNetwork) (*VirtualNetwork, error)) (saved, old *VirtualNetwork, err error) {
	host, err := s.Runtime.HostPrefixes(ctx)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []string
	err = s.Store.Update(ctx, func(tx store.Tx) error {
		if err := resources.RequireActiveTx(tx, sub, rg); err != nil {
			return err
		}
		var err error
		if old, err = getVnet(tx, sub, rg, name); err != nil {
			return err
		}
		if old != nil {
			if err := fill(tx, old); err != nil {
				return err
			}
		}
		next, err := mutate(old)
		if err != nil {
			return err
		}
		var prefixes map[string]netip.Prefix
		if next != nil {
			next.Subscription, next.ResourceGroup = sub, rg
			if old != nil {
				next.Name, next.ResourceGUID, next.CreatedAt = old.Name, old.ResourceGUID, old.CreatedAt
				if !strings.EqualFold(normLoc(old.Location), normLoc(next.Location)) {
					return apierr.New(apierr.Invalid, "InvalidResourceLocation",
						"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
						old.Name, old.Location, rg, next.Location)
				}
			} else {
				next.ResourceGUID, next.CreatedAt = uuid.NewString(), s.Clock.Now().UTC()
			}
			if prefixes, err = validateVnet(next); err != nil {
				return err
			}
			if err := checkPlacement(tx, next, prefixes, host); err != nil {
				return err
			}
		}
		// Subnets that go or change.
		if old != nil {
			for _, o := range old.Subnets {
				id := old.ID() + "/subnets/" + o.Name
				var n *Subnet
				if next != nil {
					n = next.Subnet(o.Name)
				}
				changed := n == nil || n.AddressPrefix != o.AddressPrefix
				if len(o.Links) > 0 {
					switch {
					case n == nil:
						return inUse(o, salID(id))
					case changed:
						return apierr.New(apierr.Invalid, "InUseSubnetCannotBeUpdated",
							"Subnet %s is in use by %s and its address prefix cannot be changed from %s to %s.", o.Name, salID(id), o.AddressPrefix, n.AddressPrefix)
					case !n.Delegated(ACIDelegation):
						return apierr.New(apierr.Invalid, "SubnetDelegationsCannotChangeWhenSubnetUsedByResource",
							"Delegations of subnet %s cannot be changed from [%s] because it is being used by the resource %s.", id, ACIDelegation, salID(id))
					}
				}
				if n == nil {
					by, err := profileUsing(tx, id)
					if err != nil {
						return err
					}
					if by != "" {
						return inUse(o, by)
					}
					// No group uses it: a link it still holds goes with it,
					// as ACI's clean-up removes it (a subnet of the same name
					// created later starts unlinked).
					if err := tx.Delete(tableSALs, subnetKey(sub, rg, old.Name, o.Name)); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
				}
				if changed {
					if rn, err := runtimeNetwork(old, o); err == nil {
						gone = append(gone, rn.Name)
					}
				}
			}
		}
		if next == nil {
			return tx.Delete(tableVnets, key(sub, rg, name))
		}
		next.Etag = newEtag()
		if err := store.PutJSON(tx, tableVnets, key(sub, rg, next.Name), next); err != nil {
			return err
		}
		saved = next
		return fill(tx, saved)
	})
	if err != nil {
		return nil, nil, err
	}
	for _, n := range gone {
		if err := s.Runtime.RemoveNetwork(ctx, n); err != nil {
			s.warn("removing a subnet's network", "network", n, "err", err)
		}
	}
	return saved, old, nil
}

// checkPlacement refuses subnets of v that overlap a host route or a
// subnet of another virtual network: all of them share one host.
func checkPlacement(tx store.Tx, v *VirtualNetwork, prefixes map[string]netip.Prefix, host []netip.Prefix) error {
	for _, sn := range v.Subnets {
		p := prefixes[strings.ToLower(sn.Name)]
		for _, h := range host {
			if h.Overlaps(p) {
				return apierr.New(apierr.Invalid, "SubnetRangeInUseOnHost",
					"Subnet '%s' is not valid because its IP address range %s overlaps %s, which is in use on berth's host (a host route, berth's public container-group network or a reserved range). Choose another address prefix.", sn.Name, p, h)
			}
		}
	}
	self := key(v.Subscription, v.ResourceGroup, v.Name)
	var clash error
	err := tx.Scan(tableVnets, "", func(k string, b []byte) bool {
		if k == self {
			return true
		}
		var o VirtualNetwork
		if json.Unmarshal(b, &o) != nil {
			return true
		}
		for _, osn := range o.Subnets {
			q, err := netip.ParsePrefix(osn.AddressPrefix)
			if err != nil {
				continue
			}
			for _, sn := range v.Subnets {
				if prefixes[strings.ToLower(sn.Name)].Overlaps(q) {
					clash = apierr.New(apierr.Invalid, "NetcfgSubnetRangesOverlap",
						"Subnet '%s' is not valid because its IP address range overlaps with that of subnet '%s' of virtual network '%s'. berth runs every virtual network on one host, so subnets of different virtual networks cannot overlap.", sn.Name, osn.Name, o.Name)
					return false
				}
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return clash
}

func normLoc(l string) string { return strings.ToLower(strings.ReplaceAll(l, " ", "")) }

// PutVirtualNetwork creates or replaces a virtual network (its subnets
// included: a subnet left out is deleted, as on Azure). It reports whether
// the network was created.
func (s *Service) PutVirtualNetwork(ctx context.Context, v *VirtualNetwork) (*VirtualNetwork, bool, error) {
	if err := checkName(vnetName, v.Name, 64); err != nil {
		return nil, false, err
	}
	saved, old, err := s.update(ctx, v.Subscription, v.ResourceGroup, v.Name, func(*VirtualNetwork) (*VirtualNetwork, error) {
		c := *v
		return &c, nil
	})
	if err != nil {
		return nil, false, err
	}
	return saved, old == nil, nil
}

// GetVirtualNetwork returns a virtual network.
func (s *Service) GetVirtualNetwork(ctx context.Context, sub, rg, name string) (*VirtualNetwork, error) {
	var v *VirtualNetwork
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		if v, err = getVnet(tx, sub, rg, name); err != nil {
			return err
		}
		if v == nil {
			return VnetNotFound(rg, name)
		}
		return fill(tx, v)
	})
	return v, err
}

// ListVirtualNetworks lists the virtual networks of a subscription, or of
// one resource group when rg is set, by name.
func (s *Service) ListVirtualNetworks(ctx context.Context, sub, rg string) ([]*VirtualNetwork, error) {
	prefix := strings.ToLower(sub) + "/"
	if rg != "" {
		prefix += strings.ToLower(rg) + "/"
	}
	if rg != "" {
		if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
			return nil, err
		}
	}
	var out []*VirtualNetwork
	err := s.Store.View(ctx, func(tx store.Tx) error {
		if err := tx.Scan(tableVnets, prefix, func(_ string, b []byte) bool {
			var v VirtualNetwork
			if json.Unmarshal(b, &v) == nil {
				out = append(out, &v)
			}
			return true
		}); err != nil {
			return err
		}
		for _, v := range out {
			if err := fill(tx, v); err != nil {
				return err
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].ID()) < strings.ToLower(out[j].ID()) })
	return out, err
}

// DeleteVirtualNetwork deletes a virtual network and its subnets' runtime
// networks; InUseSubnetCannotBeDeleted while a subnet is in use. It
// reports whether the network existed.
func (s *Service) DeleteVirtualNetwork(ctx context.Context, sub, rg, name string) (bool, error) {
	_, old, err := s.update(ctx, sub, rg, name, func(*VirtualNetwork) (*VirtualNetwork, error) { return nil, nil })
	return old != nil, err
}

// PutSubnet creates or replaces one subnet of a virtual network. It
// reports whether the subnet was created.
func (s *Service) PutSubnet(ctx context.Context, sub, rg, vnet string, sn *Subnet) (*Subnet, bool, error) {
	if err := checkName(subnetName, sn.Name, 80); err != nil {
		return nil, false, err
	}
	created := false
	saved, _, err := s.update(ctx, sub, rg, vnet, func(old *VirtualNetwork) (*VirtualNetwork, error) {
		if old == nil {
			return nil, VnetNotFound(rg, vnet)
		}
		next := *old
		next.Subnets = nil
		created = true
		for _, o := range old.Subnets {
			if strings.EqualFold(o.Name, sn.Name) {
				c := *sn
				c.Name = o.Name
				next.Subnets = append(next.Subnets, &c)
				created = false
			} else {
				next.Subnets = append(next.Subnets, o)
			}
		}
		if created {
			c := *sn
			next.Subnets = append(next.Subnets, &c)
		}
		return &next, nil
	})
	if err != nil {
		return nil, false, err
	}
	return saved.Subnet(sn.Name), created, nil
}

// GetSubnet returns a subnet with its virtual network.
func (s *Service) GetSubnet(ctx context.Context, sub, rg, vnet, name string) (*VirtualNetwork, *Subnet, error) {
	v, err := s.GetVirtualNetwork(ctx, sub, rg, vnet)
	if err != nil {
		return nil, nil, err
	}
	sn := v.Subnet(name)
	if sn == nil {
		return nil, nil, SubnetNotFound(v.ID() + "/subnets/" + name)
	}
	return v, sn, nil
}

// DeleteSubnet deletes a subnet (and its runtime network);
// InUseSubnetCannotBeDeleted while groups use it. It reports whether the
// subnet existed.
func (s *Service) DeleteSubnet(ctx context.Context, sub, rg, vnet, name string) (bool, error) {
	existed := false
	_, _, err := s.update(ctx, sub, rg, vnet, func(old *VirtualNetwork) (*VirtualNetwork, error) {
		if old == nil {
			return nil, VnetNotFound(rg, vnet)
		}
		next := *old
		next.Subnets = nil
		for _, o := range old.Subnets {
			if strings.EqualFold(o.Name, name) {
				existed = true
			} else {
				next.Subnets = append(next.Subnets, o)
			}
		}
		return &next, nil
	})
	return existed, err
}

// deleteAllIn is the resource-group delete hook: profiles, then virtual
// networks.
func (s *Service) deleteAllIn(ctx context.Context, sub, rg string) error {
	profiles, err := s.ListProfiles(ctx, sub, rg)
	if err != nil && !apierr.Is(err, apierr.NotFound) {
		return err
	}
	for _, p := range profiles {
		if _, err := s.DeleteProfile(ctx, sub, rg, p.Name); err != nil {
			return err
		}
	}
	vnets, err := s.ListVirtualNetworks(ctx, sub, rg)
	if err != nil && !apierr.Is(err, apierr.NotFound) {
		return err
	}
	for _, v := range vnets {
		if err := s.forceDelete(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

// forceDelete deletes v as DeleteVirtualNetwork does, but even while the
// resource group is being deleted.
func (s *Service) forceDelete(ctx context.Context, v *VirtualNetwork) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []string
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		cur, err := getVnet(tx, v.Subscription, v.ResourceGroup, v.Name)
		if err != nil || cur == nil {
			return err
		}
		if err := fill(tx, cur); err != nil {
			return err
		}
		for _, sn := range cur.Subnets {
			id := cur.ID() + "/subnets/" + sn.Name
			if len(sn.Links) > 0 {
				return inUse(sn, salID(id))
			}
			if by, err := profileUsing(tx, id); err != nil || by != "" {
				if err == nil {
					err = inUse(sn, by)
				}
				return err
			}
			if err := tx.Delete(tableSALs, subnetKey(cur.Subscription, cur.ResourceGroup, cur.Name, sn.Name)); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if rn, err := runtimeNetwork(cur, sn); err == nil {
				gone = append(gone, rn.Name)
			}
		}
		return tx.Delete(tableVnets, key(v.Subscription, v.ResourceGroup, v.Name))
	})
	if err != nil {
		return err
	}
	for _, n := range gone {
		if err := s.Runtime.RemoveNetwork(ctx, n); err != nil {
			s.warn("removing a subnet's network", "network", n, "err", err)
		}
	}
	return nil
}

// ref is a parsed subnet or network profile id.
type ref struct{ sub, rg, vnet, subnet, profile string }

// parseID parses ".../virtualNetworks/v/subnets/s" or
// ".../networkProfiles/p" (segments compared case-insensitively).
func parseID(id string) (ref, bool) {
	seg := strings.Split(strings.Trim(id, "/"), "/")
	eq := strings.EqualFold
	if len(seg) < 8 || !eq(seg[0], "subscriptions") || !eq(seg[2], "resourceGroups") || !eq(seg[4], "providers") || !eq(seg[5], "Microsoft.Network") {
		return ref{}, false
	}
	for _, s := range seg {
		if s == "" {
			return ref{}, false
		}
	}
	r := ref{sub: seg[1], rg: seg[3]}
	switch {
	case len(seg) == 10 && eq(seg[6], "virtualNetworks") && eq(seg[8], "subnets"):
		r.vnet, r.subnet = seg[7], seg[9]
	case len(seg) == 8 && eq(seg[6], "networkProfiles"):
		r.profile = seg[7]
	default:
		return ref{}, false
	}
	return r, true
}

func danglingRef(id string) *apierr.Error {
	return apierr.New(apierr.Invalid, "InvalidResourceReference",
		"Resource %s referenced by the request was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", id)
}

// resolveSubnet finds the subnet a subnet or profile id names.
func (s *Service) resolveSubnet(ctx context.Context, id string, wantProfile bool) (v *VirtualNetwork, sn *Subnet, profile string, err error) {
	r, ok := parseID(id)
	if !ok || (r.profile != "") != wantProfile {
		kind := "subnet"
		if wantProfile {
			kind = "network profile"
		}
		return nil, nil, "", apierr.New(apierr.Invalid, "InvalidResourceId", "The %s id '%s' is not a valid resource id.", kind, id)
	}
	if r.profile != "" {
		p, err := s.GetProfile(ctx, r.sub, r.rg, r.profile)
		if apierr.Is(err, apierr.NotFound) {
			return nil, nil, "", danglingRef(id)
		}
		if err != nil {
			return nil, nil, "", err
		}
		if len(p.Interfaces) == 0 || len(p.Interfaces[0].IPConfigs) == 0 {
			return nil, nil, "", apierr.New(apierr.Invalid, "InvalidNetworkProfile",
				"The network profile '%s' has no container network interface configuration with an ip configuration.", id)
		}
		profile = key(r.sub, r.rg, r.profile)
		if r, ok = parseID(p.Interfaces[0].IPConfigs[0].SubnetID); !ok || r.subnet == "" {
			return nil, nil, "", danglingRef(p.Interfaces[0].IPConfigs[0].SubnetID)
		}
	}
	v, sn, err = s.GetSubnet(ctx, r.sub, r.rg, r.vnet, r.subnet)
	if apierr.Is(err, apierr.NotFound) {
		return nil, nil, "", danglingRef("/subscriptions/" + r.sub + "/resourceGroups/" + r.rg + "/providers/Microsoft.Network/virtualNetworks/" + r.vnet + "/subnets/" + r.subnet)
	}
	if err != nil {
		return nil, nil, "", err
	}
	if !sn.Delegated(ACIDelegation) {
		return nil, nil, "", apierr.New(apierr.Invalid, "SubnetMissingRequiredDelegation",
			"Subnet missing required delegation '%s' for subnet '%s'.", ACIDelegation, v.ID()+"/subnets/"+sn.Name)
	}
	return v, sn, profile, nil
}

// network makes sure the runtime has the subnet's network and names it.
func (s *Service) network(ctx context.Context, v *VirtualNetwork, sn *Subnet) (string, error) {
	n, err := runtimeNetwork(v, sn)
	if err != nil {
		return "", err
	}
	if err := s.Runtime.EnsureNetwork(ctx, n); err != nil {
		return "", &apierr.Error{Class: apierr.Internal, Code: "InternalServerError",
			Message: fmt.Sprintf("The network of subnet '%s' could not be set up.", sn.Name), Err: err}
	}
	return n.Name, nil
}

// Subnet checks that subnetID names an existing subnet delegated to
// container groups, makes its runtime network if needed and returns the
// network's name (for runtime.GroupSpec.Network). It implements
// aci.Networks.
func (s *Service) Subnet(ctx context.Context, subnetID string) (string, error) {
	v, sn, _, err := s.resolveSubnet(ctx, subnetID, false)
	if err != nil {
		return "", err
	}
	return s.network(ctx, v, sn)
}

// NetworkProfile is Subnet for a network profile id: the subnet of its
// first ip configuration. It implements aci.Networks.
func (s *Service) NetworkProfile(ctx context.Context, profileID string) (string, error) {
	v, sn, _, err := s.resolveSubnet(ctx, profileID, true)
	if err != nil {
		return "", err
	}
	return s.network(ctx, v, sn)
}

// Use records that container group group (its ARM id) uses the subnet that
// id names (a subnet id, or a network profile id): the subnet shows a
// service association link (which it keeps after the groups are gone,
// until DeleteServiceAssociationLink) and cannot be deleted until Release.
// A group has one subnet; Use replaces an earlier one. It implements
// aci.Networks.
func (s *Service) Use(ctx context.Context, id, group string) error {
	r, ok := parseID(id)
	v, sn, profile, err := s.resolveSubnet(ctx, id, ok && r.profile != "")
	if err != nil {
		return err
	}
	sid := v.ID() + "/subnets/" + sn.Name
	l := link{Group: group, SubnetID: sid, SubnetKey: subnetKey(v.Subscription, v.ResourceGroup, v.Name, sn.Name), Profile: profile}
	return s.Store.Update(ctx, func(tx store.Tx) error {
		if err := releaseTx(tx, group); err != nil {
			return err
		}
		if err := store.PutJSON(tx, tableLinks, strings.ToLower(group), l); err != nil {
			return err
		}
		if err := store.PutJSON(tx, tableSubnetLinks, l.SubnetKey+"|"+strings.ToLower(group), l); err != nil {
			return err
		}
		held, err := holdsLink(tx, l.SubnetKey)
		if err != nil || held {
			return err
		}
		return store.PutJSON(tx, tableSALs, l.SubnetKey, sal{SubnetID: sid, Since: s.Clock.Now().UTC()})
	})
}

// Release forgets group's subnet (nothing to forget is fine). It
// implements aci.Networks.
func (s *Service) Release(ctx context.Context, group string) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return releaseTx(tx, group) })
}

func releaseTx(tx store.Tx, group string) error {
	g := strings.ToLower(group)
	l, err := store.GetJSON[link](tx, tableLinks, g)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tx.Delete(tableSubnetLinks, l.SubnetKey+"|"+g); err != nil {
		return err
	}
	return tx.Delete(tableLinks, g)
}

// DeleteServiceAssociationLink is ACI's subnet service-association-link
// delete. It refuses while container groups use the subnet; otherwise it
// removes the link the subnet holds and reports whether there was one (a
// second delete finds none).
func (s *Service) DeleteServiceAssociationLink(ctx context.Context, subnetID string) (bool, error) {
	r, ok := parseID(subnetID)
	if !ok || r.subnet == "" {
		return false, apierr.New(apierr.Invalid, "InvalidResourceId", "The subnet id '%s' is not a valid resource id.", subnetID)
	}
	removed := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		v, err := getVnet(tx, r.sub, r.rg, r.vnet)
		if err != nil {
			return err
		}
		if v == nil {
			return VnetNotFound(r.rg, r.vnet)
		}
		sn := v.Subnet(r.subnet)
		if sn == nil {
			return SubnetNotFound(v.ID() + "/subnets/" + r.subnet)
		}
		sk := subnetKey(v.Subscription, v.ResourceGroup, v.Name, sn.Name)
		ls, err := linksOf(tx, sk)
		if err != nil {
			return err
		}
		if len(ls) > 0 {
			return apierr.New(apierr.Conflict, "ServiceAssociationLinkInUse",
				"The service association link of subnet '%s' is in use by container group '%s' and cannot be deleted.", v.ID()+"/subnets/"+sn.Name, ls[0].Group)
		}
		if removed, err = holdsLink(tx, sk); err != nil || !removed {
			return err
		}
		return tx.Delete(tableSALs, sk)
	})
	return removed, err
}
