package ipam

import (
	"fmt"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// The IP family of pools and subnets, and the SpiderReservedIPs of a family: every
// component decides them here, so that a pool is of the same family, and has the same
// reserved addresses, for the agent, the controllers, the webhook and inspect.

// FamilyOf is the family (v2beta1.IPv4 or IPv6) of is4.
func FamilyOf(is4 bool) int64 {
	if is4 {
		return v2beta1.IPv4
	}
	return v2beta1.IPv6
}

// PoolFamily is a pool's IP family (v2beta1.IPv4 or IPv6): spec.ipVersion, or the
// family of spec.subnet when ipVersion is unset. It is 0, with an error saying why, when
// neither tells (the schema and the webhook refuse such a pool).
func PoolFamily(p *v2beta1.SpiderIPPool) (int64, error) {
	return specFamily(p.Spec.IPVersion, p.Spec.Subnet)
}

// SubnetFamily is a SpiderSubnet's IP family, decided as PoolFamily decides a pool's.
func SubnetFamily(s *v2beta1.SpiderSubnet) (int64, error) {
	return specFamily(s.Spec.IPVersion, s.Spec.Subnet)
}

func specFamily(ipVersion *int64, subnet v2beta1.CIDR) (int64, error) {
	if v := ipVersion; v != nil {
		if *v != v2beta1.IPv4 && *v != v2beta1.IPv6 {
			return 0, fmt.Errorf("spec.ipVersion %d is neither 4 nor 6", *v)
		}
		return *v, nil
	}
	prefix, err := ip.ParseCIDR(string(subnet))
	if err != nil {
		return 0, fmt.Errorf("IP family unknown: spec.ipVersion is unset and spec.subnet is invalid: %w", err)
	}
	return FamilyOf(prefix.Addr().Is4()), nil
}

// ReservedAddresses is the union of the spec.ips of every SpiderReservedIP of a family
// (v2beta1.IPv4 or IPv6; any other family, such as PoolFamily's 0, has none). Entries
// that do not parse are skipped: the schema and webhook refuse them, and a reservation
// only ever narrows what is handed out.
func ReservedAddresses(items []v2beta1.SpiderReservedIP, family int64) ip.Set {
	var out ip.Set
	if family != v2beta1.IPv4 && family != v2beta1.IPv6 {
		return out
	}
	for i := range items {
		for _, tok := range items[i].Spec.IPs {
			s, err := ip.ParseRanges([]string{string(tok)})
			if err != nil || s.IsEmpty() || s.Is4() != (family == v2beta1.IPv4) {
				continue
			}
			if u, err := out.Union(s); err == nil {
				out = u
			}
		}
	}
	return out
}

// ReservedFamilies reports which IP families a SpiderReservedIP has addresses of.
func ReservedFamilies(r *v2beta1.SpiderReservedIP) (v4, v6 bool) {
	for _, tok := range r.Spec.IPs {
		s, err := ip.ParseRanges([]string{string(tok)})
		if err != nil || s.IsEmpty() {
			continue
		}
		if s.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}
