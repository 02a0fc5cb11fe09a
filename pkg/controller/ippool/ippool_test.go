package ippool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/testmetrics"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// createPool creates an IPv4 pool without status (no webhook runs here: the finalizer is
// added by the test when it wants one) and removes it when the test ends.
func createPool(t *testing.T, e *testenv.Env, name, subnet string, finalizer bool, ips ...v2beta1.IPOrRange) *v2beta1.SpiderIPPool {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(subnet), IPs: ips},
	}
	if finalizer {
		sp.Finalizers = []string{v2beta1.Finalizer}
	}
	if err := e.Client.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.Client.Patch(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
		_ = e.Client.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
	return sp
}

func getPool(t *testing.T, e *testenv.Env, name string) *v2beta1.SpiderIPPool {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(context.Background(), client.ObjectKey{Name: name}, sp); err != nil {
		t.Fatal(err)
	}
	return sp
}

// waitPool waits until cond holds for the pool as the API server has it.
func waitPool(t *testing.T, e *testenv.Env, name, what string, cond func(sp *v2beta1.SpiderIPPool) bool) *v2beta1.SpiderIPPool {
	t.Helper()
	var sp *v2beta1.SpiderIPPool
	testenv.WaitFor(t, fmt.Sprintf("pool %s: %s", name, what), func() (bool, error) {
		sp = &v2beta1.SpiderIPPool{}
		if err := e.Client.Get(context.Background(), client.ObjectKey{Name: name}, sp); err != nil {
			return false, err
		}
		return cond(sp), nil
	})
	return sp
}

func counts(total, allocated int64) func(*v2beta1.SpiderIPPool) bool {
	return func(sp *v2beta1.SpiderIPPool) bool {
		return ptr.Deref(sp.Status.TotalIPCount, -1) == total && ptr.Deref(sp.Status.AllocatedIPCount, -1) == allocated
	}
}

// countsSpare is counts, and status.orbweaver.spareIPCount spare.
func countsSpare(total, allocated, spare int64) func(*v2beta1.SpiderIPPool) bool {
	return func(sp *v2beta1.SpiderIPPool) bool {
		return counts(total, allocated)(sp) && sp.Status.Orbweaver != nil && ptr.Deref(sp.Status.Orbweaver.SpareIPCount, -1) == spare
	}
}

func condition(sp *v2beta1.SpiderIPPool, typ string) *metav1.Condition {
	if sp.Status.Orbweaver == nil {
		return nil
	}
	return meta.FindStatusCondition(sp.Status.Orbweaver.Conditions, typ)
}

func hasCondition(typ string, status metav1.ConditionStatus, reason string) func(*v2beta1.SpiderIPPool) bool {
	return func(sp *v2beta1.SpiderIPPool) bool {
		c := condition(sp, typ)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == sp.Generation
	}
}

// agentWrite changes a pool the way a node agent does: read it from the API server,
// change its state with the allocation core, WriteStatus, and a status update with the
// resourceVersion; a conflict (the controller wrote meanwhile) means read again. It
// returns the records it wrote.
func agentWrite(t *testing.T, e *testenv.Env, name string, change func(ipam.Pool) ipam.Pool) []byte {
	t.Helper()
	ctx := context.Background()
	store := crdstore.Pools{Client: e.Client}
	for range 20 {
		sp, err := store.GetPool(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ipam.NewPool(sp, ip.Set{})
		if err != nil {
			t.Fatal(err)
		}
		if err := change(p).WriteStatus(sp); err != nil {
			t.Fatal(err)
		}
		err = store.UpdatePoolStatus(ctx, sp)
		if errors.Is(err, ipam.ErrConflict) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if sp.Status.Orbweaver == nil {
			return nil
		}
		return sp.Status.Orbweaver.Records
	}
	t.Fatalf("pool %s: 20 conflicting writes in a row", name)
	return nil
}

func allocateTo(t *testing.T, owners ...records.Owner) func(ipam.Pool) ipam.Pool {
	return func(p ipam.Pool) ipam.Pool {
		next, _, err := p.Allocate(owners, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		return next
	}
}

func releaseFrom(owners ...records.Owner) func(ipam.Pool) ipam.Pool {
	return func(p ipam.Pool) ipam.Pool {
		for _, o := range owners {
			p, _ = p.ReleaseOwner(o)
		}
		return p
	}
}

func recordsOf(sp *v2beta1.SpiderIPPool) []byte {
	if sp.Status.Orbweaver == nil {
		return nil
	}
	return sp.Status.Orbweaver.Records
}

func createReserved(t *testing.T, e *testenv.Env, name string, ips ...v2beta1.IPOrRange) *v2beta1.SpiderReservedIP {
	t.Helper()
	r := &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.ReservedIPSpec{IPVersion: ptr.To(v2beta1.IPv4), IPs: ips}}
	if err := e.Client.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), r) })
	return r
}

// TestTotalIPCountFollowsSpec: a pool created without status gets its counts and
// conditions; totalIPCount follows spec.ips and spec.excludeIPs; a SpiderReservedIP
// leaves totalIPCount alone (SpiderPool's meaning: ips minus excludeIPs) but takes
// free addresses, down to Exhausted.
func TestTotalIPCountFollowsSpec(t *testing.T) {
	e := testenv.Require(t, env)
	reg := startController(t, e)
	const name = "status-total"
	createPool(t, e, name, "10.31.0.0/24", false, "10.31.0.10-10.31.0.19")

	sp := waitPool(t, e, name, "counts 10/0 and conditions", func(sp *v2beta1.SpiderIPPool) bool {
		return counts(10, 0)(sp) &&
			hasCondition(v2beta1.IPPoolExhaustedCondition, metav1.ConditionFalse, v2beta1.IPPoolFreeAddressesReason)(sp) &&
			hasCondition(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionTrue, v2beta1.IPPoolRecordsDecodedReason)(sp)
	})
	if len(recordsOf(sp)) != 0 {
		t.Fatalf("the controller wrote records: %x", recordsOf(sp))
	}
	if v, ok := testmetrics.Value(t, reg, "orbweaver_ippool_free_addresses", map[string]string{"pool": name}); !ok || v != 10 {
		t.Fatalf("free addresses gauge = %v (present %t), want 10", v, ok)
	}

	sp.Spec.IPs = append(sp.Spec.IPs, "10.31.0.20-10.31.0.29")
	if err := e.Client.Update(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	sp = waitPool(t, e, name, "totalIPCount 20 after ips grew", counts(20, 0))

	sp.Spec.ExcludeIPs = []v2beta1.IPOrRange{"10.31.0.10"}
	if err := e.Client.Update(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	waitPool(t, e, name, "totalIPCount 19 after an exclude", counts(19, 0))

	r := createReserved(t, e, "status-total-reserved", "10.31.0.11-10.31.0.29")
	sp = waitPool(t, e, name, "Exhausted: every address reserved", hasCondition(v2beta1.IPPoolExhaustedCondition, metav1.ConditionTrue, v2beta1.IPPoolNoFreeAddressReason))
	if !counts(19, 0)(sp) {
		t.Fatalf("counts = %d/%d, want 19/0: reserved addresses are not subtracted from totalIPCount", *sp.Status.TotalIPCount, *sp.Status.AllocatedIPCount)
	}
	if c := condition(sp, v2beta1.IPPoolExhaustedCondition); !strings.Contains(c.Message, "reserved by SpiderReservedIPs") {
		t.Fatalf("Exhausted message %q does not name the reservation", c.Message)
	}
	if v, _ := testmetrics.Value(t, reg, "orbweaver_ippool_free_addresses", map[string]string{"pool": name}); v != 0 {
		t.Fatalf("free addresses gauge = %v, want 0", v)
	}

	if err := e.Client.Delete(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	waitPool(t, e, name, "not Exhausted once the reservation is gone", hasCondition(v2beta1.IPPoolExhaustedCondition, metav1.ConditionFalse, v2beta1.IPPoolFreeAddressesReason))
}

// TestAllocatedCountEqualsRecords: with records written the agent's way, every change
// (agents' writes, spec changes, a reservation, a stale count written by someone else)
// ends with allocatedIPCount equal to the number of pods' records (spareIPCount 0: no
// node reserve here), and the records are the bytes the agent wrote. Agents' writes
// keep the controller's conditions.
func TestAllocatedCountEqualsRecords(t *testing.T) {
	e := testenv.Require(t, env)
	reg := startController(t, e)
	const name = "status-records"
	createPool(t, e, name, "10.32.0.0/24", false, "10.32.0.10-10.32.0.19")
	waitPool(t, e, name, "first counts", counts(10, 0))

	pods := []records.Owner{podOwner(1), podOwner(2), podOwner(3)}
	written := agentWrite(t, e, name, allocateTo(t, pods...))
	check := func(what string, total, allocated int64) *v2beta1.SpiderIPPool {
		t.Helper()
		sp := waitPool(t, e, name, what, countsSpare(total, allocated, 0))
		if !bytes.Equal(recordsOf(sp), written) {
			t.Fatalf("%s: records changed:\n got %x\nwant %x", what, recordsOf(sp), written)
		}
		if n := ipamPool(t, sp).PodCount(); n != allocated {
			t.Fatalf("%s: %d pods' records, allocatedIPCount %d", what, n, allocated)
		}
		return sp
	}
	sp := check("3 allocated by the agent", 10, 3)

	sp.Spec.IPs = []v2beta1.IPOrRange{"10.32.0.10-10.32.0.29"}
	if err := e.Client.Update(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	check("ips grew", 20, 3)

	createReserved(t, e, "status-records-reserved", "10.32.0.25")
	testenv.WaitFor(t, "free addresses 16 after the reservation", func() (bool, error) {
		v, _ := testmetrics.Value(t, reg, "orbweaver_ippool_free_addresses", map[string]string{"pool": name})
		return v == 16, nil
	})
	check("reservation added", 20, 3)
	// The reservation narrows freeIPCount: the controller writes it.
	waitPool(t, e, name, "freeIPCount 16", func(sp *v2beta1.SpiderIPPool) bool {
		return sp.Status.Orbweaver != nil && ptr.Deref(sp.Status.Orbweaver.FreeIPCount, -1) == 16
	})

	// A count that disagrees with the records (written by an importer, a bug, a hand
	// edit) is put right from the records.
	sp = getPool(t, e, name)
	sp.Status.AllocatedIPCount = ptr.To[int64](99)
	if err := e.Client.Status().Update(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	check("stale allocatedIPCount corrected", 20, 3)

	// The agent's write keeps the conditions the controller set.
	written = agentWrite(t, e, name, releaseFrom(pods[0]))
	sp = getPool(t, e, name)
	if !counts(20, 2)(sp) || condition(sp, v2beta1.IPPoolRecordsValidCondition) == nil || condition(sp, v2beta1.IPPoolExhaustedCondition) == nil {
		t.Fatalf("after an agent's release: counts %v/%v, conditions %+v", sp.Status.TotalIPCount, sp.Status.AllocatedIPCount, sp.Status.Orbweaver)
	}
	check("release by the agent", 20, 2)
	written = agentWrite(t, e, name, releaseFrom(pods[1:]...))
	sp = check("all released", 20, 0)
	if sp.Status.Orbweaver == nil || len(sp.Status.Orbweaver.Conditions) == 0 {
		t.Fatal("conditions lost when the last record went")
	}
}

func ipamPool(t *testing.T, sp *v2beta1.SpiderIPPool) ipam.Pool {
	t.Helper()
	p, err := ipam.NewPool(sp, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExhaustedPool: a full pool shows Exhausted with a Warning event; a release clears
// it.
func TestExhaustedPool(t *testing.T) {
	e := testenv.Require(t, env)
	startController(t, e)
	const name = "status-full"
	createPool(t, e, name, "10.33.0.0/24", false, "10.33.0.10-10.33.0.12")
	waitPool(t, e, name, "first counts", counts(3, 0))

	pods := []records.Owner{podOwner(1), podOwner(2), podOwner(3)}
	agentWrite(t, e, name, allocateTo(t, pods...))
	sp := waitPool(t, e, name, "Exhausted", hasCondition(v2beta1.IPPoolExhaustedCondition, metav1.ConditionTrue, v2beta1.IPPoolNoFreeAddressReason))
	if c := condition(sp, v2beta1.IPPoolExhaustedCondition); !strings.Contains(c.Message, "all 3 usable addresses are held") {
		t.Fatalf("Exhausted message = %q", c.Message)
	}
	waitEvent(t, e, name, EventPoolExhausted)

	agentWrite(t, e, name, releaseFrom(pods[0]))
	waitPool(t, e, name, "not Exhausted after a release", hasCondition(v2beta1.IPPoolExhaustedCondition, metav1.ConditionFalse, v2beta1.IPPoolFreeAddressesReason))
}

// waitEvent waits for an event with the reason on the pool (cluster-scoped objects'
// events go to the default namespace).
func waitEvent(t *testing.T, e *testenv.Env, pool, reason string) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("event %s on pool %s", reason, pool), func() (bool, error) {
		var events corev1.EventList
		if err := e.Client.List(context.Background(), &events, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			return false, err
		}
		return slices.ContainsFunc(events.Items, func(ev corev1.Event) bool {
			return ev.InvolvedObject.Kind == "SpiderIPPool" && ev.InvolvedObject.Name == pool && ev.Reason == reason
		}), nil
	})
}

// TestDeletedPoolWaitsForRecords: a deleted pool keeps its finalizer while records
// remain, pods' and a node's reserve alike, saying how many; it goes once the last is
// released. A deleted pool that holds nothing goes at once.
func TestDeletedPoolWaitsForRecords(t *testing.T) {
	e := testenv.Require(t, env)
	reg := startController(t, e)
	ctx := context.Background()
	const name = "status-deleted"
	createPool(t, e, name, "10.34.0.0/24", true, "10.34.0.10-10.34.0.19")
	waitPool(t, e, name, "first counts", counts(10, 0))
	pods := []records.Owner{podOwner(1), podOwner(2)}
	node := records.ReserveOwner("node-a")
	agentWrite(t, e, name, func(p ipam.Pool) ipam.Pool {
		p = allocateTo(t, pods...)(p)
		p, _ = p.Reserve(node, 2, netip.Addr{})
		return p
	})
	waitPool(t, e, name, "2 allocated to pods, 2 spares", countsSpare(10, 2, 2))

	if err := e.Client.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	sp := waitPool(t, e, name, "DeletionBlocked", hasCondition(v2beta1.IPPoolDeletionBlockedCondition, metav1.ConditionTrue, v2beta1.IPPoolAddressesHeldReason))
	msg := condition(sp, v2beta1.IPPoolDeletionBlockedCondition).Message
	for _, want := range []string{"4 addresses are still held", "2 held by 2 pods", "2 in the reserve of 1 node agent"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("DeletionBlocked message %q lacks %q", msg, want)
		}
	}
	if !slices.Contains(sp.Finalizers, v2beta1.Finalizer) || sp.DeletionTimestamp == nil {
		t.Fatalf("deleted pool: finalizers %v, deletionTimestamp %v", sp.Finalizers, sp.DeletionTimestamp)
	}
	waitEvent(t, e, name, EventPoolDeletionWaiting)

	agentWrite(t, e, name, releaseFrom(pods...))
	sp = waitPool(t, e, name, "DeletionBlocked names the node reserve only", func(sp *v2beta1.SpiderIPPool) bool {
		c := condition(sp, v2beta1.IPPoolDeletionBlockedCondition)
		return c != nil && strings.Contains(c.Message, "2 addresses are still held (2 in the reserve of 1 node agent)")
	})
	if !slices.Contains(sp.Finalizers, v2beta1.Finalizer) {
		t.Fatal("finalizer removed while a node reserve holds addresses")
	}

	agentWrite(t, e, name, releaseFrom(node))
	testenv.WaitFor(t, "the pool goes once nothing is held", func() (bool, error) {
		err := e.Client.Get(ctx, client.ObjectKey{Name: name}, &v2beta1.SpiderIPPool{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	testenv.WaitFor(t, "the pool's gauges are removed", func() (bool, error) {
		_, ok := testmetrics.Value(t, reg, "orbweaver_ippool_total_addresses", map[string]string{"pool": name})
		return !ok, nil
	})

	const empty = "status-deleted-empty"
	createPool(t, e, empty, "10.34.1.0/24", true, "10.34.1.10")
	waitPool(t, e, empty, "first counts", counts(1, 0))
	if err := e.Client.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: empty}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "an empty deleted pool goes", func() (bool, error) {
		err := e.Client.Get(ctx, client.ObjectKey{Name: empty}, &v2beta1.SpiderIPPool{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	// The controller counts its write after the API server answered it, so the pool can
	// be gone a moment before the count: wait for it.
	testenv.WaitFor(t, "two finalizer writes counted", func() (bool, error) {
		v, _ := testmetrics.Value(t, reg, "orbweaver_ippool_writes_total", map[string]string{"kind": "finalizer", "result": "ok"})
		return v == 2, fmt.Errorf("finalizer writes = %v, want 2", v)
	})
}
