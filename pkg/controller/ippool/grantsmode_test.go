package ippool

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/testmetrics"
)

var nsSeq atomic.Int64

// grantsNamespace creates a namespace for a test's endpoints.
func grantsNamespace(t *testing.T, e *testenv.Env) string {
	t.Helper()
	ns := fmt.Sprintf("ippool-grants-%d", nsSeq.Add(1))
	if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// toGrants puts a pool in Grants mode, as the grant controller does: a status write of
// status.orbweaver.allocation, again on a conflict with this controller's writes.
func toGrants(t *testing.T, e *testenv.Env, name string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		sp := getPool(t, e, name)
		if sp.Status.Orbweaver == nil {
			sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
		}
		sp.Status.Orbweaver.Allocation = v2beta1.AllocationGrants
		return e.Client.Status().Update(context.Background(), sp)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hold creates the SpiderEndpoint of a pod holding addr of pool, as an agent's ADD in
// Grants mode writes it (the pool itself is not written), and deletes it when the test
// ends.
func hold(t *testing.T, e *testenv.Env, ns, pod, pool, addr string) *v2beta1.SpiderEndpoint {
	t.Helper()
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID: "uid-" + pod, Node: "node-a",
				IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(addr + "/24"), IPv4Pool: ptr.To(pool)}},
				Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "ctr-" + pod},
			},
			OwnerControllerType: "Pod", OwnerControllerName: pod,
		},
	}
	if err := e.Client.Create(context.Background(), se); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), se) })
	return se
}

func isGrants(sp *v2beta1.SpiderIPPool) bool { return sp.GrantsMode() }

func and(conds ...func(*v2beta1.SpiderIPPool) bool) func(*v2beta1.SpiderIPPool) bool {
	return func(sp *v2beta1.SpiderIPPool) bool {
		for _, c := range conds {
			if !c(sp) {
				return false
			}
		}
		return true
	}
}

// fastStatus makes the status of Grants pools follow their endpoints within 100ms.
func fastStatus(p *Params) { p.StatusInterval = 100 * time.Millisecond }

// TestGrantsPoolCountsEndpoints: a pool in Grants mode records nothing; its
// allocatedIPCount is the number of distinct addresses of it that SpiderEndpoints hold
// (another pool's endpoint counts for nothing), it follows endpoints created and
// deleted, the pool turns Exhausted when endpoints hold every address, and the
// controller's writes keep the pool in Grants mode.
func TestGrantsPoolCountsEndpoints(t *testing.T) {
	e := testenv.Require(t, env)
	startController(t, e, fastStatus)
	ns := grantsNamespace(t, e)
	const name, other = "status-grants", "status-grants-other"
	createPool(t, e, name, "10.36.0.0/24", false, "10.36.0.10-10.36.0.13")
	createPool(t, e, other, "10.36.1.0/24", false, "10.36.1.10-10.36.1.13")
	waitPool(t, e, name, "first counts", counts(4, 0))
	toGrants(t, e, name)

	a := hold(t, e, ns, "pod-a", name, "10.36.0.10")
	hold(t, e, ns, "pod-b", name, "10.36.0.11")
	hold(t, e, ns, "pod-c", name, "10.36.0.12")
	hold(t, e, ns, "pod-x", other, "10.36.1.10")
	sp := waitPool(t, e, name, "3 held by endpoints, still Grants", and(counts(4, 3), isGrants,
		hasCondition(v2beta1.IPPoolExhaustedCondition, metav1.ConditionFalse, v2beta1.IPPoolFreeAddressesReason),
		hasCondition(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionTrue, v2beta1.IPPoolRecordsDecodedReason)))
	if len(recordsOf(sp)) != 0 {
		t.Fatalf("a Grants pool got records: %x", recordsOf(sp))
	}

	hold(t, e, ns, "pod-d", name, "10.36.0.13")
	sp = waitPool(t, e, name, "Exhausted when endpoints hold every address",
		and(counts(4, 4), isGrants, hasCondition(v2beta1.IPPoolExhaustedCondition, metav1.ConditionTrue, v2beta1.IPPoolNoFreeAddressReason)))
	if c := condition(sp, v2beta1.IPPoolExhaustedCondition); !strings.Contains(c.Message, "held by pods") {
		t.Fatalf("Exhausted message = %q", c.Message)
	}
	waitEvent(t, e, name, EventPoolExhausted)

	if err := e.Client.Delete(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	waitPool(t, e, name, "3 held after an endpoint went", and(counts(4, 3), isGrants,
		hasCondition(v2beta1.IPPoolExhaustedCondition, metav1.ConditionFalse, v2beta1.IPPoolFreeAddressesReason)))
	if sp := getPool(t, e, other); ptr.Deref(sp.Status.AllocatedIPCount, -1) != 0 {
		t.Fatalf("Records pool %s: allocatedIPCount %d from an endpoint, want 0 (its records count)", other, *sp.Status.AllocatedIPCount)
	}
}

// TestGrantsPoolStatusRateLimited: however fast endpoints come, and whatever else wakes
// the pool meanwhile (other writers of the pool, here an annotation every 5th
// endpoint), a Grants pool's status is written at most once per StatusInterval (the
// default, 2s), and it ends equal to the endpoints.
func TestGrantsPoolStatusRateLimited(t *testing.T) {
	e := testenv.Require(t, env)
	reg := startController(t, e)
	ns := grantsNamespace(t, e)
	const name = "status-grants-rate"
	const n = 60
	createPool(t, e, name, "10.37.0.0/24", false, "10.37.0.10-10.37.0.99")
	waitPool(t, e, name, "first counts", counts(90, 0))
	toGrants(t, e, name)
	// The switch itself is a pool change: let its write land before counting.
	waitPool(t, e, name, "Grants mode kept", isGrants)
	time.Sleep(DefaultStatusInterval + 500*time.Millisecond)
	writes := func() float64 {
		v, _ := testmetrics.Value(t, reg, "orbweaver_ippool_writes_total", map[string]string{"kind": "status", "result": "ok"})
		return v
	}
	before := writes()

	start := time.Now()
	for i := range n {
		hold(t, e, ns, fmt.Sprintf("pod-%d", i), name, fmt.Sprintf("10.37.0.%d", 10+i))
		if i%5 == 4 {
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"test.orbweaver.io/touched":"%d"}}}`, i)
			if err := e.Client.Patch(context.Background(), &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}, client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond) // 20 ADDs a second for 3 s
	}
	waitPool(t, e, name, fmt.Sprintf("%d held", n), counts(90, n))
	elapsed := time.Since(start)
	got := writes() - before
	// One write per interval begun, plus the first one of the burst.
	limit := float64(int(elapsed/DefaultStatusInterval) + 1)
	t.Logf("%d endpoints in %v: %v status writes (at most %v)", n, elapsed.Round(time.Millisecond), got, limit)
	if got > limit || got < 1 {
		t.Fatalf("%v status writes in %v, want 1 to %v (one per %v)", got, elapsed, limit, DefaultStatusInterval)
	}
}

// TestGrantsPoolDeletionWaitsForEndpoints: a deleted Grants pool keeps its finalizer
// while endpoints hold its addresses, saying how many and by how many pods, and goes
// once the last endpoint is gone.
func TestGrantsPoolDeletionWaitsForEndpoints(t *testing.T) {
	e := testenv.Require(t, env)
	startController(t, e, fastStatus)
	ctx := context.Background()
	ns := grantsNamespace(t, e)
	const name = "status-grants-deleted"
	createPool(t, e, name, "10.38.0.0/24", true, "10.38.0.10-10.38.0.19")
	waitPool(t, e, name, "first counts", counts(10, 0))
	toGrants(t, e, name)
	a := hold(t, e, ns, "pod-a", name, "10.38.0.10")
	b := hold(t, e, ns, "pod-b", name, "10.38.0.11")
	waitPool(t, e, name, "2 held", counts(10, 2))

	if err := e.Client.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	sp := waitPool(t, e, name, "DeletionBlocked", hasCondition(v2beta1.IPPoolDeletionBlockedCondition, metav1.ConditionTrue, v2beta1.IPPoolAddressesHeldReason))
	if msg := condition(sp, v2beta1.IPPoolDeletionBlockedCondition).Message; !strings.Contains(msg, "2 addresses are still held (2 held by 2 pods)") {
		t.Fatalf("DeletionBlocked message %q", msg)
	}
	if !slices.Contains(sp.Finalizers, v2beta1.Finalizer) {
		t.Fatal("the finalizer went while endpoints hold addresses")
	}

	if err := e.Client.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	sp = waitPool(t, e, name, "1 still held", counts(10, 1))
	if !slices.Contains(sp.Finalizers, v2beta1.Finalizer) {
		t.Fatal("the finalizer went while an endpoint holds an address")
	}
	if err := e.Client.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the pool goes once no endpoint holds its addresses", func() (bool, error) {
		err := e.Client.Get(ctx, client.ObjectKey{Name: name}, &v2beta1.SpiderIPPool{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
}
