package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
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
	// kinds are the controllers whose pods keep their addresses: apps' StatefulSet and
	// those added by --stateful-workload-kinds.
	kinds ipam.StatefulKinds
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
	// StatefulKinds: see Config.StatefulKinds.
	StatefulKinds ipam.StatefulKinds
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
		synced: p.Synced, statefulSetFixedIPs: p.StatefulSetFixedIPs, fixedIPOptIn: p.StatefulSetFixedIPOptIn, kinds: p.StatefulKinds, autoPoolWait: p.AutoPoolWait,
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
