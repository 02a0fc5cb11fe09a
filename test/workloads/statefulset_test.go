package workloads

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// poolHolders counts the pool's records held by pods (not node reserves).
func poolHolders(ctx context.Context, t *testing.T, name string) int {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, sp); err != nil {
		t.Fatal(err)
	}
	p, err := ipam.NewPool(sp, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range p.Owners() {
		if !o.IsReserve() {
			n++
		}
	}
	return n
}

func ipsByName(pods []corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, p := range pods {
		out[p.Name] = p.Status.PodIP
	}
	return out
}

// TestStatefulSetScaleDownUp scales StatefulSets 3 → 1 → 3 with garbage collection
// running (GoneDelay 2 s): with reclaim policy Never pods 1 and 2 come back with their
// addresses; with Follow their addresses are released once they are gone and the pods
// come back with addresses of the pool; deleting a StatefulSet (cascade) releases its
// pods' addresses and endpoints.
func TestStatefulSetScaleDownUp(t *testing.T) {
	testenv.Require(t, env)
	ctx := context.Background()
	ns := newNamespace(t, "sts-scale")
	n1, n2 := startNode(t, "sts-scale-1"), startNode(t, "sts-scale-2")
	k := startKubelet(t, ns, n1, n2)
	startControllers(t, controllerOptions{})
	for _, name := range []string{"sts-never", "sts-follow"} {
		create(t, &v2beta1.SpiderIPPool{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       v2beta1.IPPoolSpec{Subnet: "10.246.0.0/16", IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(map[string]string{"sts-never": "10.246.1.10-10.246.1.40", "sts-follow": "10.246.2.10-10.246.2.40"}[name])}},
		})
	}
	never := statefulSet(ns, "never", 3, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-never"]}`, ipam.AnnoReclaimPolicy: "Never"})
	follow := statefulSet(ns, "follow", 3, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["sts-follow"]}`})
	create(t, never)
	create(t, follow)
	before := ipsByName(append(waitRunning(t, k, ns, 3, ofApp("never")), waitRunning(t, k, ns, 3, ofApp("follow"))...))

	scale(t, never, 1)
	scale(t, follow, 1)
	waitRunning(t, k, ns, 1, ofApp("never"))
	waitRunning(t, k, ns, 1, ofApp("follow"))
	testenv.WaitFor(t, "Follow: scaled-down pods' addresses released", func() (bool, error) {
		n := poolHolders(ctx, t, "sts-follow")
		return n == 1, fmt.Errorf("%d addresses held", n)
	})
	if n := poolHolders(ctx, t, "sts-never"); n != 3 {
		t.Fatalf("Never: %d addresses held after the scale-down, want all 3 kept", n)
	}
	for _, name := range []string{"never-1", "never-2"} {
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &v2beta1.SpiderEndpoint{}); err != nil {
			t.Fatalf("Never: endpoint %s: %v; want it kept", name, err)
		}
	}

	scale(t, never, 3)
	scale(t, follow, 3)
	after := ipsByName(append(waitRunning(t, k, ns, 3, ofApp("never")), waitRunning(t, k, ns, 3, ofApp("follow"))...))
	for _, name := range []string{"never-0", "never-1", "never-2", "follow-0"} {
		if after[name] != before[name] {
			t.Errorf("%s came back with %s, want %s", name, after[name], before[name])
		}
	}
	noSharedIPs(t, ns)
	t.Logf("3 → 1 → 3: Never kept %v; Follow got %s, %s (had %s, %s)", []string{after["never-1"], after["never-2"]}, after["follow-1"], after["follow-2"], before["follow-1"], before["follow-2"])

	// Cascade: the StatefulSet deleted, its pods go, and so do their addresses (Follow).
	if err := env.Client.Delete(ctx, follow); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the deleted StatefulSet's addresses released and endpoints deleted", func() (bool, error) {
		n := poolHolders(ctx, t, "sts-follow")
		var ses v2beta1.SpiderEndpointList
		if err := env.Client.List(ctx, &ses, client.InNamespace(ns)); err != nil {
			return false, err
		}
		left := 0
		for _, se := range ses.Items {
			if se.Status.OwnerControllerName == "follow" {
				left++
			}
		}
		return n == 0 && left == 0, fmt.Errorf("%d addresses held, %d endpoints left", n, left)
	})
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "never-0"}, &v2beta1.SpiderEndpoint{}); apierrors.IsNotFound(err) {
		t.Fatal("the other StatefulSet's endpoint went too")
	}
}
