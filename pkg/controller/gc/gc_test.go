package gc

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// TestGCPodEnds: a pod that ends loses its address and its endpoint, for each way a pod
// ends; a pod stuck terminating on a Ready node keeps them when the switch for Ready
// nodes is off. A live pod beside it keeps its address throughout.
func TestGCPodEnds(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Params)
		end    func(h *harness, pod *corev1.Pod)
		// reason is the reason of the release; empty when the address stays.
		reason ipam.GCReason
	}{
		{
			name:   "force-deleted pod",
			end:    func(h *harness, pod *corev1.Pod) { h.forceDelete(pod) },
			reason: ipam.GCPodGone,
		},
		{
			name: "finished Job pod",
			end: func(h *harness, pod *corev1.Pod) {
				pod.Status.Phase = corev1.PodSucceeded
				if err := h.e.Client.Status().Update(h.ctx, pod); err != nil {
					h.t.Fatal(err)
				}
			},
			reason: ipam.GCPodFinished,
		},
		{
			name:   "stuck terminating past its grace period",
			end:    terminate,
			reason: ipam.GCTerminatingPastGrace,
		},
		{
			name:   "stuck terminating on a Ready node, switch off",
			mutate: func(p *Params) { p.Config.ReleaseTerminatingOnReadyNode = false },
			end:    terminate,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startGC(t, tt.mutate)
			node, pool := h.node(true), h.pool("")
			pod, live := h.pod("p", node, nil), h.pod("live", node, nil)
			addr, se := h.running(pod, pool, "", "")
			liveAddr, liveSE := h.running(live, pool, "", "")
			h.passes(2)
			if !h.holds(pool, addr, ownerOf(pod)) || !h.endpointExists(se) {
				t.Fatal("the running pod lost its address or endpoint")
			}

			tt.end(h, pod)
			if tt.reason != "" {
				testenv.WaitFor(t, "the address released and the endpoint deleted", func() (bool, error) {
					_, held := h.holder(pool, addr)
					return !held && !h.endpointExists(se), nil
				})
				h.passes(2)
			} else {
				// Past the grace period (1s), several passes later: still held.
				time.Sleep(time.Until(pod.DeletionTimestamp.Add(100 * time.Millisecond)))
				h.passes(3)
				if !h.holds(pool, addr, ownerOf(pod)) || !h.endpointExists(se) {
					t.Fatal("the terminating pod lost its address or endpoint with ReleaseTerminatingOnReadyNode off")
				}
			}
			if !h.holds(pool, liveAddr, ownerOf(live)) || !h.endpointExists(liveSE) {
				t.Fatal("the live pod lost its address or endpoint")
			}

			want := map[ipam.GCReason]float64{}
			if tt.reason != "" {
				want[tt.reason] = 1
			}
			h.assertCounts("released_addresses_total", h.r.metrics.released, want)
			h.assertCounts("endpoint_deletions_total", h.r.metrics.deleted, want)
			if tt.reason != "" {
				testenv.WaitFor(t, "a Normal event on the endpoint", func() (bool, error) {
					return slices.Contains(h.events(se.Namespace, string(se.UID)), "Normal "+string(tt.reason)), nil
				})
			}
		})
	}
}

// terminate deletes a pod with a grace period of 1s; with a node name set and no
// kubelet, it stays Terminating.
func terminate(h *harness, pod *corev1.Pod) {
	h.t.Helper()
	if err := h.e.Client.Delete(h.ctx, pod, client.GracePeriodSeconds(1)); err != nil {
		h.t.Fatal(err)
	}
	if err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), pod); err != nil || pod.DeletionTimestamp == nil {
		h.t.Fatalf("pod not terminating: %v", err)
	}
}

// TestGCReassignedBetweenScanAndRelease: an address GC decided to free, handed to
// another pod after the scan and before GC's write, stays with the new pod. The hook
// runs after GC's fresh read, so its write meets a conflict and GC reads again.
func TestGCReassignedBetweenScanAndRelease(t *testing.T) {
	var (
		once     sync.Once
		ready    = make(chan struct{}) // closed once the variables below are set
		hookRan  = make(chan struct{})
		h        *harness
		pool     string
		addr     netip.Addr
		newOwner records.Owner
		gone     records.Owner
	)
	h = startGC(t, func(p *Params) {
		p.beforeWrite = func(name string) {
			select {
			case <-ready:
			default:
				return
			}
			if name != pool {
				return
			}
			once.Do(func() {
				// The agent: a DEL frees the address, an ADD for another pod takes it.
				h.changePool(pool, func(p ipam.Pool) ipam.Pool {
					p, ok := p.Release(addr, gone)
					if !ok {
						t.Error("hook: the old owner no longer held the address")
					}
					p, got, err := p.Allocate([]records.Owner{newOwner}, addr)
					if err != nil || got[0] != addr {
						t.Errorf("hook: allocated %v (%v), want %s", got, err, addr)
					}
					return p
				})
				close(hookRan)
			})
		}
	})
	node := h.node(true)
	pool = h.pool("")
	old, next := h.pod("old", node, nil), h.pod("next", node, nil)
	var se *v2beta1.SpiderEndpoint
	addr, se = h.running(old, pool, "", "")
	gone, newOwner = ownerOf(old), ownerOf(next)
	close(ready)

	h.forceDelete(old)
	testenv.WaitFor(t, "the hook to run and the old endpoint to go", func() (bool, error) {
		select {
		case <-hookRan:
			return !h.endpointExists(se), nil
		default:
			return false, nil
		}
	})
	h.passes(3)
	if !h.holds(pool, addr, newOwner) {
		o, ok := h.holder(pool, addr)
		t.Fatalf("%s: held=%t by %v, want the new pod's owner %v", addr, ok, o, newOwner)
	}
	if got := value(h.r.metrics.poolWrites.WithLabelValues("conflict")); got < 1 {
		t.Errorf("pool_writes_total{result=conflict} = %v, want >= 1", got)
	}
	h.assertCounts("released_addresses_total", h.r.metrics.released, nil)
	h.assertCounts("endpoint_deletions_total", h.r.metrics.deleted, map[ipam.GCReason]float64{ipam.GCPodGone: 1})
}

// stsCase is one StatefulSet of TestGCStatefulSet: three pods with retained endpoints.
type stsCase struct {
	name string
	// poolPolicy is the pool's spec.orbweaver.reclaimPolicy, policy the endpoint's
	// annotation.
	poolPolicy, policy v2beta1.ReclaimPolicy
	st                 *appsv1.StatefulSet
	pool               string
	pods               []*corev1.Pod
	addrs              []netip.Addr
	eps                []*v2beta1.SpiderEndpoint
}

func (c *stsCase) held(h *harness, i int) bool {
	return h.holds(c.pool, c.addrs[i], ownerOf(c.pods[i])) && h.endpointExists(c.eps[i])
}

func (c *stsCase) freed(h *harness, i int) bool {
	_, ok := h.holder(c.pool, c.addrs[i])
	return !ok && !h.endpointExists(c.eps[i])
}

// TestGCStatefulSet scales StatefulSets 3 → 1 (pods 1 and 2 deleted) under each reclaim
// policy: Follow frees their addresses after GoneDelay; Never (here the pool's) keeps
// them; "10m" keeps them until the clock passes 10 minutes after they were seen gone,
// then frees them; "10m" scaled back to 3 before that keeps them for the old owners
// (the agent would rebind them to the new pods); an invalid policy keeps them with a
// warning; Reserved (the pool's) keeps them through the scale-down and the 11 minutes,
// and frees all three once the StatefulSet is deleted. Pod 0 of the Follow set is
// deleted too: its endpoint and address stay while the StatefulSet wants ordinal 0.
func TestGCStatefulSet(t *testing.T) {
	h := startGC(t, nil)
	node := h.node(true)
	cases := []*stsCase{
		{name: "follow", policy: v2beta1.ReclaimFollow},
		{name: "never", poolPolicy: v2beta1.ReclaimNever},
		{name: "expire", policy: "10m"},
		{name: "back", policy: "10m"},
		{name: "invalid", policy: "0s"},
		{name: "reserved", poolPolicy: v2beta1.ReclaimReserved},
	}
	byName := map[string]*stsCase{}
	for _, c := range cases {
		byName[c.name] = c
		c.st, c.pool = h.statefulSet(c.name, 3), h.pool(c.poolPolicy)
		for i := range 3 {
			pod := h.stsPod(c.st, i, node)
			a, se := h.running(pod, c.pool, c.name, c.policy)
			c.pods, c.addrs, c.eps = append(c.pods, pod), append(c.addrs, a), append(c.eps, se)
		}
	}
	h.passes(2)
	for _, c := range cases {
		for i := range 3 {
			if !c.held(h, i) {
				t.Fatalf("%s-%d lost its address or endpoint while running", c.name, i)
			}
		}
	}

	// Scale down: the StatefulSet controller deletes pods 2 and 1.
	for _, c := range cases {
		h.scale(c.st, 1)
		h.forceDelete(c.pods[2])
		h.forceDelete(c.pods[1])
	}
	h.forceDelete(byName["follow"].pods[0])

	follow := byName["follow"]
	testenv.WaitFor(t, "follow-1 and follow-2 freed", func() (bool, error) {
		return follow.freed(h, 1) && follow.freed(h, 2), nil
	})
	h.passes(3)
	assertHeld := func(stage string, which map[string][]int) {
		t.Helper()
		for name, ordinals := range which {
			for _, i := range ordinals {
				if !byName[name].held(h, i) {
					t.Errorf("%s: %s-%d lost its address or endpoint", stage, name, i)
				}
			}
		}
	}
	assertHeld("after scale-down", map[string][]int{
		"follow": {0}, "never": {0, 1, 2}, "expire": {0, 1, 2}, "back": {0, 1, 2}, "invalid": {0, 1, 2}, "reserved": {0, 1, 2},
	})
	if got := value(h.r.metrics.warnings); got < 1 {
		t.Errorf("warnings gauge = %v, want >= 1 for the invalid policy", got)
	}
	invalid := byName["invalid"]
	testenv.WaitFor(t, "a Warning event on invalid-1", func() (bool, error) {
		return slices.Contains(h.events(h.ns, string(invalid.eps[1].UID)), "Warning "+EventInvalidReclaimPolicy), nil
	})

	// Scale "back" up before its policy expires, then let 11 minutes pass.
	h.scale(byName["back"].st, 3)
	h.passes(2)
	h.clock.jump(11 * time.Minute)
	expire := byName["expire"]
	testenv.WaitFor(t, "expire-1 and expire-2 freed after 10m", func() (bool, error) {
		return expire.freed(h, 1) && expire.freed(h, 2), nil
	})
	h.passes(3)
	assertHeld("after 11 minutes", map[string][]int{
		"follow": {0}, "never": {0, 1, 2}, "expire": {0}, "back": {0, 1, 2}, "invalid": {0, 1, 2}, "reserved": {0, 1, 2},
	})

	// The Reserved StatefulSet is deleted, then its last pod: all three go.
	reserved := byName["reserved"]
	if err := h.e.Client.Delete(h.ctx, reserved.st); err != nil {
		t.Fatal(err)
	}
	h.forceDelete(reserved.pods[0])
	testenv.WaitFor(t, "reserved-0, -1 and -2 freed with their StatefulSet", func() (bool, error) {
		return reserved.freed(h, 0) && reserved.freed(h, 1) && reserved.freed(h, 2), nil
	})
	h.passes(2)
	assertHeld("after the Reserved StatefulSet is deleted", map[string][]int{
		"follow": {0}, "never": {0, 1, 2}, "expire": {0}, "back": {0, 1, 2}, "invalid": {0, 1, 2},
	})

	want := map[ipam.GCReason]float64{ipam.GCStatefulSetScaledDown: 2, ipam.GCReclaimExpired: 2, ipam.GCStatefulSetDeleted: 3}
	h.assertCounts("released_addresses_total", h.r.metrics.released, want)
	h.assertCounts("endpoint_deletions_total", h.r.metrics.deleted, want)
}

// TestGCStatefulSetDeleted: a StatefulSet deleted, its pods deleted after it (what
// Kubernetes' garbage collector does): their addresses are freed (policy Follow, the
// default) and their endpoints deleted.
func TestGCStatefulSetDeleted(t *testing.T) {
	h := startGC(t, nil)
	node, pool := h.node(true), h.pool("")
	st := h.statefulSet("db", 2)
	var (
		pods  []*corev1.Pod
		addrs []netip.Addr
		eps   []*v2beta1.SpiderEndpoint
	)
	for i := range 2 {
		pod := h.stsPod(st, i, node)
		a, se := h.running(pod, pool, st.Name, "")
		pods, addrs, eps = append(pods, pod), append(addrs, a), append(eps, se)
	}
	h.passes(2)

	if err := h.e.Client.Delete(h.ctx, st); err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods {
		h.forceDelete(pod)
	}
	testenv.WaitFor(t, "the addresses freed and the endpoints deleted", func() (bool, error) {
		for i := range pods {
			if _, held := h.holder(pool, addrs[i]); held || h.endpointExists(eps[i]) {
				return false, nil
			}
		}
		return true, nil
	})
	h.passes(2)
	want := map[ipam.GCReason]float64{ipam.GCStatefulSetDeleted: 2}
	h.assertCounts("released_addresses_total", h.r.metrics.released, want)
	h.assertCounts("endpoint_deletions_total", h.r.metrics.deleted, want)
}

// TestGCNodeReserve: a node's reserved addresses stay while the Node exists; once it is
// deleted its spares go back to the pool (NodeGone) and the one its agent handed to a
// pod that still runs moves to that pod. Another node's reserve is untouched.
func TestGCNodeReserve(t *testing.T) {
	h := startGC(t, nil)
	pool := h.pool("")
	gone, stays := h.node(true), h.node(false)
	spares := h.reserve(pool, gone, 4)
	kept := h.reserve(pool, stays, 2)

	// The agent on "gone" handed spares[0] to a pod: the endpoint names it, the pool
	// still records it under the node's reserve.
	pod := h.pod("handed", gone, nil)
	handed := spares[0]
	h.create(&v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: pod.Namespace, Name: pod.Name,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}},
		},
		Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{
			UID: string(pod.UID), Node: gone,
			IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(netip.PrefixFrom(handed, 24).String()), IPv4Pool: &pool}},
			Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "ctr-" + pod.Name},
		}},
	})

	h.passes(3)
	for _, a := range spares {
		if !h.holds(pool, a, records.ReserveOwner(gone)) {
			t.Fatalf("%s left the reserve of node %s, which exists", a, gone)
		}
	}

	if err := h.e.Client.Delete(h.ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: gone}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the deleted node's spares freed and the handed one moved", func() (bool, error) {
		for _, a := range spares[1:] {
			if _, held := h.holder(pool, a); held {
				return false, nil
			}
		}
		return h.holds(pool, handed, ownerOf(pod)), nil
	})
	h.passes(2)
	for _, a := range kept {
		if !h.holds(pool, a, records.ReserveOwner(stays)) {
			t.Errorf("%s left the reserve of node %s, which exists (NotReady)", a, stays)
		}
	}
	h.assertCounts("released_addresses_total", h.r.metrics.released, map[ipam.GCReason]float64{ipam.GCNodeGone: 3})
	h.assertCounts("rebound_addresses_total", h.r.metrics.rebound, map[ipam.GCReason]float64{ipam.GCNodeGone: 1})
	h.assertCounts("endpoint_deletions_total", h.r.metrics.deleted, nil)

	// GC's write counts as the agents do: the pod's address in allocatedIPCount, the
	// other node's spares apart, the rest of .10-.250 free.
	if got := h.counts(pool); got != [4]int64{1, 2, 238, 241} {
		t.Errorf("allocated/spare/free/total = %v, want [1 2 238 241]", got)
	}
}

// counts returns the stored pool's allocatedIPCount, spareIPCount, freeIPCount and
// totalIPCount (-1 when unset).
func (h *harness) counts(pool string) [4]int64 {
	h.t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := h.e.Client.Get(h.ctx, client.ObjectKey{Name: pool}, sp); err != nil {
		h.t.Fatal(err)
	}
	ob := sp.Status.Orbweaver
	if ob == nil {
		ob = &v2beta1.IPPoolOrbweaverStatus{}
	}
	return [4]int64{ptr.Deref(sp.Status.AllocatedIPCount, -1), ptr.Deref(ob.SpareIPCount, -1), ptr.Deref(ob.FreeIPCount, -1), ptr.Deref(sp.Status.TotalIPCount, -1)}
}

// TestGCGrantsPoolKeepsCounts: in a pool in Grants mode, GC still frees records left
// from before the switch, but its write keeps the counts the pool controller wrote from
// the SpiderEndpoints: it does not count the records that remain (here a node's reserve,
// not moved to grants yet).
func TestGCGrantsPoolKeepsCounts(t *testing.T) {
	h := startGC(t, nil)
	pool := h.pool("")
	orphan := h.allocate(pool, records.OwnerOf("uid-gone", "ctr-gone", "eth0"))
	kept := h.reserve(pool, h.node(true), 2)

	// The switch to Grants, and the pool controller's counts from the endpoints (none).
	controllers := [4]int64{0, 0, 241, 241}
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		sp := &v2beta1.SpiderIPPool{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKey{Name: pool}, sp); err != nil {
			return err
		}
		sp.Status.Orbweaver.Allocation = v2beta1.AllocationGrants
		sp.Status.AllocatedIPCount, sp.Status.TotalIPCount = ptr.To(controllers[0]), ptr.To(controllers[3])
		sp.Status.Orbweaver.SpareIPCount, sp.Status.Orbweaver.FreeIPCount = ptr.To(controllers[1]), ptr.To(controllers[2])
		return h.e.Client.Status().Update(h.ctx, sp)
	})
	if err != nil {
		t.Fatal(err)
	}

	testenv.WaitFor(t, "the orphan record freed", func() (bool, error) {
		_, held := h.holder(pool, orphan)
		return !held, nil
	})
	for _, a := range kept {
		if _, held := h.holder(pool, a); !held {
			t.Fatalf("%s of the live node's reserve was freed", a)
		}
	}
	h.assertCounts("released_addresses_total", h.r.metrics.released, map[ipam.GCReason]float64{ipam.GCOrphanRecord: 1})
	if got := h.counts(pool); got != controllers {
		t.Errorf("allocated/spare/free/total after GC's write = %v, want the pool controller's %v", got, controllers)
	}
}
