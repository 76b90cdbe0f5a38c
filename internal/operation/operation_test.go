package operation

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/apierr"
	"github.com/berth-dev/berth/internal/clock"
	"github.com/berth-dev/berth/internal/store/memory"
)

func TestLifecycleAndPrune(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	tr := &Tracker{Store: memory.New(), Clock: clk}
	a, _ := tr.Start(ctx, "/r/a", "k")
	b, _ := tr.Start(ctx, "/r/b", "k")
	c, _ := tr.Start(ctx, "/r/c", "k")
	if err := tr.Finish(ctx, a.ID, nil); err != nil {
		t.Fatal(err)
	}
	if err := tr.Finish(ctx, b.ID, apierr.New(apierr.Invalid, "Bad", "bad %s", "thing")); err != nil {
		t.Fatal(err)
	}
	// Finishing twice keeps the first outcome.
	if err := tr.Finish(ctx, b.ID, nil); err != nil {
		t.Fatal(err)
	}
	got, _ := tr.Get(ctx, b.ID)
	if got.Status != Failed || got.ErrorCode != "Bad" || got.ErrorMsg != "bad thing" {
		t.Fatalf("b = %+v", got)
	}
	if inp, _ := tr.InProgress(ctx); len(inp) != 1 || inp[0].ID != c.ID {
		t.Fatalf("in progress = %v", inp)
	}
	clk.Advance(48 * time.Hour)
	n, err := tr.Prune(ctx, clk.Now().Add(-24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if _, err := tr.Get(ctx, a.ID); !apierr.Is(err, apierr.NotFound) {
		t.Fatalf("pruned op still there: %v", err)
	}
	if _, err := tr.Get(ctx, c.ID); err != nil {
		t.Fatalf("in-progress op pruned: %v", err)
	}
	if err := tr.Finish(ctx, "nope", errors.New("x")); err != nil {
		t.Fatalf("finishing an unknown op: %v", err)
	}
}
