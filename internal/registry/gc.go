package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/internal/blob"
	"github.com/berth-dev/berth/internal/store"
)

// Garbage collection runs online, beside pushes and pulls:
//
//  1. Mark and sweep links, in one store transaction: every manifest is
//     live, and so is every blob a manifest references. A blob linked into
//     a repository but referenced by no manifest stays for the link grace
//     period (Config.LinkGrace, a day by default) after it was last pushed,
//     mounted or read there (a push uploads layers before its manifest, and
//     may be slow, or resumed hours later after checking which layers are
//     there), then its link goes. A manifest record that cannot be decoded
//     keeps every link of its repository (and is logged), so one bad record
//     neither fails the pass nor loses what it references.
//  2. Sweep content: a blob in the blob store that nothing links, seen so on
//     passes spanning the grace period, is deleted. Pushes hold their
//     digest (digestLocks.use) from before their content is committed until
//     it is linked; the collector deletes only digests it holds exclusively,
//     after re-marking in a fresh transaction, so it never deletes content a
//     concurrent push is about to reference.
//  3. Abandoned uploads: an upload whose size has not changed for the grace
//     period and that no request holds is cancelled, with its record.
//
// Ages of things only the blob store knows (unlinked content, uploads) are
// measured from when a pass first saw them, with the registry's clock, so a
// restart only delays their collection by one grace period. They use the
// grace period given to CollectGarbage.

// DefaultLinkGrace is how long a blob link no manifest references stays
// after its last push, mount or read in its repository (Config.LinkGrace).
const DefaultLinkGrace = 24 * time.Hour

// GCStats counts what one collection pass removed.
type GCStats struct {
	Links   int // blob links of repositories, unreferenced past the grace period
	Blobs   int // blobs deleted from the blob store
	Uploads int // abandoned uploads cancelled
}

// gcState is what the collector remembers between passes.
type gcState struct {
	mu      sync.Mutex
	orphans map[digest.Digest]time.Time // unlinked content: first seen
	uploads map[string]uploadSeen
}

type uploadSeen struct {
	size  int64
	since time.Time
}

// StartGC runs CollectGarbage every interval until stop is called,
// removing content that has been unlinked, and uploads that have been
// idle, for longer than grace (and links by Config.LinkGrace). Errors are
// logged; the next pass retries. A non-positive interval disables it. stop
// ends the loop and waits for a pass in progress to end, so that nothing
// of a stopped registry is collected afterwards (a registry re-created
// under the same name shares its directory).
func (r *Registry) StartGC(interval, grace time.Duration) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := r.CollectGarbage(ctx, grace)
			switch {
			case err != nil && ctx.Err() == nil:
				r.log.Error("registry garbage collection failed", "error", err)
			case st != GCStats{}:
				r.log.Info("registry garbage collection", "links", st.Links, "blobs", st.Blobs, "uploads", st.Uploads)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// CollectGarbage runs one collection pass (see the comment at the top of
// gc.go): content unlinked and uploads idle for longer than grace go, and
// unreferenced links unused for longer than Config.LinkGrace.
func (r *Registry) CollectGarbage(ctx context.Context, grace time.Duration) (GCStats, error) {
	var st GCStats
	now := r.clock.Now()
	// 1. Links.
	err := r.store.Update(ctx, func(tx store.Tx) error {
		st.Links = 0
		live, err := r.referenced(tx)
		if err != nil {
			return err
		}
		var stale []string
		err = tx.Scan(r.tables.blobs, "", func(k string, v []byte) bool {
			_, d, _ := strings.Cut(k, "@")
			if live[d] {
				return true
			}
			var l linkRecord
			if jerr := json.Unmarshal(v, &l); jerr != nil || l.Created.Add(r.linkGrace).Before(now) {
				stale = append(stale, k)
			}
			return true
		})
		if err != nil {
			return err
		}
		for _, k := range stale {
			if err := tx.Delete(r.tables.blobs, k); err != nil {
				return err
			}
		}
		st.Links = len(stale)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("gc links: %w", err)
	}
	// 2. Content.
	n, err := r.sweepContent(ctx, now, grace)
	st.Blobs = n
	if err != nil {
		return st, fmt.Errorf("gc blobs: %w", err)
	}
	// 3. Uploads.
	n, err = r.sweepUploads(ctx, now, grace)
	st.Uploads = n
	if err != nil {
		return st, fmt.Errorf("gc uploads: %w", err)
	}
	return st, nil
}

// referenced returns every digest a manifest of the registry needs: the
// manifests themselves and the blobs their records list. A record that
// cannot be decoded makes every blob linked into its repository live.
func (r *Registry) referenced(tx store.Tx) (map[string]bool, error) {
	live := map[string]bool{}
	var bad []string // repositories with an undecodable manifest record
	err := tx.Scan(r.tables.manifests, "", func(k string, v []byte) bool {
		repo, d, _ := strings.Cut(k, "@")
		live[d] = true
		var m manifestRecord
		if err := json.Unmarshal(v, &m); err != nil {
			r.log.Warn("registry gc: undecodable manifest record; keeping its repository's blobs", "key", k, "error", err)
			bad = append(bad, repo)
			return true
		}
		for _, b := range m.Blobs {
			live[b] = true
		}
		return true
	})
	for _, repo := range bad {
		if err != nil {
			break
		}
		err = tx.Scan(r.tables.blobs, repoKey(repo, ""), func(k string, _ []byte) bool {
			_, d, _ := strings.Cut(k, "@")
			live[d] = true
			return true
		})
	}
	return live, err
}

// linked returns every digest that is live or linked into a repository.
func (r *Registry) linked(tx store.Tx) (map[string]bool, error) {
	live, err := r.referenced(tx)
	if err != nil {
		return nil, err
	}
	err = tx.Scan(r.tables.blobs, "", func(k string, _ []byte) bool {
		_, d, _ := strings.Cut(k, "@")
		live[d] = true
		return true
	})
	return live, err
}

func (r *Registry) sweepContent(ctx context.Context, now time.Time, grace time.Duration) (int, error) {
	var live map[string]bool
	if err := r.store.View(ctx, func(tx store.Tx) (err error) { live, err = r.linked(tx); return err }); err != nil {
		return 0, err
	}
	var due []digest.Digest
	seen := map[digest.Digest]bool{}
	r.gcState.mu.Lock()
	if r.gcState.orphans == nil {
		r.gcState.orphans = map[digest.Digest]time.Time{}
	}
	err := r.blobs.Walk(ctx, func(d digest.Digest, _ int64) error {
		if live[d.String()] {
			return nil
		}
		seen[d] = true
		first, ok := r.gcState.orphans[d]
		if !ok {
			r.gcState.orphans[d] = now
			first = now
		}
		if !first.Add(grace).After(now) {
			due = append(due, d)
		}
		return nil
	})
	for d := range r.gcState.orphans {
		if !seen[d] {
			delete(r.gcState.orphans, d)
		}
	}
	r.gcState.mu.Unlock()
	if err != nil || len(due) == 0 {
		return 0, err
	}
	// Hold the candidates, re-mark, delete what is still unlinked.
	var held []digest.Digest
	defer func() {
		for _, d := range held {
			r.locks.endCollect(d)
		}
	}()
	for _, d := range due {
		if r.locks.tryCollect(d) {
			held = append(held, d)
		}
	}
	if err := r.store.View(ctx, func(tx store.Tx) (err error) { live, err = r.linked(tx); return err }); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range held {
		if live[d.String()] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, err // stopped: delete nothing more
		}
		if err := r.blobs.Delete(ctx, d); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return n, err
		}
		r.gcState.mu.Lock()
		delete(r.gcState.orphans, d)
		r.gcState.mu.Unlock()
		n++
	}
	return n, nil
}

func (r *Registry) sweepUploads(ctx context.Context, now time.Time, grace time.Duration) (int, error) {
	present := map[string]bool{}
	var due []string
	r.gcState.mu.Lock()
	if r.gcState.uploads == nil {
		r.gcState.uploads = map[string]uploadSeen{}
	}
	err := r.blobs.Uploads(ctx, func(id string, size int64) error {
		present[id] = true
		s, ok := r.gcState.uploads[id]
		if !ok || s.size != size {
			s = uploadSeen{size: size, since: now}
			r.gcState.uploads[id] = s
		}
		if !s.since.Add(grace).After(now) {
			due = append(due, id)
		}
		return nil
	})
	for id := range r.gcState.uploads {
		if !present[id] {
			delete(r.gcState.uploads, id)
		}
	}
	r.gcState.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	var gone []string
	for _, id := range due {
		bw, err := r.blobs.Resume(ctx, id)
		if errors.Is(err, blob.ErrBusy) || errors.Is(err, blob.ErrNotFound) {
			continue // in use by a request, or finished meanwhile
		}
		if err != nil {
			return n, err
		}
		if bw.Size() != r.seenSize(id) { // written to meanwhile
			_ = bw.Close()
			continue
		}
		if err := bw.Cancel(ctx); err != nil {
			return n, err
		}
		gone = append(gone, id)
		n++
	}
	// Records of uploads that are gone (cancelled now, or lost in a crash
	// before their content existed) and older than the grace period.
	err = r.store.Update(ctx, func(tx store.Tx) error {
		var stale []string
		err := tx.Scan(r.tables.uploads, "", func(id string, v []byte) bool {
			var u uploadRecord
			if jerr := json.Unmarshal(v, &u); jerr != nil || (!present[id] && u.Started.Add(grace).Before(now)) {
				stale = append(stale, id)
			}
			return true
		})
		if err != nil {
			return err
		}
		for _, id := range append(stale, gone...) {
			if err := tx.Delete(r.tables.uploads, id); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

func (r *Registry) seenSize(id string) int64 {
	r.gcState.mu.Lock()
	defer r.gcState.mu.Unlock()
	return r.gcState.uploads[id].size
}

// Purge deletes all metadata of registry name from st (repositories,
// links, manifests, tags, referrers, uploads), in one transaction. Its
// content is the caller's to remove (the blob store's directory); Destroy
// does both through a Registry.
func Purge(ctx context.Context, st store.Store, name string) error {
	t := newTables(name)
	err := st.Update(ctx, func(tx store.Tx) error {
		for _, table := range t.all() {
			keys, err := scanKeys(tx, table, "")
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.Delete(table, k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry %s: purge metadata: %w", name, err)
	}
	return nil
}

// Destroy deletes everything of the registry: its metadata (Purge), then
// its content and uploads. Stop serving the registry and its garbage
// collection first. If Destroy fails or the process dies half way, calling
// it again finishes the job.
func (r *Registry) Destroy(ctx context.Context) error {
	if err := Purge(ctx, r.store, r.name); err != nil {
		return err
	}
	var ds []digest.Digest
	if err := r.blobs.Walk(ctx, func(d digest.Digest, _ int64) error { ds = append(ds, d); return nil }); err != nil {
		return fmt.Errorf("registry %s: destroy: %w", r.name, err)
	}
	for _, d := range ds {
		if err := r.blobs.Delete(ctx, d); err != nil && !errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("registry %s: destroy: %w", r.name, err)
		}
	}
	var ids []string
	if err := r.blobs.Uploads(ctx, func(id string, _ int64) error { ids = append(ids, id); return nil }); err != nil {
		return fmt.Errorf("registry %s: destroy: %w", r.name, err)
	}
	for _, id := range ids {
		bw, err := r.blobs.Resume(ctx, id)
		if err != nil {
			continue // busy or gone: a request still running; Destroy again later
		}
		_ = bw.Cancel(ctx)
	}
	return nil
}

// digestLocks keeps garbage collection and pushes of the same digest apart:
// any number of pushes may use a digest at once, or the collector alone.
type digestLocks struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    map[digest.Digest]int // > 0: pushes; -1: being collected
}

func (l *digestLocks) init() {
	if l.n == nil {
		l.n = map[digest.Digest]int{}
		l.cond = sync.NewCond(&l.mu)
	}
}

// use holds d for a push, waiting while it is being collected, and returns
// the release function.
func (l *digestLocks) use(d digest.Digest) func() {
	l.mu.Lock()
	l.init()
	for l.n[d] < 0 {
		l.cond.Wait()
	}
	l.n[d]++
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		if l.n[d]--; l.n[d] == 0 {
			delete(l.n, d)
		}
		l.mu.Unlock()
	}
}

// tryCollect holds d for the collector if no push uses it.
func (l *digestLocks) tryCollect(d digest.Digest) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.init()
	if l.n[d] != 0 {
		return false
	}
	l.n[d] = -1
	return true
}

func (l *digestLocks) endCollect(d digest.Digest) {
	l.mu.Lock()
	delete(l.n, d)
	l.cond.Broadcast()
	l.mu.Unlock()
}
