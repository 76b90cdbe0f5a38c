// Package operation records ARM asynchronous operations (what an
// Azure-AsyncOperation or Location URL polls). Records live in the state store
// so a client can keep polling across a berth restart; operations that were in
// progress when berth stopped are settled by their owning service on start.
package operation

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/store"
)

const table = "operations"

// Status is an operation's state in ARM's vocabulary.
type Status string

const (
	InProgress Status = "InProgress"
	Succeeded  Status = "Succeeded"
	Failed     Status = "Failed"
	Canceled   Status = "Canceled"
)

// Operation is one asynchronous operation.
type Operation struct {
	ID         string    `json:"id"`
	ResourceID string    `json:"resourceId"`
	Kind       string    `json:"kind"` // e.g. "containerGroups/write"
	Status     Status    `json:"status"`
	StartTime  time.Time `json:"startTime"`
	EndTime    time.Time `json:"endTime,omitzero"`
	ErrorCode  string    `json:"errorCode,omitempty"`
	ErrorMsg   string    `json:"errorMessage,omitempty"`
}

// Done reports whether the operation reached a terminal status.
func (o *Operation) Done() bool { return o.Status != InProgress }

// Tracker creates, finishes and reads operations.
type Tracker struct {
	Store store.Store
	Clock clock.Clock
}

// New returns a new in-progress operation on resourceID, not yet stored:
// store it with StartTx in the transaction that makes the change it tracks.
func (t *Tracker) New(resourceID, kind string) *Operation {
	return &Operation{ID: uuid.NewString(), ResourceID: resourceID, Kind: kind, Status: InProgress, StartTime: t.Clock.Now().UTC()}
}

// StartTx stores op inside tx.
func (t *Tracker) StartTx(tx store.Tx, op *Operation) error { return putTx(tx, op) }

// Start records a new in-progress operation on resourceID.
func (t *Tracker) Start(ctx context.Context, resourceID, kind string) (*Operation, error) {
	op := t.New(resourceID, kind)
	return op, t.Store.Update(ctx, func(tx store.Tx) error { return putTx(tx, op) })
}

// Finish settles the operation: Succeeded when cause is nil, else Failed with
// the cause's Azure code and message.
func (t *Tracker) Finish(ctx context.Context, id string, cause error) error {
	return t.Store.Update(ctx, func(tx store.Tx) error { return t.FinishTx(tx, id, cause) })
}

// FinishTx is Finish inside tx, so the operation settles in the same
// transaction as the state change it reports. A missing or already
// finished operation is left alone.
func (t *Tracker) FinishTx(tx store.Tx, id string, cause error) error {
	op, err := get(tx, id)
	if apierr.Is(err, apierr.NotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if op.Done() {
		return nil
	}
	op.EndTime = t.Clock.Now().UTC()
	op.Status = Succeeded
	if cause != nil {
		e := apierr.As(cause)
		op.Status, op.ErrorCode, op.ErrorMsg = Failed, e.Code, e.Message
	}
	return putTx(tx, op)
}

// Get returns the operation or an apierr NotFound.
func (t *Tracker) Get(ctx context.Context, id string) (*Operation, error) {
	var op *Operation
	err := t.Store.View(ctx, func(tx store.Tx) error {
		var err error
		op, err = get(tx, id)
		return err
	})
	return op, err
}

// InProgress lists operations that have not finished (used on start-up to
// settle what a previous run left behind).
func (t *Tracker) InProgress(ctx context.Context) ([]*Operation, error) {
	var ops []*Operation
	err := t.Store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(table, "", func(_ string, v []byte) bool {
			var op Operation
			if json.Unmarshal(v, &op) == nil && op.Status == InProgress {
				ops = append(ops, &op)
			}
			return true
		})
	})
	return ops, err
}

func putTx(tx store.Tx, op *Operation) error { return store.PutJSON(tx, table, op.ID, op) }

func get(tx store.Tx, id string) (*Operation, error) {
	op, err := store.GetJSON[Operation](tx, table, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.New(apierr.NotFound, "OperationNotFound", "The operation '%s' could not be found.", id)
	}
	return op, err
}

// Prune deletes operations that finished before cutoff (clients stop
// polling long before) and reports how many it deleted.
func (t *Tracker) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	var n int
	err := t.Store.Update(ctx, func(tx store.Tx) error {
		var old []string
		err := tx.Scan(table, "", func(k string, v []byte) bool {
			var op Operation
			if json.Unmarshal(v, &op) == nil && op.Done() && op.EndTime.Before(cutoff) {
				old = append(old, k)
			}
			return true
		})
		if err != nil {
			return err
		}
		for _, k := range old {
			if err := tx.Delete(table, k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	return n, err
}
