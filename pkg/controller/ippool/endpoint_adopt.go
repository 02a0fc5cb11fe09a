package ippool

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// endpointAdopter takes SpiderPool's finalizer off the SpiderEndpoints SpiderPool wrote.
// SpiderPool's controller removes it once it has released the endpoint's addresses; with
// orbweaver in its place nobody would, and a deleted endpoint (its pod gone, or GC's
// deletion) would stay, holding its addresses, forever. orbweaver writes no finalizer on
// endpoints: the endpoint is the record, and its deletion the release.
type endpointAdopter struct {
	direct client.Client
}

// RBAC of the adopter: the endpoints watched, read fresh, and patched (the finalizer off).
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=get;list;watch;patch

// setupEndpointAdopter registers the adopter: SpiderEndpoints with SpiderPool's finalizer.
func setupEndpointAdopter(mgr ctrl.Manager, direct client.Client) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v2beta1.SpiderEndpoint{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return controllerutil.ContainsFinalizer(o, v2beta1.Finalizer)
		}))).
		Named("spiderendpoint-adopt").
		Complete(&endpointAdopter{direct: direct})
}

// Reconcile removes the finalizer, with the version read as a precondition.
func (a *endpointAdopter) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	se := &v2beta1.SpiderEndpoint{}
	if err := a.direct.Get(ctx, req.NamespacedName, se); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !controllerutil.ContainsFinalizer(se, v2beta1.Finalizer) {
		return ctrl.Result{}, nil
	}
	rest := slices.DeleteFunc(slices.Clone(se.Finalizers), func(s string) bool { return s == v2beta1.Finalizer })
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": rest, "resourceVersion": se.ResourceVersion}})
	if err != nil {
		return ctrl.Result{}, err
	}
	err = a.direct.Patch(ctx, &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: se.Namespace, Name: se.Name}}, client.RawPatch(types.MergePatchType, patch))
	switch {
	case apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	case apierrors.IsConflict(err):
		return ctrl.Result{Requeue: true}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("remove SpiderPool's finalizer from SpiderEndpoint %s/%s: %w", se.Namespace, se.Name, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Removed SpiderPool's finalizer from a SpiderEndpoint it wrote", "deleting", se.DeletionTimestamp != nil)
	return ctrl.Result{}, nil
}
