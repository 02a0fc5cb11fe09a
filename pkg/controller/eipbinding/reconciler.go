package eipbinding

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
)

// Finalizer keeps an EIP pool until the EIPs it allocated are released.
const Finalizer = "orbweaver.io/eip"

// Tags orbweaver puts on every EIP it allocates, so that a restarted controller, or the
// orphan collector after a crash or an uninstall, finds its own.
const (
	TagCluster = "orbweaver.io/cluster"
	TagPool    = "orbweaver.io/pool"
	TagIP      = "orbweaver.io/ip"
)

// Event reasons.
const (
	ReasonAllocated        = "EIPAllocated"
	ReasonBound            = "EIPBound"
	ReasonUnbound          = "EIPUnbound"
	ReasonReleased         = "EIPReleased"
	ReasonFailed           = "EIPFailed"
	ReasonQuotaExceeded    = "EIPQuotaExceeded"
	ReasonForbidden        = "EIPForbidden"
	ReasonProviderMissing  = "EIPProviderNotConfigured"
	ReasonNoStaticEIP      = "EIPNoStaticEIP"
	ReasonInterfaceUnknown = "EIPInterfaceNotFound"
	// ReasonRequestRefused: a pod's EIP request is not honoured (authorize.go); the
	// message names the rule and what an administrator must change.
	ReasonRequestRefused = "EIPRequestRefused"
	// ReasonAttributeUnhonoured: an EIP was allocated without an attribute the pool or
	// the pod set, which its cloud has no parameter for; the message names it.
	ReasonAttributeUnhonoured = "EIPAttributeUnhonoured"
)

// Params are what the EIP controller needs.
type Params struct {
	// Providers are the configured clouds by spec.orbweaver.eip.provider, each wrapped
	// in eip.Retrying by the caller.
	Providers map[string]eip.Provider
	// ProviderErrors are the configured clouds whose adapter could not start, with why;
	// their pools' EIPReady condition says it.
	ProviderErrors map[string]error
	// ClusterID tags every EIP allocated here, so clusters sharing an account never
	// collect each other's EIPs.
	ClusterID string
	// Direct reads and writes the API server without a cache.
	Direct client.Client
	// Recorder posts events on pools and pods.
	Recorder record.EventRecorder
	// Registerer takes the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Clock is the real clock when nil; tests inject one for release durations.
	Clock clock.PassiveClock
	// PollInterval is how soon a binding the cloud is still settling (Associating,
	// Unbinding) is looked at again; 500ms when zero.
	PollInterval time.Duration
	// RetryInterval is how soon a pool is looked at again after a cloud error a user
	// must fix (quota, permission, a missing provider); 30s when zero.
	RetryInterval time.Duration
	// OrphanInterval is how often EIPs tagged for this cluster that no binding tracks
	// are collected; 10m when zero, negative to disable.
	OrphanInterval time.Duration
	// MaxConcurrentCalls bounds the cloud calls one reconcile makes at once; 8 when 0.
	MaxConcurrentCalls int
	// DefaultProvider is the cloud of EIPs a pod asks for (orbweaver.io/with-eip) in a
	// pool without an EIP attribute and without orbweaver.io/eip-provider; "" means
	// the only configured one, if there is one.
	DefaultProvider string
	// VendorAnnotations also reads Alibaba ACK's and Tencent TKE's EIP pod annotations
	// (k8s.aliyun.com/pod-with-eip, tke.cloud.tencent.com/eip-attributes, ...), so their
	// manifests apply unchanged.
	VendorAnnotations bool
	// PodRequests says whose per-pod requests (orbweaver.io/with-eip, eip-id, the
	// attributes, the vendors' annotations) are honoured: PodRequestsRestricted (or "")
	// only in namespaces labelled orbweaver.io/eip-requests=allowed and for IPs of pools
	// with spec.orbweaver.eip.allowPodRequests; PodRequestsOpen every pod's. An EIP
	// named by ID must be one the pod may use either way.
	PodRequests string
	// VerifyInterval is how often a pool's Bound EIPs are checked against the cloud
	// (one Describe per pool), so one unbound or released behind orbweaver's back (a
	// console click) is bound again or replaced; 5m when zero, negative to disable.
	VerifyInterval time.Duration
}

type reconciler struct {
	p       Params
	cache   client.Client
	pools   crdstore.Pools
	metrics *metrics
	clock   clock.PassiveClock

	// verified is when each pool's Bound EIPs were last checked with the cloud.
	mu       sync.Mutex
	verified map[string]time.Time
	// failed is each IP's ("pool/ip") last failed step: it is not tried again, nor its
	// events posted again, before RetryInterval, however many endpoint events wake the
	// pool meanwhile. A failing cloud is not hammered, nor the API server with events.
	failed map[string]failure
	// refused is each pod's refused request, by "pool|namespace/name".
	refused map[string]refusalEntry
}

// eipPool: a pool with an EIP attribute, EIP bindings or the EIP finalizer.
func eipPool(o client.Object) bool {
	sp, ok := o.(*v2beta1.SpiderIPPool)
	return ok && (specOf(sp) != nil || len(bindingsOf(sp)) > 0 || controllerutil.ContainsFinalizer(sp, Finalizer))
}

func specOf(sp *v2beta1.SpiderIPPool) *v2beta1.EIPSpec {
	if sp.Spec.Orbweaver == nil {
		return nil
	}
	return sp.Spec.Orbweaver.EIP
}

func bindingsOf(sp *v2beta1.SpiderIPPool) []v2beta1.EIPBinding {
	if sp.Status.Orbweaver == nil {
		return nil
	}
	return sp.Status.Orbweaver.EIPs
}

// RBAC of the EIP controller: pools, endpoints, pods, nodes and namespaces from the
// cache, pools also fresh; the pool's finalizer (patch) and status; the endpoint's EIPs
// and the pod's orbweaver.io/allocated-eip annotation (patch) and orbweaver.io/eip
// readiness gate condition (pods/status); events.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile binds, rebinds, unbinds and releases the EIPs of one pool.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sp := &v2beta1.SpiderIPPool{}
	if err := r.cache.Get(ctx, req.NamespacedName, sp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	reqs, bad, gates, err := r.requests(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !eipPool(sp) && !r.servesRequester(ctx, sp, reqs, bad) {
		// No EIP here; a pod that declares the gate still learns why it is not Ready.
		for _, key := range gates {
			if r.endpointIn(ctx, key, sp.Name) {
				return ctrl.Result{}, r.syncPods(ctx, sp)
			}
		}
		return ctrl.Result{}, nil
	}
	ctx = ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues("SpiderIPPool", klog.KObj(sp)))
	deleting := sp.DeletionTimestamp != nil
	if !deleting {
		if err := r.ensureFinalizer(ctx, sp); err != nil {
			return ctrl.Result{}, err
		}
	}
	if deleting && len(bindingsOf(sp)) == 0 {
		return ctrl.Result{}, r.removeFinalizer(ctx, sp)
	}
	return r.reconcileBindings(ctx, sp, deleting, reqs, bad)
}

// reconcileBindings runs the phases of one pool's bindings: verify the Bound EIPs with
// the cloud when due, observe, plan (pure), run the cloud calls, record the results
// and the EIPReady condition, post the events, show the pods their EIPs.
func (r *reconciler) reconcileBindings(ctx context.Context, sp *v2beta1.SpiderIPPool, deleting bool,
	reqs map[string]podRequest, bad map[string]error) (ctrl.Result, error) {
	if r.verifyDue(sp) {
		next, err := r.verify(ctx, sp)
		if err != nil {
			return ctrl.Result{}, err
		}
		sp = next
	}
	pool, err := ipam.NewPool(sp, ip.Set{})
	if err != nil {
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	in, err := r.observe(ctx, sp, pool, deleting, reqs, bad)
	if err != nil {
		return ctrl.Result{}, err
	}
	steps, refused := plan(in)
	r.tellRefusals(ctx, sp.Name, steps, refused)
	r.run(ctx, sp, steps)
	next, err := r.record(ctx, sp.Name, steps, in.pol)
	if err != nil {
		return ctrl.Result{}, err
	}
	for i := range steps {
		r.post(sp, &steps[i])
	}
	if err := r.syncPods(ctx, next); err != nil {
		return ctrl.Result{}, err
	}
	after := requeueAfter(bindingsOf(next), steps, r.clock.Now(),
		intervals{poll: r.p.PollInterval, retry: r.p.RetryInterval, verify: r.p.VerifyInterval})
	return ctrl.Result{RequeueAfter: after}, nil
}

func (r *reconciler) ensureFinalizer(ctx context.Context, sp *v2beta1.SpiderIPPool) error {
	if controllerutil.ContainsFinalizer(sp, Finalizer) {
		return nil
	}
	patch := client.MergeFrom(sp.DeepCopy())
	controllerutil.AddFinalizer(sp, Finalizer)
	if err := r.p.Direct.Patch(ctx, sp, patch); err != nil {
		return fmt.Errorf("add finalizer %s to SpiderIPPool %q: %w", Finalizer, sp.Name, err)
	}
	return nil
}

func (r *reconciler) removeFinalizer(ctx context.Context, sp *v2beta1.SpiderIPPool) error {
	if !controllerutil.ContainsFinalizer(sp, Finalizer) {
		return nil
	}
	patch := client.MergeFrom(sp.DeepCopy())
	controllerutil.RemoveFinalizer(sp, Finalizer)
	if err := r.p.Direct.Patch(ctx, sp, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer %s from SpiderIPPool %q: %w", Finalizer, sp.Name, err)
	}
	return nil
}
