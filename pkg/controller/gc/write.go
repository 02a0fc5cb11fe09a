package gc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
)

// EventInvalidReclaimPolicy is the reason of the Warning event on a SpiderEndpoint
// whose reclaim policy GC cannot read. The Normal events carry the ipam.GCReason.
const EventInvalidReclaimPolicy = "InvalidReclaimPolicy"

// write applies the plan: the releases and rebinds of each pool, then the endpoint
// deletions. Pools are independent: the failures of some are joined and the rest still
// land. An endpoint naming an address in a pool whose write failed is not deleted this
// pass, so that its releases land first (the backoff requeue retries both).
func (r *Reconciler) write(ctx context.Context, in input, plan ipam.GCPlan, reserved reservedSets) error {
	var errs []error
	failed := map[string]bool{}
	for _, name := range plannedPools(plan) {
		if err := r.writePool(ctx, in, plan, name, reserved); err != nil {
			errs = append(errs, err)
			failed[name] = true
		}
	}
	for _, d := range plan.EndpointDeletions {
		if e := in.endpoint(d.Namespace + "/" + d.Name); e != nil && slices.ContainsFunc(e.Addresses, func(a ipam.GCAddress) bool { return failed[a.Pool] }) {
			continue
		}
		if err := r.deleteEndpoint(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// plannedPools returns the pools the plan releases or rebinds in, sorted.
func plannedPools(plan ipam.GCPlan) []string {
	var names []string
	for _, r := range plan.Releases {
		names = append(names, r.Pool)
	}
	for _, r := range plan.Rebinds {
		names = append(names, r.Pool)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// writePool applies the plan to a fresh read of the pool and writes it with the read's
// resourceVersion as a precondition. On a conflict it reads and applies again: each
// decision names the owner the scan saw, so it is right on any later version, and an
// address that changed hands meanwhile is left alone. Records are never computed from
// the cached pool.
func (r *Reconciler) writePool(ctx context.Context, in input, plan ipam.GCPlan, name string, reserved reservedSets) error {
	store := crdstore.Pools{Client: r.p.Client}
	first := true
	err := cas.Retry(ctx, r.p.Backoff, ipam.IsConflict, func() error {
		sp, err := store.GetPool(ctx, name)
		if err != nil {
			return err
		}
		pool, err := ipam.NewPool(sp, reserved.of(sp))
		if err != nil {
			return err
		}
		next, released, rebound := plan.Apply(pool)
		if len(released) == 0 && len(rebound) == 0 {
			return nil // every address changed hands since the scan
		}
		if err := next.WriteStatus(sp); err != nil {
			return err
		}
		if first && r.p.beforeWrite != nil {
			r.p.beforeWrite(name)
		}
		first = false
		err = store.UpdatePoolStatus(ctx, sp)
		r.metrics.poolWrite(err)
		if err == nil {
			r.landed(ctx, in, sp, released, rebound)
		}
		return err
	})
	switch {
	case errors.Is(err, ipam.ErrPoolNotFound):
		return nil // deleted since the scan: nothing left to free
	case err != nil:
		return fmt.Errorf("gc: %w", err)
	}
	return nil
}

// landed counts, logs and posts events for the decisions one pool write carried.
func (r *Reconciler) landed(ctx context.Context, in input, sp *v2beta1.SpiderIPPool, released []ipam.GCRelease, rebound []ipam.GCRebind) {
	logger := log.FromContext(ctx)
	for _, d := range released {
		r.metrics.released.WithLabelValues(string(d.Reason)).Inc()
		kv := []any{"SpiderIPPool", klog.KObj(sp), "ip", d.Addr, "reason", d.Reason}
		if d.Pod != "" {
			kv = append(kv, "Pod", podRef(d.Pod))
		}
		if d.Node != "" {
			kv = append(kv, "node", d.Node)
		}
		logger.Info("released an address", kv...)

		msg := fmt.Sprintf("released %s back to SpiderIPPool %s", d.Addr, sp.Name)
		switch {
		case d.Reason == ipam.GCOrphanRecord:
			msg = fmt.Sprintf("released %s: no pod and no SpiderEndpoint holds it", d.Addr)
		case d.Reason == ipam.GCNodeGone && d.Node != "":
			msg = fmt.Sprintf("released %s: node %s, whose reserve held it, is gone", d.Addr, d.Node)
		case d.Reason == ipam.GCNodeGone:
			msg = fmt.Sprintf("released %s: the node whose reserve held it is gone", d.Addr)
		}
		r.event(in, sp, d.Reason, d.Pod, msg)
	}
	for _, d := range rebound {
		r.metrics.rebound.WithLabelValues(string(d.Reason)).Inc()
		kv := []any{"SpiderIPPool", klog.KObj(sp), "ip", d.Addr, "reason", d.Reason, "Pod", podRef(d.Pod)}
		if d.Node != "" {
			kv = append(kv, "node", d.Node)
		}
		logger.Info("moved an address from a deleted node's reserve to its pod", kv...)
		r.event(in, sp, d.Reason, d.Pod, fmt.Sprintf("moved %s from the reserve of deleted node %q to pod %s", d.Addr, d.Node, d.Pod))
	}
}

// event posts a Normal event: on the pod's SpiderEndpoint, or on the pool for orphan
// records and a deleted node's addresses (and when the pod has no endpoint).
func (r *Reconciler) event(in input, sp *v2beta1.SpiderIPPool, reason ipam.GCReason, pod, msg string) {
	var obj client.Object = &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: sp.Name, UID: sp.UID}}
	if reason != ipam.GCOrphanRecord && reason != ipam.GCNodeGone {
		if e := in.endpoint(pod); e != nil {
			obj = endpointObject(e.Namespace, e.Name, e.ObjectUID)
		}
	}
	r.p.Recorder.Event(obj, corev1.EventTypeNormal, string(reason), msg)
}

// deleteEndpoint deletes an endpoint if it still has the UID and resourceVersion the
// scan saw. One that is gone, or changed since (an agent rewrote it for a new pod of
// the same name), is left as it is; neither is an error.
//
// It calls the client itself rather than crdstore.Endpoints.Delete, which sends the same
// preconditions but reports NotFound as success: Kubernetes' garbage collector deletes
// a normal pod's endpoint with the pod, and the metric counts only GC's own deletions.
func (r *Reconciler) deleteEndpoint(ctx context.Context, d ipam.GCEndpointDeletion) error {
	se := endpointObject(d.Namespace, d.Name, d.ObjectUID)
	se.ResourceVersion = d.ResourceVersion
	pre := client.Preconditions{UID: &se.UID, ResourceVersion: &se.ResourceVersion}
	logger := log.FromContext(ctx).WithValues("SpiderEndpoint", klog.KObj(se), "reason", d.Reason)
	err := r.p.Client.Delete(ctx, se, pre)
	switch {
	case apierrors.IsNotFound(err):
		logger.V(1).Info("SpiderEndpoint already gone")
		return nil
	case apierrors.IsConflict(err):
		logger.Info("SpiderEndpoint changed since the scan; kept")
		return nil
	case err != nil:
		return fmt.Errorf("gc: delete SpiderEndpoint %s/%s: %w", d.Namespace, d.Name, err)
	}
	r.metrics.deleted.WithLabelValues(string(d.Reason)).Inc()
	logger.Info("deleted a SpiderEndpoint", "Pod", klog.KRef(d.Namespace, d.Name), "podUID", d.PodUID)
	r.p.Recorder.Event(se, corev1.EventTypeNormal, string(d.Reason),
		fmt.Sprintf("deleted: the addresses of pod %s (UID %s) are released", d.Name, d.PodUID))
	return nil
}

func endpointObject(namespace, name, uid string) *v2beta1.SpiderEndpoint {
	return &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID(uid)}}
}

// podRef turns the plan's "namespace/name" into a log reference.
func podRef(key string) klog.ObjectRef {
	ns, name, _ := strings.Cut(key, "/")
	return klog.KRef(ns, name)
}
