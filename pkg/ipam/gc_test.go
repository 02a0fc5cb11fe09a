package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// gcT0 is the "now" of most cases; times are written as offsets from it.
var gcT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return gcT0.Add(d) }

// gcOwner is the owner the agent records for a pod's eth0 (container "ctr-<uid>").
func gcOwner(uid string) records.Owner { return records.OwnerOf(uid, "ctr-"+uid, "eth0") }

func gcKey(uid string) uint64 { return records.PodKey(uid) }

// gcPod is a Running pod "ns/<name>" on node n1; opts change it.
func gcPod(name, uid string, opts ...func(*GCPod)) GCPod {
	p := GCPod{Namespace: "ns", Name: name, UID: uid, Phase: PodRunning, Node: "n1"}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func phase(ph PodPhase) func(*GCPod) { return func(p *GCPod) { p.Phase = ph } }
func onNode(n string) func(*GCPod)   { return func(p *GCPod) { p.Node = n } }

// deleting marks the pod deleted, its deletion timestamp (request time + grace) at d.
func deleting(d time.Duration) func(*GCPod) {
	return func(p *GCPod) { p.DeletionTimestamp = at(d) }
}

// forceDeleted is a pod deleted with grace period 0, as a watch sees it between the
// API server's two writes.
func forceDeleted(p *GCPod) {
	p.DeletionTimestamp = at(0)
	p.ForceDeleted = true
}

func podOf(set string, ordinal int, exists, inRange bool) func(*GCPod) {
	return func(p *GCPod) {
		p.StatefulSet = &StatefulSetMember{Name: set, Ordinal: ordinal, Exists: exists, InRange: inRange}
	}
}

// gcEP is an endpoint "ns/<name>" of pod uid with addresses "pool/addr", one NIC each
// (eth0, net1, ...).
func gcEP(name, uid string, addrs ...string) GCEndpoint {
	e := GCEndpoint{Namespace: "ns", Name: name, ObjectUID: "se-" + name + "-" + uid, ResourceVersion: "7", PodUID: uid, Node: "n1"}
	for i, s := range addrs {
		pool, a, _ := strings.Cut(s, "/")
		nic := "eth0"
		if i > 0 {
			nic = fmt.Sprintf("net%d", i)
		}
		e.Addresses = append(e.Addresses, GCAddress{NIC: nic, Pool: pool, Addr: netip.MustParseAddr(a), Owner: records.OwnerOf(uid, "ctr-"+uid, nic)})
	}
	return e
}

// retained marks an endpoint as a StatefulSet's.
func retained(e GCEndpoint, set string, ordinal int, exists, inRange bool) GCEndpoint {
	e.StatefulSet = &StatefulSetMember{Name: set, Ordinal: ordinal, Exists: exists, InRange: inRange}
	return e
}

func withPolicy(e GCEndpoint, p v2beta1.ReclaimPolicy) GCEndpoint {
	e.ReclaimPolicy = &p
	return e
}

// gcPools builds pools "a" and "b" (10.0.0.0/24 and 10.0.1.0/24) holding recs, keyed
// "pool/addr".
func gcPools(t testing.TB, recs map[string]records.Owner, policies map[string]v2beta1.ReclaimPolicy) []GCPool {
	t.Helper()
	subnets := map[string]string{"a": "10.0.0.0/24", "b": "10.0.1.0/24"}
	ranges := map[string]string{"a": "10.0.0.1-10.0.0.254", "b": "10.0.1.1-10.0.1.254"}
	byPool := map[string][]records.Record{}
	for k, o := range recs {
		pool, a, _ := strings.Cut(k, "/")
		byPool[pool] = append(byPool[pool], records.Record{IP: netip.MustParseAddr(a), Owner: o})
	}
	var out []GCPool
	for _, name := range []string{"a", "b"} {
		out = append(out, gcPool(t, name, subnets[name], ranges[name], byPool[name], policies[name]))
	}
	return out
}

func gcPool(t testing.TB, name, subnet, ips string, recs []records.Record, policy v2beta1.ReclaimPolicy) GCPool {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{
		Subnet: v2beta1.CIDR(subnet), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(ips)},
	}}
	if policy != "" {
		sp.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: &policy}
	}
	if len(recs) > 0 {
		data, err := records.Encode(netip.MustParsePrefix(subnet), recs)
		if err != nil {
			t.Fatal(err)
		}
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: data}
	}
	p, err := GCPoolOf(sp)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var gcNodes = []GCNode{{Name: "n1", Ready: true}, {Name: "n2", Ready: false}}

// summary renders a plan as sorted lines, times as offsets from now:
//
//	release a/10.0.0.1 PodGone
//	rebind a/10.0.0.1 NodeGone
//	delete ns/web PodGone
//	recheck a/10.0.0.1 +30s PodGone   (an address)
//	recheck ns/web +30s PodGone       (an endpoint deletion)
//	warn <n>                          (number of warnings)
func summary(p GCPlan, now time.Time) []string {
	var out []string
	for _, r := range p.Releases {
		out = append(out, fmt.Sprintf("release %s/%s %s", r.Pool, r.Addr, r.Reason))
	}
	for _, r := range p.Rebinds {
		out = append(out, fmt.Sprintf("rebind %s/%s %s", r.Pool, r.Addr, r.Reason))
	}
	for _, d := range p.EndpointDeletions {
		out = append(out, fmt.Sprintf("delete %s/%s %s", d.Namespace, d.Name, d.Reason))
	}
	for _, r := range p.Rechecks {
		what := r.Pod
		if r.Pool != "" {
			what = r.Pool + "/" + r.Addr.String()
		}
		out = append(out, fmt.Sprintf("recheck %s +%s %s", what, r.At.Sub(now), r.Reason))
	}
	if len(p.Warnings) > 0 {
		out = append(out, fmt.Sprintf("warn %d", len(p.Warnings)))
	}
	slices.Sort(out)
	return out
}

// checkPlan checks what holds for every plan: releases and rebinds carry the owner the
// pool records, rechecks lie ahead, and a second run on the same input agrees.
func checkPlan(t *testing.T, in GCInput, now time.Time, plan GCPlan) {
	t.Helper()
	holders := map[string]records.Owner{}
	for _, p := range in.Pools {
		for _, r := range p.Pool.gcRecords() {
			holders[p.Pool.Name()+"/"+r.IP.String()] = r.Owner
		}
	}
	for _, r := range plan.Releases {
		if h, ok := holders[r.Pool+"/"+r.Addr.String()]; !ok || h != r.Owner {
			t.Errorf("release %s/%s carries owner %v, the pool records %v", r.Pool, r.Addr, r.Owner, h)
		}
	}
	for _, r := range plan.Rebinds {
		if h := holders[r.Pool+"/"+r.Addr.String()]; h != r.From || !r.From.IsReserve() || r.To.IsReserve() {
			t.Errorf("rebind %s/%s from %v to %v, the pool records %v", r.Pool, r.Addr, r.From, r.To, h)
		}
	}
	for _, r := range plan.Rechecks {
		if !r.At.After(now) {
			t.Errorf("recheck %+v is not in the future", r)
		}
	}
	again := PlanGC(in, now)
	if a, b := summary(plan, now), summary(again, now); !slices.Equal(a, b) {
		t.Errorf("a second run on the same input gives\n%s\nnot\n%s", strings.Join(b, "\n"), strings.Join(a, "\n"))
	}
}

func TestPlanGC(t *testing.T) {
	never, follow := v2beta1.ReclaimNever, v2beta1.ReclaimFollow
	reserve1, reserve9 := records.ReserveOwner("n1"), records.ReserveOwner("n9")
	long := map[uint64]time.Time{} // everything gone for an hour
	for _, uid := range []string{"u1", "u2", "old", "gone", "x"} {
		long[gcKey(uid)] = at(-time.Hour)
	}
	long[reserve9.Pod] = at(-time.Hour)
	tests := []struct {
		name     string
		cfg      func(*GCConfig)
		nodes    []GCNode // gcNodes when nil
		pods     []GCPod
		eps      []GCEndpoint
		recs     map[string]records.Owner
		policies map[string]v2beta1.ReclaimPolicy
		ended    map[uint64]time.Time
		now      time.Duration
		want     []string
	}{
		// A pod with the same UID that is not finished or terminating past its grace keeps.
		{
			name: "running pod keeps",
			pods: []GCPod{gcPod("web", "u1")},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "pending pod keeps",
			pods: []GCPod{gcPod("web", "u1", phase(PodPending))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "pod in phase Unknown keeps",
			pods: []GCPod{gcPod("web", "u1", phase(PodUnknown), onNode("n2"))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		// PodGone
		{
			name: "deleted pod, first seen: waits GoneDelay (a pod cache may lag)",
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"recheck a/10.0.0.1 +30s PodGone", "recheck ns/web +30s PodGone"},
		},
		{
			name:  "deleted pod, gone 20s: waits the rest",
			eps:   []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: map[uint64]time.Time{gcKey("u1"): at(-20 * time.Second)},
			want:  []string{"recheck a/10.0.0.1 +10s PodGone", "recheck ns/web +10s PodGone"},
		},
		{
			name:  "deleted pod, gone GoneDelay: released, endpoint deleted",
			eps:   []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1", "b/10.0.1.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1"), "b/10.0.1.1": records.OwnerOf("u1", "ctr-u1", "net1")},
			ended: map[uint64]time.Time{gcKey("u1"): at(-30 * time.Second)},
			want:  []string{"delete ns/web PodGone", "release a/10.0.0.1 PodGone", "release b/10.0.1.1 PodGone"},
		},
		{
			name:  "GoneDelay zero: released at once",
			cfg:   func(c *GCConfig) { c.GoneDelay = 0 },
			eps:   []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want:  []string{"delete ns/web PodGone", "release a/10.0.0.1 PodGone"},
			ended: nil,
		},
		{
			name: "force-deleted pod still in the cache: gone, not terminating",
			pods: []GCPod{gcPod("web", "u1", forceDeleted)},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"recheck a/10.0.0.1 +30s PodGone", "recheck ns/web +30s PodGone"},
		},
		{
			name:  "force-deleted pod still in the cache, gone GoneDelay: released",
			pods:  []GCPod{gcPod("web", "u1", forceDeleted)},
			eps:   []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: map[uint64]time.Time{gcKey("u1"): at(-30 * time.Second)},
			want:  []string{"delete ns/web PodGone", "release a/10.0.0.1 PodGone"},
		},
		// PodUIDChanged
		{
			name:  "pod re-created under the same name: the old UID's addresses go",
			pods:  []GCPod{gcPod("web", "u2", phase(PodPending))},
			eps:   []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1"), "a/10.0.0.2": gcOwner("u2")},
			ended: long,
			want:  []string{"delete ns/web PodUIDChanged", "release a/10.0.0.1 PodUIDChanged"},
		},
		// PodFinished
		{
			name: "succeeded pod: released at once",
			pods: []GCPod{gcPod("job", "u1", phase(PodSucceeded))},
			eps:  []GCEndpoint{gcEP("job", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"delete ns/job PodFinished", "release a/10.0.0.1 PodFinished"},
		},
		{
			name: "failed pod: released at once",
			pods: []GCPod{gcPod("job", "u1", phase(PodFailed))},
			eps:  []GCEndpoint{gcEP("job", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"delete ns/job PodFinished", "release a/10.0.0.1 PodFinished"},
		},
		// TerminatingPastGrace
		{
			name: "terminating within grace: kept, recheck when deletionTimestamp+grace is over",
			pods: []GCPod{gcPod("web", "u1", deleting(20*time.Second))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"recheck a/10.0.0.1 +20s TerminatingPastGrace", "recheck ns/web +20s TerminatingPastGrace"},
		},
		{
			name: "terminating within grace plus the additional delay",
			cfg:  func(c *GCConfig) { c.AdditionalGraceDelay = time.Minute },
			pods: []GCPod{gcPod("web", "u1", deleting(-10*time.Second))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"recheck a/10.0.0.1 +50s TerminatingPastGrace", "recheck ns/web +50s TerminatingPastGrace"},
		},
		{
			name: "terminating past grace on a Ready node: released",
			pods: []GCPod{gcPod("web", "u1", deleting(-time.Second))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"delete ns/web TerminatingPastGrace", "release a/10.0.0.1 TerminatingPastGrace"},
		},
		{
			name: "terminating past grace on a Ready node, switch off: kept, no recheck",
			cfg:  func(c *GCConfig) { c.ReleaseTerminatingOnReadyNode = false },
			pods: []GCPod{gcPod("web", "u1", deleting(-time.Hour))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "terminating past grace on a NotReady node: released",
			cfg:  func(c *GCConfig) { c.ReleaseTerminatingOnReadyNode = false },
			pods: []GCPod{gcPod("web", "u1", onNode("n2"), deleting(-time.Hour))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"delete ns/web TerminatingPastGrace", "release a/10.0.0.1 TerminatingPastGrace"},
		},
		{
			name: "terminating past grace on a NotReady node, switch off: kept",
			cfg:  func(c *GCConfig) { c.ReleaseTerminatingOnNotReadyNode = false },
			pods: []GCPod{gcPod("web", "u1", onNode("n2"), deleting(-time.Hour))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "terminating on a deleted node counts as NotReady",
			cfg:  func(c *GCConfig) { c.ReleaseTerminatingOnNotReadyNode = false },
			pods: []GCPod{gcPod("web", "u1", onNode("n9"), deleting(-time.Hour))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		// Records without an endpoint.
		{
			name: "record of a live pod without endpoint keeps (an ADD between its two writes)",
			pods: []GCPod{gcPod("web", "u1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "record of an old attachment of a live pod keeps",
			pods: []GCPod{gcPod("web", "u1")},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1"), "a/10.0.0.9": records.OwnerOf("u1", "old-sandbox", "eth0")},
		},
		{
			name: "record of a finished pod without endpoint: PodFinished",
			pods: []GCPod{gcPod("job", "u1", phase(PodSucceeded))},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"release a/10.0.0.1 PodFinished"},
		},
		// OrphanRecord
		{
			name: "orphan record, first seen: waits GoneDelay",
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("x")},
			want: []string{"recheck a/10.0.0.1 +30s OrphanRecord"},
		},
		{
			name:  "orphan record after GoneDelay: released",
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("x")},
			ended: long,
			want:  []string{"release a/10.0.0.1 OrphanRecord"},
		},
		{
			name:  "a stale endpoint names an address another live pod now holds: only the endpoint goes",
			pods:  []GCPod{gcPod("api", "u2")},
			eps:   []GCEndpoint{gcEP("web", "old", "a/10.0.0.1"), gcEP("api", "u2", "a/10.0.0.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u2")},
			ended: long,
			want:  []string{"delete ns/web PodGone"},
		},
		// Node reserves.
		{
			name: "spares of an existing node are kept, though no pod owns them",
			recs: map[string]records.Owner{"a/10.0.0.1": reserve1, "a/10.0.0.2": reserve1, "b/10.0.1.1": records.ReserveOwner("n2")},
		},
		{
			name:  "a handed-out reserve address of an existing node is the agent's, even when its pod is gone",
			eps:   []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": reserve1},
			ended: long,
			want:  []string{"delete ns/web PodGone"},
		},
		{
			name: "spares of a deleted node, first seen: wait GoneDelay",
			recs: map[string]records.Owner{"a/10.0.0.1": reserve9},
			want: []string{"recheck a/10.0.0.1 +30s NodeGone"},
		},
		{
			name:  "spares of a deleted node: released (NodeGone)",
			recs:  map[string]records.Owner{"a/10.0.0.1": reserve9, "a/10.0.0.2": reserve9},
			ended: long,
			want:  []string{"release a/10.0.0.1 NodeGone", "release a/10.0.0.2 NodeGone"},
		},
		{
			name:  "a deleted node's handed-out address named by a live pod's endpoint: rebound to the pod",
			pods:  []GCPod{gcPod("web", "u1", onNode("n9"))},
			eps:   []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": reserve9, "a/10.0.0.2": reserve9},
			ended: long,
			want:  []string{"rebind a/10.0.0.1 NodeGone", "release a/10.0.0.2 NodeGone"},
		},
		{
			name: "a deleted node's handed-out address, node first seen gone: the rebind waits too",
			pods: []GCPod{gcPod("web", "u1", onNode("n9"))},
			eps:  []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": reserve9},
			want: []string{"recheck a/10.0.0.1 +30s NodeGone"},
		},
		{
			name:  "a deleted node's handed-out address of a retained StatefulSet pod: rebound, kept",
			eps:   []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, true, true)},
			recs:  map[string]records.Owner{"a/10.0.0.1": reserve9},
			ended: long,
			want:  []string{"rebind a/10.0.0.1 NodeGone"},
		},
		{
			name:  "a deleted node's handed-out address of a gone pod: released for the pod's reason",
			eps:   []GCEndpoint{gcEP("web", "u1", "a/10.0.0.1")},
			recs:  map[string]records.Owner{"a/10.0.0.1": reserve9},
			ended: long,
			want:  []string{"delete ns/web PodGone", "release a/10.0.0.1 PodGone"},
		},
		// StatefulSets: kept while the StatefulSet wants the ordinal.
		{
			name:  "StatefulSet pod deleted for a restart, gone a day: kept, no recheck",
			eps:   []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, true, true)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: map[uint64]time.Time{gcKey("u1"): at(-24 * time.Hour)},
		},
		{
			name: "StatefulSet pod evicted (Failed) while wanted: kept",
			pods: []GCPod{gcPod("db-0", "u1", phase(PodFailed), podOf("db", 0, true, true))},
			eps:  []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, true, true)},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "StatefulSet pod stuck terminating on a NotReady node while wanted: kept",
			pods: []GCPod{gcPod("db-0", "u1", onNode("n2"), deleting(-time.Hour), podOf("db", 0, true, true))},
			eps:  []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, true, true)},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "a pod its StatefulSet wants keeps, though its endpoint is not marked retained",
			pods: []GCPod{gcPod("db-0", "u1", phase(PodFailed), podOf("db", 0, true, true))},
			eps:  []GCEndpoint{gcEP("db-0", "u1", "a/10.0.0.1")},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "StatefulSet pod without endpoint, finished, while wanted: kept",
			pods: []GCPod{gcPod("db-0", "u1", phase(PodFailed), podOf("db", 0, true, true))},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name:  "StatefulSet pod re-created, endpoint and pool still name the old UID: kept",
			pods:  []GCPod{gcPod("db-0", "u2", phase(PodPending), podOf("db", 0, true, true))},
			eps:   []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, true, true)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: long,
		},
		{
			name:  "StatefulSet pod re-created, the pool rebound to the new UID, the endpoint not yet: kept",
			pods:  []GCPod{gcPod("db-0", "u2", podOf("db", 0, true, true))},
			eps:   []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, true, true)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u2")},
			ended: long,
		},
		{
			name:  "StatefulSet pod re-created, the endpoint rewritten to the new UID, the pool not yet: kept",
			pods:  []GCPod{gcPod("db-0", "u2", podOf("db", 0, true, true))},
			eps:   []GCEndpoint{retained(gcEP("db-0", "u2", "a/10.0.0.1"), "db", 0, true, true)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: long,
		},
		{
			name:  "the same, with the new pod not in the pod cache yet: kept",
			eps:   []GCEndpoint{retained(gcEP("db-0", "u2", "a/10.0.0.1"), "db", 0, true, true)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: long,
		},
		// StatefulSets: the reclaim policy once the StatefulSet no longer wants the ordinal.
		{
			name: "StatefulSet scaled down, pod still running: kept",
			pods: []GCPod{gcPod("db-2", "u1", podOf("db", 2, true, false))},
			eps:  []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
		},
		{
			name: "StatefulSet scaled down, pod terminating within grace: recheck at its end",
			pods: []GCPod{gcPod("db-2", "u1", deleting(30*time.Second), podOf("db", 2, true, false))},
			eps:  []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"recheck a/10.0.0.1 +30s StatefulSetScaledDown", "recheck ns/db-2 +30s StatefulSetScaledDown"},
		},
		{
			name: "StatefulSet scaled down, Follow, pod just gone: waits GoneDelay",
			eps:  []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs: map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			want: []string{"recheck a/10.0.0.1 +30s StatefulSetScaledDown", "recheck ns/db-2 +30s StatefulSetScaledDown"},
		},
		{
			name:  "StatefulSet scaled down, Follow: released, endpoint deleted",
			eps:   []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: long,
			want:  []string{"delete ns/db-2 StatefulSetScaledDown", "release a/10.0.0.1 StatefulSetScaledDown"},
		},
		{
			name:  "StatefulSet scaled down, Follow, pod finished: released at once",
			pods:  []GCPod{gcPod("db-2", "u1", phase(PodSucceeded), podOf("db", 2, true, false))},
			eps:   []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: nil,
			want:  []string{"delete ns/db-2 StatefulSetScaledDown", "release a/10.0.0.1 StatefulSetScaledDown"},
		},
		{
			name:  "StatefulSet deleted, Follow: released",
			eps:   []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, false, true)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: long,
			want:  []string{"delete ns/db-0 StatefulSetDeleted", "release a/10.0.0.1 StatefulSetDeleted"},
		},
		{
			name:     "StatefulSet scaled down, Never: kept, no recheck",
			eps:      []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": never},
			ended:    long,
		},
		{
			name:     "StatefulSet deleted, Never: kept",
			eps:      []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, false, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": never},
			ended:    long,
		},
		{
			name:     "StatefulSet scaled down, Reserved: kept, no recheck",
			eps:      []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": v2beta1.ReclaimReserved},
			ended:    long,
		},
		{
			name:     "StatefulSet deleted, Reserved: released",
			eps:      []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, false, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": v2beta1.ReclaimReserved},
			ended:    long,
			want:     []string{"delete ns/db-0 StatefulSetDeleted", "release a/10.0.0.1 StatefulSetDeleted"},
		},
		{
			name:     "StatefulSet deleted, Reserved, pod just gone: waits GoneDelay",
			eps:      []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, false, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": v2beta1.ReclaimReserved},
			want:     []string{"recheck a/10.0.0.1 +30s StatefulSetDeleted", "recheck ns/db-0 +30s StatefulSetDeleted"},
		},
		{
			name:     "StatefulSet deleted, Reserved on one pool, 1h on the other: the duration, for all",
			eps:      []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1", "b/10.0.1.1"), "db", 0, false, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1"), "b/10.0.1.1": records.OwnerOf("u1", "ctr-u1", "net1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": v2beta1.ReclaimReserved, "b": "1h"},
			ended:    map[uint64]time.Time{gcKey("u1"): at(-10 * time.Minute)},
			want:     []string{"recheck a/10.0.0.1 +50m0s ReclaimExpired", "recheck b/10.0.1.1 +50m0s ReclaimExpired", "recheck ns/db-0 +50m0s ReclaimExpired"},
		},
		{
			name:     "StatefulSet scaled down, Reserved on one pool, 1h on the other: kept, no recheck",
			eps:      []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1", "b/10.0.1.1"), "db", 2, true, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1"), "b/10.0.1.1": records.OwnerOf("u1", "ctr-u1", "net1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": v2beta1.ReclaimReserved, "b": "1h"},
			ended:    long,
		},
		{
			name:     "StatefulSet scaled down, 10m, gone 5m: recheck at 10m",
			eps:      []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": "10m"},
			ended:    map[uint64]time.Time{gcKey("u1"): at(-5 * time.Minute)},
			want:     []string{"recheck a/10.0.0.1 +5m0s ReclaimExpired", "recheck ns/db-2 +5m0s ReclaimExpired"},
		},
		{
			name:     "StatefulSet scaled down, 10m, gone 10m: released (ReclaimExpired)",
			eps:      []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": "10m"},
			ended:    map[uint64]time.Time{gcKey("u1"): at(-10 * time.Minute)},
			want:     []string{"delete ns/db-2 ReclaimExpired", "release a/10.0.0.1 ReclaimExpired"},
		},
		{
			name:     "StatefulSet deleted, 10s, gone 10s: still waits for GoneDelay",
			eps:      []GCEndpoint{retained(gcEP("db-0", "u1", "a/10.0.0.1"), "db", 0, false, true)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": "10s"},
			ended:    map[uint64]time.Time{gcKey("u1"): at(-10 * time.Second)},
			want:     []string{"recheck a/10.0.0.1 +20s ReclaimExpired", "recheck ns/db-0 +20s ReclaimExpired"},
		},
		{
			name:  "StatefulSet out of range for an hour while the pod lived, 10m after the pod is gone",
			eps:   []GCEndpoint{withPolicy(retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false), "10m")},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: map[uint64]time.Time{gcKey("u1"): at(-time.Minute)},
			want:  []string{"recheck a/10.0.0.1 +9m0s ReclaimExpired", "recheck ns/db-2 +9m0s ReclaimExpired"},
		},
		// Reclaim policy resolution.
		{
			name:  "default policy from the configuration",
			cfg:   func(c *GCConfig) { c.DefaultReclaimPolicy = never },
			eps:   []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: long,
		},
		{
			name:     "a pool's policy wins over the default",
			cfg:      func(c *GCConfig) { c.DefaultReclaimPolicy = never },
			eps:      []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": follow},
			ended:    long,
			want:     []string{"delete ns/db-2 StatefulSetScaledDown", "release a/10.0.0.1 StatefulSetScaledDown"},
		},
		{
			name:     "the endpoint's policy wins over its pools'",
			eps:      []GCEndpoint{withPolicy(retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false), follow)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": never},
			ended:    long,
			want:     []string{"delete ns/db-2 StatefulSetScaledDown", "release a/10.0.0.1 StatefulSetScaledDown"},
		},
		{
			name:     "pools with different policies: the most retaining one, for all the pod's addresses",
			eps:      []GCEndpoint{retained(gcEP("db-2", "u1", "a/10.0.0.1", "b/10.0.1.1"), "db", 2, true, false)},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1"), "b/10.0.1.1": records.OwnerOf("u1", "ctr-u1", "net1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": follow, "b": "2h"},
			ended:    long,
			want:     []string{"recheck a/10.0.0.1 +1h0m0s ReclaimExpired", "recheck b/10.0.1.1 +1h0m0s ReclaimExpired", "recheck ns/db-2 +1h0m0s ReclaimExpired"},
		},
		{
			name:  "an invalid policy keeps, with a warning",
			eps:   []GCEndpoint{withPolicy(retained(gcEP("db-2", "u1", "a/10.0.0.1"), "db", 2, true, false), "0s")},
			recs:  map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			ended: long,
			want:  []string{"warn 1"},
		},
		{
			name:     "the reclaim policy does not apply to pods without retention",
			pods:     []GCPod{gcPod("web-2", "u1", phase(PodSucceeded))},
			eps:      []GCEndpoint{gcEP("web-2", "u1", "a/10.0.0.1")},
			recs:     map[string]records.Owner{"a/10.0.0.1": gcOwner("u1")},
			policies: map[string]v2beta1.ReclaimPolicy{"a": never},
			want:     []string{"delete ns/web-2 PodFinished", "release a/10.0.0.1 PodFinished"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultGCConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			nodes := tt.nodes
			if nodes == nil {
				nodes = gcNodes
			}
			in := GCInput{Config: cfg, Pods: tt.pods, Nodes: nodes, Endpoints: tt.eps, Pools: gcPools(t, tt.recs, tt.policies), EndedSince: tt.ended}
			now := at(tt.now)
			plan := PlanGC(in, now)
			if got := summary(plan, now); !slices.Equal(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			checkPlan(t, in, now, plan)
		})
	}
}
