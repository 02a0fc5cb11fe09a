package ipam

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// gcSim is a small cluster around one pool "a": pods, endpoints and a pool that GC
// scans and writes (Apply, endpoint deletions with their preconditions), and an agent
// that re-creates StatefulSet pods the way their fixed IPs need.
type gcSim struct {
	t      *testing.T
	cfg    GCConfig
	policy v2beta1.ReclaimPolicy
	pool   Pool
	pods   map[string]GCPod
	eps    map[string]GCEndpoint
	ended  map[uint64]time.Time
	now    time.Time
	// freed logs every release that landed.
	freed []GCRelease
}

func newGCSim(t *testing.T, policy v2beta1.ReclaimPolicy) *gcSim {
	return &gcSim{
		t: t, cfg: DefaultGCConfig(), policy: policy,
		pool: gcPool(t, "a", "10.0.0.0/24", "10.0.0.1-10.0.0.254", nil, "").Pool,
		pods: map[string]GCPod{}, eps: map[string]GCEndpoint{}, now: gcT0,
	}
}

// start runs a new pod: the agent allocates from start (or reuses what its retained
// endpoint names, rebinding it), then writes the endpoint.
func (s *gcSim) start(p GCPod, start string) netip.Addr {
	s.t.Helper()
	key := p.Namespace + "/" + p.Name
	s.pods[key] = p
	newOwner := gcOwner(p.UID)
	ep, had := s.eps[key]
	if had && len(ep.Addresses) == 1 {
		a := ep.Addresses[0]
		if next, ok := s.pool.Rebind(a.Addr, a.Owner, newOwner); ok {
			s.pool = next
			s.writeEP(ep, p.UID, a.Addr)
			return a.Addr
		}
	}
	next, got, err := s.pool.Allocate([]records.Owner{newOwner}, netip.MustParseAddr(start))
	if err != nil {
		s.t.Fatal(err)
	}
	s.pool = next
	if !had {
		ep = GCEndpoint{Namespace: p.Namespace, Name: p.Name, ObjectUID: "se-" + p.Name}
	}
	if p.StatefulSet != nil {
		m := *p.StatefulSet
		ep.StatefulSet = &m
	}
	s.writeEP(ep, p.UID, got[0])
	return got[0]
}

func (s *gcSim) writeEP(ep GCEndpoint, uid string, a netip.Addr) {
	rv, _ := strconv.Atoi(ep.ResourceVersion)
	ep.ResourceVersion = strconv.Itoa(rv + 1)
	ep.PodUID = uid
	ep.Addresses = []GCAddress{{NIC: "eth0", Pool: "a", Addr: a, Owner: gcOwner(uid)}}
	s.eps[ep.Namespace+"/"+ep.Name] = ep
}

// scan runs GC over the current state and applies its plan.
func (s *gcSim) scan() GCPlan {
	s.t.Helper()
	in := GCInput{Config: s.cfg, Nodes: gcNodes, Pools: []GCPool{{Pool: s.pool, ReclaimPolicy: &s.policy}}, EndedSince: s.ended}
	for _, k := range slices.Sorted(maps.Keys(s.pods)) {
		in.Pods = append(in.Pods, s.pods[k])
	}
	for _, k := range slices.Sorted(maps.Keys(s.eps)) {
		in.Endpoints = append(in.Endpoints, s.eps[k])
	}
	plan := PlanGC(in, s.now)
	s.ended = plan.EndedSince
	var freed []GCRelease
	s.pool, freed, _ = plan.Apply(s.pool)
	s.freed = append(s.freed, freed...)
	for _, d := range plan.EndpointDeletions {
		key := d.Namespace + "/" + d.Name
		if ep, ok := s.eps[key]; ok && ep.ObjectUID == d.ObjectUID && ep.ResourceVersion == d.ResourceVersion {
			delete(s.eps, key)
		}
	}
	return plan
}

// scanEvery scans every step until d from now has passed.
func (s *gcSim) scanEvery(step, d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); s.now = s.now.Add(step) {
		s.scan()
	}
}

func (s *gcSim) holder(a netip.Addr) records.Owner {
	h, _ := s.pool.Holder(a)
	return h
}

func dbPod(ordinal int, uid string, replicas int) GCPod {
	return gcPod("db-"+strconv.Itoa(ordinal), uid, podOf("db", ordinal, true, ordinal < replicas))
}

// SpiderPool #2442: a full scan during a StatefulSet pod's restart released its IP.
// Here the pod is deleted, stays away (a slow StatefulSet controller) across many
// scans, and comes back as a new pod through the agent's two writes, with scans
// between them: it keeps its address under every policy.
func TestGCStatefulSetRestartDuringScan(t *testing.T) {
	for _, policy := range []v2beta1.ReclaimPolicy{v2beta1.ReclaimFollow, v2beta1.ReclaimNever, "10m"} {
		t.Run(string(policy), func(t *testing.T) {
			s := newGCSim(t, policy)
			a := s.start(dbPod(0, "u1", 1), "10.0.0.10")
			s.scan()

			p := s.pods["ns/db-0"]
			p.DeletionTimestamp = s.now.Add(30 * time.Second)
			s.pods["ns/db-0"] = p
			s.scanEvery(5*time.Second, time.Minute) // terminating, past its grace too
			delete(s.pods, "ns/db-0")
			s.scanEvery(10*time.Second, 2*time.Hour) // gone, far beyond any delay

			// The new pod, first without its endpoint rewritten.
			s.pods["ns/db-0"] = dbPod(0, "u2", 1)
			s.scan()
			ep := s.eps["ns/db-0"]
			if next, ok := s.pool.Rebind(a, gcOwner("u1"), gcOwner("u2")); !ok {
				t.Fatalf("the pool no longer holds %s for the old pod (holder %v)", a, s.holder(a))
			} else {
				s.pool = next
			}
			s.scanEvery(10*time.Second, time.Minute) // pool rebound, endpoint not yet
			s.writeEP(ep, "u2", a)
			s.scanEvery(10*time.Second, time.Minute)

			if len(s.freed) != 0 {
				t.Fatalf("GC released %+v", s.freed)
			}
			if h := s.holder(a); h != gcOwner("u2") {
				t.Fatalf("%s is held by %v, want the new pod", a, h)
			}
		})
	}
}

// SpiderPool #2526 and #3778: GC during a StatefulSet scale-down and up. Scaling 3→1→3
// keeps pods 0–2's addresses per the reclaim policy, and whatever the policy no
// address ends with two owners, however the scans fall.
func TestGCStatefulSetScaleDownUp(t *testing.T) {
	tests := []struct {
		policy  v2beta1.ReclaimPolicy
		downFor time.Duration
		keep12  bool // whether pods 1 and 2 get their addresses back
	}{
		{v2beta1.ReclaimFollow, 5 * time.Minute, false},
		{v2beta1.ReclaimNever, 5 * time.Minute, true},
		{v2beta1.ReclaimNever, 48 * time.Hour, true},
		{"30m", 5 * time.Minute, true},
		{"30m", 45 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.policy)+"/down "+tt.downFor.String(), func(t *testing.T) {
			s := newGCSim(t, tt.policy)
			var orig []netip.Addr
			for i := range 3 {
				orig = append(orig, s.start(dbPod(i, "a"+strconv.Itoa(i), 3), "10.0.0.10"))
			}
			s.scan()

			// Scale to 1: the StatefulSet deletes pods 2 then 1.
			for i := 0; i < 3; i++ {
				ep := s.eps["ns/db-"+strconv.Itoa(i)]
				ep.StatefulSet.InRange = i < 1
				s.eps["ns/db-"+strconv.Itoa(i)] = ep
			}
			for _, i := range []int{2, 1} {
				p := dbPod(i, "a"+strconv.Itoa(i), 1)
				p.DeletionTimestamp = s.now.Add(10 * time.Second)
				s.pods[p.Namespace+"/"+p.Name] = p
				s.scanEvery(5*time.Second, 15*time.Second)
				delete(s.pods, p.Namespace+"/"+p.Name)
			}
			// While scaled down, another pod allocates from the same place.
			s.scanEvery(15*time.Second, tt.downFor/2)
			other := s.start(gcPod("other", "o1"), "10.0.0.11")
			s.scanEvery(15*time.Second, tt.downFor/2)

			// Scale to 3 again.
			for i := 0; i < 3; i++ {
				if ep, ok := s.eps["ns/db-"+strconv.Itoa(i)]; ok {
					ep.StatefulSet.InRange = true
					s.eps["ns/db-"+strconv.Itoa(i)] = ep
				}
			}
			s.scan()
			var got []netip.Addr
			got = append(got, s.eps["ns/db-0"].Addresses[0].Addr)
			for _, i := range []int{1, 2} {
				// A pod that lost its address gets one from .100 on, never its old one.
				got = append(got, s.start(dbPod(i, "b"+strconv.Itoa(i), 3), "10.0.0.100"))
			}
			s.scanEvery(15*time.Second, 10*time.Minute)

			if got[0] != orig[0] {
				t.Errorf("pod 0 has %s, had %s", got[0], orig[0])
			}
			for i := 1; i < 3; i++ {
				if kept := got[i] == orig[i]; kept != tt.keep12 {
					t.Errorf("pod %d has %s, had %s: kept=%t, want %t", i, got[i], orig[i], kept, tt.keep12)
				}
			}
			// One address, one owner; and every endpoint names what its pod holds.
			seen := map[netip.Addr]string{}
			for k, ep := range s.eps {
				a := ep.Addresses[0]
				if h := s.holder(a.Addr); h != a.Owner {
					t.Errorf("endpoint %s names %s, held by %v", k, a.Addr, h)
				}
				if prev, dup := seen[a.Addr]; dup {
					t.Errorf("%s named by %s and %s", a.Addr, prev, k)
				}
				seen[a.Addr] = k
			}
			if h := s.holder(other); h != gcOwner("o1") {
				t.Errorf("the other pod's %s is held by %v", other, h)
			}
		})
	}
}

// The third SpiderPool-class bug: an address re-assigned between GC's scan and its
// write. The decision carries the owner it saw, so the write frees nothing; an
// endpoint rewritten meanwhile is protected by the deletion's preconditions.
func TestGCReassignedBetweenScanAndRelease(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	tests := []struct {
		name     string
		ep       GCEndpoint
		meantime func(Pool) Pool // what happens between the scan and the write
		newOwner records.Owner
	}{
		{
			name: "freed by a late DEL and allocated to another pod",
			ep:   gcEP("web", "u1", "a/10.0.0.1"),
			meantime: func(p Pool) Pool {
				p, _ = p.Release(a, gcOwner("u1"))
				p, _, _ = p.Allocate([]records.Owner{gcOwner("u9")}, a)
				return p
			},
			newOwner: gcOwner("u9"),
		},
		{
			name: "a scaled-down StatefulSet pod's address rebound to its new pod after a scale-up",
			ep:   retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false),
			meantime: func(p Pool) Pool {
				p, _ = p.Rebind(a, gcOwner("u1"), gcOwner("u2"))
				return p
			},
			newOwner: gcOwner("u2"),
		},
		{
			name: "a deleted node's spare taken back by the node's agent and handed to a pod",
			ep:   GCEndpoint{},
			meantime: func(p Pool) Pool {
				p, _ = p.Rebind(a, records.ReserveOwner("n9"), gcOwner("u3"))
				return p
			},
			newOwner: gcOwner("u3"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")}
			var eps []GCEndpoint
			if tt.ep.Name != "" {
				eps = []GCEndpoint{tt.ep}
			} else {
				recs["a/10.0.0.1"] = records.ReserveOwner("n9")
			}
			pools := gcPools(t, recs, nil)
			ended := map[uint64]time.Time{gcKey("u1"): at(-time.Hour), records.ReserveOwner("n9").Pod: at(-time.Hour)}
			plan := PlanGC(GCInput{Config: DefaultGCConfig(), Nodes: gcNodes, Endpoints: eps, Pools: pools, EndedSince: ended}, gcT0)
			if len(plan.Releases) != 1 || plan.Releases[0].Addr != a {
				t.Fatalf("the scan decided %v, want one release of %s", summary(plan, gcT0), a)
			}
			fresh := tt.meantime(pools[0].Pool)
			next, freed, _ := plan.Apply(fresh)
			if len(freed) != 0 {
				t.Errorf("Apply freed %+v", freed)
			}
			if h, _ := next.Holder(a); h != tt.newOwner {
				t.Errorf("%s is held by %v, want the new owner %v", a, h, tt.newOwner)
			}
			for _, d := range plan.EndpointDeletions {
				if d.ObjectUID != tt.ep.ObjectUID || d.ResourceVersion != tt.ep.ResourceVersion || d.PodUID != "u1" {
					t.Errorf("deletion %+v does not carry the scanned endpoint's UID and resourceVersion", d)
				}
			}
		})
	}
}

func TestGCPlanApply(t *testing.T) {
	pools := gcPools(t, map[string]records.Owner{
		"a/10.0.0.1": gcOwner("x"), "a/10.0.0.2": records.ReserveOwner("n9"), "a/10.0.0.3": gcOwner("live"),
		"b/10.0.1.1": gcOwner("x"),
	}, nil)
	ep := gcEP("web", "live", "a/10.0.0.2")
	ep.Node = "n9"
	in := GCInput{
		Config: DefaultGCConfig(), Nodes: gcNodes, Pods: []GCPod{gcPod("web", "live", onNode("n9"))}, Endpoints: []GCEndpoint{ep}, Pools: pools,
		EndedSince: map[uint64]time.Time{gcKey("x"): at(-time.Hour), records.ReserveOwner("n9").Pod: at(-time.Hour)},
	}
	plan := PlanGC(in, gcT0)
	want := []string{"rebind a/10.0.0.2 NodeGone", "release a/10.0.0.1 OrphanRecord", "release b/10.0.1.1 OrphanRecord"}
	if got := summary(plan, gcT0); !slices.Equal(got, want) {
		t.Fatalf("plan %v, want %v", got, want)
	}
	if plan.Rebinds[0].Node != "n9" || plan.Rebinds[0].Pod != "ns/web" || plan.Rebinds[0].To != gcOwner("live") {
		t.Errorf("rebind %+v: want node n9, pod ns/web, to the pod's owner", plan.Rebinds[0])
	}
	a, freed, rebound := plan.Apply(pools[0].Pool)
	if len(freed) != 1 || freed[0].Pool != "a" || len(rebound) != 1 {
		t.Fatalf("Apply to pool a: freed %+v, rebound %+v", freed, rebound)
	}
	if _, held := a.Holder(netip.MustParseAddr("10.0.0.1")); held {
		t.Error("10.0.0.1 still held")
	}
	if h, _ := a.Holder(netip.MustParseAddr("10.0.0.2")); h != gcOwner("live") {
		t.Errorf("10.0.0.2 held by %v", h)
	}
	if h, _ := a.Holder(netip.MustParseAddr("10.0.0.3")); h != gcOwner("live") {
		t.Errorf("10.0.0.3 held by %v", h)
	}
	// Applying again changes nothing: every decision compares the owner first.
	if _, freed, rebound := plan.Apply(a); len(freed)+len(rebound) != 0 {
		t.Errorf("second Apply did %+v %+v", freed, rebound)
	}
	b, freed, _ := plan.Apply(pools[1].Pool)
	if len(freed) != 1 || b.AllocatedCount() != 0 {
		t.Errorf("Apply to pool b freed %+v, %d left", freed, b.AllocatedCount())
	}
}

// The clock: EndedSince carries from one run to the next, restarts when the owner
// comes back, and never lies in the future; NextRecheck bounds the requeue.
func TestGCClock(t *testing.T) {
	cfg := DefaultGCConfig()
	pools := gcPools(t, map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")}, nil)
	eps := []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")}
	run := func(ended map[uint64]time.Time, now time.Time, pods ...GCPod) GCPlan {
		return PlanGC(GCInput{Config: cfg, Nodes: gcNodes, Pods: pods, Endpoints: eps, Pools: pools, EndedSince: ended}, now)
	}

	p1 := run(nil, gcT0)
	if got, ok := p1.NextRecheck(); !ok || !got.Equal(at(30*time.Second)) {
		t.Fatalf("NextRecheck = %v, %t; want +30s", got, ok)
	}
	if got := p1.EndedSince[gcKey("u1")]; !got.Equal(gcT0) {
		t.Fatalf("EndedSince = %v, want now", got)
	}
	p2 := run(p1.EndedSince, at(29*time.Second))
	if len(p2.Releases) != 0 || !p2.EndedSince[gcKey("u1")].Equal(gcT0) {
		t.Fatalf("at +29s: %v, since %v", summary(p2, at(29*time.Second)), p2.EndedSince)
	}
	p3 := run(p2.EndedSince, at(30*time.Second))
	if len(p3.Releases) != 1 {
		t.Fatalf("at +30s: %v", summary(p3, at(30*time.Second)))
	}
	if _, ok := p3.NextRecheck(); ok {
		t.Errorf("nothing left to wait for, got %v", p3.Rechecks)
	}
	// The pod shows up (the cache caught up): its clock is dropped.
	p4 := run(p2.EndedSince, at(30*time.Second), gcPod("web", "u1"))
	if len(p4.Releases) != 0 || len(p4.EndedSince) != 0 {
		t.Errorf("with the pod back: %v, since %v", summary(p4, at(30*time.Second)), p4.EndedSince)
	}
	// A clock from the future (a skewed earlier run) counts from now.
	p5 := run(map[uint64]time.Time{gcKey("u1"): at(time.Hour)}, gcT0)
	if got := p5.EndedSince[gcKey("u1")]; !got.Equal(gcT0) {
		t.Errorf("future clock: since %v, want now", got)
	}
	// An empty plan has no recheck.
	if _, ok := (GCPlan{}).NextRecheck(); ok {
		t.Error("empty plan has a recheck")
	}
}

// The same snapshot in any order gives the same plan.
func TestGCDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 50 {
		w := randomGCWorld(t, rng)
		want := PlanGC(w.in, w.now)
		for range 5 {
			in := w.in
			in.Pods, in.Nodes, in.Endpoints, in.Pools = slices.Clone(in.Pods), slices.Clone(in.Nodes), slices.Clone(in.Endpoints), slices.Clone(in.Pools)
			rng.Shuffle(len(in.Pods), func(i, j int) { in.Pods[i], in.Pods[j] = in.Pods[j], in.Pods[i] })
			rng.Shuffle(len(in.Nodes), func(i, j int) { in.Nodes[i], in.Nodes[j] = in.Nodes[j], in.Nodes[i] })
			rng.Shuffle(len(in.Endpoints), func(i, j int) { in.Endpoints[i], in.Endpoints[j] = in.Endpoints[j], in.Endpoints[i] })
			rng.Shuffle(len(in.Pools), func(i, j int) { in.Pools[i], in.Pools[j] = in.Pools[j], in.Pools[i] })
			got := PlanGC(in, w.now)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("shuffled input gives\n%s\nnot\n%s", strings.Join(summary(got, w.now), "\n"), strings.Join(summary(want, w.now), "\n"))
			}
		}
	}
}

func TestGCEndpointOf(t *testing.T) {
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "se-uid", ResourceVersion: "42"},
		Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{
			UID: "pod-uid", Node: "n1",
			IPs: []v2beta1.IPAllocationDetail{
				{NIC: "eth0", IPv4: ptr.To("10.0.0.1/24"), IPv4Pool: ptr.To("a"), IPv6: ptr.To("fd00::1/64"), IPv6Pool: ptr.To("a6")},
				{NIC: "net1", IPv4: ptr.To("10.0.1.1/24")}, // no pool: not the agent's record
				{NIC: "net2", IPv4: ptr.To("bad"), IPv4Pool: ptr.To("b")},
			},
			Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "ctr"},
		}},
	}
	e, err := GCEndpointOf(se)
	if err == nil || !strings.Contains(err.Error(), "net2") {
		t.Errorf("error %v, want one naming net2", err)
	}
	want := GCEndpoint{
		Namespace: "ns", Name: "web", ObjectUID: "se-uid", ResourceVersion: "42", PodUID: "pod-uid", Node: "n1",
		Addresses: []GCAddress{
			{NIC: "eth0", Pool: "a", Addr: netip.MustParseAddr("10.0.0.1"), Owner: records.OwnerOf("pod-uid", "ctr", "eth0")},
			{NIC: "eth0", Pool: "a6", Addr: netip.MustParseAddr("fd00::1"), Owner: records.OwnerOf("pod-uid", "ctr", "eth0")},
		},
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("GCEndpointOf = %+v\nwant %+v", e, want)
	}
}

func TestGCPoolOf(t *testing.T) {
	p := gcPool(t, "a", "10.0.0.0/24", "10.0.0.1-10.0.0.9", []records.Record{{IP: netip.MustParseAddr("10.0.0.3"), Owner: gcOwner("u")}}, "1h")
	if p.Pool.Name() != "a" || p.ReclaimPolicy == nil || *p.ReclaimPolicy != "1h" {
		t.Errorf("GCPoolOf = %v, policy %v", p.Pool, p.ReclaimPolicy)
	}
	if h, _ := p.Pool.Holder(netip.MustParseAddr("10.0.0.3")); h != gcOwner("u") {
		t.Errorf("record lost: %v", h)
	}
	if p := gcPool(t, "b", "10.0.0.0/24", "10.0.0.1", nil, ""); p.ReclaimPolicy != nil {
		t.Errorf("no policy set, got %v", *p.ReclaimPolicy)
	}
	bad := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: v2beta1.IPPoolSpec{Subnet: "nope"}}
	if _, err := GCPoolOf(bad); err == nil {
		t.Error("GCPoolOf accepted an invalid pool")
	}
}

func TestGCReasons(t *testing.T) {
	rs := GCReasons()
	if len(rs) != 9 || len(slices.Compact(slices.Sorted(slices.Values(rs)))) != 9 {
		t.Errorf("GCReasons = %v, want the nine distinct reasons", rs)
	}
}
