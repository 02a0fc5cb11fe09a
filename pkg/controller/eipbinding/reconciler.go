package eipbinding

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
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

type failure struct {
	at  time.Time
	err error
}

// callsCloud tells whether a step makes cloud calls.
func (o op) callsCloud() bool {
	return o != opNone && o != opSchedule && o != opForget && o != opNote
}

// sePoolIndex indexes SpiderEndpoints by the pools of their IPs.
const sePoolIndex = "orbweaver.eipbinding.pools"

// SetupWithManager registers the EIP controller and its orphan collector.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, p Params) error {
	if p.Direct == nil || p.Recorder == nil || p.ClusterID == "" {
		return errors.New("eipbinding: Params.Direct, Params.Recorder and Params.ClusterID are required")
	}
	if p.PollInterval <= 0 {
		p.PollInterval = 500 * time.Millisecond
	}
	if p.RetryInterval <= 0 {
		p.RetryInterval = 30 * time.Second
	}
	if p.OrphanInterval == 0 {
		p.OrphanInterval = 10 * time.Minute
	}
	if p.MaxConcurrentCalls <= 0 {
		p.MaxConcurrentCalls = 8
	}
	if p.VerifyInterval == 0 {
		p.VerifyInterval = 5 * time.Minute
	}
	switch p.PodRequests {
	case "":
		p.PodRequests = PodRequestsRestricted
	case PodRequestsRestricted, PodRequestsOpen:
	default:
		return fmt.Errorf("eipbinding: Params.PodRequests %q: want %s or %s", p.PodRequests, PodRequestsRestricted, PodRequestsOpen)
	}
	if p.DefaultProvider == "" && len(p.Providers) == 1 {
		for name := range p.Providers {
			p.DefaultProvider = name
		}
	}
	m, err := newMetrics(p.Registerer)
	if err != nil {
		return fmt.Errorf("eipbinding: register metrics: %w", err)
	}
	r := &reconciler{p: p, cache: mgr.GetClient(), pools: crdstore.Pools{Client: p.Direct}, metrics: m, clock: p.Clock, verified: map[string]time.Time{}, failed: map[string]failure{},
		refused: map[string]refusalEntry{}}
	if r.clock == nil {
		r.clock = clock.RealClock{}
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v2beta1.SpiderEndpoint{}, sePoolIndex, func(o client.Object) []string {
		return ipam.EndpointPools(o.(*v2beta1.SpiderEndpoint))
	}); err != nil {
		return fmt.Errorf("eipbinding: index SpiderEndpoints: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, podRequestIndex, func(o client.Object) []string {
		if r.asks(o.(*corev1.Pod)) {
			return []string{"true"}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("eipbinding: index pods: %w", err)
	}
	if p.OrphanInterval > 0 {
		if err := mgr.Add(&orphanCollector{r: r}); err != nil {
			return err
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v2beta1.SpiderIPPool{}, builder.WithPredicates(predicate.NewPredicateFuncs(eipPool))).
		Watches(&v2beta1.SpiderEndpoint{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			var out []reconcile.Request
			for _, name := range ipam.EndpointPools(o.(*v2beta1.SpiderEndpoint)) {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
			}
			return out
		})).
		// A pod that asks for an EIP by annotation: its pools, through its endpoint.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.poolsOfPod)).
		// A namespace whose labels change: the pools of its pods that ask.
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.poolsOfNamespace)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Named("eip").
		Complete(r)
}

// podRequestIndex indexes pods whose annotations ask something of EIPs.
const podRequestIndex = "orbweaver.eipbinding.asks"

// asks tells whether a pod asks something of EIPs: by annotations (valid or not: an
// invalid request is reported on the pod), or by declaring the readiness gate, which
// gets its condition even in a pool without EIPs.
func (r *reconciler) asks(pod *corev1.Pod) bool {
	if gated(pod) {
		return true
	}
	for k := range pod.Annotations {
		if strings.HasPrefix(k, "orbweaver.io/eip-") || k == v2beta1.AnnoWithEIP {
			return k != v2beta1.AnnoAllocatedEIP
		}
		if r.p.VendorAnnotations && (vendorAliyun[k] != "" || k == tkeEIPAttributes || k == tkeEIPIDList || k == tkeEIPDeletePolicy) {
			return true
		}
	}
	return false
}

// gated tells whether the pod declares the orbweaver.io/eip readiness gate.
func gated(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.ReadinessGates, func(g corev1.PodReadinessGate) bool {
		return g.ConditionType == v2beta1.PodEIPConditionType
	})
}

// poolsOfPod maps a pod that asks for EIPs to the pools of its endpoint.
func (r *reconciler) poolsOfPod(ctx context.Context, o client.Object) []reconcile.Request {
	pod, ok := o.(*corev1.Pod)
	if !ok || !r.asks(pod) {
		return nil
	}
	se := &v2beta1.SpiderEndpoint{}
	if err := r.cache.Get(ctx, client.ObjectKeyFromObject(pod), se); err != nil {
		return nil // its endpoint's event comes later
	}
	var out []reconcile.Request
	for _, name := range ipam.EndpointPools(se) {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	}
	return out
}

// poolsOfNamespace maps a namespace to the pools of its pods that ask for EIPs, whose
// requests its label may now allow or refuse.
func (r *reconciler) poolsOfNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	var pods corev1.PodList
	if err := r.cache.List(ctx, &pods, client.InNamespace(o.GetName()), client.MatchingFields{podRequestIndex: "true"}); err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []reconcile.Request
	for i := range pods.Items {
		for _, req := range r.poolsOfPod(ctx, &pods.Items[i]) {
			if !seen[req.Name] {
				seen[req.Name] = true
				out = append(out, req)
			}
		}
	}
	return out
}

// requests returns the EIP requests of the pods that ask, by namespace/name, the parse
// errors of those that ask wrongly, and the pods that declare the readiness gate.
func (r *reconciler) requests(ctx context.Context) (reqs map[string]podRequest, bad map[string]error, gates []string, err error) {
	var pods corev1.PodList
	if err := r.cache.List(ctx, &pods, client.MatchingFields{podRequestIndex: "true"}); err != nil {
		return nil, nil, nil, fmt.Errorf("list pods that ask for EIPs: %w", err)
	}
	reqs, bad = map[string]podRequest{}, map[string]error{}
	for i := range pods.Items {
		p := &pods.Items[i]
		key := p.Namespace + "/" + p.Name
		if gated(p) {
			gates = append(gates, key)
		}
		req, err := parsePodRequest(p.Name, p.Annotations, r.p.VendorAnnotations)
		if err != nil {
			bad[key] = err
			continue
		}
		if req.any() {
			reqs[key] = req
		}
	}
	return reqs, bad, gates, nil
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

// step is one IP's planned step and what it works on.
type step struct {
	op   op
	addr netip.Addr
	st   ipState
	// pol is the policy the step was decided by; requested: by a pod's annotations.
	pol       policy
	requested bool
	// waitUntil is set on a step that failed lately: it is not run before then, and err
	// is its last error.
	waitUntil time.Time
	// before is the binding as recorded ahead of the cloud call (nil: none).
	before *v2beta1.EIPBinding
	// after is the binding once the call is done (nil: the binding goes).
	after *v2beta1.EIPBinding
	err   error
	// events to post once the result is recorded.
	events []event
	// cond and note, on a step that calls nothing (opNone), are the EIPReady reason
	// and message it sets: a pod's bad annotations, a refused request, no Static EIP.
	cond, note string
	// refused is set on the step of a pod whose request is refused.
	refused *refusalEntry
}

type event struct {
	pod    *holder // nil: on the pool
	warn   bool
	reason string
	msg    string
}

// Reconcile binds, rebinds, unbinds and releases the EIPs of one pool.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/status,verbs=get;update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools/finalizers,verbs=update
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
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
	if !deleting && !controllerutil.ContainsFinalizer(sp, Finalizer) {
		patch := client.MergeFrom(sp.DeepCopy())
		controllerutil.AddFinalizer(sp, Finalizer)
		if err := r.p.Direct.Patch(ctx, sp, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer %s to SpiderIPPool %q: %w", Finalizer, sp.Name, err)
		}
	}
	if deleting && len(bindingsOf(sp)) == 0 {
		return ctrl.Result{}, r.removeFinalizer(ctx, sp)
	}

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
	steps, pol, err := r.plan(ctx, sp, pool, deleting, reqs, bad)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.run(ctx, sp, steps)
	next, err := r.record(ctx, sp.Name, steps, pol)
	if err != nil {
		return ctrl.Result{}, err
	}
	for i := range steps {
		r.post(sp, &steps[i])
	}
	if err := r.syncPods(ctx, next); err != nil {
		return ctrl.Result{}, err
	}
	return r.result(next, steps), nil
}

// servesRequester tells whether a pool without the EIP attribute holds an IP of a pod
// that asks for an EIP by annotation.
func (r *reconciler) servesRequester(ctx context.Context, sp *v2beta1.SpiderIPPool, reqs map[string]podRequest, bad map[string]error) bool {
	for key := range reqs {
		if r.endpointIn(ctx, key, sp.Name) {
			return true
		}
	}
	for key := range bad {
		if r.endpointIn(ctx, key, sp.Name) {
			return true
		}
	}
	return false
}

func (r *reconciler) endpointIn(ctx context.Context, key, pool string) bool {
	ns, name, _ := strings.Cut(key, "/")
	se := &v2beta1.SpiderEndpoint{}
	return r.cache.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, se) == nil && slices.Contains(ipam.EndpointPools(se), pool)
}

// policyOf is the policy of a spec; a deleted pool's EIPs follow its IPs out.
func policyOf(spec *v2beta1.EIPSpec, deleting bool) policy {
	pol := policy{spec: spec}
	if spec != nil && spec.ReleaseStrategy != nil {
		if after, keep, err := spec.ReleaseStrategy.ReclaimAfter(); err == nil {
			pol.releaseAfter, pol.keep = after, keep
		}
	}
	if deleting {
		pol.releaseAfter, pol.keep, pol.deleting = 0, false, true
	}
	return pol
}

// plan decides the next step of every IP that is held or has a binding. The policy is
// the pool's, or, for an IP whose pod asks by annotation, the pod's over the pool's; an
// EIP a pod asked for keeps the pod's strategy once the pod is gone.
func (r *reconciler) plan(ctx context.Context, sp *v2beta1.SpiderIPPool, pool ipam.Pool, deleting bool,
	reqs map[string]podRequest, bad map[string]error) ([]step, policy, error) {
	pol := policyOf(specOf(sp), deleting)
	total, err := ipam.EffectiveAddresses(pool.Subnet(), sp.Spec.IPs, sp.Spec.ExcludeIPs)
	if err != nil {
		return nil, pol, reconcile.TerminalError(err)
	}
	var static map[netip.Addr]string
	if pol.static() {
		static = staticMap(total, pol.spec.Static)
	}
	var ses v2beta1.SpiderEndpointList
	if err := r.cache.List(ctx, &ses, client.MatchingFields{sePoolIndex: sp.Name}); err != nil {
		return nil, pol, fmt.Errorf("list SpiderEndpoints of pool %q: %w", sp.Name, err)
	}
	held, doubled := holdersOf(sp, pool, ses.Items)
	for _, a := range slices.SortedFunc(maps.Keys(doubled), netip.Addr.Compare) {
		ctrl.LoggerFrom(ctx).Error(errDoubleHold, "No EIP steps for the pods of an address several SpiderEndpoints name", "ip", a, "SpiderEndpoints", doubled[a])
	}
	states := map[netip.Addr]*ipState{}
	for _, b := range bindingsOf(sp) {
		a, err := netip.ParseAddr(b.IP)
		if err != nil {
			continue
		}
		states[a] = &ipState{Binding: b.DeepCopy()}
	}
	for a, h := range held {
		s := states[a]
		if s == nil {
			s = &ipState{}
			states[a] = s
		}
		s.Held, s.Holder = true, h
	}
	now := r.clock.Now()
	facts := &accessFacts{cache: r.cache}
	refused := map[string]refusalEntry{}
	var steps []step
	for _, a := range slices.SortedFunc(maps.Keys(states), netip.Addr.Compare) {
		s := states[a]
		s.StaticID, s.Outside = static[a], !total.Contains(a)
		ipPol, requested := pol, false
		var ref *refusalEntry
		if s.Holder != nil {
			key := s.Holder.Pod.String()
			if err, ok := bad[key]; ok {
				msg := fmt.Sprintf("%v; the pool's EIP settings apply until the annotations are fixed", err)
				steps = append(steps, step{op: opNone, addr: a, st: *s, cond: v2beta1.EIPInvalidRequestReason, note: fmt.Sprintf("pod %s: %s", key, msg),
					events: []event{{pod: s.Holder, warn: true, reason: ReasonFailed, msg: msg}}})
			}
			if req, ok := reqs[key]; ok {
				spec := effectiveSpec(pol.spec, req, r.p.DefaultProvider)
				var err error
				if ref, err = r.authorize(ctx, facts, sp, a, s, req, spec); err != nil {
					steps = append(steps, step{op: opNone, addr: a, st: *s, err: err})
					continue
				}
				if ref == nil {
					ipPol, requested = policyOf(spec, deleting), true
					if req.id != "" {
						s.StaticID = req.id
					}
				} else {
					refused[key] = *ref
					steps = append(steps, step{op: opNone, addr: a, st: *s, cond: v2beta1.EIPRequestRefusedReason, refused: ref,
						note: fmt.Sprintf("pod %s: %s: %s", key, ref.reason, ref.msg)})
				}
			}
		}
		if !requested && s.Binding != nil && s.Binding.Requested {
			// The pod that asked is gone (or no longer asks): the binding follows its
			// own strategy, wanted by nobody.
			ipPol = policyOf(bindingSpec(s.Binding), deleting)
			s.Held, s.StaticID = false, ""
		}
		o := decide(*s, ipPol, now)
		if ref != nil && (o == opAllocate || o == opAdoptStatic || o == opAssociate) {
			// A refused pod gets no EIP: nothing is allocated, adopted or bound for it.
			// What is under way (unbinding, releasing) goes on.
			o = opNone
		}
		if o != opNone {
			st := step{op: o, addr: a, st: *s, pol: ipPol, requested: requested}
			if f, ok := r.lastFailure(sp.Name, a); ok && o.callsCloud() && now.Sub(f.at) < r.p.RetryInterval {
				st.err, st.waitUntil = f.err, f.at.Add(r.p.RetryInterval)
			}
			steps = append(steps, st)
		} else if ref == nil && ipPol.static() && s.Held && s.StaticID == "" && s.Holder != nil && s.Binding == nil {
			msg := fmt.Sprintf("IP %s of SpiderIPPool %s has no EIP: the pool lists %d Static EIPs for its first %d addresses; list more EIPs in spec.orbweaver.eip.static or shrink spec.ips",
				a, sp.Name, len(pol.spec.Static), len(pol.spec.Static))
			steps = append(steps, step{op: opNone, addr: a, st: *s, cond: v2beta1.EIPStaticExhaustedReason, note: msg,
				events: []event{{pod: s.Holder, warn: true, reason: ReasonNoStaticEIP, msg: msg}}})
		}
	}
	fresh := r.noteRefusals(sp.Name, refused)
	for i := range steps {
		st := &steps[i]
		if st.refused == nil || !fresh[st.st.Holder.Pod.String()] {
			continue
		}
		st.events = append(st.events, event{pod: st.st.Holder, warn: true, reason: ReasonRequestRefused, msg: fmt.Sprintf("%s: %s", st.refused.reason, st.refused.msg)})
		ctrl.LoggerFrom(ctx).Info("Refused a pod's EIP request", "Pod", klog.KRef(st.st.Holder.Pod.Namespace, st.st.Holder.Pod.Name),
			"ip", st.addr, "reason", st.refused.reason)
	}
	return steps, pol, nil
}

// errDoubleHold: two endpoints name one address of a pool in Grants mode.
var errDoubleHold = errors.New("an address with two holders")

// holdersOf returns every address of the pool that a pod holds, with the pod when it is
// known (nil: held, by no endpoint this controller can trust). In Records mode the
// pool's records say what is held (a node agent's reserve holds for no pod), and an
// endpoint is the holder only when it is the endpoint of the pod the record names: a
// stale endpoint of an earlier pod never steers an EIP. In Grants mode the endpoints
// are the records: each endpoint naming an address of the pool holds it. An address
// that two endpoints name, which the agents never write, stays held (its EIP is not
// released) but by neither, so its EIP is bound to neither pod; doubled names those
// endpoints ("namespace/name") by address.
func holdersOf(sp *v2beta1.SpiderIPPool, pool ipam.Pool, ses []v2beta1.SpiderEndpoint) (held map[netip.Addr]*holder, doubled map[netip.Addr][]string) {
	held = map[netip.Addr]*holder{}
	if sp.GrantsMode() {
		for _, h := range ipam.EndpointHolds(sp.Name, pool.Subnet(), ses) {
			name := h.Namespace + "/" + h.Name
			if prev, ok := held[h.Addr]; ok {
				if doubled == nil {
					doubled = map[netip.Addr][]string{}
				}
				if prev != nil {
					doubled[h.Addr] = []string{prev.Pod.String()}
				}
				doubled[h.Addr] = append(doubled[h.Addr], name)
				held[h.Addr] = nil
				continue
			}
			held[h.Addr] = &holder{Pod: types.NamespacedName{Namespace: h.Namespace, Name: h.Name}, UID: h.PodUID, Node: h.Node}
		}
		return held, doubled
	}
	endpoints := map[netip.Addr]*holder{}
	for i := range ses {
		se := &ses[i]
		for _, a := range ipam.EndpointAddrs(se, sp.Name) {
			// Only the endpoint of the pod the record names: a stale endpoint of an
			// earlier pod never steers an EIP.
			if o, ok := pool.Holder(a); ok && o.Pod == records.PodKey(se.Status.Current.UID) {
				endpoints[a] = &holder{Pod: types.NamespacedName{Namespace: se.Namespace, Name: se.Name}, UID: se.Status.Current.UID, Node: se.Status.Current.Node}
			}
		}
	}
	for _, o := range pool.Owners() {
		if o.IsReserve() {
			continue
		}
		for _, a := range pool.AllHeldBy(o) {
			held[a] = endpoints[a]
		}
	}
	return held, nil
}

// run makes the steps' cloud calls, each step's binding recorded before its call.
func (r *reconciler) run(ctx context.Context, sp *v2beta1.SpiderIPPool, steps []step) {
	defer r.noteFailures(sp.Name, steps)
	for i := range steps {
		s := &steps[i]
		if !s.waitUntil.IsZero() {
			continue
		}
		b := s.st.Binding
		switch s.op {
		case opAllocate:
			if b == nil {
				b = &v2beta1.EIPBinding{IP: s.addr.String(), Phase: v2beta1.EIPAllocating, Provider: s.pol.spec.Provider, Token: token(sp, s.addr, r.clock.Now()),
					Requested: s.requested}
				if s.requested {
					b.ReleaseStrategy = s.pol.spec.ReleaseStrategy
				}
			}
			s.before = b
		case opAssociate:
			nb := b.DeepCopy()
			nb.Phase, nb.Node, nb.Pod, nb.ReleaseAfter, nb.Message = v2beta1.EIPAssociating, s.st.Holder.Node, s.st.Holder.Pod.String(), nil, ""
			s.before = nb
		case opDisassociate:
			nb := b.DeepCopy()
			nb.Phase = v2beta1.EIPUnbinding
			s.before = nb
		case opRelease:
			nb := b.DeepCopy()
			nb.Phase = v2beta1.EIPReleasing
			s.before = nb
		}
	}
	// The interface is looked up before Associating is recorded, so the record names it.
	r.parallel(ctx, steps, func(ctx context.Context, s *step) {
		if s.op == opAssociate {
			nic, err := r.interfaceOf(ctx, s.before.Provider, s.addr, s.st.Holder.Node)
			if err != nil {
				s.err = err
				s.before = nil
				return
			}
			s.before.NetworkInterface = nic
		}
	})
	if err := r.writeBefore(ctx, sp.Name, steps); err != nil {
		for i := range steps {
			if steps[i].before != nil {
				steps[i].err, steps[i].before = fmt.Errorf("record the binding before the cloud call: %w", err), nil
			}
		}
	}
	r.parallel(ctx, steps, func(ctx context.Context, s *step) { r.call(ctx, sp, s) })
}

// lastFailure is the IP's last failed step, if it failed.
func (r *reconciler) lastFailure(pool string, a netip.Addr) (failure, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.failed[pool+"/"+a.String()]
	return f, ok
}

// noteFailures remembers the steps that failed and forgets those that ran well, and the
// IPs of the pool that need no step any more.
func (r *reconciler) noteFailures(pool string, steps []step) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	planned := map[string]bool{}
	for _, s := range steps {
		planned[pool+"/"+s.addr.String()] = true
	}
	for key := range r.failed {
		if strings.HasPrefix(key, pool+"/") && !planned[key] {
			delete(r.failed, key)
		}
	}
	for _, s := range steps {
		key := pool + "/" + s.addr.String()
		switch {
		case !s.waitUntil.IsZero():
		case s.err != nil:
			r.failed[key] = failure{at: now, err: s.err}
		case s.op.callsCloud():
			delete(r.failed, key)
		}
	}
}

// parallel runs f for every step that has no error yet, at most MaxConcurrentCalls at
// once.
func (r *reconciler) parallel(ctx context.Context, steps []step, f func(context.Context, *step)) {
	sem := make(chan struct{}, r.p.MaxConcurrentCalls)
	var wg sync.WaitGroup
	for i := range steps {
		if steps[i].err != nil || steps[i].op == opNone {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(s *step) {
			defer func() { <-sem; wg.Done() }()
			f(ctx, s)
		}(&steps[i])
	}
	wg.Wait()
}

// token is a new Allocate client token: unique per pool, IP and attempt, recorded
// before the call so a retry after a crash sends the same one. 32 hex characters fit
// every cloud's limit.
func token(sp *v2beta1.SpiderIPPool, a netip.Addr, now time.Time) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%s/%d", sp.UID, a, now.UnixNano())))
	return hex.EncodeToString(sum[:16])
}

func (r *reconciler) provider(name string) (eip.Provider, error) {
	if p, ok := r.p.Providers[name]; ok {
		return p, nil
	}
	if err, ok := r.p.ProviderErrors[name]; ok {
		return nil, fmt.Errorf("%w: provider %q did not start: %w", errProviderMissing, name, err)
	}
	return nil, fmt.Errorf("%w: provider %q is not configured in the controller (its --eip-%s-region flag, or the chart's eip.%s values)", errProviderMissing, name, name, name)
}

var errProviderMissing = errors.New("EIP provider not configured")

// interfaceOf finds the network interface to associate a pod's IP on: the node's
// orbweaver.io/eip-network-interface annotation when set, else the interface the cloud
// says carries the IP.
func (r *reconciler) interfaceOf(ctx context.Context, provider string, a netip.Addr, node string) (string, error) {
	n := &corev1.Node{}
	if err := r.cache.Get(ctx, client.ObjectKey{Name: node}, n); err == nil {
		if nic := n.Annotations[v2beta1.AnnoNodeEIPInterface]; nic != "" {
			return nic, nil
		}
	} else if !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("get node %q: %w", node, err)
	}
	p, err := r.provider(provider)
	if err != nil {
		return "", err
	}
	nic, err := p.InterfaceOf(ctx, a.String())
	r.metrics.call(provider, "InterfaceOf", err)
	if err != nil {
		return "", fmt.Errorf("find the network interface carrying %s on node %s: %w", a, node, err)
	}
	return nic, nil
}

// call makes one step's cloud calls and sets its result binding.
func (r *reconciler) call(ctx context.Context, sp *v2beta1.SpiderIPPool, s *step) {
	b := s.before
	if b == nil {
		b = s.st.Binding
	}
	if s.op == opSchedule || s.op == opForget || s.op == opNote {
		r.local(sp, s)
		return
	}
	name := ""
	if b != nil {
		name = b.Provider
	} else {
		name = s.pol.spec.Provider
	}
	p, err := r.provider(name)
	if err != nil {
		s.err = err
		return
	}
	observe := func(op string, err error) error { r.metrics.call(name, op, err); return err }
	describe := func(id string) (eip.Address, bool, error) {
		got, err := p.Describe(ctx, eip.Filter{IDs: []string{id}})
		if observe("Describe", err) != nil {
			return eip.Address{}, false, err
		}
		if len(got) == 0 {
			return eip.Address{}, false, nil
		}
		return got[0], true, nil
	}
	nb := b.DeepCopy()
	switch s.op {
	case opAllocate:
		spec := s.pol.spec
		req := eip.AllocateRequest{ClientToken: b.Token, Tags: map[string]string{}}
		if spec != nil {
			req.Bandwidth, req.ISP = int(ptrOr(spec.Bandwidth, 0)), spec.ISP
			req.InternetChargeType, req.InstanceChargeType = spec.InternetChargeType, spec.InstanceChargeType
			req.PublicIPPool, req.BandwidthPackage, req.ResourceGroup = spec.PublicIPPool, spec.BandwidthPackage, spec.ResourceGroup
			req.Name, req.Description = spec.Name, spec.Description
			maps.Copy(req.Tags, spec.Tags)
		}
		req.Tags[TagCluster], req.Tags[TagPool], req.Tags[TagIP] = r.p.ClusterID, sp.Name, eipTagValue(s.addr)
		if s.requested && s.st.Holder != nil {
			req.Tags[TagNamespace] = s.st.Holder.Pod.Namespace // whose request it was, for audits
		}
		got, err := p.Allocate(ctx, req)
		if s.err = observe("Allocate", err); err != nil {
			return
		}
		nb.Phase, nb.AllocationID, nb.PublicIP, nb.Message = v2beta1.EIPAllocated, got.ID, got.PublicIP, ""
		s.events = append(s.events, event{reason: ReasonAllocated, msg: fmt.Sprintf("allocated EIP %s (%s) for IP %s", got.PublicIP, got.ID, s.addr)})
	case opAdoptStatic:
		got, ok, err := describe(s.st.StaticID)
		if s.err = err; err != nil {
			return
		}
		if !ok {
			s.err = fmt.Errorf("Static EIP %s of SpiderIPPool %s: %w; fix spec.orbweaver.eip.static", s.st.StaticID, sp.Name, eip.ErrNotFound)
			return
		}
		nb = &v2beta1.EIPBinding{IP: s.addr.String(), Phase: v2beta1.EIPAllocated, Provider: name, AllocationID: got.ID, PublicIP: got.PublicIP, Static: true,
			Requested: s.requested}
	case opAssociate:
		err := p.Associate(ctx, b.AllocationID, b.NetworkInterface, s.addr.String())
		if s.err = observe("Associate", err); err != nil {
			return
		}
		r.settle(describe, s, nb)
	case opCheck:
		r.settle(describe, s, nb)
	case opDisassociate:
		err := p.Disassociate(ctx, b.AllocationID)
		if errors.Is(err, eip.ErrNotFound) {
			s.after = nil // the EIP is gone from the cloud: nothing left to bind
			s.events = append(s.events, event{warn: true, reason: ReasonFailed, msg: fmt.Sprintf("EIP %s of IP %s is gone from the cloud; the binding is dropped", b.AllocationID, s.addr)})
			return
		}
		if s.err = observe("Disassociate", err); err != nil {
			return
		}
		r.settle(describe, s, nb)
	case opRelease:
		err := p.Release(ctx, b.AllocationID)
		if errors.Is(err, eip.ErrAssociated) {
			// Bound again behind our back: unbind first, release next time.
			nb.Phase = v2beta1.EIPUnbinding
			err = p.Disassociate(ctx, b.AllocationID)
			s.err = observe("Disassociate", err)
			s.after = nb
			return
		}
		if s.err = observe("Release", err); err != nil {
			return
		}
		s.after = nil
		s.events = append(s.events, event{reason: ReasonReleased, msg: fmt.Sprintf("released EIP %s (%s) of IP %s", b.PublicIP, b.AllocationID, s.addr)})
		return
	}
	s.after = nb
}

// settle moves an Associating or Unbinding binding on when the cloud has settled it.
func (r *reconciler) settle(describe func(string) (eip.Address, bool, error), s *step, nb *v2beta1.EIPBinding) {
	got, ok, err := describe(nb.AllocationID)
	switch {
	case err != nil:
		s.err = err
	case !ok:
		s.after = nil
		s.events = append(s.events, event{warn: true, reason: ReasonFailed, msg: fmt.Sprintf("EIP %s of IP %s is gone from the cloud; the binding is dropped", nb.AllocationID, s.addr)})
		return
	case nb.Phase == v2beta1.EIPAssociating && got.State == eip.InUse && got.PrivateIP == s.addr.String():
		nb.Phase, nb.PublicIP = v2beta1.EIPBound, got.PublicIP
		if s.st.Holder != nil {
			s.events = append(s.events, event{pod: s.st.Holder, reason: ReasonBound,
				msg: fmt.Sprintf("EIP %s (%s) bound to IP %s on %s", got.PublicIP, got.ID, s.addr, nb.NetworkInterface)})
		}
	case nb.Phase == v2beta1.EIPUnbinding && got.State == eip.Available:
		nb.Phase, nb.NetworkInterface, nb.Node = v2beta1.EIPAllocated, "", ""
		s.events = append(s.events, event{reason: ReasonUnbound, msg: fmt.Sprintf("EIP %s (%s) unbound from IP %s", nb.PublicIP, nb.AllocationID, s.addr)})
	}
	s.after = nb
}

// local makes a step that needs no cloud call.
func (r *reconciler) local(sp *v2beta1.SpiderIPPool, s *step) {
	nb := s.st.Binding.DeepCopy()
	switch s.op {
	case opSchedule:
		nb.ReleaseAfter = &metav1.Time{Time: r.clock.Now().Add(s.pol.releaseAfter).Truncate(time.Second)}
	case opForget:
		s.after = nil
		return
	case opNote:
		nb.Pod = s.st.Holder.Pod.String()
	}
	s.after = nb
}

func ptrOr[T any](p *T, d T) T {
	if p == nil {
		return d
	}
	return *p
}

// eipTagValue is an IP as a tag value; clouds restrict tag characters, ":" is allowed by
// all three.
func eipTagValue(a netip.Addr) string { return a.String() }

// writeBefore records every step's before binding in one status write.
func (r *reconciler) writeBefore(ctx context.Context, name string, steps []step) error {
	changes := map[string]*v2beta1.EIPBinding{}
	for _, s := range steps {
		if s.before != nil && s.err == nil && (s.st.Binding == nil || !equality.Semantic.DeepEqual(*s.before, *s.st.Binding)) {
			changes[s.addr.String()] = s.before
		}
	}
	if len(changes) == 0 {
		return nil
	}
	_, err := r.writeStatus(ctx, name, func(sp *v2beta1.SpiderIPPool) bool {
		return applyBindings(sp, changes, nil)
	})
	return err
}

// record writes every step's result and the EIPReady condition, and returns the pool
// as written.
func (r *reconciler) record(ctx context.Context, name string, steps []step, pol policy) (*v2beta1.SpiderIPPool, error) {
	changes, gone := map[string]*v2beta1.EIPBinding{}, map[string]bool{}
	for i := range steps {
		s := &steps[i]
		key := s.addr.String()
		switch {
		case s.err != nil && (s.before != nil || s.st.Binding != nil):
			nb := s.before
			if nb == nil {
				nb = s.st.Binding
			}
			nb = nb.DeepCopy()
			nb.Message = truncate(s.err.Error(), 1024)
			changes[key] = nb
		case s.err != nil, s.op == opNone:
		case s.after == nil:
			gone[key] = true
		default:
			changes[key] = s.after
		}
	}
	var missing error
	if pol.spec != nil {
		_, missing = r.provider(pol.spec.Provider)
	}
	return r.writeStatus(ctx, name, func(sp *v2beta1.SpiderIPPool) bool {
		changed := applyBindings(sp, changes, gone)
		return setCondition(sp, readiness(sp, steps, missing), r.clock.Now()) || changed
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// applyBindings upserts and removes bindings; it reports whether anything changed.
func applyBindings(sp *v2beta1.SpiderIPPool, changes map[string]*v2beta1.EIPBinding, gone map[string]bool) bool {
	if sp.Status.Orbweaver == nil {
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
	}
	old := sp.Status.Orbweaver.EIPs
	next := make([]v2beta1.EIPBinding, 0, len(old)+len(changes))
	seen := map[string]bool{}
	for _, b := range old {
		seen[b.IP] = true
		switch {
		case gone[b.IP]:
		case changes[b.IP] != nil:
			next = append(next, *changes[b.IP])
		default:
			next = append(next, b)
		}
	}
	for ipStr, b := range changes {
		if !seen[ipStr] {
			next = append(next, *b)
		}
	}
	slices.SortFunc(next, func(a, b v2beta1.EIPBinding) int { return strings.Compare(a.IP, b.IP) })
	if equality.Semantic.DeepEqual(old, next) || len(old) == 0 && len(next) == 0 {
		return false
	}
	sp.Status.Orbweaver.EIPs = next
	return true
}

// writeStatus applies change to a fresh read of the pool and writes its status, again
// on a conflict (node agents write records into the same object).
func (r *reconciler) writeStatus(ctx context.Context, name string, change func(*v2beta1.SpiderIPPool) bool) (*v2beta1.SpiderIPPool, error) {
	var err error
	for try := 0; try < 8; try++ {
		var sp *v2beta1.SpiderIPPool
		if sp, err = r.pools.GetPool(ctx, name); err != nil {
			return nil, err
		}
		if !change(sp) {
			return sp, nil
		}
		if err = r.pools.UpdatePoolStatus(ctx, sp); err == nil {
			return sp, nil
		}
		if !errors.Is(err, ipam.ErrConflict) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("write EIP bindings of SpiderIPPool %q: %w", name, err)
}

// readiness is the pool's EIPReady condition after the steps; missing is why the
// pool's provider is unavailable, if it is.
func readiness(sp *v2beta1.SpiderIPPool, steps []step, missing error) metav1.Condition {
	c := metav1.Condition{Type: v2beta1.IPPoolEIPReadyCondition, Status: metav1.ConditionTrue, Reason: v2beta1.EIPAllBoundReason,
		Message: "every IP held by a pod has its EIP bound", ObservedGeneration: sp.Generation}
	if missing != nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v2beta1.EIPProviderMissingReason, truncate(missing.Error(), 1024)
		return c
	}
	var errs []string
	pending := 0
	for _, s := range steps {
		if s.err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s.addr, s.err))
			if c.Reason == v2beta1.EIPAllBoundReason || c.Reason == v2beta1.EIPBindingReason {
				c.Reason = reasonOf(s.err)
			}
		}

		if s.op == opNone && s.cond != "" {
			if c.Reason == v2beta1.EIPAllBoundReason || c.Reason == v2beta1.EIPBindingReason {
				c.Reason = s.cond
			}
			errs = append(errs, s.note)
		}
	}
	// sp holds the bindings as they will be written: a held IP is pending until its
	// binding is Bound, any other until it is settled.
	phase := map[string]v2beta1.EIPPhase{}
	for _, b := range bindingsOf(sp) {
		phase[b.IP] = b.Phase
		if b.Phase != v2beta1.EIPBound && b.Phase != v2beta1.EIPAllocated {
			pending++
		}
	}
	for _, s := range steps {
		if s.st.Held && s.st.Holder != nil && s.err == nil && len(s.events) == 0 && s.cond == "" && phase[s.addr.String()] == v2beta1.EIPAllocated {
			pending++
		}
	}
	switch {
	case len(errs) > 0:
		c.Status, c.Message = metav1.ConditionFalse, truncate(strings.Join(errs, "; "), 1024)
	case pending > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v2beta1.EIPBindingReason, fmt.Sprintf("%d EIP bindings in progress", pending)
	}
	return c
}

// reasonOf classifies a cloud error for the condition and the events.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, eip.ErrQuotaExceeded):
		return v2beta1.EIPQuotaExceededReason
	case errors.Is(err, eip.ErrForbidden):
		return v2beta1.EIPForbiddenReason
	case errors.Is(err, errProviderMissing):
		return v2beta1.EIPProviderMissingReason
	case errors.Is(err, eip.ErrInvalidTarget), errors.Is(err, eip.ErrNotFound) && strings.Contains(err.Error(), "network interface"):
		return v2beta1.EIPInterfaceUnknownReason
	}
	return v2beta1.EIPCloudErrorReason
}

// setCondition sets c on the pool; it reports whether anything changed.
func setCondition(sp *v2beta1.SpiderIPPool, c metav1.Condition, now time.Time) bool {
	if sp.Status.Orbweaver == nil {
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
	}
	old := meta.FindStatusCondition(sp.Status.Orbweaver.Conditions, c.Type)
	if old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message && old.ObservedGeneration == c.ObservedGeneration {
		return false
	}
	c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	meta.SetStatusCondition(&sp.Status.Orbweaver.Conditions, c)
	return true
}

// post posts a step's events, and a warning for its error.
func (r *reconciler) post(sp *v2beta1.SpiderIPPool, s *step) {
	if !s.waitUntil.IsZero() {
		return // posted when it failed
	}
	if s.err != nil {
		reason := ReasonFailed
		switch reasonOf(s.err) {
		case v2beta1.EIPQuotaExceededReason:
			reason = ReasonQuotaExceeded
		case v2beta1.EIPForbiddenReason:
			reason = ReasonForbidden
		case v2beta1.EIPProviderMissingReason:
			reason = ReasonProviderMissing
		case v2beta1.EIPInterfaceUnknownReason:
			reason = ReasonInterfaceUnknown
		}
		msg := fmt.Sprintf("EIP for IP %s (%s): %v%s", s.addr, s.op, s.err, advice(s.err))
		s.events = append(s.events, event{warn: true, reason: reason, msg: msg})
		if s.st.Holder != nil {
			s.events = append(s.events, event{pod: s.st.Holder, warn: true, reason: reason, msg: msg})
		}
	}
	for _, e := range s.events {
		kind := corev1.EventTypeNormal
		if e.warn {
			kind = corev1.EventTypeWarning
		}
		if e.pod == nil {
			r.p.Recorder.Event(sp, kind, e.reason, e.msg)
			continue
		}
		ref := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: e.pod.Pod.Namespace, Name: e.pod.Pod.Name, UID: types.UID(e.pod.UID)}}
		r.p.Recorder.Event(ref, kind, e.reason, e.msg)
	}
}

// advice is what a user can do about an error, for the event.
func advice(err error) string {
	switch {
	case errors.Is(err, eip.ErrQuotaExceeded):
		return "; raise the account's EIP quota, release unused EIPs, or lower the replicas"
	case errors.Is(err, eip.ErrForbidden):
		return "; grant the controller's credentials the permissions listed in docs/reference/eip-<provider>.md"
	case errors.Is(err, eip.ErrInvalidTarget):
		return "; the pod's IP must be a private IP of the node's network interface, or set the node annotation " + v2beta1.AnnoNodeEIPInterface
	}
	return ""
}

// result says when to look at the pool again: soon while the cloud settles a binding,
// at the earliest scheduled release, after RetryInterval on an error.
func (r *reconciler) result(sp *v2beta1.SpiderIPPool, steps []step) ctrl.Result {
	var after time.Duration
	soonest := func(d time.Duration) {
		if d > 0 && (after == 0 || d < after) {
			after = d
		}
	}
	now := r.clock.Now()
	for _, s := range steps {
		switch {
		case !s.waitUntil.IsZero():
			soonest(max(s.waitUntil.Sub(now), time.Millisecond))
		case s.err != nil:
			soonest(r.p.RetryInterval)
		case s.refused != nil && s.refused.id != "":
			// An EIP named by ID is looked at again: a pool may list it, or an
			// administrator tag it, meanwhile.
			soonest(r.p.RetryInterval)
		}
	}
	for _, b := range bindingsOf(sp) {
		if b.Phase == v2beta1.EIPBound && r.p.VerifyInterval > 0 {
			soonest(r.p.VerifyInterval)
		}
		switch b.Phase {
		case v2beta1.EIPAllocating, v2beta1.EIPAssociating, v2beta1.EIPUnbinding, v2beta1.EIPReleasing:
			soonest(r.p.PollInterval)
		}
		if b.ReleaseAfter != nil {
			// At most RetryInterval, so a clock that jumped (a resumed VM) is caught up.
			soonest(min(max(b.ReleaseAfter.Sub(now), time.Second), r.p.RetryInterval))
		}
	}
	return ctrl.Result{RequeueAfter: after}
}

// verifyDue tells whether the pool's Bound EIPs are due a check with the cloud.
func (r *reconciler) verifyDue(sp *v2beta1.SpiderIPPool) bool {
	if r.p.VerifyInterval < 0 || !slices.ContainsFunc(bindingsOf(sp), func(b v2beta1.EIPBinding) bool { return b.Phase == v2beta1.EIPBound }) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	last, ok := r.verified[sp.Name]
	if !ok { // first sight (a restart): verify now, so drift during the outage is found
		return true
	}
	return r.clock.Now().Sub(last) >= r.p.VerifyInterval
}

// verify checks every Bound EIP of the pool with the cloud, one Describe per provider:
// one no longer in use on its IP goes back to Allocated (associated again next), one
// gone from the cloud is dropped (a new one is allocated, or the Static EIP's absence
// reported). It returns the pool as written.
func (r *reconciler) verify(ctx context.Context, sp *v2beta1.SpiderIPPool) (*v2beta1.SpiderIPPool, error) {
	byProvider := map[string][]string{}
	for _, b := range bindingsOf(sp) {
		if b.Phase == v2beta1.EIPBound {
			byProvider[b.Provider] = append(byProvider[b.Provider], b.AllocationID)
		}
	}
	found := map[string]eip.Address{}
	for name, ids := range byProvider {
		p, err := r.provider(name)
		if err != nil {
			continue // reported by the condition
		}
		got, err := p.Describe(ctx, eip.Filter{IDs: ids})
		r.metrics.call(name, "Describe", err)
		if err != nil {
			return nil, fmt.Errorf("verify the EIPs of SpiderIPPool %q: %w", sp.Name, err)
		}
		for _, a := range got {
			found[a.ID] = a
		}
		for _, id := range ids {
			if _, ok := found[id]; !ok {
				found[id] = eip.Address{} // gone
			}
		}
	}
	changes, gone := map[string]*v2beta1.EIPBinding{}, map[string]bool{}
	for _, b := range bindingsOf(sp) {
		a, checked := found[b.AllocationID]
		switch {
		case b.Phase != v2beta1.EIPBound || !checked:
		case a.ID == "":
			gone[b.IP] = true
			r.p.Recorder.Eventf(sp, corev1.EventTypeWarning, ReasonFailed, "EIP %s (%s) of IP %s is gone from the cloud; the binding is dropped", b.PublicIP, b.AllocationID, b.IP)
		case a.State != eip.InUse || a.PrivateIP != b.IP || a.NetworkInterface != b.NetworkInterface:
			nb := b.DeepCopy()
			nb.Phase, nb.Message = v2beta1.EIPAllocated, fmt.Sprintf("found %s on %q/%q instead of bound to %s/%s; binding it again", a.State, a.NetworkInterface, a.PrivateIP, b.NetworkInterface, b.IP)
			changes[b.IP] = nb
			r.p.Recorder.Eventf(sp, corev1.EventTypeWarning, ReasonUnbound, "EIP %s (%s) of IP %s: %s", b.PublicIP, b.AllocationID, b.IP, nb.Message)
		}
	}
	r.mu.Lock()
	r.verified[sp.Name] = r.clock.Now()
	r.mu.Unlock()
	if len(changes) == 0 && len(gone) == 0 {
		return sp, nil
	}
	return r.writeStatus(ctx, sp.Name, func(p *v2beta1.SpiderIPPool) bool { return applyBindings(p, changes, gone) })
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
