// Package ippool is the SpiderIPPool status controller. Node agents write a pool's
// records and its counts in one compare-and-swap status write; between their writes
// this controller keeps status.totalIPCount, status.allocatedIPCount (addresses pods
// hold), status.orbweaver.spareIPCount (addresses node reserves hold) and freeIPCount
// equal to the spec and the records (a pool nobody allocated from, a spec change), sets
// the pool's conditions (status.orbweaver.conditions) and their summary, Ready
// (status.conditions), and removes the finalizer of a deleted pool once it records no
// allocation. It never changes records, those are the agents' and
// the garbage collector's, with one exception: a pool SpiderPool allocated from has its
// records in status.allocatedIPs, which this controller imports into
// status.orbweaver.records (ippool_import.go), and it takes SpiderPool's finalizer off
// the SpiderEndpoints SpiderPool wrote (endpoint_adopt.go).
//
// A pool in Grants mode (docs/design/node-grants.md) has no records: its pods'
// SpiderEndpoints say what is held, and this controller alone writes its counts, from
// them, at most once per Params.StatusInterval whatever the allocation rate. Its
// finalizer stays while an endpoint holds one of its addresses.
package ippool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
)

// Params are what the pool status controller needs.
type Params struct {
	// Direct reads and writes the API server without a cache: the re-read after a
	// conflict, and every write. A new direct client from the manager's config when nil.
	Direct client.Client
	// Recorder posts events on pools; mgr.GetEventRecorderFor("orbweaver-ippool") when
	// nil.
	Recorder record.EventRecorder
	// Registerer takes the controller's metrics (the manager passes controller-runtime's
	// metrics.Registry); nil registers none.
	Registerer prometheus.Registerer
	// Clock dates condition transitions and spaces the status writes of Grants pools;
	// nil is the real clock.
	Clock clock.PassiveClock
	// StatusInterval is the least time between two status writes of one pool in Grants
	// mode, whose counts follow its endpoints, so that a high allocation rate costs one
	// pool write (and one event to every agent watching pools) per interval;
	// DefaultStatusInterval when zero. Records-mode pools are written as before.
	StatusInterval time.Duration
}

// DefaultStatusInterval is Params.StatusInterval when zero: the counts of a Grants pool
// are at most this much behind its endpoints (docs/design/node-grants.md).
const DefaultStatusInterval = 2 * time.Second

// endpointPoolIndex indexes SpiderEndpoints by the pools they name, in the manager's
// cache. Its name differs from the other controllers' indexes of the same kind: they
// share one manager.
const endpointPoolIndex = "ippool.spiderendpoint.pool"

// Event reasons on pools.
const (
	EventPoolExhausted        = "PoolExhausted"
	EventPoolRecordsInvalid   = "PoolRecordsInvalid"
	EventPoolDeletionWaiting  = "PoolDeletionWaiting"
	EventPoolFinalizerRemoved = "PoolFinalizerRemoved"
	EventPoolSpecInvalid      = "PoolSpecInvalid"
)

// maxTries bounds the compare-and-swap writes of one reconcile; after the last conflict
// the reconcile fails and is retried with the workqueue's backoff.
const maxTries = 5

// reconciler reconciles one SpiderIPPool's status and finalizer.
type reconciler struct {
	cache    client.Reader
	direct   client.Client
	pools    crdstore.Pools
	recorder record.EventRecorder
	metrics  *metrics
	clock    clock.PassiveClock
	// interval and written space the status writes of Grants pools.
	interval time.Duration
	written  *lastWrites
}

// SetupWithManager registers the pool status controller: For SpiderIPPool, every pool of
// a family again when a SpiderReservedIP of that family changes, and a Grants pool
// StatusInterval after a SpiderEndpoint naming it changes (the changes of an interval
// share one reconcile).
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, p Params) error {
	if p.Recorder == nil {
		p.Recorder = mgr.GetEventRecorderFor("orbweaver-ippool")
	}
	if p.Direct == nil {
		c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("ippool: direct client: %w", err)
		}
		p.Direct = c
	}
	r, err := newReconciler(mgr.GetClient(), p)
	if err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v2beta1.SpiderEndpoint{}, endpointPoolIndex, func(o client.Object) []string {
		return ipam.EndpointPools(o.(*v2beta1.SpiderEndpoint))
	}); err != nil {
		return fmt.Errorf("ippool: index SpiderEndpoints by pool: %w", err)
	}
	if err := setupEndpointAdopter(mgr, p.Direct); err != nil {
		return fmt.Errorf("ippool: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v2beta1.SpiderIPPool{}).
		Watches(&v2beta1.SpiderReservedIP{}, handler.EnqueueRequestsFromMapFunc(r.poolsOfReserved)).
		Watches(&v2beta1.SpiderEndpoint{}, r.grantsPoolsOfEndpoint()).
		Named("spiderippool-status").
		Complete(r)
}

func newReconciler(cache client.Reader, p Params) (*reconciler, error) {
	if p.Direct == nil || p.Recorder == nil {
		return nil, errors.New("ippool: Params.Direct and Params.Recorder are required")
	}
	m, err := newMetrics(p.Registerer)
	if err != nil {
		return nil, fmt.Errorf("ippool: register metrics: %w", err)
	}
	c := p.Clock
	if c == nil {
		c = clock.RealClock{}
	}
	interval := p.StatusInterval
	if interval <= 0 {
		interval = DefaultStatusInterval
	}
	return &reconciler{cache: cache, direct: p.Direct, pools: crdstore.Pools{Client: p.Direct}, recorder: p.Recorder, metrics: m, clock: c,
		interval: interval, written: &lastWrites{at: map[string]time.Time{}}}, nil
}

// RBAC of Reconcile: pools, reserved IPs and endpoints from the cache, pools also read
// and endpoints listed fresh; the pool's status written and its finalizer taken off
// (patch); events on pools.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderreservedips,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings a pool's counts and conditions up to date, or removes the finalizer
// of a deleted pool that holds nothing. It reads the pool from the cache; after a
// conflicting write it reads it again from the API server and recomputes.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sp := &v2beta1.SpiderIPPool{}
	if err := r.cache.Get(ctx, req.NamespacedName, sp); err != nil {
		if apierrors.IsNotFound(err) {
			r.metrics.forget(req.Name)
			r.written.forget(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get SpiderIPPool %q: %w", req.Name, err)
	}
	var reservedIPs v2beta1.SpiderReservedIPList
	if err := r.cache.List(ctx, &reservedIPs); err != nil {
		return ctrl.Result{}, fmt.Errorf("list SpiderReservedIPs for pool %q: %w", req.Name, err)
	}
	family, _ := ipam.PoolFamily(sp)
	reserved := ipam.ReservedAddresses(reservedIPs.Items, family)

	var res ctrl.Result
	backoff := wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: maxTries}
	err := cas.Retry(ctx, backoff, ipam.IsConflict, func() (err error) {
		res = ctrl.Result{}
		if sp == nil { // a pass lost a race: the cache is behind the API server
			if sp, err = r.pools.GetPool(ctx, req.Name); err != nil {
				if errors.Is(err, ipam.ErrPoolNotFound) {
					r.metrics.forget(req.Name)
					r.written.forget(req.Name)
					return nil
				}
				return err
			}
		}
		res, err = r.reconcilePool(ctx, sp, reserved)
		sp = nil
		return err
	})
	if errors.Is(err, ipam.ErrPoolNotFound) {
		return ctrl.Result{}, nil
	}
	return res, err
}

// reconcilePool runs one pass on one version of the pool. A conflicting write returns
// an error wrapping ipam.ErrConflict. A Grants pool whose status was written less than
// the interval ago is not written now: the result asks for a pass when the interval is
// over.
func (r *reconciler) reconcilePool(ctx context.Context, sp *v2beta1.SpiderIPPool, reserved ip.Set) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	if sp.Status.AllocatedIPs != nil {
		// SpiderPool's records first: until they are imported, the counts and
		// conditions stay as SpiderPool left them, and nothing is allocated.
		return r.importForeign(ctx, sp)
	}
	f, err := r.facts(ctx, sp, reserved)
	if errors.Is(err, ipam.ErrInvalidPool) {
		r.recorder.Event(sp, corev1.EventTypeWarning, EventPoolSpecInvalid, err.Error())
		if werr := r.writeSpecInvalid(ctx, sp, err); werr != nil {
			return ctrl.Result{}, werr
		}
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	r.metrics.observe(sp.Name, f)
	r.metrics.observeEIPs(sp)
	blocked := sp.DeletionTimestamp != nil && controllerutil.ContainsFinalizer(sp, v2beta1.Finalizer)
	if blocked && !f.held() {
		if f.grants {
			// The cache may not have an endpoint an ADD wrote a moment ago: ask the API
			// server before the pool goes.
			held, err := r.heldNow(ctx, sp)
			if err != nil {
				return ctrl.Result{}, err
			}
			if held {
				return ctrl.Result{RequeueAfter: r.interval}, nil
			}
		}
		return ctrl.Result{}, r.removeFinalizer(ctx, sp)
	}

	now := r.clock.Now()
	next := desiredStatus(sp, f, blocked, now)
	if !statusChanged(&sp.Status, &next) {
		return ctrl.Result{}, nil
	}
	if f.grants {
		if wait := r.written.wait(sp.Name, now, r.interval); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	obj := sp.DeepCopy()
	obj.Status = next
	err = r.pools.UpdatePoolStatus(ctx, obj)
	r.metrics.wrote("status", err)
	if f.grants && !errors.Is(err, ipam.ErrConflict) {
		r.written.note(sp.Name, now) // an error other than a conflict may have landed
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	log.V(1).Info("Wrote pool status", "allocatedIPCount", ptr.Deref(obj.Status.AllocatedIPCount, -1), "totalIPCount", ptr.Deref(obj.Status.TotalIPCount, -1))
	var old []metav1.Condition
	if sp.Status.Orbweaver != nil {
		old = sp.Status.Orbweaver.Conditions
	}
	for _, c := range turnedBad(old, next.Orbweaver.Conditions) {
		switch c.Type {
		case v2beta1.IPPoolExhaustedCondition:
			r.recorder.Event(obj, corev1.EventTypeWarning, EventPoolExhausted, c.Message)
		case v2beta1.IPPoolRecordsValidCondition:
			r.recorder.Event(obj, corev1.EventTypeWarning, EventPoolRecordsInvalid, c.Message)
		case v2beta1.IPPoolDeletionBlockedCondition:
			r.recorder.Event(obj, corev1.EventTypeNormal, EventPoolDeletionWaiting, c.Message)
		}
	}
	return ctrl.Result{}, nil
}

// writeSpecInvalid sets the pool's Ready condition False for a spec that does not parse
// (specErr), leaving the rest of its status as it is.
func (r *reconciler) writeSpecInvalid(ctx context.Context, sp *v2beta1.SpiderIPPool, specErr error) error {
	obj := sp.DeepCopy()
	setReady(sp, &obj.Status, specErr, r.clock.Now())
	if !statusChanged(&sp.Status, &obj.Status) {
		return nil
	}
	err := r.pools.UpdatePoolStatus(ctx, obj)
	r.metrics.wrote("status", err)
	return err
}

// removeFinalizer takes orbweaver's finalizer off a deleted pool, with the version it
// read as a precondition: the records that version holds are the ones found empty.
func (r *reconciler) removeFinalizer(ctx context.Context, sp *v2beta1.SpiderIPPool) error {
	rest := slices.DeleteFunc(slices.Clone(sp.Finalizers), func(s string) bool { return s == v2beta1.Finalizer })
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": rest, "resourceVersion": sp.ResourceVersion}})
	if err != nil {
		return fmt.Errorf("remove the finalizer of SpiderIPPool %q: %w", sp.Name, err)
	}
	err = r.direct.Patch(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: sp.Name}}, client.RawPatch(types.MergePatchType, patch))
	switch {
	case apierrors.IsConflict(err):
		err = fmt.Errorf("remove the finalizer of SpiderIPPool %q: %w", sp.Name, ipam.ErrConflict)
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		err = fmt.Errorf("remove the finalizer of SpiderIPPool %q: %w", sp.Name, err)
	}
	r.metrics.wrote("finalizer", err)
	if err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("Removed the finalizer of a deleted pool that holds no address")
	r.recorder.Event(sp, corev1.EventTypeNormal, EventPoolFinalizerRemoved, "no address is held any more; the pool goes")
	return nil
}

// poolsOfReserved maps a SpiderReservedIP to the pools of its families: their free
// addresses, and so their Exhausted condition, depend on it.
func (r *reconciler) poolsOfReserved(ctx context.Context, obj client.Object) []reconcile.Request {
	res, ok := obj.(*v2beta1.SpiderReservedIP)
	if !ok {
		return nil
	}
	v4, v6 := ipam.ReservedFamilies(res)
	if !v4 && !v6 {
		return nil
	}
	var pools v2beta1.SpiderIPPoolList
	if err := r.cache.List(ctx, &pools); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List pools for a changed SpiderReservedIP", "SpiderReservedIP", klog.KObj(res))
		return nil
	}
	var out []reconcile.Request
	for i := range pools.Items {
		if fam, _ := ipam.PoolFamily(&pools.Items[i]); fam == v2beta1.IPv4 && v4 || fam == v2beta1.IPv6 && v6 {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: pools.Items[i].Name}})
		}
	}
	return out
}
