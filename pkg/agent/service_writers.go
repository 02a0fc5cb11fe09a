package agent

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// writerSet starts one PoolWriter per pool on first use.
type writerSet struct {
	ctx       context.Context
	store     ipam.PoolStore
	reserved  func(is4 bool) ip.Set
	spreadKey uint64
	onWrite   func(pool string, batch int, err error)
	reserve   ReserveParams
	log       logr.Logger
	// settled: see PoolWriter.settled; the agent sets it once settleInheritedReserves is
	// done.
	settled atomic.Bool

	// grants serves the pools in Grants mode (nil: this agent does not speak node
	// grants); grantsMode tells which they are.
	grants     *grantSet
	grantsMode func(pool string) bool

	mu        sync.Mutex
	m         map[string]*PoolWriter
	suspended bool // see suspendReserves
	running   sync.WaitGroup
}

// get returns what allocates from the pool on this node: its grants when the pool is in
// Grants mode and the agent speaks node grants, else its PoolWriter.
func (ws *writerSet) get(pool string) poolAllocator {
	if ws.grants != nil && ws.grantsMode(pool) {
		g := ws.grants.get(pool)
		if w := ws.lookupWriter(pool); w != nil {
			g.inherit(w) // the pool switched while this agent wrote its records
		}
		return g
	}
	return ws.writer(pool)
}

// lookup returns the pool's allocator if one was started (nil if none).
func (ws *writerSet) lookup(pool string) poolAllocator {
	if ws.grants != nil {
		if g := ws.grants.lookup(pool); g != nil {
			return g
		}
	}
	if w := ws.lookupWriter(pool); w != nil {
		return w
	}
	return nil
}

// allocators returns every allocator started so far.
func (ws *writerSet) allocators() []poolAllocator {
	var out []poolAllocator
	for _, w := range ws.all() {
		out = append(out, w)
	}
	if ws.grants != nil {
		for _, g := range ws.grants.all() {
			out = append(out, g)
		}
	}
	return out
}

// writer returns the pool's PoolWriter (protocol 1), started on first use.
func (ws *writerSet) writer(pool string) *PoolWriter {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w, ok := ws.m[pool]
	if !ok {
		w = NewPoolWriter(PoolWriterParams{Pool: pool, Store: ws.store, Reserved: ws.reserved, SpreadKey: ws.spreadKey, OnWrite: ws.onWrite, Reserve: ws.reserve, Settled: &ws.settled, Log: ws.log})
		if ws.suspended {
			w.SuspendReserve(true)
		}
		ws.m[pool] = w
		ws.running.Add(1)
		go func() {
			defer ws.running.Done()
			w.Run(ws.ctx)
		}()
	}
	return w
}

// lookupWriter returns the PoolWriter of a pool if one was started.
func (ws *writerSet) lookupWriter(pool string) *PoolWriter {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.m[pool]
}

// wait returns once every writer's Run has returned (after its context ended), that is
// once the reserves are given back.
func (ws *writerSet) wait() { ws.running.Wait() }

// suspendReserves stops (or resumes) every writer's handing out of spares, those started
// later included.
func (ws *writerSet) suspendReserves(on bool) {
	ws.mu.Lock()
	ws.suspended = on
	ws.mu.Unlock()
	for _, w := range ws.all() {
		w.SuspendReserve(on)
	}
}

// abandon makes every writer stop without giving its reserve back, as a crash would.
func (ws *writerSet) abandon() {
	for _, w := range ws.all() {
		w.abandon.Store(true)
	}
}

// observe passes a pool's free count, as the watch saw it, to the pool's writer.
func (ws *writerSet) observe(pool *v2beta1.SpiderIPPool) {
	w := ws.lookupWriter(pool.Name)
	if w == nil || w.res == nil {
		return
	}
	if pool.DeletionTimestamp != nil {
		// A pool being deleted serves no new pod: seen as full, it gets its spares back
		// now, so its finalizer can go once its pods' addresses are released.
		w.Observe(0)
		return
	}
	if pool.Status.TotalIPCount == nil || pool.Status.AllocatedIPCount == nil {
		return
	}
	// Every record is taken: pods' (allocatedIPCount) and reserves' (spareIPCount).
	var spare int64
	if ob := pool.Status.Orbweaver; ob != nil && ob.SpareIPCount != nil {
		spare = *ob.SpareIPCount
	}
	w.Observe(max(*pool.Status.TotalIPCount-*pool.Status.AllocatedIPCount-spare, 0))
}

// all returns every writer started so far.
func (ws *writerSet) all() []*PoolWriter {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := make([]*PoolWriter, 0, len(ws.m))
	for _, w := range ws.m {
		out = append(out, w)
	}
	return out
}

// invalidate makes every writer read its pool again (reserved addresses changed).
func (ws *writerSet) invalidate() {
	for _, w := range ws.all() {
		w.Invalidate()
	}
}
