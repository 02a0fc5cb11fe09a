package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// commit writes one batch, with the reserve's housekeeping, retrying conflicts with a
// fresh read and a recomputation, and answers every request of it. final gives the whole
// reserve back.
func (w *PoolWriter) commit(runCtx context.Context, batch []*poolRequest, final bool) {
	var lastErr error
	fresh := false // whether w.obj was read during this commit
	if w.stale.Swap(false) {
		w.obj = nil
	}
	// A write in flight is not cut when the writer is told to stop: its outcome would be
	// unknown (see reserve.done). No new try starts after that, though; a crash
	// (abandon) cuts it as a crash would.
	call := func() (context.Context, context.CancelFunc) {
		if final || w.abandon.Load() {
			return context.WithCancel(runCtx)
		}
		return context.WithTimeout(context.WithoutCancel(runCtx), callTimeout)
	}
	for try := 0; try < w.maxTries; try++ {
		if runCtx.Err() != nil {
			lastErr = runCtx.Err()
			break
		}
		batch = w.settleFromReserve(live(batch))
		if len(batch) == 0 && !w.housekeepingDue(final) {
			return
		}
		if w.obj == nil {
			fresh = true
			ctx, cancel := call()
			lastErr = w.read(ctx)
			cancel()
			if lastErr != nil {
				if errors.Is(lastErr, ipam.ErrPoolNotFound) || runCtx.Err() != nil {
					break
				}
				sleep(runCtx, w.backoff())
				continue
			}
			// The read may show that requests are the reserve's to settle after all.
			if batch = w.settleFromReserve(batch); len(batch) == 0 && !w.housekeepingDue(final) {
				return
			}
		}
		if w.obj.GrantsMode() {
			// The controller switched the pool to node grants: its records are no
			// longer written (the caller asks the pool's grants instead).
			lastErr = fmt.Errorf("pool %q: %w", w.name, errGrantsMode)
			break
		}
		var hk housekeeping
		if w.res != nil {
			hk = w.res.plan(time.Now(), w.view(), final)
		}
		next, results, out := w.apply(w.state, batch, hk)
		if next.AllocatedCount() == w.state.AllocatedCount() && !changed(results) && !out.changed {
			// Nothing to write: every answer comes from what the pool already records.
			// Give it only from a version read now; the one this writer last wrote may
			// miss a release made elsewhere since (by GC, say).
			w.reserveDone(hk, out, nil)
			if !fresh {
				w.obj = nil
				continue
			}
			answer(batch, results)
			return
		}
		obj := w.obj.DeepCopy()
		if err := next.WriteStatus(obj); err != nil {
			w.reserveDone(hk, out, err)
			lastErr = err
			break
		}
		w.stats.Writes.Add(1)
		ctx, cancel := call()
		err := w.store.UpdatePoolStatus(ctx, obj)
		cancel()
		w.onWrite(w.name, len(batch), err)
		if err == nil {
			// The new state first: the reserve then forgets the rebound addresses, and a
			// fast path in between must find them in one or the other.
			w.setState(obj, next)
		}
		w.reserveDone(hk, out, err)
		if err == nil {
			w.contention /= 2
			answer(batch, results)
			return
		}
		w.obj = nil // whatever happened, the next try reads the pool again
		lastErr = err
		if !errors.Is(err, ipam.ErrConflict) {
			// The write may have landed: until a read shows, the fast path must not
			// trust the old state to say whom the pool records (a retried allocation
			// would get a second address).
			w.recordedOwners.Store(nil)
			break
		}
		w.stats.Conflicts.Add(1)
		w.contention = min(max(2*w.contention, minBackoff), maxBackoff)
		sleep(runCtx, w.backoff())
		batch = w.drain(batch) // requests that arrived meanwhile join this write
	}
	if lastErr == nil {
		lastErr = runCtx.Err()
	}
	if errors.Is(lastErr, ipam.ErrConflict) {
		lastErr = fmt.Errorf("pool %q: gave up after %d conflicting writes, try again: %w", w.name, w.maxTries, lastErr)
	}
	for _, r := range batch {
		r.done <- poolResult{err: lastErr}
	}
}

// housekeepingDue reports whether the reserve needs a write even without requests.
func (w *PoolWriter) housekeepingDue(final bool) bool {
	if w.res == nil {
		return false
	}
	if final {
		return true
	}
	d, ok := w.res.nextDue(time.Now(), w.view())
	return ok && d == 0
}

// settleFromReserve answers, and drops from the batch, the requests this node's reserve
// settles without a pool write: an allocation it has a spare for (when the pool does not
// already record the owner), a release or rebind of an address it handed out.
func (w *PoolWriter) settleFromReserve(batch []*poolRequest) []*poolRequest {
	if w.res == nil {
		return batch
	}
	out := batch[:0]
	for _, r := range batch {
		switch r.op {
		case opAllocate:
			if recorded := w.recordedOwners.Load(); w.obj != nil && recorded != nil {
				if !(*recorded)[r.owner] {
					if a, ok := w.res.take(r.owner, time.Now(), false); ok {
						r.done <- poolResult{addr: a}
						continue
					}
				}
			}
		case opRelease:
			if released, settled := w.res.releaseHanded(r.addr, r.owner); settled {
				r.done <- poolResult{changed: released, freed: []netip.Addr{r.addr}}
				continue
			}
		case opRebind:
			if moved, settled := w.res.rebindHanded(r.addr, r.owner, r.to); settled {
				r.done <- poolResult{changed: moved}
				continue
			}
		case opReleaseOwner:
			freed, _ := w.res.releaseOwner(r.owner)
			r.fromReserve = append(r.fromReserve, freed...)
		}
		out = append(out, r)
	}
	return out
}

func (w *PoolWriter) read(ctx context.Context) error {
	w.stats.Reads.Add(1)
	obj, err := w.store.GetPool(ctx, w.name)
	if err != nil {
		return err
	}
	family, _ := ipam.PoolFamily(obj) // NewPool refuses a pool of no family
	state, err := ipam.NewPool(obj, w.reserved(family == v2beta1.IPv4))
	if err != nil {
		return err
	}
	w.setState(obj, state)
	if w.res == nil {
		return nil
	}
	if w.settled.Load() {
		if n := w.res.adopt(state.AllHeldBy(w.res.owner)); n > 0 {
			w.log.Info("adopted addresses the pool records in this node's reserve after a write of unknown outcome", "addresses", n)
		}
	}
	// Spares the pool no longer records as the node's are not ours to hand out; those it
	// no longer offers (spec.ips or excludeIPs changed, a SpiderReservedIP) go back
	// instead of to pods.
	if n := w.res.forgetSpares(func(a netip.Addr) bool { h, ok := state.Holder(a); return !ok || h != w.res.owner }); n > 0 {
		w.log.Info("forgot spares the pool no longer records as this node's", "addresses", n)
	}
	w.res.retire(func(a netip.Addr) bool { return !state.Usable(a) })
	return nil
}

// setState installs a version of the pool the writer read or wrote.
func (w *PoolWriter) setState(obj *v2beta1.SpiderIPPool, state ipam.Pool) {
	w.obj, w.state = obj, state
	w.stateFree = state.FreeCount()
	if w.res != nil {
		w.stateReservers = state.Reservers(w.res.owner)
		w.stateLimit = reserveLimit(state.UsableCount())
		owners := state.Owners()
		recorded := make(map[records.Owner]bool, len(owners))
		for _, o := range owners {
			recorded[o] = true
		}
		w.recordedOwners.Store(&recorded)
	}
}

// housekeepingOutcome is what apply did for the reserve.
type housekeepingOutcome struct {
	rebound  map[netip.Addr]bool
	lost     []netip.Addr // handed addresses the pool no longer records as the node's
	reserved []netip.Addr
	recycled []netip.Addr // released by pods and kept as spares
	changed  bool
}

// reserveDone hands the outcome of a write to the reserve.
func (w *PoolWriter) reserveDone(hk housekeeping, out housekeepingOutcome, err error) {
	if w.res == nil {
		return
	}
	spares := append(out.reserved, out.recycled...)
	w.res.done(hk, out.rebound, spares, err)
	if err == nil && len(out.lost) > 0 {
		w.res.dropLost(out.lost)
		w.log.Error(nil, "addresses this node handed out from its reserve are no longer recorded as the node's in the pool: something released them; their pods' SpiderEndpoints still name them", "ips", out.lost)
	}
}

// apply computes a batch against one version of the pool: the reserve's rebinds and
// give-back, the requests' releases and rebinds, then every allocation and the reserve's
// top-up in one search from the writer's spread start.
func (w *PoolWriter) apply(p ipam.Pool, batch []*poolRequest, hk housekeeping) (ipam.Pool, []poolResult, housekeepingOutcome) {
	var out housekeepingOutcome
	var resOwner records.Owner
	var recycle int
	if w.res != nil {
		resOwner = w.res.owner
		recycle = hk.recycle
		out.rebound = map[netip.Addr]bool{}
		for a, o := range hk.rebind {
			var ok bool
			if p, ok = p.Rebind(a, resOwner, o); ok {
				out.rebound[a], out.changed = true, true
			} else if h, held := p.Holder(a); held && h == o {
				out.rebound[a] = true // an earlier write landed after all
			} else {
				out.lost = append(out.lost, a)
			}
		}
		giveBack := hk.giveBack
		if hk.final && w.settled.Load() {
			// Everything the pool records as the node's that is not being rebound, also
			// what a write of unknown outcome reserved.
			giveBack = nil
			for _, a := range p.AllHeldBy(resOwner) {
				if _, rebinding := hk.rebind[a]; !rebinding {
					giveBack = append(giveBack, a)
				}
			}
		}
		for _, a := range giveBack {
			var ok bool
			if p, ok = p.Release(a, resOwner); ok {
				out.changed = true
			}
		}
	}
	results := make([]poolResult, len(batch))
	var allocIdx []int
	var owners []records.Owner
	for i, r := range batch {
		switch r.op {
		case opRelease:
			if recycle > 0 {
				// Keep what a pod gives back as a spare: the same write, and the next
				// pod of this node needs none.
				if p, results[i].changed = p.Rebind(r.addr, r.owner, resOwner); results[i].changed {
					recycle--
					out.recycled = append(out.recycled, r.addr)
				}
			} else {
				p, results[i].changed = p.Release(r.addr, r.owner)
			}
			if results[i].changed {
				results[i].freed = []netip.Addr{r.addr}
			}
		case opReleaseOwner:
			p, results[i].freed = p.ReleaseOwner(r.owner)
			results[i].changed = len(results[i].freed) > 0
			if len(r.fromReserve) > 0 {
				results[i].freed = append(results[i].freed, r.fromReserve...)
				slices.SortFunc(results[i].freed, netip.Addr.Compare)
			}
		case opRebind:
			p, results[i].changed = p.Rebind(r.addr, r.owner, r.to)
		case opAllocate:
			allocIdx = append(allocIdx, i)
			owners = append(owners, r.owner)
		}
	}
	start := p.SpreadStart(w.spreadKey)
	if len(owners) > 0 {
		next, addrs, err := p.Allocate(owners, start)
		for j, i := range allocIdx {
			results[i].addr = addrs[j]
			if !addrs[j].IsValid() {
				results[i].err = err
				if w.res != nil && p.ReservedElsewhere(resOwner) > 0 {
					results[i].err = fmt.Errorf("%w (%d addresses of it are held in other nodes' reserves: spares they give back once they see the pool full, or addresses handed to pods and not yet recorded under them)", errors.Join(err, errReservedElsewhere), p.ReservedElsewhere(resOwner))
				}
			}
		}
		p = next
	}
	if n := min(hk.topUp, hk.recycle-len(out.recycled)); n > 0 {
		p, out.reserved = p.Reserve(resOwner, n, start)
		out.changed = out.changed || len(out.reserved) > 0
	}
	return p, results, out
}

// errReservedElsewhere marks a full pool in which other nodes hold spares.
var errReservedElsewhere = errors.New("addresses reserved by other nodes")

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
