package webhook

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

var (
	podAffinityPath       = specPath.Child("podAffinity")
	namespaceAffinityPath = specPath.Child("namespaceAffinity")
	nodeAffinityPath      = specPath.Child("nodeAffinity")
	multusNamePath        = specPath.Child("multusName")
	recordsPath           = field.NewPath("status", "orbweaver", "records")
)

// DefaultIPPool fills in a pool as SpiderPool's mutating webhook does, so that the agent,
// the controller and the validation rules can rely on clean data. old is nil on create.
//
//   - spec.ipVersion is derived from spec.subnet when unset.
//   - spec.ips and spec.excludeIPs are sorted and merged ("10.0.0.3", "10.0.0.1-10.0.0.2"
//     becomes "10.0.0.1-10.0.0.3"), so two pools holding the same addresses look the
//     same. A list with an entry that does not parse is left as written, so that
//     validation reports the entry at the index the user gave it.
//   - On create, the finalizer spiderpool.spidernet.io is added: the controller removes
//     it once no address is allocated, so a pool is never deleted under its pods. Not on
//     update, or the controller's own update removing it would put it back.
//   - Label ipam.spidernet.io/ippool-cidr is set to the subnet (see CIDRLabelValue).
//   - When a SpiderSubnet has the same subnet, label ipam.spidernet.io/owner-spider-subnet
//     names it and, on create, the pool inherits its gateway and routes when it sets
//     none. An explicit empty routes list (routes: []) keeps the pool without routes, as
//     in SpiderPool. Inheriting only on create means a user who later deletes the
//     inherited routes does not get them back on the next update.
//   - Route destinations are written canonically, "192.168.26.5/24" as "192.168.26.0/24"
//     (see canonicalRoutes); the warnings returned say which, for the admission response.
//
// A terminating pool is left alone, but for its route destinations: validation requires
// them canonical on every update, and a pool SpiderPool stored with host bits in one must
// still let the update that removes its finalizer through. Pass no subnets when the
// SpiderSubnet feature is off.
func DefaultIPPool(pool, old *v2beta1.SpiderIPPool, existing Existing) (warnings []string) {
	if pool.DeletionTimestamp == nil {
		defaultIPPool(pool, old, existing)
	}
	return canonicalRoutes(pool.Spec.Routes)
}

func defaultIPPool(pool, old *v2beta1.SpiderIPPool, existing Existing) {
	if old == nil && !slices.Contains(pool.Finalizers, v2beta1.Finalizer) {
		pool.Finalizers = append(pool.Finalizers, v2beta1.Finalizer)
	}
	pool.Spec.IPs = normalised(pool.Spec.IPs)
	pool.Spec.ExcludeIPs = normalised(pool.Spec.ExcludeIPs)
	subnet, err := ip.ParseCanonicalCIDR(string(pool.Spec.Subnet))
	if err != nil {
		return
	}
	if pool.Spec.IPVersion == nil {
		v := ipam.FamilyOf(subnet.Addr().Is4())
		pool.Spec.IPVersion = &v
	}
	if value, ok := CIDRLabelValue(subnet); ok {
		setLabel(&pool.ObjectMeta, LabelIPPoolCIDR, value)
	}
	for i := range existing.Subnets {
		s := &existing.Subnets[i]
		if o := parseObject(s.Spec.Subnet, nil, nil); !o.subnetOK || o.subnet != subnet {
			continue
		}
		setLabel(&pool.ObjectMeta, LabelOwnerSpiderSubnet, s.Name)
		if old != nil {
			break
		}
		if pool.Spec.Gateway == nil && s.Spec.Gateway != nil {
			gw := *s.Spec.Gateway
			pool.Spec.Gateway = &gw
		}
		if pool.Spec.Routes == nil && len(s.Spec.Routes) > 0 {
			pool.Spec.Routes = slices.Clone(s.Spec.Routes)
		}
		break
	}
}

func setLabel(m *metav1.ObjectMeta, key, value string) {
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[key] = value
}

// ValidateIPPoolCreate checks a new pool: its own fields (see checkAddresses), its
// affinities (for an auto pool, checkAutoPoolAffinity) and Multus names, and that it
// does not collide with the existing pools and subnets. Call it on the defaulted pool.
func (c Config) ValidateIPPoolCreate(pool *v2beta1.SpiderIPPool, existing Existing) field.ErrorList {
	return c.validateIPPool(nil, pool, existing)
}

// ValidateIPPoolUpdate checks a changed pool: the rules of ValidateIPPoolCreate, with the
// comparisons against other objects limited to the addresses this update adds (so a
// conflict older than these rules does not block unrelated edits, such as the one that
// fixes it; an auto pool's podAffinity is checked only when it changes), plus:
// spec.subnet and spec.ipVersion are immutable, and no address that a pod or a node's
// reserve holds may leave the pool (in Grants mode: no address a SpiderEndpoint of
// existing.Endpoints holds). Who may edit an auto pool is ValidateAutoPoolEdit's rule.
func (c Config) ValidateIPPoolUpdate(old, pool *v2beta1.SpiderIPPool, existing Existing) field.ErrorList {
	return c.validateIPPool(old, pool, existing)
}

func (c Config) validateIPPool(old, pool *v2beta1.SpiderIPPool, existing Existing) field.ErrorList {
	a, errs := c.checkAddresses(poolAddressSpec(&pool.Spec))
	errs = append(errs, checkAffinities(&pool.Spec)...)
	if old == nil || !equality.Semantic.DeepEqual(old.Spec.PodAffinity, pool.Spec.PodAffinity) {
		errs = append(errs, checkAutoPoolAffinity(pool)...)
	}
	errs = append(errs, checkMultusNames(pool.Spec.MultusName)...)
	errs = append(errs, checkEIP(pool.Name, eipOf(pool), existing)...)
	added := a.effective
	if old != nil {
		immutableErrs := immutable(old.Spec.IPVersion, pool.Spec.IPVersion, old.Spec.Subnet, pool.Spec.Subnet)
		errs = append(errs, immutableErrs...)
		if len(immutableErrs) > 0 {
			return errs
		}
		if prev := parseObject(old.Spec.Subnet, old.Spec.IPs, old.Spec.ExcludeIPs); a.complete && prev.addrsOK {
			added = a.effective.Subtract(prev.effective)
			errs = append(errs, inUseRemoved(old, prev.effective.Subtract(a.effective), a, existing.Endpoints)...)
		}
	}
	if !a.subnet.IsValid() {
		return errs
	}
	return append(errs, a.poolConflicts(pool.Name, old == nil, added, existing)...)
}

// poolConflicts: pools are disjoint, and a pool inside a SpiderSubnet's range belongs to
// it. Against each other pool of the family: a different subnet that overlaps this one's
// is refused (on create; the subnet is immutable), since the two would describe one
// network two ways; with the same subnet, their effective addresses must not overlap
// (one address, one owner). Against each SpiderSubnet: a different subnet that overlaps
// is refused, the mirror of SpiderPool's rule for new subnets (the subnet's auto pools
// would collide with this pool); with the same subnet, the pool's addresses must be
// addresses of the subnet. added is what the request adds; only it is compared, and only
// when the pool's own addresses were all accepted (a.complete). The subnet rules need
// only an accepted subnet.
func (a addresses) poolConflicts(name string, create bool, added ip.Set, existing Existing) field.ErrorList {
	var errs field.ErrorList
	for i := range existing.IPPools {
		q := &existing.IPPools[i]
		o := parseObject(q.Spec.Subnet, q.Spec.IPs, q.Spec.ExcludeIPs)
		if q.Name == name || !a.sameFamily(o) {
			continue
		}
		if o.subnet != a.subnet {
			if create && o.subnet.Overlaps(a.subnet) {
				errs = append(errs, field.Forbidden(subnetPath, fmt.Sprintf(
					"overlaps subnet %s of SpiderIPPool %q; pools on one network must have the same subnet", o.subnet, q.Name)))
			}
			continue
		}
		if both := added.Intersect(o.effective); a.complete && o.addrsOK && !both.IsEmpty() {
			errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf(
				"shares %s (%s) with SpiderIPPool %q; pools with one subnet must not share addresses (ips minus excludeIPs)",
				describe(both), count(both), q.Name)))
		}
	}
	for i := range existing.Subnets {
		s := &existing.Subnets[i]
		o := parseObject(s.Spec.Subnet, s.Spec.IPs, s.Spec.ExcludeIPs)
		if !a.sameFamily(o) {
			continue
		}
		if o.subnet != a.subnet {
			if create && o.subnet.Overlaps(a.subnet) {
				errs = append(errs, field.Forbidden(subnetPath, fmt.Sprintf(
					"overlaps subnet %s of SpiderSubnet %q; a pool inside a SpiderSubnet's range must have the same subnet", o.subnet, s.Name)))
			}
			continue
		}
		if out := added.Subtract(o.effective); a.complete && o.addrsOK && !out.IsEmpty() {
			errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf(
				"holds %s (%s) outside the addresses of SpiderSubnet %q, which owns this pool (its ips minus excludeIPs)",
				describe(out), count(out), s.Name)))
		}
	}
	return errs
}

// inUseRemoved: an update must not take away an address that is allocated. removed is
// what leaves the pool's effective addresses; the old pool's records say who holds what,
// a pod or a node agent's reserve (spares, and addresses handed to pods but not yet
// recorded under them). A pool in Grants mode has no records: there eps, its
// SpiderEndpoints, say which addresses pods hold; an address granted to a node and not
// held by a pod may go, since the node's agent gives back what leaves the pool. An
// address removed by a new excludeIPs entry is reported at spec.excludeIPs, one dropped
// from ips at spec.ips. Only addresses this update removes are checked, so an address
// held outside the pool from before stays editable.
//
// The records are decoded with records.Decode rather than through ipam.NewPool: a Pool
// answers "who holds this address" but cannot list its addresses, and asking it per
// owner costs O(n²) on a pool of 65,536 records, while one decode is O(n).
func inUseRemoved(old *v2beta1.SpiderIPPool, removed ip.Set, a addresses, eps []v2beta1.SpiderEndpoint) field.ErrorList {
	if removed.IsEmpty() {
		return nil
	}
	var pods, reserves []ip.Range
	if old.GrantsMode() {
		for _, h := range ipam.EndpointHolds(old.Name, a.subnet, eps) {
			if removed.Contains(h.Addr) {
				pods = append(pods, ip.Range{From: h.Addr, To: h.Addr})
			}
		}
	}
	var recs []records.Record
	if st := old.Status.Orbweaver; st != nil && len(st.Records) > 0 {
		var err error
		if recs, err = records.Decode(a.subnet, st.Records); err != nil {
			return field.ErrorList{field.InternalError(recordsPath, fmt.Errorf(
				"cannot tell which of the removed addresses are allocated, so the pool cannot shrink: %w", err))}
		}
	}
	for _, r := range recs {
		if !removed.Contains(r.IP) {
			continue
		}
		if r.Owner.IsReserve() {
			reserves = append(reserves, ip.Range{From: r.IP, To: r.IP})
		} else {
			pods = append(pods, ip.Range{From: r.IP, To: r.IP})
		}
	}
	var errs field.ErrorList
	for _, held := range []struct {
		rs   []ip.Range
		what string
	}{
		{pods, "allocated to pods; remove addresses only after their pods have released them"},
		{reserves, "held in reserve by node agents (spares, or handed to pods and not yet recorded under them); idle spares return to the pool within about 30 s, retry then"},
	} {
		if len(held.rs) == 0 {
			continue
		}
		set, err := ip.SetOfRanges(held.rs...)
		if err != nil { // addresses of one subnet
			return append(errs, field.InternalError(recordsPath, err))
		}
		if excluded := set.Intersect(a.ips); !excluded.IsEmpty() {
			errs = append(errs, field.Forbidden(excludeIPsPath, fmt.Sprintf("would exclude %s (%s) %s", describe(excluded), count(excluded), held.what)))
		}
		if dropped := set.Subtract(a.ips); !dropped.IsEmpty() {
			errs = append(errs, field.Forbidden(ipsPath, fmt.Sprintf("would remove %s (%s) %s", describe(dropped), count(dropped), held.what)))
		}
	}
	return errs
}

// checkAffinities: every selector is well formed, and podAffinity, when present, selects
// something (SpiderPool's rule: an empty podAffinity admits every pod, which is what
// leaving it out says).
func checkAffinities(s *v2beta1.IPPoolSpec) field.ErrorList {
	opts := metav1validation.LabelSelectorValidationOptions{}
	errs := metav1validation.ValidateLabelSelector(s.PodAffinity, opts, podAffinityPath)
	if p := s.PodAffinity; p != nil && len(p.MatchLabels) == 0 && len(p.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(podAffinityPath, "{}",
			"is empty and would admit every pod; give matchLabels or matchExpressions, or leave podAffinity out"))
	}
	errs = append(errs, metav1validation.ValidateLabelSelector(s.NamespaceAffinity, opts, namespaceAffinityPath)...)
	errs = append(errs, metav1validation.ValidateLabelSelector(s.NodeAffinity, opts, nodeAffinityPath)...)
	return errs
}

// checkMultusNames: each entry names a NetworkAttachmentDefinition as "namespace/name" or
// "name" (a namespace a DNS label, a name a DNS subdomain, as the agent reads them), and
// no entry appears twice. A malformed entry would never match any pod, silently.
func checkMultusNames(names []string) field.ErrorList {
	var errs field.ErrorList
	seen := make(map[string]bool, len(names))
	for i, n := range names {
		path := multusNamePath.Index(i)
		ns, name, qualified := strings.Cut(n, "/")
		if !qualified {
			ns, name = "", n
		}
		var problems []string
		if qualified && len(validation.IsDNS1123Label(ns)) > 0 {
			problems = append(problems, fmt.Sprintf("namespace %q is not a DNS label (lower case letters, digits and '-')", ns))
		}
		if len(validation.IsDNS1123Subdomain(name)) > 0 {
			problems = append(problems, fmt.Sprintf("name %q is not a DNS subdomain (lower case letters, digits, '-' and '.')", name))
		}
		switch {
		case len(problems) > 0:
			errs = append(errs, field.Invalid(path, n, `must be "namespace/name" or "name" of a NetworkAttachmentDefinition: `+strings.Join(problems, "; ")))
		case seen[n]:
			errs = append(errs, field.Duplicate(path, n))
		}
		seen[n] = true
	}
	return errs
}
