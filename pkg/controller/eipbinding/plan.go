// Package eipbinding is the EIP controller: it gives every pool IP held by a pod its
// own elastic public IP, per the pool's spec.orbweaver.eip, through an eip.Provider. The
// EIP belongs to the pool IP, not to the pod (docs/design/eip.md). Each binding's phase
// is written to the pool's status.orbweaver.eips before every cloud call and its result
// after, so a controller that restarts mid-operation resumes the call instead of
// repeating it; Allocate is idempotent by the token recorded first.
package eipbinding

import (
	"fmt"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// holder is the pod that holds a pool IP, as its SpiderEndpoint says.
type holder struct {
	Pod  types.NamespacedName
	UID  string
	Node string
}

// ipState is everything decide needs about one pool IP.
type ipState struct {
	// Binding is the IP's binding in the pool's status; nil when it has none.
	Binding *v2beta1.EIPBinding
	// Held: a pod's record holds the IP (a node agent's reserve does not count).
	Held bool
	// Holder is the pod, from its SpiderEndpoint; nil while the endpoint is not seen.
	Holder *holder
	// StaticID is the Static EIP mapped to the IP ("" in Auto mode or past the list).
	StaticID string
	// Outside: the IP is no longer one of the pool's addresses (spec.ips shrank).
	Outside bool
}

// op is one step of a binding.
type op int

const (
	opNone op = iota
	// opAllocate: record Allocating with a token, then Allocate (or resume one).
	opAllocate
	// opAdoptStatic: Describe the Static EIP and record it Allocated.
	opAdoptStatic
	// opAssociate: find the interface, record Associating, then Associate.
	opAssociate
	// opCheck: Describe an Associating or Unbinding EIP until the cloud settles.
	opCheck
	// opDisassociate: record Unbinding, then Disassociate.
	opDisassociate
	// opRelease: record Releasing, then Release; the binding goes after.
	opRelease
	// opSchedule: record ReleaseAfter (no cloud call).
	opSchedule
	// opForget: drop a Static binding the spec no longer maps here (never released).
	opForget
	// opNote: record the pod that now holds a bound IP on the same node (no cloud call).
	opNote
)

var opNames = [...]string{"none", "allocate", "adoptStatic", "associate", "check", "disassociate", "release", "schedule", "forget", "note"}

func (o op) String() string { return opNames[o] }

// policy is what the pool's spec asks of its EIPs, resolved once per reconcile.
type policy struct {
	// spec is nil when the pool has no EIP attribute (removed): every binding goes.
	spec *v2beta1.EIPSpec
	// releaseAfter and keep are the release strategy (Follow: 0, false); a deleted
	// pool's are Follow whatever the spec says.
	releaseAfter time.Duration
	keep         bool
	// deleting: the pool is being deleted; once no pod holds an IP its EIP goes (Static
	// ones are let go, never released) so the finalizer can come off.
	deleting bool
}

func (p policy) static() bool { return p.spec != nil && p.spec.Mode == v2beta1.EIPStatic }

// decide returns the next step of one IP's binding. It is the whole state machine:
//
//	(none) ─allocate→ Allocating ─→ Allocated ─associate→ Associating ─check→ Bound
//	Bound/Associating ─disassociate→ Unbinding ─check→ Allocated ─release→ Releasing ─→ (none)
//
// A binding is wanted while a pod holds the IP and the spec gives the IP an EIP of the
// binding's kind (Auto, or the same Static ID). A pod moved to another node is unbound
// and bound again on its new interface.
func decide(s ipState, p policy, now time.Time) op {
	b := s.Binding
	wantAny := p.spec != nil && s.Held && (!p.static() || s.StaticID != "")
	if b == nil {
		switch {
		case !wantAny || s.Holder == nil:
			return opNone
		case p.static():
			return opAdoptStatic
		default:
			return opAllocate
		}
	}
	// This binding is the one the spec wants for the IP: the same cloud, the same kind,
	// the same ID, an address still of the pool.
	fits := p.spec != nil && b.Provider == p.spec.Provider && b.Static == p.static() &&
		(!b.Static || b.AllocationID == s.StaticID) && !s.Outside
	wanted := wantAny && fits
	moved := s.Holder != nil && b.Node != "" && s.Holder.Node != b.Node
	switch b.Phase {
	case v2beta1.EIPAllocating:
		if !wanted && b.Message != "" {
			// The last Allocate failed and nobody wants the EIP now: stop asking. Had
			// the cloud made one after all, its tags let the orphan collector find it.
			return opForget
		}
		return opAllocate // resume: learn the ID, even of an EIP no longer wanted
	case v2beta1.EIPReleasing:
		return opRelease
	case v2beta1.EIPUnbinding:
		return opCheck
	case v2beta1.EIPAssociating, v2beta1.EIPBound:
		if !wanted || moved {
			return opDisassociate
		}
		if b.Phase == v2beta1.EIPAssociating {
			return opCheck
		}
		if s.Holder != nil && b.Pod != s.Holder.Pod.String() {
			return opNote
		}
		return opNone
	}
	// Allocated: the EIP exists, bound to nothing.
	switch {
	case wanted && s.Holder != nil:
		return opAssociate
	case wanted:
		return opNone // held, but the endpoint is not seen yet
	case b.Static:
		if fits && !p.deleting {
			return opNone // a Static EIP waits for the next pod on its IP
		}
		return opForget
	case !fits || !p.keep:
		return opRelease
	case p.releaseAfter == 0:
		return opNone // Never
	case b.ReleaseAfter == nil:
		return opSchedule
	case !now.Before(b.ReleaseAfter.Time):
		return opRelease
	}
	return opNone
}

// staticMap maps each Static EIP to a pool IP: the i-th EIP to the i-th address of the
// pool (spec.ips minus excludeIPs, ascending), so the mapping never depends on which
// IPs are in use. IPs past the list get no EIP.
func staticMap(total ip.Set, ids []string) map[netip.Addr]string {
	out := make(map[netip.Addr]string, len(ids))
	for i, id := range ids {
		a, ok := total.Nth(ip.CountFromUint64(uint64(i)))
		if !ok {
			break
		}
		out[a] = id
	}
	return out
}

// callsCloud tells whether a step makes cloud calls.
func (o op) callsCloud() bool {
	return o != opNone && o != opSchedule && o != opForget && o != opNote
}

// step is one IP's planned step and what it works on.
type step struct {
	op   op
	addr netip.Addr
	st   ipState
	// pol is the policy the step was decided by; requested: by a pod's annotations.
	pol       policy
	requested bool
	// waitUntil is set on a step that failed lately: it is not run before then, and err
	// is its last error.
	waitUntil time.Time
	// before is the binding as recorded ahead of the cloud call (nil: none).
	before *v2beta1.EIPBinding
	// after is the binding once the call is done (nil: the binding goes).
	after *v2beta1.EIPBinding
	err   error
	// events to post once the result is recorded.
	events []event
	// cond and note, on a step that calls nothing (opNone), are the EIPReady reason
	// and message it sets: a pod's bad annotations, a refused request, no Static EIP.
	cond, note string
	// refused is set on the step of a pod whose request is refused.
	refused *refusalEntry
}

// policyOf is the policy of a spec; a deleted pool's EIPs follow its IPs out.
func policyOf(spec *v2beta1.EIPSpec, deleting bool) policy {
	pol := policy{spec: spec}
	if spec != nil && spec.ReleaseStrategy != nil {
		if after, keep, err := spec.ReleaseStrategy.ReclaimAfter(); err == nil {
			pol.releaseAfter, pol.keep = after, keep
		}
	}
	if deleting {
		pol.releaseAfter, pol.keep, pol.deleting = 0, false, true
	}
	return pol
}

// observedIP is one pool IP as a reconcile found it: its state, and what the pod
// holding it asks of EIPs and whether that is honoured.
type observedIP struct {
	addr netip.Addr
	st   ipState
	// badRequest is why the holder's EIP annotations do not parse (nil: they do, or it
	// has none).
	badRequest error
	// req is the holder's request by annotation; nil when it asks nothing.
	req *podRequest
	// refused is set when req is not honoured; authErr when deciding it failed.
	refused *refusalEntry
	authErr error
	// lastFailure is the IP's last failed step, if it failed.
	lastFailure *failure
}

// planInput is everything plan decides from, observed once per reconcile.
type planInput struct {
	pool string
	// pol is the pool's own policy.
	pol      policy
	deleting bool
	// defaultProvider is the cloud of a pod's request in a pool without EIPs.
	defaultProvider string
	// ips are the IPs held or with a binding, ascending.
	ips []observedIP
	now time.Time
	// retryInterval: a step that failed is not run again before it has passed.
	retryInterval time.Duration
}

// plan decides the next step of every IP that is held or has a binding, and returns
// the refused requests by pod ("namespace/name"). The policy is the pool's, or, for an
// IP whose pod asks by annotation, the pod's over the pool's; an EIP a pod asked for
// keeps the pod's strategy once the pod is gone. An IP may get several steps: a note
// for its pod's bad annotations or refused request, then its binding's step.
func plan(in planInput) (steps []step, refused map[string]refusalEntry) {
	refused = map[string]refusalEntry{}
	for _, o := range in.ips {
		a, s := o.addr, o.st
		ipPol, requested := in.pol, false
		var ref *refusalEntry
		if s.Holder != nil {
			key := s.Holder.Pod.String()
			if o.badRequest != nil {
				msg := fmt.Sprintf("%v; the pool's EIP settings apply until the annotations are fixed", o.badRequest)
				steps = append(steps, step{op: opNone, addr: a, st: s, cond: v2beta1.EIPInvalidRequestReason, note: fmt.Sprintf("pod %s: %s", key, msg),
					events: []event{{pod: s.Holder, warn: true, reason: ReasonFailed, msg: msg}}})
			}
			if o.req != nil {
				spec := effectiveSpec(in.pol.spec, *o.req, in.defaultProvider)
				if o.authErr != nil {
					steps = append(steps, step{op: opNone, addr: a, st: s, err: o.authErr})
					continue
				}
				ref = o.refused
				if ref == nil {
					ipPol, requested = policyOf(spec, in.deleting), true
					if o.req.id != "" {
						s.StaticID = o.req.id
					}
				} else {
					refused[key] = *ref
					steps = append(steps, step{op: opNone, addr: a, st: s, cond: v2beta1.EIPRequestRefusedReason, refused: ref,
						note: fmt.Sprintf("pod %s: %s: %s", key, ref.reason, ref.msg)})
				}
			}
		}
		if !requested && s.Binding != nil && s.Binding.Requested {
			// The pod that asked is gone (or no longer asks): the binding follows its
			// own strategy, wanted by nobody.
			ipPol = policyOf(bindingSpec(s.Binding), in.deleting)
			s.Held, s.StaticID = false, ""
		}
		next := decide(s, ipPol, in.now)
		if ref != nil && (next == opAllocate || next == opAdoptStatic || next == opAssociate) {
			// A refused pod gets no EIP: nothing is allocated, adopted or bound for it.
			// What is under way (unbinding, releasing) goes on.
			next = opNone
		}
		switch {
		case next != opNone:
			st := step{op: next, addr: a, st: s, pol: ipPol, requested: requested}
			if f := o.lastFailure; f != nil && next.callsCloud() && in.now.Sub(f.at) < in.retryInterval {
				st.err, st.waitUntil = f.err, f.at.Add(in.retryInterval)
			}
			steps = append(steps, st)
		case ref == nil && ipPol.static() && s.Held && s.StaticID == "" && s.Holder != nil && s.Binding == nil:
			msg := fmt.Sprintf("IP %s of SpiderIPPool %s has no EIP: the pool lists %d Static EIPs for its first %d addresses; list more EIPs in spec.orbweaver.eip.static or shrink spec.ips",
				a, in.pool, len(in.pol.spec.Static), len(in.pol.spec.Static))
			steps = append(steps, step{op: opNone, addr: a, st: s, cond: v2beta1.EIPStaticExhaustedReason, note: msg,
				events: []event{{pod: s.Holder, warn: true, reason: ReasonNoStaticEIP, msg: msg}}})
		}
	}
	return steps, refused
}

// localAfter is the binding after a step that needs no cloud call (opSchedule,
// opForget, opNote); nil when the binding goes.
func localAfter(s step, now time.Time) *v2beta1.EIPBinding {
	if s.op == opForget {
		return nil
	}
	nb := s.st.Binding.DeepCopy()
	switch s.op {
	case opSchedule:
		nb.ReleaseAfter = &metav1.Time{Time: now.Add(s.pol.releaseAfter).Truncate(time.Second)}
	case opNote:
		nb.Pod = s.st.Holder.Pod.String()
	}
	return nb
}

// intervals are how soon a pool is looked at again, by what it waits for.
type intervals struct {
	poll, retry, verify time.Duration
}

// requeueAfter says when to look at the pool again, given its bindings as written and
// this reconcile's steps: soon while the cloud settles a binding, at the earliest
// scheduled release, after the retry interval on an error; 0 when nothing is awaited.
func requeueAfter(bindings []v2beta1.EIPBinding, steps []step, now time.Time, iv intervals) time.Duration {
	var after time.Duration
	soonest := func(d time.Duration) {
		if d > 0 && (after == 0 || d < after) {
			after = d
		}
	}
	for _, s := range steps {
		switch {
		case !s.waitUntil.IsZero():
			soonest(max(s.waitUntil.Sub(now), time.Millisecond))
		case s.err != nil:
			soonest(iv.retry)
		case s.refused != nil && s.refused.id != "":
			// An EIP named by ID is looked at again: a pool may list it, or an
			// administrator tag it, meanwhile.
			soonest(iv.retry)
		}
	}
	for _, b := range bindings {
		if b.Phase == v2beta1.EIPBound && iv.verify > 0 {
			soonest(iv.verify)
		}
		switch b.Phase {
		case v2beta1.EIPAllocating, v2beta1.EIPAssociating, v2beta1.EIPUnbinding, v2beta1.EIPReleasing:
			soonest(iv.poll)
		}
		if b.ReleaseAfter != nil {
			// At most the retry interval, so a clock that jumped (a resumed VM) is
			// caught up.
			soonest(min(max(b.ReleaseAfter.Sub(now), time.Second), iv.retry))
		}
	}
	return after
}
