package ip

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// mustSet parses tokens or fails the test.
func mustSet(t testing.TB, tokens ...string) Set {
	t.Helper()
	s, err := ParseRanges(tokens)
	if err != nil {
		t.Fatalf("ParseRanges(%q): %v", tokens, err)
	}
	return s
}

const (
	two64  = "18446744073709551616"
	two128 = "340282366920938463463374607431768211456"
)

func TestParseRanges(t *testing.T) {
	tests := []struct {
		name     string
		tokens   []string
		want     []string
		count    string
		wantErr  []string // substrings of the error, one per bad token
		errToken string   // a token the error must name
	}{
		{name: "nil list", tokens: nil, want: []string{}, count: "0"},
		{name: "empty list", tokens: []string{}, want: []string{}, count: "0"},
		{name: "single", tokens: []string{"10.0.0.1"}, want: []string{"10.0.0.1"}, count: "1"},
		{name: "overlapping merge", tokens: []string{"10.0.0.1-10.0.0.5", "10.0.0.4-10.0.0.9"},
			want: []string{"10.0.0.1-10.0.0.9"}, count: "9"},
		{name: "adjacent merge", tokens: []string{"10.0.0.1-10.0.0.5", "10.0.0.6"},
			want: []string{"10.0.0.1-10.0.0.6"}, count: "6"},
		{name: "adjacent singles become a range", tokens: []string{"10.0.0.3", "10.0.0.1", "10.0.0.2"},
			want: []string{"10.0.0.1-10.0.0.3"}, count: "3"},
		{name: "sorted, gaps kept", tokens: []string{"10.0.0.9", "10.0.0.1", "10.0.0.5"},
			want: []string{"10.0.0.1", "10.0.0.5", "10.0.0.9"}, count: "3"},
		{name: "duplicates", tokens: []string{"10.0.0.1", "10.0.0.1", "10.0.0.1-10.0.0.1"},
			want: []string{"10.0.0.1"}, count: "1"},
		{name: "contained range", tokens: []string{"10.0.0.1-10.0.0.100", "10.0.0.50-10.0.0.60"},
			want: []string{"10.0.0.1-10.0.0.100"}, count: "100"},
		{name: "whole /24 from pieces", tokens: []string{"10.0.0.128-10.0.0.255", "10.0.0.0-10.0.0.127"},
			want: []string{"10.0.0.0-10.0.0.255"}, count: "256"},
		{name: "across an octet", tokens: []string{"10.0.0.255", "10.0.1.0"},
			want: []string{"10.0.0.255-10.0.1.0"}, count: "2"},
		{name: "top of ipv4 space", tokens: []string{"255.255.255.255", "255.255.255.254"},
			want: []string{"255.255.255.254-255.255.255.255"}, count: "2"},
		{name: "whole ipv4 space", tokens: []string{"10.0.0.1", "0.0.0.0-255.255.255.255"},
			want: []string{"0.0.0.0-255.255.255.255"}, count: "4294967296"},
		{name: "ipv6 merge", tokens: []string{"fd00::6-fd00::a", "fd00::1-fd00::5", "fd00::20"},
			want: []string{"fd00::1-fd00::a", "fd00::20"}, count: "11"},
		{name: "ipv6 bottom", tokens: []string{"::-::1"}, want: []string{"::-::1"}, count: "2"},
		{name: "ipv6 adjacent across a 64-bit word", tokens: []string{"::1:0:0:0:0", "::ffff:ffff:ffff:ffff"},
			want: []string{"::ffff:ffff:ffff:ffff-0:0:0:1::"}, count: "2"},
		{name: "ipv6 /64", tokens: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"},
			want: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, count: two64},
		{name: "whole ipv6 space", tokens: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00::1"},
			want: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, count: two128},
		{name: "mixed families", tokens: []string{"10.0.0.1", "10.0.0.2", "fd00::1"},
			wantErr: []string{`"fd00::1": IPv6, but the first entry "10.0.0.1" is IPv4`}, errToken: "fd00::1"},
		{name: "mixed after a bad first token", tokens: []string{"bad", "fd00::1", "10.0.0.1"},
			wantErr: []string{`"bad"`, `"10.0.0.1": IPv4, but the first entry "fd00::1" is IPv6`}, errToken: "10.0.0.1"},
		{name: "empty token", tokens: []string{"10.0.0.1", ""}, wantErr: []string{`"": empty`}, errToken: ""},
		{name: "reversed token", tokens: []string{"10.0.0.9-10.0.0.1"}, wantErr: []string{"is after end"}, errToken: "10.0.0.9-10.0.0.1"},
		{name: "whitespace token", tokens: []string{" 10.0.0.1"}, wantErr: []string{"whitespace"}, errToken: " 10.0.0.1"},
		{name: "a-b-c token", tokens: []string{"10.0.0.1-10.0.0.2-10.0.0.3"}, wantErr: []string{"more than one '-'"}, errToken: "10.0.0.1-10.0.0.2-10.0.0.3"},
		{name: "cidr token", tokens: []string{"10.0.0.0/24"}, wantErr: []string{"unexpected character"}, errToken: "10.0.0.0/24"},
		{name: "mapped token", tokens: []string{"::ffff:10.0.0.1"}, wantErr: []string{"IPv4-mapped"}, errToken: "::ffff:10.0.0.1"},
		{name: "zone token", tokens: []string{"fe80::1%eth0"}, wantErr: []string{"zone"}, errToken: "fe80::1%eth0"},
		{name: "two bad tokens both reported", tokens: []string{"10.0.0.300", "10.0.0.1", "10.0.0.5-"},
			wantErr: []string{`"10.0.0.300"`, `"10.0.0.5-": missing end`}, errToken: "10.0.0.5-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseRanges(tt.tokens)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("ParseRanges(%q) = %v, want an error", tt.tokens, s)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("%v does not match ErrInvalid", err)
				}
				if got := strings.Count(err.Error(), "\n") + 1; got != len(tt.wantErr) {
					t.Errorf("error has %d lines, want %d: %v", got, len(tt.wantErr), err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if !errorNamesToken(err, tt.errToken) {
					t.Errorf("no *ParseError in %q has Token %q", err, tt.errToken)
				}
				if _, nerr := NormaliseRanges(tt.tokens); nerr == nil || nerr.Error() != err.Error() {
					t.Errorf("NormaliseRanges error %v, want %v", nerr, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRanges(%q): %v", tt.tokens, err)
			}
			if got := s.Strings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Strings() = %q, want %q", got, tt.want)
			}
			if got := s.Count().String(); got != tt.count {
				t.Errorf("Count() = %s, want %s", got, tt.count)
			}
			norm, err := NormaliseRanges(tt.tokens)
			if err != nil || !reflect.DeepEqual(norm, tt.want) {
				t.Errorf("NormaliseRanges = %q, %v; want %q", norm, err, tt.want)
			}
			again, err := NormaliseRanges(norm)
			if err != nil || !reflect.DeepEqual(again, norm) {
				t.Errorf("NormaliseRanges is not idempotent: %q then %q, %v", norm, again, err)
			}
		})
	}
}

// errorNamesToken reports whether some *ParseError joined into err has
// Token tok.
func errorNamesToken(err error, tok string) bool {
	if pe, ok := err.(*ParseError); ok {
		return pe.Token == tok
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if errorNamesToken(e, tok) {
				return true
			}
		}
	}
	return false
}

func TestSetOfPrefix(t *testing.T) {
	tests := []struct {
		name   string
		prefix netip.Prefix
		want   []string
		count  string
		is4    bool
	}{
		{name: "/24", prefix: netip.MustParsePrefix("10.0.0.0/24"), want: []string{"10.0.0.0-10.0.0.255"}, count: "256", is4: true},
		{name: "/8", prefix: netip.MustParsePrefix("10.0.0.0/8"), want: []string{"10.0.0.0-10.255.255.255"}, count: "16777216", is4: true},
		{name: "ipv4 /0", prefix: netip.MustParsePrefix("0.0.0.0/0"), want: []string{"0.0.0.0-255.255.255.255"}, count: "4294967296", is4: true},
		{name: "/32", prefix: netip.MustParsePrefix("10.0.0.1/32"), want: []string{"10.0.0.1"}, count: "1", is4: true},
		{name: "host bits are ignored", prefix: netip.MustParsePrefix("10.0.0.77/30"), want: []string{"10.0.0.76-10.0.0.79"}, count: "4", is4: true},
		{name: "ipv6 /64 is past uint64", prefix: netip.MustParsePrefix("fd00::/64"), want: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, count: two64},
		{name: "ipv6 /120", prefix: netip.MustParsePrefix("fd00::/120"), want: []string{"fd00::-fd00::ff"}, count: "256"},
		{name: "ipv6 ::/0", prefix: netip.MustParsePrefix("::/0"), want: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, count: two128},
		{name: "invalid prefix", prefix: netip.Prefix{}, want: []string{}, count: "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := SetOfPrefix(tt.prefix)
			if got := s.Strings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Strings() = %q, want %q", got, tt.want)
			}
			if got := s.Count().String(); got != tt.count {
				t.Errorf("Count() = %s, want %s", got, tt.count)
			}
			if s.Is4() != tt.is4 || s.Is6() != (!tt.is4 && !s.IsEmpty()) {
				t.Errorf("Is4() = %v, Is6() = %v", s.Is4(), s.Is6())
			}
		})
	}
}

func TestSetOfRanges(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name    string
		ranges  []Range
		want    []string
		wantErr string
	}{
		{name: "none", want: []string{}},
		{name: "merged", ranges: []Range{{a("10.0.0.4"), a("10.0.0.9")}, {a("10.0.0.1"), a("10.0.0.5")}}, want: []string{"10.0.0.1-10.0.0.9"}},
		{name: "single addresses", ranges: []Range{{a("fd00::2"), a("fd00::2")}, {a("fd00::1"), a("fd00::1")}}, want: []string{"fd00::1-fd00::2"}},
		{name: "zero range", ranges: []Range{{}}, wantErr: `invalid IP range "invalid IP": missing address`},
		{name: "reversed", ranges: []Range{{a("10.0.0.9"), a("10.0.0.1")}}, wantErr: "start 10.0.0.9 is after end 10.0.0.1"},
		{name: "mixed ends", ranges: []Range{{a("10.0.0.1"), a("fd00::1")}}, wantErr: "mixes IPv4 and IPv6"},
		{name: "mixed ranges", ranges: []Range{{a("10.0.0.1"), a("10.0.0.1")}, {a("fd00::1"), a("fd00::2")}},
			wantErr: `invalid IP range "fd00::1-fd00::2": IPv6, but the first range 10.0.0.1 is IPv4`},
		{name: "zone", ranges: []Range{{a("fe80::1%eth0"), a("fe80::2")}}, wantErr: "zone"},
		{name: "mapped", ranges: []Range{{a("::ffff:10.0.0.1"), a("::ffff:10.0.0.2")}}, wantErr: "IPv4-mapped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := SetOfRanges(tt.ranges...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("SetOfRanges error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Strings(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Strings() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSetAlgebra(t *testing.T) {
	tests := []struct {
		name           string
		a, b           []string
		union          []string // nil: Union must fail with ErrMixedFamily
		intersect      []string
		subtract       []string // a minus b
		overlaps       bool
		aContainsB     bool
		subtractCounts string
	}{
		{
			name: "exclude splits a range into two", a: []string{"10.0.0.1-10.0.0.10"}, b: []string{"10.0.0.5"},
			union: []string{"10.0.0.1-10.0.0.10"}, intersect: []string{"10.0.0.5"},
			subtract: []string{"10.0.0.1-10.0.0.4", "10.0.0.6-10.0.0.10"}, overlaps: true, aContainsB: true, subtractCounts: "9",
		},
		{
			name: "exclude everything", a: []string{"10.0.0.1-10.0.0.10", "10.0.0.20"}, b: []string{"10.0.0.0-10.0.0.255"},
			union: []string{"10.0.0.0-10.0.0.255"}, intersect: []string{"10.0.0.1-10.0.0.10", "10.0.0.20"},
			subtract: []string{}, overlaps: true, subtractCounts: "0",
		},
		{
			name: "exclude both ends", a: []string{"10.0.0.1-10.0.0.10"}, b: []string{"10.0.0.1", "10.0.0.10"},
			union: []string{"10.0.0.1-10.0.0.10"}, intersect: []string{"10.0.0.1", "10.0.0.10"},
			subtract: []string{"10.0.0.2-10.0.0.9"}, overlaps: true, aContainsB: true, subtractCounts: "8",
		},
		{
			name: "exclude several holes", a: []string{"10.0.0.0-10.0.0.255"}, b: []string{"10.0.0.0", "10.0.0.10-10.0.0.19", "10.0.0.255"},
			union: []string{"10.0.0.0-10.0.0.255"}, intersect: []string{"10.0.0.0", "10.0.0.10-10.0.0.19", "10.0.0.255"},
			subtract: []string{"10.0.0.1-10.0.0.9", "10.0.0.20-10.0.0.254"}, overlaps: true, aContainsB: true, subtractCounts: "244",
		},
		{
			name: "disjoint", a: []string{"10.0.0.1-10.0.0.5"}, b: []string{"10.0.0.7-10.0.0.9"},
			union: []string{"10.0.0.1-10.0.0.5", "10.0.0.7-10.0.0.9"}, intersect: []string{},
			subtract: []string{"10.0.0.1-10.0.0.5"}, subtractCounts: "5",
		},
		{
			name: "adjacent sets union into one range", a: []string{"10.0.0.1-10.0.0.5"}, b: []string{"10.0.0.6-10.0.0.9"},
			union: []string{"10.0.0.1-10.0.0.9"}, intersect: []string{},
			subtract: []string{"10.0.0.1-10.0.0.5"}, subtractCounts: "5",
		},
		{
			name: "partial overlap", a: []string{"10.0.0.1-10.0.0.5"}, b: []string{"10.0.0.4-10.0.0.9"},
			union: []string{"10.0.0.1-10.0.0.9"}, intersect: []string{"10.0.0.4-10.0.0.5"},
			subtract: []string{"10.0.0.1-10.0.0.3"}, overlaps: true, subtractCounts: "3",
		},
		{
			name: "touching at one address", a: []string{"10.0.0.5-10.0.0.10"}, b: []string{"10.0.0.10-10.0.0.12"},
			union: []string{"10.0.0.5-10.0.0.12"}, intersect: []string{"10.0.0.10"},
			subtract: []string{"10.0.0.5-10.0.0.9"}, overlaps: true, subtractCounts: "5",
		},
		{
			name: "b empty", a: []string{"10.0.0.1-10.0.0.5"}, b: []string{},
			union: []string{"10.0.0.1-10.0.0.5"}, intersect: []string{},
			subtract: []string{"10.0.0.1-10.0.0.5"}, aContainsB: true, subtractCounts: "5",
		},
		{
			name: "a empty", a: []string{}, b: []string{"fd00::1"},
			union: []string{"fd00::1"}, intersect: []string{}, subtract: []string{}, subtractCounts: "0",
		},
		{
			name: "mixed families", a: []string{"10.0.0.1-10.0.0.5"}, b: []string{"fd00::1-fd00::5"},
			union: nil, intersect: []string{}, subtract: []string{"10.0.0.1-10.0.0.5"}, subtractCounts: "5",
		},
		{
			name: "ipv6 /64 minus three near the top", a: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"},
			b:     []string{"fd00::ffff:ffff:ffff:fffd-fd00::ffff:ffff:ffff:ffff"},
			union: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, intersect: []string{"fd00::ffff:ffff:ffff:fffd-fd00::ffff:ffff:ffff:ffff"},
			subtract: []string{"fd00::-fd00::ffff:ffff:ffff:fffc"}, overlaps: true, aContainsB: true, subtractCounts: "18446744073709551613",
		},
		{
			name: "whole ipv6 space minus one", a: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, b: []string{"::1:0:0:0:0"},
			union: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, intersect: []string{"0:0:0:1::"},
			subtract: []string{"::-::ffff:ffff:ffff:ffff", "::1:0:0:0:1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			overlaps: true, aContainsB: true,
			subtractCounts: "340282366920938463463374607431768211455",
		},
		{
			name: "superset in b", a: []string{"10.0.0.5"}, b: []string{"10.0.0.0-10.0.0.9", "10.0.0.20"},
			union: []string{"10.0.0.0-10.0.0.9", "10.0.0.20"}, intersect: []string{"10.0.0.5"},
			subtract: []string{}, overlaps: true, subtractCounts: "0",
		},
		{
			name: "b straddles a gap of a", a: []string{"10.0.0.1-10.0.0.3", "10.0.0.7-10.0.0.9"}, b: []string{"10.0.0.2-10.0.0.8"},
			union: []string{"10.0.0.1-10.0.0.9"}, intersect: []string{"10.0.0.2-10.0.0.3", "10.0.0.7-10.0.0.8"},
			subtract: []string{"10.0.0.1", "10.0.0.9"}, overlaps: true, subtractCounts: "2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := mustSet(t, tt.a...), mustSet(t, tt.b...)
			u, err := a.Union(b)
			if tt.union == nil {
				if !errors.Is(err, ErrMixedFamily) {
					t.Errorf("Union error = %v, want ErrMixedFamily", err)
				}
			} else if err != nil || !reflect.DeepEqual(u.Strings(), tt.union) {
				t.Errorf("Union = %q, %v; want %q", u.Strings(), err, tt.union)
			}
			if got := a.Intersect(b).Strings(); !reflect.DeepEqual(got, tt.intersect) {
				t.Errorf("Intersect = %q, want %q", got, tt.intersect)
			}
			if got := b.Intersect(a).Strings(); !reflect.DeepEqual(got, tt.intersect) {
				t.Errorf("Intersect is not symmetric: %q, want %q", got, tt.intersect)
			}
			sub := a.Subtract(b)
			if got := sub.Strings(); !reflect.DeepEqual(got, tt.subtract) {
				t.Errorf("Subtract = %q, want %q", got, tt.subtract)
			}
			if got := sub.Count().String(); got != tt.subtractCounts {
				t.Errorf("Subtract count = %s, want %s", got, tt.subtractCounts)
			}
			if sub.Overlaps(b) {
				t.Errorf("a-b overlaps b")
			}
			if a.Overlaps(b) != tt.overlaps || b.Overlaps(a) != tt.overlaps {
				t.Errorf("Overlaps = %v/%v, want %v", a.Overlaps(b), b.Overlaps(a), tt.overlaps)
			}
			if a.ContainsSet(b) != tt.aContainsB {
				t.Errorf("ContainsSet = %v, want %v", a.ContainsSet(b), tt.aContainsB)
			}
			if !a.ContainsSet(sub) || !a.ContainsSet(a) || !a.ContainsSet(Set{}) {
				t.Errorf("a does not contain a-b, itself or the empty set")
			}
		})
	}
}

// TestPoolArithmetic is the webhook/allocator use: ips minus excludeIPs
// minus reserved addresses, counted and written back.
func TestPoolArithmetic(t *testing.T) {
	ips := mustSet(t, "10.244.120.10-10.244.120.20", "10.244.120.30-10.244.120.40")
	exclude := mustSet(t, "10.244.120.15", "10.244.120.35-10.244.120.50")
	reserved := mustSet(t, "10.244.120.10", "10.244.120.0-10.244.120.1")
	avail := ips.Subtract(exclude).Subtract(reserved)
	want := []string{"10.244.120.11-10.244.120.14", "10.244.120.16-10.244.120.20", "10.244.120.30-10.244.120.34"}
	if got := avail.Strings(); !reflect.DeepEqual(got, want) {
		t.Errorf("available = %q, want %q", got, want)
	}
	if got := avail.Count().Int64Saturating(); got != 14 {
		t.Errorf("count = %d, want 14", got)
	}
	if avail.Contains(netip.MustParseAddr("10.244.120.15")) || !avail.Contains(netip.MustParseAddr("10.244.120.16")) {
		t.Error("Contains disagrees with Strings")
	}
	if !ips.ContainsSet(avail) || avail.ContainsSet(ips) || avail.Equal(ips) || !avail.Equal(mustSet(t, want...)) {
		t.Error("subset/equality relations are wrong")
	}
}

func TestSetAccessors(t *testing.T) {
	s := mustSet(t, "fd00::1-fd00::3", "fd00::10")
	rs := s.Ranges()
	rs[0].From = netip.MustParseAddr("fd00::")
	if s.Ranges()[0].From != netip.MustParseAddr("fd00::1") {
		t.Error("Ranges() exposes the Set's internal slice")
	}
	if !s.Is6() || s.Is4() || s.IsEmpty() {
		t.Errorf("Is6=%v Is4=%v IsEmpty=%v", s.Is6(), s.Is4(), s.IsEmpty())
	}
	if got := s.String(); got != "fd00::1-fd00::3,fd00::10" {
		t.Errorf("String() = %q", got)
	}
	var empty Set
	if !empty.IsEmpty() || empty.Is4() || empty.Is6() || !empty.Count().IsZero() || empty.Contains(netip.IPv4Unspecified()) {
		t.Error("the zero Set is not empty")
	}
	if !empty.Equal(mustSet(t)) || empty.String() != "" {
		t.Error("the zero Set differs from ParseRanges(nil)")
	}
	for _, a := range []string{"fd00::1%eth0", "::ffff:10.0.0.1", "10.0.0.1"} {
		if s.Contains(netip.MustParseAddr(a)) {
			t.Errorf("%v contains %s", s, a)
		}
	}
}
