package autopool

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// TestGrantsPoolShrinksAroundEndpoints: an auto pool in Grants mode records nothing;
// scaled down, it gives back only addresses no SpiderEndpoint holds (the webhook would
// refuse the others), and keeps the ones pods hold until their endpoints go.
func TestGrantsPoolShrinksAroundEndpoints(t *testing.T) {
	f := setup(t, Params{DefaultFlexibleIPNumber: 1})
	f.subnet("grants-v4", "10.113.0.0/24", "10.113.0.1-10.113.0.50")
	d := deployment("granted", 2, subnetAnno("grants-v4", "+1"))
	f.create(d)
	pool := f.waitPool("Deployment", "granted", sized(3))
	if got := poolIPs(t, &pool).String(); got != "10.113.0.1-10.113.0.3" {
		t.Fatalf("new pool: %s", got)
	}
	// The grant controller's switch; then each pod's ADD writes only its endpoint.
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		sp := f.get(pool.Name)
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
		return f.e.Client.Status().Update(f.ctx, sp)
	})
	if err != nil {
		t.Fatal(err)
	}
	var eps []*v2beta1.SpiderEndpoint
	for _, a := range []string{"10.113.0.2", "10.113.0.3"} {
		se := &v2beta1.SpiderEndpoint{
			ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "granted-" + a},
			Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{UID: "uid-" + a, Node: "node-a",
				IPs: []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(a + "/24"), IPv4Pool: ptr.To(pool.Name)}}}},
		}
		f.create(se)
		eps = append(eps, se)
	}

	// 2 wanted: the highest address is held, so the free one goes.
	f.update(d, func() { d.Spec.Replicas = ptr.To[int32](1) })
	pool = f.waitPool("Deployment", "granted", sized(2))
	if got := poolIPs(t, &pool).String(); got != "10.113.0.2-10.113.0.3" {
		t.Fatalf("after scaling to 1: %s, want the held addresses kept", got)
	}

	// 1 wanted: every address is held; the pool waits, and shrinks once an endpoint goes.
	f.update(d, func() { d.Spec.Replicas = ptr.To[int32](0) })
	f.waitEvent("granted", corev1.EventTypeNormal, ReasonShrinkPending, pool.Name, "keeps 1 addresses above the 1 wanted")
	if got := poolIPs(t, f.get(pool.Name)).String(); got != "10.113.0.2-10.113.0.3" {
		t.Fatalf("a shrink removed an address an endpoint holds: %s", got)
	}
	if err := f.e.Client.Delete(f.ctx, eps[1]); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	pool = f.waitPool("Deployment", "granted", sized(1))
	if got := poolIPs(t, &pool).String(); got != "10.113.0.2" {
		t.Fatalf("after the endpoint of 10.113.0.3 went: %s", got)
	}
}
