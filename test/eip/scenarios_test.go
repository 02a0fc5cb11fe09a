package eip_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/eipbinding"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

// TestEIP runs every scenario against every cloud.
func TestEIP(t *testing.T) {
	for _, cc := range clouds {
		t.Run(cc.label, func(t *testing.T) {
			for _, sc := range []struct {
				name string
				run  func(*testing.T, cloudCase)
			}{
				{"AutoPool", autoPool},
				{"StaticPool", staticPool},
				{"StatefulSetKeepsItsEIP", statefulSetKeepsItsEIP},
				{"ReleaseStrategies", releaseStrategies},
				{"RollingUpdate", rollingUpdate},
				{"HandOverBoughtEIP", handOverBoughtEIP},
				{"CrashBetweenAllocateAndAssociate", crashBetweenAllocateAndAssociate},
				{"OrphansCollected", orphansCollected},
				{"ThrottlingStorm", throttlingStorm},
				{"QuotaExhausted", quotaExhausted},
				{"PoolDeleted", poolDeleted},
				{"StaticPoolDeleted", staticPoolDeleted},
				{"DriftRepaired", driftRepaired},
				{"PodAnnotations", podAnnotations},
				{"PodRequestsAuthorized", podRequestsAuthorized},
				{"GrantsPool", grantsPool},
				{"ACKManifests", ackManifests},
				{"EIPIDListByOrdinal", eipIDListByOrdinal},
			} {
				t.Run(sc.name, func(t *testing.T) { sc.run(t, cc) })
			}
		})
	}
}

// autoPool: a pod of an Auto pool gets an EIP, tagged with the cluster, pool and IP,
// bound on its node's interface; the pod's annotation, readiness gate and endpoint
// show it. The cloud calls of the pod start are counted.
func autoPool(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	h.stop()
	h.start(startOpts{quiet: true})
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto, Bandwidth: ptr.To[int32](20), Tags: map[string]string{"team": "probe"}})
	node := h.node()
	ops := []string{"Allocate", "InterfaceOf", "Associate", "Describe"}
	before := map[string]int{"": h.cloud.CallCount("")}
	for _, op := range ops {
		before[op] = h.cloud.CallCount(op)
	}
	pod, a := h.run("prober", node, pool, netip.Addr{}, podOpts{gate: true})
	b := h.waitBound(pool, pod, a)
	calls := h.cloud.CallCount("") - before[""]
	var per []string
	for _, op := range ops {
		per = append(per, fmt.Sprintf("%s %d", op, h.cloud.CallCount(op)-before[op]))
	}
	// The in-memory cloud counts the calls that reach it: through an SDK adapter, the
	// adapter's own lookups are counted too.
	t.Logf("%s: cloud calls for one pod start: %d (%s)", cc.label, calls, strings.Join(per, ", "))
	if calls > 12 {
		t.Errorf("%d cloud calls for one pod start, want at most 12", calls)
	}
	c := h.cloudEIP(b.AllocationID)
	for k, v := range map[string]string{eipbinding.TagCluster: h.cluster, eipbinding.TagPool: pool, eipbinding.TagIP: a.String(), "team": "probe"} {
		if c.Tags[k] != v {
			t.Errorf("EIP tag %s = %q, want %q (all: %v)", k, c.Tags[k], v, c.Tags)
		}
	}
	if b.Static || b.Token == "" || b.Pod != h.ns+"/prober" || b.Node != node {
		t.Errorf("binding %+v", b)
	}
	sp := h.getPool(pool)
	if c := meta.FindStatusCondition(sp.Status.Orbweaver.Conditions, v2beta1.IPPoolEIPReadyCondition); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("EIPReady condition %+v, want True", c)
	}
	if len(h.events(pod.Name, eipbinding.ReasonBound)) == 0 {
		t.Errorf("no %s event on the pod", eipbinding.ReasonBound)
	}
}

// grantsPool: in a pool in Grants mode, which records nothing, a pod's SpiderEndpoint
// alone makes it the holder of its IP: the pod gets an EIP bound on its node's
// interface, the pool stays in Grants mode, and once the endpoint goes the EIP
// (Follow) is released.
func grantsPool(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto})
	h.toGrants(pool)
	node := h.node()
	first, err := netip.ParseAddr(strings.Split(string(h.getPool(pool).Spec.IPs[0]), "-")[0])
	if err != nil {
		t.Fatal(err)
	}
	a := first.Next().Next()
	pod, _ := h.run("granted", node, pool, a, podOpts{gate: true})
	b := h.waitBound(pool, pod, a)
	if sp := h.getPool(pool); !sp.GrantsMode() || len(sp.Status.Orbweaver.Records) != 0 {
		t.Fatalf("pool status.orbweaver: allocation %q, %d bytes of records; want Grants, none", sp.Status.Orbweaver.Allocation, len(sp.Status.Orbweaver.Records))
	}
	h.end(pod, pool)
	testenv.WaitFor(t, "the EIP released once the endpoint is gone", func() (bool, error) {
		_, bound := h.binding(pool, a)
		return !bound && h.cloudEIP(b.AllocationID).ID == "", fmt.Errorf("binding present %t, cloud %+v", bound, h.cloudEIP(b.AllocationID))
	})
}

// staticPool: Static EIPs map to the pool's first addresses in order; a pod past the
// list gets none and an event says so; an ended pod's Static EIP is unbound, never
// released, and bound again for the next pod on that IP.
func staticPool(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	ctx := context.Background()
	var ids []string
	for i := range 2 {
		a, err := h.provider.Allocate(ctx, eip.AllocateRequest{ClientToken: fmt.Sprintf("user-%s-%d", h.ns, i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPStatic, Static: ids})
	sp := h.getPool(pool)
	first := netip.MustParsePrefix(string(sp.Spec.Subnet)).Addr().As4()
	at := func(last byte) netip.Addr { first[3] = last; return netip.AddrFrom4(first) }
	node := h.node()
	p1, a1 := h.run("s1", node, pool, at(11), podOpts{gate: true})
	p0, a0 := h.run("s0", node, pool, at(10), podOpts{})
	if b := h.waitBound(pool, p1, a1); b.AllocationID != ids[1] || !b.Static {
		t.Errorf("the second address got %+v, want Static %s", b, ids[1])
	}
	if b := h.waitBound(pool, p0, a0); b.AllocationID != ids[0] {
		t.Errorf("the first address got %+v, want %s", b, ids[0])
	}
	p2, _ := h.run("s2", node, pool, at(12), podOpts{gate: true})
	testenv.WaitFor(t, "an event on the pod past the Static list", func() (bool, error) {
		return len(h.events(p2.Name, eipbinding.ReasonNoStaticEIP)) > 0, nil
	})
	h.end(p1, pool)
	testenv.WaitFor(t, "the ended pod's Static EIP unbound", func() (bool, error) {
		b, ok := h.binding(pool, a1)
		return ok && b.Phase == v2beta1.EIPAllocated && h.cloudEIP(ids[1]).State == eip.Available, fmt.Errorf("binding %+v", b)
	})
	p3, a3 := h.run("s3", node, pool, a1, podOpts{})
	if b := h.waitBound(pool, p3, a3); b.AllocationID != ids[1] {
		t.Errorf("the next pod on %s got %s, want the same Static EIP %s", a3, b.AllocationID, ids[1])
	}
	if got := h.cloud.CallCount("Release"); got != 0 {
		t.Errorf("%d Release calls on a Static pool, want 0", got)
	}
}

// statefulSetKeepsItsEIP: a StatefulSet pod deleted and re-created keeps its IP and so
// its EIP, with no new allocation; moved to another node, the same EIP is rebound on
// the new node's interface.
func statefulSetKeepsItsEIP(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto, ReleaseStrategy: ptr.To(v2beta1.ReclaimPolicy("10m"))})
	n1, n2 := h.node(), h.node()
	pod, a := h.run("db-0", n1, pool, netip.Addr{}, podOpts{gate: true})
	first := h.waitBound(pool, pod, a)
	allocs := h.cloud.CallCount("Allocate")

	h.deletePod(pod)
	pod = h.rerun(pod, n1, pool, a, podOpts{gate: true})
	if b := h.waitBound(pool, pod, a); b.AllocationID != first.AllocationID {
		t.Fatalf("re-created on the same node: EIP %s, want %s", b.AllocationID, first.AllocationID)
	}
	h.deletePod(pod)
	pod = h.rerun(pod, n2, pool, a, podOpts{gate: true})
	b := h.waitBound(pool, pod, a)
	if b.AllocationID != first.AllocationID || b.NetworkInterface != nicOf(n2) {
		t.Fatalf("moved to %s: binding %+v, want EIP %s on %s", n2, b, first.AllocationID, nicOf(n2))
	}
	if got := h.cloud.CallCount("Allocate"); got != allocs {
		t.Errorf("%d more Allocate calls across restarts, want 0", got-allocs)
	}
}

// releaseStrategies: Follow releases with the IP; Never keeps the EIP for the next pod
// on the IP; a duration keeps it until the (injected) clock passes it.
func releaseStrategies(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	node := h.node()
	for _, tt := range []struct {
		strategy v2beta1.ReclaimPolicy
		jump     time.Duration
	}{{v2beta1.ReclaimFollow, 0}, {v2beta1.ReclaimNever, 0}, {"10m", 10 * time.Minute}} {
		pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto, ReleaseStrategy: ptr.To(tt.strategy)})
		pod, a := h.run("r-"+strings.ToLower(string(tt.strategy)), node, pool, netip.Addr{}, podOpts{})
		b := h.waitBound(pool, pod, a)
		h.end(pod, pool)
		switch tt.strategy {
		case v2beta1.ReclaimFollow:
			testenv.WaitFor(t, "Follow: the EIP released", func() (bool, error) {
				_, ok := h.binding(pool, a)
				return !ok && h.cloudEIP(b.AllocationID).ID == "", nil
			})
		case v2beta1.ReclaimNever:
			testenv.WaitFor(t, "Never: the EIP unbound and kept", func() (bool, error) {
				got, ok := h.binding(pool, a)
				return ok && got.Phase == v2beta1.EIPAllocated && got.ReleaseAfter == nil, nil
			})
			time.Sleep(500 * time.Millisecond) // a few reconciles: nothing more happens
			if h.cloudEIP(b.AllocationID).ID == "" {
				t.Fatal("Never: the EIP was released")
			}
			next, a2 := h.run("r-never-2", node, pool, a, podOpts{})
			if got := h.waitBound(pool, next, a2); got.AllocationID != b.AllocationID {
				t.Fatalf("Never: the next pod on %s got %s, want the kept %s", a, got.AllocationID, b.AllocationID)
			}
		default:
			testenv.WaitFor(t, "a duration: the release scheduled", func() (bool, error) {
				got, ok := h.binding(pool, a)
				return ok && got.ReleaseAfter != nil, nil
			})
			time.Sleep(500 * time.Millisecond)
			if h.cloudEIP(b.AllocationID).ID == "" {
				t.Fatal("a duration: released before it passed")
			}
			h.clock.jump(tt.jump)
			testenv.WaitFor(t, "a duration: released once it passed", func() (bool, error) {
				_, ok := h.binding(pool, a)
				return !ok && h.cloudEIP(b.AllocationID).ID == "", nil
			})
		}
	}
}

// rollingUpdate: a Deployment's new pod lands on a spare IP with its own EIP while the
// old pod keeps its own; no EIP is ever on two pods, and the new pod's readiness gate
// is not True before its EIP is bound.
func rollingUpdate(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	// Associations take 300ms, so the gate can be seen False first, on every cloud.
	h.stop()
	h.start(startOpts{wrap: func(p eip.Provider) eip.Provider { return slowAssociate{p} }})
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto})
	node := h.node()
	checked := h.checkOneEIPOnePod()
	old := make([]*corev1.Pod, 2)
	oldIP := make([]netip.Addr, 2)
	for i := range old {
		old[i], oldIP[i] = h.run(fmt.Sprintf("web-old-%d", i), node, pool, netip.Addr{}, podOpts{gate: true})
	}
	for i := range old {
		h.waitBound(pool, old[i], oldIP[i])
	}
	for i := range old { // maxSurge 1: one new pod, then one old pod goes
		name := fmt.Sprintf("web-new-%d", i)
		history := h.gateHistory(name)
		np, na := h.run(name, node, pool, netip.Addr{}, podOpts{gate: true})
		testenv.WaitFor(t, "the new pod's gate reported False while its EIP binds", func() (bool, error) {
			s := history()
			if len(s) > 0 && s[0] == corev1.ConditionTrue {
				return false, errors.New("True before False was seen")
			}
			return len(s) > 0 && s[0] == corev1.ConditionFalse, nil
		})
		h.waitBound(pool, np, na)
		h.end(old[i], pool)
	}
	checked()
}

// checkOneEIPOnePod checks, every 20ms until the returned function is called, that no
// EIP of the cluster is on two private IPs and no EIP on two pods' allocated-EIP
// annotations; that function reports what it saw as test errors.
func (h *harness) checkOneEIPOnePod() func() {
	var stop atomic.Bool
	violations := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			seen := map[string]string{}
			for _, a := range h.ofCluster() {
				if a.State == eip.Available {
					continue
				}
				if other, ok := seen[a.PrivateIP]; ok {
					violations <- fmt.Sprintf("private IP %s has EIPs %s and %s", a.PrivateIP, other, a.ID)
				}
				seen[a.PrivateIP] = a.ID
			}
			var pods corev1.PodList
			if err := h.e.Client.List(h.ctx, &pods, client.InNamespace(h.ns)); err == nil {
				owner := map[string]string{}
				for _, p := range pods.Items {
					if e := p.Annotations[v2beta1.AnnoAllocatedEIP]; e != "" {
						if other, ok := owner[e]; ok {
							violations <- fmt.Sprintf("EIP %s on pods %s and %s", e, other, p.Name)
						}
						owner[e] = p.Name
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() {
		h.t.Helper()
		stop.Store(true)
		<-done
		close(violations)
		for v := range violations {
			h.t.Error(v)
		}
	}
}

// handOverBoughtEIP is seed 000's fix A: a one-replica Deployment whose pod names one
// pre-bought EIP (orbweaver.io/eip-id) rolls without Recreate. The surge pod is refused
// while the old pod holds the EIP (its gate False, never the EIP on two pods), and once
// the old pod is gone the EIP moves to it and its gate turns True.
func handOverBoughtEIP(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	h.allowRequests(h.ns)
	bought, err := h.provider.Allocate(h.ctx, eip.AllocateRequest{ClientToken: "handover-" + h.ns,
		Tags: map[string]string{eipbinding.TagCluster: h.cluster, eipbinding.TagNamespace: h.ns}})
	if err != nil {
		t.Fatal(err)
	}
	pool := h.poolOf(nil)
	node := h.node()
	ann := map[string]string{v2beta1.AnnoEIPID: bought.ID, v2beta1.AnnoEIPProvider: cc.name}
	checked := h.checkOneEIPOnePod()
	old, oldIP := h.run("app-6d8f-old", node, pool, netip.Addr{}, podOpts{gate: true, annotations: ann})
	if b := h.waitBound(pool, old, oldIP); b.AllocationID != bought.ID {
		t.Fatalf("old pod bound %s, want %s", b.AllocationID, bought.ID)
	}
	history := h.gateHistory("app-6d8f-new")
	np, na := h.run("app-6d8f-new", node, pool, netip.Addr{}, podOpts{gate: true, annotations: ann})
	testenv.WaitFor(t, "the new pod's gate False while the old pod holds the EIP", func() (bool, error) {
		return gate(h.getPod(np)) == corev1.ConditionFalse, nil
	})
	time.Sleep(time.Second) // several reconciles and retries: still the old pod's
	if b, ok := h.binding(pool, na); ok && b.AllocationID != "" {
		t.Fatalf("the new pod got binding %+v while the old pod holds %s", b, bought.ID)
	}
	h.end(old, pool)
	if b := h.waitBound(pool, np, na); b.AllocationID != bought.ID {
		t.Fatalf("after the old pod went the new one bound %s, want %s", b.AllocationID, bought.ID)
	}
	testenv.WaitFor(t, "the new pod's gate True", func() (bool, error) {
		return gate(h.getPod(np)) == corev1.ConditionTrue, nil
	})
	if s := history(); len(s) == 0 || s[0] != corev1.ConditionFalse {
		t.Errorf("the new pod's gate went %v, want False first", s)
	}
	checked()
}

// slowAssociate makes every association take 300ms.
type slowAssociate struct{ eip.Provider }

func (s slowAssociate) Associate(ctx context.Context, id, nic, privateIP string) error {
	time.Sleep(300 * time.Millisecond)
	return s.Provider.Associate(ctx, id, nic, privateIP)
}

// crashBetweenAllocateAndAssociate: the controller stops after the cloud allocated an
// EIP but before the ID was recorded; the next controller resumes with the recorded
// token and gets the same EIP: no duplicate, and nothing for the orphan collector.
func crashBetweenAllocateAndAssociate(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	h.stop()
	allocated := make(chan struct{})
	h.start(startOpts{wrap: func(p eip.Provider) eip.Provider { return &crashAfterAllocate{Provider: p, allocated: allocated} }})
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto})
	node := h.node()
	pod, a := h.run("c1", node, pool, netip.Addr{}, podOpts{})
	select {
	case <-allocated:
	case <-time.After(30 * time.Second):
		t.Fatal("the controller never called Allocate")
	}
	h.stop() // "killed": the Allocate's answer is lost
	b, ok := h.binding(pool, a)
	if !ok || b.Phase != v2beta1.EIPAllocating || b.Token == "" {
		t.Fatalf("after the crash the binding is %+v, want Allocating with its token", b)
	}
	if n := len(h.ofCluster()); n != 1 {
		t.Fatalf("the cloud has %d EIPs for the cluster, want the 1 allocated before the crash", n)
	}
	h.start(startOpts{})
	got := h.waitBound(pool, pod, a)
	if all := h.ofCluster(); len(all) != 1 || all[0].ID != got.AllocationID {
		t.Fatalf("after the restart the cloud has %+v, want only %s", all, got.AllocationID)
	}
	time.Sleep(time.Second) // more than two orphan passes
	if h.cloudEIP(got.AllocationID).State != eip.InUse {
		t.Fatal("the orphan collector took a tracked EIP")
	}
}

// crashAfterAllocate lets Allocate reach the cloud, then blocks until the controller is
// stopped: its answer is never recorded.
type crashAfterAllocate struct {
	eip.Provider
	allocated chan struct{}
	once      atomic.Bool
}

func (c *crashAfterAllocate) Allocate(ctx context.Context, req eip.AllocateRequest) (eip.Address, error) {
	a, err := c.Provider.Allocate(ctx, req)
	if err == nil && c.once.CompareAndSwap(false, true) {
		close(c.allocated)
	}
	<-ctx.Done()
	return a, ctx.Err()
}

// orphansCollected: EIPs tagged for the cluster that no pool tracks (an uninstall, a
// lost write) are released, bound or not, and other clusters' and untagged EIPs are
// left alone.
func orphansCollected(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	ctx := context.Background()
	mk := func(tok string, tags map[string]string) eip.Address {
		a, err := h.provider.Allocate(ctx, eip.AllocateRequest{ClientToken: tok + "-" + h.ns, Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	free := mk("orphan-free", map[string]string{eipbinding.TagCluster: h.cluster, eipbinding.TagPool: "gone", eipbinding.TagIP: "10.9.9.9"})
	bound := mk("orphan-bound", map[string]string{eipbinding.TagCluster: h.cluster, eipbinding.TagPool: "gone", eipbinding.TagIP: "10.9.9.8"})
	h.cloud.Place("eni-x", "10.9.9.8")
	if err := h.provider.Associate(ctx, bound.ID, "eni-x", "10.9.9.8"); err != nil {
		t.Fatal(err)
	}
	foreign := mk("foreign", map[string]string{eipbinding.TagCluster: "another-cluster"})
	user := mk("user", nil)
	testenv.WaitFor(t, "the orphans released", func() (bool, error) {
		return h.cloudEIP(free.ID).ID == "" && h.cloudEIP(bound.ID).ID == "", nil
	})
	if h.cloudEIP(foreign.ID).ID == "" || h.cloudEIP(user.ID).ID == "" {
		t.Fatal("the collector released an EIP of another cluster or a user's")
	}
}

// throttlingStorm: with every third cloud call throttled, ten pods still all get their
// EIPs, and no IP has two.
func throttlingStorm(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto})
	node := h.node()
	h.cloud.SetFaults(eiptest.Faults{ThrottleEvery: 3})
	type started struct {
		pod *corev1.Pod
		a   netip.Addr
	}
	var pods []started
	for i := range 10 {
		p, a := h.run(fmt.Sprintf("storm-%d", i), node, pool, netip.Addr{}, podOpts{gate: true})
		pods = append(pods, started{p, a})
	}
	for _, s := range pods {
		h.waitBound(pool, s.pod, s.a)
	}
	h.cloud.SetFaults(eiptest.Faults{})
	if n := len(h.ofCluster()); n != 10 {
		t.Fatalf("%d EIPs for 10 pods after the storm", n)
	}
}

// quotaExhausted: past the account's quota a pod gets no EIP, an event says why and what
// to change, and the pool's EIPReady condition says QuotaExceeded; raising the quota
// binds it.
func quotaExhausted(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto})
	node := h.node()
	h.cloud.SetFaults(eiptest.Faults{Quota: 1})
	p1, a1 := h.run("q1", node, pool, netip.Addr{}, podOpts{})
	h.waitBound(pool, p1, a1)
	p2, a2 := h.run("q2", node, pool, netip.Addr{}, podOpts{gate: true})
	testenv.WaitFor(t, "a quota event on the pod and the pool's condition", func() (bool, error) {
		c := meta.FindStatusCondition(ptr.Deref(h.getPool(pool).Status.Orbweaver, v2beta1.IPPoolOrbweaverStatus{}).Conditions, v2beta1.IPPoolEIPReadyCondition)
		return len(h.events(p2.Name, eipbinding.ReasonQuotaExceeded)) > 0 && c != nil && c.Reason == v2beta1.EIPQuotaExceededReason, fmt.Errorf("condition %+v", c)
	})
	if e := h.events(p2.Name, eipbinding.ReasonQuotaExceeded)[0]; e.Type != corev1.EventTypeWarning {
		t.Errorf("quota event %+v, want a warning", e)
	}
	h.cloud.SetFaults(eiptest.Faults{})
	h.waitBound(pool, p2, a2)
}

// poolDeleted: deleting a pool releases its Auto EIPs (whatever the strategy) once its
// IPs are free, and only then does the pool go.
func poolDeleted(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto, ReleaseStrategy: ptr.To(v2beta1.ReclaimNever)})
	node := h.node()
	pod, a := h.run("d1", node, pool, netip.Addr{}, podOpts{})
	b := h.waitBound(pool, pod, a)
	if err := h.e.Client.Delete(h.ctx, h.getPool(pool)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if h.cloudEIP(b.AllocationID).State != eip.InUse {
		t.Fatal("the EIP of a held IP went while its pool was being deleted")
	}
	h.end(pod, pool)
	testenv.WaitFor(t, "the pool gone and its EIP released", func() (bool, error) {
		err := h.e.Client.Get(h.ctx, client.ObjectKey{Name: pool}, &v2beta1.SpiderIPPool{})
		return client.IgnoreNotFound(err) == nil && err != nil && h.cloudEIP(b.AllocationID).ID == "", err
	})
}

// staticPoolDeleted: a deleted Static pool goes once its IPs are free, and its EIPs,
// which orbweaver never releases, stay in the cloud, unbound.
func staticPoolDeleted(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	a, err := h.provider.Allocate(context.Background(), eip.AllocateRequest{ClientToken: "user-static-" + h.ns})
	if err != nil {
		t.Fatal(err)
	}
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPStatic, Static: []string{a.ID}})
	pod, ip := h.run("sd", h.node(), pool, netip.Addr{}, podOpts{})
	h.waitBound(pool, pod, ip)
	if err := h.e.Client.Delete(h.ctx, h.getPool(pool)); err != nil {
		t.Fatal(err)
	}
	h.end(pod, pool)
	testenv.WaitFor(t, "the Static pool gone, its EIP unbound and kept", func() (bool, error) {
		err := h.e.Client.Get(h.ctx, client.ObjectKey{Name: pool}, &v2beta1.SpiderIPPool{})
		c := h.cloudEIP(a.ID)
		return err != nil && client.IgnoreNotFound(err) == nil && c.ID == a.ID && c.State == eip.Available, fmt.Errorf("pool: %v; EIP %+v", err, c)
	})
	if got := h.cloud.CallCount("Release"); got != 0 {
		t.Errorf("%d Release calls for a Static pool, want 0", got)
	}
}

// driftRepaired: an EIP unbound behind orbweaver's back (a console click) is bound
// again, and one released behind its back is replaced by a new one, within a few
// verify intervals.
func driftRepaired(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	ctx := context.Background()
	pool := h.pool(v2beta1.EIPSpec{Mode: v2beta1.EIPAuto})
	pod, a := h.run("drift", h.node(), pool, netip.Addr{}, podOpts{gate: true})
	b := h.waitBound(pool, pod, a)
	if err := h.provider.Disassociate(ctx, b.AllocationID); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the unbound EIP bound again", func() (bool, error) {
		c := h.cloudEIP(b.AllocationID)
		return c.State == eip.InUse && c.PrivateIP == a.String(), fmt.Errorf("EIP %+v", c)
	})
	got := h.waitBound(pool, pod, a)
	if got.AllocationID != b.AllocationID {
		t.Fatalf("rebound %s, want the same %s", got.AllocationID, b.AllocationID)
	}
	if err := h.provider.Disassociate(ctx, b.AllocationID); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "unbound in the cloud", func() (bool, error) {
		c, err := eip.WaitFor(ctx, h.provider, b.AllocationID, eip.Available, 10*time.Millisecond)
		return err == nil && c.State == eip.Available, err
	})
	if err := h.provider.Release(ctx, b.AllocationID); err != nil && !errors.Is(err, eip.ErrAssociated) {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "a new EIP for the IP whose EIP was released", func() (bool, error) {
		nb, ok := h.binding(pool, a)
		return ok && nb.Phase == v2beta1.EIPBound && nb.AllocationID != b.AllocationID, fmt.Errorf("binding %+v", nb)
	})
	h.waitBound(pool, pod, a)
}

// podAnnotations: in a pool without the EIP attribute, a pod asking by annotation gets
// an EIP with its attributes and release strategy; the next pod on that IP, which does
// not ask, does not get it; a pod naming an existing EIP gets that one, which is let go
// unreleased after it; ACK's annotation works as orbweaver's (vendor annotations on).
// The namespace allows requests (podRequestsAuthorized tests who may ask), and the EIP
// named by ID is one reserved for it.
func podAnnotations(t *testing.T, cc cloudCase) {
	h := newHarness(t, cc)
	h.allowRequests(h.ns) // who may ask is podRequestsAuthorized's subject
	ctx := context.Background()
	pool := h.poolOf(nil)
	node := h.node()
	ask := map[string]string{v2beta1.AnnoWithEIP: "true", v2beta1.AnnoEIPProvider: cc.name, v2beta1.AnnoEIPBandwidth: "30", v2beta1.AnnoEIPReleaseStrategy: "Never"}
	p1, a := h.run("asks", node, pool, netip.Addr{}, podOpts{gate: true, annotations: ask})
	b := h.waitBound(pool, p1, a)
	if !b.Requested || b.ReleaseStrategy == nil || *b.ReleaseStrategy != v2beta1.ReclaimNever {
		t.Fatalf("binding %+v, want requested by the pod with its Never", b)
	}
	h.end(p1, pool)
	testenv.WaitFor(t, "Never: unbound and kept after the pod", func() (bool, error) {
		got, ok := h.binding(pool, a)
		return ok && got.Phase == v2beta1.EIPAllocated && h.cloudEIP(b.AllocationID).State == eip.Available, fmt.Errorf("binding %+v", got)
	})
	p2, _ := h.run("plain", node, pool, a, podOpts{})
	time.Sleep(time.Second) // several reconciles
	if got, _ := h.binding(pool, a); got.Phase != v2beta1.EIPAllocated || h.cloudEIP(b.AllocationID).State != eip.Available {
		t.Fatalf("a pod that does not ask got the EIP: binding %+v, cloud %+v", got, h.cloudEIP(b.AllocationID))
	}
	h.end(p2, pool)

	// An EIP an administrator reserved for the namespace: tagged for the cluster and it.
	user, err := h.provider.Allocate(ctx, eip.AllocateRequest{ClientToken: "user-pod-" + h.ns,
		Tags: map[string]string{eipbinding.TagCluster: h.cluster, eipbinding.TagNamespace: h.ns}})
	if err != nil {
		t.Fatal(err)
	}
	p3, a3 := h.run("by-id", node, pool, netip.Addr{}, podOpts{annotations: map[string]string{v2beta1.AnnoEIPID: user.ID, v2beta1.AnnoEIPProvider: cc.name}})
	if got := h.waitBound(pool, p3, a3); got.AllocationID != user.ID || !got.Static {
		t.Fatalf("the pod naming %s got %+v", user.ID, got)
	}
	h.end(p3, pool)
	testenv.WaitFor(t, "the named EIP let go, not released", func() (bool, error) {
		_, ok := h.binding(pool, a3)
		return !ok && h.cloudEIP(user.ID).State == eip.Available, nil
	})

	vendor := map[string]string{"k8s.aliyun.com/pod-with-eip": "true", v2beta1.AnnoEIPProvider: cc.name}
	p4, a4 := h.run("ack", node, pool, netip.Addr{}, podOpts{annotations: vendor})
	b4 := h.waitBound(pool, p4, a4)
	h.end(p4, pool)
	testenv.WaitFor(t, "Follow (the default): released with the pod's IP", func() (bool, error) {
		_, ok := h.binding(pool, a4)
		return !ok && h.cloudEIP(b4.AllocationID).ID == "", nil
	})
	gatedOnly, _ := h.run("gated", node, pool, netip.Addr{}, podOpts{gate: true})
	testenv.WaitFor(t, "a pod that only declares the gate told why it has no EIP", func() (bool, error) {
		got := &corev1.Pod{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(gatedOnly), got); err != nil {
			return false, err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == v2beta1.PodEIPConditionType {
				return c.Status == corev1.ConditionFalse && c.Reason == "NoEIP", fmt.Errorf("condition %+v", c)
			}
		}
		return false, errors.New("no orbweaver.io/eip condition")
	})
	bad, _ := h.run("bad", node, pool, netip.Addr{}, podOpts{annotations: map[string]string{v2beta1.AnnoWithEIP: "please"}})
	testenv.WaitFor(t, "an event naming the bad annotation", func() (bool, error) {
		for _, e := range h.events(bad.Name, eipbinding.ReasonFailed) {
			if strings.Contains(e.Message, v2beta1.AnnoWithEIP) {
				return true, nil
			}
		}
		return false, nil
	})
}

// gateHistory watches the pod of that name in the test's namespace from before it exists,
// and returns a function that gives every EIP gate status its updates carried, in order
// (repeats folded). A poll can miss a False that the controller replaced with True a moment
// later, on a loaded machine; a watch sees every update.
func (h *harness) gateHistory(name string) func() []corev1.ConditionStatus {
	h.t.Helper()
	wc, err := client.NewWithWatch(h.e.Config, client.Options{Scheme: h.e.Scheme})
	if err != nil {
		h.t.Fatal(err)
	}
	w, err := wc.Watch(h.ctx, &corev1.PodList{}, client.InNamespace(h.ns), client.MatchingFields{"metadata.name": name})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(w.Stop)
	var mu sync.Mutex
	var seen []corev1.ConditionStatus
	go func() {
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			s := gate(pod)
			mu.Lock()
			if s != "" && (len(seen) == 0 || seen[len(seen)-1] != s) {
				seen = append(seen, s)
			}
			mu.Unlock()
		}
	}()
	return func() []corev1.ConditionStatus {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}
