package agent

import (
	"errors"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// reserve is what one node holds ahead in one pool: addresses the pool records as the
// node's (records.ReserveOwner), handed to pods from memory so that an ADD needs no pool
// write. The pod's SpiderEndpoint, written before ADD answers, records a handed-out
// address until the writer's next write moves it to the pod's owner in the pool
// ("rebind"); a restarted agent settles what a crash left from the endpoints
// (settleInheritedReserves) before it serves.
//
// The state is shared by the callers' fast path (take, releaseHanded, rebindHanded) and
// the writer's Run, under mu. An address is in exactly one of spare, handed; writing
// marks the handed ones whose rebind is in the write in flight, which only Run may
// change (callers fall back to the writer's queue for them).
type reserve struct {
	owner       records.Owner
	max         int           // most addresses to keep spare
	rebindDelay time.Duration // how long handed addresses wait to be rebound in one write

	mu      sync.Mutex
	spare   []netip.Addr
	handed  map[netip.Addr]records.Owner
	byOwner map[records.Owner]netip.Addr
	writing map[netip.Addr]bool
	// retired are spares that may no longer be handed out (see retire), to give back.
	retired []netip.Addr
	// suspended: no spare is handed out (see suspend).
	suspended bool
	// inWriter counts, per owner, allocations waiting in the writer's queue.
	inWriter map[records.Owner]int
	// want is how many spares to keep: it starts at startSize, doubles (up to max) each
	// time a take finds none, and falls back when the reserve goes idle.
	want int
	// dry is set when a take found no spare: the next write tops up.
	dry bool
	// parked is set when an idle reserve was given back: it is not topped up again
	// until a pod asks (else it would take back at once what another node waits for).
	parked bool
	// firstHanded is when the oldest handed address not yet rebound was handed out.
	firstHanded time.Time
	// lastActive is when a spare was last taken or added: the idle clock.
	lastActive time.Time
	// handouts counts addresses handed out from the reserve (for metrics).
	handouts int64
}

// Sizing of a reserve. It starts at half its maximum (startSize), doubles each time it
// runs dry, and is refilled when a quarter is left (low). A top-up takes at most the node's fair share of the pool's free
// addresses: the free count divided by the number of nodes holding a reserve in the pool
// (this one included), so nodes that allocate at once leave each other room.
const (
	// rebindBatch handed addresses are rebound at once, without waiting for rebindDelay.
	rebindBatch = 256
	// An idle reserve goes back to the pool after idleLong (and at once when the pool is
	// full: see plan).
	idleLong = 30 * time.Second
)

func startSize(most int) int { return max(most/2, 1) }

func newReserve(owner records.Owner, most int, rebindDelay time.Duration) *reserve {
	return &reserve{
		owner: owner, max: most, rebindDelay: rebindDelay, want: startSize(most),
		handed: map[netip.Addr]records.Owner{}, byOwner: map[records.Owner]netip.Addr{}, writing: map[netip.Addr]bool{},
		inWriter: map[records.Owner]int{},
	}
}

// take hands the owner a spare address, or the one it was handed already; false when
// there is none spare (the reserve grows at its next top-up). A caller's fast path
// (fast) gets false too while a request of the same owner is with the writer.
func (r *reserve) take(o records.Owner, now time.Time, fast bool) (netip.Addr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.byOwner[o]; ok {
		return a, true
	}
	r.parked = false
	if fast && r.inWriter[o] > 0 || r.suspended {
		return netip.Addr{}, false
	}
	if len(r.spare) == 0 {
		if !r.dry {
			r.dry = true
			r.want = min(2*r.want, r.max)
		}
		return netip.Addr{}, false
	}
	a := r.spare[0]
	r.spare = r.spare[1:]
	if len(r.handed) == 0 {
		r.firstHanded = now
	}
	r.handed[a], r.byOwner[o] = o, a
	r.lastActive = now
	r.handouts++
	return a, true
}

// queued counts an owner's allocations that went to the writer's queue.
func (r *reserve) queued(o records.Owner, delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inWriter[o] += delta; r.inWriter[o] <= 0 {
		delete(r.inWriter, o)
	}
}

// heldBy returns the address handed to an owner and not yet rebound.
func (r *reserve) heldBy(o records.Owner) (netip.Addr, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.byOwner[o]
	return a, ok
}

// isHanded reports whether a is handed to any owner and not yet rebound.
func (r *reserve) isHanded(a netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.handed[a]
	return ok
}

// handedTo reports whether a is handed to o and not yet rebound.
func (r *reserve) handedTo(a netip.Addr, o records.Owner) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, ok := r.handed[a]
	return ok && h == o
}

// releaseHanded puts a back among the spares if it is handed to o and not being
// rebound. settled is false when the writer must decide (the address is not handed to o,
// or its rebind is in flight); then released is false too.
func (r *reserve) releaseHanded(a netip.Addr, o records.Owner) (released, settled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.handed[a]; !ok || h != o || r.writing[a] {
		return false, false
	}
	r.unhand(a)
	r.spare = append(r.spare, a)
	return true, true
}

// releaseOwner puts every address handed to o (not being rebound) back among the
// spares and returns them; pending is true when one of o's is being rebound.
func (r *reserve) releaseOwner(o records.Owner) (freed []netip.Addr, pending bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.byOwner[o]
	if !ok {
		return nil, false
	}
	if r.writing[a] {
		return nil, true
	}
	r.unhand(a)
	r.spare = append(r.spare, a)
	return []netip.Addr{a}, false
}

// rebindHanded hands a from one owner to another (a pod's new sandbox) if a is handed
// to from and not being rebound; settled as for releaseHanded.
func (r *reserve) rebindHanded(a netip.Addr, from, to records.Owner) (moved, settled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.handed[a]; !ok || h != from || r.writing[a] {
		return false, false
	}
	if _, dup := r.byOwner[to]; dup {
		return false, false // to holds another address of the reserve: let the pool decide
	}
	delete(r.byOwner, from)
	r.handed[a], r.byOwner[to] = to, a
	return true, true
}

func (r *reserve) unhand(a netip.Addr) {
	delete(r.byOwner, r.handed[a])
	delete(r.handed, a)
	delete(r.writing, a)
}

// housekeeping is what one pool write does for the reserve besides the requests.
type housekeeping struct {
	rebind   map[netip.Addr]records.Owner // handed addresses to move to their pods
	topUp    int                          // spares to take from the free addresses
	recycle  int                          // released addresses to keep as spares
	giveBack []netip.Addr                 // spares to return to the pool
	// final: the writer is stopping, everything goes back (see PoolWriter.stop).
	final bool
}

// poolView is what a writer knows of its pool's room, for its reserve's decisions.
type poolView struct {
	free  int64 // free addresses
	share int64 // this node's fair share of them
	limit int   // most spares a node may hold in this pool (reserveLimit)
}

// reserveLimit is the most spares a node holds in a pool of usable addresses: a sixteenth
// of the pool (at least one), so a small pool is never drained into a few nodes'
// reserves while other nodes start pods.
func reserveLimit(usable int64) int { return int(max(min(usable/16, math.MaxInt32), 1)) }

// plan decides the housekeeping of the next write and marks its rebinds as writing:
// every handed address is rebound (a write is being made anyway); spares are topped up
// when they ran dry or fell to a quarter of want, within the node's share of the free
// addresses and the pool's limit; they go back when the pool is full, when the reserve
// has been idle (idleLong) or the agent stops (final).
func (r *reserve) plan(now time.Time, v poolView, final bool) housekeeping {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := housekeeping{final: final}
	if len(r.handed) > 0 {
		h.rebind = make(map[netip.Addr]records.Owner, len(r.handed))
		for a, o := range r.handed {
			h.rebind[a] = o
			r.writing[a] = true
		}
	}
	h.giveBack, r.retired = r.retired, nil
	want := min(r.want, v.limit)
	switch {
	case final || r.idle(now):
		h.giveBack, r.spare = append(h.giveBack, r.spare...), nil
		r.want = startSize(r.max)
		r.parked = true
	case v.free == 0 && len(r.spare) > 0:
		// The pool is full and other nodes may be waiting: give the spares back, this
		// node's next pods allocate like theirs. (Keeping even one a node strands ten
		// addresses on ten nodes, whose own pods may be waiting on other pools.)
		h.giveBack, r.spare = append(h.giveBack, r.spare...), nil
		r.parked = true
	case r.low(v.limit):
		h.topUp = int(min(int64(want-len(r.spare)), v.share))
		fallthrough
	default:
		// Addresses pods of this node release are kept up to want, full pool or not:
		// they were this node's already, and the next pod of the node needs no write.
		h.recycle = max(want-len(r.spare), 0)
	}
	return h
}

// low reports whether the spares should be topped up: they ran dry, or fell to a quarter
// of want (so one write refills three quarters; fewer, larger writes on the hot pool),
// want being capped by the pool's limit.
func (r *reserve) low(limit int) bool {
	return r.dry || !r.parked && len(r.spare) <= min(r.want, limit)/4
}

func (r *reserve) idle(now time.Time) bool {
	return len(r.spare) > 0 && now.Sub(r.lastActive) >= idleLong
}

// done applies the outcome of the write that carried h. rebound are the addresses the
// write moved to their pods, reserved the new spares; a nil error means it landed.
// Rebinds that did not land wait for the next write. After a conflict nothing landed and
// the give-back keeps its spares; after any other error the write may have landed, so
// they are dropped from memory: if they are still the node's, the next read adopts them
// again (adopt), and if not, another node may hold them by now.
func (r *reserve) done(h housekeeping, rebound map[netip.Addr]bool, reserved []netip.Addr, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for a := range h.rebind {
		delete(r.writing, a)
		if err == nil && rebound[a] {
			r.unhand(a)
		}
	}
	if err != nil {
		if errors.Is(err, ipam.ErrConflict) {
			r.spare = append(r.spare, h.giveBack...)
		}
		return
	}
	r.spare = append(r.spare, reserved...)
	if len(reserved) > 0 {
		r.lastActive = time.Now()
	}
	if len(reserved) > 0 || h.topUp == 0 {
		r.dry = false
	}
	if len(r.handed) > 0 {
		r.firstHanded = time.Now()
	}
}

// adopt makes spares of the addresses the pool records as the node's that the reserve
// does not know: left by a write whose outcome was unknown (a timeout that landed).
// Only once the previous agent's reserve is settled: before, such an address may be one
// a crashed predecessor handed to a pod.
func (r *reserve) adopt(recorded []netip.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	known := make(map[netip.Addr]bool, len(r.spare)+len(r.retired))
	for _, a := range r.spare {
		known[a] = true
	}
	for _, a := range r.retired {
		known[a] = true
	}
	n := 0
	for _, a := range recorded {
		if _, handed := r.handed[a]; !handed && !known[a] {
			r.spare = append(r.spare, a)
			n++
		}
	}
	if n > 0 {
		r.lastActive = time.Now()
	}
	return n
}

// retire takes the spares for which unusable is true (reserved by a SpiderReservedIP or
// removed from the pool since they were reserved) out of use; the next write gives them
// back. It returns how many it retired.
func (r *reserve) retire(unusable func(netip.Addr) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.spare[:0]
	n := 0
	for _, a := range r.spare {
		if unusable(a) {
			r.retired = append(r.retired, a)
			n++
		} else {
			kept = append(kept, a)
		}
	}
	r.spare = kept
	return n
}

// forgetSpares drops the spares for which notOurs is true: the pool no longer records
// them as the node's (garbage collection freed a deleted node's reserve, or someone
// edited the records), so they may be someone else's by now. It returns how many.
func (r *reserve) forgetSpares(notOurs func(netip.Addr) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.spare)
	r.spare = slices.DeleteFunc(r.spare, notOurs)
	r.retired = slices.DeleteFunc(r.retired, notOurs)
	return n - len(r.spare)
}

// suspend stops or resumes handing out spares (the node's Node object is gone: garbage
// collection may free the node's reserve at any moment).
func (r *reserve) suspend(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.suspended = on
}

// dropLost forgets handed addresses that the pool no longer records as this node's
// (something outside this agent released the reservation): their pods' endpoints still
// name them, which is reported, and they are not handed out again.
func (r *reserve) dropLost(lost []netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range lost {
		r.unhand(a)
	}
}

// nextDue returns how long until the reserve needs a write on its own (no request
// pending), and false when it needs none.
func (r *reserve) nextDue(now time.Time, v poolView) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var due []time.Duration
	if n := len(r.handed) - len(r.writing); n > 0 {
		if n >= rebindBatch {
			return 0, true
		}
		due = append(due, r.firstHanded.Add(r.rebindDelay).Sub(now))
	}
	if len(r.retired) > 0 || r.low(v.limit) && v.share > 0 || v.free == 0 && len(r.spare) > 0 {
		return 0, true
	}
	if len(r.spare) > 0 {
		due = append(due, r.lastActive.Add(idleLong).Sub(now))
	}
	if len(due) == 0 {
		return 0, false
	}
	return max(slices.Min(due), 0), true
}

// counts returns the spare and handed numbers and the handouts so far.
func (r *reserve) counts() (spare, handed int, handouts int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spare), len(r.handed), r.handouts
}
