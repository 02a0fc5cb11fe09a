package autopool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// DefaultRetryInterval is Params.RetryInterval when zero.
const DefaultRetryInterval = 10 * time.Second

// Event reasons, on the application.
const (
	// Normal.
	ReasonCreated       = "AutoPoolCreated"
	ReasonResized       = "AutoPoolResized"
	ReasonAdopted       = "AutoPoolAdopted"
	ReasonDeleted       = "AutoPoolDeleted"
	ReasonShrinkPending = "AutoPoolShrinkPending"
	// Warning.
	ReasonSubnetMissing       = "SubnetMissing"
	ReasonSubnetExhausted     = "SubnetExhausted"
	ReasonBadAnnotation       = "BadAnnotation"
	ReasonFlexibleUnsupported = "FlexibleIPNumberUnsupported"
	ReasonFailed              = "AutoPoolFailed"
)

// Params configure the auto-pool controllers.
type Params struct {
	// DefaultFlexibleIPNumber is N of the "+N" used when a template has no
	// ipam.spidernet.io/ippool-ip-number (SpiderPool's clusterSubnetDefaultFlexibleIPNumber;
	// the binary's default is 1). Zero is a valid value: exactly the replicas.
	DefaultFlexibleIPNumber int
	// ThirdPartyKinds are further workload kinds (OpenKruise's CloneSet, say), read as
	// unstructured: the pod template at spec.template. Their size must be a fixed "N".
	ThirdPartyKinds []schema.GroupVersionKind
	// EnableIPv4 and EnableIPv6 are the families the cluster serves; pools of the other
	// are not made. At least one must be true.
	EnableIPv4, EnableIPv6 bool
	// Client reads pools, subnets, reserved IPs and (to shrink a pool in Grants mode)
	// SpiderEndpoints fresh and writes pools; it must not read from a cache. A direct
	// client from the manager's config when nil.
	Client client.Client
	// Recorder posts events on the applications; mgr.GetEventRecorderFor("orbweaver-autopool")
	// when nil.
	Recorder record.EventRecorder
	// Registerer receives the orbweaver_autopool_* metrics (the binary passes
	// controller-runtime's metrics.Registry); a private registry when nil.
	Registerer prometheus.Registerer
	// RetryInterval is how long an application waits before another try when its pools
	// cannot be made now: its subnet is missing or short of addresses, or a shrink waits
	// for allocated addresses to be released. DefaultRetryInterval when zero.
	RetryInterval time.Duration
	// Backoff paces the re-reads after a write that lost a race (a 409 Conflict, a pool
	// name taken, the webhook refusing an overlap); 6 tries from 20ms, doubling,
	// jittered, when Steps is zero.
	Backoff wait.Backoff
}

// allocator is what every kind's reconciler shares: the parameters, and the lock that
// makes "read every pool fresh, choose addresses, write" one step at a time, so two
// applications never take the same addresses.
type allocator struct {
	p       Params
	cache   client.Reader
	metrics *metrics
	mu      sync.Mutex
}

// reconciler makes the auto pools of the applications of one kind: one generic
// reconciler, instantiated per kind, since what differs between kinds (where the pod
// template is, how many replicas, whether another application manages the pools) is a
// small read function (kind.read).
type reconciler struct {
	*allocator
	kind kind
}

// SetupWithManager registers one leader-elected controller per workload kind
// (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob and each of
// p.ThirdPartyKinds), each watching its kind, the auto pools of its kind and the
// SpiderSubnets, and the metrics.
func SetupWithManager(_ context.Context, mgr ctrl.Manager, p Params) error {
	if !p.EnableIPv4 && !p.EnableIPv6 {
		return errors.New("autopool: EnableIPv4 and EnableIPv6 are both false; enable at least one")
	}
	if p.DefaultFlexibleIPNumber < 0 {
		return fmt.Errorf("autopool: DefaultFlexibleIPNumber is %d; it must be 0 or more", p.DefaultFlexibleIPNumber)
	}
	kinds := builtinKinds()
	for _, gvk := range p.ThirdPartyKinds {
		if gvk.Kind == "" || gvk.Version == "" {
			return fmt.Errorf("autopool: third-party kind %q needs a version and a kind", gvk)
		}
		if slices.ContainsFunc(kinds, func(k kind) bool { return k.gvk.GroupKind() == gvk.GroupKind() }) {
			return fmt.Errorf("autopool: third-party kind %s is given twice, or is a built-in kind", gvk)
		}
		kinds = append(kinds, thirdPartyKind(gvk))
	}
	if p.Recorder == nil {
		p.Recorder = mgr.GetEventRecorderFor("orbweaver-autopool")
	}
	if p.Client == nil {
		c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("autopool: direct client: %w", err)
		}
		p.Client = c
	}
	if p.RetryInterval <= 0 {
		p.RetryInterval = DefaultRetryInterval
	}
	if p.Backoff.Steps == 0 {
		p.Backoff = wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 6, Cap: time.Second}
	}
	reg := p.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a := &allocator{p: p, cache: mgr.GetCache(), metrics: newMetrics()}
	if err := a.metrics.register(reg); err != nil {
		return err
	}
	for _, k := range kinds {
		r := &reconciler{allocator: a, kind: k}
		err := ctrl.NewControllerManagedBy(mgr).
			Named(k.controllerName()).
			For(k.newObject()).
			Watches(&v2beta1.SpiderIPPool{}, handler.EnqueueRequestsFromMapFunc(r.poolToApp), builder.WithPredicates(poolChange())).
			Watches(&v2beta1.SpiderSubnet{}, handler.EnqueueRequestsFromMapFunc(r.subnetToApps), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
			WithOptions(controller.Options{MaxConcurrentReconciles: 1}).
			Complete(r)
		if err != nil {
			return fmt.Errorf("autopool: controller for %s: %w", k.gvk, err)
		}
	}
	return nil
}

// RBAC. Third-party kinds need get, list and watch on their resources too.
//
// +kubebuilder:rbac:groups=apps,resources=deployments;replicasets;statefulsets;daemonsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs;cronjobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderreservedips,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=list
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings one application's auto pools to what its pod template asks for: get
// it; if it is gone, reclaim its pools; read the request; if the cached pools already
// match, stop; else, under the allocator's lock, read every pool fresh, then delete,
// create, adopt and resize, retrying on a lost race.
func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (ctrl.Result, error) {
	obj := r.kind.newObject()
	if err := r.cache.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.reclaimGone(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, fmt.Errorf("get %s %s: %w", r.kind.gvk.Kind, req.NamespacedName, err)
	}
	w, err := r.kind.workload(obj)
	if err != nil {
		r.warn(ctx, obj, failInvalid, ReasonBadAnnotation, "cannot read the pod template: %v", err)
		return ctrl.Result{}, nil
	}
	if w.gone() {
		return ctrl.Result{}, r.reclaimGone(ctx, req.NamespacedName)
	}
	if w.managedBy != "" {
		return ctrl.Result{}, nil // its pods use the pools of w.managedBy
	}
	request, asks, err := ipam.AutoPoolRequestOf(w.annotations, r.p.DefaultFlexibleIPNumber)
	if err != nil {
		r.warn(ctx, obj, failBadAnnotation, ReasonBadAnnotation, "no auto pool: the pod template's annotation is malformed: %v", err)
		return ctrl.Result{}, nil
	}
	var wants []want
	if asks {
		if r.kind.thirdParty && request.IPNumber.Flexible {
			r.warn(ctx, obj, failFlexible, ReasonFlexibleUnsupported,
				"no auto pool: %s %q is flexible, which only built-in kinds support; set a fixed number, e.g. %q",
				ipam.AnnoPodIPPoolIPNumber, request.IPNumber, fmt.Sprint(max(request.IPNumber.N, 1)))
			return ctrl.Result{}, nil
		}
		if msgs := validation.IsValidLabelValue(w.app.Name); len(msgs) > 0 {
			r.warn(ctx, obj, failInvalid, ReasonFailed, "no auto pool: the name cannot be a label value of the pool (%s)", strings.Join(msgs, "; "))
			return ctrl.Result{}, nil
		}
		wants = wantsOf(request, r.p.EnableIPv4, r.p.EnableIPv6)
	}
	size := ipam.DesiredIPNumber(request.IPNumber, w.replicas)

	// Fast path: the cache says every pool is as wanted and none is to go.
	var cached v2beta1.SpiderIPPoolList
	if err := r.cache.List(ctx, &cached, appSelector(w.app)); err != nil {
		return ctrl.Result{}, fmt.Errorf("list the auto pools of %s: %w", w.app, err)
	}
	if upToDate(planPools(cached.Items, r.kind, w.app, wants), w.app, request, wants, size) {
		return ctrl.Result{}, nil
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	var later bool
	err = retryOnRace(ctx, r.p.Backoff, func() error {
		var err error
		later, err = r.sync(ctx, w, request, wants, size)
		return err
	})
	if err != nil {
		r.metrics.failures.WithLabelValues(r.kind.gvk.Kind, failWrite).Inc()
		return ctrl.Result{}, err
	}
	if later {
		return ctrl.Result{RequeueAfter: r.p.RetryInterval}, nil
	}
	return ctrl.Result{}, nil
}

// upToDate tells whether a plan made from the cache needs no write.
func upToDate(plan poolPlan, app ipam.Application, req ipam.AutoPoolRequest, wants []want, size int64) bool {
	if len(plan.remove) > 0 {
		return false
	}
	for i, w := range wants {
		if !current(plan.keep[i], app, req, w, size) {
			return false
		}
	}
	return true
}

// appSelector selects the auto pools of an application's kind, namespace and name.
func appSelector(app ipam.Application) client.MatchingLabels {
	return client.MatchingLabels{
		ipam.LabelOwnerAppKind: app.Kind, ipam.LabelOwnerAppNamespace: app.Namespace, ipam.LabelOwnerAppName: app.Name,
	}
}

// retryOnRace runs fn again, after a backoff, while it fails with a lost race: a 409
// Conflict (the pool changed since it was read), AlreadyExists (the name was taken in
// between) or Invalid (the webhook refused an overlap with a pool created in between; a
// second guard behind the allocator's lock). Each run reads everything fresh.
func retryOnRace(ctx context.Context, b wait.Backoff, fn func() error) error {
	return cas.Retry(ctx, b, lostRace, fn)
}

// lostRace reports the errors retryOnRace runs fn again for.
func lostRace(err error) bool {
	return cas.LostToAnotherWriter(err) || apierrors.IsInvalid(err)
}

// sync is one fresh read and the writes it calls for. later is true when something
// must be tried again after RetryInterval (missing subnet, exhausted subnet, a shrink
// waiting for releases). A lost race is returned as is, for retryOnRace.
func (r *reconciler) sync(ctx context.Context, w workload, req ipam.AutoPoolRequest, wants []want, size int64) (later bool, err error) {
	var pools v2beta1.SpiderIPPoolList
	if err := r.p.Client.List(ctx, &pools); err != nil {
		return false, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	var reserved v2beta1.SpiderReservedIPList
	if err := r.p.Client.List(ctx, &reserved); err != nil {
		return false, fmt.Errorf("list SpiderReservedIPs: %w", err)
	}
	plan := planPools(pools.Items, r.kind, w.app, wants)
	if err := r.deletePools(ctx, plan.remove, deleteUnwanted, &w); err != nil {
		return false, err
	}
	all := pools.Items
	var errs []error
	for i, wt := range wants {
		again, err := r.syncPool(ctx, w, req, wt, size, plan.keep[i], &all, reserved.Items)
		if lostRace(err) {
			return false, err
		}
		later = later || again
		if err != nil {
			errs = append(errs, err)
		}
	}
	return later, errors.Join(errs...)
}

// syncPool creates, adopts or resizes the pool of one want. pool is the one serving it,
// nil when there is none; pools is every pool, updated with what is written.
func (r *reconciler) syncPool(ctx context.Context, w workload, req ipam.AutoPoolRequest, wt want, size int64,
	pool *v2beta1.SpiderIPPool, pools *[]v2beta1.SpiderIPPool, reservedIPs []v2beta1.SpiderReservedIP) (later bool, err error) {
	if current(pool, w.app, req, wt, size) {
		return false, nil
	}
	log := log.FromContext(ctx)
	subnet := &v2beta1.SpiderSubnet{}
	if err := r.p.Client.Get(ctx, client.ObjectKey{Name: wt.subnet}, subnet); err != nil || subnet.DeletionTimestamp != nil {
		if err != nil && !apierrors.IsNotFound(err) {
			return false, fmt.Errorf("get SpiderSubnet %q: %w", wt.subnet, err)
		}
		state := "does not exist"
		if err == nil {
			state = "is being deleted"
		}
		r.warn(ctx, w.obj, failSubnetMissing, ReasonSubnetMissing, "no %s pool for interface %s: SpiderSubnet %q %s (see kubectl get ss); retrying every %s",
			ipam.IPVersionLabelValue(wt.family), wt.nic, wt.subnet, state, r.p.RetryInterval)
		return true, nil
	}
	prefix, _, err := ipam.SubnetAddresses(subnet)
	if err != nil {
		r.warn(ctx, w.obj, failInvalid, ReasonFailed, "no %s pool for interface %s: %v", ipam.IPVersionLabelValue(wt.family), wt.nic, err)
		return true, nil
	}
	if fam, _ := ipam.SubnetFamily(subnet); fam != wt.family {
		r.warn(ctx, w.obj, failBadAnnotation, ReasonBadAnnotation, "no %s pool for interface %s: SpiderSubnet %q is %s (%s); name it under %q",
			ipam.IPVersionLabelValue(wt.family), wt.nic, wt.subnet, ipam.IPVersionLabelValue(fam), prefix, strings.ToLower(ipam.IPVersionLabelValue(fam)))
		return false, nil
	}
	var held ip.Set
	if pool != nil && pool.GrantsMode() && specSize(pool) > size {
		// A shrink of a pool that records nothing: its endpoints say what pods hold.
		if held, err = r.heldByEndpoints(ctx, pool); err != nil {
			return false, err
		}
	}
	resize, err := ipam.ResizeAutoPool(ipam.AutoPoolSizing{Subnet: subnet, Pool: pool, Pools: *pools,
		Reserved: ipam.ReservedAddresses(reservedIPs, wt.family), Held: held, Want: size})
	var exhausted *ipam.SubnetExhaustedError
	switch {
	case errors.As(err, &exhausted):
		verb := "create"
		if pool != nil {
			verb = "grow"
		}
		r.warn(ctx, w.obj, failSubnetExhausted, ReasonSubnetExhausted,
			"cannot %s the %s pool for interface %s to %d addresses: SpiderSubnet %q has %d free, %d needed; add addresses to the subnet or lower the replicas or %s; retrying every %s",
			verb, ipam.IPVersionLabelValue(wt.family), wt.nic, exhausted.Want, wt.subnet, exhausted.Free, exhausted.Need, ipam.AnnoPodIPPoolIPNumber, r.p.RetryInterval)
		return true, nil
	case err != nil:
		r.warn(ctx, w.obj, failInvalid, ReasonFailed, "no %s pool for interface %s: %v", ipam.IPVersionLabelValue(wt.family), wt.nic, err)
		return true, nil
	}

	if pool == nil {
		name := poolName(*pools, w.app, wt)
		if name == "" {
			r.warn(ctx, w.obj, failInvalid, ReasonFailed, "no %s pool for interface %s: the pool names %q and its variant are taken by other pools",
				ipam.IPVersionLabelValue(wt.family), wt.nic, ipam.AutoPoolName(wt.family, w.app, wt.nic))
			return true, nil
		}
		np := newPool(name, subnet, wt.family, resize)
		dress(np, w.app, req, wt)
		if err := r.p.Client.Create(ctx, np); err != nil {
			return false, fmt.Errorf("create SpiderIPPool %q for %s: %w", name, w.app, err)
		}
		*pools = append(*pools, *np)
		r.metrics.created.WithLabelValues(r.kind.gvk.Kind).Inc()
		log.Info("created auto pool", "SpiderIPPool", klog.KObj(np), "ips", resize.IPs.String(), "size", size)
		r.p.Recorder.Eventf(w.obj, corev1.EventTypeNormal, ReasonCreated, "created SpiderIPPool %s for interface %s with %d addresses (%s) from SpiderSubnet %s",
			name, wt.nic, size, resize.IPs, wt.subnet)
		return false, nil
	}

	adopt := pool.Labels[ipam.LabelOwnerAppUID] != w.app.UID
	np := pool.DeepCopy()
	np.Spec.IPs = rangesOf(resize.IPs)
	dress(np, w.app, req, wt)
	before, after := specSize(pool), specSize(np)
	if !equality.Semantic.DeepEqual(np, pool) {
		if err := r.p.Client.Update(ctx, np); err != nil {
			return false, fmt.Errorf("update SpiderIPPool %q for %s: %w", pool.Name, w.app, err)
		}
		replace(*pools, *np)
		if adopt {
			r.metrics.adopted.WithLabelValues(r.kind.gvk.Kind).Inc()
			log.Info("adopted auto pool", "SpiderIPPool", klog.KObj(np), "previousUID", pool.Labels[ipam.LabelOwnerAppUID])
			r.p.Recorder.Eventf(w.obj, corev1.EventTypeNormal, ReasonAdopted, "took over SpiderIPPool %s, kept (%s \"false\") from an earlier %s of this name",
				pool.Name, ipam.AnnoPodIPPoolReclaim, w.app.Kind)
		}
		if resize.Changed() {
			direction := "grow"
			if after < before {
				direction = "shrink"
			}
			r.metrics.resized.WithLabelValues(r.kind.gvk.Kind, direction).Inc()
			log.Info("resized auto pool", "SpiderIPPool", klog.KObj(np), "from", before, "to", after, "added", resize.Added.String(), "removed", resize.Removed.String())
			r.p.Recorder.Eventf(w.obj, corev1.EventTypeNormal, ReasonResized, "resized SpiderIPPool %s from %d to %d addresses", pool.Name, before, after)
		}
	}
	if resize.Kept > 0 {
		r.p.Recorder.Eventf(w.obj, corev1.EventTypeNormal, ReasonShrinkPending,
			"SpiderIPPool %s keeps %d addresses above the %d wanted: pods or node reserves hold them; it shrinks when they are released (next try in %s)",
			pool.Name, resize.Kept, size, r.p.RetryInterval)
		return true, nil
	}
	return false, nil
}

// endpointPage is how many SpiderEndpoints heldByEndpoints reads per request.
const endpointPage = 500

// heldByEndpoints returns the addresses of a pool in Grants mode that SpiderEndpoints
// hold, read fresh from the API server a page at a time (it cannot select endpoints by
// pool). A pool whose subnet does not parse holds nothing here; ResizeAutoPool refuses
// it.
func (r *reconciler) heldByEndpoints(ctx context.Context, pool *v2beta1.SpiderIPPool) (ip.Set, error) {
	subnet, err := ip.ParseCanonicalCIDR(string(pool.Spec.Subnet))
	if err != nil {
		return ip.Set{}, nil
	}
	var holds []ipam.EndpointHold
	opts := []client.ListOption{client.Limit(endpointPage)}
	for {
		var list v2beta1.SpiderEndpointList
		if err := r.p.Client.List(ctx, &list, opts...); err != nil {
			return ip.Set{}, fmt.Errorf("list SpiderEndpoints to find the addresses pods hold in SpiderIPPool %q: %w", pool.Name, err)
		}
		holds = append(holds, ipam.EndpointHolds(pool.Name, subnet, list.Items)...)
		if list.Continue == "" {
			return ipam.HeldSet(holds), nil
		}
		opts = []client.ListOption{client.Limit(endpointPage), client.Continue(list.Continue)}
	}
}

// replace puts p in place of the pool of its name.
func replace(pools []v2beta1.SpiderIPPool, p v2beta1.SpiderIPPool) {
	for i := range pools {
		if pools[i].Name == p.Name {
			pools[i] = p
		}
	}
}

// reclaimGone deletes the reclaimable pools of an application that the cache no longer
// has, or that is being deleted, once a fresh read agrees.
func (r *reconciler) reclaimGone(ctx context.Context, key types.NamespacedName) error {
	obj := r.kind.newObject()
	err := r.p.Client.Get(ctx, key, obj)
	switch {
	case err == nil && obj.GetDeletionTimestamp() == nil:
		return nil // the cache is behind; the object's own event follows
	case err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err):
		return fmt.Errorf("get %s %s: %w", r.kind.gvk.Kind, key, err)
	}
	app := ipam.Application{Kind: r.kind.gvk.Kind, Namespace: key.Namespace, Name: key.Name}
	var pools v2beta1.SpiderIPPoolList
	if err := r.p.Client.List(ctx, &pools, appSelector(app)); err != nil {
		return fmt.Errorf("list the auto pools of %s: %w", app, err)
	}
	return r.deletePools(ctx, planPools(pools.Items, r.kind, app, nil).remove, deleteAppGone, nil)
}

// deletePools deletes pools, each only if it is still the object that was read (UID
// precondition). Their finalizer keeps them while addresses are allocated. w, when not
// nil, is the application to post an event on.
func (r *reconciler) deletePools(ctx context.Context, pools []*v2beta1.SpiderIPPool, reason string, w *workload) error {
	var errs []error
	for _, p := range pools {
		uid := p.UID
		err := r.p.Client.Delete(ctx, p, client.Preconditions{UID: &uid})
		switch {
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			continue // gone, or another object of the name now
		case err != nil:
			errs = append(errs, fmt.Errorf("delete SpiderIPPool %q: %w", p.Name, err))
			continue
		}
		r.metrics.deleted.WithLabelValues(r.kind.gvk.Kind, reason).Inc()
		log.FromContext(ctx).Info("deleted auto pool", "SpiderIPPool", klog.KObj(p), "reason", reason,
			"application", p.Labels[ipam.LabelOwnerAppNamespace]+"/"+p.Labels[ipam.LabelOwnerAppName])
		if w != nil {
			why := "the pod template no longer asks for it"
			if p.Labels[ipam.LabelOwnerAppUID] != w.app.UID {
				why = "an earlier " + w.app.Kind + " of this name left it"
			}
			r.p.Recorder.Eventf(w.obj, corev1.EventTypeNormal, ReasonDeleted, "deleted SpiderIPPool %s (subnet %s, interface %s): %s",
				p.Name, p.Labels[ipam.LabelOwnerSpiderSubnet], p.Labels[ipam.LabelInterface], why)
		}
	}
	return errors.Join(errs...)
}

// warn posts a Warning event on the application, logs it and counts the failure.
func (r *reconciler) warn(ctx context.Context, obj client.Object, failure, reason, format string, args ...any) {
	r.metrics.failures.WithLabelValues(r.kind.gvk.Kind, failure).Inc()
	msg := fmt.Sprintf(format, args...)
	log.FromContext(ctx).Info("no auto pool", "reason", reason, "message", msg)
	r.p.Recorder.Event(obj, corev1.EventTypeWarning, reason, msg)
}

// poolToApp maps an auto pool of this kind to its application.
func (r *reconciler) poolToApp(_ context.Context, obj client.Object) []reconcile.Request {
	l := obj.GetLabels()
	if _, auto := l[ipam.LabelOwnerAppUID]; !auto || !r.kind.owns(l) {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[ipam.LabelOwnerAppNamespace], Name: l[ipam.LabelOwnerAppName]}}}
}

// subnetToApps maps a SpiderSubnet to the applications of this kind whose pod template
// names it, so that one waiting for it (missing, too small) is tried at once.
func (r *reconciler) subnetToApps(ctx context.Context, obj client.Object) []reconcile.Request {
	list := r.kind.newList()
	if err := r.cache.List(ctx, list); err != nil {
		log.FromContext(ctx).Error(err, "list applications for a SpiderSubnet change", "kind", r.kind.gvk.Kind, "SpiderSubnet", klog.KObj(obj))
		return nil
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, item := range items {
		o, ok := item.(client.Object)
		if !ok {
			continue
		}
		w, err := r.kind.workload(o)
		if err != nil || w.managedBy != "" {
			continue
		}
		req, asks, err := ipam.AutoPoolRequestOf(w.annotations, 0)
		if err != nil || !asks {
			continue
		}
		for _, s := range req.Subnets {
			if slices.Contains(s.IPv4, obj.GetName()) || slices.Contains(s.IPv6, obj.GetName()) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
				break
			}
		}
	}
	return out
}

// poolChange passes the pool events that can change what an application needs: a pool
// created or deleted, its spec, labels or deletion changed, and resyncs (an update with
// the same resourceVersion). Status writes, the agents' allocations, are not.
func poolChange() predicate.Funcs {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld, e.ObjectNew
		return o.GetResourceVersion() == n.GetResourceVersion() || o.GetGeneration() != n.GetGeneration() ||
			!maps.Equal(o.GetLabels(), n.GetLabels()) || (o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil)
	}}
}
