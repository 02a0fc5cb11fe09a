package eipbinding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
)

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
	if r.gated(pod) {
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

// gates returns the EIP readiness gates the pod declares, whose conditions the
// controller sets: orbweaver.io/eip, and with VendorAnnotations ACK's k8s.aliyun.com/eip.
func (r *reconciler) gates(pod *corev1.Pod) []corev1.PodConditionType {
	var out []corev1.PodConditionType
	for _, g := range pod.Spec.ReadinessGates {
		if (g.ConditionType == v2beta1.PodEIPConditionType || r.p.VendorAnnotations && g.ConditionType == ackEIPConditionType) &&
			!slices.Contains(out, g.ConditionType) {
			out = append(out, g.ConditionType)
		}
	}
	return out
}

// gated tells whether the pod declares an EIP readiness gate.
func (r *reconciler) gated(pod *corev1.Pod) bool { return len(r.gates(pod)) > 0 }

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
