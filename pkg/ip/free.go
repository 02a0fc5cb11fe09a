package ip

import (
	"iter"
	"net/netip"
)

// This file finds free addresses without enumerating them: every function
// walks the ranges of the pool and of the used set with binary search, so
// time and memory depend on the number of ranges, not on how many addresses
// they span. A /8 or a /64 pool costs the same as a /24.

// Nth returns the n-th address of s in ascending order, counting from 0, and
// false if n >= s.Count(). It takes O(log ranges) time and does not
// allocate. Nth(s.Count().Sub(CountFromUint64(1))) is the last address.
func (s Set) Nth(n Count) (netip.Addr, bool) {
	v, ok := n.u128()
	if !ok || n.Cmp(s.count) >= 0 {
		return netip.Addr{}, false
	}
	// The last range whose preceding count is <= n holds the answer.
	lo, hi := 0, len(s.before)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if v.less(s.before[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	r := s.rr[lo-1]
	return u128Of(r.From).add(v.sub(s.before[lo-1])).addr(r.From.Is4()), true
}

// Index returns the position of a in s, the inverse of Nth, and false if a
// is not in s. It takes O(log ranges) time and does not allocate.
func (s Set) Index(a netip.Addr) (Count, bool) {
	i := s.rangeContaining(a)
	if i < 0 || a.Zone() != "" {
		return Count{}, false
	}
	return countFromU128(s.before[i].add(u128Of(a).sub(u128Of(s.rr[i].From)))), true
}

// FirstFree returns the first address of pool that is not in used, searching
// from start (inclusive) to the end of pool and then wrapping around to the
// beginning of pool. When start is not in pool the search begins at the next
// pool address after start (an invalid start, or one of the other family,
// simply ends up at one end of the pool). A zone on start is ignored, and an
// IPv4-mapped start counts as its IPv4 address. It returns false when every
// address of pool is in used.
//
// Addresses of used outside pool are ignored. Allocators spread themselves
// over the free space by starting at different offsets, for instance
// pool.Nth of a per-node hash modulo pool.Count().
//
// FirstFree does not allocate. It takes O(log ranges(pool) + log
// ranges(used)) time when a free address lies in the first pool range it
// looks at, and O(ranges(pool) * log ranges(used)) at worst.
func FirstFree(pool, used Set, start netip.Addr) (netip.Addr, bool) {
	if a, ok := firstFreeFrom(pool, used, position(start)); ok {
		return a, true
	}
	// Wrap: nothing at or after start, so the first free address of the
	// whole pool (if any) lies before start.
	return firstFreeFrom(pool, used, netip.Addr{})
}

// position returns start as a search position: without a zone (which
// would otherwise order it after the same address unzoned) and unmapped.
func position(start netip.Addr) netip.Addr {
	return start.WithZone("").Unmap()
}

// firstFreeFrom returns the smallest address of pool that is not in used
// and is not before c.
func firstFreeFrom(pool, used Set, c netip.Addr) (netip.Addr, bool) {
	for i := pool.rangeAtOrAfter(c); i < len(pool.rr); i++ {
		r := pool.rr[i]
		if c.Less(r.From) || c.BitLen() != r.From.BitLen() {
			c = r.From
		}
		j := used.rangeContaining(c)
		if j < 0 {
			return c, true
		}
		if u := used.rr[j]; u.To.Less(r.To) {
			// Used ranges are merged and never adjacent, so the address
			// after one is free, and it is still inside r.
			return u.To.Next(), true
		}
		// used covers the rest of r; try the next pool range.
	}
	return netip.Addr{}, false
}

// Free returns an iterator over every address of pool not in used, each
// once, in FirstFree's order: from start to the end of pool, then from the
// beginning of pool up to (not including) start. Its first value is
// FirstFree(pool, used, start). Each step takes O(log) time as in FirstFree;
// the iterator holds no per-address state, so it can walk an IPv6 /64 lazily.
// pool and used must not change during iteration; being immutable, they
// cannot.
func Free(pool, used Set, start netip.Addr) iter.Seq[netip.Addr] {
	return func(yield func(netip.Addr) bool) {
		// From start to the end of pool.
		start := position(start)
		for c := start; ; {
			a, ok := firstFreeFrom(pool, used, c)
			if !ok {
				break
			}
			if !yield(a) {
				return
			}
			if c = a.Next(); !c.IsValid() {
				break // a was the last address of its family
			}
		}
		// From the beginning of pool to just before start.
		for c := (netip.Addr{}); ; {
			a, ok := firstFreeFrom(pool, used, c)
			if !ok || !a.Less(start) || !yield(a) {
				return
			}
			if c = a.Next(); !c.IsValid() {
				return
			}
		}
	}
}
