package records

import (
	"fmt"
	"net/netip"
)

// Fill returns n records for the first n addresses of subnet, each with a distinct
// owner. Tests and the size measurement use it to build full pools.
func Fill(subnet netip.Prefix, n int) []Record {
	recs := make([]Record, 0, n)
	ip := subnet.Masked().Addr()
	for i := 0; i < n && subnet.Contains(ip); i++ {
		uid := fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
		recs = append(recs, Record{IP: ip, Owner: OwnerOf(uid, fmt.Sprintf("ctr-%d", i), "eth0")})
		ip = ip.Next()
	}
	return recs
}
