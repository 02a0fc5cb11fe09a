package ip

import (
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// Count is a number of addresses. It is exact up to 2^192-1, far beyond the
// 2^128 addresses of the whole IPv6 space (the most one Set can hold), so
// sums of many set sizes stay exact too. Count is a comparable value: ==
// works, and the zero value is 0. Arithmetic saturates instead of wrapping.
type Count struct {
	hi, mid, lo uint64 // big-endian 64-bit words of the value
}

// maxCount is the largest Count, the saturation point of Add.
var maxCount = Count{math.MaxUint64, math.MaxUint64, math.MaxUint64}

// CountFromUint64 returns n as a Count.
func CountFromUint64(n uint64) Count { return Count{lo: n} }

// countFromU128 returns v as a Count.
func countFromU128(v u128) Count { return Count{mid: v.hi, lo: v.lo} }

// u128 returns c as a 128-bit value and whether it fits.
func (c Count) u128() (u128, bool) { return u128{c.mid, c.lo}, c.hi == 0 }

// IsZero reports whether c is 0.
func (c Count) IsZero() bool { return c == Count{} }

// Uint64 returns c as a uint64, and false if it does not fit (c >= 2^64).
func (c Count) Uint64() (uint64, bool) {
	return c.lo, c.hi == 0 && c.mid == 0
}

// Int64Saturating returns c as an int64, or math.MaxInt64 when c is larger.
// Kubernetes status fields are int64; an IPv6 /64 (2^64 addresses) is
// reported as 9223372036854775807.
func (c Count) Int64Saturating() int64 {
	if n, ok := c.Uint64(); ok && n <= math.MaxInt64 {
		return int64(n)
	}
	return math.MaxInt64
}

// Add returns c+d, or the largest Count (2^192-1) if the sum does not fit.
func (c Count) Add(d Count) Count {
	lo, carry := bits.Add64(c.lo, d.lo, 0)
	mid, carry := bits.Add64(c.mid, d.mid, carry)
	hi, carry := bits.Add64(c.hi, d.hi, carry)
	if carry != 0 {
		return maxCount
	}
	return Count{hi, mid, lo}
}

// Sub returns c-d, or 0 if d > c.
func (c Count) Sub(d Count) Count {
	lo, borrow := bits.Sub64(c.lo, d.lo, 0)
	mid, borrow := bits.Sub64(c.mid, d.mid, borrow)
	hi, borrow := bits.Sub64(c.hi, d.hi, borrow)
	if borrow != 0 {
		return Count{}
	}
	return Count{hi, mid, lo}
}

// Cmp returns -1, 0 or +1 as c is less than, equal to or greater than d.
func (c Count) Cmp(d Count) int {
	switch {
	case c.hi != d.hi:
		return cmpUint64(c.hi, d.hi)
	case c.mid != d.mid:
		return cmpUint64(c.mid, d.mid)
	default:
		return cmpUint64(c.lo, d.lo)
	}
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String returns c in decimal, e.g. "340282366920938463463374607431768211456"
// for the 2^128 addresses of ::/0.
func (c Count) String() string {
	if n, ok := c.Uint64(); ok {
		return strconv.FormatUint(n, 10)
	}
	// Long division by 10^19, the largest power of ten below 2^64, yields
	// base-10^19 digits from the least significant end. 2^192 < 10^58, so
	// four of them suffice.
	const base = 10_000_000_000_000_000_000
	w := [3]uint64{c.hi, c.mid, c.lo}
	var chunks [4]uint64
	n := 0
	for w != [3]uint64{} {
		var r uint64
		for i := range w {
			w[i], r = bits.Div64(r, w[i], base)
		}
		chunks[n] = r
		n++
	}
	var b strings.Builder
	b.WriteString(strconv.FormatUint(chunks[n-1], 10))
	for i := n - 2; i >= 0; i-- {
		d := strconv.FormatUint(chunks[i], 10)
		b.WriteString(strings.Repeat("0", 19-len(d)))
		b.WriteString(d)
	}
	return b.String()
}

// u128 is an address as an unsigned integer (IPv4 in the low 32 bits), for
// offset arithmetic without allocation.
type u128 struct{ hi, lo uint64 }

func u128Of(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var v u128
	for i := 0; i < 8; i++ {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[8+i])
	}
	return v
}

// addr returns v as an address of the family given by is4. For IPv4 only the
// low 32 bits are used.
func (v u128) addr(is4 bool) netip.Addr {
	if is4 {
		return netip.AddrFrom4([4]byte{byte(v.lo >> 24), byte(v.lo >> 16), byte(v.lo >> 8), byte(v.lo)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[7-i] = byte(v.hi >> (8 * i))
		b[15-i] = byte(v.lo >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

func (v u128) add(w u128) u128 {
	lo, carry := bits.Add64(v.lo, w.lo, 0)
	hi, _ := bits.Add64(v.hi, w.hi, carry)
	return u128{hi, lo}
}

func (v u128) sub(w u128) u128 {
	lo, borrow := bits.Sub64(v.lo, w.lo, 0)
	hi, _ := bits.Sub64(v.hi, w.hi, borrow)
	return u128{hi, lo}
}

func (v u128) less(w u128) bool {
	return v.hi < w.hi || (v.hi == w.hi && v.lo < w.lo)
}
