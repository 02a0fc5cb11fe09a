package ip

import (
	"math"
	"math/big"
	"math/rand"
	"testing"
)

// bigOf converts c for comparison with math/big, an independent oracle.
func bigOf(c Count) *big.Int {
	b := new(big.Int).SetUint64(c.hi)
	b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(c.mid))
	b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(c.lo))
	return b
}

func pow2(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }

func TestCount(t *testing.T) {
	two64 := Count{mid: 1}
	two128 := Count{hi: 1}
	tests := []struct {
		name   string
		c      Count
		str    string
		u64    bool
		i64    int64
		isZero bool
	}{
		{name: "zero", c: Count{}, str: "0", u64: true, i64: 0, isZero: true},
		{name: "one", c: CountFromUint64(1), str: "1", u64: true, i64: 1},
		{name: "/24", c: CountFromUint64(256), str: "256", u64: true, i64: 256},
		{name: "max int64", c: CountFromUint64(math.MaxInt64), str: "9223372036854775807", u64: true, i64: math.MaxInt64},
		{name: "max int64 + 1 saturates", c: CountFromUint64(math.MaxInt64 + 1), str: "9223372036854775808", u64: true, i64: math.MaxInt64},
		{name: "max uint64", c: CountFromUint64(math.MaxUint64), str: "18446744073709551615", u64: true, i64: math.MaxInt64},
		{name: "2^64, an ipv6 /64", c: two64, str: "18446744073709551616", i64: math.MaxInt64},
		{name: "2^128, ipv6 ::/0", c: two128, str: "340282366920938463463374607431768211456", i64: math.MaxInt64},
		{name: "2^128 - 1", c: two128.Sub(CountFromUint64(1)), str: "340282366920938463463374607431768211455", i64: math.MaxInt64},
		{name: "10^19 boundary", c: CountFromUint64(10_000_000_000_000_000_000).Add(two64), str: "28446744073709551616", i64: math.MaxInt64},
		{name: "max count", c: maxCount, str: "6277101735386680763835789423207666416102355444464034512895", i64: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.String(); got != tt.str {
				t.Errorf("String() = %s, want %s", got, tt.str)
			}
			if got := bigOf(tt.c).String(); got != tt.str {
				t.Errorf("math/big says %s, want %s", got, tt.str)
			}
			if n, ok := tt.c.Uint64(); ok != tt.u64 || (ok && n != tt.c.lo) {
				t.Errorf("Uint64() = %d, %v; want ok=%v", n, ok, tt.u64)
			}
			if got := tt.c.Int64Saturating(); got != tt.i64 {
				t.Errorf("Int64Saturating() = %d, want %d", got, tt.i64)
			}
			if tt.c.IsZero() != tt.isZero {
				t.Errorf("IsZero() = %v", tt.c.IsZero())
			}
		})
	}
}

func TestCountArithmeticSaturates(t *testing.T) {
	one := CountFromUint64(1)
	if got := maxCount.Add(one); got != maxCount {
		t.Errorf("max+1 = %v, want max", got)
	}
	if got := one.Sub(CountFromUint64(2)); !got.IsZero() {
		t.Errorf("1-2 = %v, want 0", got)
	}
	if got := (Count{hi: 1}).Sub(one); got != (Count{mid: math.MaxUint64, lo: math.MaxUint64}) {
		t.Errorf("2^128-1 = %#v", got)
	}
}

// TestCountMatchesBig checks Add, Sub, Cmp and String against math/big on
// random values of every magnitude.
func TestCountMatchesBig(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	word := func() uint64 {
		switch rng.Intn(4) {
		case 0:
			return 0
		case 1:
			return math.MaxUint64
		default:
			return rng.Uint64()
		}
	}
	limit := pow2(192)
	for i := 0; i < 2000; i++ {
		a := Count{word() >> rng.Intn(64), word(), word()}
		b := Count{word() >> rng.Intn(64), word(), word()}
		ba, bb := bigOf(a), bigOf(b)
		if a.String() != ba.String() {
			t.Fatalf("String(%#v) = %s, want %s", a, a, ba)
		}
		if got, want := a.Cmp(b), ba.Cmp(bb); got != want {
			t.Fatalf("Cmp(%v, %v) = %d, want %d", a, b, got, want)
		}
		sum := new(big.Int).Add(ba, bb)
		if sum.Cmp(limit) >= 0 {
			sum.Sub(limit, big.NewInt(1))
		}
		if got := bigOf(a.Add(b)); got.Cmp(sum) != 0 {
			t.Fatalf("%v + %v = %v, want %v", a, b, got, sum)
		}
		diff := new(big.Int).Sub(ba, bb)
		if diff.Sign() < 0 {
			diff.SetInt64(0)
		}
		if got := bigOf(a.Sub(b)); got.Cmp(diff) != 0 {
			t.Fatalf("%v - %v = %v, want %v", a, b, got, diff)
		}
	}
}
