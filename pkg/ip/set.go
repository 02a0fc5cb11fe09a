package ip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"go4.org/netipx"
)

// Set is an immutable set of addresses of one family (or empty), kept
// normalised: its ranges are sorted, non-overlapping and non-adjacent, so
// two Sets holding the same addresses have the same Ranges and Strings. The
// zero Set is empty. A Set is safe for concurrent use.
//
// Set is backed by a netipx.IPSet, plus the per-range running address counts
// that Nth and Index need; its memory is proportional to its number of
// ranges, never to its number of addresses.
type Set struct {
	ipset *netipx.IPSet // nil for the empty set
	rr    []Range       // ipset's ranges; never modified after construction
	// before[i] is the number of addresses in rr[:i]; it is below 2^128
	// because rr[i] itself holds at least one more.
	before []u128
	count  Count
}

// newSet wraps a normalised netipx.IPSet whose addresses are of one family.
func newSet(s *netipx.IPSet) Set {
	if s == nil {
		return Set{}
	}
	nr := s.Ranges()
	if len(nr) == 0 {
		return Set{}
	}
	set := Set{ipset: s, rr: make([]Range, len(nr)), before: make([]u128, len(nr))}
	for i, r := range nr {
		set.rr[i] = Range{r.From(), r.To()}
		before, _ := set.count.u128()
		set.before[i] = before
		set.count = set.count.Add(set.rr[i].count())
	}
	return set
}

// build turns a builder into a Set. The builder only ever sees valid ranges
// of one family, so it has no errors to report.
func build(b *netipx.IPSetBuilder) Set {
	s, err := b.IPSet()
	if err != nil {
		panic("ip: netipx.IPSetBuilder rejected a validated range: " + err.Error())
	}
	return newSet(s)
}

// ParseRanges parses a SpiderPool "ips"-style list, each token a single
// address or an "a-b" range (see ParseRange), into one Set. Overlapping and
// adjacent entries merge. All tokens must be of one family; a token of the
// other family is an error that names it and the first token. Errors for
// every bad token are returned together (errors.Join), each a *ParseError.
// An empty list is the empty Set.
func ParseRanges(tokens []string) (Set, error) {
	var (
		b     netipx.IPSetBuilder
		errs  []error
		first string // first valid token, which fixes the family
		is4   bool
	)
	for _, tok := range tokens {
		r, reason, mixed := parseRange(tok)
		if reason == "" {
			switch {
			case first == "":
				first, is4 = tok, r.From.Is4()
			case r.From.Is4() != is4:
				reason = fmt.Sprintf("%s, but the first entry %q is %s", family(r.From), first, familyName(is4))
				mixed = true
			}
		}
		if reason != "" {
			errs = append(errs, &ParseError{Kind: "IP range", Token: tok, Reason: reason, mixedFamily: mixed})
			continue
		}
		b.AddRange(netipx.IPRangeFrom(r.From, r.To))
	}
	if len(errs) > 0 {
		return Set{}, errors.Join(errs...)
	}
	return build(&b), nil
}

// NormaliseRanges parses tokens with ParseRanges and returns the normalised
// list (Set.Strings), the form a webhook writes back: sorted, overlapping
// and adjacent entries merged, a single address as "a", a range as "a-b".
// NormaliseRanges is idempotent.
func NormaliseRanges(tokens []string) ([]string, error) {
	s, err := ParseRanges(tokens)
	if err != nil {
		return nil, err
	}
	return s.Strings(), nil
}

// SetOfPrefix returns the Set of all addresses in p (its host bits ignored).
// An invalid p gives the empty Set.
func SetOfPrefix(p netip.Prefix) Set {
	if !p.IsValid() {
		return Set{}
	}
	var b netipx.IPSetBuilder
	b.AddPrefix(p.Masked())
	return build(&b)
}

// SetOfRanges returns the Set of all addresses in rs, merged. Every range
// must be valid (Range.IsValid) and all of one family; otherwise the error
// names the offending range.
func SetOfRanges(rs ...Range) (Set, error) {
	var b netipx.IPSetBuilder
	for _, r := range rs {
		reason, mixed := r.check()
		if reason == "" && r.From.Is4() != rs[0].From.Is4() {
			reason = fmt.Sprintf("%s, but the first range %s is %s", family(r.From), rs[0], family(rs[0].From))
			mixed = true
		}
		if reason != "" {
			return Set{}, &ParseError{Kind: "IP range", Token: r.String(), Reason: reason, mixedFamily: mixed}
		}
		b.AddRange(netipx.IPRangeFrom(r.From, r.To))
	}
	return build(&b), nil
}

// Ranges returns the normalised ranges of s, in order. The slice is a copy.
func (s Set) Ranges() []Range {
	return append([]Range(nil), s.rr...)
}

// Strings returns s in the normalised SpiderPool form: one entry per range,
// "a" for a single address, "a-b" otherwise. The empty Set gives an empty,
// non-nil slice, so that it serialises as [] rather than null.
func (s Set) Strings() []string {
	out := make([]string, len(s.rr))
	for i, r := range s.rr {
		out[i] = r.String()
	}
	return out
}

// String returns Strings joined with ",", for logs and messages.
func (s Set) String() string {
	return strings.Join(s.Strings(), ",")
}

// IsEmpty reports whether s holds no address.
func (s Set) IsEmpty() bool { return len(s.rr) == 0 }

// Is4 reports whether s is a non-empty set of IPv4 addresses.
func (s Set) Is4() bool { return len(s.rr) > 0 && s.rr[0].From.Is4() }

// Is6 reports whether s is a non-empty set of IPv6 addresses.
func (s Set) Is6() bool { return len(s.rr) > 0 && s.rr[0].From.Is6() }

// Count returns the number of addresses in s.
func (s Set) Count() Count { return s.count }

// Contains reports whether a is in s. It takes O(log ranges) time.
func (s Set) Contains(a netip.Addr) bool {
	return s.ipset != nil && s.ipset.Contains(a)
}

// Equal reports whether s and o hold the same addresses.
func (s Set) Equal(o Set) bool {
	if len(s.rr) != len(o.rr) {
		return false
	}
	for i := range s.rr {
		if s.rr[i] != o.rr[i] {
			return false
		}
	}
	return true
}

// sameFamily reports whether s and o are both non-empty and of one family.
func (s Set) sameFamily(o Set) bool {
	return !s.IsEmpty() && !o.IsEmpty() && s.Is4() == o.Is4()
}

// ContainsSet reports whether every address of o is in s (o is a subset of
// s). The empty set is a subset of every set. It takes
// O(ranges(o) * log ranges(s)) time.
func (s Set) ContainsSet(o Set) bool {
	if o.IsEmpty() {
		return true
	}
	if !s.sameFamily(o) {
		return false
	}
	for _, r := range o.rr {
		i := s.rangeAtOrAfter(r.From)
		if i == len(s.rr) || r.From.Less(s.rr[i].From) || s.rr[i].To.Less(r.To) {
			return false
		}
	}
	return true
}

// Overlaps reports whether s and o share at least one address. Sets of
// different families never overlap. It takes O(ranges(s) + ranges(o)) time.
func (s Set) Overlaps(o Set) bool {
	if !s.sameFamily(o) {
		return false
	}
	i, j := 0, 0
	for i < len(s.rr) && j < len(o.rr) {
		a, b := s.rr[i], o.rr[j]
		switch {
		case a.To.Less(b.From):
			i++
		case b.To.Less(a.From):
			j++
		default:
			return true
		}
	}
	return false
}

// Union returns the addresses in s or o. Combining a non-empty IPv4 set with
// a non-empty IPv6 set is an error matching ErrMixedFamily.
func (s Set) Union(o Set) (Set, error) {
	switch {
	case o.IsEmpty():
		return s, nil
	case s.IsEmpty():
		return o, nil
	case !s.sameFamily(o):
		return Set{}, fmt.Errorf("union of an %s set (%d ranges) and an %s set (%d ranges): %w",
			family(s.rr[0].From), len(s.rr), family(o.rr[0].From), len(o.rr), ErrMixedFamily)
	}
	var b netipx.IPSetBuilder
	b.AddSet(s.ipset)
	b.AddSet(o.ipset)
	return build(&b), nil
}

// Subtract returns the addresses in s that are not in o, such as a pool's
// ips minus its excludeIPs minus reserved addresses. A range split by o
// becomes two. Subtracting a set of the other family changes nothing.
func (s Set) Subtract(o Set) Set {
	if !s.sameFamily(o) || !s.Overlaps(o) {
		return s
	}
	var b netipx.IPSetBuilder
	b.AddSet(s.ipset)
	b.RemoveSet(o.ipset)
	return build(&b)
}

// Intersect returns the addresses in both s and o. Sets of different
// families have an empty intersection.
func (s Set) Intersect(o Set) Set {
	if !s.sameFamily(o) {
		return Set{}
	}
	var b netipx.IPSetBuilder
	b.AddSet(s.ipset)
	b.Intersect(o.ipset)
	return build(&b)
}

// rangeAtOrAfter returns the index of the first range of s whose end is at
// or after a (so a is in it or before it), or len(s.rr) if there is none.
// Addresses compare as netip.Addr.Compare does: every IPv4 address before
// every IPv6 address.
func (s Set) rangeAtOrAfter(a netip.Addr) int {
	lo, hi := 0, len(s.rr)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.rr[m].To.Less(a) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// rangeContaining returns the index of the range of s that holds a, or -1.
func (s Set) rangeContaining(a netip.Addr) int {
	i := s.rangeAtOrAfter(a)
	if i == len(s.rr) || a.Less(s.rr[i].From) || a.BitLen() != s.rr[i].From.BitLen() {
		return -1
	}
	return i
}
