package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
)

// grantProtocol is the allocation protocol this agent speaks (IPAMNode status.protocol).
const grantProtocol = 2

// A lower need goes out at the next one-second tick (a node that needs less gives the
// controller something to ask back for a node that waits), a lower want within
// demandRefresh seconds (worthWriting). A tick recomputes the demand only after a
// change the node saw (a kick) or every recomputeEvery seconds (what depends on time
// alone: a surplus held long enough to give back, a give-back that never landed);
// otherwise it only decides whether the last demand computed is worth writing now.
const (
	demandRefresh  = 10
	recomputeEvery = 5
)

// grantSet is the node's side of node grants: one grantPool per pool in Grants mode, the
// writer of the node's IPAMNode (its demand), and the loop that gives back what the
// node does not need.
type grantSet struct {
	d *grantDeps

	mu    sync.Mutex
	pools map[string]*grantPool
	kick  chan struct{}
	// obj is the node's IPAMNode as last written or read (owned by run and register).
	obj *ipamv1.IPAMNode
}

func newGrantSet(d *grantDeps) *grantSet {
	gs := &grantSet{d: d, pools: map[string]*grantPool{}, kick: make(chan struct{}, 1)}
	d.demand = gs.wake
	return gs
}

func (gs *grantSet) get(pool string) *grantPool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	g, ok := gs.pools[pool]
	if !ok {
		g = newGrantPool(pool, gs.d)
		gs.pools[pool] = g
	}
	return g
}

func (gs *grantSet) lookup(pool string) *grantPool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.pools[pool]
}

func (gs *grantSet) all() []*grantPool {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return slices.Collect(maps.Values(gs.pools))
}

// pinListed lists the node's SpiderEndpoints from the API server and pins what they hold.
func (gs *grantSet) pinListed(ctx context.Context) error {
	var list v2beta1.SpiderEndpointList
	if err := gs.d.direct.List(ctx, &list, client.MatchingFields{"status.current.node": gs.d.node}); err != nil {
		return fmt.Errorf("list the SpiderEndpoints of node %s: %w", gs.d.node, err)
	}
	var addrs []poolAddr
	for i := range list.Items {
		for _, nic := range list.Items[i].Status.Current.IPs {
			addrs = append(addrs, nicAddrs(&nic)...)
		}
	}
	gs.d.pins.pin(addrs, time.Now())
	return nil
}

// forget stops serving a pool that was deleted.
func (gs *grantSet) forget(pool string) {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	delete(gs.pools, pool)
}

// adopt serves every pool the node's blocks grant it addresses of.
func (gs *grantSet) adopt() {
	for _, b := range gs.d.blocks() {
		if gs.lookup(b.Spec.Pool) == nil {
			gs.get(b.Spec.Pool)
		}
	}
}

// wake asks the demand writer to look again.
func (gs *grantSet) wake() {
	select {
	case gs.kick <- struct{}{}:
	default:
	}
}

// changed wakes every waiting ADD of every pool: grants or holds changed.
func (gs *grantSet) changed() {
	for _, g := range gs.all() {
		g.poke()
	}
	gs.wake()
}

// RBAC of node grants (docs/design/node-grants.md): the node's own IPAMNode read, created
// and updated (its demand), its status (the protocol) updated; this node's endpoints
// listed fresh (pinListed).
//
// +kubebuilder:rbac:groups=ipam.orbweaver.io,resources=ipamnodes,verbs=get;create;update
// +kubebuilder:rbac:groups=ipam.orbweaver.io,resources=ipamnodes/status,verbs=update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=list

// register creates or updates the node's IPAMNode so that the controller knows this
// node speaks node grants, and reports whether the previous life of the agent stopped
// cleanly (false when it crashed, or when there was none that spoke node grants).
func (gs *grantSet) register(ctx context.Context, nodeUID string) (clean bool, err error) {
	// A late write of the crashed previous life may change the object between the read
	// and the status update: read again.
	err = cas.Retry(ctx, wait.Backoff{Steps: ipamNodeTries}, apierrors.IsConflict, func() (err error) {
		clean, err = gs.registerOnce(ctx, nodeUID)
		return err
	})
	return clean, err
}

// ipamNodeTries bounds the compare-and-swap writes of the IPAMNode's status, with no
// wait between them: only a late write of a previous life of the agent competes.
const ipamNodeTries = 11

func (gs *grantSet) registerOnce(ctx context.Context, nodeUID string) (clean bool, err error) {
	n := &ipamv1.IPAMNode{}
	err = gs.d.direct.Get(ctx, client.ObjectKey{Name: gs.d.node}, n)
	switch {
	case apierrors.IsNotFound(err):
		n = &ipamv1.IPAMNode{ObjectMeta: metav1.ObjectMeta{Name: gs.d.node}}
		if nodeUID != "" {
			n.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: gs.d.node, UID: types.UID(nodeUID)}}
		}
		if err := gs.d.direct.Create(ctx, n); err != nil {
			return false, fmt.Errorf("create IPAMNode %s: %w", gs.d.node, err)
		}
		clean = true // no previous life spoke node grants: nothing of it can land late
	case err != nil:
		return false, fmt.Errorf("read IPAMNode %s: %w", gs.d.node, err)
	default:
		clean = n.Status.CleanStop
	}
	n.Status.Protocol, n.Status.CleanStop = grantProtocol, false
	if err := gs.d.direct.Status().Update(ctx, n); err != nil {
		return false, fmt.Errorf("update the status of IPAMNode %s: %w", gs.d.node, err)
	}
	gs.obj = n
	return clean, nil
}

// stopped records a clean stop: the next life need not wait out the quarantine.
func (gs *grantSet) stopped(ctx context.Context) error {
	return cas.Retry(ctx, wait.Backoff{Steps: ipamNodeTries}, apierrors.IsConflict, func() error {
		n := &ipamv1.IPAMNode{}
		if err := gs.d.direct.Get(ctx, client.ObjectKey{Name: gs.d.node}, n); err != nil {
			return err
		}
		n.Status.CleanStop = true
		return gs.d.direct.Status().Update(ctx, n)
	})
}

// run writes the node's demand whenever it changes (coalescing the changes of a few
// milliseconds into one write) and gives back what the node does not need, until ctx
// ends.
func (gs *grantSet) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var written, want []ipamv1.PoolDemand
	var holds map[string]poolHold
	ticks, computed := 0, false
	for {
		var pass refreshPass
		select {
		case <-ctx.Done():
			return
		case <-gs.kick:
			time.Sleep(5 * time.Millisecond) // one write for the ADDs that come together
			computed = false
		case <-tick.C:
			// Answers the controller has used go out with the next write for another
			// reason.
			ticks++
			pass = refreshPass{lowerNeed: true, lowerWant: ticks%demandRefresh == 0}
			if ticks%recomputeEvery == 0 {
				computed = false
			}
		}
		if !computed {
			want, holds = gs.recompute(ctx, written)
			computed = true
		}
		if !worthWriting(want, written, holds, pass) {
			continue
		}
		if err := gs.writeDemand(ctx, want); err != nil {
			if ctx.Err() == nil {
				gs.d.log.Error(err, "write the node's demand")
				gs.wake() // try again
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		written = want
	}
}

// recompute gives back what the node is asked for or does not need, and returns the
// node's demand and what it holds of each pool.
func (gs *grantSet) recompute(ctx context.Context, written []ipamv1.PoolDemand) ([]ipamv1.PoolDemand, map[string]poolHold) {
	// Every wake-up may carry a request to give back (a block changed): answer it at
	// once, since another node's pod waits for it. That holds for pools no ADD of this
	// life used yet (the agent restarted): their grants name them.
	gs.adopt()
	for _, g := range gs.all() {
		if err := g.giveBack(ctx, time.Now()); err != nil && ctx.Err() == nil {
			gs.d.log.Error(err, "give back addresses", "SpiderIPPool", g.name)
		}
	}
	want, holds, err := gs.demands(ctx, written)
	if err != nil && ctx.Err() == nil {
		// Those pools keep their last line; the others' go out.
		gs.d.log.Error(err, "compute the node's demand")
	}
	return want, holds
}

// newAnswers reports whether next answers something written does not. Answers that
// went away (the controller used them) need no write of their own: a late answer
// matches no request.
func newAnswers(next, written []ipamv1.GiveBack) bool {
	have := map[string]bool{}
	for _, gb := range written {
		for _, a := range gb.IPs {
			have[gb.Token+"/"+a] = true
		}
		for _, a := range gb.Kept {
			have[gb.Token+"/k"+a] = true
		}
	}
	for _, gb := range next {
		for _, a := range gb.IPs {
			if !have[gb.Token+"/"+a] {
				return true
			}
		}
		for _, a := range gb.Kept {
			if !have[gb.Token+"/k"+a] {
				return true
			}
		}
	}
	return false
}

// worthWriting reports whether the node's demand changed enough to tell the controller
// now: the pools or specific addresses changed, answers to reclaim requests are new
// (another node waits for them), the node holds fewer addresses of a pool than its need
// (a pod waits), or fewer than its need plus the pods bound to it that have not asked
// yet (forecast: ask before those pods have to wait; topUp). A lower need goes out
// with the next tick (the controller may ask back what it frees for a node that
// waits), a lower want with the next lower-want pass (so the controller stops topping
// up a buffer the node would give back). A higher
// need or want that the node's grants cover is never written alone: the controller
// asks back only addresses no endpoint holds, so a stale need changes none of its
// decisions, and on an exactly sized pool each such write was a write and a round for
// nothing (one per node at 500 nodes of 2 pods: docs/design/node-grants.md).
func worthWriting(next, written []ipamv1.PoolDemand, holds map[string]poolHold, pass refreshPass) bool {
	if len(next) != len(written) {
		return true
	}
	for i := range next {
		n, w := next[i], written[i]
		h := holds[n.Pool]
		switch {
		case n.Pool != w.Pool || !slices.Equal(n.IPs, w.IPs) || newAnswers(n.GiveBack, w.GiveBack):
			return true
		case n.Need > w.Need && int(n.Need) > h.have:
			return true
		case h.topUp(n, w):
			return true
		case pass.lowerNeed && n.Need < w.Need:
			return true
		case pass.lowerWant && n.Want < w.Want:
			return true
		}
	}
	return false
}

// topUp reports whether a higher want is worth a write of its own: pods bound to the
// node will ask for more than it has (coming above have), the last want was met (else
// the pool had nothing to spare), and the written want leaves out at least half a
// buffer of those pods, or one: one write per pod while pods come one by one to a
// quiet node, one per half buffer while a busy node's pods come in a stream.
func (h poolHold) topUp(n, w ipamv1.PoolDemand) bool {
	if n.Want <= w.Want || h.have >= h.coming || h.have < int(w.Want) {
		return false
	}
	left := min(h.coming, int(n.Want)) - int(w.Want)
	return left >= max(1, int(n.Want-n.Need)/2)
}

// poolHold is what the node has of a pool against what it will use soon: have counts
// the addresses granted to it (less those it gave back), coming its need plus the pods
// bound to it that have not asked yet.
type poolHold struct{ have, coming int }

// refreshPass says which changes a periodic pass of the demand writer sends: a lower
// need (every tick) and a lower want (every demandRefresh ticks).
type refreshPass struct{ lowerNeed, lowerWant bool }

// demands are the node's lines for every pool it uses, by pool name, and what it holds
// of each. A pool whose line
// cannot be computed now keeps its line in written; a pool that was deleted is no
// longer served.
func (gs *grantSet) demands(ctx context.Context, written []ipamv1.PoolDemand) ([]ipamv1.PoolDemand, map[string]poolHold, error) {
	var out []ipamv1.PoolDemand
	holds := map[string]poolHold{}
	var errs []error
	var forecast map[string]int
	if gs.d.forecast != nil {
		var err error
		if forecast, err = gs.d.forecast(ctx); err != nil {
			errs = append(errs, err)
		}
		// A pool the node's pods will ask for is served before the first ADD, so that
		// its grant is usually there when the kubelet asks.
		for pool := range forecast {
			gs.get(pool)
		}
	}
	pools := gs.all()
	for _, g := range pools {
		d, hold, err := g.demand(ctx, forecast[g.name])
		switch {
		case apierrors.IsNotFound(err):
			gs.forget(g.name)
		case err != nil:
			errs = append(errs, err)
			if i := slices.IndexFunc(written, func(d ipamv1.PoolDemand) bool { return d.Pool == g.name }); i >= 0 {
				out = append(out, written[i])
			}
		default:
			out = append(out, d)
			holds[g.name] = hold
		}
	}
	slices.SortFunc(out, func(a, b ipamv1.PoolDemand) int { return cmp.Compare(a.Pool, b.Pool) })
	return out, holds, errors.Join(errs...)
}

// writeDemand writes spec.pools of the node's IPAMNode; only this agent writes it, so a
// conflict only means the cached version was old.
func (gs *grantSet) writeDemand(ctx context.Context, pools []ipamv1.PoolDemand) error {
	for try := 0; try < 5; try++ {
		n := gs.obj
		if n == nil {
			n = &ipamv1.IPAMNode{}
			if err := gs.d.direct.Get(ctx, client.ObjectKey{Name: gs.d.node}, n); err != nil {
				return fmt.Errorf("read IPAMNode %s: %w", gs.d.node, err)
			}
		}
		n = n.DeepCopy()
		n.Spec.Pools = pools
		err := gs.d.direct.Update(ctx, n)
		if err == nil {
			gs.obj = n
			return nil
		}
		gs.obj = nil // read it again
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("write IPAMNode %s: too many conflicts", gs.d.node)
}
