package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// PoolWriter is the single writer of one pool on this node. Every allocation, release
// and rebind that arrives while a write is in flight waits for the next one, and each
// write carries all of them (group commit): under load the number of API writes grows
// with the number of writes the API server can take, not with the number of pods.
//
// A write is a compare-and-swap on the pool's resourceVersion. On a conflict the writer
// reads the pool again and recomputes every waiting request against it, after a jittered
// backoff; it never resends a stale computation. The backoff outlives the batch: it
// doubles on each conflict and halves on each success, so writers of many nodes on one
// hot pool spread their writes out instead of colliding again at once, and each write
// they make carries more requests.
type PoolWriter struct {
	name      string
	store     ipam.PoolStore
	reserved  func(is4 bool) ip.Set
	spreadKey uint64
	maxTries  int
	onWrite   func(pool string, batch int, err error)
	// contention is the current backoff ceiling, owned by Run (see backoff).
	contention time.Duration

	requests chan *poolRequest
	stopped  chan struct{} // closed when Run returns
	stats    WriterStats
	// stale is set when something the pool's resourceVersion does not cover changed
	// (SpiderReservedIPs): the next batch reads the pool again.
	stale atomic.Bool

	// Owned by Run.
	obj   *v2beta1.SpiderIPPool // the newest version this writer knows, nil when unknown
	state ipam.Pool             // obj decoded
}

// PoolWriterParams are the dependencies of a PoolWriter.
type PoolWriterParams struct {
	Pool  string
	Store ipam.PoolStore
	// Reserved returns the SpiderReservedIP addresses of a family; nil means none.
	Reserved func(is4 bool) ip.Set
	// SpreadKey places this writer's searches in the pool (a hash of the node name), so
	// writers of different nodes start at different addresses.
	SpreadKey uint64
	// MaxTries bounds the write attempts for one batch (default 200); the callers'
	// deadlines bound it in time.
	MaxTries int
	// OnWrite, if set, is called after every write attempt with the batch size and the
	// write's error, nil or wrapping ipam.ErrConflict or another failure (for metrics).
	OnWrite func(pool string, batch int, err error)
}

// WriterStats counts what a PoolWriter did.
type WriterStats struct {
	Writes, Conflicts, Reads, Requests atomic.Int64
}

// NewPoolWriter returns a writer; call Run to start it.
func NewPoolWriter(p PoolWriterParams) *PoolWriter {
	if p.Reserved == nil {
		p.Reserved = func(bool) ip.Set { return ip.Set{} }
	}
	if p.MaxTries <= 0 {
		p.MaxTries = 200
	}
	if p.OnWrite == nil {
		p.OnWrite = func(string, int, error) {}
	}
	return &PoolWriter{
		name: p.Pool, store: p.Store, reserved: p.Reserved, spreadKey: p.SpreadKey, maxTries: p.MaxTries, onWrite: p.OnWrite,
		requests: make(chan *poolRequest, 1024), stopped: make(chan struct{}),
	}
}

// Invalidate makes the next batch read the pool again; call it when reserved addresses
// change.
func (w *PoolWriter) Invalidate() { w.stale.Store(true) }

// Stats returns the writer's counters.
func (w *PoolWriter) Stats() *WriterStats { return &w.stats }

type poolOp int

const (
	opAllocate poolOp = iota
	opRelease
	opReleaseOwner
	opRebind
)

type poolRequest struct {
	ctx   context.Context
	op    poolOp
	owner records.Owner
	to    records.Owner // opRebind
	addr  netip.Addr    // opRelease, opRebind
	done  chan poolResult
}

type poolResult struct {
	addr    netip.Addr   // opAllocate
	freed   []netip.Addr // opRelease, opReleaseOwner
	changed bool         // opRelease, opRebind
	err     error
}

// Allocate returns the address the owner holds in the pool, taking a free one if it
// holds none. An error wrapping ipam.ErrPoolExhausted means the pool is full.
func (w *PoolWriter) Allocate(ctx context.Context, owner records.Owner) (netip.Addr, error) {
	r, err := w.do(ctx, &poolRequest{op: opAllocate, owner: owner})
	return r.addr, err
}

// Release frees addr if owner holds it, and reports whether it did.
func (w *PoolWriter) Release(ctx context.Context, addr netip.Addr, owner records.Owner) (bool, error) {
	r, err := w.do(ctx, &poolRequest{op: opRelease, addr: addr, owner: owner})
	return r.changed, err
}

// ReleaseOwner frees every address owner holds in the pool and returns them.
func (w *PoolWriter) ReleaseOwner(ctx context.Context, owner records.Owner) ([]netip.Addr, error) {
	r, err := w.do(ctx, &poolRequest{op: opReleaseOwner, owner: owner})
	return r.freed, err
}

// Rebind hands addr from one owner to another if from holds it.
func (w *PoolWriter) Rebind(ctx context.Context, addr netip.Addr, from, to records.Owner) (bool, error) {
	r, err := w.do(ctx, &poolRequest{op: opRebind, addr: addr, owner: from, to: to})
	return r.changed, err
}

func (w *PoolWriter) do(ctx context.Context, req *poolRequest) (poolResult, error) {
	req.ctx, req.done = ctx, make(chan poolResult, 1)
	w.stats.Requests.Add(1)
	select {
	case w.requests <- req:
	case <-ctx.Done():
		return poolResult{}, fmt.Errorf("pool %q: %w", w.name, ctx.Err())
	case <-w.stopped:
		return poolResult{}, fmt.Errorf("pool %q: %w", w.name, errStopping)
	}
	select {
	case r := <-req.done:
		return r, r.err
	case <-w.stopped:
		// Run ended between batches; a request it took has its answer already.
		select {
		case r := <-req.done:
			return r, r.err
		default:
			return poolResult{}, fmt.Errorf("pool %q: %w", w.name, errStopping)
		}
	case <-ctx.Done():
		// The write may still land; the caller's retry finds the same address again
		// (Allocate is idempotent per owner) or releases it.
		return poolResult{}, fmt.Errorf("pool %q: %w", w.name, ctx.Err())
	}
}

// Run serves requests until ctx ends; requests made after that fail at once.
func (w *PoolWriter) Run(ctx context.Context) {
	defer close(w.stopped)
	for {
		var batch []*poolRequest
		select {
		case <-ctx.Done():
			return
		case r := <-w.requests:
			batch = append(batch, r)
		}
		batch = w.drain(batch)
		w.commit(ctx, batch)
	}
}

// drain adds every request already waiting to the batch.
func (w *PoolWriter) drain(batch []*poolRequest) []*poolRequest {
	for {
		select {
		case r := <-w.requests:
			batch = append(batch, r)
		default:
			return batch
		}
	}
}

// commit writes one batch, retrying conflicts with a fresh read and a recomputation,
// and answers every request of it.
func (w *PoolWriter) commit(ctx context.Context, batch []*poolRequest) {
	var lastErr error
	fresh := false // whether w.obj was read during this commit
	if w.stale.Swap(false) {
		w.obj = nil
	}
	for try := 0; try < w.maxTries; try++ {
		batch = live(batch)
		if len(batch) == 0 {
			return
		}
		if w.obj == nil {
			fresh = true
			if lastErr = w.read(ctx); lastErr != nil {
				if errors.Is(lastErr, ipam.ErrPoolNotFound) || ctx.Err() != nil {
					break
				}
				sleep(ctx, w.backoff())
				continue
			}
		}
		next, results := apply(w.state, batch, w.state.SpreadStart(w.spreadKey))
		if next.AllocatedCount() == w.state.AllocatedCount() && !changed(results) {
			// Nothing to write: every answer comes from what the pool already records.
			// Give it only from a version read now; the one this writer last wrote may
			// miss a release made elsewhere since (by GC, say).
			if !fresh {
				w.obj = nil
				continue
			}
			answer(batch, results)
			return
		}
		obj := w.obj.DeepCopy()
		if err := next.WriteStatus(obj); err != nil {
			lastErr = err
			break
		}
		w.stats.Writes.Add(1)
		err := w.store.UpdatePoolStatus(ctx, obj)
		w.onWrite(w.name, len(batch), err)
		if err == nil {
			w.obj, w.state = obj, next
			w.contention /= 2
			answer(batch, results)
			return
		}
		w.obj = nil // whatever happened, the next try reads the pool again
		lastErr = err
		if !errors.Is(err, ipam.ErrConflict) {
			break
		}
		w.stats.Conflicts.Add(1)
		w.contention = min(max(2*w.contention, minBackoff), maxBackoff)
		sleep(ctx, w.backoff())
		batch = w.drain(batch) // requests that arrived meanwhile join this write
	}
	if lastErr == nil {
		lastErr = ctx.Err()
	}
	if errors.Is(lastErr, ipam.ErrConflict) {
		lastErr = fmt.Errorf("pool %q: gave up after %d conflicting writes, try again: %w", w.name, w.maxTries, lastErr)
	}
	for _, r := range batch {
		r.done <- poolResult{err: lastErr}
	}
}

func (w *PoolWriter) read(ctx context.Context) error {
	w.stats.Reads.Add(1)
	obj, err := w.store.GetPool(ctx, w.name)
	if err != nil {
		return err
	}
	state, err := ipam.NewPool(obj, w.reserved(poolFamily(obj)))
	if err != nil {
		return err
	}
	w.obj, w.state = obj, state
	return nil
}

// apply computes a batch against one version of the pool: releases and rebinds first,
// then every allocation in one search from start.
func apply(p ipam.Pool, batch []*poolRequest, start netip.Addr) (ipam.Pool, []poolResult) {
	results := make([]poolResult, len(batch))
	var allocIdx []int
	var owners []records.Owner
	for i, r := range batch {
		switch r.op {
		case opRelease:
			p, results[i].changed = p.Release(r.addr, r.owner)
			if results[i].changed {
				results[i].freed = []netip.Addr{r.addr}
			}
		case opReleaseOwner:
			p, results[i].freed = p.ReleaseOwner(r.owner)
			results[i].changed = len(results[i].freed) > 0
		case opRebind:
			p, results[i].changed = p.Rebind(r.addr, r.owner, r.to)
		case opAllocate:
			allocIdx = append(allocIdx, i)
			owners = append(owners, r.owner)
		}
	}
	if len(owners) > 0 {
		next, addrs, err := p.Allocate(owners, start)
		for j, i := range allocIdx {
			results[i].addr = addrs[j]
			if !addrs[j].IsValid() {
				results[i].err = err
			}
		}
		p = next
	}
	return p, results
}

func changed(results []poolResult) bool {
	for _, r := range results {
		if r.changed {
			return true
		}
	}
	return false
}

// live drops requests whose callers gave up.
func live(batch []*poolRequest) []*poolRequest {
	out := batch[:0]
	for _, r := range batch {
		if r.ctx.Err() == nil {
			out = append(out, r)
		} else {
			r.done <- poolResult{err: r.ctx.Err()}
		}
	}
	return out
}

func answer(batch []*poolRequest, results []poolResult) {
	for i, r := range batch {
		r.done <- results[i]
	}
}

// Bounds of the backoff ceiling. A conflict costs one round trip of a few milliseconds,
// so the floor is one. The ceiling was measured (docs/performance.md): with ten nodes on
// one pool, 256 ms cut 409s by a third against 64 ms at the same wall time; 16 ms added
// conflicts without shortening anything.
const (
	minBackoff = time.Millisecond
	maxBackoff = 256 * time.Millisecond
)

// backoff is a jittered wait below the current contention ceiling.
func (w *PoolWriter) backoff() time.Duration {
	ceiling := max(w.contention, minBackoff)
	return time.Duration(rand.Int64N(int64(ceiling)))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// nodeKey hashes a node name into a PoolWriter's SpreadKey.
func nodeKey(node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	return h.Sum64()
}
