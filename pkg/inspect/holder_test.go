package inspect

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

func pool(name, subnet, ips string, change func(*v2beta1.SpiderIPPool)) v2beta1.SpiderIPPool {
	sp := v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(subnet), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(ips)}}}
	if change != nil {
		change(&sp)
	}
	return sp
}

func withRecords(subnet string, recs ...records.Record) func(*v2beta1.SpiderIPPool) {
	return func(sp *v2beta1.SpiderIPPool) {
		data, err := records.Encode(netip.MustParsePrefix(subnet), recs)
		if err != nil {
			panic(err)
		}
		if sp.Status.Orbweaver == nil {
			sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
		}
		sp.Status.Orbweaver.Records = data
	}
}

func grants(sp *v2beta1.SpiderIPPool) {
	if sp.Status.Orbweaver == nil {
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
	}
	sp.Status.Orbweaver.Allocation = v2beta1.AllocationGrants
}

func endpoint(ns, name, uid, node, nic, addr, pool, ctr string) v2beta1.SpiderEndpoint {
	se := v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.Unix(1700000000, 0)}}
	se.Status.Current = v2beta1.PodIPAllocation{UID: uid, Node: node,
		IPs: []v2beta1.IPAllocationDetail{{NIC: nic, IPv4: ptr.To(addr + "/24"), IPv4Pool: ptr.To(pool)}}}
	if ctr != "" {
		se.Status.Current.Orbweaver = &v2beta1.PodAllocationOrbweaver{ContainerID: ctr}
	}
	return se
}

func block(pool, subnet, start string, owners map[string]string) ipamv1.IPBlock {
	g := &ipam.GrantBlock{Start: netip.MustParseAddr(start), Owners: map[netip.Addr]string{}, Reclaim: map[netip.Addr]string{}}
	for a, n := range owners {
		g.Owners[netip.MustParseAddr(a)] = n
	}
	b := ipamv1.IPBlock{ObjectMeta: metav1.ObjectMeta{Name: ipam.BlockName(pool, g.Start)}}
	g.Write(pool, &b)
	return b
}

// TestWhoHolds answers "who holds this IP" for every state an address can be in.
func TestWhoHolds(t *testing.T) {
	const sub = "10.9.0.0/24"
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orphan-record", UID: types.UID("u-rec")}, Spec: corev1.PodSpec{NodeName: "n2"}}
	snap := Snapshot{
		Pools: []v2beta1.SpiderIPPool{
			pool("rec", sub, "10.9.0.1-10.9.0.50", func(sp *v2beta1.SpiderIPPool) {
				sp.Spec.ExcludeIPs = []v2beta1.IPOrRange{"10.9.0.40"}
				withRecords(sub,
					records.Record{IP: a("10.9.0.1"), Owner: records.OwnerOf("u-web", "c1", "eth0")},
					records.Record{IP: a("10.9.0.2"), Owner: records.ReserveOwner("n1")},
					records.Record{IP: a("10.9.0.3"), Owner: records.OwnerOf("u-rec", "", "eth0")},
					records.Record{IP: a("10.9.0.4"), Owner: records.OwnerOf("u-gone", "c9", "eth0")},
				)(sp)
				sp.Status.Orbweaver.EIPs = []v2beta1.EIPBinding{{IP: "10.9.0.1", PublicIP: "203.0.113.7", Phase: v2beta1.EIPBound}}
			}),
			pool("gr", "10.8.0.0/24", "10.8.0.1-10.8.0.50", grants),
			pool("sp", "10.7.0.0/24", "10.7.0.1-10.7.0.50", func(sp *v2beta1.SpiderIPPool) {
				sp.Status.AllocatedIPs = ptr.To(`{"10.7.0.5":{"pod":"ns/old","podUid":"u-old"}}`)
			}),
			pool("other", "10.6.0.0/24", "10.6.0.100-10.6.0.110", nil),
		},
		Endpoints: []v2beta1.SpiderEndpoint{
			endpoint("ns", "web", "u-web", "n1", "eth0", "10.9.0.1", "rec", "c1"),
			endpoint("ns", "api", "u-api", "n3", "net1", "10.8.0.7", "gr", "c2"),
			endpoint("ns", "dup-a", "u-a", "n3", "eth0", "10.8.0.9", "gr", "c3"),
			endpoint("ns", "dup-b", "u-b", "n4", "eth0", "10.8.0.9", "gr", "c4"),
		},
		Blocks: []ipamv1.IPBlock{block("gr", "10.8.0.0/24", "10.8.0.0", map[string]string{"10.8.0.7": "n3", "10.8.0.8": "n5", "10.8.0.9": "n3"})},
		Pods:   []corev1.Pod{pod},
		Nodes:  []corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, {ObjectMeta: metav1.ObjectMeta{Name: "n2"}}},
		Reserved: []v2beta1.SpiderReservedIP{{ObjectMeta: metav1.ObjectMeta{Name: "r"},
			Spec: v2beta1.ReservedIPSpec{IPVersion: ptr.To(v2beta1.IPv4), IPs: []v2beta1.IPOrRange{"10.9.0.45"}}}},
	}
	for _, tc := range []struct {
		addr  string
		want  []string // "pool state ns/pod node iface" per holding
		notes []string // substrings of the notes, in any holding
		eip   string
	}{
		{addr: "10.9.0.1", want: []string{"rec Held ns/web n1 eth0"}, eip: "203.0.113.7"},
		{addr: "10.9.0.2", want: []string{"rec Spare / n1 "}, notes: []string{"reserve of node n1"}},
		{addr: "10.9.0.3", want: []string{"rec Held ns/orphan-record n2 "}, notes: []string{"no SpiderEndpoint"}},
		{addr: "10.9.0.4", want: []string{"rec Held /  "}, notes: []string{"no longer exists"}},
		{addr: "10.9.0.5", want: []string{"rec Free /  "}},
		{addr: "10.9.0.40", want: []string{"rec Excluded /  "}, notes: []string{"spec.excludeIPs"}},
		{addr: "10.9.0.45", want: []string{"rec Excluded /  "}, notes: []string{"SpiderReservedIP"}},
		{addr: "10.8.0.7", want: []string{"gr Held ns/api n3 net1"}},
		{addr: "10.8.0.8", want: []string{"gr Spare / n5 "}, notes: []string{"granted to node n5"}},
		{addr: "10.8.0.9", want: []string{"gr Held ns/dup-a n3 eth0", "gr Held ns/dup-b n4 eth0"}, notes: []string{"one of 2 holders", "granted to node n3, not the pod's node"}},
		{addr: "10.7.0.5", want: []string{"sp SpiderPoolRecord ns/old  "}, notes: []string{"not imported"}},
		{addr: "10.6.0.5"}, // in the subnet, not in spec.ips, nothing holds it: not the pool's
		{addr: "10.5.0.1"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			got := WhoHolds(a(tc.addr), snap)
			var lines, notes []string
			for _, h := range got {
				lines = append(lines, strings.Join([]string{h.Pool, h.State, h.Namespace + "/" + h.Pod, h.Node, h.Interface}, " "))
				notes = append(notes, h.Notes...)
				if tc.eip != "" && h.EIP != tc.eip {
					t.Errorf("EIP %q, want %q", h.EIP, tc.eip)
				}
			}
			if !slices.Equal(lines, tc.want) {
				t.Errorf("got %q, want %q", lines, tc.want)
			}
			all := strings.Join(notes, "; ")
			for _, n := range tc.notes {
				if !strings.Contains(all, n) {
					t.Errorf("notes %q lack %q", all, n)
				}
			}
		})
	}
}
