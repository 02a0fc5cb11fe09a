package eipbinding

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// syncPods shows each pod of the pool its EIPs: in its SpiderEndpoint
// (status.current.orbweaver.eips, what kubectl get se prints), in the annotation
// orbweaver.io/allocated-eip, and in the readiness gate orbweaver.io/eip when the pod
// declares it. The gate turns True only once every EIP the pod should have is Bound.
func (r *reconciler) syncPods(ctx context.Context, sp *v2beta1.SpiderIPPool) error {
	var ses v2beta1.SpiderEndpointList
	if err := r.cache.List(ctx, &ses, client.MatchingFields{sePoolIndex: sp.Name}); err != nil {
		return fmt.Errorf("list SpiderEndpoints of pool %q: %w", sp.Name, err)
	}
	byIP := map[string]v2beta1.EIPBinding{}
	for _, b := range bindingsOf(sp) {
		byIP[b.IP] = b
	}
	var errs []error
	for i := range ses.Items {
		se := &ses.Items[i]
		if err := r.syncPod(ctx, sp, se, byIP); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *reconciler) syncPod(ctx context.Context, sp *v2beta1.SpiderIPPool, se *v2beta1.SpiderEndpoint, byIP map[string]v2beta1.EIPBinding) error {
	mine := ipam.EndpointAddrs(se, sp.Name)
	// The endpoint's EIPs: those of other pools as they are, this pool's from its
	// bindings, listed only while the binding is this pod's.
	var eips []v2beta1.PodEIP
	if o := se.Status.Current.Orbweaver; o != nil {
		for _, e := range o.EIPs {
			if a, err := netip.ParseAddr(e.IP); err == nil && !slices.Contains(mine, a) {
				eips = append(eips, e)
			}
		}
	}
	podName := se.Namespace + "/" + se.Name
	for _, a := range mine {
		if b, ok := byIP[a.String()]; ok && b.AllocationID != "" && b.Pod == podName &&
			(b.Phase == v2beta1.EIPBound || b.Phase == v2beta1.EIPAssociating) {
			eips = append(eips, v2beta1.PodEIP{IP: b.IP, PublicIP: b.PublicIP, AllocationID: b.AllocationID, Phase: b.Phase})
		}
	}
	slices.SortFunc(eips, func(x, y v2beta1.PodEIP) int { return strings.Compare(x.IP, y.IP) })
	var old []v2beta1.PodEIP
	if se.Status.Current.Orbweaver != nil {
		old = se.Status.Current.Orbweaver.EIPs
	}
	if !equality.Semantic.DeepEqual(old, eips) && !(len(old) == 0 && len(eips) == 0) {
		patch := client.MergeFrom(se.DeepCopy())
		if se.Status.Current.Orbweaver == nil {
			se.Status.Current.Orbweaver = &v2beta1.PodAllocationOrbweaver{}
		}
		se.Status.Current.Orbweaver.EIPs = eips
		if err := r.p.Direct.Patch(ctx, se, patch); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("record EIPs in SpiderEndpoint %s: %w", podName, err)
		}
	}

	pod := &corev1.Pod{}
	if err := r.cache.Get(ctx, client.ObjectKey{Namespace: se.Namespace, Name: se.Name}, pod); err != nil {
		return client.IgnoreNotFound(err)
	}
	if string(pod.UID) != se.Status.Current.UID || pod.DeletionTimestamp != nil {
		return nil // an endpoint kept for a StatefulSet pod not yet re-created
	}
	req, _ := parsePodRequest(pod, r.p.VendorAnnotations)
	want, bound, refused, err := r.wantedEIPs(ctx, se, eips, req)
	if err != nil {
		return err
	}
	var public []string
	for _, e := range eips {
		if e.Phase == v2beta1.EIPBound {
			public = append(public, e.PublicIP)
		}
	}
	anno := strings.Join(public, ",")
	if err := r.annotate(ctx, pod, anno); err != nil {
		return fmt.Errorf("annotate pod %s with its EIPs: %w", podName, err)
	}
	gates := r.gates(pod)
	if len(gates) == 0 {
		return nil
	}
	cond := gateCondition(want, bound, refused, anno)
	// Each gate the pod declares gets the same condition under its own type.
	var conds []corev1.PodCondition
	for _, g := range gates {
		c := cond
		c.Type = g
		if !slices.ContainsFunc(pod.Status.Conditions, func(old corev1.PodCondition) bool {
			return old.Type == c.Type && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message
		}) {
			conds = append(conds, c)
		}
	}
	if len(conds) == 0 {
		return nil
	}
	now := r.clock.Now()
	if cond.Status == corev1.ConditionTrue && slices.ContainsFunc(conds, func(c corev1.PodCondition) bool { return c.Type == gates[0] }) {
		r.metrics.bound.Observe(now.Sub(pod.CreationTimestamp.Time).Seconds())
	}
	patch := client.StrategicMergeFrom(pod.DeepCopy())
	for _, c := range conds {
		c.LastTransitionTime = metav1.NewTime(now)
		pod.Status.Conditions = slices.DeleteFunc(pod.Status.Conditions, func(old corev1.PodCondition) bool { return old.Type == c.Type })
		pod.Status.Conditions = append(pod.Status.Conditions, c)
	}
	if err := r.p.Direct.Status().Patch(ctx, pod, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("set readiness gate %s of pod %s: %w", conds[0].Type, podName, err)
	}
	return nil
}

// gateCondition is the condition of a pod's EIP readiness gates (its type left to each
// gate): want of the pod's IPs should have an EIP, bound of them have it Bound, anno
// is their public IPs; refused is the pod's refused request, if it was refused.
func gateCondition(want, bound int, refused *refusalEntry, anno string) corev1.PodCondition {
	cond := corev1.PodCondition{Status: corev1.ConditionFalse, Reason: "EIPPending",
		Message: fmt.Sprintf("%d of %d EIPs bound", bound, want)}
	switch {
	case refused != nil:
		cond.Reason, cond.Message = ReasonRequestRefused, truncate(refused.reason+": "+refused.msg, 1024)
	case want == 0:
		cond.Reason, cond.Message = "NoEIP", "no EIP is due to any of the pod's IPs: their pools have no spec.orbweaver.eip (or a Static list too short for them) and the pod asks for none by annotation"
	case bound == want:
		cond.Status, cond.Reason, cond.Message = corev1.ConditionTrue, "EIPBound", "EIP "+anno+" bound"
	}
	return cond
}

// annotate sets the pod's annotation orbweaver.io/allocated-eip to its bound public
// IPs (anno; removed when ""), and with VendorAnnotations ACK's
// k8s.aliyun.com/allocated-eipAddress the same way, in one patch when either differs.
func (r *reconciler) annotate(ctx context.Context, pod *corev1.Pod, anno string) error {
	keys := []string{v2beta1.AnnoAllocatedEIP}
	if r.p.VendorAnnotations {
		keys = append(keys, ackAllocatedEIP)
	}
	if !slices.ContainsFunc(keys, func(k string) bool { return pod.Annotations[k] != anno }) {
		return nil
	}
	patch := client.MergeFrom(pod.DeepCopy())
	for _, k := range keys {
		if anno == "" {
			delete(pod.Annotations, k)
			continue
		}
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[k] = anno
	}
	if err := r.p.Direct.Patch(ctx, pod, patch); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// wantedEIPs counts the pod's IPs that come from EIP pools and should have an EIP, and
// how many of those are bound; refused is the pod's refused request in one of its
// pools, whose IPs get no EIP.
func (r *reconciler) wantedEIPs(ctx context.Context, se *v2beta1.SpiderEndpoint, eips []v2beta1.PodEIP, req podRequest) (want, bound int, refused *refusalEntry, err error) {
	for _, name := range ipam.EndpointPools(se) {
		sp := &v2beta1.SpiderIPPool{}
		if err := r.cache.Get(ctx, client.ObjectKey{Name: name}, sp); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return 0, 0, nil, fmt.Errorf("get SpiderIPPool %q: %w", name, err)
		}
		if e, ok := r.lastRefusal(name, se.Namespace+"/"+se.Name); ok {
			refused = &e
			continue
		}
		spec := effectiveSpec(specOf(sp), req, r.p.DefaultProvider)
		if spec == nil {
			continue
		}
		for _, a := range ipam.EndpointAddrs(se, name) {
			if spec.Mode == v2beta1.EIPStatic && req.id == "" && !hasStatic(sp, a) {
				continue
			}
			want++
			if slices.ContainsFunc(eips, func(e v2beta1.PodEIP) bool { return e.IP == a.String() && e.Phase == v2beta1.EIPBound }) {
				bound++
			}
		}
	}
	return want, bound, refused, nil
}

// hasStatic tells whether a Static pool maps an EIP to a.
func hasStatic(sp *v2beta1.SpiderIPPool, a netip.Addr) bool {
	for _, b := range bindingsOf(sp) {
		if b.IP == a.String() && b.Static {
			return true
		}
	}
	return len(specOf(sp).Static) > 0 && staticIndexOK(sp, a)
}

// staticIndexOK tells whether a is among the first len(static) addresses of the pool.
func staticIndexOK(sp *v2beta1.SpiderIPPool, a netip.Addr) bool {
	_, total, err := ipam.PoolAddresses(sp)
	if err != nil {
		return false
	}
	_, ok := staticMap(total, specOf(sp).Static)[a]
	return ok
}
