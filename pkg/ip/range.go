package ip

import (
	"net/netip"
	"strconv"
	"strings"
)

// Range is an inclusive range of addresses of one family, From <= To. A
// single address is the range with From == To. Range is a comparable value;
// the zero Range is not valid (IsValid reports false) and contains nothing.
type Range struct {
	From, To netip.Addr
}

// ParseRange parses one SpiderPool "ips" entry: a single address "a" or a
// range "a-b" (IPv4 or IPv6, e.g. "10.244.120.10-10.244.120.20",
// "fd00::10-fd00::1f", "::-::1"). Each side is parsed as ParseAddr does.
// Empty sides, more than one '-', whitespace, a start after the end and
// mixed families are errors that say which.
func ParseRange(s string) (Range, error) {
	r, reason, mixed := parseRange(s)
	if reason != "" {
		return Range{}, &ParseError{Kind: "IP range", Token: s, Reason: reason, mixedFamily: mixed}
	}
	return r, nil
}

func parseRange(s string) (r Range, reason string, mixedFamily bool) {
	if s == "" {
		return Range{}, "empty", false
	}
	if hasSpace(s) {
		return Range{}, "contains whitespace", false
	}
	from, to, isRange := strings.Cut(s, "-")
	if !isRange {
		a, reason := parseAddr(s)
		return Range{a, a}, reason, false
	}
	if strings.Contains(to, "-") {
		return Range{}, "more than one '-'; want a single IP or start-end", false
	}
	if from == "" {
		return Range{}, "missing start address before '-'", false
	}
	if to == "" {
		return Range{}, "missing end address after '-'", false
	}
	if r.From, reason = parseAddr(from); reason != "" {
		return Range{}, "start " + strconv.Quote(from) + ": " + reason, false
	}
	if r.To, reason = parseAddr(to); reason != "" {
		return Range{}, "end " + strconv.Quote(to) + ": " + reason, false
	}
	if reason, mixedFamily = r.check(); reason != "" {
		return Range{}, reason, mixedFamily
	}
	return r, "", false
}

// check returns why r is not a valid range, or "".
func (r Range) check() (reason string, mixedFamily bool) {
	for _, a := range [2]netip.Addr{r.From, r.To} {
		switch {
		case !a.IsValid():
			return "missing address", false
		case a.Zone() != "":
			return "IPv6 zone not allowed", false
		case a.Is4In6():
			return "IPv4-mapped IPv6 address not allowed", false
		}
	}
	if r.From.Is4() != r.To.Is4() {
		return "mixes " + family(r.From) + " and " + family(r.To), true
	}
	if r.To.Less(r.From) {
		return "start " + r.From.String() + " is after end " + r.To.String(), false
	}
	return "", false
}

func family(a netip.Addr) string { return familyName(a.Is4()) }

func familyName(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}

// IsValid reports whether r is a range this package accepts: both ends set,
// of one family, without zones or IPv4-mapped IPv6, and From <= To.
func (r Range) IsValid() bool {
	reason, _ := r.check()
	return reason == ""
}

// String returns r as ParseRange reads it: "a" when From == To, else "a-b".
func (r Range) String() string {
	if r.From == r.To {
		return r.From.String()
	}
	return r.From.String() + "-" + r.To.String()
}

// Contains reports whether a is in r. An invalid r contains nothing.
func (r Range) Contains(a netip.Addr) bool {
	return r.IsValid() && a.BitLen() == r.From.BitLen() && a.Zone() == "" &&
		!a.Less(r.From) && !r.To.Less(a)
}

// Count returns the number of addresses in r: To-From+1, or 0 if r is not
// valid. The range ::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff counts 2^128.
func (r Range) Count() Count {
	if !r.IsValid() {
		return Count{}
	}
	return r.count()
}

// count is Count for a range known to be valid.
func (r Range) count() Count {
	return countFromU128(u128Of(r.To).sub(u128Of(r.From))).Add(Count{lo: 1})
}

// Is4 reports whether r is a valid IPv4 range.
func (r Range) Is4() bool { return r.IsValid() && r.From.Is4() }

// Is6 reports whether r is a valid IPv6 range.
func (r Range) Is6() bool { return r.IsValid() && r.From.Is6() }

// Overlaps reports whether r and o share at least one address. Ranges of
// different families, and invalid ranges, never overlap.
func (r Range) Overlaps(o Range) bool {
	return r.IsValid() && o.IsValid() && r.From.BitLen() == o.From.BitLen() &&
		!r.To.Less(o.From) && !o.To.Less(r.From)
}
