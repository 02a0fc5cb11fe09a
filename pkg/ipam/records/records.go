// Package records encodes a pool's allocation records in orbweaver's compact binary form,
// the value of SpiderIPPool status.orbweaver.records.
//
// A record is an allocated IP and its owner. The owner is kept as two short digests:
// one of the pod UID (what GC compares against live pods) and one of the pod's
// attachment, container ID plus interface name (what CNI DEL compares, so a late DEL of
// an old sandbox never frees the IP its replacement now holds). The pod's full identity,
// names and routes live in its SpiderEndpoint. docs/design/allocation-records.md gives
// the reasoning and the sizes.
//
// Format, version 1:
//
//	byte 0      version (1)
//	byte 1      flags: bit 0 set when offsets are 128-bit (subnets larger than 2^64 addresses)
//	uvarint     number of records
//	per record, in ascending address order:
//	  gap       uvarint: offset - (previous offset + 1), the first counted from offset 0;
//	            with 128-bit offsets, two uvarints: high 64 bits, then low 64 bits
//	  pod       8 bytes, big endian: PodKey of the pod UID
//	  attach    4 bytes, big endian: AttachmentKey of container ID and interface
//
// Offsets count from the subnet's first address; the subnet is immutable, so records
// never move when spec.ips changes.
package records

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

const (
	formatV1  byte = 1
	flagWide  byte = 1 << 0
	ownerSize      = 8 + 4
	headerLen      = 2
)

// ErrCorrupt marks records that cannot be decoded.
var ErrCorrupt = errors.New("corrupt allocation records")

// Owner identifies who holds an IP: the pod and the attachment (container, interface).
type Owner struct {
	Pod        uint64
	Attachment uint32
}

// OwnerOf returns the owner for a pod UID, container ID and interface name.
func OwnerOf(podUID, containerID, ifName string) Owner {
	return Owner{Pod: PodKey(podUID), Attachment: AttachmentKey(containerID, ifName)}
}

// PodKey is the 64-bit digest of a pod UID stored in records. Two live pods share a key
// with probability about n²/2^65 (1e-10 for 65,536 pods), and a release also needs the
// IP and attachment to match, so a digest is as good as the UID here.
func PodKey(podUID string) uint64 {
	sum := sha256.Sum256([]byte("pod\x00" + podUID))
	return binary.BigEndian.Uint64(sum[:8])
}

// AttachmentKey is the 32-bit digest of a container ID and interface name stored in
// records. It only has to tell apart the sandboxes and interfaces of one pod. It is never
// ReserveAttachment, so a pod's record is never mistaken for a node's reservation.
func AttachmentKey(containerID, ifName string) uint32 {
	sum := sha256.Sum256([]byte("attach\x00" + containerID + "\x00" + ifName))
	if k := binary.BigEndian.Uint32(sum[:4]); k != ReserveAttachment {
		return k
	}
	return ReserveAttachment - 1
}

// ReserveAttachment is the attachment key of a node's reservation: addresses a node's
// agent took ahead of its pods, to hand out without a pool write.
const ReserveAttachment uint32 = 0xffffffff

// ReserveOwner is the owner of the addresses a node's agent holds in reserve.
func ReserveOwner(node string) Owner {
	sum := sha256.Sum256([]byte("node\x00" + node))
	return Owner{Pod: binary.BigEndian.Uint64(sum[:8]), Attachment: ReserveAttachment}
}

// IsReserve reports whether the owner is some node's reservation, not a pod.
func (o Owner) IsReserve() bool { return o.Attachment == ReserveAttachment }

// Record is one allocated IP and its owner.
type Record struct {
	IP    netip.Addr
	Owner Owner
}

// uint128 is an offset inside a subnet.
type uint128 struct{ hi, lo uint64 }

func (u uint128) less(v uint128) bool { return u.hi < v.hi || (u.hi == v.hi && u.lo < v.lo) }

func (u uint128) sub(v uint128) uint128 {
	lo, borrow := bits.Sub64(u.lo, v.lo, 0)
	hi, _ := bits.Sub64(u.hi, v.hi, borrow)
	return uint128{hi, lo}
}

func (u uint128) add(v uint128) (uint128, bool) {
	lo, carry := bits.Add64(u.lo, v.lo, 0)
	hi, overflow := bits.Add64(u.hi, v.hi, carry)
	return uint128{hi, lo}, overflow != 0
}

func as128(a netip.Addr) uint128 {
	b := a.As16()
	return uint128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// layout describes how offsets inside one subnet are encoded.
type layout struct {
	subnet netip.Prefix
	base   uint128
	last   uint128 // largest valid offset
	wide   bool
}

func newLayout(subnet netip.Prefix) (layout, error) {
	if !subnet.IsValid() {
		return layout{}, fmt.Errorf("allocation records: invalid subnet %v", subnet)
	}
	subnet = subnet.Masked()
	hostBits := subnet.Addr().BitLen() - subnet.Bits()
	l := layout{subnet: subnet, base: as128(subnet.Addr()), wide: hostBits > 64}
	switch {
	case hostBits == 128:
		l.last = uint128{^uint64(0), ^uint64(0)}
	case hostBits >= 64:
		l.last = uint128{(uint64(1) << (hostBits - 64)) - 1, ^uint64(0)}
	default:
		l.last = uint128{0, (uint64(1) << hostBits) - 1}
	}
	return l, nil
}

func (l layout) offset(ip netip.Addr) (uint128, error) {
	if !l.subnet.Contains(ip) {
		return uint128{}, fmt.Errorf("allocation records: IP %s is outside subnet %s", ip, l.subnet)
	}
	return as128(ip.Unmap()).sub(l.base), nil
}

func (l layout) addr(off uint128) netip.Addr {
	v, _ := l.base.add(off)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], v.hi)
	binary.BigEndian.PutUint64(b[8:], v.lo)
	a := netip.AddrFrom16(b)
	if l.subnet.Addr().Is4() {
		return a.Unmap()
	}
	return a
}

// Encode returns the encoded records of a pool with the given subnet. The input is not
// modified and may be in any order; an IP outside the subnet or held twice is an error.
func Encode(subnet netip.Prefix, recs []Record) ([]byte, error) {
	l, err := newLayout(subnet)
	if err != nil {
		return nil, err
	}
	type entry struct {
		off   uint128
		owner Owner
	}
	entries := make([]entry, len(recs))
	for i, r := range recs {
		off, err := l.offset(r.IP)
		if err != nil {
			return nil, err
		}
		entries[i] = entry{off, r.Owner}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		switch {
		case a.off.less(b.off):
			return -1
		case b.off.less(a.off):
			return 1
		}
		return 0
	})

	out := make([]byte, 0, EncodedSizeHint(len(recs)))
	flags := byte(0)
	if l.wide {
		flags |= flagWide
	}
	out = append(out, formatV1, flags)
	out = binary.AppendUvarint(out, uint64(len(entries)))
	next := uint128{}
	for i, e := range entries {
		if i > 0 && e.off.less(next) {
			return nil, fmt.Errorf("allocation records: IP %s is recorded twice", l.addr(e.off))
		}
		gap := e.off.sub(next)
		if l.wide {
			out = binary.AppendUvarint(out, gap.hi)
		}
		out = binary.AppendUvarint(out, gap.lo)
		out = binary.BigEndian.AppendUint64(out, e.owner.Pod)
		out = binary.BigEndian.AppendUint32(out, e.owner.Attachment)
		next, _ = e.off.add(uint128{0, 1})
	}
	return out, nil
}

// EncodedSizeHint is the encoded size of n densely allocated records (gaps below 128),
// the common case; sparse IPv6 records take a few bytes more each.
func EncodedSizeHint(n int) int {
	return headerLen + binary.MaxVarintLen64 + n*(1+ownerSize)
}

// Decode returns the records, in ascending address order, of a pool with the given
// subnet. Empty data means no records. Errors wrap ErrCorrupt.
func Decode(subnet netip.Prefix, data []byte) ([]Record, error) {
	if len(data) == 0 {
		return nil, nil
	}
	l, err := newLayout(subnet)
	if err != nil {
		return nil, err
	}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w for subnet %s: %s", ErrCorrupt, l.subnet, fmt.Sprintf(format, args...))
	}
	if len(data) < headerLen {
		return nil, corrupt("%d bytes is shorter than the header", len(data))
	}
	if data[0] != formatV1 {
		return nil, corrupt("unknown format version %d", data[0])
	}
	if data[1]&^flagWide != 0 {
		return nil, corrupt("unknown flags %#x", data[1])
	}
	if wide := data[1]&flagWide != 0; wide != l.wide {
		return nil, corrupt("offset width flag %t does not match the subnet", wide)
	}
	rest := data[headerLen:]
	readUvarint := func(what string) (uint64, error) {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return 0, corrupt("bad varint for %s", what)
		}
		rest = rest[n:]
		return v, nil
	}
	count, err := readUvarint("the record count")
	if err != nil {
		return nil, err
	}
	if count > uint64(len(rest)/(1+ownerSize)) {
		return nil, corrupt("record count %d does not fit in %d bytes", count, len(rest))
	}
	recs := make([]Record, 0, count)
	next := uint128{}
	for i := uint64(0); i < count; i++ {
		var gap uint128
		if l.wide {
			if gap.hi, err = readUvarint("a gap"); err != nil {
				return nil, err
			}
		}
		if gap.lo, err = readUvarint("a gap"); err != nil {
			return nil, err
		}
		off, overflow := next.add(gap)
		if overflow || l.last.less(off) {
			return nil, corrupt("record %d lies outside the subnet", i)
		}
		if len(rest) < ownerSize {
			return nil, corrupt("record %d is truncated", i)
		}
		owner := Owner{Pod: binary.BigEndian.Uint64(rest), Attachment: binary.BigEndian.Uint32(rest[8:])}
		rest = rest[ownerSize:]
		recs = append(recs, Record{IP: l.addr(off), Owner: owner})
		next, overflow = off.add(uint128{0, 1})
		if overflow && i+1 < count {
			return nil, corrupt("record %d lies outside the subnet", i+1)
		}
	}
	if len(rest) != 0 {
		return nil, corrupt("%d trailing bytes", len(rest))
	}
	return recs, nil
}
