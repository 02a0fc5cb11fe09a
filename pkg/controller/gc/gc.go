// Package gc is the IP garbage-collection controller: one reconciler that, on every
// pass, lists pods, nodes, StatefulSets, SpiderEndpoints, SpiderIPPools and
// SpiderReservedIPs from the manager's cache, asks ipam.PlanGC what to free, and writes
// the decisions: releases and rebinds per pool on a fresh read with a resourceVersion
// precondition, then endpoint deletions with UID and resourceVersion preconditions.
//
// The pass is one work item. Changes of the watched kinds queue it after a short delay
// (many changes, one pass), a pass requeues itself at the plan's next recheck, at most
// one resync period later, and a failed write requeues it with backoff.
// docs/design/gc.md gives the rules and why; docs/guides/garbage-collection.md is the
// user's side.
package gc

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Defaults of Params.
const (
	DefaultResyncPeriod = 10 * time.Minute
	DefaultDebounce     = time.Second
	// ControllerName names the controller in logs and controller-runtime's metrics, and
	// is the event source.
	ControllerName = "gc"
)

// passKey is the one work item: the whole pass.
var passKey = reconcile.Request{NamespacedName: types.NamespacedName{Name: "pass"}}

// Params configure the controller. Config.GoneDelay must be positive.
type Params struct {
	// Config is the GC policy; cmd starts from ipam.DefaultGCConfig().
	Config ipam.GCConfig
	// StatefulSetRetention keeps StatefulSet pods' addresses while the StatefulSet
	// wants the ordinal, and applies the reclaim policy after (SpiderPool's
	// enableStatefulSet). Off, StatefulSet pods are collected like any other pod.
	StatefulSetRetention bool
	// StatefulKinds adds controllers whose pods keep their addresses as a StatefulSet's
	// (--stateful-workload-kinds); GC reads their spec.replicas and spec.ordinals.start.
	// Their CRDs must be installed.
	StatefulKinds ipam.StatefulKinds
	// ResyncPeriod is the longest time between passes; DefaultResyncPeriod when zero.
	ResyncPeriod time.Duration
	// Debounce is how long a change waits before it starts a pass, so that a burst
	// of changes makes one pass; DefaultDebounce when zero.
	Debounce time.Duration
	// Clock gives the time of each pass; the real clock when nil.
	Clock clock.PassiveClock
	// Registerer receives the orbweaver_gc_* metrics (the binary passes
	// controller-runtime's metrics.Registry); a private registry when nil.
	Registerer prometheus.Registerer
	// Recorder posts events; mgr.GetEventRecorderFor("orbweaver-gc") when nil.
	Recorder record.EventRecorder
	// Client reads pools fresh and writes pools and endpoints; it must not read from
	// a cache. A new direct client from the manager's config when nil.
	Client client.Client
	// Backoff paces the retries of a pool write that lost a resourceVersion race;
	// 8 tries from 20ms, doubling, jittered, when Steps is zero.
	Backoff wait.Backoff

	// beforeWrite, set by tests, runs after a pool's first fresh read and Apply and
	// before its write.
	beforeWrite func(pool string)
}

// Reconciler runs garbage-collection passes; SetupWithManager builds and registers it.
type Reconciler struct {
	p       Params
	cache   client.Reader
	metrics *metrics

	// Owned by the single worker (one key, one worker): state carried between passes.
	// endedSince is the last plan's EndedSince; warned holds the warnings already
	// reported, so a warning is posted once, not on every pass.
	endedSince map[uint64]time.Time
	warned     map[string]bool
}

// SetupWithManager checks the parameters and registers the metrics and a leader-elected
// controller that runs the pass on start, on changes of the watched kinds and at least
// every ResyncPeriod.
func SetupWithManager(_ context.Context, mgr ctrl.Manager, p Params) error {
	r, err := newReconciler(p)
	if err != nil {
		return err
	}
	return r.setup(mgr)
}

// newReconciler checks the parameters and fills the defaults that need no manager.
func newReconciler(p Params) (*Reconciler, error) {
	if p.Config.GoneDelay <= 0 {
		return nil, fmt.Errorf("gc: GoneDelay is %v; it must be positive (and above the watch lag), e.g. 30s", p.Config.GoneDelay)
	}
	if p.ResyncPeriod <= 0 {
		p.ResyncPeriod = DefaultResyncPeriod
	}
	if p.Debounce <= 0 {
		p.Debounce = DefaultDebounce
	}
	if p.Clock == nil {
		p.Clock = clock.RealClock{}
	}
	if p.Backoff.Steps == 0 {
		p.Backoff = wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 8, Cap: 2 * time.Second}
	}
	return &Reconciler{p: p, metrics: newMetrics(), warned: map[string]bool{}}, nil
}

// setup fills the defaults that need the manager and registers the metrics and the
// controller.
func (r *Reconciler) setup(mgr ctrl.Manager) error {
	if r.p.Recorder == nil {
		r.p.Recorder = mgr.GetEventRecorderFor("orbweaver-gc")
	}
	if r.p.Client == nil {
		c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("gc: direct client: %w", err)
		}
		r.p.Client = c
	}
	reg := r.p.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := r.metrics.register(reg); err != nil {
		return fmt.Errorf("gc: register metrics: %w", err)
	}
	r.cache = mgr.GetCache()
	for _, k := range r.p.StatefulKinds.Extra() {
		gvk := schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
		if _, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("gc: stateful workload kind %s (--stateful-workload-kinds) is not served by the API server: install its CRD, or remove it from the flag (chart: ipam.statefulWorkloadKinds): %w", k, err)
		}
	}

	b := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 1,
			// A failed pass retries from 1s, doubling, and never waits longer than a resync.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](time.Second, r.p.ResyncPeriod),
		}).
		WatchesRawSource(startPass())
	for _, w := range watches(r.p.Debounce, r.p.StatefulKinds) {
		b = b.Watches(w.obj, w.handler)
	}
	return b.Complete(r)
}

// The controller's RBAC (make generate writes it into the chart): the snapshot from the
// cache, fresh pools for the status writes, endpoints deleted, and events in every
// namespace (endpoints' events go to theirs, pools' to default).
//
// +kubebuilder:rbac:groups="",resources=pods;nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderreservedips,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile runs one pass: read the snapshot, plan, write, requeue at the next recheck.
// The request is always the pass key; its name is not used.
func (r *Reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (ctrl.Result, error) {
	start := r.p.Clock.Now()
	res, err := r.pass(ctx, start)
	r.metrics.observeRun(r.p.Clock.Since(start), err)
	return res, err
}

func (r *Reconciler) pass(ctx context.Context, now time.Time) (ctrl.Result, error) {
	snap, err := r.read(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	in, inputErrs := buildInput(r.p.Config, r.p.StatefulSetRetention, r.p.StatefulKinds, snap, r.endedSince)
	plan := ipam.PlanGC(in.GCInput, now)
	r.endedSince = plan.EndedSince
	r.warn(ctx, in, plan.Warnings, inputErrs)
	r.metrics.pending.Set(float64(len(plan.Rechecks)))

	werr := r.write(ctx, in, plan, snap.reserved)

	after := r.p.ResyncPeriod
	if at, ok := plan.NextRecheck(); ok {
		// A recheck is due at at or later (rechecks are in the future); never 0,
		// which would mean "no requeue".
		after = min(after, max(at.Sub(now), 10*time.Millisecond))
	}
	if werr != nil {
		// A backoff requeue; the rate limiter never waits longer than a resync.
		return ctrl.Result{}, werr
	}
	log.FromContext(ctx).V(1).Info("GC pass done", "releases", len(plan.Releases), "rebinds", len(plan.Rebinds),
		"endpointDeletions", len(plan.EndpointDeletions), "rechecks", len(plan.Rechecks), "requeueAfter", after)
	return ctrl.Result{RequeueAfter: after}, nil
}

// warn reports the plan's warnings and the inputs that did not decode, each once while
// it lasts: a log line, and a Warning event on the endpoint it names.
func (r *Reconciler) warn(ctx context.Context, in input, warnings, inputErrs []error) {
	all := append(append([]error(nil), warnings...), inputErrs...)
	r.metrics.warnings.Set(float64(len(all)))
	now := map[string]bool{}
	for _, w := range all {
		msg := w.Error()
		now[msg] = true
		if r.warned[msg] {
			continue
		}
		log.FromContext(ctx).Info("GC cannot use an input; keeping the addresses it governs", "warning", msg)
		if errors.Is(w, ipam.ErrInvalidReclaimPolicy) {
			if se := in.endpointNamedIn(msg); se != nil {
				r.p.Recorder.Event(se, corev1.EventTypeWarning, EventInvalidReclaimPolicy, msg)
			}
		}
	}
	r.warned = now
}
