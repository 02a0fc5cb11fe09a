package ip

import (
	"errors"
	"math/big"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Each fuzz target checks invariants, not only the absence of panics. Seeds
// come from f.Add and from testdata/fuzz/<FuzzName>/.

// checkErrorNamesToken asserts the contract every parse error keeps.
func checkErrorNamesToken(t *testing.T, err error, kind, token string) {
	t.Helper()
	var pe *ParseError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &pe) {
		t.Fatalf("error %q is not a *ParseError matching ErrInvalid", err)
	}
	if pe.Kind != kind || pe.Token != token || pe.Reason == "" {
		t.Fatalf("ParseError %+v, want Kind %q Token %q and a reason", pe, kind, token)
	}
	if !strings.Contains(err.Error(), strconv.Quote(token)) {
		t.Fatalf("error %q does not quote the token %q", err, token)
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"10.244.120.10", "fd00::10", "::", "010.0.0.1", "fe80::1%eth0", "::ffff:1.2.3.4", " 10.0.0.1", "", "1.2.3.4.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddr(s)
		std, stdErr := netip.ParseAddr(s)
		if err != nil {
			checkErrorNamesToken(t, err, "IP", s)
			// We reject only what net/netip rejects, plus zones and mapped
			// addresses.
			if stdErr == nil && std.Zone() == "" && !std.Is4In6() {
				t.Fatalf("ParseAddr(%q) failed (%v) but net/netip accepts %v", s, err, std)
			}
			return
		}
		if stdErr != nil || std != a {
			t.Fatalf("ParseAddr(%q) = %v, net/netip says %v, %v", s, a, std, stdErr)
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("ParseAddr(%q) = %v: zoned, mapped or invalid", s, a)
		}
		again, err := ParseAddr(a.String())
		if err != nil || again != a {
			t.Fatalf("%v re-parses to %v, %v", a, again, err)
		}
		if r, err := ParseRange(s); err != nil || r != (Range{a, a}) {
			t.Fatalf("ParseRange(%q) = %v, %v; want the single address %v", s, r, err, a)
		}
	})
}

func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{"10.244.0.0/16", "10.0.0.1/24", "fd00::/64", "::/0", "0.0.0.0/0", "10.0.0.0/33", "10.0.0.0/024", "::ffff:10.0.0.0/120", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCIDR(s)
		cp, cerr := ParseCanonicalCIDR(s)
		if err != nil {
			checkErrorNamesToken(t, err, "CIDR", s)
			if cerr == nil {
				t.Fatalf("ParseCanonicalCIDR(%q) accepts what ParseCIDR rejects", s)
			}
			return
		}
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParseCIDR(%q) = %v: invalid, mapped or zoned", s, p)
		}
		if again, err := ParseCIDR(p.String()); err != nil || again != p {
			t.Fatalf("%v re-parses to %v, %v", p, again, err)
		}
		if canonical := p == p.Masked(); canonical != (cerr == nil) {
			t.Fatalf("ParseCanonicalCIDR(%q) = %v, %v; canonical = %v", s, cp, cerr, canonical)
		} else if !canonical {
			checkErrorNamesToken(t, cerr, "CIDR", s)
			if !strings.Contains(cerr.Error(), p.Masked().String()) {
				t.Fatalf("error %q does not name the canonical form %v", cerr, p.Masked())
			}
		} else if cp != p {
			t.Fatalf("ParseCanonicalCIDR(%q) = %v, ParseCIDR = %v", s, cp, p)
		}
		set := SetOfPrefix(p)
		want := new(big.Int).Lsh(big.NewInt(1), uint(p.Addr().BitLen()-p.Bits()))
		if got := bigOf(set.Count()); got.Cmp(want) != 0 {
			t.Fatalf("SetOfPrefix(%v).Count() = %v, want %v", p, got, want)
		}
		if !set.Contains(p.Addr()) || !set.Contains(p.Masked().Addr()) || len(set.Ranges()) != 1 {
			t.Fatalf("SetOfPrefix(%v) = %v", p, set)
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"10.244.120.10-10.244.120.20", "10.0.0.1", "fd00::10-fd00::1f", "::-::1",
		"10.0.0.9-10.0.0.1", "fd00::1-10.0.0.1", "10.0.0.1-10.0.0.2-10.0.0.3", "-", "10.0.0.1 - 10.0.0.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRange(s)
		if err != nil {
			checkErrorNamesToken(t, err, "IP range", s)
			if r != (Range{}) {
				t.Fatalf("ParseRange(%q) returned %v with an error", s, r)
			}
			return
		}
		if !r.IsValid() || r.To.Less(r.From) || r.From.Is4() != r.To.Is4() {
			t.Fatalf("ParseRange(%q) = %v: invalid", s, r)
		}
		str := r.String()
		if again, err := ParseRange(str); err != nil || again != r {
			t.Fatalf("%v re-parses to %v, %v", r, again, err)
		}
		if (r.From == r.To) == strings.Contains(str, "-") {
			t.Fatalf("String() = %q for %v", str, r)
		}
		want := new(big.Int).Sub(new(big.Int).SetBytes(r.To.AsSlice()), new(big.Int).SetBytes(r.From.AsSlice()))
		want.Add(want, big.NewInt(1))
		if got := bigOf(r.Count()); got.Cmp(want) != 0 {
			t.Fatalf("Count(%v) = %v, want %v", r, got, want)
		}
		if !r.Contains(r.From) || !r.Contains(r.To) || r.Contains(r.From.Prev()) || r.Contains(r.To.Next()) {
			t.Fatalf("Contains is wrong at the ends of %v", r)
		}
		if set, err := SetOfRanges(r); err != nil || set.Count() != r.Count() || set.String() != str {
			t.Fatalf("SetOfRanges(%v) = %v, %v", r, set, err)
		}
	})
}

// splitTokens turns fuzz input into a token list: comma-separated, as a
// webhook test might write it, with "" meaning the empty list.
func splitTokens(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func FuzzParseRanges(f *testing.F) {
	for _, s := range []string{"10.0.0.1-10.0.0.5,10.0.0.4-10.0.0.9", "10.0.0.1-10.0.0.5,10.0.0.6", "fd00::1,fd00::3,fd00::2",
		"10.0.0.1,fd00::1", "10.0.0.1,,10.0.0.2", "0.0.0.0-255.255.255.255,10.0.0.1", "::-::1,::2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tokens := splitTokens(s)
		set, err := ParseRanges(tokens)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("%v does not match ErrInvalid", err)
			}
			// Every joined error names one of the tokens.
			var errs []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			if len(errs) == 0 {
				t.Fatalf("error %v joins nothing", err)
			}
			for _, e := range errs {
				var pe *ParseError
				if !errors.As(e, &pe) || !slices.Contains(tokens, pe.Token) {
					t.Fatalf("%v does not name one of %q", e, tokens)
				}
			}
			return
		}
		checkNormalised(t, "ParseRanges", set)
		for _, tok := range tokens {
			r, err := ParseRange(tok)
			if err != nil {
				t.Fatalf("ParseRanges accepted %q, ParseRange says %v", tok, err)
			}
			if one, _ := SetOfRanges(r); !set.ContainsSet(one) {
				t.Fatalf("%v does not contain its token %q", set, tok)
			}
		}
		norm, err := NormaliseRanges(tokens)
		if err != nil || !slices.Equal(norm, set.Strings()) {
			t.Fatalf("NormaliseRanges = %q, %v; Strings = %q", norm, err, set.Strings())
		}
		again, err := NormaliseRanges(norm)
		if err != nil || !slices.Equal(again, norm) {
			t.Fatalf("NormaliseRanges is not idempotent: %q then %q, %v", norm, again, err)
		}
		// Tokens in any order give the same set.
		rev := slices.Clone(tokens)
		slices.Reverse(rev)
		if other, err := ParseRanges(rev); err != nil || !other.Equal(set) {
			t.Fatalf("reversed tokens give %v, %v; want %v", other, err, set)
		}
	})
}

func FuzzSetAlgebra(f *testing.F) {
	f.Add(uint8(0), []byte{1, 5, 20, 30}, []byte{4, 9})
	f.Add(uint8(2), []byte{0, 255}, []byte{10, 10, 250, 255})
	f.Add(uint8(4), []byte{0, 100, 101, 200}, []byte{100, 101})
	f.Add(uint8(6), []byte{}, []byte{255})
	f.Fuzz(func(t *testing.T, sel uint8, a, b []byte) {
		u := universeFor(sel)
		sa, ma := setFromBytes(t, u, a)
		sb, mb := setFromBytes(t, u, b)
		checkAlgebra(t, u, sa, sb, &ma, &mb)
	})
}

func FuzzFirstFree(f *testing.F) {
	f.Add(uint8(0), []byte{0, 255}, []byte{5, 9}, uint8(7), uint8(0))
	f.Add(uint8(2), []byte{250, 255}, []byte{254, 255}, uint8(254), uint8(0))
	f.Add(uint8(5), []byte{0, 255}, []byte{0, 126, 128, 255}, uint8(200), uint8(0))
	f.Add(uint8(6), []byte{0, 255}, []byte{0, 255}, uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, sel uint8, pool, used []byte, off, mode uint8) {
		u := universeFor(sel)
		sp, mp := setFromBytes(t, u, pool)
		su, mu := setFromBytes(t, u, used)
		start, p := startFor(u, off, mode)
		checkFree(t, u, sp, su, &mp, &mu, start, p)
	})
}
