package ip

import (
	"math/rand"
	"net/netip"
	"runtime"
	"testing"
)

// randomBytes returns up to 2*maxRanges offsets. Half of them come from
// hot, a few offsets shared by the sets under test, so that range ends of
// different sets often coincide, touch or overlap by a single address.
func randomBytes(rng *rand.Rand, maxRanges int, hot []byte) []byte {
	n := rng.Intn(2*maxRanges + 1)
	out := make([]byte, n)
	for i := range out {
		switch {
		case rng.Intn(2) == 0:
			out[i] = hot[rng.Intn(len(hot))] + byte(rng.Intn(3)) - 1
		case i > 0 && rng.Intn(3) == 0:
			out[i] = out[i-1] + byte(rng.Intn(3)) // near the previous end
		default:
			out[i] = byte(rng.Intn(universeSize))
		}
	}
	return out
}

// TestRandomSetsAgainstModel runs the set algebra and free search on random
// sets (fixed seed) in every model universe.
func TestRandomSetsAgainstModel(t *testing.T) {
	for _, base := range universeBases {
		t.Run(base, func(t *testing.T) {
			rng := rand.New(rand.NewSource(42))
			u := newUniverse(base)
			for i := 0; i < 300; i++ {
				hot := randomBytes(rng, 3, []byte{0, 255})
				if len(hot) == 0 {
					hot = []byte{128}
				}
				a, ma := setFromBytes(t, u, randomBytes(rng, 6, hot))
				b, mb := setFromBytes(t, u, randomBytes(rng, 6, hot))
				checkAlgebra(t, u, a, b, &ma, &mb)
				start, p := startFor(u, uint8(rng.Intn(universeSize)), uint8(rng.Intn(6)))
				checkFree(t, u, a, b, &ma, &mb, start, p)
			}
		})
	}
}

// TestRandomLargeSets checks the identities on big sets, where no model can
// enumerate the addresses: random ranges spanning up to millions of
// addresses inside 10.0.0.0/8 and fd00::/64.
func TestRandomLargeSets(t *testing.T) {
	bases := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/64")}
	for _, pfx := range bases {
		t.Run(pfx.String(), func(t *testing.T) {
			rng := rand.New(rand.NewSource(9))
			pool := SetOfPrefix(pfx)
			random := func() Set {
				var rs []Range
				for i := rng.Intn(20); i > 0; i-- {
					n := CountFromUint64(rng.Uint64() % modulus(pool.Count()))
					from, _ := pool.Nth(n)
					to, ok := pool.Nth(n.Add(CountFromUint64(uint64(rng.Intn(1 << uint(rng.Intn(24)))))))
					if !ok {
						to = from
					}
					rs = append(rs, Range{from, to})
				}
				s, err := SetOfRanges(rs...)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			for i := 0; i < 200; i++ {
				a, b := random(), random()
				union, err := a.Union(b)
				if err != nil {
					t.Fatal(err)
				}
				inter := a.Intersect(b)
				if union.Count().Add(inter.Count()) != a.Count().Add(b.Count()) {
					t.Fatalf("Count(a∪b)+Count(a∩b) = %v+%v, Count(a)+Count(b) = %v+%v",
						union.Count(), inter.Count(), a.Count(), b.Count())
				}
				sub := a.Subtract(b)
				if sub.Overlaps(b) || !a.ContainsSet(sub) || !union.ContainsSet(a) || !a.ContainsSet(inter) {
					t.Fatalf("subset relations broken for a=%v b=%v", a, b)
				}
				if sub.Count() != a.Count().Sub(inter.Count()) {
					t.Fatalf("Count(a-b) = %v, want %v-%v", sub.Count(), a.Count(), inter.Count())
				}
				checkNormalised(t, "union", union)
				checkNormalised(t, "a-b", sub)
				if got, ok := FirstFree(pool, a, firstAddr(b)); ok && (a.Contains(got) || !pool.Contains(got)) {
					t.Fatalf("FirstFree = %v is used or outside the pool", got)
				}
			}
		})
	}
}

// modulus returns c as a uint64 modulus: at least 1, at most 2^64-1.
func modulus(c Count) uint64 {
	if n, ok := c.Uint64(); ok && n > 0 {
		return n
	}
	return ^uint64(0)
}

// firstAddr returns the lowest address of s, or the zero Addr.
func firstAddr(s Set) netip.Addr {
	a, _ := s.Nth(Count{})
	return a
}

// TestFreeSearchDoesNotMaterialise proves that free-address search on a /8
// and a /64 costs memory in proportion to the number of used fragments,
// never to the size of the pool.
func TestFreeSearchDoesNotMaterialise(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	pool := SetOfPrefix(netip.MustParsePrefix("10.0.0.0/8"))
	// The low half of the pool is fully used, and 4000 scattered addresses
	// of the upper half are too.
	rs := []Range{{netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.127.255.255")}}
	for i := 0; i < 4000; i++ {
		a, _ := pool.Nth(CountFromUint64(1<<23 + uint64(rng.Intn(1<<23))))
		rs = append(rs, Range{a, a})
	}
	used, err := SetOfRanges(rs...)
	if err != nil {
		t.Fatal(err)
	}
	fragments := len(used.Ranges())
	starts := []netip.Addr{
		netip.MustParseAddr("10.0.0.0"),
		netip.MustParseAddr("10.64.0.0"),
		used.Ranges()[fragments/2].From,
		netip.MustParseAddr("10.255.255.255"),
		netip.MustParseAddr("11.0.0.0"),
		{},
	}
	allocs := testing.AllocsPerRun(50, func() {
		for _, s := range starts {
			if a, ok := FirstFree(pool, used, s); !ok || used.Contains(a) {
				t.Fatalf("FirstFree from %v = %v, %v", s, a, ok)
			}
			n, _ := pool.Index(s)
			pool.Nth(n)
		}
	})
	if allocs != 0 {
		t.Errorf("FirstFree/Index/Nth on a /8 with %d used fragments: %.0f allocations per run, want 0", fragments, allocs)
	}

	// Walking 10,000 free addresses allocates a constant, not per address.
	allocs = testing.AllocsPerRun(5, func() {
		n := 0
		for range Free(pool, used, starts[1]) {
			if n++; n == 10_000 {
				break
			}
		}
	})
	if allocs > 4 {
		t.Errorf("Free iterator: %.0f allocations for 10,000 addresses, want at most 4", allocs)
	}

	// Subtracting the used set allocates in proportion to its fragments:
	// allow 1 KiB per fragment, against 16,777,216 pool addresses.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	free := pool.Subtract(used)
	runtime.ReadMemStats(&after)
	bytes := after.TotalAlloc - before.TotalAlloc
	if limit := uint64(fragments) * 1024; bytes > limit {
		t.Errorf("Subtract allocated %d bytes for %d fragments, want at most %d", bytes, fragments, limit)
	}
	if got, want := free.Count(), pool.Count().Sub(used.Count()); got != want {
		t.Errorf("free count = %v, want %v", got, want)
	}
	t.Logf("/8 pool, %d used fragments: Subtract allocated %d bytes (%.0f per fragment)", fragments, bytes, float64(bytes)/float64(fragments))

	// The same on an IPv6 /64 with a few used addresses near the top.
	pool6 := SetOfPrefix(netip.MustParsePrefix("fd00::/64"))
	used6 := mustSet(t, "fd00::ffff:ffff:ffff:fff0-fd00::ffff:ffff:ffff:fffe", "fd00::", "fd00::2")
	top := netip.MustParseAddr("fd00::ffff:ffff:ffff:fff3")
	allocs = testing.AllocsPerRun(50, func() {
		if a, ok := FirstFree(pool6, used6, top); !ok || a != netip.MustParseAddr("fd00::ffff:ffff:ffff:ffff") {
			t.Fatalf("FirstFree = %v, %v", a, ok)
		}
		if a, ok := FirstFree(pool6, used6, netip.MustParseAddr("fd00::")); !ok || a != netip.MustParseAddr("fd00::1") {
			t.Fatalf("FirstFree = %v, %v", a, ok)
		}
	})
	if allocs != 0 {
		t.Errorf("FirstFree on a /64: %.0f allocations per run, want 0", allocs)
	}
}
