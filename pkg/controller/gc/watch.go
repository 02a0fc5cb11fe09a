package gc

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// startPass queues a pass as soon as the controller starts (after its caches sync).
func startPass() source.Source {
	return source.Func(func(_ context.Context, q queue) error {
		q.Add(passKey)
		return nil
	})
}

type watch struct {
	obj     client.Object
	handler handler.EventHandler
}

// watches are the kinds whose changes start a pass, each with the updates that matter
// to GC. Creates and deletes always do.
func watches(debounce time.Duration, kinds ipam.StatefulKinds) []watch {
	ws := []watch{
		{&corev1.Pod{}, trigger(debounce, podChanged)},
		{&corev1.Node{}, trigger(debounce, nodeChanged)},
		{&appsv1.StatefulSet{}, trigger(debounce, statefulSetChanged)},
		{&v2beta1.SpiderEndpoint{}, trigger(debounce, anyChange)},
		{&v2beta1.SpiderIPPool{}, trigger(debounce, anyChange)},
		{&v2beta1.SpiderReservedIP{}, trigger(debounce, anyChange)},
	}
	for _, k := range kinds.Extra() {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind})
		ws = append(ws, watch{u, trigger(debounce, workloadChanged)})
	}
	return ws
}

// trigger queues the pass debounce after an event. The queue holds the one key once,
// at its earliest time, so a burst of events makes one pass.
func trigger(debounce time.Duration, changed func(old, new client.Object) bool) handler.EventHandler {
	add := func(q queue) { q.AddAfter(passKey, debounce) }
	return handler.Funcs{
		CreateFunc:  func(_ context.Context, _ event.CreateEvent, q queue) { add(q) },
		DeleteFunc:  func(_ context.Context, _ event.DeleteEvent, q queue) { add(q) },
		GenericFunc: func(_ context.Context, _ event.GenericEvent, q queue) { add(q) },
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			if changed(e.ObjectOld, e.ObjectNew) {
				add(q)
			}
		},
	}
}

func anyChange(old, new client.Object) bool {
	return old.GetResourceVersion() != new.GetResourceVersion()
}

// podChanged: what GC reads of a pod.
func podChanged(old, new client.Object) bool {
	o, ok1 := old.(*corev1.Pod)
	n, ok2 := new.(*corev1.Pod)
	if !ok1 || !ok2 {
		return true
	}
	return o.Status.Phase != n.Status.Phase || o.Spec.NodeName != n.Spec.NodeName ||
		!equality.Semantic.DeepEqual(o.DeletionTimestamp, n.DeletionTimestamp) ||
		!equality.Semantic.DeepEqual(o.OwnerReferences, n.OwnerReferences)
}

// nodeChanged: a node's readiness.
func nodeChanged(old, new client.Object) bool {
	o, ok1 := old.(*corev1.Node)
	n, ok2 := new.(*corev1.Node)
	if !ok1 || !ok2 {
		return true
	}
	return nodeReady(o) != nodeReady(n)
}

// statefulSetChanged: the ordinals a StatefulSet wants, and its deletion.
func statefulSetChanged(old, new client.Object) bool {
	o, ok1 := old.(*appsv1.StatefulSet)
	n, ok2 := new.(*appsv1.StatefulSet)
	if !ok1 || !ok2 {
		return true
	}
	return !equality.Semantic.DeepEqual(o.Spec.Replicas, n.Spec.Replicas) ||
		!equality.Semantic.DeepEqual(o.Spec.Ordinals, n.Spec.Ordinals) ||
		!equality.Semantic.DeepEqual(o.DeletionTimestamp, n.DeletionTimestamp)
}

// workloadChanged: what GC reads of an added stateful kind's object (as of a
// StatefulSet: the ordinals it wants, and its deletion).
func workloadChanged(old, new client.Object) bool {
	o, ok1 := old.(*unstructured.Unstructured)
	n, ok2 := new.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return true
	}
	for _, path := range [][]string{{"spec", "replicas"}, {"spec", "ordinals"}} {
		a, _, _ := unstructured.NestedFieldNoCopy(o.Object, path...)
		b, _, _ := unstructured.NestedFieldNoCopy(n.Object, path...)
		if !equality.Semantic.DeepEqual(a, b) {
			return true
		}
	}
	return !equality.Semantic.DeepEqual(o.GetDeletionTimestamp(), n.GetDeletionTimestamp())
}
