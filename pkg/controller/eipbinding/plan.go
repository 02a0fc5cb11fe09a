// Package eipbinding is the EIP controller: it gives every pool IP held by a pod its
// own elastic public IP, per the pool's spec.orbweaver.eip, through an eip.Provider. The
// EIP belongs to the pool IP, not to the pod (docs/design/eip.md). Each binding's phase
// is written to the pool's status.orbweaver.eips before every cloud call and its result
// after, so a controller that restarts mid-operation resumes the call instead of
// repeating it; Allocate is idempotent by the token recorded first.
package eipbinding

import (
	"net/netip"
	"time"

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
