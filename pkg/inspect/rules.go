package inspect

import (
	"fmt"
	"net/netip"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// ProblemKind names something wrong with an address in a pool (`ipam check`).
type ProblemKind string

// The problems classify finds. docs/reference/kubectl-orbweaver.md says what to do
// about each; Check's fix says it for each case.
const (
	// DoubleOwner: two pod instances hold one address (two endpoints, or a record of
	// one pod and the endpoint of another).
	DoubleOwner ProblemKind = "DoubleOwner"
	// Leak: an address held for a pod that no longer exists or has finished, or by a
	// node that no longer exists. The note says whether GC frees it.
	Leak ProblemKind = "Leak"
	// OrphanEndpoint: an endpoint names an address that nothing else holds where it
	// must: a pool that does not exist, or (Records mode) a pool whose records do not
	// hold it, so the pool may hand it to another pod.
	OrphanEndpoint ProblemKind = "OrphanEndpoint"
	// RecordWithoutEndpoint: the records hold it for a pod that exists but whose
	// endpoint does not name it (an ADD between its two writes, or an imported record).
	RecordWithoutEndpoint ProblemKind = "RecordWithoutEndpoint"
	// OutsidePool: held, though not in the pool's spec.ips (removed since), or outside
	// the subnet of the pool the endpoint names.
	OutsidePool ProblemKind = "OutsidePool"
	// ExcludedButHeld: held, though in spec.excludeIPs or a SpiderReservedIP (since).
	ExcludedButHeld ProblemKind = "ExcludedButHeld"
	// GrantedToOtherNode: held by a pod on one node, granted to another node, whose
	// agent does not see the pod's endpoint and may hand the address out again.
	GrantedToOtherNode ProblemKind = "GrantedToOtherNode"
	// NotGranted: (Grants mode) held by a pod, granted to no node and in no record: the
	// grant controller may grant it to a node that hands it to another pod.
	NotGranted ProblemKind = "NotGranted"
	// Unreadable: the pool's spec, status.orbweaver.records or status.allocatedIPs do
	// not parse; nothing is allocated from it until they do.
	Unreadable ProblemKind = "Unreadable"
)

// note adds a note that is not a problem.
func (h *Holding) note(s string) { h.Notes = append(h.Notes, s) }

// flag adds a problem and its note.
func (h *Holding) flag(k ProblemKind, note string) {
	h.Notes = append(h.Notes, note)
	h.findings = append(h.findings, finding{k, note})
	if !slices.Contains(h.Problems, k) {
		h.Problems = append(h.Problems, k)
	}
}

// finding is a problem and the note that says it.
type finding struct {
	kind ProblemKind
	note string
}

// holdsPod reports whether the holding is a pod's (not a node's, not about the pool).
func (h *Holding) holdsPod() bool {
	return !h.pool && (h.State == StateHeld || h.State == StateSpiderPool)
}

// classify says what holds a in the pool, and what is odd about it: the one set of
// rules behind WhoHolds, Summarize, Check and PlanRelease. nil when a is not in the
// pool's spec.ips and nothing holds it there. The pool's subnet must contain a.
func (v *view) classify(pv *poolView, a netip.Addr) []Holding {
	base := Holding{Pool: pv.sp.Name, Mode: pv.mode}
	if e, ok := pv.eips[a]; ok {
		base.EIP, base.EIPPhase = e.PublicIP, string(e.Phase)
	}
	reserved := pv.reserved.Contains(a)

	var out []Holding
	// SpiderPool's own records, not imported yet.
	if pv.foreignErr != nil {
		h := base
		h.State, h.Source, h.pool = StateSpiderPool, SourceAllocatedIPs, true
		h.flag(Unreadable, pv.foreignErr.Error())
		out = append(out, h)
	}
	for _, f := range pv.foreign[a] {
		h := base
		h.State, h.Source, h.Namespace, h.Pod, h.PodUID = StateSpiderPool, SourceAllocatedIPs, f.Namespace, f.Name, f.UID
		h.podKey = records.PodKey(f.UID)
		h.note("SpiderPool's record, not imported yet: see the pool's SpiderPoolRecordsImported condition")
		v.podFate(&h, "orbweaver imports it, then garbage collection frees it")
		out = append(out, h)
	}
	// The pods' endpoints.
	for _, se := range pv.endpoints[a] {
		h := base
		v.endpointHolding(&h, se, pv.sp.Name, a, pv)
		out = append(out, h)
	}
	held := slices.ContainsFunc(out, func(h Holding) bool { return h.holdsPod() })
	// The records (Records mode; in Grants mode only those not moved to grants yet).
	o, recorded := pv.records[a]
	switch {
	case pv.recordsErr != nil:
		h := base
		h.State, h.Source, h.pool = StateHeld, SourceRecords, true
		h.flag(Unreadable, "status.orbweaver.records do not decode: "+pv.recordsErr.Error())
		out = append(out, h)
	case recorded:
		out = v.recordHolding(out, base, o, held)
	}
	accounted := held || recorded
	// The node grants.
	if node, ok := pv.grants[a]; ok {
		if !accounted {
			h := base
			h.State, h.Source, h.Node = StateSpare, SourceGrant, node
			h.note("granted to node " + node + ", which hands it to its next pod")
			if !v.nodes[node] {
				h.gcFrees = true
				h.flag(Leak, "node "+node+" no longer exists: the grant controller takes the grant back once the node has been gone for the gone delay")
			}
			out = append(out, h)
		} else {
			for i := range out {
				if out[i].State == StateHeld && out[i].Node != "" && out[i].Node != node {
					out[i].flag(GrantedToOtherNode, fmt.Sprintf("granted to node %s, not the pod's node", node))
				}
			}
		}
	} else if pv.mode == string(v2beta1.AllocationGrants) && !recorded {
		for i := range out {
			if out[i].Source == SourceEndpoint {
				out[i].flag(NotGranted, "granted to no node: the grant controller may grant it to a node whose agent hands it to another pod")
			}
		}
	}
	// Records mode: the records are what the allocator goes by.
	if pv.mode == string(v2beta1.AllocationRecords) && pv.recordsErr == nil && !recorded && len(pv.foreign[a]) == 0 && pv.foreignErr == nil {
		for i := range out {
			if out[i].Source == SourceEndpoint {
				out[i].flag(OrphanEndpoint, "the pool's records do not hold it: the pool may hand it to another pod")
			}
		}
	}
	switch {
	case len(out) == 0 && !pv.inIPs.Contains(a):
		return nil // not the pool's, and nothing holds it there
	case len(out) == 0 && (!pv.usable.Contains(a) || reserved):
		h := base
		h.State = StateExcluded
		if reserved {
			h.Notes = []string{"a SpiderReservedIP names it"}
		} else {
			h.Notes = []string{"in spec.excludeIPs"}
		}
		return []Holding{h}
	case len(out) == 0:
		h := base
		h.State = StateFree
		return []Holding{h}
	}
	addressRules(out, pv.inIPs.Contains(a), pv.usable.Contains(a) && !reserved)
	return out
}

// addressRules adds the rules over all the holdings of one address: more than one pod
// instance, and an address held that new allocations may not take.
func addressRules(out []Holding, inIPs, usable bool) {
	pods := map[uint64]bool{}
	for _, h := range out {
		if h.holdsPod() && h.podKey != 0 {
			pods[h.podKey] = true
		}
	}
	for i := range out {
		h := &out[i]
		if h.pool {
			continue
		}
		if len(pods) > 1 && h.holdsPod() {
			h.flag(DoubleOwner, fmt.Sprintf("one of %d holders of the address", len(pods)))
		}
		switch {
		case usable:
		case !h.holdsPod():
			h.note("not a usable address of the pool any more: its node gives it back")
		case !inIPs:
			h.flag(OutsidePool, "held, though not in the pool's spec.ips (removed since)")
		default:
			h.flag(ExcludedButHeld, "held, though not a usable address of the pool (excluded or reserved since)")
		}
	}
}

// endpointHolding fills h from the endpoint that names a in the named pool (pv: that
// pool, nil when it does not exist).
func (v *view) endpointHolding(h *Holding, se *v2beta1.SpiderEndpoint, pool string, a netip.Addr, pv *poolView) {
	cur := &se.Status.Current
	h.State, h.Source, h.Namespace, h.Pod, h.PodUID, h.Node = StateHeld, SourceEndpoint, se.Namespace, se.Name, cur.UID, cur.Node
	h.Interface = ipam.EndpointInterface(se, pool, a)
	if o := cur.Orbweaver; o != nil {
		h.ContainerID = o.ContainerID
	}
	t := se.CreationTimestamp.Time
	h.Since = &t
	h.podKey, h.endpoint = records.PodKey(cur.UID), se
	if v.podFate(h, "") {
		return
	}
	// Gone. A StatefulSet's endpoint outlives its pods while the StatefulSet wants the
	// pod (GC rule 15), then goes per the reclaim policy.
	if av := ipam.OwnerAPIVersionOf(se.Annotations); len(se.OwnerReferences) == 0 && ipam.GroupOf(av) != "apps" && se.Status.OwnerControllerName != "" {
		// A kind added by --stateful-workload-kinds: the CLI does not read those.
		h.kept = fmt.Sprintf("kept for %s %s %s/%s (a kind added by --stateful-workload-kinds): garbage collection frees it per the reclaim policy once its spec.replicas no longer covers pod %s",
			av, se.Status.OwnerControllerType, se.Namespace, se.Status.OwnerControllerName, se.Name)
		h.note(h.kept)
		return
	}
	if se.Status.OwnerControllerType == ipam.KindStatefulSet && se.Status.OwnerControllerName != "" {
		name := se.Status.OwnerControllerName
		key := se.Namespace + "/" + name
		ordinal, ok := ipam.StatefulSetOrdinal(se.Name, name)
		if st := v.sets[key]; ok && st != nil && st.DeletionTimestamp == nil && wantsOrdinal(st, ordinal) {
			h.kept = fmt.Sprintf("kept for StatefulSet %s, which still wants pod %s: its next instance gets the address back", key, se.Name)
			h.note(h.kept)
			return
		}
		st := v.sets[key]
		fate, frees := reclaimFate(se, pv, st == nil || st.DeletionTimestamp != nil)
		h.gcFrees = frees
		h.flag(Leak, fmt.Sprintf("the pod no longer exists and StatefulSet %s no longer wants it: %s", key, fate))
		return
	}
	h.gcFrees = true
	h.flag(Leak, "the pod no longer exists: garbage collection frees it and deletes the endpoint")
}

// podFate looks up the pod instance of h (h.podKey) and reports whether it exists;
// one that has finished is a Leak that GC frees. gone, when not empty, flags a pod that
// no longer exists as a Leak with that as GC's part.
func (v *view) podFate(h *Holding, gone string) bool {
	p := v.pods[h.podKey]
	if p == nil {
		h.podState = "gone"
		if gone != "" {
			h.gcFrees = true
			h.flag(Leak, "the pod no longer exists: "+gone)
		}
		return false
	}
	switch p.Status.Phase {
	case corev1.PodSucceeded, corev1.PodFailed:
		h.podState = string(p.Status.Phase)
		h.gcFrees = true
		h.flag(Leak, fmt.Sprintf("pod %s/%s has %s: garbage collection frees it", p.Namespace, p.Name, p.Status.Phase))
	default:
		h.live = true
		h.podState = "on node " + orUnknown(p.Spec.NodeName)
		if p.DeletionTimestamp != nil {
			h.podState = "terminating on node " + orUnknown(p.Spec.NodeName)
		}
	}
	return true
}

// recordHolding adds what a record says: a node's reserve, or a pod (whose endpoint,
// when it has one, was added already).
func (v *view) recordHolding(out []Holding, base Holding, o records.Owner, held bool) []Holding {
	if o.IsReserve() {
		h := base
		h.State, h.Source, h.owner = StateSpare, SourceReserve, o
		h.Node = v.nodeOf[o]
		switch {
		case v.nodes[h.Node]:
			h.note("in the reserve of node " + h.Node)
		case !held:
			h.gcFrees = true
			h.flag(Leak, "in the reserve of "+goneNode(h.Node)+": garbage collection frees it (NodeGone)")
		default:
			h.note("in the reserve of " + goneNode(h.Node) + ", handed to the pod: garbage collection moves it to the pod")
		}
		return append(out, h)
	}
	for i := range out {
		if out[i].Source == SourceEndpoint && out[i].podKey == o.Pod {
			out[i].owner = o
			return out // the endpoint said it
		}
	}
	h := base
	h.State, h.Source, h.owner, h.podKey = StateHeld, SourceRecords, o, o.Pod
	if p := v.pods[o.Pod]; p != nil {
		h.Namespace, h.Pod, h.PodUID, h.Node = p.Namespace, p.Name, string(p.UID), p.Spec.NodeName
	}
	gone := "garbage collection frees it"
	if slices.ContainsFunc(out, func(e Holding) bool { return e.Source == SourceEndpoint && (e.live || e.kept != "") }) {
		// GC rule 10: an endpoint that keeps its pod explains the record (a pod
		// re-created between the agent's two writes).
		gone = "garbage collection keeps it while the endpoint that names it keeps its pod"
	}
	switch {
	case !v.podFate(&h, ""):
		h.gcFrees = gone == "garbage collection frees it"
		h.flag(Leak, "recorded for a pod that no longer exists: "+gone)
	case h.live && !held:
		h.flag(RecordWithoutEndpoint, "recorded with no SpiderEndpoint (an ADD between its two writes, or a SpiderPool record imported without one)")
	}
	if held {
		h.note("the record's pod is not the endpoint's")
	}
	return append(out, h)
}

// strayHoldings are the holdings of endpoints naming a in a pool that cannot hold it
// (pool "" for every pool, else only that one).
func (v *view) strayHoldings(a netip.Addr, pool string) []Holding {
	var out []Holding
	for _, st := range v.strays[a] {
		if pool != "" && st.pool != pool {
			continue
		}
		pv := v.byName[st.pool]
		h := Holding{Pool: st.pool}
		if pv != nil {
			h.Mode = pv.mode
		}
		v.endpointHolding(&h, st.se, st.pool, a, pv)
		switch {
		case pv == nil:
			h.flag(OrphanEndpoint, "the endpoint names pool "+st.pool+", which does not exist")
		case pv.subnetErr != nil:
			h.flag(Unreadable, "the pool's spec does not parse: "+pv.subnetErr.Error())
		default:
			h.flag(OutsidePool, "outside the pool's subnet "+pv.subnet.String())
		}
		out = append(out, h)
	}
	return out
}

// reclaimFate says what GC does with the addresses of a StatefulSet's endpoint whose
// StatefulSet no longer wants its pod: the endpoint's reclaim policy, else its pool's,
// else the controller's default (--gc-default-reclaim-policy, Follow unless set).
// setDeleted tells whether the StatefulSet itself is gone, which Reserved depends on.
func reclaimFate(se *v2beta1.SpiderEndpoint, pv *poolView, setDeleted bool) (string, bool) {
	var p v2beta1.ReclaimPolicy
	switch {
	case se.Annotations[ipam.AnnoReclaimPolicy] != "":
		p = v2beta1.ReclaimPolicy(se.Annotations[ipam.AnnoReclaimPolicy])
	case pv != nil && pv.sp.Spec.Orbweaver != nil && pv.sp.Spec.Orbweaver.ReclaimPolicy != nil:
		p = *pv.sp.Spec.Orbweaver.ReclaimPolicy
	default:
		return "garbage collection frees it per the controller's default reclaim policy (Follow: at once)", true
	}
	after, keep, err := p.ReclaimAfterFor(setDeleted)
	switch {
	case err != nil:
		return fmt.Sprintf("garbage collection keeps it: %v", err), false
	case p == v2beta1.ReclaimReserved && keep:
		return "garbage collection keeps it while the StatefulSet exists (reclaim policy Reserved)", false
	case p == v2beta1.ReclaimReserved:
		return "garbage collection frees it: the StatefulSet is deleted (reclaim policy Reserved)", true
	case !keep:
		return "garbage collection frees it (reclaim policy Follow)", true
	case after == 0:
		return "garbage collection never frees it (reclaim policy Never)", false
	}
	return fmt.Sprintf("garbage collection frees it %s after the pod went (reclaim policy %s)", after, p), true
}

// wantsOrdinal is GC's test of a StatefulSet (pkg/controller/gc): start <= ordinal <
// start+replicas, start from spec.ordinals.
func wantsOrdinal(st *appsv1.StatefulSet, ordinal int) bool {
	var start int32
	if st.Spec.Ordinals != nil {
		start = st.Spec.Ordinals.Start
	}
	return ipam.StatefulSetWantsOrdinal(st.Spec.Replicas, start, ordinal)
}

func goneNode(name string) string {
	if name == "" {
		return "a node that no longer exists (no Node matches)"
	}
	return "node " + name + ", which no longer exists"
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown: no Node matches)"
	}
	return s
}
