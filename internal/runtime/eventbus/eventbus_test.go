package eventbus

import (
	"testing"

	"github.com/berth-dev/berth/internal/runtime"
)

func TestBus(t *testing.T) {
	b := New(2)
	a, cancelA := b.Subscribe()
	c, cancelC := b.Subscribe()
	for i := 0; i < 3; i++ {
		b.Publish(runtime.Event{ExitCode: i})
	}
	for i := 0; i < 2; i++ {
		if ev := <-a; ev.ExitCode != i {
			t.Errorf("a got %d, want %d", ev.ExitCode, i)
		}
	}
	if b.Dropped() != 2 {
		t.Errorf("dropped = %d, want 2 (one per subscriber)", b.Dropped())
	}
	cancelA()
	cancelA()
	if _, ok := <-a; ok {
		t.Error("a still open after cancel")
	}
	b.Close()
	<-c
	<-c
	if _, ok := <-c; ok {
		t.Error("c still open after Close")
	}
	cancelC()
	d, _ := b.Subscribe()
	if _, ok := <-d; ok {
		t.Error("subscription after Close is open")
	}
}
