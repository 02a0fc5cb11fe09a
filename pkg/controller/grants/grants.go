package grants

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Params are what the grant controller needs.
type Params struct {
	// Direct writes the API server without a cache. A new client from the manager's
	// config when nil.
	Direct client.Client
	// Recorder posts events on pools; mgr.GetEventRecorderFor("orbweaver-grants") when nil.
	Recorder record.EventRecorder
	// Registerer takes the controller's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Linger is how long a change waits before its round starts, so that one round
	// takes every demand that arrives meanwhile (DefaultLinger when zero).
	Linger time.Duration
	// Clock dates the controller's expectations; nil is the real clock.
	Clock clock.PassiveClock
	// GoneDelay is how long a node must have been gone (no Node, no IPAMNode) before
	// the controller takes back its grants that no endpoint holds (DefaultGoneDelay when
	// zero): longer than any write of its agent can take to land, and than a kubelet
	// takes to register its Node again.
	GoneDelay time.Duration
}

// DefaultGoneDelay is GC's default: a node gone this long has no agent writing.
const DefaultGoneDelay = 30 * time.Second

// DefaultLinger batches the demands of many nodes into one round without adding more
// than a watch delivery's worth of latency to a cold node's first ADD.
const DefaultLinger = 10 * time.Millisecond

// Event reasons on pools.
const (
	EventNeedUnmet    = "GrantNeedUnmet"
	EventBlockInvalid = "IPBlockInvalid"
	EventReclaimAsked = "GrantReclaimAsked"
)

// Field indexes on the manager's cache.
const (
	nodePoolIndex     = "grants.ipamnode.pool"
	endpointPoolIndex = "grants.spiderendpoint.pool"
)

// reconciler runs the rounds of every pool.
type reconciler struct {
	cache    client.Reader
	direct   client.Client
	recorder record.EventRecorder
	metrics  *metrics
	linger   time.Duration
	expect   *expectations
	clock    clock.PassiveClock
	// unmetSince rate-limits the unmet-need events: one per node and pool per
	// eventEvery, since a pool can be short for many rounds in a row.
	unmetSince *lastEvents
	// gone dates when each node with grants was first seen without a Node and an
	// IPAMNode; goneDelay later it is gone for good (GrantInput.Gone).
	gone      *lastEvents
	goneDelay time.Duration
	// waitingSince dates, per pool and node, when the node's need was first left
	// unmet (GrantInput.Since).
	waitingSince *lastEvents
	// unmet remembers the pools whose last round left a need unmet: only their rounds
	// depend on what endpoints hold (a reclaim asks only for unheld addresses), so
	// only their endpoints' changes start a round.
	unmet *poolSet
}

// SetupWithManager registers the grant controller: For SpiderIPPool; a round again when
// an IPAMNode naming the pool, one of its IPBlocks, a SpiderReservedIP, or (while a need
// is unmet) a SpiderEndpoint in it changes.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, p Params) error {
	if p.Recorder == nil {
		p.Recorder = mgr.GetEventRecorderFor("orbweaver-grants")
	}
	if p.Direct == nil {
		c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("grants: direct client: %w", err)
		}
		p.Direct = c
	}
	if p.Linger <= 0 {
		p.Linger = DefaultLinger
	}
	if p.Clock == nil {
		p.Clock = clock.RealClock{}
	}
	if p.GoneDelay <= 0 {
		p.GoneDelay = DefaultGoneDelay
	}
	m, err := newMetrics(p.Registerer)
	if err != nil {
		return fmt.Errorf("grants: register metrics: %w", err)
	}
	r := &reconciler{cache: mgr.GetClient(), direct: p.Direct, recorder: p.Recorder, metrics: m, linger: p.Linger,
		expect: newExpectations(p.Clock), unmet: &poolSet{m: map[string]bool{}}, clock: p.Clock, unmetSince: &lastEvents{m: map[string]time.Time{}},
		gone: &lastEvents{m: map[string]time.Time{}}, goneDelay: p.GoneDelay, waitingSince: &lastEvents{m: map[string]time.Time{}}}
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &ipamv1.IPAMNode{}, nodePoolIndex, func(o client.Object) []string {
		var out []string
		for _, d := range o.(*ipamv1.IPAMNode).Spec.Pools {
			out = append(out, d.Pool)
		}
		return out
	}); err != nil {
		return fmt.Errorf("grants: index IPAMNodes by pool: %w", err)
	}
	if err := idx.IndexField(ctx, &v2beta1.SpiderEndpoint{}, endpointPoolIndex, func(o client.Object) []string {
		return ipam.EndpointPools(o.(*v2beta1.SpiderEndpoint))
	}); err != nil {
		return fmt.Errorf("grants: index SpiderEndpoints by pool: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("node-grants").
		Watches(&v2beta1.SpiderIPPool{}, r.after(func(o client.Object) []string { return []string{o.GetName()} })).
		Watches(&ipamv1.IPAMNode{}, r.after(func(o client.Object) []string {
			out := r.recordsPools(ctx) // a node that registers may complete the switch
			for _, d := range o.(*ipamv1.IPAMNode).Spec.Pools {
				out = append(out, d.Pool)
			}
			return out
		})).
		Watches(&corev1.Node{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.queue(q, r.recordsPools(ctx)) // a node that registers may complete the switch
			},
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				r.queue(q, r.grantsPools(ctx))  // its grants go after the gone delay
				r.queue(q, r.recordsPools(ctx)) // it may have been the last without node grants
			},
		}).
		Watches(&ipamv1.IPBlock{}, r.after(func(o client.Object) []string {
			return []string{o.(*ipamv1.IPBlock).Spec.Pool}
		})).
		Watches(&v2beta1.SpiderEndpoint{}, r.after(func(o client.Object) []string {
			var out []string
			for _, p := range ipam.EndpointPools(o.(*v2beta1.SpiderEndpoint)) {
				if r.unmet.has(p) {
					out = append(out, p)
				}
			}
			return out
		})).
		Watches(&v2beta1.SpiderReservedIP{}, handler.EnqueueRequestsFromMapFunc(r.allPools)).
		Complete(r)
}

// after maps an object to pools and queues their rounds after the linger, so changes
// that arrive together share one round.
func (r *reconciler) after(pools func(client.Object) []string) handler.EventHandler {
	add := func(o client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		for _, p := range pools(o) {
			if p != "" {
				q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: p}}, r.linger)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(e.Object, q)
		},
	}
}

func (r *reconciler) queue(q workqueue.TypedRateLimitingInterface[reconcile.Request], pools []string) {
	for _, p := range pools {
		q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: p}}, r.linger)
	}
}

func (r *reconciler) allPools(ctx context.Context, _ client.Object) []reconcile.Request {
	var pools v2beta1.SpiderIPPoolList
	if err := r.cache.List(ctx, &pools); err != nil {
		return nil
	}
	out := make([]reconcile.Request, len(pools.Items))
	for i := range pools.Items {
		out[i] = reconcile.Request{NamespacedName: types.NamespacedName{Name: pools.Items[i].Name}}
	}
	return out
}

// RBAC of Reconcile: everything read from the cache; the pools' status (the switch to
// node grants, the counts) written; IPBlocks created, rewritten and deleted; events on
// pools.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools;spiderendpoints;spiderreservedips,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=update
// +kubebuilder:rbac:groups=ipam.orbweaver.io,resources=ipamnodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=ipam.orbweaver.io,resources=ipblocks,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile runs one round for a pool: read, plan, write.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("SpiderIPPool", klog.KRef("", req.Name))
	ctx = ctrl.LoggerInto(ctx, log)
	sp := &v2beta1.SpiderIPPool{}
	if err := r.cache.Get(ctx, req.NamespacedName, sp); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if sp.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // its blocks go with it (owner references)
	}
	if sp.Status.AllocatedIPs != nil {
		// SpiderPool's records are not imported yet (the pool controller's step): no
		// grant until they are; the import's write queues the next round.
		return ctrl.Result{}, nil
	}
	if !sp.GrantsMode() {
		return r.maybeSwitch(ctx, sp)
	}
	rd, err := r.input(ctx, sp)
	switch {
	case errors.Is(err, errStale):
		r.metrics.rounds.WithLabelValues("stale").Inc()
		return ctrl.Result{RequeueAfter: r.linger}, nil
	case errors.Is(err, ipam.ErrInvalidBlock), errors.Is(err, ipam.ErrInvalidPool):
		r.recorder.Event(sp, corev1.EventTypeWarning, EventBlockInvalid, err.Error())
		r.metrics.rounds.WithLabelValues("error").Inc()
		return ctrl.Result{}, reconcile.TerminalError(err)
	case err != nil:
		r.metrics.rounds.WithLabelValues("error").Inc()
		return ctrl.Result{}, err
	}
	rd.in.Since = map[string]time.Time{}
	for _, d := range rd.in.Demands {
		if at, ok := r.waitingSince.at(sp.Name + "/" + d.Node); ok {
			rd.in.Since[d.Node] = at
		}
	}
	plan := ipam.PlanGrants(rd.in)
	now := r.clock.Now()
	for _, d := range rd.in.Demands {
		if key := sp.Name + "/" + d.Node; plan.Unmet[d.Node] > 0 {
			r.waitingSince.first(key, now)
		} else {
			r.waitingSince.forget(key)
		}
	}
	r.observe(sp, plan)
	if len(rd.in.Pending) > len(plan.Migrated) {
		// Records whose pods' endpoints are not known yet: again when endpoints change.
		r.unmet.set(sp.Name, true)
	}
	if plan.Dropped > 0 {
		log.Info("Took back the grants of deleted nodes that no pod holds", "ips", plan.Dropped, "nodes", len(rd.in.Gone))
	}
	// A node seen gone comes back to this round once it is gone for good.
	after := ctrl.Result{RequeueAfter: rd.goneIn}
	if len(plan.Changed) == 0 && len(rd.leftovers) == 0 && !anyEmpty(rd.objs) {
		if len(plan.Migrated) > 0 {
			return r.migrated(ctx, sp, plan.Migrated, after)
		}
		r.metrics.rounds.WithLabelValues("idle").Inc()
		return after, nil
	}
	if err := r.write(ctx, sp, plan, rd); err != nil {
		if errors.Is(err, errConflict) {
			r.metrics.rounds.WithLabelValues("conflict").Inc()
			log.V(1).Info("Block changed under the round; planning again", "err", err)
			return ctrl.Result{RequeueAfter: r.linger}, nil
		}
		r.metrics.rounds.WithLabelValues("error").Inc()
		return ctrl.Result{}, err
	}
	r.metrics.rounds.WithLabelValues("written").Inc()
	if len(plan.Migrated) > 0 {
		return r.migrated(ctx, sp, plan.Migrated, after)
	}
	return after, nil
}

// migrated removes from the pool's records the addresses now granted to the nodes that
// held them, with a compare-and-swap on the pool (only GC still writes the records of a
// pool in Grants mode); the records go once every address has moved.
func (r *reconciler) migrated(ctx context.Context, sp *v2beta1.SpiderIPPool, moved []netip.Addr, after ctrl.Result) (ctrl.Result, error) {
	subnet, err := ip.ParseCanonicalCIDR(string(sp.Spec.Subnet))
	if err != nil {
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	recs, err := records.Decode(subnet, sp.Status.Orbweaver.Records)
	if err != nil {
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	gone := map[netip.Addr]bool{}
	for _, a := range moved {
		gone[a] = true
	}
	left := slices.DeleteFunc(recs, func(rec records.Record) bool { return gone[rec.IP] })
	next := sp.DeepCopy()
	next.Status.Orbweaver.Records = nil
	if len(left) > 0 {
		if next.Status.Orbweaver.Records, err = records.Encode(subnet, left); err != nil {
			return ctrl.Result{}, reconcile.TerminalError(err)
		}
	}
	if err := r.direct.Status().Update(ctx, next); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: r.linger}, nil
		}
		return ctrl.Result{}, fmt.Errorf("remove the addresses moved to node grants from the records of pool %s: %w", sp.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Moved pool records to node grants", "ips", len(moved), "left", len(left))
	r.metrics.migrated.Add(float64(len(moved)))
	return after, nil
}

// recordsPools are the pools not in Grants mode yet.
func (r *reconciler) recordsPools(ctx context.Context) []string { return r.poolsIn(ctx, false) }

// grantsPools are the pools in Grants mode.
func (r *reconciler) grantsPools(ctx context.Context) []string { return r.poolsIn(ctx, true) }

func (r *reconciler) poolsIn(ctx context.Context, grants bool) []string {
	var pools v2beta1.SpiderIPPoolList
	if err := r.cache.List(ctx, &pools, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []string
	for i := range pools.Items {
		if pools.Items[i].GrantsMode() == grants {
			out = append(out, pools.Items[i].Name)
		}
	}
	return out
}

// maybeSwitch puts a pool in Grants mode once every Node's agent speaks node grants (its
// IPAMNode says protocol 2), so no agent writes records any more. The write is a
// compare-and-swap on the pool: an agent's records write in between makes it fail, and
// the next round tries again. The records stay: the rounds that follow grant each
// address they hold to its node (migration, docs/design/node-grants.md), and until
// then grant it to nobody else.
func (r *reconciler) maybeSwitch(ctx context.Context, sp *v2beta1.SpiderIPPool) (ctrl.Result, error) {
	var nodes corev1.NodeList
	if err := r.cache.List(ctx, &nodes); err != nil {
		return ctrl.Result{}, err
	}
	var ipns ipamv1.IPAMNodeList
	if err := r.cache.List(ctx, &ipns); err != nil {
		return ctrl.Result{}, err
	}
	speaks := map[string]bool{}
	for i := range ipns.Items {
		if ipns.Items[i].Status.Protocol >= 2 {
			speaks[ipns.Items[i].Name] = true
		}
	}
	if len(nodes.Items) == 0 {
		return ctrl.Result{}, nil
	}
	for i := range nodes.Items {
		if !speaks[nodes.Items[i].Name] {
			return ctrl.Result{}, nil // an agent of protocol 1 may run there
		}
	}
	next := sp.DeepCopy()
	if next.Status.Orbweaver == nil {
		next.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
	}
	next.Status.Orbweaver.Allocation = v2beta1.AllocationGrants
	if err := r.direct.Status().Update(ctx, next); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: r.linger}, nil
		}
		return ctrl.Result{}, fmt.Errorf("switch pool %s to node grants: %w", sp.Name, err)
	}
	ctrl.LoggerFrom(ctx).Info("Pool switched to node grants", "nodes", len(nodes.Items))
	return ctrl.Result{}, nil
}

// observe records what a round decided: metrics, the pools with unmet needs, and an
// event on the pool for each node whose need nothing could meet.
func (r *reconciler) observe(sp *v2beta1.SpiderIPPool, plan ipam.GrantPlan) {
	total := 0
	for node, k := range plan.Unmet {
		total += k
		if r.unmetSince.due(sp.Name+"/"+node, r.clock.Now()) {
			r.recorder.Eventf(sp, corev1.EventTypeWarning, EventNeedUnmet,
				"node %s needs %d more addresses of pool %s and none is free; nodes holding more than they need are asked to give back", node, k, sp.Name)
		}
	}
	r.metrics.unmet.WithLabelValues(sp.Name).Set(float64(total))
	r.unmet.set(sp.Name, total > 0)
	for _, k := range plan.Granted {
		r.metrics.granted.Add(float64(k))
	}
}

func (r *reconciler) forget(pool string) {
	r.metrics.unmet.DeleteLabelValues(pool)
	r.unmet.set(pool, false)
}

// anyEmpty reports whether some block grants nothing (to delete).
func anyEmpty(objs map[netip.Addr]*ipamv1.IPBlock) bool {
	for _, b := range objs {
		if len(b.Spec.Grants) == 0 {
			return true
		}
	}
	return false
}

// eventEvery is the shortest interval between two unmet-need events of one node and pool.
const eventEvery = 30 * time.Second

// lastEvents remembers when an event was last posted, by key.
type lastEvents struct {
	mu sync.Mutex
	m  map[string]time.Time
}

// first returns when key was first noted, noting now if never.
func (l *lastEvents) first(key string, now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at, ok := l.m[key]; ok {
		return at
	}
	l.m[key] = now
	return now
}

// at returns when key was first noted, if it was.
func (l *lastEvents) at(key string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.m[key]
	return t, ok
}

// forget drops key.
func (l *lastEvents) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}

// due reports whether an event for key may be posted now, and if so records it.
func (l *lastEvents) due(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at, ok := l.m[key]; ok && now.Sub(at) < eventEvery {
		return false
	}
	l.m[key] = now
	return true
}
