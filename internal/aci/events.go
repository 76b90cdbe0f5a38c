package aci

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/store"
)

// consumeEvents records what the runtime reports, one transaction (one
// fsync) per batch of what has arrived.
func (s *Service) consumeEvents(events <-chan runtime.Event) {
	for ev := range events {
		batch := []runtime.Event{ev}
	drain:
		for len(batch) < 64 {
			select {
			case more, ok := <-events:
				if !ok {
					break drain
				}
				batch = append(batch, more)
			default:
				break drain
			}
		}
		s.record(batch...)
	}
}

// record folds runtime events into the stored events of their containers,
// if a container group still owns that runtime group. Repeats of an event
// (same name and message) are folded into one entry with a count.
func (s *Service) record(evs ...runtime.Event) {
	err := s.Store.Update(context.Background(), func(tx store.Tx) error {
		for _, ev := range evs {
			if err := recordTx(tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.logf("record events: %v", err)
	}
}

// lastExit is how a container's last run ended, kept for when the runtime
// can no longer say (a deployment whose init container failed is torn
// down).
type lastExit struct {
	ExitCode int       `json:"exitCode"`
	Time     time.Time `json:"time"`
}

func recordTx(tx store.Tx, ev runtime.Event) error {
	k := ev.GroupID + "/" + ev.Container
	if _, err := tx.Get(tableRuntime, ev.GroupID); errors.Is(err, store.ErrNotFound) {
		return nil // deleted, or not ours
	} else if err != nil {
		return err
	}
	if ev.Kind == runtime.EventExited {
		// Exits show in the container state, not as ACI events.
		return store.PutJSON(tx, tableExits, k, lastExit{ExitCode: ev.ExitCode, Time: ev.Time.UTC()})
	}
	name := string(ev.Kind)
	typ := "Normal"
	if ev.Warning {
		typ = "Warning"
	}
	t := ev.Time.UTC().Truncate(time.Second)
	var list []Event
	if b, err := tx.Get(tableEvents, k); err == nil {
		_ = json.Unmarshal(b, &list)
	}
	e := Event{Count: 1, FirstTimestamp: t, Name: name, Message: ev.Message, Type: typ}
	if i := slices.IndexFunc(list, func(x Event) bool { return x.Name == name && x.Message == ev.Message }); i >= 0 {
		e.Count, e.FirstTimestamp = list[i].Count+1, list[i].FirstTimestamp
		list = slices.Delete(list, i, i+1)
	}
	e.LastTimestamp = t
	list = append(list, e)
	if len(list) > maxEvents {
		list = list[len(list)-maxEvents:]
	}
	return store.PutJSON(tx, tableEvents, k, list)
}

// events returns the stored events of a runtime group's containers, by
// container name.
func (s *Service) events(ctx context.Context, runtimeID string) (map[string][]Event, error) {
	out := map[string][]Event{}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableEvents, runtimeID+"/", func(k string, v []byte) bool {
			var list []Event
			if json.Unmarshal(v, &list) == nil {
				out[strings.TrimPrefix(k, runtimeID+"/")] = list
			}
			return true
		})
	})
	return out, err
}

// exits returns the recorded last exits of a runtime group's containers,
// by container name.
func (s *Service) exits(ctx context.Context, runtimeID string) (map[string]lastExit, error) {
	out := map[string]lastExit{}
	err := s.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(tableExits, runtimeID+"/", func(k string, v []byte) bool {
			var e lastExit
			if json.Unmarshal(v, &e) == nil {
				out[strings.TrimPrefix(k, runtimeID+"/")] = e
			}
			return true
		})
	})
	return out, err
}

// GroupEvents returns every event of a group's containers, oldest first
// (the operation-status body lists them).
func (s *Service) GroupEvents(ctx context.Context, sub, rg, name string) ([]Event, error) {
	g, err := s.Get(ctx, sub, rg, name)
	if err != nil {
		return nil, err
	}
	byContainer, err := s.events(ctx, g.RuntimeID)
	if err != nil {
		return nil, err
	}
	var all []Event
	for _, evs := range byContainer {
		all = append(all, evs...)
	}
	slices.SortStableFunc(all, func(a, b Event) int { return a.FirstTimestamp.Compare(b.FirstTimestamp) })
	return all, nil
}
