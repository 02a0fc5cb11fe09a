package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

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

	// res is this node's reserve in the pool, nil when reserving is off.
	res *reserve
	// kick wakes Run when the reserve may need a write (buffered, one pending wake-up).
	kick chan struct{}
	// recordedOwners are the owners the newest known state of the pool records, for the
	// fast path (built once per read or write, not per ADD); nil until the first read and
	// after a write of unknown outcome.
	recordedOwners atomic.Pointer[map[records.Owner]bool]
	// abandon makes Run end without giving the reserve back (a simulated crash, tests).
	abandon atomic.Bool
	// settled is true once what a previous agent of the node left in reserve is settled
	// (settleInheritedReserves): only then may the writer treat every address the pool
	// records as the node's as its own (reserve.adopt, the final give-back).
	settled *atomic.Bool
	log     logr.Logger
	// stale is set when something the pool's resourceVersion does not cover changed
	// (SpiderReservedIPs): the next batch reads the pool again.
	stale atomic.Bool

	// Owned by Run.
	obj       *v2beta1.SpiderIPPool // the newest version this writer knows, nil when unknown
	state     ipam.Pool             // obj decoded
	stateFree int64                 // state.FreeCount()
	// stateReservers is the number of other nodes holding a reserve in the pool.
	stateReservers int
	// stateLimit is reserveLimit of the pool's size.
	stateLimit int

	// watchedFree is the pool's free count as this node's watch last saw it.
	watchedFree atomic.Int64
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
	// Reserve, when Owner is set (records.ReserveOwner of the node), keeps up to Max
	// addresses of the pool reserved for the node and hands them out without a write.
	// Only one agent per node may use it: see lockNode.
	Reserve ReserveParams
	// Settled: see PoolWriter.settled; nil means settled from the start.
	Settled *atomic.Bool
	Log     logr.Logger
}

// ReserveParams configure a PoolWriter's reserve.
type ReserveParams struct {
	Owner records.Owner
	// Max is the most addresses kept spare; 0 turns reserving off.
	Max int
	// RebindDelay is how long handed-out addresses may wait before one write records
	// them under their pods' owners in the pool (DefaultRebindDelay).
	RebindDelay time.Duration
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
	w := &PoolWriter{
		name: p.Pool, store: p.Store, reserved: p.Reserved, spreadKey: p.SpreadKey, maxTries: p.MaxTries, onWrite: p.OnWrite,
		requests: make(chan *poolRequest, 1024), stopped: make(chan struct{}), kick: make(chan struct{}, 1),
		log: p.Log.WithValues("SpiderIPPool", p.Pool),
	}
	w.watchedFree.Store(math.MaxInt64)
	if w.settled = p.Settled; w.settled == nil {
		w.settled = &atomic.Bool{}
		w.settled.Store(true)
	}
	if p.Reserve.Owner.IsReserve() && p.Reserve.Max > 0 {
		if p.Reserve.RebindDelay <= 0 {
			p.Reserve.RebindDelay = DefaultRebindDelay
		}
		w.res = newReserve(p.Reserve.Owner, p.Reserve.Max, p.Reserve.RebindDelay)
		w.stateLimit = p.Reserve.Max // until the first read says how large the pool is
	}
	return w
}

// Invalidate makes the next batch read the pool again; call it when reserved addresses
// change. Spares that a SpiderReservedIP now reserves are no longer handed out.
func (w *PoolWriter) Invalidate() {
	w.stale.Store(true)
	if w.res == nil {
		return
	}
	if w.res.retire(func(a netip.Addr) bool { return w.reserved(a.Is4()).Contains(a) }) > 0 {
		w.wake()
	}
}

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
	// fromReserve are addresses of an opReleaseOwner that the reserve already freed.
	fromReserve []netip.Addr
}

type poolResult struct {
	addr    netip.Addr   // opAllocate
	freed   []netip.Addr // opRelease, opReleaseOwner
	changed bool         // opRelease, opRebind
	err     error
}

// Allocate returns the address the owner holds in the pool, taking a free one if it
// holds none: from this node's reserve when it has a spare, without a write. An error
// wrapping ipam.ErrPoolExhausted means the pool is full; when it also wraps
// errReservedElsewhere, other nodes hold addresses in reserve that they give back when
// idle, so a retry may succeed.
func (w *PoolWriter) Allocate(ctx context.Context, owner records.Owner) (netip.Addr, error) {
	if a, ok := w.takeReserved(owner); ok {
		return a, nil
	}
	if w.res != nil {
		// While this owner's request is with the writer, the fast path must not serve a
		// concurrent one for it (a duplicate ADD): both must get the same address.
		w.res.queued(owner, +1)
		defer w.res.queued(owner, -1)
	}
	r, err := w.do(ctx, &poolRequest{op: opAllocate, owner: owner})
	return r.addr, err
}

// Waiting for other nodes' spares when a pool is full: they give them back in their next
// write after seeing it full; the wait is bounded so the pod's event comes soon.
const (
	reserveWaitMax   = 10 * time.Second
	reserveWaitFirst = 50 * time.Millisecond
	// reserveWaitEvery caps the interval: other nodes' pods take freed addresses at
	// their next write, so a waiter that asks rarely would wait its whole bound.
	reserveWaitEvery = 200 * time.Millisecond
)

// AllocateOrWait is Allocate, except that when the pool is full while other nodes hold
// addresses of it in reserve, it asks again for a while before calling the pool full.
func (w *PoolWriter) AllocateOrWait(ctx context.Context, owner records.Owner) (netip.Addr, error) {
	deadline := time.Now().Add(reserveWaitMax)
	for wait := reserveWaitFirst; ; wait = min(2*wait, reserveWaitEvery) {
		addr, err := w.Allocate(ctx, owner)
		if !errors.Is(err, errReservedElsewhere) || time.Now().Add(wait).After(deadline) {
			return addr, err
		}
		sleep(ctx, wait)
	}
}

// takeReserved is Allocate's fast path: a spare of the reserve, unless the owner may
// hold an address of the pool already (then the writer answers, so that a repeated ADD
// never gets a second address).
func (w *PoolWriter) takeReserved(owner records.Owner) (netip.Addr, bool) {
	if w.res == nil {
		return netip.Addr{}, false
	}
	if a, ok := w.res.heldBy(owner); ok {
		return a, true
	}
	recorded := w.recordedOwners.Load()
	if recorded == nil || (*recorded)[owner] {
		return netip.Addr{}, false
	}
	a, ok := w.res.take(owner, time.Now(), true)
	w.wake()
	return a, ok
}

// Release frees addr if owner holds it, and reports whether it did.
func (w *PoolWriter) Release(ctx context.Context, addr netip.Addr, owner records.Owner) (bool, error) {
	if w.res != nil {
		if released, settled := w.res.releaseHanded(addr, owner); settled {
			return released, nil
		}
	}
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
	if w.res != nil {
		if moved, settled := w.res.rebindHanded(addr, from, to); settled {
			return moved, nil
		}
	}
	r, err := w.do(ctx, &poolRequest{op: opRebind, addr: addr, owner: from, to: to})
	return r.changed, err
}

// HandedTo reports whether addr was handed to owner from this node's reserve and the
// pool still records it as the node's: the owner holds it as surely as a record would
// say, since its SpiderEndpoint names it.
func (w *PoolWriter) HandedTo(addr netip.Addr, owner records.Owner) bool {
	return w.res != nil && w.res.handedTo(addr, owner)
}

// HasHanded reports whether the owner was handed an address from the reserve.
func (w *PoolWriter) HasHanded(owner records.Owner) bool {
	if w.res == nil {
		return false
	}
	_, ok := w.res.heldBy(owner)
	return ok
}

// wake asks Run to look at the reserve.
func (w *PoolWriter) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Observe tells the writer how many free addresses the pool has, as this node's watch
// last saw it: a reserve gives its spares back sooner when the pool is full.
func (w *PoolWriter) Observe(free int64) {
	w.watchedFree.Store(free)
	w.wake()
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

// Run serves requests until ctx ends; requests made after that fail at once. Before it
// returns, it moves the addresses handed out from the reserve to their pods and gives
// the spares back (within stopTimeout), so a clean stop leaves no reservation behind.
func (w *PoolWriter) Run(ctx context.Context) {
	defer close(w.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var due <-chan time.Time
		if d, ok := w.reserveDue(); ok {
			timer.Reset(d)
			due = timer.C
		}
		var batch []*poolRequest
		select {
		case <-ctx.Done():
			w.stop()
			return
		case r := <-w.requests:
			batch = append(batch, r)
		case <-w.kick:
		case <-due:
		}
		batch = w.drain(batch)
		w.commit(ctx, batch, false)
	}
}

// stopTimeout bounds the last write of a stopping writer; callTimeout one API call of a
// writer (which a stop does not cut).
const (
	stopTimeout = 10 * time.Second
	callTimeout = 30 * time.Second
)

func (w *PoolWriter) stop() {
	if w.res == nil || w.abandon.Load() || !w.settled.Load() {
		return
	}
	// Even with nothing in memory: a write of unknown outcome may have reserved more.
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	w.commit(ctx, nil, true)
	if spare, handed, _ := w.res.counts(); spare+handed > 0 {
		w.log.Info("could not give back this node's reserve on the way out; the next agent of this node settles it", "spare", spare, "handed", handed)
	}
}

// view is the pool's room as the writer believes it: the free count is the lower of
// what its last read or write saw and what the node's watch saw since; see poolView.
func (w *PoolWriter) view() poolView {
	free := w.watchedFree.Load()
	if w.obj != nil {
		free = min(free, w.stateFree)
	}
	return poolView{free: free, share: free / int64(1+w.stateReservers), limit: w.stateLimit}
}

// reserveDue returns when the reserve needs a write of its own, if it does.
func (w *PoolWriter) reserveDue() (time.Duration, bool) {
	if w.res == nil {
		return 0, false
	}
	return w.res.nextDue(time.Now(), w.view())
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

// RBAC of the pool writes (crdstore.Pools on the API server): the pool read fresh, its
// status (the allocation records) written with compare-and-swap.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=update

// SuspendReserve stops (or resumes) handing out this node's spares, and makes the next
// batch read the pool: while the node's Node object is gone, garbage collection may free
// the node's reserve.
func (w *PoolWriter) SuspendReserve(on bool) {
	if w.res == nil {
		return
	}
	w.res.suspend(on)
	w.Invalidate()
}

// nodeKey hashes a node name into a PoolWriter's SpreadKey.
func nodeKey(node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(node))
	return h.Sum64()
}
