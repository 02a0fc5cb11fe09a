package ip

import (
	"math/big"
	"net/netip"
	"slices"
	"testing"
)

// countOf parses a decimal count, using math/big as an independent oracle.
func countOf(t testing.TB, s string) Count {
	t.Helper()
	b, ok := new(big.Int).SetString(s, 10)
	if !ok || b.Sign() < 0 || b.BitLen() > 192 {
		t.Fatalf("bad count %q", s)
	}
	var c Count
	words := [3]*uint64{&c.lo, &c.mid, &c.hi}
	mask := new(big.Int).SetUint64(^uint64(0))
	for _, w := range words {
		*w = new(big.Int).And(b, mask).Uint64()
		b.Rsh(b, 64)
	}
	return c
}

func TestNthIndex(t *testing.T) {
	tests := []struct {
		name string
		set  []string
		n    string
		want string // "" when n is out of range
	}{
		{name: "first", set: []string{"10.0.0.1-10.0.0.5", "10.0.0.10-10.0.0.12"}, n: "0", want: "10.0.0.1"},
		{name: "end of first range", set: []string{"10.0.0.1-10.0.0.5", "10.0.0.10-10.0.0.12"}, n: "4", want: "10.0.0.5"},
		{name: "start of second range", set: []string{"10.0.0.1-10.0.0.5", "10.0.0.10-10.0.0.12"}, n: "5", want: "10.0.0.10"},
		{name: "last is Count-1", set: []string{"10.0.0.1-10.0.0.5", "10.0.0.10-10.0.0.12"}, n: "7", want: "10.0.0.12"},
		{name: "Count is past the end", set: []string{"10.0.0.1-10.0.0.5", "10.0.0.10-10.0.0.12"}, n: "8"},
		{name: "empty set", set: nil, n: "0"},
		{name: "across an octet", set: []string{"10.0.0.250-10.0.1.10"}, n: "10", want: "10.0.1.4"},
		{name: "ipv4 /0 last", set: []string{"0.0.0.0-255.255.255.255"}, n: "4294967295", want: "255.255.255.255"},
		{name: "ipv4 /0 past the end", set: []string{"0.0.0.0-255.255.255.255"}, n: "4294967296"},
		{name: "ipv6 single", set: []string{"fd00::7"}, n: "0", want: "fd00::7"},
		{name: "ipv6 /64 last is Count-1", set: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, n: "18446744073709551615", want: "fd00::ffff:ffff:ffff:ffff"},
		{name: "ipv6 /64 past the end", set: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"}, n: two64},
		{name: "ipv6 across a 64-bit word", set: []string{"::ffff:ffff:ffff:fff0-::2:0:0:0:0"}, n: "16", want: "0:0:0:1::"},
		{name: "ipv6 second range after a /64", set: []string{"fd00::-fd00::ffff:ffff:ffff:ffff", "fd00:0:0:1::5-fd00:0:0:1::9"},
			n: "18446744073709551618", want: "fd00:0:0:1::7"},
		{name: "ipv6 ::/0 last", set: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, n: "340282366920938463463374607431768211455",
			want: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{name: "ipv6 ::/0 past the end", set: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, n: two128},
		{name: "n past 2^128", set: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, n: "680564733841876926926749214863536422912"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSet(t, tt.set...)
			n := countOf(t, tt.n)
			got, ok := s.Nth(n)
			if tt.want == "" {
				if ok {
					t.Fatalf("Nth(%v) = %v, want none", n, got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(tt.want) {
				t.Fatalf("Nth(%v) = %v, %v; want %s", n, got, ok, tt.want)
			}
			idx, ok := s.Index(got)
			if !ok || idx != n {
				t.Errorf("Index(%v) = %v, %v; want %v", got, idx, ok, n)
			}
		})
	}
}

func TestIndexNotInSet(t *testing.T) {
	s := mustSet(t, "10.0.0.1-10.0.0.5", "10.0.0.10")
	for _, a := range []string{"10.0.0.0", "10.0.0.6", "10.0.0.9", "10.0.0.11", "::ffff:10.0.0.1", "fd00::1", "255.255.255.255"} {
		t.Run(a, func(t *testing.T) {
			if idx, ok := s.Index(netip.MustParseAddr(a)); ok {
				t.Errorf("Index(%s) = %v, want none", a, idx)
			}
		})
	}
	if _, ok := s.Index(netip.Addr{}); ok {
		t.Error("Index of the zero Addr succeeded")
	}
	if _, ok := mustSet(t, "fe80::1").Index(netip.MustParseAddr("fe80::1%eth0")); ok {
		t.Error("Index of a zoned address succeeded")
	}
}

func TestFirstFree(t *testing.T) {
	tests := []struct {
		name  string
		pool  []string
		used  []string
		start string // "" for the zero Addr
		want  string // "" when the pool is full
	}{
		{name: "empty used, start at first", pool: []string{"10.0.0.1-10.0.0.5"}, start: "10.0.0.1", want: "10.0.0.1"},
		{name: "start inside, free", pool: []string{"10.0.0.1-10.0.0.5"}, start: "10.0.0.3", want: "10.0.0.3"},
		{name: "start inside used skips the used run", pool: []string{"10.0.0.1-10.0.0.9"}, used: []string{"10.0.0.3-10.0.0.6"}, start: "10.0.0.4", want: "10.0.0.7"},
		{name: "wrap around", pool: []string{"10.0.0.1-10.0.0.9"}, used: []string{"10.0.0.5-10.0.0.9", "10.0.0.1"}, start: "10.0.0.6", want: "10.0.0.2"},
		{name: "start before pool", pool: []string{"10.0.0.10-10.0.0.20"}, used: []string{"10.0.0.10"}, start: "10.0.0.1", want: "10.0.0.11"},
		{name: "start after pool wraps", pool: []string{"10.0.0.10-10.0.0.20"}, used: []string{"10.0.0.10-10.0.0.11"}, start: "10.0.0.99", want: "10.0.0.12"},
		{name: "start in a gap of the pool", pool: []string{"10.0.0.1-10.0.0.3", "10.0.0.10-10.0.0.12"}, start: "10.0.0.5", want: "10.0.0.10"},
		{name: "start in a gap, next range used", pool: []string{"10.0.0.1-10.0.0.3", "10.0.0.10-10.0.0.12", "10.0.0.20"},
			used: []string{"10.0.0.10-10.0.0.12"}, start: "10.0.0.5", want: "10.0.0.20"},
		{name: "used covers all", pool: []string{"10.0.0.1-10.0.0.3", "10.0.0.10"}, used: []string{"10.0.0.0-10.0.0.20"}, start: "10.0.0.2"},
		{name: "all but one in the middle, start before it", pool: []string{"10.0.0.0-10.0.0.255"},
			used: []string{"10.0.0.0-10.0.0.126", "10.0.0.128-10.0.0.255"}, start: "10.0.0.3", want: "10.0.0.127"},
		{name: "all but one in the middle, start at it", pool: []string{"10.0.0.0-10.0.0.255"},
			used: []string{"10.0.0.0-10.0.0.126", "10.0.0.128-10.0.0.255"}, start: "10.0.0.127", want: "10.0.0.127"},
		{name: "all but one in the middle, start after it", pool: []string{"10.0.0.0-10.0.0.255"},
			used: []string{"10.0.0.0-10.0.0.126", "10.0.0.128-10.0.0.255"}, start: "10.0.0.200", want: "10.0.0.127"},
		{name: "used outside the pool is ignored", pool: []string{"10.0.0.10-10.0.0.12"}, used: []string{"10.0.0.0-10.0.0.9", "10.0.0.13-10.0.0.50"}, start: "10.0.0.10", want: "10.0.0.10"},
		{name: "zero start means the beginning", pool: []string{"10.0.0.10-10.0.0.12"}, used: []string{"10.0.0.10"}, want: "10.0.0.11"},
		{name: "ipv6 start with an ipv4 pool wraps", pool: []string{"10.0.0.10-10.0.0.12"}, start: "fd00::1", want: "10.0.0.10"},
		{name: "ipv4 start with an ipv6 pool", pool: []string{"fd00::10-fd00::12"}, used: []string{"fd00::10"}, start: "10.0.0.1", want: "fd00::11"},
		{name: "zoned start", pool: []string{"fe80::1-fe80::5"}, used: []string{"fe80::3"}, start: "fe80::3%eth0", want: "fe80::4"},
		{name: "mapped start", pool: []string{"10.0.0.1-10.0.0.5"}, used: []string{"10.0.0.3"}, start: "::ffff:10.0.0.3", want: "10.0.0.4"},
		{name: "used of the other family", pool: []string{"10.0.0.1-10.0.0.5"}, used: []string{"fd00::-fd00::ff"}, start: "10.0.0.2", want: "10.0.0.2"},
		{name: "empty pool", pool: nil, used: []string{"10.0.0.1"}, start: "10.0.0.1"},
		{name: "top of ipv4 space", pool: []string{"255.255.255.250-255.255.255.255"}, used: []string{"255.255.255.254"}, start: "255.255.255.254", want: "255.255.255.255"},
		{name: "top of ipv4 space used, wraps", pool: []string{"255.255.255.250-255.255.255.255"}, used: []string{"255.255.255.254-255.255.255.255"}, start: "255.255.255.254", want: "255.255.255.250"},
		{name: "ipv6 /64, used near the top", pool: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"},
			used: []string{"fd00::ffff:ffff:ffff:fff0-fd00::ffff:ffff:ffff:fffe"}, start: "fd00::ffff:ffff:ffff:fff0", want: "fd00::ffff:ffff:ffff:ffff"},
		{name: "ipv6 /64, top used, wraps to the bottom", pool: []string{"fd00::-fd00::ffff:ffff:ffff:ffff"},
			used: []string{"fd00::", "fd00::ffff:ffff:ffff:fff0-fd00::ffff:ffff:ffff:ffff"}, start: "fd00::ffff:ffff:ffff:fff5", want: "fd00::1"},
		{name: "ipv6 ::/0 top", pool: []string{"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			used: []string{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, start: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", want: "::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, used := mustSet(t, tt.pool...), mustSet(t, tt.used...)
			var start netip.Addr
			if tt.start != "" {
				start = netip.MustParseAddr(tt.start)
			}
			got, ok := FirstFree(pool, used, start)
			if tt.want == "" {
				if ok {
					t.Fatalf("FirstFree = %v, want none", got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(tt.want) {
				t.Fatalf("FirstFree = %v, %v; want %s", got, ok, tt.want)
			}
			if !pool.Contains(got) || used.Contains(got) {
				t.Errorf("%v is not a free pool address", got)
			}
			for a := range Free(pool, used, start) {
				if a != got {
					t.Errorf("Free starts with %v, FirstFree says %v", a, got)
				}
				break
			}
		})
	}
}

func TestFreeIterator(t *testing.T) {
	tests := []struct {
		name  string
		pool  []string
		used  []string
		start string
		want  []string
	}{
		{name: "wraps once, each address once", pool: []string{"10.0.0.1-10.0.0.5"}, used: []string{"10.0.0.3"}, start: "10.0.0.4",
			want: []string{"10.0.0.4", "10.0.0.5", "10.0.0.1", "10.0.0.2"}},
		{name: "start before the pool", pool: []string{"10.0.0.1-10.0.0.3"}, start: "1.1.1.1",
			want: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}},
		{name: "start after the pool", pool: []string{"10.0.0.1-10.0.0.3"}, used: []string{"10.0.0.2"}, start: "10.0.0.200",
			want: []string{"10.0.0.1", "10.0.0.3"}},
		{name: "top of ipv6 space", pool: []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
			start: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
			want:  []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd"}},
		{name: "full pool", pool: []string{"10.0.0.1-10.0.0.3"}, used: []string{"0.0.0.0-255.255.255.255"}, start: "10.0.0.2", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for a := range Free(mustSet(t, tt.pool...), mustSet(t, tt.used...), netip.MustParseAddr(tt.start)) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Free = %q, want %q", got, tt.want)
			}
		})
	}

	// The consumer may stop early, also on a /64 that could never be walked.
	pool := SetOfPrefix(netip.MustParsePrefix("fd00::/64"))
	n := 0
	for range Free(pool, Set{}, netip.MustParseAddr("fd00::ffff:ffff:ffff:fffe")) {
		if n++; n == 5 {
			break
		}
	}
	if n != 5 {
		t.Errorf("took %d addresses, want 5", n)
	}
}
