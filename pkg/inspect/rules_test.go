package inspect

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// livePod is a pod with a UID on a node, in a phase ("" is Pending).
func livePod(ns, name, uid, node string, phase corev1.PodPhase) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}, Spec: corev1.PodSpec{NodeName: node}}
	p.Status.Phase = phase
	return p
}

func nodes(names ...string) []corev1.Node {
	var out []corev1.Node
	for _, n := range names {
		out = append(out, corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
	return out
}

func ownedBy(set string, se v2beta1.SpiderEndpoint) v2beta1.SpiderEndpoint {
	se.Status.OwnerControllerType, se.Status.OwnerControllerName = ipam.KindStatefulSet, set
	return se
}

func statefulSet(ns, name string, replicas int32) appsv1.StatefulSet {
	return appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(replicas)}}
}

func rec(a, uid, ctr, nic string) records.Record {
	return records.Record{IP: netip.MustParseAddr(a), Owner: records.OwnerOf(uid, ctr, nic)}
}

func reserve(a, node string) records.Record {
	return records.Record{IP: netip.MustParseAddr(a), Owner: records.ReserveOwner(node)}
}

const (
	sub  = "10.9.0.0/24"
	gsub = "10.8.0.0/24"
)

// recPool is a Records-mode pool 10.9.0.1-50 with these records.
func recPool(recs ...records.Record) v2beta1.SpiderIPPool {
	return pool("rec", sub, "10.9.0.1-10.9.0.50", withRecords(sub, recs...))
}

// grPool is a Grants-mode pool 10.8.0.1-50.
func grPool() v2beta1.SpiderIPPool { return pool("gr", gsub, "10.8.0.1-10.8.0.50", grants) }

func grantBlock(owners map[string]string) ipamv1.IPBlock {
	return block("gr", gsub, "10.8.0.0", owners)
}

// TestRules is the table of classify's rules, seen through Check: each case is a small
// cluster and the problems it must show (kind, pool, address), and for some what the
// note or the fix says. A clean setup shows none.
func TestRules(t *testing.T) {
	running := corev1.PodRunning
	for _, tc := range []struct {
		name string
		snap Snapshot
		want []string // "Kind pool address"
		// detail and fix are substrings of the first problem's Detail and Fix.
		detail, fix string
		// notes are substrings of WhoHolds' notes of addr, none when empty (a clean
		// address has no notes at all).
		addr  string
		notes []string
	}{
		{
			name: "records, clean",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.1", "u1", "c1", "eth0"), reserve("10.9.0.2", "n1"), reserve("10.9.0.3", "n1"))},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.9.0.1", "rec", "c1"),
					endpoint("ns", "b", "u2", "n1", "eth0", "10.9.0.3", "rec", "c2")}, // handed out from the reserve
				Pods:  []corev1.Pod{livePod("ns", "a", "u1", "n1", running), livePod("ns", "b", "u2", "n1", running)},
				Nodes: nodes("n1")},
			addr: "10.9.0.1",
		},
		{
			name: "grants, clean",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.8.0.1", "gr", "c1")},
				Blocks:    []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1", "10.8.0.2": "n1"})},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			addr: "10.8.0.1",
		},
		{
			name: "SpiderPool's record and the same pod's endpoint are one holder",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{pool("sp", "10.7.0.0/24", "10.7.0.1-10.7.0.50", func(sp *v2beta1.SpiderIPPool) {
				sp.Status.AllocatedIPs = ptr.To(`{"10.7.0.5":{"pod":"ns/a","podUid":"u1"}}`)
			})},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.7.0.5", "sp", "")},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			addr: "10.7.0.5", notes: []string{"not imported yet"},
		},
		{
			name: "an endpoint whose pod is gone",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u-gone", "n1", "eth0", "10.8.0.1", "gr", "c1")},
				Blocks:    []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1"})}, Nodes: nodes("n1")},
			want:   []string{"Leak gr 10.8.0.1"},
			detail: "garbage collection frees it", fix: "none: garbage collection frees it",
		},
		{
			name: "a record whose pod is gone, with no endpoint",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.4", "u-gone", "c9", "eth0"))}},
			want: []string{"Leak rec 10.9.0.4"}, detail: "recorded for a pod that no longer exists",
		},
		{
			name: "a finished pod's endpoint and record",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.1", "u1", "c1", "eth0"))},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "job", "u1", "n1", "eth0", "10.9.0.1", "rec", "c1")},
				Pods:      []corev1.Pod{livePod("ns", "job", "u1", "n1", corev1.PodSucceeded)}, Nodes: nodes("n1")},
			want: []string{"Leak rec 10.9.0.1"}, detail: "has Succeeded",
		},
		{
			name: "a StatefulSet's endpoint kept for its next pod",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints:    []v2beta1.SpiderEndpoint{ownedBy("db", endpoint("ns", "db-0", "u-old", "n1", "eth0", "10.8.0.1", "gr", "c1"))},
				Blocks:       []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1"})},
				StatefulSets: []appsv1.StatefulSet{statefulSet("ns", "db", 1)}, Nodes: nodes("n1")},
			addr: "10.8.0.1", notes: []string{"kept for StatefulSet ns/db"},
		},
		{
			name: "an added stateful kind's endpoint (OpenKruise), not read by the CLI",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints: []v2beta1.SpiderEndpoint{func() v2beta1.SpiderEndpoint {
					se := ownedBy("kdb", endpoint("ns", "kdb-3", "u-old", "n1", "eth0", "10.8.0.1", "gr", "c1"))
					se.Annotations = map[string]string{ipam.AnnoOwnerAPIVersion: "apps.kruise.io/v1beta1"}
					return se
				}()},
				Blocks: []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1"})}, Nodes: nodes("n1")},
			addr: "10.8.0.1", notes: []string{"kept for apps.kruise.io/v1beta1 StatefulSet ns/kdb", "--stateful-workload-kinds"},
		},
		{
			name: "a StatefulSet scaled down, reclaim policy Never",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{func() v2beta1.SpiderIPPool {
				sp := grPool()
				sp.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptr.To(v2beta1.ReclaimNever)}
				return sp
			}()},
				Endpoints:    []v2beta1.SpiderEndpoint{ownedBy("db", endpoint("ns", "db-1", "u-old", "n1", "eth0", "10.8.0.1", "gr", "c1"))},
				Blocks:       []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1"})},
				StatefulSets: []appsv1.StatefulSet{statefulSet("ns", "db", 1)}, Nodes: nodes("n1")},
			want:   []string{"Leak gr 10.8.0.1"},
			detail: "never frees it (reclaim policy Never)", fix: "garbage collection does not",
		},
		{
			name: "a StatefulSet scaled down, reclaim policy Reserved",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{func() v2beta1.SpiderIPPool {
				sp := grPool()
				sp.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptr.To(v2beta1.ReclaimReserved)}
				return sp
			}()},
				Endpoints:    []v2beta1.SpiderEndpoint{ownedBy("db", endpoint("ns", "db-1", "u-old", "n1", "eth0", "10.8.0.1", "gr", "c1"))},
				Blocks:       []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1"})},
				StatefulSets: []appsv1.StatefulSet{statefulSet("ns", "db", 1)}, Nodes: nodes("n1")},
			want:   []string{"Leak gr 10.8.0.1"},
			detail: "keeps it while the StatefulSet exists (reclaim policy Reserved)", fix: "garbage collection does not",
		},
		{
			name: "a StatefulSet deleted, reclaim policy Reserved",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{func() v2beta1.SpiderIPPool {
				sp := grPool()
				sp.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptr.To(v2beta1.ReclaimReserved)}
				return sp
			}()},
				Endpoints: []v2beta1.SpiderEndpoint{ownedBy("db", endpoint("ns", "db-1", "u-old", "n1", "eth0", "10.8.0.1", "gr", "c1"))},
				Blocks:    []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1"})},
				Nodes:     nodes("n1")},
			want:   []string{"Leak gr 10.8.0.1"},
			detail: "frees it: the StatefulSet is deleted (reclaim policy Reserved)",
		},
		{
			name: "two live endpoints of one address",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.8.0.9", "gr", "c1"),
					endpoint("ns", "b", "u2", "n1", "eth0", "10.8.0.9", "gr", "c2")},
				Blocks: []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.9": "n1"})},
				Pods:   []corev1.Pod{livePod("ns", "a", "u1", "n1", running), livePod("ns", "b", "u2", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"DoubleOwner gr 10.8.0.9"}, detail: "one of 2 holders",
		},
		{
			name: "a record of one pod, the endpoint of another",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.1", "u1", "c1", "eth0"))},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "b", "u2", "n1", "eth0", "10.9.0.1", "rec", "c2")},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running), livePod("ns", "b", "u2", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"DoubleOwner rec 10.9.0.1"}, addr: "10.9.0.1", notes: []string{"the record's pod is not the endpoint's", "one of 2 holders"},
		},
		{
			name: "an endpoint whose address the records do not hold",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.9.0.7", "rec", "c1")},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"OrphanEndpoint rec 10.9.0.7"}, detail: "may hand it to another pod",
		},
		{
			name: "an endpoint naming a pool that does not exist",
			snap: Snapshot{Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.5.0.7", "gone", "c1")},
				Pods: []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"OrphanEndpoint gone 10.5.0.7"}, addr: "10.5.0.7", notes: []string{"which does not exist"},
		},
		{
			name: "an endpoint naming an address outside its pool's subnet",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.5.0.7", "gr", "c1")},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"OutsidePool gr 10.5.0.7"}, detail: "outside the pool's subnet",
		},
		{
			name: "held, though removed from spec.ips",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.60", "u1", "c1", "eth0"))},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.9.0.60", "rec", "c1")},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"OutsidePool rec 10.9.0.60"},
		},
		{
			name: "held, though excluded since",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{func() v2beta1.SpiderIPPool {
				sp := recPool(rec("10.9.0.40", "u1", "c1", "eth0"))
				sp.Spec.ExcludeIPs = []v2beta1.IPOrRange{"10.9.0.40"}
				return sp
			}()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.9.0.40", "rec", "c1")},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"ExcludedButHeld rec 10.9.0.40"},
		},
		{
			name: "held by a pod on one node, granted to another",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.8.0.3", "gr", "c1")},
				Blocks:    []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.3": "n2"})},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1", "n2")},
			want: []string{"GrantedToOtherNode gr 10.8.0.3"}, detail: "granted to node n2, not the pod's node",
		},
		{
			name: "held in a Grants pool, granted to no node",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u1", "n1", "eth0", "10.8.0.3", "gr", "c1")},
				Pods:      []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"NotGranted gr 10.8.0.3"},
		},
		{
			name: "a live pod's record with no endpoint",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.3", "u1", "", "eth0"))},
				Pods: []corev1.Pod{livePod("ns", "a", "u1", "n1", running)}, Nodes: nodes("n1")},
			want: []string{"RecordWithoutEndpoint rec 10.9.0.3"},
		},
		{
			name: "the reserve of a node that is gone",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(reserve("10.9.0.2", "n-gone"))}},
			want: []string{"Leak rec 10.9.0.2"}, detail: "NodeGone",
		},
		{
			name: "a grant to a node that is gone",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Blocks: []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.2": "n-gone"})}},
			want: []string{"Leak gr 10.8.0.2"}, detail: "grant controller takes the grant back",
		},
		{
			name: "records that do not decode",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{pool("rec", sub, "10.9.0.1-10.9.0.50", func(sp *v2beta1.SpiderIPPool) {
				sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: []byte{9, 9, 9}}
			})}},
			want: []string{"Unreadable rec "}, detail: "status.orbweaver.records",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := Check(tc.snap, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, string(p.Kind)+" "+p.Pool+" "+p.Address)
				if p.Fix == "" || len(p.Holders) == 0 && p.Address != "" {
					t.Errorf("%s: no fix or no holders: %+v", p.Kind, p)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems %q, want %q (%+v)", got, tc.want, ps)
			}
			if tc.detail != "" && !strings.Contains(ps[0].Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", ps[0].Detail, tc.detail)
			}
			if tc.fix != "" && !strings.Contains(ps[0].Fix, tc.fix) {
				t.Errorf("fix %q lacks %q", ps[0].Fix, tc.fix)
			}
			if tc.addr == "" {
				return
			}
			var notes []string
			for _, h := range WhoHolds(netip.MustParseAddr(tc.addr), tc.snap) {
				notes = append(notes, h.Notes...)
			}
			all := strings.Join(notes, "; ")
			if len(tc.notes) == 0 && all != "" {
				t.Errorf("notes %q, want none", all)
			}
			for _, n := range tc.notes {
				if !strings.Contains(all, n) {
					t.Errorf("notes %q lack %q", all, n)
				}
			}
		})
	}
}

// TestCheckPools: --pool limits the check, and an unknown pool is an error.
func TestCheckPools(t *testing.T) {
	snap := Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.4", "u-gone", "c9", "eth0")), grPool()}}
	if ps, err := Check(snap, []string{"gr"}); err != nil || len(ps) != 0 {
		t.Errorf("check of gr: %v, %+v", err, ps)
	}
	if ps, err := Check(snap, []string{"rec"}); err != nil || len(ps) != 1 {
		t.Errorf("check of rec: %v, %+v", err, ps)
	}
	if _, err := Check(snap, []string{"nope"}); !errors.Is(err, ipam.ErrPoolNotFound) {
		t.Errorf("check of an unknown pool: %v", err)
	}
}
