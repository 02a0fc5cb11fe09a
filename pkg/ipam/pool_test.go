package ipam

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

func spec(name, subnet string, ips, exclude []string) *v2beta1.SpiderIPPool {
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(subnet)}}
	for _, s := range ips {
		sp.Spec.IPs = append(sp.Spec.IPs, v2beta1.IPOrRange(s))
	}
	for _, s := range exclude {
		sp.Spec.ExcludeIPs = append(sp.Spec.ExcludeIPs, v2beta1.IPOrRange(s))
	}
	return sp
}

func owner(i int) records.Owner {
	return records.OwnerOf(fmt.Sprintf("uid-%d", i), fmt.Sprintf("ctr-%d", i), "eth0")
}

func owners(from, n int) []records.Owner {
	out := make([]records.Owner, n)
	for i := range out {
		out[i] = owner(from + i)
	}
	return out
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		if s != "" {
			out[i] = netip.MustParseAddr(s)
		}
	}
	return out
}

func mustPool(t *testing.T, sp *v2beta1.SpiderIPPool, reserved ...string) Pool {
	t.Helper()
	res, err := ip.ParseRanges(reserved)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(sp, res)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllocate(t *testing.T) {
	tests := []struct {
		name      string
		pool      *v2beta1.SpiderIPPool
		reserved  []string
		before    int // owners 0..before-1 allocated first, from the pool's first address
		owners    []records.Owner
		start     string
		want      []netip.Addr
		exhausted bool
	}{
		{
			name:   "from the first address",
			pool:   spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.12"}, nil),
			owners: owners(0, 2),
			want:   addrs("10.0.0.10", "10.0.0.11"),
		},
		{
			name:   "from a start in the middle, wrapping",
			pool:   spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.12"}, nil),
			owners: owners(0, 3), start: "10.0.0.12",
			want: addrs("10.0.0.12", "10.0.0.10", "10.0.0.11"),
		},
		{
			name:     "skips excluded and reserved addresses",
			pool:     spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.14"}, []string{"10.0.0.10", "10.0.0.12"}),
			reserved: []string{"10.0.0.11"},
			owners:   owners(0, 2),
			want:     addrs("10.0.0.13", "10.0.0.14"),
		},
		{
			name:   "skips held addresses",
			pool:   spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.14"}, nil),
			before: 2, owners: owners(2, 2),
			want: addrs("10.0.0.12", "10.0.0.13"),
		},
		{
			name:   "an owner holding an address gets it again",
			pool:   spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.14"}, nil),
			before: 2, owners: []records.Owner{owner(1), owner(7)},
			want: addrs("10.0.0.11", "10.0.0.12"),
		},
		{
			name:   "never outside the subnet",
			pool:   spec("p", "10.0.0.0/30", []string{"10.0.0.2-10.0.0.9"}, nil),
			owners: owners(0, 3),
			want:   addrs("10.0.0.2", "10.0.0.3", ""), exhausted: true,
		},
		{
			name:   "exhausted part way serves what it can",
			pool:   spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.11"}, nil),
			before: 1, owners: owners(1, 3),
			want: addrs("10.0.0.11", "", ""), exhausted: true,
		},
		{
			name:   "empty pool",
			pool:   spec("p", "10.0.0.0/24", nil, nil),
			owners: owners(0, 1),
			want:   addrs(""), exhausted: true,
		},
		{
			name:   "ipv6 /64 from a hashed start near the top",
			pool:   spec("p6", "fd00::/64", []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, nil),
			owners: owners(0, 2), start: "fd00::ffff:ffff:ffff:ffff",
			want: addrs("fd00::ffff:ffff:ffff:ffff", "fd00::"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPool(t, tt.pool, tt.reserved...)
			if tt.before > 0 {
				var err error
				if p, _, err = p.Allocate(owners(0, tt.before), netip.Addr{}); err != nil {
					t.Fatal(err)
				}
			}
			var start netip.Addr
			if tt.start != "" {
				start = netip.MustParseAddr(tt.start)
			}
			next, got, err := p.Allocate(tt.owners, start)
			if tt.exhausted != errors.Is(err, ErrPoolExhausted) {
				t.Fatalf("error = %v, want exhausted %t", err, tt.exhausted)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i, a := range got {
				if !a.IsValid() {
					continue
				}
				if h, ok := next.Holder(a); !ok || h != tt.owners[i] {
					t.Errorf("%s held by %v, want %v", a, h, tt.owners[i])
				}
			}
			if p.AllocatedCount() != int64(tt.before) {
				t.Errorf("Allocate changed its receiver: %d allocated, want %d", p.AllocatedCount(), tt.before)
			}
		})
	}
}

func TestReleaseAndRebind(t *testing.T) {
	p := mustPool(t, spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.11"}, nil))
	p, got, err := p.Allocate(owners(0, 2), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	a := got[0]
	tests := []struct {
		name  string
		do    func(Pool) (Pool, bool)
		ok    bool
		owner records.Owner // holder of a afterwards; zero means free
	}{
		{"release by a stale owner is a no-op", func(p Pool) (Pool, bool) { return p.Release(a, owner(9)) }, false, owner(0)},
		{"release by the old sandbox of the same pod is a no-op", func(p Pool) (Pool, bool) {
			return p.Release(a, records.OwnerOf("uid-0", "old-ctr", "eth0"))
		}, false, owner(0)},
		{"release of a free address is a no-op", func(p Pool) (Pool, bool) { return p.Release(netip.MustParseAddr("10.0.0.99"), owner(0)) }, false, owner(0)},
		{"release by the owner frees it", func(p Pool) (Pool, bool) { return p.Release(a, owner(0)) }, true, records.Owner{}},
		{"rebind from the owner", func(p Pool) (Pool, bool) { return p.Rebind(a, owner(0), owner(5)) }, true, owner(5)},
		{"rebind from someone else is refused", func(p Pool) (Pool, bool) { return p.Rebind(a, owner(1), owner(5)) }, false, owner(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, ok := tt.do(p)
			if ok != tt.ok {
				t.Fatalf("ok = %t, want %t", ok, tt.ok)
			}
			h, held := next.Holder(a)
			if (tt.owner == records.Owner{}) {
				if held {
					t.Fatalf("%s still held by %v", a, h)
				}
				if n, got, err := next.Allocate([]records.Owner{owner(3)}, netip.Addr{}); err != nil || got[0] != a || n.AllocatedCount() != 2 {
					t.Fatalf("the freed address is not allocatable again: %v %v", got, err)
				}
				return
			}
			if h != tt.owner {
				t.Fatalf("%s held by %v, want %v", a, h, tt.owner)
			}
		})
	}
	if h, _ := p.Holder(a); h != owner(0) {
		t.Fatal("Release or Rebind changed their receiver")
	}
}

// TestStatusRoundTrip writes records and counts into a pool's status and decodes them.
func TestStatusRoundTrip(t *testing.T) {
	sp := spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}, []string{"10.0.0.15"})
	p := mustPool(t, sp, "10.0.0.11")
	p, _, err := p.Allocate(owners(0, 4), netip.MustParseAddr("10.0.0.14"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteStatus(sp); err != nil {
		t.Fatal(err)
	}
	if *sp.Status.AllocatedIPCount != 4 || *sp.Status.TotalIPCount != 10 {
		t.Fatalf("counts = %d/%d, want 4/10", *sp.Status.AllocatedIPCount, *sp.Status.TotalIPCount)
	}
	back := mustPool(t, sp, "10.0.0.11")
	for i := range 4 {
		a, ok := p.HeldBy(owner(i))
		if b, ok2 := back.HeldBy(owner(i)); !ok || !ok2 || a != b {
			t.Fatalf("owner %d: %v/%t before, %v/%t after", i, a, ok, b, ok2)
		}
	}
	if got := back.HeldByPod(records.PodKey("uid-2")); len(got) != 1 {
		t.Fatalf("HeldByPod = %v", got)
	}

	// Releasing everything empties the records field.
	for i := range 4 {
		a, _ := back.HeldBy(owner(i))
		back, _ = back.Release(a, owner(i))
	}
	if err := back.WriteStatus(sp); err != nil {
		t.Fatal(err)
	}
	if st := sp.Status.Orbweaver; st == nil || len(st.Records) != 0 || *sp.Status.AllocatedIPCount != 0 || *st.FreeIPCount != 9 {
		t.Fatalf("status after releasing all = %+v", sp.Status)
	}
}

func TestNewPoolRejects(t *testing.T) {
	good := spec("p", "10.0.0.0/24", []string{"10.0.0.1"}, nil)
	data, err := records.Encode(netip.MustParsePrefix("10.0.0.0/24"), []records.Record{{IP: netip.MustParseAddr("10.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pool func() *v2beta1.SpiderIPPool
		want string
	}{
		{"subnet with host bits", func() *v2beta1.SpiderIPPool { return spec("p", "10.0.0.1/24", nil, nil) }, "spec.subnet"},
		{"bad range", func() *v2beta1.SpiderIPPool { return spec("p", "10.0.0.0/24", []string{"10.0.0.9-10.0.0.1"}, nil) }, "spec.ips"},
		{"bad exclude", func() *v2beta1.SpiderIPPool { return spec("p", "10.0.0.0/24", nil, []string{"x"}) }, "spec.excludeIPs"},
		{"family mismatch", func() *v2beta1.SpiderIPPool { return spec("p", "10.0.0.0/24", []string{"fd00::1"}, nil) }, "family"},
		{"corrupt records", func() *v2beta1.SpiderIPPool {
			sp := good.DeepCopy()
			sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: data[:len(data)-1]}
			return sp
		}, "status.orbweaver.records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewPool(tt.pool(), ip.Set{})
			if !errors.Is(err, ErrInvalidPool) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `"p"`) {
				t.Fatalf("error = %v, want ErrInvalidPool naming the pool and %q", err, tt.want)
			}
		})
	}
}

// TestRandomOperationsKeepOneOwner runs random allocations and releases from several
// simulated allocators (different starts) against a model and checks, after every step,
// that no address has two owners, every held address is allocatable and counts match.
func TestRandomOperationsKeepOneOwner(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	sp := spec("p", "10.1.0.0/24", []string{"10.1.0.1-10.1.0.60"}, []string{"10.1.0.30"})
	p := mustPool(t, sp, "10.1.0.31")
	model := map[records.Owner]netip.Addr{}
	nextOwner := 0
	for step := 0; step < 3000; step++ {
		if rng.IntN(3) > 0 || len(model) == 0 {
			n := 1 + rng.IntN(4)
			batch := owners(nextOwner, n)
			nextOwner += n
			start := netip.AddrFrom4([4]byte{10, 1, 0, byte(rng.IntN(256))})
			next, got, err := p.Allocate(batch, start)
			if err != nil && !errors.Is(err, ErrPoolExhausted) {
				t.Fatal(err)
			}
			for i, a := range got {
				if a.IsValid() {
					model[batch[i]] = a
				}
			}
			p = next
		} else {
			for o, a := range model {
				var ok bool
				if p, ok = p.Release(a, o); !ok {
					t.Fatalf("step %d: release of %s by its owner refused", step, a)
				}
				delete(model, o)
				break
			}
		}
		if int(p.AllocatedCount()) != len(model) {
			t.Fatalf("step %d: %d allocated, model has %d", step, p.AllocatedCount(), len(model))
		}
		seen := map[netip.Addr]bool{}
		for o, a := range model {
			if seen[a] {
				t.Fatalf("step %d: %s has two owners", step, a)
			}
			seen[a] = true
			if h, _ := p.Holder(a); h != o {
				t.Fatalf("step %d: %s held by %v, model says %v", step, a, h, o)
			}
			if a == netip.MustParseAddr("10.1.0.30") || a == netip.MustParseAddr("10.1.0.31") {
				t.Fatalf("step %d: excluded or reserved %s handed out", step, a)
			}
		}
	}
}

func TestReleaseOwnerAndSpreadStart(t *testing.T) {
	p := mustPool(t, spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.19"}, nil))
	eth0 := records.OwnerOf("uid-1", "ctr", "eth0")
	net1 := records.OwnerOf("uid-1", "ctr", "net1")
	p, got, err := p.Allocate([]records.Owner{eth0, net1, owner(2)}, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	next, freed := p.ReleaseOwner(net1)
	if !slices.Equal(freed, got[1:2]) || next.AllocatedCount() != 2 {
		t.Fatalf("ReleaseOwner freed %v leaving %d, want %v leaving 2", freed, next.AllocatedCount(), got[1:2])
	}
	if _, ok := next.HeldBy(eth0); !ok {
		t.Fatal("ReleaseOwner of net1 freed eth0 of the same pod")
	}
	if again, none := next.ReleaseOwner(net1); none != nil || again.AllocatedCount() != 2 {
		t.Fatal("a second ReleaseOwner freed something")
	}

	seen := map[netip.Addr]bool{}
	for key := uint64(0); key < 10; key++ {
		a := p.SpreadStart(key)
		if !strings.HasPrefix(a.String(), "10.0.0.1") || seen[a] {
			t.Fatalf("SpreadStart(%d) = %v: outside the pool or repeated", key, a)
		}
		seen[a] = true
	}
	if a := mustPool(t, spec("e", "10.0.0.0/24", nil, nil)).SpreadStart(3); a.IsValid() {
		t.Fatalf("SpreadStart of an empty pool = %v", a)
	}
	big := mustPool(t, spec("b", "fd00::/48", []string{"fd00::-fd00:0:0:ffff:ffff:ffff:ffff:ffff"}, nil))
	if a := big.SpreadStart(1 << 63); !a.IsValid() {
		t.Fatal("SpreadStart of a pool past 2^64 addresses found nothing")
	}
}

func TestReserve(t *testing.T) {
	p := mustPool(t, spec("p", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.19"}, nil), "10.0.0.12")
	nodeA, nodeB := records.ReserveOwner("a"), records.ReserveOwner("b")
	p, pod, err := p.Allocate([]records.Owner{owner(1)}, netip.MustParseAddr("10.0.0.10"))
	if err != nil || pod[0] != netip.MustParseAddr("10.0.0.10") {
		t.Fatalf("Allocate = %v, %v", pod, err)
	}
	before := p
	p, took := p.Reserve(nodeA, 4, netip.MustParseAddr("10.0.0.10"))
	// .10 is held and .12 reserved by a SpiderReservedIP: neither is taken.
	if want := addrs("10.0.0.11", "10.0.0.13", "10.0.0.14", "10.0.0.15"); !slices.Equal(took, want) {
		t.Fatalf("Reserve took %v, want %v", took, want)
	}
	if before.AllocatedCount() != 1 || before.FreeCount() != 8 {
		t.Fatal("Reserve changed the pool it was called on")
	}
	if got := p.AllHeldBy(nodeA); !slices.Equal(got, took) {
		t.Fatalf("AllHeldBy = %v, want %v", got, took)
	}
	if p.FreeCount() != 4 || p.AllocatedCount() != 5 {
		t.Fatalf("after reserving 4: %d free, %d allocated; want 4 and 5", p.FreeCount(), p.AllocatedCount())
	}
	p, more := p.Reserve(nodeB, 10, netip.Addr{})
	if len(more) != 4 || p.FreeCount() != 0 {
		t.Fatalf("Reserve of 10 with 4 free took %v, %d left", more, p.FreeCount())
	}
	if _, none := p.Reserve(nodeB, 1, netip.Addr{}); none != nil {
		t.Fatalf("Reserve from a full pool took %v", none)
	}
	if p.Reservers(nodeA) != 1 || p.Reservers(records.ReserveOwner("c")) != 2 {
		t.Fatal("Reservers miscounts")
	}
	if p.ReservedElsewhere(nodeA) != 4 || p.ReservedElsewhere(nodeB) != 4 || p.ReservedElsewhere(records.ReserveOwner("c")) != 8 {
		t.Fatal("ReservedElsewhere miscounts")
	}
	// A reservation is handed to a pod by Rebind, and only from the node that holds it.
	if _, ok := p.Rebind(took[0], nodeB, owner(2)); ok {
		t.Fatal("node b handed out node a's reserved address")
	}
	p, ok := p.Rebind(took[0], nodeA, owner(2))
	if h, _ := p.Holder(took[0]); !ok || h != owner(2) {
		t.Fatal("Rebind from the reservation to a pod failed")
	}
	// A pod's allocation never takes a reserved address.
	if _, _, err := p.Allocate([]records.Owner{owner(3)}, netip.Addr{}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("Allocate with every free address reserved: %v, want ErrPoolExhausted", err)
	}
}
