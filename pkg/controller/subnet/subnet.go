// Package subnet is the SpiderSubnet status controller. It derives a subnet's status
// from its pools, as SpiderPool's subnet controller does: status.controlledIPPools
// (SpiderPool's JSON, pool name to its addresses and, for an auto pool, its
// application), status.totalIPCount (spec.ips minus spec.excludeIPs) and
// status.allocatedIPCount (the addresses controlledIPPools lists), plus orbweaver's
// conditions (status.orbweaver.conditions). A deleted subnet that carries the finalizer
// keeps it until no pool belongs to it. It never writes pools.
package subnet

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
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Params are what the subnet status controller needs.
type Params struct {
	// Direct reads and writes the API server without a cache: the pools that decide
	// whether a deleted subnet's finalizer goes, the re-read after a conflict, and every
	// write. A new direct client from the manager's config when nil.
	Direct client.Client
	// Recorder posts events on subnets; mgr.GetEventRecorderFor("orbweaver-subnet") when
	// nil.
	Recorder record.EventRecorder
	// Registerer takes the controller's metrics (the manager passes controller-runtime's
	// metrics.Registry); nil registers none.
	Registerer prometheus.Registerer
	// Clock dates condition transitions; nil is the real clock.
	Clock clock.PassiveClock
}

// Event reasons on subnets.
const (
	EventSubnetExhausted        = "SubnetExhausted"
	EventSubnetPoolsOutside     = "SubnetPoolsOutside"
	EventSubnetDeletionWaiting  = "SubnetDeletionWaiting"
	EventSubnetFinalizerRemoved = "SubnetFinalizerRemoved"
	EventSubnetSpecInvalid      = "SubnetSpecInvalid"
)

// maxTries bounds the compare-and-swap writes of one reconcile.
const maxTries = 5

// reconciler reconciles one SpiderSubnet's status and finalizer.
type reconciler struct {
	cache    client.Reader
	direct   client.Client
	recorder record.EventRecorder
	metrics  *metrics
	clock    clock.PassiveClock
}

// SetupWithManager registers the subnet status controller: For SpiderSubnet; a pool's
// subnet (and its former one, when its label or spec changes) on changes of the pool's
// labels, spec or existence, not of its status; every subnet of a family when a
// SpiderReservedIP of that family changes.
func SetupWithManager(_ context.Context, mgr ctrl.Manager, p Params) error {
	if p.Recorder == nil {
		p.Recorder = mgr.GetEventRecorderFor("orbweaver-subnet")
	}
	if p.Direct == nil {
		c, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return fmt.Errorf("subnet: direct client: %w", err)
		}
		p.Direct = c
	}
	r, err := newReconciler(mgr.GetClient(), p)
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v2beta1.SpiderSubnet{}).
		Watches(&v2beta1.SpiderIPPool{}, handler.EnqueueRequestsFromMapFunc(r.subnetsOfPool),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Watches(&v2beta1.SpiderReservedIP{}, handler.EnqueueRequestsFromMapFunc(r.subnetsOfReserved)).
		Named("spidersubnet-status").
		Complete(r)
}

func newReconciler(cache client.Reader, p Params) (*reconciler, error) {
	if p.Direct == nil || p.Recorder == nil {
		return nil, errors.New("subnet: Params.Direct and Params.Recorder are required")
	}
	m, err := newMetrics(p.Registerer)
	if err != nil {
		return nil, fmt.Errorf("subnet: register metrics: %w", err)
	}
	c := p.Clock
	if c == nil {
		c = clock.RealClock{}
	}
	return &reconciler{cache: cache, direct: p.Direct, recorder: p.Recorder, metrics: m, clock: c}, nil
}

// RBAC of Reconcile: subnets, pools and reserved IPs from the cache, subnets read and
// pools listed fresh too; the subnet's status written and its finalizer taken off
// (patch); events on subnets.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spidersubnets/status,verbs=update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderreservedips,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile brings a subnet's status up to date from the pools, or removes the
// finalizer of a deleted subnet that no pool belongs to any more.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	subnet := &v2beta1.SpiderSubnet{}
	if err := r.cache.Get(ctx, req.NamespacedName, subnet); err != nil {
		if apierrors.IsNotFound(err) {
			r.metrics.forget(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get SpiderSubnet %q: %w", req.Name, err)
	}
	var pools v2beta1.SpiderIPPoolList
	if err := r.cache.List(ctx, &pools); err != nil {
		return ctrl.Result{}, fmt.Errorf("list pools for SpiderSubnet %q: %w", req.Name, err)
	}
	var reservedIPs v2beta1.SpiderReservedIPList
	if err := r.cache.List(ctx, &reservedIPs); err != nil {
		return ctrl.Result{}, fmt.Errorf("list SpiderReservedIPs for SpiderSubnet %q: %w", req.Name, err)
	}

	backoff := wait.Backoff{Duration: 20 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: maxTries}
	err := cas.Retry(ctx, backoff, isConflict, func() error {
		if subnet == nil { // a pass lost a race: the cache is behind the API server
			subnet = &v2beta1.SpiderSubnet{}
			if err := r.direct.Get(ctx, req.NamespacedName, subnet); err != nil {
				if apierrors.IsNotFound(err) {
					r.metrics.forget(req.Name)
					return nil
				}
				return fmt.Errorf("get SpiderSubnet %q: %w", req.Name, err)
			}
		}
		family, _ := ipam.SubnetFamily(subnet)
		err := r.reconcileSubnet(ctx, subnet, pools.Items, ipam.ReservedAddresses(reservedIPs.Items, family))
		subnet = nil
		return err
	})
	return ctrl.Result{}, err
}

// isConflict reports a write that lost a compare-and-swap (cas.Retry runs the pass again).
func isConflict(err error) bool { return errors.Is(err, errConflict) }

// reconcileSubnet runs one pass on one version of the subnet. A conflicting write
// returns an error wrapping errConflict.
func (r *reconciler) reconcileSubnet(ctx context.Context, subnet *v2beta1.SpiderSubnet, pools []v2beta1.SpiderIPPool, reserved ip.Set) error {
	f, err := observe(subnet, pools, reserved)
	if err != nil {
		r.recorder.Event(subnet, corev1.EventTypeWarning, EventSubnetSpecInvalid, err.Error())
		return reconcile.TerminalError(err)
	}
	r.metrics.observe(subnet.Name, f)

	var blocking []string
	if subnet.DeletionTimestamp != nil && controllerutil.ContainsFinalizer(subnet, v2beta1.Finalizer) {
		// Whether the finalizer may go is decided on the API server's pools, not the
		// cache's: a pool created a moment ago must hold the subnet.
		if blocking, err = r.ownedPools(ctx, subnet); err != nil {
			return err
		}
		if len(blocking) == 0 {
			return r.removeFinalizer(ctx, subnet)
		}
	}

	next, err := desiredStatus(subnet, f, blocking, r.clock.Now())
	if err != nil {
		return err
	}
	if !statusChanged(&subnet.Status, &next) {
		return nil
	}
	obj := subnet.DeepCopy()
	obj.Status = next
	err = r.direct.Status().Update(ctx, obj)
	switch {
	case apierrors.IsConflict(err):
		err = fmt.Errorf("update SpiderSubnet %q status: %w", subnet.Name, errConflict)
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		err = fmt.Errorf("update SpiderSubnet %q status: %w", subnet.Name, err)
	}
	r.metrics.wrote("status", err)
	if err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Wrote subnet status", "pools", len(f.shares), "allocatedIPCount", *next.AllocatedIPCount, "totalIPCount", *next.TotalIPCount)
	var old []metav1.Condition
	if subnet.Status.Orbweaver != nil {
		old = subnet.Status.Orbweaver.Conditions
	}
	for _, c := range turnedBad(old, next.Orbweaver.Conditions) {
		switch c.Type {
		case v2beta1.SubnetExhaustedCondition:
			r.recorder.Event(obj, corev1.EventTypeWarning, EventSubnetExhausted, c.Message)
		case v2beta1.SubnetPoolsOutsideCondition:
			r.recorder.Event(obj, corev1.EventTypeWarning, EventSubnetPoolsOutside, c.Message)
		case v2beta1.SubnetDeletionBlockedCondition:
			r.recorder.Event(obj, corev1.EventTypeNormal, EventSubnetDeletionWaiting, c.Message)
		}
	}
	return nil
}

// ownedPools lists, from the API server, the pools that belong to the subnet.
func (r *reconciler) ownedPools(ctx context.Context, subnet *v2beta1.SpiderSubnet) ([]string, error) {
	var pools v2beta1.SpiderIPPoolList
	if err := r.direct.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("list pools of deleted SpiderSubnet %q: %w", subnet.Name, err)
	}
	prefix, err := ip.ParseCanonicalCIDR(string(subnet.Spec.Subnet))
	if err != nil {
		return nil, fmt.Errorf("SpiderSubnet %q: spec.subnet: %w", subnet.Name, err)
	}
	var out []string
	for i := range pools.Items {
		if belongs(&pools.Items[i], subnet, prefix) {
			out = append(out, pools.Items[i].Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// removeFinalizer takes orbweaver's finalizer off a deleted subnet, with the version it
// read as a precondition.
func (r *reconciler) removeFinalizer(ctx context.Context, subnet *v2beta1.SpiderSubnet) error {
	rest := slices.DeleteFunc(slices.Clone(subnet.Finalizers), func(s string) bool { return s == v2beta1.Finalizer })
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": rest, "resourceVersion": subnet.ResourceVersion}})
	if err != nil {
		return fmt.Errorf("remove the finalizer of SpiderSubnet %q: %w", subnet.Name, err)
	}
	err = r.direct.Patch(ctx, &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: subnet.Name}}, client.RawPatch(types.MergePatchType, patch))
	switch {
	case apierrors.IsConflict(err):
		err = fmt.Errorf("remove the finalizer of SpiderSubnet %q: %w", subnet.Name, errConflict)
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		err = fmt.Errorf("remove the finalizer of SpiderSubnet %q: %w", subnet.Name, err)
	}
	r.metrics.wrote("finalizer", err)
	if err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("Removed the finalizer of a deleted subnet that no pool belongs to")
	r.recorder.Event(subnet, corev1.EventTypeNormal, EventSubnetFinalizerRemoved, "no pool belongs to the subnet any more; the subnet goes")
	return nil
}

// subnetsOfPool maps a pool to the subnet it belongs to: the one its
// owner-spider-subnet label names, or without the label every subnet with its
// spec.subnet. On an update, controller-runtime maps the old and the new pool, so a
// subnet that loses the pool hears of it too.
func (r *reconciler) subnetsOfPool(ctx context.Context, obj client.Object) []reconcile.Request {
	pool, ok := obj.(*v2beta1.SpiderIPPool)
	if !ok {
		return nil
	}
	if owner := pool.Labels[ipam.LabelOwnerSpiderSubnet]; owner != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: owner}}}
	}
	var subnets v2beta1.SpiderSubnetList
	if err := r.cache.List(ctx, &subnets); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List subnets for a changed pool", "SpiderIPPool", klog.KObj(pool))
		return nil
	}
	var out []reconcile.Request
	for i := range subnets.Items {
		s := &subnets.Items[i]
		if prefix, err := ip.ParseCanonicalCIDR(string(s.Spec.Subnet)); err == nil && belongs(pool, s, prefix) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: s.Name}})
		}
	}
	return out
}

// subnetsOfReserved maps a SpiderReservedIP to the subnets of its families: what is
// left for new pools depends on it.
func (r *reconciler) subnetsOfReserved(ctx context.Context, obj client.Object) []reconcile.Request {
	res, ok := obj.(*v2beta1.SpiderReservedIP)
	if !ok {
		return nil
	}
	v4, v6 := ipam.ReservedFamilies(res)
	if !v4 && !v6 {
		return nil
	}
	var subnets v2beta1.SpiderSubnetList
	if err := r.cache.List(ctx, &subnets); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "List subnets for a changed SpiderReservedIP", "SpiderReservedIP", klog.KObj(res))
		return nil
	}
	var out []reconcile.Request
	for i := range subnets.Items {
		if fam, _ := ipam.SubnetFamily(&subnets.Items[i]); fam == v2beta1.IPv4 && v4 || fam == v2beta1.IPv6 && v6 {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: subnets.Items[i].Name}})
		}
	}
	return out
}
