package ipam

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Garbage collection, the decision core. PlanGC looks at one snapshot of pods, nodes,
// SpiderEndpoints and pools and says which records to release, which endpoints to
// delete and when to look again. It does no I/O and reads no clock: the controller
// lists the objects, fills these plain values and writes the decisions.
// docs/design/gc.md gives the rules as a table and the controller's side.

// GCReason says why GC frees an address or deletes an endpoint; it is the label of the
// controller's metrics and the reason of its events.
type GCReason string

// The reasons of GC decisions.
const (
	// GCPodGone: no pod has the UID that holds the address (deleted), and no
	// retention applies.
	GCPodGone GCReason = "PodGone"
	// GCPodUIDChanged: a pod of the same namespace and name exists with another UID;
	// the one that held the address is gone.
	GCPodUIDChanged GCReason = "PodUIDChanged"
	// GCPodFinished: the pod holding the address has succeeded or failed.
	GCPodFinished GCReason = "PodFinished"
	// GCTerminatingPastGrace: the pod is being deleted and its grace period, plus
	// GCConfig.AdditionalGraceDelay, is over.
	GCTerminatingPastGrace GCReason = "TerminatingPastGrace"
	// GCStatefulSetScaledDown: a retained StatefulSet pod is gone and its ordinal is
	// no longer within the StatefulSet's replicas (reclaim policy Follow).
	GCStatefulSetScaledDown GCReason = "StatefulSetScaledDown"
	// GCStatefulSetDeleted: a retained StatefulSet pod is gone and its StatefulSet
	// no longer exists (reclaim policy Follow).
	GCStatefulSetDeleted GCReason = "StatefulSetDeleted"
	// GCReclaimExpired: a retained StatefulSet pod is gone, the StatefulSet no longer
	// wants its ordinal, and the reclaim policy's duration has passed since.
	GCReclaimExpired GCReason = "ReclaimExpired"
	// GCOrphanRecord: a pod's record that no pod and no endpoint explains.
	GCOrphanRecord GCReason = "OrphanRecord"
	// GCNodeGone: an address a deleted node's agent held in reserve.
	GCNodeGone GCReason = "NodeGone"
)

// GCReasons returns every reason, for metrics that declare their label values.
func GCReasons() []GCReason {
	return []GCReason{
		GCPodGone, GCPodUIDChanged, GCPodFinished, GCTerminatingPastGrace,
		GCStatefulSetScaledDown, GCStatefulSetDeleted, GCReclaimExpired,
		GCOrphanRecord, GCNodeGone,
	}
}

// ErrInvalidReclaimPolicy marks a reclaim policy GC cannot read; GC then keeps the
// addresses it governs, as Never would, and reports it in GCPlan.Warnings.
var ErrInvalidReclaimPolicy = errors.New("invalid reclaim policy")

// PodPhase is a pod's status.phase; the values are core/v1's, so a caller converts
// with PodPhase(pod.Status.Phase).
type PodPhase string

// Pod phases.
const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
	PodUnknown   PodPhase = "Unknown"
)

// StatefulSetMember says what a StatefulSet wants of one pod identity (a name with an
// ordinal). The caller computes InRange from the StatefulSet's replicas and
// spec.ordinals.start.
type StatefulSetMember struct {
	// Name is the StatefulSet's name, in the pod's namespace.
	Name string
	// Ordinal is the pod's ordinal (the number its name ends with).
	Ordinal int
	// Exists is false once the StatefulSet is deleted.
	Exists bool
	// InRange is true while start <= Ordinal < start+replicas.
	InRange bool
}

// Wanted reports whether the StatefulSet still wants a pod with this ordinal: while it
// does, the pod's addresses are kept whatever happens to the pod.
func (m StatefulSetMember) Wanted() bool { return m.Exists && m.InRange }

// GCPod is what GC needs of a pod.
type GCPod struct {
	Namespace, Name string
	UID             string
	Phase           PodPhase
	// Node is spec.nodeName; empty while unscheduled.
	Node string
	// DeletionTimestamp is metadata.deletionTimestamp; zero while the pod is not being
	// deleted. The API server sets it to the deletion request's time plus the pod's grace
	// period: when the kubelet gives up waiting for the containers.
	DeletionTimestamp time.Time
	// ForceDeleted is set when metadata.deletionGracePeriodSeconds is 0. The API server
	// removes such a pod in the same request, but writes the deletion timestamp first,
	// so a watch may show it for a moment: GC treats the pod as already gone.
	ForceDeleted bool
	// StatefulSet is set when a StatefulSet controls the pod.
	StatefulSet *StatefulSetMember
}

// GCNode is a node that exists. A node not listed in GCInput.Nodes does not.
type GCNode struct {
	Name  string
	Ready bool
}

// GCAddress is one address a SpiderEndpoint names.
type GCAddress struct {
	NIC  string
	Pool string
	Addr netip.Addr
	// Owner is the record owner the endpoint stands for: records.OwnerOf(pod UID,
	// container ID, NIC).
	Owner records.Owner
}

// GCEndpoint is what GC needs of a SpiderEndpoint; GCEndpointOf fills it from the
// object, except StatefulSet and ReclaimPolicy.
type GCEndpoint struct {
	Namespace, Name string
	// ObjectUID and ResourceVersion are the endpoint's own metadata, which a deletion
	// carries as its preconditions.
	ObjectUID       string
	ResourceVersion string
	// PodUID is status.current.uid: the pod instance the addresses belong to.
	PodUID string
	// Node is status.current.node (for messages; decisions go by the pod's node).
	Node      string
	Addresses []GCAddress
	// StatefulSet is set when the endpoint is retained for a StatefulSet pod: it
	// outlives the pod, and the pod keeps its addresses while the StatefulSet wants the
	// ordinal. The caller sets it from the endpoint's ownerControllerType/Name and the
	// StatefulSet, when StatefulSet retention is on.
	StatefulSet *StatefulSetMember
	// ReclaimPolicy overrides the policy of the endpoint's pools, when set.
	ReclaimPolicy *v2beta1.ReclaimPolicy
}

// Key is the endpoint's namespace/name, which is also its pod's.
func (e *GCEndpoint) Key() string { return e.Namespace + "/" + e.Name }

// GCPool is a pool as GC sees it.
type GCPool struct {
	Pool Pool
	// ReclaimPolicy is the pool's spec.orbweaver.reclaimPolicy; nil for the
	// configured default.
	ReclaimPolicy *v2beta1.ReclaimPolicy
}

// GCConfig is the controller's GC configuration. DefaultGCConfig gives SpiderPool's
// defaults; the zero value releases no terminating pod and waits for nothing.
type GCConfig struct {
	// ReleaseTerminatingOnReadyNode releases the addresses of a pod stuck terminating on
	// a Ready node once its grace period (plus AdditionalGraceDelay) is over.
	ReleaseTerminatingOnReadyNode bool
	// ReleaseTerminatingOnNotReadyNode does the same on a node that is NotReady or gone
	// (a node down: its pods cannot finish terminating).
	ReleaseTerminatingOnNotReadyNode bool
	// AdditionalGraceDelay is added to a terminating pod's grace period.
	AdditionalGraceDelay time.Duration
	// DefaultReclaimPolicy applies to pools that set none; empty means Follow.
	DefaultReclaimPolicy v2beta1.ReclaimPolicy
	// GoneDelay is how long a pod UID (or a node) must have been missing from the
	// inputs before GC frees what it held. It covers the lag between the caller's
	// reads: a pod cache that does not show yet a pod whose records and endpoint the
	// pool and endpoint reads already show. It must exceed that lag.
	GoneDelay time.Duration
}

// DefaultGCConfig returns SpiderPool's defaults (terminating pods released on Ready and
// NotReady nodes, no additional grace delay, StatefulSet addresses released with the
// pod) and a GoneDelay of 30 seconds.
func DefaultGCConfig() GCConfig {
	return GCConfig{
		ReleaseTerminatingOnReadyNode:    true,
		ReleaseTerminatingOnNotReadyNode: true,
		DefaultReclaimPolicy:             v2beta1.ReclaimFollow,
		GoneDelay:                        30 * time.Second,
	}
}

// GCInput is one snapshot for PlanGC. Order does not matter.
type GCInput struct {
	Config    GCConfig
	Pods      []GCPod
	Nodes     []GCNode
	Endpoints []GCEndpoint
	Pools     []GCPool
	// EndedSince is the previous plan's EndedSince: when GC first saw each record
	// owner ended, keyed by the digest records keep (records.Owner.Pod: a pod UID's
	// PodKey, or a node reserve's). The caller keeps it in memory between runs; losing
	// it (a restart, a new leader) only delays releases, never hastens them.
	EndedSince map[uint64]time.Time
}

// GCRelease frees Addr in Pool if, and only if, Owner still holds it: the caller
// applies it with Pool.Release(Addr, Owner) (or GCPlan.Apply) on a fresh read of the
// pool, so an address that changed hands since the snapshot is left alone.
type GCRelease struct {
	Pool   string
	Addr   netip.Addr
	Owner  records.Owner
	Reason GCReason
	// Pod is the namespace/name of the pod the address was for, when known.
	Pod string
	// Node is the deleted node, for GCNodeGone.
	Node string
}

// GCRebind moves an address from a deleted node's reserve to the pod whose endpoint
// names it (handed out by that node's agent and not yet recorded under the pod), so
// that the pod, a StatefulSet's for instance, keeps it after the node is gone. The
// caller applies it with Pool.Rebind(Addr, From, To).
type GCRebind struct {
	Pool     string
	Addr     netip.Addr
	From, To records.Owner
	Reason   GCReason
	Pod      string
	Node     string
}

// GCEndpointDeletion deletes a SpiderEndpoint whose pod's addresses GC releases. The
// caller deletes with ObjectUID and ResourceVersion as preconditions, so an endpoint
// an agent rewrote since the snapshot (a new pod of the same name) stays.
type GCEndpointDeletion struct {
	Namespace, Name string
	ObjectUID       string
	ResourceVersion string
	PodUID          string
	Reason          GCReason
}

// GCRecheck is a decision not due yet: at At, GC will release (or rebind) for Reason
// unless the inputs change. Pool and Addr are empty for an endpoint deletion.
type GCRecheck struct {
	At     time.Time
	Reason GCReason
	Pod    string
	Pool   string
	Addr   netip.Addr
}

// GCPlan is what PlanGC decided. Every list is sorted, so equal inputs give equal
// plans.
type GCPlan struct {
	// Releases, by pool and address.
	Releases []GCRelease
	// Rebinds, by pool and address.
	Rebinds []GCRebind
	// EndpointDeletions, by namespace and name. Apply the releases first: a deletion
	// that lands alone leaves records that the next run frees as orphans.
	EndpointDeletions []GCEndpointDeletion
	// Rechecks, earliest first: run GC again by the first one (NextRecheck).
	Rechecks []GCRecheck
	// EndedSince is the next run's GCInput.EndedSince.
	EndedSince map[uint64]time.Time
	// Warnings are inputs GC could not use (an invalid reclaim policy); the addresses
	// they govern are kept.
	Warnings []error
}

// NextRecheck returns the earliest recheck time, false when nothing waits.
func (p GCPlan) NextRecheck() (time.Time, bool) {
	if len(p.Rechecks) == 0 {
		return time.Time{}, false
	}
	return p.Rechecks[0].At, true
}

// Apply applies the plan's releases and rebinds of one pool to a (fresh) version of
// it. Each compares the owner first; it returns the new pool and the decisions that
// took effect, which are what metrics count.
func (p GCPlan) Apply(pool Pool) (Pool, []GCRelease, []GCRebind) {
	var released []GCRelease
	var rebound []GCRebind
	for _, r := range p.Releases {
		if r.Pool != pool.Name() {
			continue
		}
		var ok bool
		if pool, ok = pool.Release(r.Addr, r.Owner); ok {
			released = append(released, r)
		}
	}
	for _, r := range p.Rebinds {
		if r.Pool != pool.Name() {
			continue
		}
		var ok bool
		if pool, ok = pool.Rebind(r.Addr, r.From, r.To); ok {
			rebound = append(rebound, r)
		}
	}
	return pool, released, rebound
}

// PlanGC decides, for one snapshot at time now, what garbage collection releases.
// It is a function of its arguments: the same input and now give the same plan.
func PlanGC(in GCInput, now time.Time) GCPlan {
	g := newGCRun(in, now)
	for i := range in.Endpoints {
		g.planEndpoint(&in.Endpoints[i])
	}
	for _, p := range in.Pools {
		for _, r := range p.Pool.gcRecords() {
			g.planRecord(p.Pool.Name(), r.IP, r.Owner)
		}
	}
	return g.finish()
}

// gcRecords returns the pool's records in ascending address order.
func (p Pool) gcRecords() []records.Record {
	out := make([]records.Record, 0, len(p.holders))
	for a, o := range p.holders {
		out = append(out, records.Record{IP: a, Owner: o})
	}
	slices.SortFunc(out, func(x, y records.Record) int { return x.IP.Compare(y.IP) })
	return out
}

type poolAddr struct {
	pool string
	addr netip.Addr
}

// namer is an endpoint naming an address, with the owner it stands for.
type namer struct {
	ep    *GCEndpoint
	owner records.Owner
}

// verdict is the decision about one pod instance's addresses (an endpoint's, or a
// pod's without an endpoint).
type verdict struct {
	release bool
	reason  GCReason
	// at is when the release is due (release), or when to look again (keep; zero for
	// never). A release with at after now waits.
	at time.Time
}

type gcRun struct {
	cfg        GCConfig
	now        time.Time
	prevEnded  map[uint64]time.Time
	podsByKey  map[uint64]*GCPod
	podsByName map[string]*GCPod
	nodes      map[string]GCNode
	reserves   map[records.Owner]string // reserve owner of each existing node
	nodeNames  map[records.Owner]string // reserve owner of every node the inputs name
	epsByKey   map[uint64][]*GCEndpoint // by PodKey(PodUID)
	named      map[poolAddr][]namer
	policies   map[string]*v2beta1.ReclaimPolicy
	verdicts   map[*GCEndpoint]verdict
	warned     map[string]bool
	plan       GCPlan
}

func newGCRun(in GCInput, now time.Time) *gcRun {
	g := &gcRun{
		cfg: in.Config, now: now, prevEnded: in.EndedSince,
		podsByKey: map[uint64]*GCPod{}, podsByName: map[string]*GCPod{},
		nodes: map[string]GCNode{}, reserves: map[records.Owner]string{}, nodeNames: map[records.Owner]string{},
		epsByKey: map[uint64][]*GCEndpoint{}, named: map[poolAddr][]namer{},
		policies: map[string]*v2beta1.ReclaimPolicy{}, verdicts: map[*GCEndpoint]verdict{},
		warned: map[string]bool{},
		plan:   GCPlan{EndedSince: map[uint64]time.Time{}},
	}
	for i := range in.Pods {
		p := &in.Pods[i]
		if p.Node != "" {
			g.nodeNames[records.ReserveOwner(p.Node)] = p.Node
		}
		if p.ForceDeleted {
			continue // gone, whichever watch event GC saw last
		}
		g.podsByKey[records.PodKey(p.UID)] = p
		g.podsByName[p.Namespace+"/"+p.Name] = p
	}
	for _, n := range in.Nodes {
		g.nodes[n.Name] = n
		g.reserves[records.ReserveOwner(n.Name)] = n.Name
	}
	// Endpoints in key order, so that an address named twice (a stale endpoint) is
	// decided the same way whatever the input order.
	eps := make([]*GCEndpoint, len(in.Endpoints))
	for i := range in.Endpoints {
		eps[i] = &in.Endpoints[i]
	}
	slices.SortFunc(eps, func(a, b *GCEndpoint) int {
		return cmp.Or(cmp.Compare(a.Key(), b.Key()), cmp.Compare(a.ObjectUID, b.ObjectUID), cmp.Compare(a.ResourceVersion, b.ResourceVersion))
	})
	for _, e := range eps {
		if e.Node != "" {
			g.nodeNames[records.ReserveOwner(e.Node)] = e.Node
		}
		k := records.PodKey(e.PodUID)
		g.epsByKey[k] = append(g.epsByKey[k], e)
		for _, a := range e.Addresses {
			pa := poolAddr{a.Pool, a.Addr}
			g.named[pa] = append(g.named[pa], namer{e, a.Owner})
		}
	}
	for _, p := range in.Pools {
		g.policies[p.Pool.Name()] = p.ReclaimPolicy
	}
	return g
}

// ended records that the owner with this digest is ended (gone, finished, terminating
// past its grace) and returns since when GC has seen it so.
func (g *gcRun) ended(key uint64) time.Time {
	if t, ok := g.plan.EndedSince[key]; ok {
		return t
	}
	since := g.now
	if t, ok := g.prevEnded[key]; ok && !t.After(g.now) {
		since = t
	}
	g.plan.EndedSince[key] = since
	return since
}

// podState says whether a pod that exists has ended for GC, why, and when a
// terminating pod's grace ends (zero when that does not matter).
func (g *gcRun) podState(p *GCPod) (ended bool, reason GCReason, graceEnds time.Time) {
	if p.Phase == PodSucceeded || p.Phase == PodFailed {
		return true, GCPodFinished, time.Time{}
	}
	if p.DeletionTimestamp.IsZero() {
		return false, "", time.Time{}
	}
	release := g.cfg.ReleaseTerminatingOnNotReadyNode
	if n, ok := g.nodes[p.Node]; ok && n.Ready {
		release = g.cfg.ReleaseTerminatingOnReadyNode
	}
	if !release {
		return false, "", time.Time{}
	}
	stop := p.DeletionTimestamp.Add(g.cfg.AdditionalGraceDelay)
	if g.now.Before(stop) {
		return false, GCTerminatingPastGrace, stop
	}
	return true, GCTerminatingPastGrace, time.Time{}
}

// instance is the state of the pod instance with a UID: whether it ended, why, since
// when, when the release may happen at the earliest, and when its grace ends if it
// is terminating.
type instance struct {
	pod       *GCPod
	ended     bool
	reason    GCReason
	since     time.Time
	due       time.Time
	graceEnds time.Time
}

func (g *gcRun) instance(uid, namespace, name string) instance {
	key := records.PodKey(uid)
	if p := g.podsByKey[key]; p != nil {
		in := instance{pod: p}
		in.ended, in.reason, in.graceEnds = g.podState(p)
		if in.ended {
			in.since = g.ended(key)
			in.due = g.now // the pod object itself says so: no lag to wait for
		}
		return in
	}
	in := instance{ended: true, reason: GCPodGone}
	if g.podsByName[namespace+"/"+name] != nil {
		in.reason = GCPodUIDChanged
	}
	in.since = g.ended(key)
	in.due = in.since.Add(g.cfg.GoneDelay)
	return in
}

// endpointVerdict decides an endpoint's pod instance, once per run.
func (g *gcRun) endpointVerdict(e *GCEndpoint) verdict {
	if v, ok := g.verdicts[e]; ok {
		return v
	}
	v := g.decideEndpoint(e)
	g.verdicts[e] = v
	return v
}

func (g *gcRun) decideEndpoint(e *GCEndpoint) verdict {
	inst := g.instance(e.PodUID, e.Namespace, e.Name)
	if inst.pod != nil && inst.pod.StatefulSet != nil && inst.pod.StatefulSet.Wanted() {
		// A pod its StatefulSet wants keeps, as in planRecord, whatever the endpoint says.
		return verdict{}
	}
	ss := e.StatefulSet
	if ss == nil {
		if !inst.ended {
			return verdict{reason: inst.reason, at: inst.graceEnds}
		}
		return verdict{release: true, reason: inst.reason, at: inst.due}
	}
	if ss.Wanted() {
		// The StatefulSet will run this identity again: the addresses wait for it,
		// whatever the pod does meanwhile.
		return verdict{}
	}
	reason := GCStatefulSetScaledDown
	if !ss.Exists {
		reason = GCStatefulSetDeleted
	}
	after, keep := g.reclaimAfter(e, !ss.Exists)
	if keep && after == 0 {
		return verdict{} // Never: only deleting the endpoint by hand frees them
	}
	if keep {
		reason = GCReclaimExpired
	}
	if !inst.ended {
		return verdict{reason: reason, at: inst.graceEnds}
	}
	due := inst.due
	if keep {
		due = later(due, inst.since.Add(after))
	}
	return verdict{release: true, reason: reason, at: due}
}

// reclaimAfter resolves the endpoint's reclaim policy: its own, else the most
// retaining of its pools' (each pool's own or the default), for a StatefulSet that
// still exists or not (setDeleted: Reserved keeps only while it exists). An invalid
// policy keeps.
func (g *gcRun) reclaimAfter(e *GCEndpoint, setDeleted bool) (after time.Duration, keep bool) {
	def := g.cfg.DefaultReclaimPolicy
	if def == "" {
		def = v2beta1.ReclaimFollow
	}
	var ps []v2beta1.ReclaimPolicy
	if e.ReclaimPolicy != nil {
		ps = []v2beta1.ReclaimPolicy{*e.ReclaimPolicy}
	} else {
		for _, a := range e.Addresses {
			if p := g.policies[a.Pool]; p != nil {
				ps = append(ps, *p)
			} else {
				ps = append(ps, def)
			}
		}
		if len(ps) == 0 {
			ps = []v2beta1.ReclaimPolicy{def}
		}
	}
	for _, p := range ps {
		d, k, err := p.ReclaimAfterFor(setDeleted)
		if err != nil {
			g.warn(fmt.Errorf("SpiderEndpoint %s: %w: %w; keeping its addresses", e.Key(), ErrInvalidReclaimPolicy, err))
			return 0, true
		}
		switch {
		case k && d == 0: // Never
			return 0, true
		case k:
			after, keep = max(after, d), true
		}
	}
	return after, keep
}

func (g *gcRun) warn(err error) {
	if !g.warned[err.Error()] {
		g.warned[err.Error()] = true
		g.plan.Warnings = append(g.plan.Warnings, err)
	}
}

func (g *gcRun) planEndpoint(e *GCEndpoint) {
	v := g.endpointVerdict(e)
	switch {
	case v.release && !v.at.After(g.now):
		g.plan.EndpointDeletions = append(g.plan.EndpointDeletions, GCEndpointDeletion{
			Namespace: e.Namespace, Name: e.Name, ObjectUID: e.ObjectUID, ResourceVersion: e.ResourceVersion,
			PodUID: e.PodUID, Reason: v.reason,
		})
	case !v.at.IsZero():
		g.recheck(v.at, v.reason, e.Key(), poolAddr{})
	}
}

func (g *gcRun) recheck(at time.Time, reason GCReason, pod string, pa poolAddr) {
	g.plan.Rechecks = append(g.plan.Rechecks, GCRecheck{At: at, Reason: reason, Pod: pod, Pool: pa.pool, Addr: pa.addr})
}

// apply turns a verdict into a release or a recheck of one record.
func (g *gcRun) apply(v verdict, pa poolAddr, h records.Owner, pod, node string) {
	switch {
	case v.release && !v.at.After(g.now):
		g.plan.Releases = append(g.plan.Releases, GCRelease{Pool: pa.pool, Addr: pa.addr, Owner: h, Reason: v.reason, Pod: pod, Node: node})
	case !v.at.IsZero():
		g.recheck(v.at, v.reason, pod, pa)
	}
}

func (g *gcRun) planRecord(pool string, a netip.Addr, h records.Owner) {
	pa := poolAddr{pool, a}
	if h.IsReserve() {
		g.planReserve(pa, h)
		return
	}
	// The pod instance the record names, through its endpoint when it has one (which
	// carries the StatefulSet retention).
	if eps := g.epsByKey[h.Pod]; len(eps) > 0 {
		g.apply(g.endpointVerdict(eps[0]), pa, h, eps[0].Key(), "")
		return
	}
	if p := g.podsByKey[h.Pod]; p != nil {
		ended, reason, graceEnds := g.podState(p)
		key := p.Namespace + "/" + p.Name
		switch {
		case p.StatefulSet != nil && p.StatefulSet.Wanted():
			// Kept while the StatefulSet wants the pod, as with an endpoint.
		case !ended:
			g.apply(verdict{reason: reason, at: graceEnds}, pa, h, key, "")
		default:
			g.ended(h.Pod)
			g.apply(verdict{release: true, reason: reason, at: g.now}, pa, h, key, "")
		}
		return
	}
	// No pod and no endpoint of this UID. An endpoint that names the address and keeps
	// its own pod's addresses explains it: the address is moving between two instances
	// of that pod (a StatefulSet pod's new instance, recorded in one object and not yet
	// in the other).
	for _, n := range g.named[pa] {
		if v := g.endpointVerdict(n.ep); !v.release {
			return
		}
	}
	since := g.ended(h.Pod)
	g.apply(verdict{release: true, reason: GCOrphanRecord, at: since.Add(g.cfg.GoneDelay)}, pa, h, "", "")
}

// planReserve decides an address a node's agent holds in reserve: the node's while the
// node exists, whether spare or handed to a pod; after the node is gone, a handed one
// is its pod's and a spare goes back.
func (g *gcRun) planReserve(pa poolAddr, h records.Owner) {
	if _, ok := g.reserves[h]; ok {
		return
	}
	gone := g.ended(h.Pod).Add(g.cfg.GoneDelay)
	node := g.nodeNames[h] // a deleted node's name, when a pod or endpoint still names it
	namers := g.named[pa]
	for _, n := range namers {
		v := g.endpointVerdict(n.ep)
		if v.release {
			continue
		}
		if gone.After(g.now) {
			g.recheck(gone, GCNodeGone, n.ep.Key(), pa)
			return
		}
		g.plan.Rebinds = append(g.plan.Rebinds, GCRebind{Pool: pa.pool, Addr: pa.addr, From: h, To: n.owner, Reason: GCNodeGone, Pod: n.ep.Key(), Node: node})
		return
	}
	if len(namers) > 0 {
		// Handed to a pod whose addresses go: released for the pod's reason.
		v := g.endpointVerdict(namers[0].ep)
		v.at = later(v.at, gone)
		g.apply(v, pa, h, namers[0].ep.Key(), node)
		return
	}
	g.apply(verdict{release: true, reason: GCNodeGone, at: gone}, pa, h, "", node)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (g *gcRun) finish() GCPlan {
	p := g.plan
	slices.SortFunc(p.Releases, func(a, b GCRelease) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), a.Addr.Compare(b.Addr))
	})
	slices.SortFunc(p.Rebinds, func(a, b GCRebind) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), a.Addr.Compare(b.Addr))
	})
	slices.SortFunc(p.EndpointDeletions, func(a, b GCEndpointDeletion) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ObjectUID, b.ObjectUID), cmp.Compare(a.ResourceVersion, b.ResourceVersion))
	})
	slices.SortFunc(p.Rechecks, func(a, b GCRecheck) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Pool, b.Pool), a.Addr.Compare(b.Addr), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Reason, b.Reason))
	})
	p.Rechecks = slices.Compact(p.Rechecks)
	slices.SortFunc(p.Warnings, func(a, b error) int { return cmp.Compare(a.Error(), b.Error()) })
	return p
}
