package aci

import (
	"context"
	"errors"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/store"
)

func getGroup(tx store.Tx, sub, rg, name string) (*Group, error) {
	g, err := store.GetJSON[Group](tx, tableGroups, key(sub, rg, name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, NotFound(rg, name)
	}
	return g, err
}

func putGroup(tx store.Tx, g *Group) error {
	return store.PutJSON(tx, tableGroups, key(g.Subscription, g.ResourceGroup, g.Name), g)
}

// forgetRuntime drops what is stored about one runtime group: its owner
// index entry, its events and its containers' last exits.
func forgetRuntime(tx store.Tx, runtimeID string) error {
	if err := tx.Delete(tableRuntime, runtimeID); err != nil {
		return err
	}
	for _, table := range []string{tableEvents, tableExits} {
		var keys []string
		if err := tx.Scan(table, runtimeID+"/", func(k string, _ []byte) bool { keys = append(keys, k); return true }); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(table, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// update applies fn to the stored group in one transaction if it is still
// g's incarnation (same runtime id), and mirrors the result into g. It
// reports whether it applied (false, nil: the group is gone or moved on).
func (s *Service) update(ctx context.Context, g *Group, fn func(store.Tx, *Group) error) (bool, error) {
	applied := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		cur, err := getGroup(tx, g.Subscription, g.ResourceGroup, g.Name)
		if apierr.Is(err, apierr.NotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.RuntimeID != g.RuntimeID {
			return nil
		}
		if err := fn(tx, cur); err != nil {
			return err
		}
		cur.UpdatedAt = s.Clock.Now().UTC()
		if err := putGroup(tx, cur); err != nil {
			return err
		}
		*g = *cur
		applied = true
		return nil
	})
	return applied, err
}

// mustUpdate is update retried until it lands or berth stops (then the
// work resumes on the next start). It reports whether it applied; ok is
// false also when berth is stopping.
func (s *Service) mustUpdate(g *Group, fn func(store.Tx, *Group) error) bool {
	var applied bool
	err := s.retry(s.ctx, 0, func() error {
		var err error
		applied, err = s.update(context.Background(), g, fn)
		if err != nil {
			s.logf("update group %s (will retry): %v", g.ID(), err)
		}
		return err
	})
	return err == nil && applied
}
