package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// Cluster is what the agent reads, from its caches (or, where a cache may lag, the API).
type Cluster interface {
	// Pod returns the pod, or an error if it does not exist.
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	// FreshPod returns the pod as the API server has it now, not as a cache does.
	FreshPod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	// Namespace returns the namespace.
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
	// Node returns this agent's node.
	Node(ctx context.Context) (*corev1.Node, error)
	// Pools returns every SpiderIPPool.
	Pools(ctx context.Context) ([]v2beta1.SpiderIPPool, error)
	// FreshPools returns every SpiderIPPool as the API server has them now.
	FreshPools(ctx context.Context) ([]v2beta1.SpiderIPPool, error)
	// Pool returns one SpiderIPPool.
	Pool(ctx context.Context, name string) (*v2beta1.SpiderIPPool, error)
	// Reserved returns the addresses of every SpiderReservedIP of a family.
	Reserved(is4 bool) ip.Set
	// HasEndpoint reports whether this node's endpoint cache holds a SpiderEndpoint.
	HasEndpoint(namespace, name string) bool
	// Endpoints returns the SpiderEndpoints of this node's pods.
	Endpoints(ctx context.Context) ([]v2beta1.SpiderEndpoint, error)
	// PendingPods returns the pods bound to this node that will ask for an address soon:
	// running in the pod network, not terminating, with no SpiderEndpoint yet. Read only.
	PendingPods(ctx context.Context) ([]*corev1.Pod, error)
	// JobController returns the controller of a Job (a CronJob's reference), nil when
	// it has none.
	JobController(ctx context.Context, namespace, name string) (*metav1.OwnerReference, error)
	// SpiderPoolAgent returns a pod of SpiderPool's agent that runs on this node, nil
	// when none does.
	SpiderPoolAgent(ctx context.Context) (*corev1.Pod, error)
}

// RBAC of the EndpointStore (crdstore.Endpoints on the API server): a pod's
// SpiderEndpoint read fresh, created, updated and deleted.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints,verbs=get;create;update;delete

// EndpointStore reads and writes SpiderEndpoints (crdstore.Endpoints).
type EndpointStore interface {
	Get(ctx context.Context, namespace, name string) (*v2beta1.SpiderEndpoint, error)
	Create(ctx context.Context, se *v2beta1.SpiderEndpoint) error
	Update(ctx context.Context, se *v2beta1.SpiderEndpoint) error
	Delete(ctx context.Context, se *v2beta1.SpiderEndpoint) error
}

// Events records pod events.
type Events interface {
	Warning(pod *corev1.Pod, reason, message string)
}

// Service answers the IPAM requests of one node.
type Service struct {
	node      string
	cluster   Cluster
	endpoints EndpointStore
	writers   *writerSet
	events    Events
	log       logr.Logger
	metrics   *Metrics

	enableIPv4, enableIPv6 bool
	multusClusterNetwork   string
	synced                 func() bool
	// statefulSetFixedIPs: a StatefulSet's pod keeps its addresses across re-creation.
	statefulSetFixedIPs bool
	// fixedIPOptIn: only the StatefulSet pods that ask keep theirs (ipam.FixedIPWanted).
	fixedIPOptIn bool
	// poolChanges wakes ADDs that wait for an auto pool to appear or to have room.
	poolChanges changes
	// autoPoolWait bounds that wait.
	autoPoolWait time.Duration
	// defaults are the node's default pools, for the forecast of its pods' demand.
	defaults nodeDefaults
}

// ServiceParams are the dependencies of a Service.
type ServiceParams struct {
	Node      string
	Cluster   Cluster
	Endpoints EndpointStore
	Pools     ipam.PoolStore
	Events    Events
	Log       logr.Logger
	Metrics   *Metrics
	// EnableIPv4 and EnableIPv6 are the families the cluster serves; both false means both.
	EnableIPv4, EnableIPv6 bool
	// MultusClusterNetwork is Multus' cluster network ("ns/name"), which attaches eth0
	// when a pod names no default network; spec.multusName is matched against it.
	MultusClusterNetwork string
	// Synced reports whether the caches behind Cluster have synced; nil means always.
	Synced func() bool
	// ReserveMax is the most addresses a pool writer keeps in reserve for this node; 0
	// turns reserving off. Only one agent of a node may reserve (see lockNode).
	ReserveMax int
	// ReserveRebindDelay: see ReserveParams.RebindDelay.
	ReserveRebindDelay time.Duration
	// SettleFirst: a previous agent's reserve must be settled before the writers own
	// everything the pools record as the node's; call MarkSettled when it is.
	SettleFirst bool
	// StatefulSetFixedIPs gives a StatefulSet's re-created pod the addresses its
	// predecessor of the same name had (SpiderPool's enableStatefulSet): the pod's
	// SpiderEndpoint has no owner reference, so it outlives the pod, and CNI DEL keeps
	// the addresses; garbage collection releases them per the reclaim policy.
	StatefulSetFixedIPs bool
	// StatefulSetFixedIPOptIn: see Config.StatefulSetFixedIPOptIn.
	StatefulSetFixedIPOptIn bool
	// AutoPoolWait is how long an ADD waits for its application's auto pool to be
	// created, or to have room, before failing (DefaultAutoPoolWait when 0).
	AutoPoolWait time.Duration
	// Grants serves the pools in Grants mode (docs/design/node-grants.md); nil: every
	// pool is served by its records writer.
	Grants *grantSet
	// CNIConfDir is the node's CNI config folder: its default pools let the node ask for
	// addresses before its first pod's ADD ("" : learned from the first ADD).
	CNIConfDir string
}

// DefaultAutoPoolWait bounds an ADD's wait for its auto pool. The wait ends as soon as
// the pool watch shows the pool (no polling); the runtime retries a failed ADD.
const DefaultAutoPoolWait = 30 * time.Second

// MarkSettled tells the writers that the previous agent's reserve is settled.
func (s *Service) MarkSettled() { s.writers.settled.Store(true) }

// NewService returns a Service; its pool writers run until ctx ends.
func NewService(ctx context.Context, p ServiceParams) *Service {
	s := &Service{
		node: p.Node, cluster: p.Cluster, endpoints: p.Endpoints, events: p.Events, log: p.Log, metrics: p.Metrics,
		enableIPv4: p.EnableIPv4, enableIPv6: p.EnableIPv6, multusClusterNetwork: p.MultusClusterNetwork,
		synced: p.Synced, statefulSetFixedIPs: p.StatefulSetFixedIPs, fixedIPOptIn: p.StatefulSetFixedIPOptIn, autoPoolWait: p.AutoPoolWait,
		defaults: nodeDefaults{confDir: p.CNIConfDir, log: p.Log.Info},
	}
	if s.autoPoolWait <= 0 {
		s.autoPoolWait = DefaultAutoPoolWait
	}
	if s.synced == nil {
		s.synced = func() bool { return true }
	}
	if !s.enableIPv4 && !s.enableIPv6 {
		s.enableIPv4, s.enableIPv6 = true, true
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.writers = &writerSet{
		ctx: ctx, store: p.Pools, reserved: p.Cluster.Reserved, spreadKey: nodeKey(p.Node), onWrite: s.metrics.onWrite, log: p.Log,
		reserve: ReserveParams{Owner: records.ReserveOwner(p.Node), Max: p.ReserveMax, RebindDelay: p.ReserveRebindDelay},
		m:       map[string]*PoolWriter{},
	}
	if p.Grants != nil {
		s.writers.grants = p.Grants
		p.Grants.d.forecast = s.forecast
		s.writers.grantsMode = func(pool string) bool {
			sp, err := p.Cluster.Pool(ctx, pool)
			return err == nil && sp.GrantsMode()
		}
	}
	if !p.SettleFirst {
		s.writers.settled.Store(true)
	}
	return s
}

// writerSet starts one PoolWriter per pool on first use.
type writerSet struct {
	ctx       context.Context
	store     ipam.PoolStore
	reserved  func(is4 bool) ip.Set
	spreadKey uint64
	onWrite   func(pool string, batch int, err error)
	reserve   ReserveParams
	log       logr.Logger
	// settled: see PoolWriter.settled; the agent sets it once settleInheritedReserves is
	// done.
	settled atomic.Bool

	// grants serves the pools in Grants mode (nil: this agent does not speak node
	// grants); grantsMode tells which they are.
	grants     *grantSet
	grantsMode func(pool string) bool

	mu        sync.Mutex
	m         map[string]*PoolWriter
	suspended bool // see suspendReserves
	running   sync.WaitGroup
}

// get returns what allocates from the pool on this node: its grants when the pool is in
// Grants mode and the agent speaks node grants, else its PoolWriter.
func (ws *writerSet) get(pool string) poolAllocator {
	if ws.grants != nil && ws.grantsMode(pool) {
		g := ws.grants.get(pool)
		if w := ws.lookupWriter(pool); w != nil {
			g.inherit(w) // the pool switched while this agent wrote its records
		}
		return g
	}
	return ws.writer(pool)
}

// lookup returns the pool's allocator if one was started (nil if none).
func (ws *writerSet) lookup(pool string) poolAllocator {
	if ws.grants != nil {
		if g := ws.grants.lookup(pool); g != nil {
			return g
		}
	}
	if w := ws.lookupWriter(pool); w != nil {
		return w
	}
	return nil
}

// allocators returns every allocator started so far.
func (ws *writerSet) allocators() []poolAllocator {
	var out []poolAllocator
	for _, w := range ws.all() {
		out = append(out, w)
	}
	if ws.grants != nil {
		for _, g := range ws.grants.all() {
			out = append(out, g)
		}
	}
	return out
}

// writer returns the pool's PoolWriter (protocol 1), started on first use.
func (ws *writerSet) writer(pool string) *PoolWriter {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w, ok := ws.m[pool]
	if !ok {
		w = NewPoolWriter(PoolWriterParams{Pool: pool, Store: ws.store, Reserved: ws.reserved, SpreadKey: ws.spreadKey, OnWrite: ws.onWrite, Reserve: ws.reserve, Settled: &ws.settled, Log: ws.log})
		if ws.suspended {
			w.SuspendReserve(true)
		}
		ws.m[pool] = w
		ws.running.Add(1)
		go func() {
			defer ws.running.Done()
			w.Run(ws.ctx)
		}()
	}
	return w
}

// lookupWriter returns the PoolWriter of a pool if one was started.
func (ws *writerSet) lookupWriter(pool string) *PoolWriter {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.m[pool]
}

// wait returns once every writer's Run has returned (after its context ended), that is
// once the reserves are given back.
func (ws *writerSet) wait() { ws.running.Wait() }

// suspendReserves stops (or resumes) every writer's handing out of spares, those started
// later included.
func (ws *writerSet) suspendReserves(on bool) {
	ws.mu.Lock()
	ws.suspended = on
	ws.mu.Unlock()
	for _, w := range ws.all() {
		w.SuspendReserve(on)
	}
}

// abandon makes every writer stop without giving its reserve back, as a crash would.
func (ws *writerSet) abandon() {
	for _, w := range ws.all() {
		w.abandon.Store(true)
	}
}

// observe passes a pool's free count, as the watch saw it, to the pool's writer.
func (ws *writerSet) observe(pool *v2beta1.SpiderIPPool) {
	w := ws.lookupWriter(pool.Name)
	if w == nil || w.res == nil {
		return
	}
	if pool.DeletionTimestamp != nil {
		// A pool being deleted serves no new pod: seen as full, it gets its spares back
		// now, so its finalizer can go once its pods' addresses are released.
		w.Observe(0)
		return
	}
	if pool.Status.TotalIPCount == nil || pool.Status.AllocatedIPCount == nil {
		return
	}
	// Every record is taken: pods' (allocatedIPCount) and reserves' (spareIPCount).
	var spare int64
	if ob := pool.Status.Orbweaver; ob != nil && ob.SpareIPCount != nil {
		spare = *ob.SpareIPCount
	}
	w.Observe(max(*pool.Status.TotalIPCount-*pool.Status.AllocatedIPCount-spare, 0))
}

// all returns every writer started so far.
func (ws *writerSet) all() []*PoolWriter {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	out := make([]*PoolWriter, 0, len(ws.m))
	for _, w := range ws.m {
		out = append(out, w)
	}
	return out
}

// invalidate makes every writer read its pool again (reserved addresses changed).
func (ws *writerSet) invalidate() {
	for _, w := range ws.all() {
		w.Invalidate()
	}
}

// addRequest is one ADD with what the agent looked up for it.
type addRequest struct {
	args  *models.AddArgs
	att   *models.Attachment
	pod   *corev1.Pod
	owner records.Owner
	// retain: the pod keeps its addresses across re-creation (retainsFor).
	retain bool
}

// candidates are the pools a NIC may use, per family, in order.
type candidates struct {
	ipv4, ipv6   []string
	cleanGateway bool
	routes       []v2beta1.Route // the pod's custom routes (ipam.spidernet.io/routes)
	auto         bool            // the application's auto pools (see ipam.Selection.Auto)
}

// nicAllocation is what one family of one NIC got.
type nicAllocation struct {
	pool *v2beta1.SpiderIPPool
	addr netip.Addr
}

// Add allocates the IPs of one NIC of a pod. It is idempotent for the same pod UID,
// container and interface, and leaves nothing behind when it fails.
func (s *Service) Add(ctx context.Context, args *models.AddArgs) (res *models.AddResult, err error) {
	start := time.Now()
	att := args.Attachment
	log := s.log.WithValues("Pod", podRef(att), "containerID", short(*att.ContainerID), "ifName", *att.IfName)
	defer func() { s.metrics.observe("add", start, err) }()

	pod, err := s.cluster.Pod(ctx, *att.PodNamespace, *att.PodName)
	if err != nil {
		return nil, fmt.Errorf("look up pod %s: %w", podRef(att), err)
	}
	if att.PodUID != "" && string(pod.UID) != att.PodUID {
		// The cache may still hold the previous pod of this name: ask the API server.
		if pod, err = s.cluster.FreshPod(ctx, *att.PodNamespace, *att.PodName); err != nil {
			return nil, fmt.Errorf("look up pod %s: %w", podRef(att), err)
		}
	}
	if att.PodUID != "" && string(pod.UID) != att.PodUID {
		return nil, fmt.Errorf("pod %s has UID %s, the runtime asked for %s: the pod was re-created; the runtime will retry", podRef(att), pod.UID, att.PodUID)
	}
	req := &addRequest{args: args, att: att, pod: pod, owner: records.OwnerOf(string(pod.UID), *att.ContainerID, *att.IfName)}
	s.defaults.learn(*att.IfName, args.DefaultIPv4IPPool, args.DefaultIPv6IPPool)
	defer func() {
		if err != nil {
			_, reason := classify(err)
			s.events.Warning(pod, EventAllocationFailed, fmt.Sprintf("%s: %v", reason, err))
			log.Info("allocation failed", "reason", reason, "error", err.Error())
		}
	}()
	if sp, err := s.cluster.SpiderPoolAgent(ctx); err != nil {
		return nil, fmt.Errorf("look for SpiderPool's agent on this node: %w", err)
	} else if sp != nil {
		// Both agents would hand out the same free addresses.
		return nil, fmt.Errorf("%w: its agent runs on this node (pod %s/%s); orbweaver allocates nothing here until SpiderPool is uninstalled (docs/guides/migrate-from-spiderpool.md)",
			ipam.ErrSpiderPoolRunning, sp.Namespace, sp.Name)
	}

	if req.retain, err = s.retainsFor(pod); err != nil {
		return nil, fmt.Errorf("pod %s: %w", podRef(att), err)
	}
	se, err := s.currentEndpoint(ctx, pod, req.retain)
	if err != nil && !errors.Is(err, crdstore.ErrEndpointNotFound) {
		return nil, err
	}
	switch s.relate(se, pod, *att.ContainerID, req.retain) {
	case ipam.EndpointNone:
		se = nil
	case ipam.EndpointPredecessor:
		// The StatefulSet re-created its pod: the new pod keeps the addresses.
		if se, err = s.moveEndpoint(ctx, se, pod, *att.ContainerID); err != nil {
			return nil, fmt.Errorf("give the addresses of StatefulSet pod %s to its new instance: %w", podRef(att), err)
		}
		log.Info("StatefulSet pod re-created: it keeps its addresses", "SpiderEndpoint", klog.KObj(se))
	case ipam.EndpointPreviousPod:
		// A previous pod of the same name: free what it held before serving this one.
		if err := s.releaseEndpoint(ctx, se); err != nil {
			return nil, fmt.Errorf("release the IPs of the previous pod named %s: %w", podRef(att), err)
		}
		se = nil
	case ipam.EndpointOtherSandbox:
		if se, err = s.moveEndpoint(ctx, se, pod, *att.ContainerID); err != nil {
			return nil, fmt.Errorf("move the addresses of pod %s to its new sandbox: %w", podRef(att), err)
		}
	}
	var cands candidates
	selected := false
	if se != nil {
		if nic := findNIC(se, *att.IfName); nic != nil {
			if !req.retain {
				return resultOf(nic), nil // a repeated ADD: the same addresses
			}
			// A StatefulSet pod keeps its addresses while its pools are still the ones
			// it would choose; a changed pool annotation moves it to the new pools,
			// chosen here already.
			cands, err = s.selectPoolsWaiting(ctx, req)
			if err != nil && !errors.Is(err, ipam.ErrPoolRefused) {
				return nil, err
			}
			selected = true
			if err == nil && stillChosen(nic, cands) {
				return resultOf(nic), nil
			}
			if kerr := s.keptPoolsServe(ctx, se, nic, cands); kerr != nil {
				return nil, kerr
			}
			if err != nil {
				return nil, err
			}
			log.Info("the pod's pools changed: releasing its kept addresses", "ipv4Pool", ptr.Deref(nic.IPv4Pool, ""), "ipv6Pool", ptr.Deref(nic.IPv6Pool, ""))
			if err := s.releaseNIC(ctx, se, *att.IfName); err != nil {
				return nil, err
			}
			if se, err = s.currentEndpoint(ctx, pod, true); errors.Is(err, crdstore.ErrEndpointNotFound) {
				se = nil
			} else if err != nil {
				return nil, err
			}
		}
	}

	if !selected {
		if cands, err = s.selectPoolsWaiting(ctx, req); err != nil {
			return nil, err
		}
	}
	allocs, err := s.allocate(ctx, req, cands)
	for wait := s.autoPoolDeadline(ctx); errors.Is(err, ipam.ErrPoolExhausted) && cands.auto && time.Now().Before(wait); {
		// An application's own pool is sized by the controller: wait for it to grow, or
		// for an old pod of a rolling update to give an address back.
		if !s.awaitPoolChange(ctx, wait) {
			break
		}
		if cands, err = s.selectPoolsWaiting(ctx, req); err != nil {
			return nil, err
		}
		allocs, err = s.allocate(ctx, req, cands)
	}
	if err != nil {
		return nil, err
	}
	detail, result := s.describe(*att.IfName, allocs, cands.cleanGateway || args.CleanGateway, cands.routes)
	if err := s.record(ctx, req, se, detail); err != nil {
		s.rollback(req, allocs)
		return nil, err
	}
	log.V(1).Info("allocated", "ips", result.Ips)
	return result, nil
}

// currentEndpoint returns the pod's SpiderEndpoint as the API server has it, or
// ErrEndpointNotFound. When this node's cache has none, that answer is trusted and the
// read is saved (most ADDs are a new pod's first): if an endpoint exists after all, the
// allocation is idempotent per owner and record's Create finds it and merges, or frees
// it when it belongs to a previous pod of the same name. When the cache has one, the API
// server is asked: the cached copy may be stale, and a repeated ADD answers from it.
//
// A StatefulSet pod's endpoint is always read from the API server: when the pod moves
// to this node, its endpoint still names the previous node, whose agent's cache has it.
func (s *Service) currentEndpoint(ctx context.Context, pod *corev1.Pod, retain bool) (*v2beta1.SpiderEndpoint, error) {
	if !retain && !s.cluster.HasEndpoint(pod.Namespace, pod.Name) {
		return nil, fmt.Errorf("SpiderEndpoint %s/%s: %w", pod.Namespace, pod.Name, crdstore.ErrEndpointNotFound)
	}
	return s.endpoints.Get(ctx, pod.Namespace, pod.Name)
}

// allocate takes one address per family, trying each family's pools in order, both
// families at once; if one family fails, what the other took is released.
func (s *Service) allocate(ctx context.Context, req *addRequest, c candidates) ([]nicAllocation, error) {
	families := [][]string{c.ipv4, c.ipv6}
	results := make([]nicAllocation, len(families))
	errs := make([]error, len(families))
	var wg sync.WaitGroup
	for i, pools := range families {
		if len(pools) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = s.allocateFamily(ctx, req, pools)
		}()
	}
	wg.Wait()
	var got []nicAllocation
	for i := range families {
		if results[i].pool != nil {
			got = append(got, results[i])
		}
	}
	if err := errors.Join(errs...); err != nil {
		s.rollback(req, got)
		return nil, err
	}
	if len(got) == 0 {
		return nil, userErr(ReasonNoPool, fmt.Errorf("no pool for pod %s interface %s", podRef(req.att), *req.att.IfName))
	}
	return got, nil
}

// allocateFamily tries the pools of one family in order; a full pool passes to the next.
func (s *Service) allocateFamily(ctx context.Context, req *addRequest, pools []string) (nicAllocation, error) {
	var exhausted []error
	for i, name := range pools {
		pool, err := s.cluster.Pool(ctx, name)
		if err != nil {
			return nicAllocation{}, err
		}
		addr, err := s.allocateFrom(ctx, name, req.owner, i < len(pools)-1 && countsFull(pool))
		if errors.Is(err, ipam.ErrPoolExhausted) {
			exhausted = append(exhausted, err)
			continue
		}
		if err != nil {
			return nicAllocation{}, err
		}
		return nicAllocation{pool: pool, addr: addr}, nil
	}
	return nicAllocation{}, fmt.Errorf("every candidate pool %v is full: %w", pools, joinInline(exhausted))
}

// countsFull reports whether a pool's status says every address is held: a pool in
// Grants mode whose node has no free grant is then passed over at once when another
// candidate follows, instead of waiting for a grant that will not come (its counts are
// at most seconds old).
func countsFull(sp *v2beta1.SpiderIPPool) bool {
	st := sp.Status
	return sp.GrantsMode() && st.AllocatedIPCount != nil && st.TotalIPCount != nil && *st.AllocatedIPCount >= *st.TotalIPCount
}

// allocateFrom allocates from one pool. A pool whose records writer finds it switched to
// Grants mode is asked again once this node's cache shows the switch. With noWait, a
// pool in Grants mode hands out what the node holds free, and waits for no grant.
func (s *Service) allocateFrom(ctx context.Context, pool string, owner records.Owner, noWait bool) (netip.Addr, error) {
	for try := 0; ; try++ {
		a := s.writers.get(pool)
		var addr netip.Addr
		var err error
		if g, ok := a.(*grantPool); ok && noWait {
			addr, err = g.allocate(ctx, owner, 0)
		} else {
			addr, err = a.AllocateOrWait(ctx, owner)
		}
		if !errors.Is(err, errGrantsMode) || try == 50 {
			return addr, err
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

// joinInline joins errors on one line ("; "), for pod events and logs; errors.Is still
// sees each of them.
func joinInline(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return &inlineErrors{msg: strings.Join(msgs, "; "), errs: errs}
}

type inlineErrors struct {
	msg  string
	errs []error
}

func (e *inlineErrors) Error() string   { return e.msg }
func (e *inlineErrors) Unwrap() []error { return e.errs }

// rollback releases what a failed ADD took, under its own deadline: the request's may
// be what ran out.
func (s *Service) rollback(req *addRequest, allocs []nicAllocation) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range allocs {
		if _, err := s.writers.get(a.pool.Name).Release(ctx, a.addr, req.owner); err != nil {
			s.log.Error(err, "rollback failed; garbage collection will release the address", "SpiderIPPool", a.pool.Name, "ip", a.addr.String())
		}
	}
}

// describe builds the endpoint's NIC record and the CNI result: the pools' gateways and
// routes, then the pod's custom routes whose gateway lies in an allocated subnet.
func (s *Service) describe(ifName string, allocs []nicAllocation, cleanGateway bool, custom []v2beta1.Route) (v2beta1.IPAllocationDetail, *models.AddResult) {
	detail := v2beta1.IPAllocationDetail{NIC: ifName, CleanGateway: ptr.To(cleanGateway)}
	result := &models.AddResult{}
	var subnets []netip.Prefix
	for _, a := range allocs {
		prefix, _ := netip.ParsePrefix(string(a.pool.Spec.Subnet))
		subnets = append(subnets, prefix)
		cidr := netip.PrefixFrom(a.addr, prefix.Bits()).String()
		version := int64(4)
		gw := ""
		if a.pool.Spec.Gateway != nil && !cleanGateway {
			gw = string(*a.pool.Spec.Gateway)
		}
		if a.addr.Is4() {
			detail.IPv4, detail.IPv4Pool = ptr.To(cidr), ptr.To(a.pool.Name)
			if gw != "" {
				detail.IPv4Gateway = ptr.To(gw)
			}
		} else {
			version = 6
			detail.IPv6, detail.IPv6Pool = ptr.To(cidr), ptr.To(a.pool.Name)
			if gw != "" {
				detail.IPv6Gateway = ptr.To(gw)
			}
		}
		result.Ips = append(result.Ips, &models.IPConfig{Version: &version, Address: ptr.To(cidr), Gateway: gw, Pool: ptr.To(a.pool.Name), Nic: ifName})
		detail.Routes = append(detail.Routes, a.pool.Spec.Routes...)
	}
	detail.Routes = append(detail.Routes, routesFor(custom, subnets)...)
	for _, r := range detail.Routes {
		result.Routes = append(result.Routes, &models.Route{IfName: ifName, Dst: ptr.To(r.Dst), Gw: string(r.Gw)})
	}
	return detail, result
}

// record writes the NIC into the pod's SpiderEndpoint, creating it for the first NIC.
func (s *Service) record(ctx context.Context, req *addRequest, se *v2beta1.SpiderEndpoint, detail v2beta1.IPAllocationDetail) error {
	for try := 0; try < 5; try++ {
		if se == nil {
			se = newEndpoint(req.pod, s.node, *req.att.ContainerID, req.retain)
			se.Status.Current.IPs = []v2beta1.IPAllocationDetail{detail}
			setNetwork(se, detail.NIC, req.att.NetworkName)
			err := s.endpoints.Create(ctx, se)
			if !errors.Is(err, crdstore.ErrEndpointChanged) {
				return err
			}
		} else {
			next := se.DeepCopy()
			next.Status.Current.IPs = slices.DeleteFunc(next.Status.Current.IPs, func(d v2beta1.IPAllocationDetail) bool { return d.NIC == detail.NIC })
			next.Status.Current.IPs = append(next.Status.Current.IPs, detail)
			setNetwork(next, detail.NIC, req.att.NetworkName)
			err := s.endpoints.Update(ctx, next)
			if !errors.Is(err, crdstore.ErrEndpointChanged) {
				return err
			}
		}
		// Another NIC of the same pod wrote it meanwhile: merge into the fresh one.
		fresh, err := s.endpoints.Get(ctx, req.pod.Namespace, req.pod.Name)
		if err != nil && !errors.Is(err, crdstore.ErrEndpointNotFound) {
			return err
		}
		switch s.relate(fresh, req.pod, *req.att.ContainerID, req.retain) {
		case ipam.EndpointNone:
			se = nil
		case ipam.EndpointPredecessor:
			// A StatefulSet's endpoint written a moment ago for the pod's previous
			// instance: roll back and let the runtime retry, whose ADD adopts it.
			return fmt.Errorf("SpiderEndpoint %s/%s was just written for the previous instance of the StatefulSet pod: %w", req.pod.Namespace, req.pod.Name, ipam.ErrConflict)
		case ipam.EndpointPreviousPod:
			// A previous pod of the same name, recorded by another node's agent (so not
			// in this node's cache): it is gone, since this pod has its name now.
			if err := s.releaseEndpoint(ctx, fresh); err != nil {
				return fmt.Errorf("release the IPs of the previous pod named %s/%s: %w", req.pod.Namespace, req.pod.Name, err)
			}
			se = nil
		case ipam.EndpointOtherSandbox:
			// The pod's previous sandbox recorded it a moment ago and this node's cache
			// had not seen it yet: merging would mix two sandboxes' ownership. Roll back
			// and let the runtime retry; by then the cache has it and ADD moves it.
			return fmt.Errorf("SpiderEndpoint %s/%s was just written for another sandbox of the pod: %w", req.pod.Namespace, req.pod.Name, ipam.ErrConflict)
		default:
			se = fresh
		}
	}
	return fmt.Errorf("record SpiderEndpoint %s/%s: %w", req.pod.Namespace, req.pod.Name, ipam.ErrConflict)
}

// newEndpoint is a pod's first SpiderEndpoint. It is owned by the pod, and so deleted
// with it, except when retain (a StatefulSet's pod with fixed IPs): then it outlives the
// pod, and carries the pod's reclaim-policy annotation for garbage collection.
func newEndpoint(pod *corev1.Pod, node, containerID string, retain bool) *v2beta1.SpiderEndpoint {
	kind, name := "Pod", pod.Name
	if top := topControllerOf(pod); !top.IsZero() {
		kind, name = top.Kind, top.Name
	}
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID: string(pod.UID), Node: node,
				Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: containerID},
			},
			OwnerControllerType: kind, OwnerControllerName: name,
		},
	}
	if retain {
		setReclaimPolicy(se, pod)
	} else {
		// Deleted with the pod by Kubernetes' garbage collector once the pod is gone.
		se.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}
	}
	return se
}

// setReclaimPolicy copies the pod's reclaim-policy annotation onto its endpoint, where
// garbage collection reads it (it holds after the StatefulSet is gone).
func setReclaimPolicy(se *v2beta1.SpiderEndpoint, pod *corev1.Pod) {
	v, ok := pod.Annotations[ipam.AnnoReclaimPolicy]
	if !ok {
		delete(se.Annotations, ipam.AnnoReclaimPolicy)
		return
	}
	if se.Annotations == nil {
		se.Annotations = map[string]string{}
	}
	se.Annotations[ipam.AnnoReclaimPolicy] = v
}

// retainsFor tells whether the pod keeps its addresses across re-creation: a
// StatefulSet's pod, with StatefulSet fixed IPs on, that does not opt out (or, with
// fixedIPOptIn, opts in) by ipam.FixedIPWanted, whose error it returns for a bad
// annotation. Other pods' annotations are not read.
func (s *Service) retainsFor(pod *corev1.Pod) (bool, error) {
	if !s.statefulSetFixedIPs {
		return false, nil
	}
	top := topControllerOf(pod)
	if top.Kind != ipam.KindStatefulSet || !strings.HasPrefix(top.APIVersion, "apps/") {
		return false, nil
	}
	return ipam.FixedIPWanted(pod.Annotations, s.fixedIPOptIn)
}

// relate is ipam.RelateEndpoint for a pod's endpoint (nil: none) and an ADD of the pod's
// sandbox ctr; retain is retainsFor's answer for the pod.
func (s *Service) relate(se *v2beta1.SpiderEndpoint, pod *corev1.Pod, ctr string, retain bool) ipam.EndpointRelation {
	return ipam.RelateEndpoint(endpointFacts(se, pod), ipam.CallFacts{PodUID: string(pod.UID), ContainerID: ctr, Retains: retain, Add: true})
}

// endpointFacts are what ipam.RelateEndpoint needs of an endpoint (nil: none); pod, when
// set, is the pod of the call: the endpoint is kept for it when no pod owns the endpoint
// and it names the pod's StatefulSet.
func endpointFacts(se *v2beta1.SpiderEndpoint, pod *corev1.Pod) ipam.EndpointFacts {
	if se == nil {
		return ipam.EndpointFacts{}
	}
	f := ipam.EndpointFacts{Exists: true, PodUID: se.Status.Current.UID, ContainerID: containerOf(se)}
	if pod != nil {
		top := topControllerOf(pod)
		f.KeptFor = len(se.OwnerReferences) == 0 && se.Status.OwnerControllerType == ipam.KindStatefulSet && se.Status.OwnerControllerName == top.Name
	}
	return f
}

// keptPoolsServe refuses, with ErrKeptIPNotServed, to let a StatefulSet pod's kept
// addresses go because it was scheduled to a node their pool does not serve: the pod
// would silently get another address. A kept pool that is gone, or that serves this
// node but is no longer chosen (the pod's pool annotation changed), lets them go.
func (s *Service) keptPoolsServe(ctx context.Context, se *v2beta1.SpiderEndpoint, nic *v2beta1.IPAllocationDetail, c candidates) error {
	node, err := s.cluster.Node(ctx)
	if err != nil {
		return fmt.Errorf("look up this node: %w", err)
	}
	for _, kept := range []struct {
		pool, addr *string
		chosen     []string
	}{{nic.IPv4Pool, nic.IPv4, c.ipv4}, {nic.IPv6Pool, nic.IPv6, c.ipv6}} {
		if kept.pool == nil || slices.Contains(kept.chosen, *kept.pool) {
			continue
		}
		sp, err := s.cluster.Pool(ctx, *kept.pool)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if why := ipam.NodeRefusal(sp, node, ""); why != "" {
			return fmt.Errorf("%w: StatefulSet pod %s/%s keeps %s of SpiderIPPool %q, whose %s; it does not take another address silently: "+
				"schedule it on a node the pool serves (a nodeAffinity on the StatefulSet), widen the pool's nodeName or nodeAffinity, "+
				"or delete SpiderEndpoint %s/%s to let it take a new address",
				ipam.ErrKeptIPNotServed, se.Namespace, se.Name, ptr.Deref(kept.addr, ""), *kept.pool, why, se.Namespace, se.Name)
		}
	}
	return nil
}

// stillChosen tells whether a NIC's recorded pools are among the ones selection would
// choose now, family by family.
func stillChosen(nic *v2beta1.IPAllocationDetail, c candidates) bool {
	ok := func(pool *string, chosen []string) bool {
		return pool == nil || slices.Contains(chosen, *pool)
	}
	return ok(nic.IPv4Pool, c.ipv4) && ok(nic.IPv6Pool, c.ipv6)
}

// moveEndpoint hands every address of the endpoint to the pod's sandbox newCtr, in the
// pools first: the runtime re-created the pod's sandbox, or a StatefulSet re-created the
// pod (a new UID). The endpoint names one container for all of the pod's interfaces, so
// all of them move together. An interface whose addresses the previous holder no longer
// holds (released, or collected, and perhaps handed to someone else since) is dropped
// from the endpoint instead of reused; its ADD allocates afresh, and any of its
// addresses that did move come back to it then, since allocation is idempotent per
// owner.
func (s *Service) moveEndpoint(ctx context.Context, se *v2beta1.SpiderEndpoint, pod *corev1.Pod, newCtr string) (*v2beta1.SpiderEndpoint, error) {
	oldUID, oldCtr, newUID := se.Status.Current.UID, containerOf(se), string(pod.UID)
	next := se.DeepCopy()
	next.Status.Current.IPs = nil
	for i := range se.Status.Current.IPs {
		nic := &se.Status.Current.IPs[i]
		from, to := records.OwnerOf(oldUID, oldCtr, nic.NIC), records.OwnerOf(newUID, newCtr, nic.NIC)
		moved := true
		for _, a := range nicAddrs(nic) {
			ok, err := s.writers.get(a.pool).Rebind(ctx, a.addr, from, to)
			if err != nil && !errors.Is(err, ipam.ErrPoolNotFound) {
				return nil, err
			}
			moved = moved && ok
		}
		if moved {
			next.Status.Current.IPs = append(next.Status.Current.IPs, *nic)
		} else {
			s.log.Info("not reusing addresses their previous holder no longer holds", "SpiderEndpoint", klog.KObj(se), "ifName", nic.NIC)
		}
	}
	if next.Status.Current.Orbweaver == nil {
		next.Status.Current.Orbweaver = &v2beta1.PodAllocationOrbweaver{}
	}
	next.Status.Current.Orbweaver.ContainerID = newCtr
	next.Status.Current.UID = newUID
	next.Status.Current.Node = s.node
	if len(next.OwnerReferences) == 0 {
		setReclaimPolicy(next, pod)
	}
	if err := s.endpoints.Update(ctx, next); err != nil {
		return nil, err
	}
	return next, nil
}

type poolAddr struct {
	pool string
	addr netip.Addr
}

func nicAddrs(nic *v2beta1.IPAllocationDetail) []poolAddr {
	var out []poolAddr
	for _, f := range []struct{ cidr, pool *string }{{nic.IPv4, nic.IPv4Pool}, {nic.IPv6, nic.IPv6Pool}} {
		if f.cidr == nil || f.pool == nil {
			continue
		}
		if p, err := netip.ParsePrefix(*f.cidr); err == nil {
			out = append(out, poolAddr{*f.pool, p.Addr()})
		}
	}
	return out
}

func resultOf(nic *v2beta1.IPAllocationDetail) *models.AddResult {
	res := &models.AddResult{}
	add := func(version int64, cidr, pool, gw *string) {
		if cidr == nil {
			return
		}
		res.Ips = append(res.Ips, &models.IPConfig{Version: ptr.To(version), Address: cidr, Pool: pool, Gateway: ptr.Deref(gw, ""), Nic: nic.NIC})
	}
	add(4, nic.IPv4, nic.IPv4Pool, nic.IPv4Gateway)
	add(6, nic.IPv6, nic.IPv6Pool, nic.IPv6Gateway)
	for _, r := range nic.Routes {
		res.Routes = append(res.Routes, &models.Route{IfName: nic.NIC, Dst: ptr.To(r.Dst), Gw: string(r.Gw)})
	}
	return res
}

// setNetwork records which CNI network attached an interface.
func setNetwork(se *v2beta1.SpiderEndpoint, nic, network string) {
	if se.Status.Current.Orbweaver == nil {
		se.Status.Current.Orbweaver = &v2beta1.PodAllocationOrbweaver{}
	}
	o := se.Status.Current.Orbweaver
	if network == "" {
		delete(o.Networks, nic)
		return
	}
	if o.Networks == nil {
		o.Networks = map[string]string{}
	}
	o.Networks[nic] = network
}

func containerOf(se *v2beta1.SpiderEndpoint) string {
	if se.Status.Current.Orbweaver == nil {
		return ""
	}
	return se.Status.Current.Orbweaver.ContainerID
}

func findNIC(se *v2beta1.SpiderEndpoint, ifName string) *v2beta1.IPAllocationDetail {
	for i := range se.Status.Current.IPs {
		if se.Status.Current.IPs[i].NIC == ifName {
			return &se.Status.Current.IPs[i]
		}
	}
	return nil
}

// releaseEndpoint frees every address an endpoint records and deletes it.
func (s *Service) releaseEndpoint(ctx context.Context, se *v2beta1.SpiderEndpoint) error {
	ctr := containerOf(se)
	var errs []error
	for i := range se.Status.Current.IPs {
		nic := &se.Status.Current.IPs[i]
		owner := records.OwnerOf(se.Status.Current.UID, ctr, nic.NIC)
		for _, a := range nicAddrs(nic) {
			if _, err := s.writers.get(a.pool).Release(ctx, a.addr, owner); err != nil && !errors.Is(err, ipam.ErrPoolNotFound) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.endpoints.Delete(ctx, se)
}

func podRef(att *models.Attachment) string { return *att.PodNamespace + "/" + *att.PodName }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// NotReady returns why the agent cannot allocate now, or nothing when it can: its caches
// have synced and at least one pool exists. Full pools do not count: a runtime that
// takes CNI STATUS for the node's network readiness (containerd 2 with CNI 1.1) would
// mark every node NotReady, and Kubernetes evict its pods, because one pool filled up.
// A full pool fails the ADDs that need it, with an event on each pod, instead.
func (s *Service) NotReady(ctx context.Context) []string {
	if !s.synced() {
		return []string{"the agent's caches have not synced with the API server yet"}
	}
	pools, err := s.cluster.Pools(ctx)
	if err != nil {
		return []string{fmt.Sprintf("cannot list SpiderIPPools: %v", err)}
	}
	if len(pools) == 0 {
		return []string{"no SpiderIPPool exists: create one (docs/guides/pools-and-annotations.md)"}
	}
	return nil
}
