package ip

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode"
)

// ParseAddr parses one IP address, IPv4 ("10.244.120.10") or IPv6
// ("fd00::10"), as written in a pool spec.
//
// Unlike netip.ParseAddr it also rejects, each with its own reason: the empty
// string, any whitespace (nothing is trimmed), an IPv6 zone ("fe80::1%eth0"),
// and IPv4-mapped IPv6 ("::ffff:1.2.3.4", which would put an IPv4 host into
// an IPv6 pool). Leading zeros ("010.0.0.1") are rejected as net/netip does.
// The result is therefore never mapped and never zoned, and its String form
// is canonical.
func ParseAddr(s string) (netip.Addr, error) {
	a, reason := parseAddr(s)
	if reason != "" {
		return netip.Addr{}, &ParseError{Kind: "IP", Token: s, Reason: reason}
	}
	return a, nil
}

// parseAddr is ParseAddr with the reason returned bare, for reuse by the
// range parser.
func parseAddr(s string) (netip.Addr, string) {
	if s == "" {
		return netip.Addr{}, "empty"
	}
	if hasSpace(s) {
		return netip.Addr{}, "contains whitespace"
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, netipReason(err)
	}
	if a.Zone() != "" {
		return netip.Addr{}, "IPv6 zone " + strconv.Quote(a.Zone()) + " not allowed"
	}
	if a.Is4In6() {
		return netip.Addr{}, "IPv4-mapped IPv6 address not allowed; write " + a.Unmap().String() + " for IPv4"
	}
	return a, ""
}

// ParseCIDR parses a subnet in CIDR notation ("10.244.0.0/16", "fd00::/64").
// Host bits may be set ("10.0.0.1/24" is accepted as is); use
// ParseCanonicalCIDR where they must not be. Empty input, whitespace, zones
// and IPv4-mapped IPv6 prefixes are rejected as in ParseAddr.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, reason := parseCIDR(s)
	if reason != "" {
		return netip.Prefix{}, &ParseError{Kind: "CIDR", Token: s, Reason: reason}
	}
	return p, nil
}

// ParseCanonicalCIDR is ParseCIDR that also rejects host bits: "10.0.0.1/24"
// is an error that names the canonical form 10.0.0.0/24. The result always
// equals its own Masked form.
func ParseCanonicalCIDR(s string) (netip.Prefix, error) {
	p, reason := parseCIDR(s)
	if reason == "" && p != p.Masked() {
		reason = "host bits set; the canonical form is " + p.Masked().String()
	}
	if reason != "" {
		return netip.Prefix{}, &ParseError{Kind: "CIDR", Token: s, Reason: reason}
	}
	return p, nil
}

func parseCIDR(s string) (netip.Prefix, string) {
	if s == "" {
		return netip.Prefix{}, "empty"
	}
	if hasSpace(s) {
		return netip.Prefix{}, "contains whitespace"
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, netipReason(err)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, "IPv4-mapped IPv6 prefix not allowed"
	}
	return p, ""
}

func hasSpace(s string) bool {
	return strings.IndexFunc(s, unicode.IsSpace) >= 0
}
