package subnet

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// belongs reports whether a pool belongs to a subnet, as admission associates them
// (pkg/webhook): the pool's ipam.spidernet.io/owner-spider-subnet label names the
// subnet, or, when the pool has no such label, its spec.subnet is the subnet's.
// prefix is the subnet's parsed spec.subnet.
func belongs(pool *v2beta1.SpiderIPPool, subnet *v2beta1.SpiderSubnet, prefix netip.Prefix) bool {
	if owner, ok := pool.Labels[ipam.LabelOwnerSpiderSubnet]; ok && owner != "" {
		return owner == subnet.Name
	}
	p, err := ip.ParseCIDR(string(pool.Spec.Subnet))
	return err == nil && p.Masked() == prefix
}

// share is what one pool of the subnet takes of it.
type share struct {
	name string
	// ips are the pool's addresses (its ips minus excludeIPs) that are addresses of the
	// subnet (its ips minus excludeIPs): the pool's entry in controlledIPPools.
	ips ip.Set
	// outside are the pool's addresses that are not the subnet's.
	outside ip.Set
	// application is set for auto pools: SpiderPool's
	// "<group>_<version>_<Kind>_<namespace>_<name>" ("<version>_..." for the core group).
	application string
}

// facts is what one look at a subnet and the pools shows. Status and conditions are
// computed from it (desiredStatus), so both are tested without an API server.
type facts struct {
	// total is the subnet's spec.ips minus spec.excludeIPs (inside spec.subnet).
	total ip.Set
	// owned names every pool that belongs to the subnet, sorted, including pools whose
	// addresses do not parse or that have none.
	owned []string
	// shares are the owned pools that have addresses, sorted by name.
	shares []share
	// inPools are the subnet's addresses some pool's spec.ips name (owned pools and any
	// other pool with the same spec.subnet), and reserved those SpiderReservedIPs
	// reserve and no pool has: neither is left for a new or growing pool.
	inPools, reserved ip.Set
	// free is what is left: total minus inPools minus reserved.
	free ip.Set
}

// allocated is status.allocatedIPCount: the addresses controlledIPPools lists.
func (f facts) allocated() int64 {
	var n ip.Count
	for _, s := range f.shares {
		n = n.Add(s.ips.Count())
	}
	return n.Int64Saturating()
}

// observe computes the facts of a subnet from all pools and the SpiderReservedIP
// addresses of its family. The error is for a subnet whose spec does not parse (the
// schema and the webhook refuse one).
func observe(subnet *v2beta1.SpiderSubnet, pools []v2beta1.SpiderIPPool, reserved ip.Set) (facts, error) {
	prefix, total, err := ipam.SubnetAddresses(subnet)
	if err != nil {
		return facts{}, err
	}
	f := facts{total: total}
	var claimed ip.Set
	for i := range pools {
		p := &pools[i]
		own := belongs(p, subnet, prefix)
		if own {
			f.owned = append(f.owned, p.Name)
		}
		poolPrefix, err := ip.ParseCIDR(string(p.Spec.Subnet))
		if err != nil || (!own && poolPrefix.Masked() != prefix) {
			continue
		}
		// A pool's spec.ips take addresses from the subnet, excluded ones included.
		if named, err := ipam.EffectiveAddresses(prefix, p.Spec.IPs, nil); err == nil {
			if u, err := claimed.Union(named.Intersect(total)); err == nil {
				claimed = u
			}
		}
		if !own {
			continue
		}
		addrs, err := ipam.EffectiveAddresses(poolPrefix.Masked(), p.Spec.IPs, p.Spec.ExcludeIPs)
		if err != nil {
			continue // the webhook refuses such a pool; it is listed in owned only
		}
		s := share{name: p.Name, ips: addrs.Intersect(total), outside: addrs.Subtract(total)}
		if ipam.IsAutoPool(p) {
			s.application = application(p)
		} else if addrs.IsEmpty() {
			continue // SpiderPool lists a manual pool only when it has addresses
		}
		f.shares = append(f.shares, s)
	}
	slices.Sort(f.owned)
	slices.SortFunc(f.shares, func(a, b share) int { return strings.Compare(a.name, b.name) })
	f.inPools = claimed
	f.reserved = total.Intersect(reserved).Subtract(claimed)
	f.free = total.Subtract(claimed).Subtract(reserved)
	return f, nil
}

// application is an auto pool's application as SpiderPool writes it in
// controlledIPPools, from the pool's owner-application labels: "apps_v1_Deployment_ns_web",
// "v1_Pod_ns_web" for the core group (whose group-version label is "_v1").
func application(p *v2beta1.SpiderIPPool) string {
	l := p.Labels
	gv := strings.TrimPrefix(l[ipam.LabelOwnerAppGV], "_")
	return strings.Join([]string{gv, l[ipam.LabelOwnerAppKind], l[ipam.LabelOwnerAppNamespace], l[ipam.LabelOwnerAppName]}, "_")
}

// preAllocation is one entry of controlledIPPools, SpiderPool's PoolIPPreAllocation.
type preAllocation struct {
	IPs         []string `json:"ips"`
	Application *string  `json:"application,omitempty"`
}

// controlledIPPools is status.controlledIPPools: SpiderPool's JSON object of pool name to
// {"ips": [ranges], "application": ...}, keys sorted (encoding/json sorts map keys), so
// equal states give equal strings; nil when no pool has addresses of the subnet.
func controlledIPPools(shares []share) (*string, error) {
	if len(shares) == 0 {
		return nil, nil
	}
	m := make(map[string]preAllocation, len(shares))
	for _, s := range shares {
		e := preAllocation{IPs: s.ips.Strings()}
		if s.application != "" {
			e.Application = ptr.To(s.application)
		}
		m[s.name] = e
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return ptr.To(string(b)), nil
}

// maxListed is how many pools a condition message names before "and N more".
const maxListed = 5

// conditions returns the subnet's conditions, without transition times. blocking names
// the pools that keep a deleted subnet's finalizer; DeletionBlocked is returned only
// when there are some.
func conditions(f facts, generation int64, blocking []string) []metav1.Condition {
	cond := func(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation}
	}
	var out []metav1.Condition
	switch {
	case !f.free.IsEmpty():
		out = append(out, cond(v2beta1.SubnetExhaustedCondition, metav1.ConditionFalse, v2beta1.SubnetFreeAddressesReason,
			"addresses are left for new and growing pools"))
	case f.total.IsEmpty():
		out = append(out, cond(v2beta1.SubnetExhaustedCondition, metav1.ConditionTrue, v2beta1.SubnetNoFreeAddressReason,
			"the subnet has no address: spec.ips minus spec.excludeIPs is empty"))
	default:
		out = append(out, cond(v2beta1.SubnetExhaustedCondition, metav1.ConditionTrue, v2beta1.SubnetNoFreeAddressReason,
			fmt.Sprintf("no address is left for new or growing pools: of the subnet's %s addresses (spec.ips minus spec.excludeIPs), %s are in pools and %s reserved by SpiderReservedIPs",
				f.total.Count(), f.inPools.Count(), f.reserved.Count())))
	}
	var outside []string
	for _, s := range f.shares {
		if !s.outside.IsEmpty() {
			outside = append(outside, fmt.Sprintf("SpiderIPPool %q has %s (%s)", s.name, s.outside, addresses(s.outside.Count())))
		}
	}
	if len(outside) > 0 {
		out = append(out, cond(v2beta1.SubnetPoolsOutsideCondition, metav1.ConditionTrue, v2beta1.SubnetAddressesOutsideSubnetReason,
			"addresses outside the subnet's spec.ips minus spec.excludeIPs: "+list(outside, "; ", "pools")))
	} else {
		out = append(out, cond(v2beta1.SubnetPoolsOutsideCondition, metav1.ConditionFalse, v2beta1.SubnetPoolsInsideReason,
			"every pool's addresses are the subnet's"))
	}
	if len(blocking) > 0 {
		out = append(out, cond(v2beta1.SubnetDeletionBlockedCondition, metav1.ConditionTrue, v2beta1.SubnetPoolsRemainReason,
			fmt.Sprintf("the finalizer stays while pools belong to the subnet: %s; delete them (an auto pool goes with its workload)", list(blocking, ", ", "pools"))))
	}
	return out
}

// addresses is "1 address" or "n addresses".
func addresses(n ip.Count) string {
	if v, ok := n.Uint64(); ok && v == 1 {
		return "1 address"
	}
	return n.String() + " addresses"
}

// list joins up to maxListed items and says how many more there are.
func list(items []string, sep, what string) string {
	if len(items) <= maxListed {
		return strings.Join(items, sep)
	}
	return fmt.Sprintf("%s and %d more %s", strings.Join(items[:maxListed], sep), len(items)-maxListed, what)
}

// desiredStatus returns the status the subnet should have. subnet is not modified.
// Conditions keep their transition time unless their status changes, when it becomes
// now.
func desiredStatus(subnet *v2beta1.SpiderSubnet, f facts, blocking []string, now time.Time) (v2beta1.SubnetStatus, error) {
	pools, err := controlledIPPools(f.shares)
	if err != nil {
		return v2beta1.SubnetStatus{}, fmt.Errorf("SpiderSubnet %q: status.controlledIPPools: %w", subnet.Name, err)
	}
	st := v2beta1.SubnetStatus{
		ControlledIPPools: pools,
		TotalIPCount:      ptr.To(f.total.Count().Int64Saturating()),
		AllocatedIPCount:  ptr.To(f.allocated()),
		Orbweaver:         &v2beta1.SubnetOrbweaverStatus{},
		Conditions:        slices.Clone(subnet.Status.Conditions),
	}
	if old := subnet.Status.Orbweaver; old != nil {
		st.Orbweaver.Conditions = slices.Clone(old.Conditions)
	}
	if len(blocking) == 0 {
		meta.RemoveStatusCondition(&st.Orbweaver.Conditions, v2beta1.SubnetDeletionBlockedCondition)
	}
	at := metav1.NewTime(now.Truncate(time.Second))
	for _, c := range conditions(f, subnet.Generation, blocking) {
		c.LastTransitionTime = at
		meta.SetStatusCondition(&st.Orbweaver.Conditions, c)
	}
	r := ready(subnet)
	r.LastTransitionTime = at
	meta.SetStatusCondition(&st.Conditions, r)
	return st, nil
}

// ready returns the subnet's Ready condition (status.conditions), without transition
// time: False while the subnet is being deleted, else True. Exhausted and PoolsOutside
// do not make it False: the subnet is sound, and its pools serve.
func ready(subnet *v2beta1.SpiderSubnet) metav1.Condition {
	c := metav1.Condition{Type: v2beta1.SubnetReadyCondition, Status: metav1.ConditionTrue, Reason: v2beta1.SubnetServingReason,
		Message: "pools and auto pools can be carved from the subnet", ObservedGeneration: subnet.Generation}
	if subnet.DeletionTimestamp != nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v2beta1.SubnetDeletingReason, "the subnet is being deleted"
	}
	return c
}

// statusChanged reports whether writing next would change anything.
func statusChanged(old, next *v2beta1.SubnetStatus) bool {
	return !equality.Semantic.DeepEqual(old, next)
}

// turnedBad returns the conditions of next that turned True (all of the subnet's are
// bad when True) from anything else or absent.
func turnedBad(old, next []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, n := range next {
		if n.Status != metav1.ConditionTrue {
			continue
		}
		if o := meta.FindStatusCondition(old, n.Type); o != nil && o.Status == metav1.ConditionTrue {
			continue
		}
		out = append(out, n)
	}
	return out
}
