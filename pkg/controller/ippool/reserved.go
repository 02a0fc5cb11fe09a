package ippool

import (
	"net/netip"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// poolIs4 reports whether a pool is IPv4, from its subnet (true when the subnet does not
// parse; observe refuses such a pool anyway).
func poolIs4(sp *v2beta1.SpiderIPPool) bool {
	p, err := netip.ParsePrefix(string(sp.Spec.Subnet))
	return err != nil || p.Addr().Is4()
}
