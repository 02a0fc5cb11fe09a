package eipbinding

import (
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	auto := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto}
	static := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-s1"}}
	follow := policy{spec: auto}
	never := policy{spec: auto, keep: true}
	ttl := policy{spec: auto, keep: true, releaseAfter: 10 * time.Minute}
	st := policy{spec: static}
	gone := policy{}
	deleting := policy{spec: auto, deleting: true}
	deletingStatic := policy{spec: static, deleting: true}
	otherCloud := policy{spec: &v2beta1.EIPSpec{Provider: "tencent", Mode: v2beta1.EIPAuto}, keep: true}
	pod := &holder{Pod: types.NamespacedName{Namespace: "ns", Name: "web-0"}, UID: "u1", Node: "n1"}
	moved := &holder{Pod: pod.Pod, UID: "u2", Node: "n2"}
	other := &holder{Pod: types.NamespacedName{Namespace: "ns", Name: "web-1"}, UID: "u3", Node: "n1"}
	b := func(phase v2beta1.EIPPhase, mods ...func(*v2beta1.EIPBinding)) *v2beta1.EIPBinding {
		x := &v2beta1.EIPBinding{IP: "10.0.0.10", Phase: phase, Provider: "aws", Token: "t", AllocationID: "eip-1", PublicIP: "203.0.113.1", Node: "n1", Pod: "ns/web-0"}
		for _, m := range mods {
			m(x)
		}
		return x
	}
	isStatic := func(x *v2beta1.EIPBinding) { x.Static, x.AllocationID = true, "eip-s1" }
	unbound := func(x *v2beta1.EIPBinding) { x.Node, x.Pod = "", "" }
	for _, tt := range []struct {
		name string
		s    ipState
		p    policy
		want op
	}{
		{"a held IP of an Auto pool gets an EIP", ipState{Held: true, Holder: pod}, follow, opAllocate},
		{"not before its endpoint is seen", ipState{Held: true}, follow, opNone},
		{"a free IP gets none", ipState{}, follow, opNone},
		{"a held IP of a Static pool adopts its EIP", ipState{Held: true, Holder: pod, StaticID: "eip-s1"}, st, opAdoptStatic},
		{"an IP past the Static list gets none", ipState{Held: true, Holder: pod}, st, opNone},
		{"an Allocate in flight is resumed", ipState{Binding: b(v2beta1.EIPAllocating), Held: true, Holder: pod}, follow, opAllocate},
		{"even when the IP was released meanwhile", ipState{Binding: b(v2beta1.EIPAllocating)}, follow, opAllocate},
		{"but not after it failed, when nobody wants it", ipState{Binding: b(v2beta1.EIPAllocating, func(x *v2beta1.EIPBinding) { x.Message = "quota" })}, follow, opForget},
		{"an allocated EIP of a held IP is associated", ipState{Binding: b(v2beta1.EIPAllocated, unbound), Held: true, Holder: pod}, follow, opAssociate},
		{"associating is checked", ipState{Binding: b(v2beta1.EIPAssociating), Held: true, Holder: pod}, follow, opCheck},
		{"bound stays", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: pod}, follow, opNone},
		{"bound, the pod re-created on the same node: noted", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: other}, follow, opNote},
		{"bound, the pod moved node: unbound to rebind", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: moved}, follow, opDisassociate},
		{"bound, the IP released: unbound", ipState{Binding: b(v2beta1.EIPBound)}, follow, opDisassociate},
		{"unbinding is checked", ipState{Binding: b(v2beta1.EIPUnbinding)}, follow, opCheck},
		{"Follow: released once unbound", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, follow, opRelease},
		{"Never: kept", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, never, opNone},
		{"a duration: scheduled", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, ttl, opSchedule},
		{"a duration: kept until then", ipState{Binding: b(v2beta1.EIPAllocated, unbound, func(x *v2beta1.EIPBinding) {
			x.ReleaseAfter = &metav1.Time{Time: now.Add(time.Second)}
		})}, ttl, opNone},
		{"a duration: released after", ipState{Binding: b(v2beta1.EIPAllocated, unbound, func(x *v2beta1.EIPBinding) {
			x.ReleaseAfter = &metav1.Time{Time: now}
		})}, ttl, opRelease},
		{"a duration: taken again before it ends", ipState{Binding: b(v2beta1.EIPAllocated, unbound, func(x *v2beta1.EIPBinding) {
			x.ReleaseAfter = &metav1.Time{Time: now.Add(time.Minute)}
		}), Held: true, Holder: pod}, ttl, opAssociate},
		{"releasing resumes", ipState{Binding: b(v2beta1.EIPReleasing)}, never, opRelease},
		{"the EIP attribute removed: bound EIPs unbound", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: pod}, gone, opDisassociate},
		{"the EIP attribute removed: released, even with Never", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, gone, opRelease},
		{"a Static EIP is never released", ipState{Binding: b(v2beta1.EIPAllocated, unbound, isStatic), StaticID: "eip-s1"}, st, opNone},
		{"a Static EIP no longer listed is forgotten, not released", ipState{Binding: b(v2beta1.EIPAllocated, unbound, isStatic)}, st, opForget},
		{"a Static EIP bound while the list changed is unbound first", ipState{Binding: b(v2beta1.EIPBound, isStatic), Held: true, Holder: pod, StaticID: "eip-s2"}, st, opDisassociate},
		{"a deleted pool: a held IP keeps its EIP", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: pod}, deleting, opNone},
		{"a deleted pool: a free IP's EIP is released", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, deleting, opRelease},
		{"a deleted Static pool: a free IP's EIP is let go, not released", ipState{Binding: b(v2beta1.EIPAllocated, unbound, isStatic), StaticID: "eip-s1"}, deletingStatic, opForget},
		{"the pool's cloud changed: a bound EIP of the old one is unbound", ipState{Binding: b(v2beta1.EIPBound), Held: true, Holder: pod}, otherCloud, opDisassociate},
		{"the pool's cloud changed: then released in the old cloud, even with Never", ipState{Binding: b(v2beta1.EIPAllocated, unbound)}, otherCloud, opRelease},
		{"an IP no longer of the pool: its EIP is released, even with Never", ipState{Binding: b(v2beta1.EIPAllocated, unbound), Outside: true}, never, opRelease},
		{"an Auto EIP of a pool turned Static is released", ipState{Binding: b(v2beta1.EIPAllocated, unbound), Held: true, Holder: pod, StaticID: "eip-s1"}, st, opRelease},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.s, tt.p, now); got != tt.want {
				t.Fatalf("decide = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStaticMap(t *testing.T) {
	total, err := ip.ParseRanges([]string{"10.0.0.20-10.0.0.21", "10.0.0.10"})
	if err != nil {
		t.Fatal(err)
	}
	got := staticMap(total, []string{"eip-a", "eip-b", "eip-c", "eip-d"})
	want := map[netip.Addr]string{
		netip.MustParseAddr("10.0.0.10"): "eip-a", netip.MustParseAddr("10.0.0.20"): "eip-b", netip.MustParseAddr("10.0.0.21"): "eip-c",
	}
	if len(got) != len(want) {
		t.Fatalf("staticMap = %v, want %v", got, want)
	}
	for a, id := range want {
		if got[a] != id {
			t.Fatalf("staticMap[%s] = %q, want %q (all: %v)", a, got[a], id, got)
		}
	}
}
