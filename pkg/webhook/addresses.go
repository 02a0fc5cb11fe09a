package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

var (
	specPath       = field.NewPath("spec")
	ipVersionPath  = specPath.Child("ipVersion")
	subnetPath     = specPath.Child("subnet")
	ipsPath        = specPath.Child("ips")
	excludeIPsPath = specPath.Child("excludeIPs")
	gatewayPath    = specPath.Child("gateway")
	routesPath     = specPath.Child("routes")
)

// addressSpec is the part of the spec that SpiderIPPool and SpiderSubnet share: which
// addresses the object has, and how pods given one of them reach the network.
type addressSpec struct {
	ipVersion       *int64
	subnet          v2beta1.CIDR
	ips, excludeIPs []v2beta1.IPOrRange
	gateway         *v2beta1.IPAddress
	routes          []v2beta1.Route
}

func poolAddressSpec(s *v2beta1.IPPoolSpec) addressSpec {
	return addressSpec{s.IPVersion, s.Subnet, s.IPs, s.ExcludeIPs, s.Gateway, s.Routes}
}

func subnetAddressSpec(s *v2beta1.SubnetSpec) addressSpec {
	return addressSpec{s.IPVersion, s.Subnet, s.IPs, s.ExcludeIPs, s.Gateway, s.Routes}
}

// addresses is what checkAddresses learned about an addressSpec, for the rules that
// compare it with other objects and with its old version.
type addresses struct {
	// subnet is the parsed spec.subnet; not valid when spec.subnet was refused.
	subnet netip.Prefix
	// is4 is the object's family when known is set: the subnet's, else spec.ipVersion's.
	is4, known bool
	// familyFrom says where the family came from, for messages ("subnet 10.0.0.0/24 is IPv4").
	familyFrom string
	// ips, exclude and effective (ips minus excludeIPs) are the object's addresses. They
	// are set only when complete is.
	ips, exclude, effective ip.Set
	// complete reports that spec.subnet, spec.ips and spec.excludeIPs were all accepted,
	// so the sets are exactly what the object asks for. Rules that compare addresses with
	// other objects or with the old version run only then: one typo must not bring a
	// cascade of follow-on errors, nor hide that an allocated address is being removed.
	complete bool
}

// checkAddresses applies the rules on the shared fields and returns what it learned.
// Every field is checked on its own, so independent problems are all reported.
func (c Config) checkAddresses(s addressSpec) (addresses, field.ErrorList) {
	var (
		a    addresses
		errs field.ErrorList
	)
	subnetOK := false
	switch p, err := ip.ParseCanonicalCIDR(string(s.subnet)); {
	case s.subnet == "":
		errs = append(errs, field.Required(subnetPath, "a CIDR such as 10.244.0.0/16 or fd00:10:244::/64"))
	case err != nil:
		errs = append(errs, field.Invalid(subnetPath, string(s.subnet), reason(err)))
	default:
		a.subnet, a.is4, a.known, subnetOK = p, p.Addr().Is4(), true, true
		a.familyFrom = fmt.Sprintf("subnet %s is %s", p, familyName(a.is4))
	}

	versionMatches := false
	if v := s.ipVersion; v != nil {
		switch {
		case *v != v2beta1.IPv4 && *v != v2beta1.IPv6:
			errs = append(errs, field.NotSupported(ipVersionPath, *v, []string{"4", "6"}))
		case a.known && ipam.FamilyOf(a.is4) != *v:
			errs = append(errs, field.Invalid(ipVersionPath, *v, a.familyFrom))
		default:
			versionMatches = true
			if !a.known {
				a.is4, a.known = *v == v2beta1.IPv4, true
				a.familyFrom = fmt.Sprintf("spec.ipVersion is %d", *v)
			}
		}
	}
	if a.known {
		if on, key := c.enabled(a.is4); !on {
			path := subnetPath
			if versionMatches {
				path = ipVersionPath
			}
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("%s is not enabled in this cluster (%s is false)", familyName(a.is4), key)))
		}
	}

	ips, ipsOK, ipsErrs := a.checkRanges(ipsPath, s.ips)
	exclude, excludeOK, excludeErrs := a.checkRanges(excludeIPsPath, s.excludeIPs)
	errs = append(errs, ipsErrs...)
	errs = append(errs, excludeErrs...)
	if subnetOK && ipsOK && excludeOK {
		a.complete = true
		a.ips, a.exclude, a.effective = ips, exclude, ips.Subtract(exclude)
	}

	errs = append(errs, a.checkGateway(s, exclude, excludeOK)...)
	errs = append(errs, a.checkRoutes(s.routes)...)
	return a, errs
}

// checkRanges checks every entry of an ips-style list: an IP or a "first-last" range, of
// the object's family, inside its subnet. ok reports that every entry passed; the set
// holds them all then. The list need not be sorted or merged: Default does that, and a
// caller that skipped Default still gets a correct answer.
func (a addresses) checkRanges(path *field.Path, list []v2beta1.IPOrRange) (ip.Set, bool, field.ErrorList) {
	var (
		errs field.ErrorList
		rs   = make([]ip.Range, 0, len(list))
	)
	for i, tok := range list {
		r, err := ip.ParseRange(string(tok))
		if err != nil {
			errs = append(errs, field.Invalid(path.Index(i), string(tok), reason(err)))
			continue
		}
		if detail := a.misplaced(r); detail != "" {
			errs = append(errs, field.Invalid(path.Index(i), string(tok), detail))
			continue
		}
		rs = append(rs, r)
	}
	if len(errs) > 0 || !a.known {
		return ip.Set{}, false, errs
	}
	set, err := ip.SetOfRanges(rs...)
	if err != nil { // every range is valid and of the object's family
		return ip.Set{}, false, append(errs, field.InternalError(path, err))
	}
	return set, true, nil
}

// misplaced says why a well-formed range does not belong to the object (another family,
// outside the subnet), or returns "".
func (a addresses) misplaced(r ip.Range) string {
	switch {
	case a.known && r.Is4() != a.is4:
		return fmt.Sprintf("is %s, but %s", familyName(r.Is4()), a.familyFrom)
	case a.subnet.IsValid() && !(a.subnet.Contains(r.From) && a.subnet.Contains(r.To)):
		if a.subnet.Contains(r.From) || a.subnet.Contains(r.To) {
			return fmt.Sprintf("reaches outside subnet %s", a.subnet)
		}
		return fmt.Sprintf("is outside subnet %s", a.subnet)
	}
	return ""
}

// misplacedAddr is misplaced for one address.
func (a addresses) misplacedAddr(addr netip.Addr) string {
	return a.misplaced(ip.Range{From: addr, To: addr})
}

// checkGateway: the gateway is an address of the subnet and not one the pool hands out,
// or a pod would be given its own next hop. As in SpiderPool, a gateway inside ips is
// reported at the ips entry holding it, since excludeIPs is usually the fix. excludeOK
// says excludeIPs was accepted, so that "not excluded" is known for sure; each ips entry
// that parses is looked at, whatever the others hold.
func (a addresses) checkGateway(s addressSpec, exclude ip.Set, excludeOK bool) field.ErrorList {
	if s.gateway == nil {
		return nil
	}
	gw, err := ip.ParseAddr(string(*s.gateway))
	if err != nil {
		return field.ErrorList{field.Invalid(gatewayPath, string(*s.gateway), reason(err))}
	}
	if detail := a.misplacedAddr(gw); detail != "" {
		return field.ErrorList{field.Invalid(gatewayPath, string(*s.gateway), detail)}
	}
	if !excludeOK || exclude.Contains(gw) {
		return nil
	}
	var errs field.ErrorList
	for i, tok := range s.ips {
		if r, err := ip.ParseRange(string(tok)); err == nil && r.Contains(gw) {
			errs = append(errs, field.Invalid(ipsPath.Index(i), string(tok),
				fmt.Sprintf("contains the gateway %s; add it to spec.excludeIPs or take it out of spec.ips", gw)))
		}
	}
	return errs
}

// canonicalRoutes writes every route destination that parses as a CIDR in its canonical
// form, in place, and returns a warning for each one it rewrote: "192.168.26.5/24"
// becomes "192.168.26.0/24", "FD00::/64" becomes "fd00::/64". SpiderPool accepts host
// bits in a destination and hands the route to the pod as written, where the kernel
// refuses an IPv4 one; orbweaver stores the network that was meant, so that manifests
// written for SpiderPool apply unchanged, and says so in the warning. A destination that
// does not parse is left as written, for checkRoutes to report.
func canonicalRoutes(routes []v2beta1.Route) []string {
	var warnings []string
	for i := range routes {
		written := routes[i].Dst
		p, err := ip.ParseCIDR(written)
		if err != nil || p.Masked().String() == written {
			continue
		}
		routes[i].Dst = p.Masked().String()
		path := routesPath.Index(i).Child("dst")
		if p != p.Masked() {
			warnings = append(warnings, fmt.Sprintf("%s: %s has host bits set; stored as the network %s", path, written, routes[i].Dst))
		} else {
			warnings = append(warnings, fmt.Sprintf("%s: %s stored in canonical form %s", path, written, routes[i].Dst))
		}
	}
	return warnings
}

// checkRoutes: each route has a destination CIDR of the family that is not the default
// route (spec.gateway says that), no destination twice, and a next hop in the subnet.
// Destinations must be canonical: the kernel refuses a route to 10.1.0.1/16, so the
// pod's ADD would fail much later with a vaguer error. Default writes them canonically
// first (canonicalRoutes), so through the API server a destination with host bits is
// stored corrected, as SpiderPool accepts it, and this rule only catches callers that
// skip Default.
func (a addresses) checkRoutes(routes []v2beta1.Route) field.ErrorList {
	var errs field.ErrorList
	seen := make(map[netip.Prefix]bool, len(routes))
	for i, rt := range routes {
		dstPath, gwPath := routesPath.Index(i).Child("dst"), routesPath.Index(i).Child("gw")
		switch dst, err := ip.ParseCanonicalCIDR(rt.Dst); {
		case rt.Dst == "":
			errs = append(errs, field.Required(dstPath, "a destination CIDR such as 10.96.0.0/12"))
		case err != nil:
			errs = append(errs, field.Invalid(dstPath, rt.Dst, reason(err)))
		case a.known && dst.Addr().Is4() != a.is4:
			errs = append(errs, field.Invalid(dstPath, rt.Dst, fmt.Sprintf("is %s, but %s", familyName(dst.Addr().Is4()), a.familyFrom)))
		case dst.Bits() == 0:
			errs = append(errs, field.Invalid(dstPath, rt.Dst, "is the default route; set spec.gateway instead"))
		case seen[dst]:
			errs = append(errs, field.Duplicate(dstPath, rt.Dst))
		default:
			seen[dst] = true
		}
		switch gw, err := ip.ParseAddr(string(rt.Gw)); {
		case rt.Gw == "":
			errs = append(errs, field.Required(gwPath, "the next hop, an address of the subnet"))
		case err != nil:
			errs = append(errs, field.Invalid(gwPath, string(rt.Gw), reason(err)))
		default:
			if detail := a.misplacedAddr(gw); detail != "" {
				errs = append(errs, field.Invalid(gwPath, string(rt.Gw), detail))
			}
		}
	}
	return errs
}

// immutable: spec.subnet never changes, since allocation records count from its first
// address, and spec.ipVersion never changes once set. An ipVersion set where the old
// object had none is not a change (SpiderPool objects created before Default existed).
func immutable(oldVersion, newVersion *int64, oldSubnet, newSubnet v2beta1.CIDR) field.ErrorList {
	var errs field.ErrorList
	if oldSubnet != newSubnet {
		errs = append(errs, field.Forbidden(subnetPath, fmt.Sprintf("is immutable; it was %s", oldSubnet)))
	}
	if oldVersion != nil && (newVersion == nil || *newVersion != *oldVersion) {
		errs = append(errs, field.Forbidden(ipVersionPath, fmt.Sprintf("is immutable; it was %d", *oldVersion)))
	}
	return errs
}

// parsedObject is another object's subnet and effective addresses (ips minus
// excludeIPs, inside the subnet). subnetOK and addrsOK say which parts could be read.
type parsedObject struct {
	subnet            netip.Prefix
	effective         ip.Set
	subnetOK, addrsOK bool
}

func parseObject(subnet v2beta1.CIDR, ips, exclude []v2beta1.IPOrRange) parsedObject {
	var o parsedObject
	p, err := ip.ParseCanonicalCIDR(string(subnet))
	if err != nil {
		return o
	}
	o.subnet, o.subnetOK = p, true
	in, err1 := ip.ParseRanges(tokens(ips))
	ex, err2 := ip.ParseRanges(tokens(exclude))
	if err1 != nil || err2 != nil {
		return o
	}
	o.effective, o.addrsOK = in.Intersect(ip.SetOfPrefix(p)).Subtract(ex), true
	return o
}

// sameFamily reports whether another object's subnet is of a's family.
func (a addresses) sameFamily(o parsedObject) bool {
	return o.subnetOK && o.subnet.Addr().Is4() == a.is4
}

func tokens(list []v2beta1.IPOrRange) []string {
	out := make([]string, len(list))
	for i, t := range list {
		out[i] = string(t)
	}
	return out
}

// normalised returns an ips-style list sorted and merged, or the list unchanged when an
// entry does not parse or the families mix: validation then reports each entry at the
// index the user wrote it. A nil list stays nil and an empty one empty, because for
// routes-like fields the difference is meaningful and ips should not churn either.
func normalised(list []v2beta1.IPOrRange) []v2beta1.IPOrRange {
	if len(list) == 0 {
		return list
	}
	s, err := ip.ParseRanges(tokens(list))
	if err != nil {
		return list
	}
	out := make([]v2beta1.IPOrRange, 0, len(list))
	for _, t := range s.Strings() {
		out = append(out, v2beta1.IPOrRange(t))
	}
	return out
}

// reason returns the reason of a pkg/ip parse error without the token, which the field
// error already shows.
func reason(err error) string {
	if pe, ok := errors.AsType[*ip.ParseError](err); ok {
		return pe.Reason
	}
	return err.Error()
}

// describe writes a set of addresses for a message: its first ranges, then how many more.
func describe(s ip.Set) string {
	const shown = 4
	rs := s.Strings()
	if len(rs) <= shown {
		return strings.Join(rs, ", ")
	}
	return fmt.Sprintf("%s and %d more ranges (%s addresses in all)", strings.Join(rs[:shown], ", "), len(rs)-shown, s.Count())
}

// count writes the number of addresses of a set with its unit.
func count(s ip.Set) string {
	if n, ok := s.Count().Uint64(); ok && n == 1 {
		return "1 address"
	}
	return s.Count().String() + " addresses"
}
