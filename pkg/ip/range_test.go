package ip

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		from, to  string // want; empty when an error is expected
		count     string
		str       string // want String(); in if empty
		wantErr   string
		wantMixed bool
	}{
		{name: "single ipv4", in: "10.244.120.10", from: "10.244.120.10", to: "10.244.120.10", count: "1"},
		{name: "ipv4 range", in: "10.244.120.10-10.244.120.20", from: "10.244.120.10", to: "10.244.120.20", count: "11"},
		{name: "whole /24", in: "10.0.0.0-10.0.0.255", from: "10.0.0.0", to: "10.0.0.255", count: "256"},
		{name: "equal ends print as one", in: "10.0.0.7-10.0.0.7", from: "10.0.0.7", to: "10.0.0.7", count: "1", str: "10.0.0.7"},
		{name: "whole ipv4 space", in: "0.0.0.0-255.255.255.255", from: "0.0.0.0", to: "255.255.255.255", count: "4294967296"},
		{name: "single ipv6", in: "fd00::10", from: "fd00::10", to: "fd00::10", count: "1"},
		{name: "ipv6 range", in: "fd00::10-fd00::1f", from: "fd00::10", to: "fd00::1f", count: "16"},
		{name: "ipv6 bottom", in: "::-::1", from: "::", to: "::1", count: "2"},
		{name: "ipv6 canonicalised", in: "FD00::0010-fd00:0::1F", from: "fd00::10", to: "fd00::1f", count: "16", str: "fd00::10-fd00::1f"},
		{name: "ipv6 across 64-bit word", in: "::ffff:ffff:ffff:fffe-0:0:0:1::1", from: "::ffff:ffff:ffff:fffe", to: "::1:0:0:0:1", count: "4", str: "::ffff:ffff:ffff:fffe-::1:0:0:0:1"},
		{name: "ipv6 /64 as range", in: "fd00::-fd00::ffff:ffff:ffff:ffff", from: "fd00::", to: "fd00::ffff:ffff:ffff:ffff", count: "18446744073709551616"},
		{name: "whole ipv6 space", in: "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", from: "::", to: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
			count: "340282366920938463463374607431768211456"},
		{name: "reversed", in: "10.0.0.9-10.0.0.1", wantErr: "start 10.0.0.9 is after end 10.0.0.1"},
		{name: "reversed ipv6", in: "fd00::2-fd00::1", wantErr: "start fd00::2 is after end fd00::1"},
		{name: "mixed v4-v6", in: "10.0.0.1-fd00::1", wantErr: "mixes IPv4 and IPv6", wantMixed: true},
		{name: "mixed v6-v4", in: "fd00::1-10.0.0.1", wantErr: "mixes IPv6 and IPv4", wantMixed: true},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "dash only", in: "-", wantErr: "missing start"},
		{name: "empty start", in: "-10.0.0.1", wantErr: "missing start"},
		{name: "empty end", in: "10.0.0.1-", wantErr: "missing end"},
		{name: "three parts", in: "10.0.0.1-10.0.0.2-10.0.0.3", wantErr: "more than one '-'"},
		{name: "double dash", in: "10.0.0.1--10.0.0.3", wantErr: "more than one '-'"},
		{name: "spaces around dash", in: "10.0.0.1 - 10.0.0.2", wantErr: "whitespace"},
		{name: "trailing space", in: "10.0.0.1-10.0.0.2 ", wantErr: "whitespace"},
		{name: "bad start", in: "10.0.0.256-10.0.0.300", wantErr: `start "10.0.0.256": IPv4 field has value >255`},
		{name: "leading zero end", in: "10.0.0.1-10.0.0.010", wantErr: `end "10.0.0.010"`},
		{name: "zone", in: "fe80::1%eth0-fe80::2", wantErr: "zone"},
		{name: "mapped end", in: "::ffff:1.2.3.4-::ffff:1.2.3.5", wantErr: "IPv4-mapped"},
		{name: "cidr", in: "10.0.0.0/24", wantErr: "unexpected character"},
		{name: "comma list", in: "10.0.0.1,10.0.0.2", wantErr: "unexpected character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRange(tt.in)
			if tt.wantErr != "" {
				checkParseError(t, err, "IP range", tt.in, tt.wantErr)
				var pe *ParseError
				if errors.As(err, &pe) && pe.mixedFamily != tt.wantMixed {
					t.Errorf("mixed family = %v, want %v", pe.mixedFamily, tt.wantMixed)
				}
				if r != (Range{}) {
					t.Errorf("got %v with the error, want the zero Range", r)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRange(%q): %v", tt.in, err)
			}
			want := Range{netip.MustParseAddr(tt.from), netip.MustParseAddr(tt.to)}
			if r != want {
				t.Errorf("ParseRange(%q) = %v, want %v", tt.in, r, want)
			}
			if got := r.Count().String(); got != tt.count {
				t.Errorf("Count() = %s, want %s", got, tt.count)
			}
			wantStr := tt.str
			if wantStr == "" {
				wantStr = tt.in
			}
			if r.String() != wantStr {
				t.Errorf("String() = %q, want %q", r.String(), wantStr)
			}
			if !r.IsValid() || r.Is4() == r.Is6() || r.Is4() != want.From.Is4() {
				t.Errorf("IsValid=%v Is4=%v Is6=%v", r.IsValid(), r.Is4(), r.Is6())
			}
			if !r.Contains(r.From) || !r.Contains(r.To) {
				t.Errorf("%v does not contain its ends", r)
			}
		})
	}
}

func TestRangeMethods(t *testing.T) {
	mr := func(s string) Range {
		r, err := ParseRange(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := netip.MustParseAddr
	tests := []struct {
		name     string
		r        Range
		in, out  []netip.Addr
		overlaps []Range
		disjoint []Range
	}{
		{
			name:     "ipv4 range",
			r:        mr("10.0.0.5-10.0.0.9"),
			in:       []netip.Addr{a("10.0.0.5"), a("10.0.0.7"), a("10.0.0.9")},
			out:      []netip.Addr{a("10.0.0.4"), a("10.0.0.10"), a("::ffff:10.0.0.7"), a("fd00::7"), {}},
			overlaps: []Range{mr("10.0.0.9-10.0.0.20"), mr("10.0.0.0-10.0.0.5"), mr("10.0.0.6"), mr("0.0.0.0-255.255.255.255")},
			disjoint: []Range{mr("10.0.0.10-10.0.0.20"), mr("10.0.0.4"), mr("::-ffff::"), {}},
		},
		{
			name:     "ipv6 single",
			r:        mr("fd00::1"),
			in:       []netip.Addr{a("fd00::1")},
			out:      []netip.Addr{a("fd00::"), a("fd00::2"), a("fd00::1%eth0"), a("0.0.0.1")},
			overlaps: []Range{mr("fd00::-fd00::1"), mr("fd00::1")},
			disjoint: []Range{mr("fd00::2-fd00::3"), mr("0.0.0.0-255.255.255.255")},
		},
		{
			name:     "invalid zero range",
			r:        Range{},
			out:      []netip.Addr{a("0.0.0.0"), a("::"), {}},
			disjoint: []Range{mr("0.0.0.0-255.255.255.255"), {}},
		},
		{
			name:     "reversed is invalid",
			r:        Range{a("10.0.0.9"), a("10.0.0.1")},
			out:      []netip.Addr{a("10.0.0.5")},
			disjoint: []Range{mr("10.0.0.0-10.0.0.255")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, x := range tt.in {
				if !tt.r.Contains(x) {
					t.Errorf("%v does not contain %v", tt.r, x)
				}
			}
			for _, x := range tt.out {
				if tt.r.Contains(x) {
					t.Errorf("%v contains %v", tt.r, x)
				}
			}
			for _, o := range tt.overlaps {
				if !tt.r.Overlaps(o) || !o.Overlaps(tt.r) {
					t.Errorf("%v and %v do not overlap", tt.r, o)
				}
			}
			for _, o := range tt.disjoint {
				if tt.r.Overlaps(o) || o.Overlaps(tt.r) {
					t.Errorf("%v and %v overlap", tt.r, o)
				}
			}
			if !tt.r.IsValid() && !tt.r.Count().IsZero() {
				t.Errorf("invalid %v counts %v", tt.r, tt.r.Count())
			}
		})
	}
}
