package ippool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// facts computes a pool's facts: from its records, or, for a pool in Grants mode, from
// the SpiderEndpoints in the cache that name it.
func (r *reconciler) facts(ctx context.Context, sp *v2beta1.SpiderIPPool, reserved ip.Set) (facts, error) {
	if !sp.GrantsMode() {
		return observe(sp, reserved)
	}
	var eps v2beta1.SpiderEndpointList
	if err := r.cache.List(ctx, &eps, client.MatchingFields{endpointPoolIndex: sp.Name}); err != nil {
		return facts{}, fmt.Errorf("list the SpiderEndpoints of pool %q: %w", sp.Name, err)
	}
	return observeGrants(sp, reserved, eps.Items)
}

// listPage is how many SpiderEndpoints heldNow reads per request.
const listPage = 500

// heldNow reports whether a SpiderEndpoint holds an address of a Grants pool as the API
// server has them, not the cache: the last look before the pool's finalizer goes, since
// the cache may not have an endpoint an ADD wrote a moment ago. The API server cannot
// select endpoints by pool, so every endpoint is read, a page at a time; this runs once
// per deleted pool.
func (r *reconciler) heldNow(ctx context.Context, sp *v2beta1.SpiderIPPool) (bool, error) {
	subnet, err := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet))
	if err != nil {
		return false, fmt.Errorf("%w %q: spec.subnet: %v", ipam.ErrInvalidPool, sp.Name, err)
	}
	opts := []client.ListOption{client.Limit(listPage)}
	for {
		var eps v2beta1.SpiderEndpointList
		if err := r.direct.List(ctx, &eps, opts...); err != nil {
			return false, fmt.Errorf("list SpiderEndpoints for the deleted pool %q: %w", sp.Name, err)
		}
		if len(ipam.EndpointHolds(sp.Name, subnet, eps.Items)) > 0 {
			return true, nil
		}
		if eps.Continue == "" {
			return false, nil
		}
		opts = []client.ListOption{client.Limit(listPage), client.Continue(eps.Continue)}
	}
}

// grantsPoolsOfEndpoint queues the Grants pools an endpoint names, before and after a
// change, the interval later: the changes of one interval share one reconcile (the
// workqueue keeps the earliest time of an item that is waiting). An update that changes
// neither the endpoint's addresses nor its pod queues nothing (the EIP controller's
// writes, say). Pools in Records mode are left alone: the agents write their counts.
func (r *reconciler) grantsPoolsOfEndpoint() handler.EventHandler {
	add := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		seen := map[string]bool{}
		for _, o := range objs {
			se, ok := o.(*v2beta1.SpiderEndpoint)
			if !ok {
				continue
			}
			for _, name := range ipam.EndpointPools(se) {
				if seen[name] {
					continue
				}
				seen[name] = true
				sp := &v2beta1.SpiderIPPool{}
				if err := r.cache.Get(ctx, client.ObjectKey{Name: name}, sp); err != nil || !sp.GrantsMode() {
					continue
				}
				q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}, r.interval)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			prev, ok1 := e.ObjectOld.(*v2beta1.SpiderEndpoint)
			next, ok2 := e.ObjectNew.(*v2beta1.SpiderEndpoint)
			if ok1 && ok2 && prev.Status.Current.UID == next.Status.Current.UID &&
				equality.Semantic.DeepEqual(prev.Status.Current.IPs, next.Status.Current.IPs) {
				return
			}
			add(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
	}
}

// lastWrites remembers when the status of each Grants pool was last written.
type lastWrites struct {
	mu sync.Mutex
	at map[string]time.Time
}

// wait is how long the pool's next status write must wait: what is left of interval
// since its last write, 0 when none is recent.
func (w *lastWrites) wait(pool string, now time.Time, interval time.Duration) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	last, ok := w.at[pool]
	if !ok {
		return 0
	}
	return max(last.Add(interval).Sub(now), 0)
}

func (w *lastWrites) note(pool string, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.at[pool] = now
}

func (w *lastWrites) forget(pool string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.at, pool)
}
