package ipam

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

func ranges(ss ...string) []v2beta1.IPOrRange {
	out := make([]v2beta1.IPOrRange, len(ss))
	for i, s := range ss {
		out[i] = v2beta1.IPOrRange(s)
	}
	return out
}

func mustRanges(t *testing.T, ss ...string) ip.Set {
	t.Helper()
	s, err := ip.ParseRanges(ss)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func spiderSubnet(name, cidr string, ips, exclude []string) *v2beta1.SpiderSubnet {
	return &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.SubnetSpec{Subnet: v2beta1.CIDR(cidr), IPs: ranges(ips...), ExcludeIPs: ranges(exclude...)}}
}

// held is an allocation record for a test pool: an address and whether a node's reserve
// (rather than a pod) holds it.
type held struct {
	ip      string
	reserve bool
}

func spiderPool(t *testing.T, name, cidr string, ips, exclude []string, recs ...held) v2beta1.SpiderIPPool {
	t.Helper()
	p := v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(cidr), IPs: ranges(ips...), ExcludeIPs: ranges(exclude...)}}
	if len(recs) == 0 {
		return p
	}
	var rs []records.Record
	for _, h := range recs {
		o := records.OwnerOf("pod-"+h.ip, "container", "eth0")
		if h.reserve {
			o = records.ReserveOwner("node-1")
		}
		rs = append(rs, records.Record{IP: netip.MustParseAddr(h.ip), Owner: o})
	}
	data, err := records.Encode(netip.MustParsePrefix(cidr), rs)
	if err != nil {
		t.Fatal(err)
	}
	p.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: data}
	return p
}

func TestSubnetFree(t *testing.T) {
	now := metav1.Now()
	terminating := spiderPool(t, "going", "10.0.0.0/24", []string{"10.0.0.20"}, nil)
	terminating.DeletionTimestamp = &now
	badOther := spiderPool(t, "bad-other", "10.9.0.0/24", []string{"nonsense"}, nil)
	badHere := spiderPool(t, "bad-here", "10.0.0.0/24", []string{"nonsense"}, nil)
	tests := []struct {
		name     string
		subnet   *v2beta1.SpiderSubnet
		pools    []v2beta1.SpiderIPPool
		reserved []string
		want     []string
		wantErr  error
	}{
		{name: "all of the subnet's ips",
			subnet: spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}, nil),
			want:   []string{"10.0.0.10-10.0.0.20"}},
		{name: "ips outside the subnet are not handed out",
			subnet: spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.250-10.0.1.5"}, nil),
			want:   []string{"10.0.0.250-10.0.0.255"}},
		{name: "excludeIPs",
			subnet: spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}, []string{"10.0.0.12", "10.0.0.18-10.0.0.30"}),
			want:   []string{"10.0.0.10-10.0.0.11", "10.0.0.13-10.0.0.17"}},
		{name: "other pools, whatever they exclude, and pools being deleted",
			subnet: spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}, nil),
			pools: []v2beta1.SpiderIPPool{
				spiderPool(t, "a", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.13"}, []string{"10.0.0.11"}),
				spiderPool(t, "elsewhere", "10.1.0.0/24", []string{"10.1.0.10-10.1.0.20"}, nil),
				terminating,
			},
			want: []string{"10.0.0.14-10.0.0.19"}},
		{name: "reserved",
			subnet:   spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.20"}, nil),
			reserved: []string{"10.0.0.15", "10.0.0.19-10.0.0.40"},
			want:     []string{"10.0.0.10-10.0.0.14", "10.0.0.16-10.0.0.18"}},
		{name: "an unreadable pool elsewhere is ignored",
			subnet: spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.10"}, nil),
			pools:  []v2beta1.SpiderIPPool{badOther},
			want:   []string{"10.0.0.10"}},
		{name: "an unreadable pool on the network is an error",
			subnet:  spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.10"}, nil),
			pools:   []v2beta1.SpiderIPPool{badHere},
			wantErr: ErrInvalidPool},
		{name: "IPv6",
			subnet: spiderSubnet("s6", "fd00:10:244::/64", []string{"fd00:10:244::10-fd00:10:244::ffff"}, []string{"fd00:10:244::20"}),
			pools: []v2beta1.SpiderIPPool{
				spiderPool(t, "p6", "fd00:10:244::/64", []string{"fd00:10:244::10-fd00:10:244::1f"}, nil),
				spiderPool(t, "p4", "10.0.0.0/24", []string{"10.0.0.10"}, nil),
			},
			reserved: []string{"fd00:10:244::ff00-fd00:10:244::ffff"},
			want:     []string{"fd00:10:244::21-fd00:10:244::feff"}},
		{name: "exhausted: nothing free",
			subnet: spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.11"}, nil),
			pools:  []v2beta1.SpiderIPPool{spiderPool(t, "a", "10.0.0.0/24", []string{"10.0.0.10-10.0.0.11"}, nil)},
			want:   []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SubnetFree(tt.subnet, tt.pools, mustRanges(t, tt.reserved...))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := mustRanges(t, tt.want...); !got.Equal(want) {
				t.Errorf("free = %v, want %v", got, want)
			}
		})
	}
}

func TestResizeAutoPool(t *testing.T) {
	const cidr = "10.244.0.0/16"
	seed := spiderSubnet("nginx-subnet-v4", cidr, []string{"10.244.100.0-10.244.100.255"}, nil)
	small := spiderSubnet("small", cidr, []string{"10.244.100.0-10.244.100.7"}, nil)
	other := spiderPool(t, "other", cidr, []string{"10.244.100.2-10.244.100.3"}, nil)
	tests := []struct {
		name     string
		subnet   *v2beta1.SpiderSubnet
		pool     *v2beta1.SpiderIPPool
		others   []v2beta1.SpiderIPPool
		reserved []string
		// held are addresses SpiderEndpoints hold (a pool in Grants mode).
		held []string
		want int64
		// wantIPs is the new spec.ips; wantAdded and wantRemoved what changed.
		wantIPs, wantAdded, wantRemoved []string
		wantKept                        int64
		wantErr                         *SubnetExhaustedError
	}{
		{name: "new pool: the lowest free addresses (seed 004: 2 replicas +3)", subnet: seed, want: 5,
			wantIPs: []string{"10.244.100.0-10.244.100.4"}, wantAdded: []string{"10.244.100.0-10.244.100.4"}},
		{name: "new pool around other pools and reserved addresses", subnet: seed, want: 5,
			others: []v2beta1.SpiderIPPool{other}, reserved: []string{"10.244.100.5"},
			wantIPs:   []string{"10.244.100.0-10.244.100.1", "10.244.100.4", "10.244.100.6-10.244.100.7"},
			wantAdded: []string{"10.244.100.0-10.244.100.1", "10.244.100.4", "10.244.100.6-10.244.100.7"}},
		{name: "new pool of 0", subnet: seed, want: 0, wantIPs: []string{}},
		{name: "grow by the lowest free", subnet: seed, want: 6,
			pool:    ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.1", "10.244.100.4-10.244.100.6"}, nil)),
			others:  []v2beta1.SpiderIPPool{other},
			wantIPs: []string{"10.244.100.0-10.244.100.1", "10.244.100.4-10.244.100.7"}, wantAdded: []string{"10.244.100.7"}},
		{name: "grow skips what the pool excludes", subnet: seed, want: 3,
			pool:      ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.1"}, []string{"10.244.100.1", "10.244.100.2"})),
			wantIPs:   []string{"10.244.100.0-10.244.100.1", "10.244.100.3-10.244.100.4"},
			wantAdded: []string{"10.244.100.3-10.244.100.4"}},
		{name: "same size: no change", subnet: seed, want: 5,
			pool:    ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.4"}, nil)),
			wantIPs: []string{"10.244.100.0-10.244.100.4"}},
		{name: "shrink gives back the highest free", subnet: seed, want: 4,
			pool:        ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.5"}, nil, held{ip: "10.244.100.1"})),
			wantIPs:     []string{"10.244.100.0-10.244.100.3"},
			wantRemoved: []string{"10.244.100.4-10.244.100.5"}},
		{name: "shrink never gives back a held address", subnet: seed, want: 4,
			pool: ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.5"}, nil,
				held{ip: "10.244.100.5"}, held{ip: "10.244.100.3", reserve: true})),
			wantIPs:     []string{"10.244.100.0-10.244.100.1", "10.244.100.3", "10.244.100.5"},
			wantRemoved: []string{"10.244.100.2", "10.244.100.4"}},
		{name: "shrink gives back reserved addresses first", subnet: seed, want: 4,
			pool:        ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.5"}, nil)),
			reserved:    []string{"10.244.100.1"},
			wantIPs:     []string{"10.244.100.0", "10.244.100.2-10.244.100.4"},
			wantRemoved: []string{"10.244.100.1", "10.244.100.5"}},
		{name: "shrink as far as records allow", subnet: seed, want: 1,
			pool: ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.3"}, nil,
				held{ip: "10.244.100.0"}, held{ip: "10.244.100.2"}, held{ip: "10.244.100.3", reserve: true})),
			wantIPs:     []string{"10.244.100.0", "10.244.100.2-10.244.100.3"},
			wantRemoved: []string{"10.244.100.1"}, wantKept: 2},
		{name: "Grants: shrink never gives back an address an endpoint holds", subnet: seed, want: 4,
			pool:        ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.5"}, nil)),
			held:        []string{"10.244.100.5", "10.244.100.3"},
			wantIPs:     []string{"10.244.100.0-10.244.100.1", "10.244.100.3", "10.244.100.5"},
			wantRemoved: []string{"10.244.100.2", "10.244.100.4"}},
		{name: "shrink blocked: every address held", subnet: seed, want: 0,
			pool: ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.1"}, nil,
				held{ip: "10.244.100.0"}, held{ip: "10.244.100.1"})),
			wantIPs: []string{"10.244.100.0-10.244.100.1"}, wantKept: 2},
		{name: "exhausted: a new pool too big for the subnet", subnet: small, want: 7,
			others:  []v2beta1.SpiderIPPool{other},
			wantErr: &SubnetExhaustedError{Subnet: "small", Want: 7, Need: 7, Free: 6}},
		{name: "exhausted: growth is all or nothing", subnet: small, want: 9,
			pool:    ptr.To(spiderPool(t, "mine", cidr, []string{"10.244.100.0-10.244.100.1"}, nil)),
			others:  []v2beta1.SpiderIPPool{other},
			wantErr: &SubnetExhaustedError{Subnet: "small", Want: 9, Need: 7, Free: 4}},
		{name: "IPv6 new pool", want: 3,
			subnet:  spiderSubnet("s6", "fd00:10:244::/64", []string{"fd00:10:244::1-fd00:10:244::ffff"}, []string{"fd00:10:244::2"}),
			wantIPs: []string{"fd00:10:244::1", "fd00:10:244::3-fd00:10:244::4"}, wantAdded: []string{"fd00:10:244::1", "fd00:10:244::3-fd00:10:244::4"}},
		{name: "IPv6 shrink", want: 1,
			subnet: spiderSubnet("s6", "fd00:10:244::/64", []string{"fd00:10:244::1-fd00:10:244::ffff"}, nil),
			pool: ptr.To(spiderPool(t, "mine6", "fd00:10:244::/64", []string{"fd00:10:244::1-fd00:10:244::3"}, nil,
				held{ip: "fd00:10:244::3"})),
			wantIPs: []string{"fd00:10:244::3"}, wantRemoved: []string{"fd00:10:244::1-fd00:10:244::2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools := append([]v2beta1.SpiderIPPool(nil), tt.others...)
			if tt.pool != nil {
				pools = append(pools, *tt.pool)
			}
			reserved := mustRanges(t, tt.reserved...)
			got, err := ResizeAutoPool(AutoPoolSizing{Subnet: tt.subnet, Pool: tt.pool, Pools: pools, Reserved: reserved, Held: mustRanges(t, tt.held...), Want: tt.want})
			if tt.wantErr != nil {
				var ex *SubnetExhaustedError
				if !errors.As(err, &ex) || *ex != *tt.wantErr || !errors.Is(err, ErrSubnetExhausted) {
					t.Fatalf("err = %#v, want %#v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what      string
				got, want ip.Set
			}{
				{"IPs", got.IPs, mustRanges(t, tt.wantIPs...)},
				{"Added", got.Added, mustRanges(t, tt.wantAdded...)},
				{"Removed", got.Removed, mustRanges(t, tt.wantRemoved...)},
			} {
				if !c.got.Equal(c.want) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if got.Kept != tt.wantKept {
				t.Errorf("Kept = %d, want %d", got.Kept, tt.wantKept)
			}
			if got.Changed() != (len(tt.wantAdded)+len(tt.wantRemoved) > 0) {
				t.Errorf("Changed = %v", got.Changed())
			}
			// Invariants, whatever the case: the new pool is of the subnet, shares nothing
			// with other pools or reserved addresses it did not hold, and keeps every held
			// address.
			_, subnetIPs, _ := SubnetAddresses(tt.subnet)
			if !subnetIPs.ContainsSet(got.Added) {
				t.Errorf("added %v outside the subnet's %v", got.Added, subnetIPs)
			}
			for _, o := range tt.others {
				if s := mustRanges(t, tokens(o.Spec.IPs)...); got.Added.Overlaps(s) {
					t.Errorf("added %v overlaps pool %s's %v", got.Added, o.Name, s)
				}
			}
			if got.Added.Overlaps(reserved) {
				t.Errorf("added reserved addresses: %v", got.Added.Intersect(reserved))
			}
			if tt.pool != nil {
				p, err := NewPool(tt.pool, reserved)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range got.Removed.Ranges() {
					for a := r.From; a.Compare(r.To) <= 0; a = a.Next() {
						if _, isHeld := p.Holder(a); isHeld {
							t.Errorf("removed held address %s", a)
						}
					}
				}
			}
		})
	}
}

// TestResizeAutoPoolSubnetMismatch: a pool of another network than its SpiderSubnet would
// never reach its size; it is refused rather than grown forever.
func TestResizeAutoPoolSubnetMismatch(t *testing.T) {
	p := spiderPool(t, "mine", "10.1.0.0/24", []string{"10.1.0.1"}, nil)
	_, err := ResizeAutoPool(AutoPoolSizing{Subnet: spiderSubnet("s", "10.0.0.0/24", []string{"10.0.0.1-10.0.0.9"}, nil), Pool: &p, Want: 3})
	if !errors.Is(err, ErrInvalidPool) {
		t.Fatalf("err = %v, want ErrInvalidPool", err)
	}
}

// TestResizeAutoPoolProperties checks the invariants over random subnets, pools,
// records and sizes (fixed seed): a new or grown pool is exactly the wanted size, holds
// only free addresses of its subnet, and is of the lowest ones; a shrunk pool keeps every
// held address and is the wanted size plus what records keep.
func TestResizeAutoPoolProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	const cidr = "10.9.0.0/24"
	addr := func(i int) string { return netip.AddrFrom4([4]byte{10, 9, 0, byte(i)}).String() }
	for round := range 500 {
		lo, hi := 1+rng.IntN(50), 60+rng.IntN(190)
		subnet := spiderSubnet("s", cidr, []string{addr(lo) + "-" + addr(hi)}, []string{addr(lo + rng.IntN(hi-lo))})
		var others []v2beta1.SpiderIPPool
		for i := range rng.IntN(4) {
			a := lo + rng.IntN(hi-lo)
			others = append(others, spiderPool(t, "o"+addr(i), cidr, []string{addr(a) + "-" + addr(min(a+rng.IntN(8), 254))}, nil))
		}
		reserved := mustRanges(t, addr(lo+rng.IntN(hi-lo)))
		var mine *v2beta1.SpiderIPPool
		if rng.IntN(3) > 0 {
			free, err := SubnetFree(subnet, others, reserved)
			if err != nil {
				t.Fatal(err)
			}
			ips := lowest(free, ip.CountFromUint64(uint64(rng.IntN(12))))
			var recs []held
			for _, r := range ips.Ranges() {
				for a := r.From; a.Compare(r.To) <= 0; a = a.Next() {
					if rng.IntN(3) == 0 {
						recs = append(recs, held{ip: a.String(), reserve: rng.IntN(2) == 0})
					}
				}
			}
			mine = ptr.To(spiderPool(t, "mine", cidr, ips.Strings(), nil, recs...))
		}
		want := int64(rng.IntN(15))
		pools := append([]v2beta1.SpiderIPPool(nil), others...)
		var before ip.Set
		var holder Pool
		if mine != nil {
			pools = append(pools, *mine)
			before = mustRanges(t, tokens(mine.Spec.IPs)...)
			var err error
			if holder, err = NewPool(mine, reserved); err != nil {
				t.Fatal(err)
			}
		}
		got, err := ResizeAutoPool(AutoPoolSizing{Subnet: subnet, Pool: mine, Pools: pools, Reserved: reserved, Want: want})
		if errors.Is(err, ErrSubnetExhausted) {
			continue
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		size := got.IPs.Count().Int64Saturating()
		if size != want+got.Kept || (got.Kept > 0 && !got.Added.IsEmpty()) {
			t.Fatalf("round %d: size %d, want %d + kept %d (added %v)", round, size, want, got.Kept, got.Added)
		}
		free, _ := SubnetFree(subnet, others, reserved)
		if !free.ContainsSet(got.Added) || got.Added.Overlaps(before) {
			t.Fatalf("round %d: added %v, not free (%v) or held already", round, got.Added, free)
		}
		if !got.Added.IsEmpty() {
			// The lowest: no free address below the highest added one was left out.
			last, _ := got.Added.Nth(got.Added.Count().Sub(ip.CountFromUint64(1)))
			if skipped := free.Subtract(before).Subtract(got.Added); !skipped.IsEmpty() {
				if first, _ := skipped.Nth(ip.Count{}); first.Less(last) {
					t.Fatalf("round %d: added %v but skipped the lower free %s", round, got.Added, first)
				}
			}
		}
		for _, r := range got.Removed.Ranges() {
			for a := r.From; a.Compare(r.To) <= 0; a = a.Next() {
				if _, isHeld := holder.Holder(a); isHeld {
					t.Fatalf("round %d: removed held %s", round, a)
				}
			}
		}
	}
}
