package webhook

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// DefaultReservedIP fills in a SpiderReservedIP as SpiderPool's mutating webhook does:
// spec.ipVersion from the first entry of spec.ips when unset, and spec.ips sorted and
// merged (left as written when an entry does not parse or the families mix, so that
// validation reports each entry where the user wrote it).
func DefaultReservedIP(r *v2beta1.SpiderReservedIP) {
	if r.Spec.IPVersion == nil && len(r.Spec.IPs) > 0 {
		if first, err := ip.ParseRange(string(r.Spec.IPs[0])); err == nil {
			v := ipam.FamilyOf(first.Is4())
			r.Spec.IPVersion = &v
		}
	}
	r.Spec.IPs = normalised(r.Spec.IPs)
}

// ValidateReservedIPCreate checks a new SpiderReservedIP: its family is known and
// enabled, and every entry of spec.ips is an IP or range of that family. Reserved
// addresses need not lie in any pool: they apply to whichever pool holds them, now or
// later.
func (c Config) ValidateReservedIPCreate(r *v2beta1.SpiderReservedIP) field.ErrorList {
	return c.validateReservedIP(nil, r)
}

// ValidateReservedIPUpdate is ValidateReservedIPCreate plus: spec.ipVersion is immutable.
// Changing spec.ips is allowed; addresses already allocated stay with their pods.
func (c Config) ValidateReservedIPUpdate(old, r *v2beta1.SpiderReservedIP) field.ErrorList {
	return c.validateReservedIP(old, r)
}

func (c Config) validateReservedIP(old, r *v2beta1.SpiderReservedIP) field.ErrorList {
	var (
		errs field.ErrorList
		a    addresses // family only: reserved IPs have no subnet
	)
	switch v := r.Spec.IPVersion; {
	case v != nil && *v != v2beta1.IPv4 && *v != v2beta1.IPv6:
		errs = append(errs, field.NotSupported(ipVersionPath, *v, []string{"4", "6"}))
	case v != nil:
		a.is4, a.known = *v == v2beta1.IPv4, true
		a.familyFrom = fmt.Sprintf("spec.ipVersion is %d", *v)
		if on, key := c.enabled(a.is4); !on {
			errs = append(errs, field.Forbidden(ipVersionPath, fmt.Sprintf("%s is not enabled in this cluster (%s is false)", familyName(a.is4), key)))
		}
	case len(r.Spec.IPs) == 0:
		errs = append(errs, field.Required(ipVersionPath, "set it, or list at least one IP in spec.ips to derive it from"))
	default:
		if first, err := ip.ParseRange(string(r.Spec.IPs[0])); err == nil {
			a.is4, a.known = first.Is4(), true
			a.familyFrom = fmt.Sprintf("spec.ips[0] is %s", familyName(a.is4))
			if on, key := c.enabled(a.is4); !on {
				errs = append(errs, field.Forbidden(ipsPath.Index(0), fmt.Sprintf("%s is not enabled in this cluster (%s is false)", familyName(a.is4), key)))
			}
		}
	}
	_, _, rangeErrs := a.checkRanges(ipsPath, r.Spec.IPs)
	errs = append(errs, rangeErrs...)
	if old != nil && old.Spec.IPVersion != nil && (r.Spec.IPVersion == nil || *r.Spec.IPVersion != *old.Spec.IPVersion) {
		errs = append(errs, field.Forbidden(ipVersionPath, fmt.Sprintf("is immutable; it was %d", *old.Spec.IPVersion)))
	}
	return errs
}
