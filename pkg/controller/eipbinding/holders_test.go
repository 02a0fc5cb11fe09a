package eipbinding

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// TestHoldersOf: which addresses of a pool pods hold, and which pod. Records mode: the
// records say (a node reserve holds for no pod), and only the endpoint of the pod a
// record names is its holder. Grants mode: the endpoints say, each naming an address of
// the pool holds it, and an address two endpoints name is held by neither.
func TestHoldersOf(t *testing.T) {
	se := func(name, uid, pool, addr string) v2beta1.SpiderEndpoint {
		return v2beta1.SpiderEndpoint{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{UID: uid, Node: "node-" + name,
				IPs: []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(addr + "/24"), IPv4Pool: ptr.To(pool)}}}},
		}
	}
	base := func() *v2beta1.SpiderIPPool {
		return &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec: v2beta1.IPPoolSpec{Subnet: "10.0.0.0/24", IPs: []v2beta1.IPOrRange{"10.0.0.10-10.0.0.19"}}}
	}
	recorded := func(t *testing.T) *v2beta1.SpiderIPPool {
		sp := base()
		p, err := ipam.NewPool(sp, ip.Set{})
		if err != nil {
			t.Fatal(err)
		}
		p, _, err = p.Allocate([]records.Owner{records.OwnerOf("uid-a", "c", "eth0"), records.OwnerOf("uid-b", "c", "eth0")}, netip.MustParseAddr("10.0.0.10"))
		if err != nil {
			t.Fatal(err)
		}
		p, _ = p.Reserve(records.ReserveOwner("node-x"), 1, netip.MustParseAddr("10.0.0.15"))
		if err := p.WriteStatus(sp); err != nil {
			t.Fatal(err)
		}
		return sp
	}
	grants := func(*testing.T) *v2beta1.SpiderIPPool {
		sp := base()
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
		return sp
	}
	for _, tt := range []struct {
		name        string
		pool        func(*testing.T) *v2beta1.SpiderIPPool
		ses         []v2beta1.SpiderEndpoint
		want        map[string]string // address: "ns/name" of the holder, "" for none
		wantDoubled map[string][]string
	}{
		{
			name: "Records: the records' pods, with their endpoints when seen",
			pool: recorded,
			ses: []v2beta1.SpiderEndpoint{
				se("a", "uid-a", "p", "10.0.0.10"),
				se("stale", "uid-old", "p", "10.0.0.11"), // an earlier pod's endpoint
				se("c", "uid-c", "p", "10.0.0.12"),       // no record: not held in Records mode
			},
			want: map[string]string{"10.0.0.10": "ns/a", "10.0.0.11": ""},
		},
		{
			name: "Grants: every endpoint naming an address of the pool holds it",
			pool: grants,
			ses: []v2beta1.SpiderEndpoint{
				se("a", "uid-a", "p", "10.0.0.10"), se("b", "uid-b", "p", "10.0.0.11"),
				se("other", "uid-o", "q", "10.0.0.12"),   // another pool's
				se("stray", "uid-s", "p", "192.168.0.1"), // outside the subnet
				se("outside", "uid-x", "p", "10.0.0.50"), // outside spec.ips: still held
			},
			want: map[string]string{"10.0.0.10": "ns/a", "10.0.0.11": "ns/b", "10.0.0.50": "ns/outside"},
		},
		{
			name: "Grants: an address two endpoints name is held by neither",
			pool: grants,
			ses: []v2beta1.SpiderEndpoint{
				se("a", "uid-a", "p", "10.0.0.10"), se("twin", "uid-t", "p", "10.0.0.10"), se("b", "uid-b", "p", "10.0.0.11"),
			},
			want:        map[string]string{"10.0.0.10": "", "10.0.0.11": "ns/b"},
			wantDoubled: map[string][]string{"10.0.0.10": {"ns/a", "ns/twin"}},
		},
		{
			name: "Grants: the records are not read",
			pool: func(t *testing.T) *v2beta1.SpiderIPPool {
				sp := recorded(t)
				sp.Status.Orbweaver.Allocation = v2beta1.AllocationGrants
				return sp
			},
			want: map[string]string{},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sp := tt.pool(t)
			pool, err := ipam.NewPool(sp, ip.Set{})
			if err != nil {
				t.Fatal(err)
			}
			held, doubled := holdersOf(sp, pool, tt.ses)
			got := map[string]string{}
			for a, h := range held {
				got[a.String()] = ""
				if h != nil {
					got[a.String()] = h.Pod.String()
					if h.Node != "node-"+h.Pod.Name || h.UID == "" {
						t.Errorf("holder of %s: %+v, want its endpoint's node and pod UID", a, *h)
					}
				}
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("held = %v, want %v", got, tt.want)
			}
			gotDoubled := map[string][]string{}
			for a, names := range doubled {
				gotDoubled[a.String()] = names
			}
			if !maps.EqualFunc(gotDoubled, tt.wantDoubled, slices.Equal) {
				t.Errorf("doubled = %v, want %v", gotDoubled, tt.wantDoubled)
			}
		})
	}
}
