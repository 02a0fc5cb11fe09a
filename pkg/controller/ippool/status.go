package ippool

import (
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
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// facts is what one look at a pool shows: the counts a node agent would write and what
// the records hold. It is computed from values only (observe), and status and
// conditions are computed from it (desiredStatus), so both are tested without an API
// server.
type facts struct {
	// total, allocated (addresses pods hold) and spare (addresses node agents' reserves
	// hold; 0 in Grants mode) are the counts ipam.Pool.WriteStatus writes; allocated and
	// spare are meaningful only when recordsErr is nil.
	total, allocated, spare int64
	// usable is total minus the addresses SpiderReservedIPs reserve; free is usable
	// minus the held addresses: what a new allocation could take now.
	usable, free int64
	// recordsErr is set when status.orbweaver.records do not decode.
	recordsErr error
	// outside are the held addresses that are not in spec.ips minus spec.excludeIPs,
	// ascending.
	outside []netip.Addr
	// podAddrs addresses are held by pods (pods distinct ones), reserveAddrs by node
	// agents' reserves (nodes distinct ones).
	podAddrs, pods, reserveAddrs, nodes int
	// grants is set for a pool in Grants mode: what is held comes from the pods'
	// SpiderEndpoints (observeGrants), not from the records.
	grants bool
}

// observe computes the facts of a pool. reserved holds the SpiderReservedIP addresses of
// the pool's family. The error is ipam.ErrInvalidPool for a spec that does not parse
// (the schema and the webhook refuse one; nothing here can fix it); undecodable records
// are a fact, not an error.
func observe(sp *v2beta1.SpiderIPPool, reserved ip.Set) (facts, error) {
	// The pool without its records: spec.ips minus spec.excludeIPs, and what of it the
	// reserved addresses leave.
	specOnly := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: sp.Name}, Spec: sp.Spec}
	bare, err := ipam.NewPool(specOnly, ip.Set{})
	if err != nil {
		return facts{}, err
	}
	bareReserved, err := ipam.NewPool(specOnly, reserved)
	if err != nil {
		return facts{}, err
	}
	f := facts{total: bare.TotalCount(), usable: bareReserved.UsableCount()}

	pool, err := ipam.NewPool(sp, reserved)
	if err != nil {
		f.recordsErr = err
		f.free = f.usable
		return f, nil
	}
	// The counts exactly as an agent writes them: from the same function, on a copy.
	scratch := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: sp.Name}, Spec: sp.Spec}
	if err := pool.WriteStatus(scratch); err != nil {
		f.recordsErr = err
		f.free = f.usable
		return f, nil
	}
	f.allocated, f.total = *scratch.Status.AllocatedIPCount, *scratch.Status.TotalIPCount
	f.spare = *scratch.Status.Orbweaver.SpareIPCount
	f.free = pool.FreeCount()

	if st := sp.Status.Orbweaver; st != nil && len(st.Records) > 0 {
		recs, err := records.Decode(pool.Subnet(), st.Records)
		if err != nil { // NewPool decoded them a moment ago
			f.recordsErr = err
			return f, nil
		}
		pods, nodes := map[uint64]bool{}, map[records.Owner]bool{}
		for _, r := range recs {
			if !bare.Usable(r.IP) {
				f.outside = append(f.outside, r.IP)
			}
			if r.Owner.IsReserve() {
				f.reserveAddrs++
				nodes[r.Owner] = true
			} else {
				f.podAddrs++
				pods[r.Owner.Pod] = true
			}
		}
		f.pods, f.nodes = len(pods), len(nodes)
	}
	return f, nil
}

// observeGrants computes the facts of a pool in Grants mode from what the SpiderEndpoints
// eps hold in it (ipam.EndpointHolds; endpoints that do not name the pool add nothing):
// allocated counts the distinct addresses pods hold, and an address granted to a node
// but not handed to a pod is free (grants are not allocations: spare is 0). Records are not read:
// the grant controller switches only a pool that records nothing, and no agent writes
// records once it has. The error is as observe's.
func observeGrants(sp *v2beta1.SpiderIPPool, reserved ip.Set, eps []v2beta1.SpiderEndpoint) (facts, error) {
	specOnly := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: sp.Name}, Spec: sp.Spec}
	bare, err := ipam.NewPool(specOnly, ip.Set{})
	if err != nil {
		return facts{}, err
	}
	holds := ipam.EndpointHolds(sp.Name, bare.Subnet(), eps)
	bareReserved, err := ipam.NewPool(specOnly, reserved)
	if err != nil {
		return facts{}, err
	}
	f := facts{total: bare.TotalCount(), usable: bareReserved.UsableCount(), grants: true}
	for _, a := range ipam.HeldAddrs(holds) {
		f.allocated++
		if !bare.Usable(a) {
			f.outside = append(f.outside, a)
		}
	}
	// Free: usable and not held, counted as sets (exact, then saturated).
	taken, err := reserved.Union(ipam.HeldSet(holds))
	if err != nil { // reserved is of the pool's family, holds of its subnet
		return facts{}, fmt.Errorf("%w %q: %v", ipam.ErrInvalidPool, sp.Name, err)
	}
	unheld, err := ipam.NewPool(specOnly, taken)
	if err != nil {
		return facts{}, err
	}
	f.free = unheld.UsableCount()
	pods := map[string]bool{}
	for _, h := range holds {
		pods[h.Namespace+"/"+h.Name+"/"+h.PodUID] = true
	}
	f.podAddrs, f.pods = int(f.allocated), len(pods)
	return f, nil
}

// held reports whether the records hold any address, a pod's or a node reserve's, or
// cannot tell.
func (f facts) held() bool { return f.recordsErr != nil || f.allocated > 0 || f.spare > 0 }

// maxListed is how many addresses a condition message names before "and N more".
const maxListed = 5

// conditions returns the pool's conditions for the facts, without transition times.
// DeletionBlocked is returned only when blocked is true: the pool is being deleted and
// keeps its finalizer because of held addresses.
func conditions(f facts, generation int64, blocked bool) []metav1.Condition {
	cond := func(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation}
	}
	var out []metav1.Condition
	switch {
	case f.recordsErr != nil:
		out = append(out, cond(v2beta1.IPPoolExhaustedCondition, metav1.ConditionUnknown, v2beta1.IPPoolRecordsCorruptReason,
			"the records do not decode, so which addresses are free is unknown"))
	case f.free > 0:
		out = append(out, cond(v2beta1.IPPoolExhaustedCondition, metav1.ConditionFalse, v2beta1.IPPoolFreeAddressesReason,
			"new allocations find free addresses"))
	default:
		out = append(out, cond(v2beta1.IPPoolExhaustedCondition, metav1.ConditionTrue, v2beta1.IPPoolNoFreeAddressReason, exhaustedMessage(f)))
	}
	switch {
	case f.recordsErr != nil:
		out = append(out, cond(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionFalse, v2beta1.IPPoolRecordsCorruptReason,
			fmt.Sprintf("status.orbweaver.records: %v; allocatedIPCount is left as it was", f.recordsErr)))
	case len(f.outside) > 0 && f.grants:
		out = append(out, cond(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionFalse, v2beta1.IPPoolAddressesOutsidePoolReason,
			fmt.Sprintf("%d %s outside spec.ips minus spec.excludeIPs (%s); their pods keep them, and once released they are not handed out again",
				len(f.outside), plural(len(f.outside), "address SpiderEndpoints hold is", "addresses SpiderEndpoints hold are"), listAddrs(f.outside))))
	case f.grants:
		out = append(out, cond(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionTrue, v2beta1.IPPoolRecordsDecodedReason,
			"the pool allocates by node grants: its pods' SpiderEndpoints are its records, and each names an address of the pool"))
	case len(f.outside) > 0:
		out = append(out, cond(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionFalse, v2beta1.IPPoolAddressesOutsidePoolReason,
			fmt.Sprintf("%d %s outside spec.ips minus spec.excludeIPs (%s); their owners keep them, and once released they are not handed out again",
				len(f.outside), plural(len(f.outside), "record holds an address", "records hold addresses"), listAddrs(f.outside))))
	default:
		out = append(out, cond(v2beta1.IPPoolRecordsValidCondition, metav1.ConditionTrue, v2beta1.IPPoolRecordsDecodedReason,
			"every record decodes and holds an address of the pool"))
	}
	if blocked {
		if f.recordsErr != nil {
			out = append(out, cond(v2beta1.IPPoolDeletionBlockedCondition, metav1.ConditionTrue, v2beta1.IPPoolRecordsUnreadableReason,
				"the finalizer stays: the records do not decode, so whether addresses are still held is unknown"))
		} else {
			out = append(out, cond(v2beta1.IPPoolDeletionBlockedCondition, metav1.ConditionTrue, v2beta1.IPPoolAddressesHeldReason, heldMessage(f)))
		}
	}
	return out
}

func exhaustedMessage(f facts) string {
	switch {
	case f.total == 0:
		return "the pool has no address: spec.ips minus spec.excludeIPs is empty"
	case f.usable == 0:
		return fmt.Sprintf("every one of the pool's %d addresses is reserved by SpiderReservedIPs", f.total)
	}
	msg := fmt.Sprintf("no free address: all %d usable addresses are held by pods or node agents' reserves", f.usable)
	if f.grants {
		msg = fmt.Sprintf("no free address: all %d usable addresses are held by pods (their SpiderEndpoints)", f.usable)
	}
	if r := f.total - f.usable; r > 0 {
		msg += fmt.Sprintf("; %d more %s reserved by SpiderReservedIPs", r, plural(r, "is", "are"))
	}
	return msg
}

func heldMessage(f facts) string {
	var parts []string
	if f.podAddrs > 0 {
		parts = append(parts, fmt.Sprintf("%d held by %d %s", f.podAddrs, f.pods, plural(f.pods, "pod", "pods")))
	}
	if f.reserveAddrs > 0 {
		parts = append(parts, fmt.Sprintf("%d in the reserve of %d node %s", f.reserveAddrs, f.nodes, plural(f.nodes, "agent", "agents")))
	}
	n := f.allocated + f.spare
	return fmt.Sprintf("the finalizer stays until every address is released: %d %s still held (%s)",
		n, plural(n, "address is", "addresses are"), strings.Join(parts, ", "))
}

func plural[N ~int | ~int64](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func listAddrs(as []netip.Addr) string {
	var b strings.Builder
	for i, a := range as {
		if i == maxListed {
			fmt.Fprintf(&b, " and %d more", len(as)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// desiredStatus returns the status the pool should have: sp's status with the counts
// and conditions of the facts, and the Ready condition that sums them up. Records and
// the allocation mode are never changed (the same bytes, shared with sp); the counts of
// what is held (allocatedIPCount, spareIPCount, freeIPCount) are left as they were when
// the records do not decode. sp is not modified. Conditions keep their transition time
// unless their status changes, when it becomes now.
func desiredStatus(sp *v2beta1.SpiderIPPool, f facts, blocked bool, now time.Time) v2beta1.IPPoolStatus {
	st := v2beta1.IPPoolStatus{
		AllocatedIPs:     sp.Status.AllocatedIPs,
		AllocatedIPCount: sp.Status.AllocatedIPCount,
		TotalIPCount:     ptr.To(f.total),
		Conditions:       slices.Clone(sp.Status.Conditions),
	}
	ob := &v2beta1.IPPoolOrbweaverStatus{}
	if old := sp.Status.Orbweaver; old != nil {
		ob.Allocation = old.Allocation // the grant controller's
		ob.Records = old.Records
		ob.Conditions = slices.Clone(old.Conditions)
		ob.EIPs = old.EIPs // the EIP controller's
		ob.SpareIPCount, ob.FreeIPCount = old.SpareIPCount, old.FreeIPCount
	}
	if f.recordsErr == nil {
		st.AllocatedIPCount = ptr.To(f.allocated)
		ob.SpareIPCount, ob.FreeIPCount = ptr.To(f.spare), ptr.To(f.free)
	}
	if !blocked {
		meta.RemoveStatusCondition(&ob.Conditions, v2beta1.IPPoolDeletionBlockedCondition)
	}
	at := metav1.NewTime(now.Truncate(time.Second))
	for _, c := range conditions(f, sp.Generation, blocked) {
		c.LastTransitionTime = at
		meta.SetStatusCondition(&ob.Conditions, c)
	}
	st.Orbweaver = ob
	setReady(sp, &st, nil, now)
	return st
}

// ready returns the pool's Ready condition, without transition time, for the status st
// it is to have: False with the first reason that blocks allocation, in the order of
// the reasons' declaration in the API (specErr, set when the spec does not parse,
// first), else True. Exhausted and AddressesOutsidePool do not block: a full pool is
// sound, and its pods keep their addresses.
func ready(sp *v2beta1.SpiderIPPool, st *v2beta1.IPPoolStatus, specErr error) metav1.Condition {
	c := metav1.Condition{Type: v2beta1.IPPoolReadyCondition, Status: metav1.ConditionFalse, ObservedGeneration: sp.Generation}
	var ob []metav1.Condition
	if st.Orbweaver != nil {
		ob = st.Orbweaver.Conditions
	}
	imported := meta.FindStatusCondition(ob, v2beta1.IPPoolImportedCondition)
	valid := meta.FindStatusCondition(ob, v2beta1.IPPoolRecordsValidCondition)
	switch {
	case specErr != nil:
		c.Reason, c.Message = v2beta1.IPPoolSpecInvalidReason, specErr.Error()
	case st.AllocatedIPs != nil && imported != nil && imported.Status == metav1.ConditionFalse:
		c.Reason, c.Message = imported.Reason, "SpiderPool's records (status.allocatedIPs) are not imported, so no address is handed out: "+imported.Message
	case st.AllocatedIPs != nil:
		c.Reason, c.Message = v2beta1.IPPoolImportPendingReason, "SpiderPool's records (status.allocatedIPs) are not imported yet; no address is handed out until they are"
	case valid != nil && valid.Status == metav1.ConditionFalse && valid.Reason == v2beta1.IPPoolRecordsCorruptReason:
		c.Reason, c.Message = valid.Reason, "no address is handed out while status.orbweaver.records do not decode: "+valid.Message
	case sp.DeletionTimestamp != nil:
		c.Reason, c.Message = v2beta1.IPPoolDeletingReason, "the pool is being deleted: it hands out no address"
	case ptr.Deref(sp.Spec.Disable, false):
		c.Reason, c.Message = v2beta1.IPPoolDisabledReason, "spec.disable is true: the pool hands out no new address"
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v2beta1.IPPoolServingReason, "agents allocate from the pool"
	}
	return c
}

// setReady sets the Ready condition of st (sp's next status), dated now if its status
// changes.
func setReady(sp *v2beta1.SpiderIPPool, st *v2beta1.IPPoolStatus, specErr error, now time.Time) {
	c := ready(sp, st, specErr)
	c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	meta.SetStatusCondition(&st.Conditions, c)
}

// statusChanged reports whether writing next would change anything.
func statusChanged(old, next *v2beta1.IPPoolStatus) bool {
	return !equality.Semantic.DeepEqual(old, next)
}

// turnedBad returns the conditions of next that became bad: Exhausted or
// DeletionBlocked turned True, RecordsValid turned False (from anything else, or absent).
func turnedBad(old, next []metav1.Condition) []metav1.Condition {
	var out []metav1.Condition
	for _, t := range []struct {
		typ string
		bad metav1.ConditionStatus
	}{
		{v2beta1.IPPoolExhaustedCondition, metav1.ConditionTrue},
		{v2beta1.IPPoolRecordsValidCondition, metav1.ConditionFalse},
		{v2beta1.IPPoolDeletionBlockedCondition, metav1.ConditionTrue},
	} {
		n := meta.FindStatusCondition(next, t.typ)
		if n == nil || n.Status != t.bad {
			continue
		}
		if o := meta.FindStatusCondition(old, t.typ); o != nil && o.Status == t.bad {
			continue
		}
		out = append(out, *n)
	}
	return out
}
