package gc

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// kruiseKind is OpenKruise's Advanced StatefulSet, the added kind of these tests.
const kruiseKind = "apps.kruise.io/v1beta1/StatefulSet"

// installKruiseCRD installs a CRD for OpenKruise's Advanced StatefulSet, as much of its
// schema as GC reads (spec.replicas), and waits until it is served.
func installKruiseCRD(t *testing.T, e *testenv.Env) {
	t.Helper()
	ctx := context.Background()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "statefulsets.apps.kruise.io"},
		"spec": map[string]any{
			"group": "apps.kruise.io", "scope": "Namespaced",
			"names": map[string]any{"plural": "statefulsets", "singular": "statefulset", "kind": "StatefulSet", "listKind": "StatefulSetList", "shortNames": []any{"asts"}},
			"versions": []any{map[string]any{
				"name": "v1beta1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
	if err := e.Client.Create(ctx, crd); err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the Advanced StatefulSet CRD served", func() (bool, error) {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: "apps.kruise.io", Version: "v1beta1", Kind: "StatefulSetList"})
		err := e.Client.List(ctx, list)
		return err == nil, err
	})
}

// kruiseSet creates an Advanced StatefulSet of replicas in the harness's namespace.
func (h *harness) kruiseSet(name string, replicas int64) *unstructured.Unstructured {
	h.t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps.kruise.io/v1beta1", "kind": "StatefulSet",
		"metadata": map[string]any{"namespace": h.ns, "name": name},
		"spec":     map[string]any{"replicas": replicas},
	}}
	h.create(u)
	return u
}

// TestGCAddedStatefulKind: with OpenKruise's Advanced StatefulSet added
// (--stateful-workload-kinds), its pods' kept endpoints are governed as a
// StatefulSet's: all three held while it wants them, pods 1 and 2 freed (policy Follow)
// once it scales to 1 and they are gone, pod 0 held though gone itself, and freed once
// the set is deleted.
func TestGCAddedStatefulKind(t *testing.T) {
	kinds, err := ipam.ParseStatefulKinds([]string{kruiseKind})
	if err != nil {
		t.Fatal(err)
	}
	installKruiseCRD(t, testenv.Require(t, env)) // before the GC starts: it checks the kind is served
	h := startGC(t, func(p *Params) { p.StatefulKinds = kinds })
	node, pool := h.node(true), h.pool("")
	set := h.kruiseSet("kdb", 3)
	c := &stsCase{name: "kdb", pool: pool}
	for i := range 3 {
		ref := metav1.OwnerReference{APIVersion: "apps.kruise.io/v1beta1", Kind: "StatefulSet", Name: "kdb", UID: set.GetUID(), Controller: ptr.To(true)}
		pod := h.pod(fmt.Sprintf("kdb-%d", i), node, &ref)
		a, se := h.running(pod, pool, "kdb", "")
		// What the agent writes on a kept endpoint of an added kind.
		patch := client.MergeFrom(se.DeepCopy())
		se.Annotations = map[string]string{ipam.AnnoOwnerAPIVersion: "apps.kruise.io/v1beta1"}
		if err := h.e.Client.Patch(h.ctx, se, patch); err != nil {
			t.Fatal(err)
		}
		c.pods, c.addrs, c.eps = append(c.pods, pod), append(c.addrs, a), append(c.eps, se)
	}
	h.passes(2)
	for i := range 3 {
		if !c.held(h, i) {
			t.Fatalf("kdb-%d lost its address or endpoint while its set wants it", i)
		}
	}

	// Scale to 1; the set's controller deletes pods 2 and 1; pod 0 goes too.
	patch := client.MergeFrom(set.DeepCopy())
	if err := unstructured.SetNestedField(set.Object, int64(1), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Client.Patch(h.ctx, set, patch); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 1, 0} {
		h.forceDelete(c.pods[i])
	}
	testenv.WaitFor(t, "kdb-1 and kdb-2 freed", func() (bool, error) {
		return c.freed(h, 1) && c.freed(h, 2), nil
	})
	h.passes(3)
	if !c.held(h, 0) {
		t.Fatal("kdb-0 lost its address or endpoint while its set still wants ordinal 0")
	}

	if err := h.e.Client.Delete(h.ctx, set); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "kdb-0 freed with its set", func() (bool, error) { return c.freed(h, 0), nil })
	want := map[ipam.GCReason]float64{ipam.GCStatefulSetScaledDown: 2, ipam.GCStatefulSetDeleted: 1}
	h.assertCounts("released_addresses_total", h.r.metrics.released, want)
}

// TestGCAddedStatefulKindNotServed: an added kind the API server does not serve stops
// the controller at start, saying what to do.
func TestGCAddedStatefulKindNotServed(t *testing.T) {
	e := testenv.Require(t, env)
	kinds, err := ipam.ParseStatefulKinds([]string{"example.com/v1/Shard"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ipam.DefaultGCConfig()
	cfg.GoneDelay = testGoneDelay
	r, err := newReconciler(Params{Config: cfg, StatefulSetRetention: true, StatefulKinds: kinds, Client: e.Client})
	if err != nil {
		t.Fatal(err)
	}
	mgr := newTestManager(t, e)
	err = r.setup(mgr)
	if err == nil || !strings.Contains(err.Error(), "example.com/v1/Shard") || !strings.Contains(err.Error(), "install its CRD") {
		t.Fatalf("setup with a kind nobody serves: %v", err)
	}
}
