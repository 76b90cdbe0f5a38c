package network

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
)

// Memory is an in-memory Runtime for tests: it keeps networks in a map,
// refuses overlaps as the containerd runtime does, and reports Host as the
// host's prefixes.
type Memory struct {
	Host []netip.Prefix

	mu    sync.Mutex
	nets  map[string]RuntimeNetwork
	inUse map[string]bool
}

// SetInUse marks a network as having groups attached (RemoveNetwork fails).
func (m *Memory) SetInUse(name string, used bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inUse == nil {
		m.inUse = map[string]bool{}
	}
	m.inUse[name] = used
}

// EnsureNetwork implements Runtime.
func (m *Memory) EnsureNetwork(_ context.Context, n RuntimeNetwork) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.nets == nil {
		m.nets = map[string]RuntimeNetwork{}
	}
	if old, ok := m.nets[n.Name]; ok {
		if old != n {
			return fmt.Errorf("network %q exists as %v", n.Name, old)
		}
		return nil
	}
	for _, o := range m.nets {
		if o.Prefix.Overlaps(n.Prefix) {
			return fmt.Errorf("network %q overlaps %q", n.Name, o.Name)
		}
	}
	m.nets[n.Name] = n
	return nil
}

// RemoveNetwork implements Runtime.
func (m *Memory) RemoveNetwork(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.inUse[name] {
		return fmt.Errorf("network %q in use", name)
	}
	delete(m.nets, name)
	return nil
}

// Networks implements Runtime.
func (m *Memory) Networks(context.Context) ([]RuntimeNetwork, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []RuntimeNetwork
	for _, n := range m.nets {
		out = append(out, n)
	}
	return out, nil
}

// HostPrefixes implements Runtime.
func (m *Memory) HostPrefixes(context.Context) ([]netip.Prefix, error) {
	return append([]netip.Prefix(nil), m.Host...), nil
}
