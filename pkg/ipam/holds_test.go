package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// TestEndpointHolds: what endpoints hold in a pool, as the controller-side readers of
// Grants pools see it.
func TestEndpointHolds(t *testing.T) {
	nic := func(name, v4, pool4, v6, pool6 string) v2beta1.IPAllocationDetail {
		d := v2beta1.IPAllocationDetail{NIC: name}
		if v4 != "" {
			d.IPv4, d.IPv4Pool = ptr.To(v4), ptr.To(pool4)
		}
		if v6 != "" {
			d.IPv6, d.IPv6Pool = ptr.To(v6), ptr.To(pool6)
		}
		return d
	}
	se := func(name string, nics ...v2beta1.IPAllocationDetail) v2beta1.SpiderEndpoint {
		return v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{UID: "uid-" + name, Node: "n1", IPs: nics}}}
	}
	eps := []v2beta1.SpiderEndpoint{
		se("b", nic("eth0", "10.0.0.7/24", "p", "fd00::7/64", "p6")),
		se("a", nic("eth0", "10.0.0.9", "p", "", ""), nic("net1", "10.0.1.5/24", "q", "", "")),
		se("twin", nic("eth0", "10.0.0.9/24", "p", "", "")),
		se("twice", nic("eth0", "10.0.0.3/24", "p", "", ""), nic("net1", "10.0.0.3/24", "p", "", "")),
		se("junk", nic("eth0", "garbage", "p", "", ""), nic("net1", "192.168.0.1/24", "p", "", "")),
		se("none"),
	}
	tests := []struct {
		pool   string
		subnet string
		want   []string // "addr ns/name"
		addrs  []string
	}{
		{pool: "p", subnet: "10.0.0.0/24",
			want:  []string{"10.0.0.3 ns/twice", "10.0.0.7 ns/b", "10.0.0.9 ns/a", "10.0.0.9 ns/twin"},
			addrs: []string{"10.0.0.3", "10.0.0.7", "10.0.0.9"}},
		{pool: "q", subnet: "10.0.1.0/24", want: []string{"10.0.1.5 ns/a"}, addrs: []string{"10.0.1.5"}},
		{pool: "p6", subnet: "fd00::/64", want: []string{"fd00::7 ns/b"}, addrs: []string{"fd00::7"}},
		{pool: "p", subnet: "10.9.0.0/24"},
		{pool: "unknown", subnet: "10.0.0.0/24"},
	}
	for _, tt := range tests {
		t.Run(tt.pool+" "+tt.subnet, func(t *testing.T) {
			holds := EndpointHolds(tt.pool, netip.MustParsePrefix(tt.subnet), eps)
			var got []string
			for _, h := range holds {
				got = append(got, fmt.Sprintf("%s %s/%s", h.Addr, h.Namespace, h.Name))
				if h.PodUID != "uid-"+h.Name || h.Node != "n1" {
					t.Errorf("hold %+v: want the endpoint's pod UID and node", h)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("EndpointHolds = %q, want %q", got, tt.want)
			}
			var addrs []string
			for _, a := range HeldAddrs(holds) {
				addrs = append(addrs, a.String())
			}
			if !slices.Equal(addrs, tt.addrs) {
				t.Errorf("HeldAddrs = %q, want %q", addrs, tt.addrs)
			}
			set := HeldSet(holds)
			if n, _ := set.Count().Uint64(); n != uint64(len(tt.addrs)) {
				t.Errorf("HeldSet = %s, want %d addresses", set, len(tt.addrs))
			}
			for _, a := range tt.addrs {
				if !set.Contains(netip.MustParseAddr(a)) {
					t.Errorf("HeldSet %s lacks %s", set, a)
				}
			}
		})
	}
	if got := EndpointPools(&eps[1]); !slices.Equal(got, []string{"p", "q"}) {
		t.Errorf("EndpointPools = %q, want [p q]", got)
	}
	if got := EndpointPools(&eps[0]); !slices.Equal(got, []string{"p", "p6"}) {
		t.Errorf("EndpointPools = %q, want [p p6]", got)
	}
}
