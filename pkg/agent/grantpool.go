package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// poolAllocator is what the Service asks of one pool on this node: a PoolWriter (the
// pool's records, protocol 1) or a grantPool (node grants, protocol 2).
type poolAllocator interface {
	AllocateOrWait(ctx context.Context, owner records.Owner) (netip.Addr, error)
	Release(ctx context.Context, addr netip.Addr, owner records.Owner) (bool, error)
	ReleaseOwner(ctx context.Context, owner records.Owner) ([]netip.Addr, error)
	Rebind(ctx context.Context, addr netip.Addr, from, to records.Owner) (bool, error)
	HandedTo(addr netip.Addr, owner records.Owner) bool
	HasHanded(owner records.Owner) bool
}

var (
	_ poolAllocator = (*PoolWriter)(nil)
	_ poolAllocator = (*grantPool)(nil)
)

// Defaults of node grants.
const (
	// DefaultGrantBuffer caps how many addresses beyond its need a node asks for, so
	// that its next pods do not wait for a round: as many as it needs (a node's share
	// doubles while its pods keep coming), up to this. The controller grants buffers
	// only from what no node needs, and asks for them back when a node needs them.
	// Measured (docs/design/node-grants.md): 8 left a node of 100 pods waiting for
	// rounds (78 allocations/s at 10 nodes against 108 with 64).
	DefaultGrantBuffer = 64
	// DefaultGrantWait bounds an ADD's wait for a grant before it fails: the pool is
	// full, or the controller is not running. Long enough for a reclaim on a busy API
	// server (two writes and three watch deliveries; at 500 nodes on 2 cores the p99
	// ADD came within 3 s of 20 s), below the plugin's 60 s timeout.
	DefaultGrantWait = 40 * time.Second
	// grantIdle is how long a node keeps more than it wants before giving the surplus
	// back.
	grantIdle = 30 * time.Second
	// returnBound is how long an address given back stays unusable when the node's
	// cache keeps showing it granted: far above a watch's delay, after which the
	// give-back is known not to have landed.
	returnBound = 30 * time.Second
)

// grantDeps are what every grantPool of the node shares.
type grantDeps struct {
	node    string
	cluster Cluster
	blocks  func() []ipamv1.IPBlock // this node's blocks, from the cache
	direct  client.Client           // give-back writes
	demand  func()                  // wakes the demand writer
	// forecast counts by pool the node's pods expected to ask it soon (nil: none).
	forecast func(ctx context.Context) (map[string]int, error)
	buffer   int
	wait     time.Duration
	log      logr.Logger
	// ready is false until a crashed previous life's writes can no longer land
	// (quarantine): nothing is handed out before.
	ready func() bool
	// pins are the addresses the node's endpoints held when the quarantine ended, read
	// from the API server: busy even while the endpoint cache lags behind that read.
	pins *pins
}

// pins are addresses kept busy for a while whatever the caches say.
type pins struct {
	mu sync.Mutex
	m  map[poolAddr]time.Time // until when
}

// pin keeps each address busy for returnBound.
func (p *pins) pin(addrs []poolAddr, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[poolAddr]time.Time{}
	}
	for _, a := range addrs {
		p.m[a] = now.Add(returnBound)
	}
}

// busy reports whether a is pinned.
func (p *pins) busy(pool string, a netip.Addr) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	until, ok := p.m[poolAddr{pool, a}]
	if ok && time.Now().After(until) {
		delete(p.m, poolAddr{pool, a})
		return false
	}
	return ok
}

// drop unpins a (its endpoint no longer names it).
func (p *pins) drop(pool string, a netip.Addr) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, poolAddr{pool, a})
}

// grantPool hands out the addresses granted to this node in one pool, from memory. The
// pod's SpiderEndpoint, written before ADD answers, is the record; an address is busy
// while an endpoint of the node holds it or while it is being handed out (its endpoint
// not in the cache yet).
type grantPool struct {
	name string
	d    *grantDeps

	mu      sync.Mutex
	handing map[netip.Addr]records.Owner
	owners  map[records.Owner]netip.Addr
	waiting int
	last    netip.Addr
	// returning are addresses a give-back write carries or carried, by when: never
	// handed out until the cache shows them no longer granted to the node (or, after
	// returnBound, never shows that: the write did not land and they are the node's).
	// That is the path of what the node gives back unasked (surplus, unusable).
	returning map[netip.Addr]time.Time
	// released and kept answer the controller's reclaim requests, by the request's
	// token, in the node's IPAMNode (no write to a block other nodes share). A released
	// address is never handed out again unless its request goes away while it is still
	// granted to the node (the controller dropped it: the answer can no longer count).
	released, kept map[netip.Addr]string
	changed        chan struct{} // closed and replaced when an address may have become free
	// above is when the node started holding more than it wants (zero: it does not).
	above time.Time
	// need and want are what the demand writer last computed.
	need, want int
	// tokens are the tokens of the reclaim requests the last view saw, by address.
	tokens map[netip.Addr]string
	// wishes are addresses granted to another node that a pod of this node waits for
	// (a StatefulSet pod rescheduled here keeps its address), with the owner each goes
	// to; the node's demand asks for them by address (PoolDemand.IPs).
	wishes map[netip.Addr]records.Owner
	// prev is the pool's records writer of this life when the pool switched to node
	// grants under it: the addresses its reserve handed out are busy until released
	// here, since their endpoints may not be written, or not in the cache, yet.
	prev *reserve
}

// inherit takes over the reserve of the pool's records writer, once: it hands out no
// more spares, and what it handed out stays busy (docs/design/node-grants.md,
// migration).
func (g *grantPool) inherit(w *PoolWriter) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prev != nil || w.res == nil {
		return
	}
	w.res.suspend(true)
	g.prev = w.res
}

// prevHanded reports whether the inherited reserve handed a out. Call with g.mu held.
func (g *grantPool) prevHanded(a netip.Addr) bool {
	return g.prev != nil && g.prev.isHanded(a)
}

func newGrantPool(name string, d *grantDeps) *grantPool {
	return &grantPool{name: name, d: d, handing: map[netip.Addr]records.Owner{}, owners: map[records.Owner]netip.Addr{},
		returning: map[netip.Addr]time.Time{}, released: map[netip.Addr]string{}, kept: map[netip.Addr]string{},
		wishes: map[netip.Addr]records.Owner{}, changed: make(chan struct{})}
}

// poke wakes the ADDs waiting for an address.
func (g *grantPool) poke() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.wakeLocked()
}

// wakeLocked is poke with g.mu held.
func (g *grantPool) wakeLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// view is the node's share of the pool now: grants from the block cache, holds from the
// endpoint cache. It drops hand-outs that the endpoint cache shows (the endpoint holds
// them now). Call with g.mu held.
func (g *grantPool) view(ctx context.Context) (ipam.NodeShare, map[netip.Addr]*v2beta1.SpiderEndpoint, *v2beta1.SpiderIPPool, error) {
	sp, err := g.d.cluster.Pool(ctx, g.name)
	if err != nil {
		return ipam.NodeShare{}, nil, nil, err
	}
	subnet, total, err := ipam.PoolAddresses(sp)
	if err != nil {
		return ipam.NodeShare{}, nil, nil, err
	}
	family, _ := ipam.PoolFamily(sp)
	usable := total.Subtract(g.d.cluster.Reserved(family == v2beta1.IPv4))
	asked := map[netip.Addr]bool{}
	tokens := map[netip.Addr]string{}
	var granted []netip.Addr
	for _, b := range g.d.blocks() {
		if b.Spec.Pool != g.name {
			continue
		}
		gb, err := ipam.GrantBlockOf(subnet, &b)
		if err != nil {
			g.d.log.Error(err, "unreadable IPBlock: its addresses are not handed out", "IPBlock", b.Name)
			continue
		}
		for a, n := range gb.Owners {
			if n != g.d.node {
				continue
			}
			if at, ok := g.returning[a]; ok && time.Since(at) > returnBound {
				delete(g.returning, a) // the give-back never landed: still the node's
			}
			granted = append(granted, a)
			if tok := gb.Reclaim[a]; tok != "" {
				asked[a], tokens[a] = true, tok
			}
		}
	}
	slices.SortFunc(granted, netip.Addr.Compare)
	for a := range g.returning {
		if _, ok := slices.BinarySearchFunc(granted, a, netip.Addr.Compare); !ok {
			delete(g.returning, a) // given back
		}
	}
	for _, answers := range []map[netip.Addr]string{g.released, g.kept} {
		for a, tok := range answers {
			if tokens[a] != tok {
				delete(answers, a) // taken back, or the request is gone or replaced
			}
		}
	}
	g.tokens = tokens
	held, err := g.held(ctx)
	if err != nil {
		return ipam.NodeShare{}, nil, nil, err
	}
	for a, o := range g.handing {
		if held[a] != nil {
			delete(g.handing, a)
			delete(g.owners, o)
		}
	}
	share := ipam.NodeShare{
		Granted: granted,
		Asked:   asked,
		Busy: func(a netip.Addr) bool {
			_, handing := g.handing[a]
			_, returning := g.returning[a]
			_, released := g.released[a]
			_, wished := g.wishes[a]
			return held[a] != nil || handing || returning || released || wished || g.prevHanded(a) || g.d.pins.busy(g.name, a)
		},
		Usable: usable.Contains,
	}
	return share, held, sp, nil
}

// held maps the addresses of the pool that this node's SpiderEndpoints hold to the
// endpoint that holds each.
func (g *grantPool) held(ctx context.Context) (map[netip.Addr]*v2beta1.SpiderEndpoint, error) {
	eps, err := g.d.cluster.Endpoints(ctx)
	if err != nil {
		return nil, err
	}
	out := map[netip.Addr]*v2beta1.SpiderEndpoint{}
	for i := range eps {
		for _, nic := range eps[i].Status.Current.IPs {
			for _, a := range nicAddrs(&nic) {
				if a.pool == g.name {
					out[a.addr] = &eps[i]
				}
			}
		}
	}
	return out, nil
}

// AllocateOrWait hands the owner an address granted to this node; the one it was handed
// already when it asks again. With none free it raises the node's need and waits for a
// grant, up to the grant wait; then the pool is full.
func (g *grantPool) AllocateOrWait(ctx context.Context, owner records.Owner) (netip.Addr, error) {
	return g.allocate(ctx, owner, g.d.wait)
}

// allocate is AllocateOrWait with a wait of its own; with none, it hands out what the
// node holds free and otherwise fails with the pool exhausted at once.
func (g *grantPool) allocate(ctx context.Context, owner records.Owner, wait time.Duration) (netip.Addr, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	counted := false
	defer func() {
		if counted {
			g.mu.Lock()
			g.waiting--
			g.mu.Unlock()
		}
	}()
	for {
		g.mu.Lock()
		if a, ok := g.owners[owner]; ok {
			g.mu.Unlock()
			return a, nil
		}
		if g.prev != nil {
			if a, ok := g.prev.heldBy(owner); ok {
				g.mu.Unlock()
				return a, nil // handed out by the records writer before the switch
			}
		}
		var a netip.Addr
		ok := false
		var free int
		if g.d.ready() {
			share, _, _, err := g.view(ctx)
			if err != nil {
				g.mu.Unlock()
				return netip.Addr{}, err
			}
			if a, ok = share.Pick(g.last); ok {
				g.handing[a], g.owners[owner], g.last = owner, a, a
				free = share.Free() - 1
			}
		}
		if !ok && !counted && wait > 0 {
			counted = true
			g.waiting++
		}
		ch := g.changed
		g.mu.Unlock()
		if ok {
			if free < g.d.buffer/2 {
				g.d.demand() // top up before the next pod has to wait
			}
			return a, nil
		}
		if wait > 0 {
			g.d.demand()
		}
		select {
		case <-ctx.Done():
			return netip.Addr{}, fmt.Errorf("wait for an address of pool %s granted to node %s: %w", g.name, g.d.node, ctx.Err())
		case <-deadline.C:
			if wait == 0 {
				return netip.Addr{}, fmt.Errorf("%w: pool %s counts every address held, and node %s holds none free", ipam.ErrPoolExhausted, g.name, g.d.node)
			}
			return netip.Addr{}, fmt.Errorf("%w: no address of pool %s was granted to node %s within %s: every address is held by pods or granted to other nodes (kubectl get ipb -l %s=%s shows the grants)",
				ipam.ErrPoolExhausted, g.name, g.d.node, wait, ipam.BlockPoolLabel, g.name)
		case <-ch:
		}
	}
}

// Release forgets a hand-out of addr to owner; the endpoint's update or deletion, which
// the caller makes next, frees the address for the node's next pod.
func (g *grantPool) Release(_ context.Context, addr netip.Addr, owner records.Owner) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Called once the endpoint no longer names addr, which the endpoint watch may have
	// told the waiting ADDs already: wake them again.
	defer g.wakeLocked()
	g.d.pins.drop(g.name, addr)
	if g.prev != nil {
		if released, _ := g.prev.releaseHanded(addr, owner); released {
			return true, nil
		}
	}
	if o, ok := g.handing[addr]; ok && o == owner {
		delete(g.handing, addr)
		delete(g.owners, owner)
		return true, nil
	}
	return false, nil
}

// ReleaseOwner forgets every hand-out to owner.
func (g *grantPool) ReleaseOwner(_ context.Context, owner records.Owner) ([]netip.Addr, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prev != nil {
		if freed, _ := g.prev.releaseOwner(owner); len(freed) > 0 {
			return freed, nil
		}
	}
	a, ok := g.owners[owner]
	if !ok {
		return nil, nil
	}
	delete(g.handing, a)
	delete(g.owners, owner)
	return []netip.Addr{a}, nil
}

// Rebind moves an address to another owner: a hand-out, or an address an endpoint
// holds (the endpoint's update, which the caller makes next, names the new owner). An
// address granted to another node (the endpoint of a StatefulSet pod rescheduled here
// names it) is asked for by address and waited for, up to the grant wait: its node
// gives it back once its own pod is gone. It reports whether the owner may keep the
// address; false means it was not granted here in time, and the pod gets another.
func (g *grantPool) Rebind(ctx context.Context, addr netip.Addr, from, to records.Owner) (bool, error) {
	g.mu.Lock()
	if g.prev != nil && g.prev.handedTo(addr, from) {
		g.prev.releaseHanded(addr, from) // handed out here from now on
		g.handing[addr] = from
	}
	if o, ok := g.handing[addr]; ok && (o == from || o == to) {
		g.handing[addr] = to
		delete(g.owners, from)
		g.owners[to] = addr
		g.mu.Unlock()
		return true, nil
	}
	g.mu.Unlock()
	return g.awaitGrant(ctx, addr, to, "a StatefulSet pod rescheduled here keeps it",
		func(_ ipam.NodeShare, held map[netip.Addr]*v2beta1.SpiderEndpoint) (bool, error) {
			if held[addr] == nil {
				// Not this node's endpoint's yet: handed out, so no other pod gets it.
				g.handing[addr] = to
				delete(g.owners, from)
				g.owners[to] = addr
			}
			return true, nil
		})
}

// Take hands owner one given address, the one its pod must have (the address of a
// StatefulSet pod's ordinal, ipam.AnnoIPByOrdinal): at once when it is granted to this
// node and free; when another node or none has it, the node asks for it by address and
// waits, up to the grant wait, as Rebind does. It fails with ipam.ErrOrdinalAddress
// when a pod of this node holds it or it is busy here for another reason, and when it
// does not come in time (a pod of another node holds it).
func (g *grantPool) Take(ctx context.Context, addr netip.Addr, owner records.Owner) error {
	g.mu.Lock()
	if a, ok := g.owners[owner]; ok {
		g.mu.Unlock()
		if a == addr {
			return nil // a repeated ADD
		}
		return fmt.Errorf("%w: %s of pool %s: the pod was handed %s already", ipam.ErrOrdinalAddress, addr, g.name, a)
	}
	g.mu.Unlock()
	ok, err := g.awaitGrant(ctx, addr, owner, "the address of a StatefulSet pod's ordinal",
		func(share ipam.NodeShare, held map[netip.Addr]*v2beta1.SpiderEndpoint) (bool, error) {
			if se := held[addr]; se != nil {
				return false, fmt.Errorf("%w: %s of pool %s is held by pod %s/%s", ipam.ErrOrdinalAddress, addr, g.name, se.Namespace, se.Name)
			}
			delete(g.wishes, addr) // our own wish makes it busy: not another reason
			if share.Busy(addr) {
				return false, fmt.Errorf("%w: %s of pool %s is busy on node %s (handed to another pod, or being given back)", ipam.ErrOrdinalAddress, addr, g.name, g.d.node)
			}
			g.handing[addr] = owner
			g.owners[owner] = addr
			return true, nil
		})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s of pool %s was not granted to node %s within %s: a pod of another node holds it, or it is reserved (kubectl orbweaver ipam show --ip %s)",
			ipam.ErrOrdinalAddress, addr, g.name, g.d.node, g.d.wait, addr)
	}
	return nil
}

// awaitGrant waits, up to the grant wait, until addr is granted to this node, asking
// for it by address for owner (why says why, in the log); then it calls got with g.mu
// held and returns its answer. It returns false when the wait ends first or the
// address is no longer usable (excluded or reserved).
func (g *grantPool) awaitGrant(ctx context.Context, addr netip.Addr, owner records.Owner, why string,
	got func(share ipam.NodeShare, held map[netip.Addr]*v2beta1.SpiderEndpoint) (bool, error)) (bool, error) {
	deadline := time.NewTimer(g.d.wait)
	defer deadline.Stop()
	defer func() {
		g.mu.Lock()
		if g.wishes[addr] == owner {
			delete(g.wishes, addr)
		}
		g.mu.Unlock()
	}()
	for asked := false; ; {
		g.mu.Lock()
		share, held, _, err := g.view(ctx)
		if err != nil {
			g.mu.Unlock()
			return false, err
		}
		if _, granted := slices.BinarySearchFunc(share.Granted, addr, netip.Addr.Compare); granted {
			ok, err := got(share, held)
			g.mu.Unlock()
			return ok, err
		}
		if !asked {
			if !share.Usable(addr) {
				g.mu.Unlock()
				return false, nil // excluded or reserved since: never granted
			}
			g.wishes[addr], asked = owner, true
			g.d.log.Info("waiting for an address granted to another node or to none", "why", why, "SpiderIPPool", g.name, "ip", addr)
		}
		ch := g.changed
		g.mu.Unlock()
		g.d.demand()
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("wait for address %s of pool %s to be granted to node %s: %w", addr, g.name, g.d.node, ctx.Err())
		case <-deadline.C:
			g.d.log.Info("an address asked for by address did not come within the grant wait", "why", why, "SpiderIPPool", g.name, "ip", addr, "wait", g.d.wait)
			return false, nil
		case <-ch:
		}
	}
}

// HandedTo reports whether addr was handed to owner and its endpoint is not in the cache
// yet.
func (g *grantPool) HandedTo(addr netip.Addr, owner records.Owner) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prev != nil && g.prev.handedTo(addr, owner) {
		return true
	}
	o, ok := g.handing[addr]
	return ok && o == owner
}

// HasHanded reports whether owner was handed an address not yet in the endpoint cache.
func (g *grantPool) HasHanded(owner records.Owner) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prev != nil {
		if _, ok := g.prev.heldBy(owner); ok {
			return true
		}
	}
	_, ok := g.owners[owner]
	return ok
}

// Granted reports whether addr is granted to this node (CHECK).
func (g *grantPool) Granted(ctx context.Context, addr netip.Addr) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	share, _, _, err := g.view(ctx)
	if err != nil {
		return false, err
	}
	_, ok := slices.BinarySearchFunc(share.Granted, addr, netip.Addr.Compare)
	return ok, nil
}

// demand is the pool's line in the node's IPAMNode, and what the node holds of the pool
// against what it will use soon; forecast counts the node's pods expected to ask this
// pool soon.
func (g *grantPool) demand(ctx context.Context, forecast int) (ipamv1.PoolDemand, poolHold, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	share, _, _, err := g.view(ctx)
	if err != nil {
		return ipamv1.PoolDemand{}, poolHold{}, err
	}
	busy := 0
	for _, a := range share.Granted {
		if share.Busy(a) {
			busy++
		}
	}
	for a := range g.handing {
		if _, granted := slices.BinarySearchFunc(share.Granted, a, netip.Addr.Compare); !granted {
			busy++ // handed out, then given back under it: still in use until its DEL
		}
	}
	for a := range g.released {
		if share.Busy(a) {
			busy-- // given back: not the node's need any more
		}
	}
	// The forecast counts every pod of the node with no endpoint yet, which includes
	// the pods whose ADD waits (in need already) or was handed an address whose
	// endpoint is not in the cache yet (busy already).
	forecast = max(0, forecast-g.waiting-len(g.handing))
	g.need, g.want = ipam.NodeDemand(busy, g.waiting, forecast, g.d.buffer)
	var ips []string
	for _, a := range slices.SortedFunc(maps.Keys(g.wishes), netip.Addr.Compare) {
		if _, granted := slices.BinarySearchFunc(share.Granted, a, netip.Addr.Compare); !granted {
			ips = append(ips, a.String())
		}
	}
	hold := poolHold{have: len(share.Granted) - len(g.released), coming: g.need + forecast}
	return ipamv1.PoolDemand{Pool: g.name, Need: int32(g.need), Want: int32(g.want), IPs: ips, GiveBack: answers(g.released, g.kept)}, hold, nil
}

// answers groups the node's answers to reclaim requests by token, in token order.
func answers(released, kept map[netip.Addr]string) []ipamv1.GiveBack {
	by := map[string]*ipamv1.GiveBack{}
	add := func(m map[netip.Addr]string, kept bool) {
		for a, tok := range m {
			gb := by[tok]
			if gb == nil {
				gb = &ipamv1.GiveBack{Token: tok}
				by[tok] = gb
			}
			if kept {
				gb.Kept = append(gb.Kept, a.String())
			} else {
				gb.IPs = append(gb.IPs, a.String())
			}
		}
	}
	add(released, false)
	add(kept, true)
	var out []ipamv1.GiveBack
	for _, tok := range slices.Sorted(maps.Keys(by)) {
		gb := by[tok]
		slices.Sort(gb.IPs)
		slices.Sort(gb.Kept)
		out = append(out, *gb)
	}
	return out
}

// leftPods moves from keep to back the addresses asked back whose only hold is an
// endpoint of a pod instance that is no longer on this node: the API server has no pod
// of that name and UID on this node (read fresh, since a cache may lag). Such an
// endpoint is a StatefulSet's, kept for its pod's next instance, and that instance's
// node asks for the address. Call with g.mu held.
func (g *grantPool) leftPods(ctx context.Context, held map[netip.Addr]*v2beta1.SpiderEndpoint, back, keep []netip.Addr) ([]netip.Addr, []netip.Addr) {
	kept := keep[:0:0]
	for _, a := range keep {
		se, tok := held[a], g.tokens[a]
		_, handing := g.handing[a]
		if se == nil || handing || tok == "" || g.kept[a] == tok || !g.podLeft(ctx, se) {
			kept = append(kept, a)
			continue
		}
		g.d.log.Info("giving back the address of a pod that left this node; its new node asks for it", "SpiderIPPool", g.name, "ip", a, "SpiderEndpoint", se.Namespace+"/"+se.Name)
		back = append(back, a)
	}
	return back, kept
}

// podLeft reports whether the pod instance an endpoint names is certainly not on this
// node: no pod of its name, or one of another UID or on another node. A pod UID that
// left the API server never comes back. On a read error it reports false (kept).
func (g *grantPool) podLeft(ctx context.Context, se *v2beta1.SpiderEndpoint) bool {
	pod, err := g.d.cluster.FreshPod(ctx, se.Namespace, se.Name)
	if apierrors.IsNotFound(err) {
		return true
	}
	if err != nil {
		g.d.log.Error(err, "cannot tell whether a pod left this node; its address stays", "SpiderEndpoint", se.Namespace+"/"+se.Name)
		return false
	}
	return string(pod.UID) != se.Status.Current.UID || pod.Spec.NodeName != g.d.node
}

// giveBack gives back, in one write per block, what the controller asked for and what
// no pod holds, what left the pool's usable addresses, and the surplus above the node's
// want once it has lasted grantIdle. It clears the requests for addresses a pod holds.
func (g *grantPool) giveBack(ctx context.Context, now time.Time) error {
	if !g.d.ready() {
		// During the quarantine an endpoint write of the crashed life may still land:
		// an address that looks unheld may be held, so none goes back.
		return nil
	}
	g.mu.Lock()
	share, held, sp, err := g.view(ctx)
	if err != nil {
		g.mu.Unlock()
		return err
	}
	surplus := 0
	if over := len(share.Granted) - max(g.want, g.need); over > 0 && g.waiting == 0 {
		if g.above.IsZero() {
			g.above = now
		}
		if now.Sub(g.above) >= grantIdle {
			surplus = over
		}
	} else {
		g.above = time.Time{}
	}
	back, keep := share.GiveBack(surplus)
	// An address asked back that only an endpoint of a pod no longer on this node holds
	// (a StatefulSet pod rescheduled elsewhere, whose new node asks for it) goes back.
	back, keep = g.leftPods(ctx, held, back, keep)
	// Answers to requests go in the node's IPAMNode, with the requests' tokens.
	answered := false
	for _, a := range keep {
		// An address given back already counts as busy here: it is not kept.
		if tok := g.tokens[a]; tok != "" && g.kept[a] != tok && g.released[a] != tok {
			g.kept[a], answered = tok, true
		}
	}
	unasked := back[:0:0]
	for _, a := range back {
		if tok := g.tokens[a]; tok != "" {
			if g.released[a] != tok {
				g.released[a], answered = tok, true // never handed out from now on
			}
			continue
		}
		unasked = append(unasked, a)
	}
	if answered {
		g.d.demand()
	}
	back, keep = unasked, nil
	if len(back) == 0 {
		g.mu.Unlock()
		return nil
	}
	for _, a := range back {
		g.returning[a] = now // in flight: never handed out from now on
	}
	g.mu.Unlock()

	subnet, _ := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet))
	byBlock := map[netip.Addr][]netip.Addr{}
	for _, a := range append(slices.Clone(back), keep...) {
		byBlock[ipam.BlockStart(subnet, a)] = append(byBlock[ipam.BlockStart(subnet, a)], a)
	}
	backSet := map[netip.Addr]bool{}
	for _, a := range back {
		backSet[a] = true
	}
	var errs []error
	for start, as := range byBlock {
		written, err := g.writeBlock(ctx, subnet, start, as, backSet)
		if !written {
			g.mu.Lock()
			for _, a := range as {
				delete(g.returning, a) // certainly not given back: still the node's
			}
			g.mu.Unlock()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(back) > 0 {
		g.d.log.V(1).Info("gave back addresses", "SpiderIPPool", g.name, "ips", len(back), "kept", len(keep))
	}
	g.d.demand()
	return errors.Join(errs...)
}

// RBAC of writeBlock: an IPBlock read fresh and updated (addresses given back).
//
// +kubebuilder:rbac:groups=ipam.orbweaver.io,resources=ipblocks,verbs=get;update

// writeBlock removes this node's addresses in back from the block starting at start and
// clears its reclaim requests for every address in as, with a compare-and-swap; on a
// conflict it reads the block again. It reports whether a write may have landed: false
// means the addresses are certainly still the node's.
func (g *grantPool) writeBlock(ctx context.Context, subnet netip.Prefix, start netip.Addr, as []netip.Addr, back map[netip.Addr]bool) (bool, error) {
	name := ipam.BlockName(g.name, start)
	for try := 0; try < 10; try++ {
		if try > 0 {
			// Other nodes give back in the same block: spread the retries out.
			sleep(ctx, time.Duration(5+rand.IntN(20*try))*time.Millisecond)
		}
		b := &ipamv1.IPBlock{}
		if err := g.d.direct.Get(ctx, client.ObjectKey{Name: name}, b); err != nil {
			if apierrors.IsNotFound(err) {
				return true, nil // nothing granted there any more
			}
			return false, fmt.Errorf("read IPBlock %s: %w", name, err)
		}
		gb, err := ipam.GrantBlockOf(subnet, b)
		if err != nil {
			return false, err
		}
		for _, a := range as {
			if gb.Owners[a] != g.d.node {
				continue
			}
			delete(gb.Reclaim, a)
			if back[a] {
				delete(gb.Owners, a)
			}
		}
		gb.Write(g.name, b)
		err = g.d.direct.Update(ctx, b)
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			continue
		default:
			return true, fmt.Errorf("give back addresses of IPBlock %s: %w", name, err) // may have landed
		}
	}
	return false, fmt.Errorf("give back addresses of IPBlock %s: %w", name, ipam.ErrConflict)
}
