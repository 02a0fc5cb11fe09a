package ip

import (
	"net/netip"
	"testing"
)

// This file holds a brute-force model: 256 consecutive addresses and a
// bitmap over them. Sets, their algebra and free-address search are checked
// against it in property tests and fuzz targets. The universe is built with
// netip.Addr.Next, independently of the package's own arithmetic.

const universeSize = 256

// universeBases are chosen to hit the edges: the bottom and top of each
// family, an octet carry, and a carry between the two 64-bit halves of an
// IPv6 address.
var universeBases = []string{
	"0.0.0.0",
	"10.0.255.128",
	"255.255.255.0",
	"::",
	"::ffff:ffff:ffff:ff80",
	"fd00::",
	"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00",
}

type universe [universeSize]netip.Addr

func newUniverse(base string) *universe {
	var u universe
	u[0] = netip.MustParseAddr(base)
	for i := 1; i < universeSize; i++ {
		u[i] = u[i-1].Next()
	}
	return &u
}

// universeFor picks one of universeBases from a fuzz byte.
func universeFor(sel uint8) *universe {
	return newUniverse(universeBases[int(sel)%len(universeBases)])
}

type bitmap [universeSize]bool

func (m *bitmap) count() uint64 {
	var n uint64
	for _, b := range m {
		if b {
			n++
		}
	}
	return n
}

// setFromBytes reads byte pairs as ranges of universe offsets (in either
// order), and a trailing odd byte as a single address. It returns the Set
// built with SetOfRanges and the model bitmap.
func setFromBytes(t testing.TB, u *universe, data []byte) (Set, bitmap) {
	t.Helper()
	var (
		m  bitmap
		rs []Range
	)
	for i := 0; i < len(data); i += 2 {
		lo, hi := data[i], data[i]
		if i+1 < len(data) {
			hi = data[i+1]
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		rs = append(rs, Range{u[lo], u[hi]})
		for k := int(lo); k <= int(hi); k++ {
			m[k] = true
		}
	}
	s, err := SetOfRanges(rs...)
	if err != nil {
		t.Fatalf("SetOfRanges(%v): %v", rs, err)
	}
	return s, m
}

// checkModel asserts that s holds exactly the addresses m marks, and that
// every view of s (Count, Contains, Ranges, Strings, Nth, Index) agrees.
func checkModel(t testing.TB, what string, u *universe, s Set, m *bitmap) {
	t.Helper()
	if got, want := s.Count(), CountFromUint64(m.count()); got != want {
		t.Fatalf("%s: Count() = %v, want %v (set %v)", what, got, want, s)
	}
	if s.IsEmpty() != (m.count() == 0) {
		t.Fatalf("%s: IsEmpty() = %v with %d addresses", what, s.IsEmpty(), m.count())
	}
	if !s.IsEmpty() && (s.Is4() != u[0].Is4() || s.Is6() != u[0].Is6()) {
		t.Fatalf("%s: Is4=%v Is6=%v in a universe from %v", what, s.Is4(), s.Is6(), u[0])
	}
	var k uint64
	for i, a := range u {
		if s.Contains(a) != m[i] {
			t.Fatalf("%s: Contains(%v) = %v, want %v (set %v)", what, a, s.Contains(a), m[i], s)
		}
		idx, ok := s.Index(a)
		if ok != m[i] {
			t.Fatalf("%s: Index(%v) ok = %v, want %v", what, a, ok, m[i])
		}
		if !m[i] {
			continue
		}
		if idx != CountFromUint64(k) {
			t.Fatalf("%s: Index(%v) = %v, want %d", what, a, idx, k)
		}
		if got, ok := s.Nth(CountFromUint64(k)); !ok || got != a {
			t.Fatalf("%s: Nth(%d) = %v, %v; want %v", what, k, got, ok, a)
		}
		k++
	}
	if got, ok := s.Nth(CountFromUint64(k)); ok {
		t.Fatalf("%s: Nth(Count) = %v, want none", what, got)
	}
	checkNormalised(t, what, s)
}

// checkNormalised asserts the Set invariants that do not need a model:
// ranges valid, of one family, sorted, non-overlapping and non-adjacent;
// Count is the sum of range counts; Strings round-trips to an Equal set.
func checkNormalised(t testing.TB, what string, s Set) {
	t.Helper()
	rs := s.Ranges()
	sum := Count{}
	for i, r := range rs {
		if !r.IsValid() {
			t.Fatalf("%s: range %d (%v) is invalid", what, i, r)
		}
		if r.From.Is4() != rs[0].From.Is4() {
			t.Fatalf("%s: mixed families in %v", what, s)
		}
		if i > 0 && !rs[i-1].To.Next().Less(r.From) {
			t.Fatalf("%s: ranges %v and %v overlap or touch", what, rs[i-1], r)
		}
		sum = sum.Add(r.Count())
	}
	if sum != s.Count() {
		t.Fatalf("%s: Count() = %v, ranges add up to %v", what, s.Count(), sum)
	}
	again, err := ParseRanges(s.Strings())
	if err != nil || !again.Equal(s) {
		t.Fatalf("%s: Strings() %q re-parses to %v, %v", what, s.Strings(), again, err)
	}
}

// startFor turns fuzz bytes into a FirstFree start address and its model
// position p: the search visits offsets p..255, then 0..p-1. Starts before
// and after the universe (or of the other family, or invalid) all behave as
// p = 0: "after" wraps to the beginning.
func startFor(u *universe, off, mode uint8) (netip.Addr, int) {
	switch mode % 6 {
	case 1:
		return u[0].Prev(), 0 // before (the zero Addr below 0.0.0.0 and ::)
	case 2:
		return u[universeSize-1].Next(), 0 // after, or the zero Addr at the top
	case 3:
		if u[0].Is4() {
			return netip.MustParseAddr("fd00::1"), 0
		}
		return netip.MustParseAddr("10.0.0.1"), 0
	case 4:
		return netip.Addr{}, 0
	default:
		return u[off], int(off)
	}
}

// modelFree lists the free offsets in FirstFree/Free order from p.
func modelFree(pool, used *bitmap, p int) []int {
	var out []int
	for k := 0; k < universeSize; k++ {
		i := (p + k) % universeSize
		if pool[i] && !used[i] {
			out = append(out, i)
		}
	}
	return out
}

// checkFree compares FirstFree and Free with the model.
func checkFree(t testing.TB, u *universe, pool, used Set, mp, mu *bitmap, start netip.Addr, p int) {
	t.Helper()
	want := modelFree(mp, mu, p)
	got, ok := FirstFree(pool, used, start)
	if len(want) == 0 {
		if ok {
			t.Fatalf("FirstFree(%v, %v, %v) = %v, want none", pool, used, start, got)
		}
	} else if !ok || got != u[want[0]] {
		t.Fatalf("FirstFree(%v, %v, %v) = %v, %v; want %v", pool, used, start, got, ok, u[want[0]])
	}
	i := 0
	for a := range Free(pool, used, start) {
		if i >= len(want) || a != u[want[i]] {
			t.Fatalf("Free(%v, %v, %v) step %d = %v, want the model's %v", pool, used, start, i, a, want)
		}
		i++
	}
	if i != len(want) {
		t.Fatalf("Free(%v, %v, %v) yielded %d addresses, want %d", pool, used, start, i, len(want))
	}
}

// checkAlgebra checks every binary operation of a and b against the model.
func checkAlgebra(t testing.TB, u *universe, a, b Set, ma, mb *bitmap) {
	t.Helper()
	checkModel(t, "a", u, a, ma)
	checkModel(t, "b", u, b, mb)
	var mUnion, mInter, mAminusB, mBminusA bitmap
	overlap, aHasB := false, true
	for i := range universeSize {
		mUnion[i] = ma[i] || mb[i]
		mInter[i] = ma[i] && mb[i]
		mAminusB[i] = ma[i] && !mb[i]
		mBminusA[i] = mb[i] && !ma[i]
		overlap = overlap || mInter[i]
		aHasB = aHasB && (!mb[i] || ma[i])
	}
	union, err := a.Union(b)
	if err != nil {
		t.Fatalf("Union(%v, %v): %v", a, b, err)
	}
	inter, aMinusB, bMinusA := a.Intersect(b), a.Subtract(b), b.Subtract(a)
	checkModel(t, "union", u, union, &mUnion)
	checkModel(t, "intersect", u, inter, &mInter)
	checkModel(t, "a-b", u, aMinusB, &mAminusB)
	checkModel(t, "b-a", u, bMinusA, &mBminusA)

	// The identities the brief asks for, stated on Count.
	if union.Count() != a.Count().Add(b.Count()).Sub(inter.Count()) {
		t.Fatalf("Count(a∪b) = %v, want %v+%v-%v", union.Count(), a.Count(), b.Count(), inter.Count())
	}
	if aMinusB.Overlaps(b) || bMinusA.Overlaps(a) {
		t.Fatalf("a-b = %v overlaps b = %v (or b-a overlaps a)", aMinusB, b)
	}
	if a.Overlaps(b) != overlap || b.Overlaps(a) != overlap {
		t.Fatalf("Overlaps(%v, %v) = %v, want %v", a, b, a.Overlaps(b), overlap)
	}
	if a.ContainsSet(b) != aHasB {
		t.Fatalf("ContainsSet(%v, %v) = %v, want %v", a, b, a.ContainsSet(b), aHasB)
	}
	if a.Equal(b) != (*ma == *mb) {
		t.Fatalf("Equal(%v, %v) = %v", a, b, a.Equal(b))
	}
	if u2, _ := aMinusB.Union(inter); !u2.Equal(a) {
		t.Fatalf("(a-b)∪(a∩b) = %v, want a = %v", u2, a)
	}
}
