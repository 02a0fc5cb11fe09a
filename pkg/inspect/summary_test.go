package inspect

import (
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestSummarize adds up pools of each mode address by address: an address counts once
// (a pod's reserve address handed out is Used, not Spare), excluded and reserved
// addresses are neither Free nor counted, and each node gets its own pods' and spares.
func TestSummarize(t *testing.T) {
	running := corev1.PodRunning
	snap := Snapshot{
		Pools: []v2beta1.SpiderIPPool{
			pool("rec", sub, "10.9.0.1-10.9.0.10", func(sp *v2beta1.SpiderIPPool) {
				sp.Spec.ExcludeIPs = []v2beta1.IPOrRange{"10.9.0.10"}
				withRecords(sub,
					rec("10.9.0.1", "u1", "c1", "eth0"),     // pod a, endpoint, on n1
					reserve("10.9.0.2", "n1"),               // spare of n1
					reserve("10.9.0.3", "n1"),               // handed to pod b on n1
					rec("10.9.0.4", "u-gone", "c9", "eth0"), // a pod that is gone
				)(sp)
			}),
			pool("gr", gsub, "10.8.0.1-10.8.0.20", grants),
			pool("sp", "10.7.0.0/24", "10.7.0.1-10.7.0.8", func(sp *v2beta1.SpiderIPPool) {
				sp.Status.AllocatedIPs = ptr.To(`{"10.7.0.5":{"pod":"ns/x","podUid":"ux"},"10.7.0.6":{"pod":"ns/y","podUid":"uy"}}`)
			}),
		},
		Endpoints: []v2beta1.SpiderEndpoint{
			endpoint("ns", "a", "u1", "n1", "eth0", "10.9.0.1", "rec", "c1"),
			endpoint("ns", "b", "u2", "n1", "eth0", "10.9.0.3", "rec", "c2"),
			endpoint("ns", "c", "u3", "n1", "eth0", "10.8.0.1", "gr", "c3"),
			endpoint("ns", "d", "u4", "n2", "eth0", "10.8.0.6", "gr", "c4"),
		},
		Blocks: []ipamv1.IPBlock{grantBlock(map[string]string{
			"10.8.0.1": "n1", "10.8.0.2": "n1", "10.8.0.3": "n1", "10.8.0.4": "n1", "10.8.0.5": "n1", "10.8.0.6": "n2"})},
		Pods: []corev1.Pod{livePod("ns", "a", "u1", "n1", running), livePod("ns", "b", "u2", "n1", running),
			livePod("ns", "c", "u3", "n1", running), livePod("ns", "d", "u4", "n2", running)},
		Nodes: nodes("n1", "n2"),
		Reserved: []v2beta1.SpiderReservedIP{{ObjectMeta: metav1.ObjectMeta{Name: "r"},
			Spec: v2beta1.ReservedIPSpec{IPVersion: ptr.To(v2beta1.IPv4), IPs: []v2beta1.IPOrRange{"10.9.0.9"}}}},
	}
	got, err := Summarize(snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []PoolSummary{
		{Pool: "rec", Mode: "Records", Subnet: sub, Total: 9, Used: 3, Spare: 1, Free: 4, // 9 - reserved .9 - 4 taken
			Nodes: []NodeCount{{Node: "", Used: 1}, {Node: "n1", Used: 2, Spare: 1}}},
		{Pool: "gr", Mode: "Grants", Subnet: gsub, Total: 20, Used: 2, Spare: 4, Free: 14,
			Nodes: []NodeCount{{Node: "n1", Used: 1, Spare: 4}, {Node: "n2", Used: 1}}},
		{Pool: "sp", Mode: "Records", Subnet: "10.7.0.0/24", Total: 8, SpiderPool: 2, Free: 6},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Summarize:\n got %+v\nwant %+v", got, want)
	}
	one, err := Summarize(snap, []string{"sp"})
	if err != nil || len(one) != 1 || one[0].Pool != "sp" {
		t.Errorf("Summarize of sp: %v %+v", err, one)
	}
	if _, err := Summarize(snap, []string{"sp", "nope"}); !errors.Is(err, ipam.ErrPoolNotFound) {
		t.Errorf("Summarize of an unknown pool: %v", err)
	}
}
