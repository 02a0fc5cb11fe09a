package webhook

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// DefaultSubnet fills in a SpiderSubnet as SpiderPool's mutating webhook does: derives
// spec.ipVersion from spec.subnet, sorts and merges spec.ips and spec.excludeIPs (left
// as written when an entry does not parse), and sets label ipam.spidernet.io/subnet-cidr,
// which pools of the subnet are found by. Route destinations are written canonically,
// as in DefaultIPPool, and the warnings returned say which. A terminating subnet is
// left alone, but for its route destinations (see DefaultIPPool).
//
// No finalizer is added: SpiderPool's subnet controller keeps one to release its auto
// pools, and orbweaver's subnet controller does not exist yet; a finalizer nobody
// removes would make every subnet undeletable.
func DefaultSubnet(subnet *v2beta1.SpiderSubnet) (warnings []string) {
	if subnet.DeletionTimestamp == nil {
		defaultSubnet(subnet)
	}
	return canonicalRoutes(subnet.Spec.Routes)
}

func defaultSubnet(subnet *v2beta1.SpiderSubnet) {
	subnet.Spec.IPs = normalised(subnet.Spec.IPs)
	subnet.Spec.ExcludeIPs = normalised(subnet.Spec.ExcludeIPs)
	p, err := ip.ParseCanonicalCIDR(string(subnet.Spec.Subnet))
	if err != nil {
		return
	}
	if subnet.Spec.IPVersion == nil {
		v := ipam.FamilyOf(p.Addr().Is4())
		subnet.Spec.IPVersion = &v
	}
	if value, ok := CIDRLabelValue(p); ok {
		setLabel(&subnet.ObjectMeta, LabelSubnetCIDR, value)
	}
}

// ValidateSubnetCreate checks a new SpiderSubnet: the same field rules as a pool's (no
// affinities), that its subnet overlaps no other SpiderSubnet of the family and no pool
// with a different subnet, and that every pool it would own (same subnet, or labelled
// with its name) keeps all its addresses inside the subnet's. Call it on the defaulted
// subnet.
func (c Config) ValidateSubnetCreate(subnet *v2beta1.SpiderSubnet, existing Existing) field.ErrorList {
	return c.validateSubnet(nil, subnet, existing)
}

// ValidateSubnetUpdate checks a changed SpiderSubnet: the field rules, spec.subnet and
// spec.ipVersion immutable, and no shrink that leaves addresses of a pool it owns outside
// its ips minus excludeIPs; the error names the pool.
func (c Config) ValidateSubnetUpdate(old, subnet *v2beta1.SpiderSubnet, existing Existing) field.ErrorList {
	return c.validateSubnet(old, subnet, existing)
}

func (c Config) validateSubnet(old, subnet *v2beta1.SpiderSubnet, existing Existing) field.ErrorList {
	a, errs := c.checkAddresses(subnetAddressSpec(&subnet.Spec))
	errs = append(errs, checkEIPTemplate(subnet)...)
	var removed ip.Set
	if old != nil {
		immutableErrs := immutable(old.Spec.IPVersion, subnet.Spec.IPVersion, old.Spec.Subnet, subnet.Spec.Subnet)
		errs = append(errs, immutableErrs...)
		if len(immutableErrs) > 0 {
			return errs
		}
		prev := parseObject(old.Spec.Subnet, old.Spec.IPs, old.Spec.ExcludeIPs)
		if !a.complete || !prev.addrsOK {
			return errs
		}
		removed = prev.effective.Subtract(a.effective)
	}
	if old == nil && a.subnet.IsValid() {
		errs = append(errs, a.subnetOverlaps(subnet.Name, existing)...)
	}
	if !a.complete {
		return errs
	}
	return append(errs, a.ownedPoolsOutside(subnet.Name, old == nil, removed, existing.IPPools)...)
}

// subnetOverlaps: SpiderSubnets of one family are disjoint, so every address has at
// most one subnet to be carved from; and a pool whose different subnet overlaps this
// one would collide with the auto pools carved from it (SpiderPool's rule).
func (a addresses) subnetOverlaps(name string, existing Existing) field.ErrorList {
	var errs field.ErrorList
	for i := range existing.Subnets {
		s := &existing.Subnets[i]
		o := parseObject(s.Spec.Subnet, nil, nil)
		if s.Name != name && a.sameFamily(o) && o.subnet.Overlaps(a.subnet) {
			errs = append(errs, field.Forbidden(subnetPath, fmt.Sprintf("overlaps subnet %s of SpiderSubnet %q", o.subnet, s.Name)))
		}
	}
	for i := range existing.IPPools {
		p := &existing.IPPools[i]
		o := parseObject(p.Spec.Subnet, nil, nil)
		if a.sameFamily(o) && o.subnet != a.subnet && o.subnet.Overlaps(a.subnet) {
			errs = append(errs, field.Forbidden(subnetPath, fmt.Sprintf(
				"overlaps subnet %s of SpiderIPPool %q; a SpiderSubnet may only cover pools with exactly its subnet", o.subnet, p.Name)))
		}
	}
	return errs
}

// ownedPoolsOutside: every pool the subnet owns keeps its addresses (ips minus
// excludeIPs) inside the subnet's. On create, the pools with exactly this subnet are
// compared whole: SpiderPool refuses a subnet that cannot own the orphan pools of its
// CIDR. On update, the pools with this subnet or whose ipam.spidernet.io/owner-spider-subnet
// label names it are compared on the addresses the update removes only, so an older
// inconsistency does not block edits.
func (a addresses) ownedPoolsOutside(name string, create bool, removed ip.Set, pools []v2beta1.SpiderIPPool) field.ErrorList {
	var errs field.ErrorList
	for i := range pools {
		p := &pools[i]
		o := parseObject(p.Spec.Subnet, p.Spec.IPs, p.Spec.ExcludeIPs)
		owned := o.subnet == a.subnet || (!create && p.Labels[LabelOwnerSpiderSubnet] == name)
		if !o.addrsOK || !a.sameFamily(o) || !owned {
			continue
		}
		if create {
			if missing := o.effective.Subtract(a.effective); !missing.IsEmpty() {
				errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf(
					"do not cover %s (%s) of SpiderIPPool %q, which has this subnet and so would belong to it; add them here or take them out of the pool",
					describe(missing), count(missing), p.Name)))
			}
			continue
		}
		lost := o.effective.Intersect(removed)
		if excluded := lost.Intersect(a.ips); !excluded.IsEmpty() {
			errs = append(errs, field.Forbidden(excludeIPsPath, fmt.Sprintf(
				"would exclude %s (%s) of SpiderIPPool %q, which this subnet owns; take them out of the pool first",
				describe(excluded), count(excluded), p.Name)))
		}
		if dropped := lost.Subtract(a.ips); !dropped.IsEmpty() {
			errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf(
				"would remove %s (%s) of SpiderIPPool %q, which this subnet owns; take them out of the pool first",
				describe(dropped), count(dropped), p.Name)))
		}
	}
	return errs
}
