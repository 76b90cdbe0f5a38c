// Package eventbus is the fan-out behind runtime.Runtime.Subscribe, shared by
// the runtime implementations: publishing never blocks, every subscriber has
// its own buffer, and events that do not fit are dropped and counted.
package eventbus

import (
	"sync"
	"sync/atomic"

	"github.com/berth-dev/berth/internal/runtime"
)

// DefaultBuffer is the per-subscriber buffer used when New is given 0.
const DefaultBuffer = 4096

// Bus fans events out to subscribers. The zero value is not usable; use New.
type Bus struct {
	buffer  int
	dropped atomic.Uint64

	mu     sync.Mutex
	subs   map[chan runtime.Event]struct{}
	closed bool
}

// New returns a bus whose subscribers each buffer up to buffer events
// (DefaultBuffer if buffer <= 0).
func New(buffer int) *Bus {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Bus{buffer: buffer, subs: map[chan runtime.Event]struct{}{}}
}

// Subscribe returns a channel receiving every event published from now on,
// and a cancel function that ends the subscription and closes the channel.
// cancel may be called more than once. After Close, the channel returned is
// already closed.
func (b *Bus) Subscribe() (<-chan runtime.Event, func()) {
	ch := make(chan runtime.Event, b.buffer)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(ch)
		return ch, func() {}
	}
	b.subs[ch] = struct{}{}
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.remove(ch)
	}
}

// remove ends the subscription ch; b.mu must be held.
func (b *Bus) remove(ch chan runtime.Event) {
	if _, ok := b.subs[ch]; !ok {
		return
	}
	delete(b.subs, ch)
	close(ch)
}

// Publish delivers e to every subscriber that has room, in publish order.
func (b *Bus) Publish(e runtime.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			b.dropped.Add(1)
		}
	}
}

// Dropped reports how many deliveries were dropped because a subscriber's
// buffer was full.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Close ends every subscription (closing the channels); later Publish calls
// do nothing and later Subscribe calls get a closed channel.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for ch := range b.subs {
		b.remove(ch)
	}
}
