package subnet

import (
	"net/netip"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// subnetIs4 reports whether a subnet is IPv4, from its spec.subnet (true when it does
// not parse; observe refuses such a subnet anyway).
func subnetIs4(s *v2beta1.SpiderSubnet) bool {
	p, err := netip.ParsePrefix(string(s.Spec.Subnet))
	return err != nil || p.Addr().Is4()
}
