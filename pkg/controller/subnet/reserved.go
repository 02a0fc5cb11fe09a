package subnet

import (
	"net/netip"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// reservedSet is the union of the SpiderReservedIP addresses of one family, as the agent
// computes it. Entries that do not parse are skipped: the schema refuses them, and a
// reservation only ever narrows a pool.
func reservedSet(items []v2beta1.SpiderReservedIP, is4 bool) ip.Set {
	var out ip.Set
	for i := range items {
		for _, tok := range items[i].Spec.IPs {
			set, err := ip.ParseRanges([]string{string(tok)})
			if err != nil || set.IsEmpty() || set.Is4() != is4 {
				continue
			}
			if u, err := out.Union(set); err == nil {
				out = u
			}
		}
	}
	return out
}

// reservedFamilies reports which families a SpiderReservedIP has addresses of.
func reservedFamilies(r *v2beta1.SpiderReservedIP) (v4, v6 bool) {
	for _, tok := range r.Spec.IPs {
		set, err := ip.ParseRanges([]string{string(tok)})
		if err != nil || set.IsEmpty() {
			continue
		}
		if set.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// subnetIs4 reports whether a subnet is IPv4, from its spec.subnet (true when it does
// not parse; observe refuses such a subnet anyway).
func subnetIs4(s *v2beta1.SpiderSubnet) bool {
	p, err := netip.ParsePrefix(string(s.Spec.Subnet))
	return err != nil || p.Addr().Is4()
}
