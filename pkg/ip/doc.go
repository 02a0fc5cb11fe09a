// Package ip is orbweaver's IP arithmetic: it parses and formats the strings
// that SpiderPool-style pool specs use (a single IP "10.244.120.10", a range
// "10.244.120.10-10.244.120.20", a subnet "10.244.0.0/16"), and computes with
// the sets of addresses they describe.
//
// Everything here is a pure function over values. The value types are
// net/netip's Addr and Prefix, this package's Range, Count and Set; there is
// no global state and no I/O. The package imports only the standard library
// and go4.org/netipx.
//
// Invariants callers may rely on:
//
//   - Parsers accept exactly one canonical spelling per token: no surrounding
//     or inner whitespace, no IPv6 zones, no IPv4-mapped IPv6 addresses, no
//     leading zeros in IPv4 fields. Every parse error is a *ParseError that
//     names the offending token in quotes and the reason, and matches
//     ErrInvalid with errors.Is.
//   - A Set is immutable, normalised (sorted, merged, non-overlapping,
//     non-adjacent ranges) and holds addresses of one family, or none. Its
//     zero value is the empty set.
//   - Counts never overflow silently: Count holds any number of addresses a
//     Set can have (up to 2^128) and saturates, documented, where it is
//     narrowed to int64 for Kubernetes status fields.
//   - Free-address search (FirstFree, Free, Set.Nth, Set.Index) works on the
//     ranges, never on individual addresses: its memory is independent of
//     how many addresses a pool holds.
//
// docs/design/ip-ranges.md explains the choices.
package ip
