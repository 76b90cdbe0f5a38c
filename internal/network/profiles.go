package network

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/resources"
	"github.com/berth-dev/berth/internal/store"
)

// PutProfile creates or replaces a network profile. Every ip
// configuration must name an existing subnet. It reports whether the
// profile was created.
func (s *Service) PutProfile(ctx context.Context, p *Profile) (*Profile, bool, error) {
	if err := checkName(subnetName, p.Name, 80); err != nil {
		return nil, false, err
	}
	if strings.TrimSpace(p.Location) == "" {
		return nil, false, apierr.New(apierr.Invalid, "LocationRequired", "The location property is required for this definition.")
	}
	for _, ic := range p.Interfaces {
		for _, ip := range ic.IPConfigs {
			r, ok := parseID(ip.SubnetID)
			if !ok || r.subnet == "" {
				return nil, false, apierr.New(apierr.Invalid, "InvalidResourceId",
					"The subnet id '%s' of ip configuration '%s' is not a valid resource id.", ip.SubnetID, ip.Name)
			}
			if _, _, err := s.GetSubnet(ctx, r.sub, r.rg, r.vnet, r.subnet); apierr.Is(err, apierr.NotFound) {
				return nil, false, apierr.New(apierr.Invalid, "InvalidResourceReference",
					"Resource %s referenced by resource %s was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", ip.SubnetID, p.ID())
			} else if err != nil {
				return nil, false, err
			}
		}
	}
	created := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		if err := resources.RequireActiveTx(tx, p.Subscription, p.ResourceGroup); err != nil {
			return err
		}
		k := key(p.Subscription, p.ResourceGroup, p.Name)
		old, err := store.GetJSON[Profile](tx, tableProfiles, k)
		switch {
		case errors.Is(err, store.ErrNotFound):
			created = true
			p.ResourceGUID, p.CreatedAt = uuid.NewString(), s.Clock.Now().UTC()
		case err != nil:
			return err
		default:
			if !strings.EqualFold(normLoc(old.Location), normLoc(p.Location)) {
				return apierr.New(apierr.Invalid, "InvalidResourceLocation",
					"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
					old.Name, old.Location, old.ResourceGroup, p.Location)
			}
			p.Name, p.ResourceGUID, p.CreatedAt = old.Name, old.ResourceGUID, old.CreatedAt
		}
		p.Etag = newEtag()
		return store.PutJSON(tx, tableProfiles, k, p)
	})
	if err != nil {
		return nil, false, err
	}
	return p, created, nil
}

// GetProfile returns a network profile.
func (s *Service) GetProfile(ctx context.Context, sub, rg, name string) (*Profile, error) {
	var p *Profile
	err := s.Store.View(ctx, func(tx store.Tx) error {
		var err error
		p, err = store.GetJSON[Profile](tx, tableProfiles, key(sub, rg, name))
		if errors.Is(err, store.ErrNotFound) {
			return ProfileNotFound(rg, name)
		}
		if err != nil {
			return err
		}
		return fillProfile(tx, p)
	})
	return p, err
}

// fillProfile sets the groups using the profile.
func fillProfile(tx store.Tx, p *Profile) error {
	pk := key(p.Subscription, p.ResourceGroup, p.Name)
	p.LinkedGroupIDs = nil
	return tx.Scan(tableLinks, "", func(_ string, b []byte) bool {
		var l link
		if json.Unmarshal(b, &l) == nil && l.Profile == pk {
			p.LinkedGroupIDs = append(p.LinkedGroupIDs, l.Group)
		}
		return true
	})
}

// ListProfiles lists the network profiles of a subscription, or of one
// resource group when rg is set.
func (s *Service) ListProfiles(ctx context.Context, sub, rg string) ([]*Profile, error) {
	prefix := strings.ToLower(sub) + "/"
	if rg != "" {
		if _, err := s.Resources.Get(ctx, sub, rg); err != nil {
			return nil, err
		}
		prefix += strings.ToLower(rg) + "/"
	}
	var out []*Profile
	err := s.Store.View(ctx, func(tx store.Tx) error {
		if err := tx.Scan(tableProfiles, prefix, func(_ string, b []byte) bool {
			var p Profile
			if json.Unmarshal(b, &p) == nil {
				out = append(out, &p)
			}
			return true
		}); err != nil {
			return err
		}
		for _, p := range out {
			if err := fillProfile(tx, p); err != nil {
				return err
			}
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].ID()) < strings.ToLower(out[j].ID()) })
	return out, err
}

// DeleteProfile deletes a network profile; it refuses while container
// groups use it. It reports whether the profile existed.
func (s *Service) DeleteProfile(ctx context.Context, sub, rg, name string) (bool, error) {
	existed := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		k := key(sub, rg, name)
		p, err := store.GetJSON[Profile](tx, tableProfiles, k)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fillProfile(tx, p); err != nil {
			return err
		}
		if len(p.LinkedGroupIDs) > 0 {
			return apierr.New(apierr.Invalid, "InUseNetworkProfileCannotBeDeleted",
				"Network profile %s is in use by container group %s and cannot be deleted.", p.ID(), p.LinkedGroupIDs[0])
		}
		existed = true
		return tx.Delete(tableProfiles, k)
	})
	return existed, err
}
