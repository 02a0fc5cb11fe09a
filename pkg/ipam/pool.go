package ipam

import (
	"fmt"
	"iter"
	"maps"
	"net/netip"
	"slices"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Pool is the allocation state of one pool. It is a value: methods that change state
// return a new Pool and leave the receiver as it was.
type Pool struct {
	name   string
	subnet netip.Prefix
	// total is spec.ips minus spec.excludeIPs (inside the subnet): what the pool holds.
	total ip.Set
	// usable is total minus reserved addresses: what new allocations may take.
	usable ip.Set
	// holders maps every allocated address to its owner. An address stays here even when
	// it has left usable (removed from spec.ips, reserved later): in-use state is never
	// dropped because the spec changed. Shared between Pool values; copied on write.
	holders map[netip.Addr]records.Owner
	// held is the set of holders' addresses, for the free-address search.
	held ip.Set
}

// PoolAddresses returns a pool's subnet and what it hands out (EffectiveAddresses of
// spec.ips minus spec.excludeIPs); an unreadable spec is an ErrInvalidPool naming the
// pool and the field.
func PoolAddresses(sp *v2beta1.SpiderIPPool) (netip.Prefix, ip.Set, error) {
	subnet, err := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet))
	if err != nil {
		return netip.Prefix{}, ip.Set{}, fmt.Errorf("%w %q: spec.subnet: %v", ErrInvalidPool, sp.Name, err)
	}
	total, err := EffectiveAddresses(subnet, sp.Spec.IPs, sp.Spec.ExcludeIPs)
	if err != nil {
		return netip.Prefix{}, ip.Set{}, fmt.Errorf("%w %q: %v", ErrInvalidPool, sp.Name, err)
	}
	return subnet, total, nil
}

// NewPool decodes a SpiderIPPool. reserved holds the addresses of every
// SpiderReservedIP of the pool's family; new allocations never take them.
func NewPool(sp *v2beta1.SpiderIPPool, reserved ip.Set) (Pool, error) {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidPool, sp.Name, fmt.Sprintf(format, args...))
	}
	subnet, total, err := PoolAddresses(sp)
	if err != nil {
		return Pool{}, err
	}
	p := Pool{name: sp.Name, subnet: subnet, total: total, usable: total.Subtract(reserved), holders: map[netip.Addr]records.Owner{}}
	if st := sp.Status.Orbweaver; st != nil {
		recs, err := records.Decode(subnet, st.Records)
		if err != nil {
			return Pool{}, invalid("status.orbweaver.records: %v", err)
		}
		for _, r := range recs {
			p.holders[r.IP] = r.Owner
		}
	}
	if p.held, err = setOf(p.holders); err != nil {
		return Pool{}, invalid("status.orbweaver.records: %v", err)
	}
	return p, nil
}

// EffectiveAddresses is what a pool or subnet hands out: ips inside subnet, minus
// exclude. The webhook refuses addresses outside the subnet; they are never counted nor
// handed out regardless. ips of the other family are an error.
func EffectiveAddresses(subnet netip.Prefix, ips, exclude []v2beta1.IPOrRange) (ip.Set, error) {
	in, err := ip.ParseRanges(tokens(ips))
	if err != nil {
		return ip.Set{}, fmt.Errorf("spec.ips: %w", err)
	}
	out, err := ip.ParseRanges(tokens(exclude))
	if err != nil {
		return ip.Set{}, fmt.Errorf("spec.excludeIPs: %w", err)
	}
	if !in.IsEmpty() && in.Is4() != subnet.Addr().Is4() {
		return ip.Set{}, fmt.Errorf("spec.ips are not of the family of %s", subnet)
	}
	return in.Intersect(ip.SetOfPrefix(subnet)).Subtract(out), nil
}

func tokens(rs []v2beta1.IPOrRange) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

func setOf(holders map[netip.Addr]records.Owner) (ip.Set, error) {
	if len(holders) == 0 {
		return ip.Set{}, nil
	}
	rs := make([]ip.Range, 0, len(holders))
	for a := range holders {
		rs = append(rs, ip.Range{From: a, To: a})
	}
	return ip.SetOfRanges(rs...)
}

// Name is the pool's name.
func (p Pool) Name() string { return p.name }

// Usable reports whether a new allocation may take the address: in spec.ips, not
// excluded, not reserved by a SpiderReservedIP (whether or not someone holds it).
func (p Pool) Usable(a netip.Addr) bool { return p.usable.Contains(a) }

// UsableCount is the number of addresses new allocations may take, held or not,
// saturated at the int64 maximum.
func (p Pool) UsableCount() int64 { return p.usable.Count().Int64Saturating() }

// Subnet is the pool's subnet.
func (p Pool) Subnet() netip.Prefix { return p.subnet }

// AllocatedCount is the number of allocated addresses: the records, those of pods and
// those of node agents' reserves (status.allocatedIPCount plus
// status.orbweaver.spareIPCount).
func (p Pool) AllocatedCount() int64 { return int64(len(p.holders)) }

// PodCount is the number of addresses held by pods, status.allocatedIPCount.
func (p Pool) PodCount() int64 { return p.AllocatedCount() - p.SpareCount() }

// SpareCount is the number of addresses held by node agents' reserves,
// status.orbweaver.spareIPCount.
func (p Pool) SpareCount() int64 {
	var n int64
	for _, o := range p.holders {
		if o.IsReserve() {
			n++
		}
	}
	return n
}

// TotalCount is the number of addresses of spec.ips minus spec.excludeIPs,
// status.totalIPCount, saturated at the int64 maximum.
func (p Pool) TotalCount() int64 { return p.total.Count().Int64Saturating() }

// Holder returns the owner of an allocated address.
func (p Pool) Holder(a netip.Addr) (records.Owner, bool) {
	o, ok := p.holders[a]
	return o, ok
}

// HeldBy returns the address an attachment holds in this pool.
func (p Pool) HeldBy(o records.Owner) (netip.Addr, bool) {
	for a, h := range p.holders {
		if h == o {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Owners returns the owner of every allocated address, in no particular order.
func (p Pool) Owners() []records.Owner {
	out := make([]records.Owner, 0, len(p.holders))
	for _, o := range p.holders {
		out = append(out, o)
	}
	return out
}

// HeldByPod returns every address held by any attachment of a pod (by its pod key),
// ascending.
func (p Pool) HeldByPod(podKey uint64) []netip.Addr {
	var out []netip.Addr
	for a, h := range p.holders {
		if h.Pod == podKey {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Allocate gives each owner one address, searching for free addresses from start (see
// ip.FirstFree: different allocators use different starts so that they rarely pick the
// same address). An owner that already holds an address of this pool gets that address
// again, so a retried request never takes a second one. When the pool runs out, the
// owners that could be served are, the others get the zero Addr, and the error wraps
// ErrPoolExhausted. Owners must be distinct.
func (p Pool) Allocate(owners []records.Owner, start netip.Addr) (Pool, []netip.Addr, error) {
	out := make([]netip.Addr, len(owners))
	existing := make(map[records.Owner]netip.Addr, len(owners))
	for a, h := range p.holders {
		existing[h] = a
	}
	next := p
	next.holders = maps.Clone(p.holders)
	var added []ip.Range
	free := ip.Free(p.usable, p.held, start)
	pull, stop := iter.Pull(free)
	defer stop()
	missing := 0
	for i, o := range owners {
		if a, ok := existing[o]; ok {
			out[i] = a
			continue
		}
		a, ok := pull()
		if !ok {
			missing++
			continue
		}
		out[i] = a
		next.holders[a] = o
		existing[o] = a
		added = append(added, ip.Range{From: a, To: a})
	}
	if len(added) > 0 {
		held, err := p.held.Union(mustSet(added))
		if err != nil {
			return p, nil, fmt.Errorf("%w %q: %v", ErrInvalidPool, p.name, err)
		}
		next.held = held
	} else {
		next.holders = p.holders
	}
	if missing > 0 {
		return next, out, fmt.Errorf("pool %q has no free address for %d of %d requests (%d of %d allocated, %d reserved): %w",
			p.name, missing, len(owners), len(next.holders), p.TotalCount(), p.total.Count().Int64Saturating()-p.usable.Count().Int64Saturating(), ErrPoolExhausted)
	}
	return next, out, nil
}

// Reserve takes up to n free addresses for one owner (a node's reservation, which holds
// many), searching from start as Allocate does, and returns the ones it took; fewer than
// n when the pool runs short, none when it is full.
func (p Pool) Reserve(owner records.Owner, n int, start netip.Addr) (Pool, []netip.Addr) {
	if n <= 0 {
		return p, nil
	}
	var took []netip.Addr
	for a := range ip.Free(p.usable, p.held, start) {
		took = append(took, a)
		if len(took) == n {
			break
		}
	}
	if len(took) == 0 {
		return p, nil
	}
	next := p
	next.holders = maps.Clone(p.holders)
	rs := make([]ip.Range, len(took))
	for i, a := range took {
		next.holders[a] = owner
		rs[i] = ip.Range{From: a, To: a}
	}
	held, err := p.held.Union(mustSet(rs))
	if err != nil {
		panic("ipam: " + err.Error()) // free addresses of this pool, of its family
	}
	next.held = held
	return next, took
}

// FreeCount is the number of addresses a new allocation could take now, saturated at
// the int64 maximum.
func (p Pool) FreeCount() int64 {
	return p.usable.Subtract(p.held).Count().Int64Saturating()
}

// AllHeldBy returns every address an owner holds (a node's reservation holds many),
// ascending.
func (p Pool) AllHeldBy(o records.Owner) []netip.Addr {
	var out []netip.Addr
	for a, h := range p.holders {
		if h == o {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Reservers counts the nodes other than the one whose reservation is mine that hold
// addresses of the pool in reserve.
func (p Pool) Reservers(mine records.Owner) int {
	seen := map[records.Owner]bool{}
	for _, h := range p.holders {
		if h.IsReserve() && h != mine {
			seen[h] = true
		}
	}
	return len(seen)
}

// ReservedElsewhere counts the addresses held in reserve by nodes other than the one
// whose reservation is mine: addresses that come back to the pool when those nodes do
// not need them.
func (p Pool) ReservedElsewhere(mine records.Owner) int {
	n := 0
	for _, h := range p.holders {
		if h.IsReserve() && h != mine {
			n++
		}
	}
	return n
}

func mustSet(rs []ip.Range) ip.Set {
	s, err := ip.SetOfRanges(rs...)
	if err != nil {
		// Every range is a single address of the pool's family, taken from the pool.
		panic("ipam: " + err.Error())
	}
	return s
}

// Release frees an address if, and only if, owner holds it: a release carrying a stale
// owner (an old sandbox's DEL, a GC decision made before the address changed hands) is
// a no-op, reported by false.
func (p Pool) Release(a netip.Addr, owner records.Owner) (Pool, bool) {
	if h, ok := p.holders[a]; !ok || h != owner {
		return p, false
	}
	next := p
	next.holders = maps.Clone(p.holders)
	delete(next.holders, a)
	next.held = p.held.Subtract(mustSet([]ip.Range{{From: a, To: a}}))
	return next, true
}

// ReleaseOwner frees every address the owner holds in this pool (a DEL that has no
// SpiderEndpoint to name the address, e.g. after a crash between the pool write and
// the endpoint write) and returns them.
func (p Pool) ReleaseOwner(owner records.Owner) (Pool, []netip.Addr) {
	var freed []netip.Addr
	for a, h := range p.holders {
		if h == owner {
			freed = append(freed, a)
		}
	}
	if len(freed) == 0 {
		return p, nil
	}
	slices.SortFunc(freed, netip.Addr.Compare)
	next := p
	next.holders = maps.Clone(p.holders)
	rs := make([]ip.Range, len(freed))
	for i, a := range freed {
		delete(next.holders, a)
		rs[i] = ip.Range{From: a, To: a}
	}
	next.held = p.held.Subtract(mustSet(rs))
	return next, freed
}

// SpreadStart returns the address from which an allocator with the given key (a hash
// of its node name) starts searching, spread evenly over the pool's usable addresses so
// that allocators on different nodes rarely want the same address.
func (p Pool) SpreadStart(key uint64) netip.Addr {
	n, ok := p.usable.Count().Uint64()
	if !ok {
		// More than 2^64 addresses: any uint64 is a valid position.
		a, _ := p.usable.Nth(ip.CountFromUint64(key))
		return a
	}
	if n == 0 {
		return netip.Addr{}
	}
	a, _ := p.usable.Nth(ip.CountFromUint64(key % n))
	return a
}

// Rebind hands an address from one owner to another, e.g. from a pod's old sandbox to
// its new one, if from holds it; it reports whether it did.
func (p Pool) Rebind(a netip.Addr, from, to records.Owner) (Pool, bool) {
	if h, ok := p.holders[a]; !ok || h != from {
		return p, false
	}
	next := p
	next.holders = maps.Clone(p.holders)
	next.holders[a] = to
	return next, true
}

// WriteStatus puts the pool's records and counts into sp's status: both in the same
// object, so one write changes them together and the counts never drift:
// allocatedIPCount (addresses pods hold), status.orbweaver.spareIPCount (addresses node
// reserves hold), status.orbweaver.freeIPCount and totalIPCount. A pool in Grants mode
// keeps the counts it has: they are the pool controller's, counted from SpiderEndpoints,
// and its records are only those not moved to grants yet. The pool controller's
// conditions (status.conditions and status.orbweaver.conditions), the EIP controller's
// bindings and the allocation mode (the grant controller's) in sp are kept.
func (p Pool) WriteStatus(sp *v2beta1.SpiderIPPool) error {
	recs := make([]records.Record, 0, len(p.holders))
	for a, o := range p.holders {
		recs = append(recs, records.Record{IP: a, Owner: o})
	}
	data, err := records.Encode(p.subnet, recs)
	if err != nil {
		return fmt.Errorf("pool %q: %w", p.name, err)
	}
	st := &v2beta1.IPPoolOrbweaverStatus{}
	if len(recs) > 0 {
		st.Records = data
	}
	if old := sp.Status.Orbweaver; old != nil {
		st.Conditions, st.EIPs, st.Allocation = old.Conditions, old.EIPs, old.Allocation
		st.SpareIPCount, st.FreeIPCount = old.SpareIPCount, old.FreeIPCount
	}
	if !sp.GrantsMode() {
		pods, spare, free, total := p.PodCount(), p.SpareCount(), p.FreeCount(), p.TotalCount()
		sp.Status.AllocatedIPCount, sp.Status.TotalIPCount = &pods, &total
		st.SpareIPCount, st.FreeIPCount = &spare, &free
	}
	sp.Status.Orbweaver = st
	return nil
}

// String summarises the pool for logs.
func (p Pool) String() string {
	return fmt.Sprintf("pool %q %s: %d of %d allocated", p.name, p.subnet, len(p.holders), p.TotalCount())
}
