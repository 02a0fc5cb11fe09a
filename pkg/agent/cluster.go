package agent

import (
	"context"
	"fmt"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// cachedCluster answers the agent's reads from informer caches scoped to what one node
// needs: its own pods, its own node and its own SpiderEndpoints (by field selector), and
// every namespace, pool and reserved IP (small, cluster-wide objects). A pod the cache
// has not seen yet, or has under another UID, is read from the API server: the kubelet
// may call CNI ADD before this node's watch delivers the pod.
type cachedCluster struct {
	cache  cache.Cache
	direct client.Reader
	node   string

	mu       sync.Mutex
	reserved [2]*ip.Set // [0] IPv4, [1] IPv6; nil when stale
}

var _ Cluster = (*cachedCluster)(nil)

// nodeScopedCacheOptions returns cache options that watch only what the agent of node
// needs; managed fields are dropped to keep memory small.
func nodeScopedCacheOptions(scheme *runtime.Scheme, node string) cache.Options {
	return cache.Options{
		Scheme:           scheme,
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:             {Field: fields.OneTermEqualSelector("spec.nodeName", node)},
			&corev1.Node{}:            {Field: fields.OneTermEqualSelector("metadata.name", node)},
			&v2beta1.SpiderEndpoint{}: {Field: fields.OneTermEqualSelector("status.current.node", node)},
			// Only the blocks that grant this node addresses (node grants).
			&ipamv1.IPBlock{}: {Label: nodeBlockSelector(node)},
		},
	}
}

func (h clusterHooks) changedGrants() {
	if h.grantsChanged != nil {
		h.grantsChanged()
	}
}

// nodeBlockSelector selects the IPBlocks that name node.
func nodeBlockSelector(node string) labels.Selector {
	req, err := labels.NewRequirement(ipam.BlockNodeLabel(node), selection.Exists, nil)
	if err != nil {
		panic(err) // the key is a fixed prefix and a hex digest: always valid
	}
	return labels.NewSelector().Add(*req)
}

// clusterHooks are called on changes the agent reacts to.
type clusterHooks struct {
	// grantsChanged runs when what the node's demand depends on changes (node grants):
	// its grants, its endpoints, its pods, a pool or a reserved IP.
	grantsChanged func()
	// reservedChanged runs whenever a SpiderReservedIP changes.
	reservedChanged func()
	// poolChanged runs whenever a SpiderIPPool is added or updated.
	poolChanged func(*v2beta1.SpiderIPPool)
	// nodePresent runs when this agent's Node object appears (true) or is deleted (false).
	nodePresent func(bool)
}

// RBAC of the caches (list and watch: pods and SpiderEndpoints of this node, its Node,
// its IPBlocks, namespaces, pools, reserved IPs) and of the fresh reads: a pod, a Job's
// controller, a pool and the pools.
//
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes;namespaces,verbs=list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools,verbs=get;list;watch
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderendpoints;spiderreservedips,verbs=list;watch
// +kubebuilder:rbac:groups=ipam.orbweaver.io,resources=ipblocks,verbs=list;watch

// newCachedCluster starts informers for every kind the agent reads and registers the
// hooks.
func newCachedCluster(ctx context.Context, c cache.Cache, direct client.Reader, node string, hooks clusterHooks) (*cachedCluster, error) {
	cc := &cachedCluster{cache: c, direct: direct, node: node}
	for _, obj := range []client.Object{&corev1.Pod{}, &corev1.Node{}, &corev1.Namespace{}, &v2beta1.SpiderIPPool{}, &v2beta1.SpiderEndpoint{}} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, fmt.Errorf("start informer for %T: %w", obj, err)
		}
	}
	for _, obj := range []client.Object{&ipamv1.IPBlock{}, &v2beta1.SpiderEndpoint{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("start informer for %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { hooks.changedGrants() },
			UpdateFunc: func(any, any) { hooks.changedGrants() },
			DeleteFunc: func(any) { hooks.changedGrants() },
		}); err != nil {
			return nil, fmt.Errorf("watch %T: %w", obj, err)
		}
	}
	// A pod bound to the node, or gone from it, changes the node's forecast.
	pods, err := c.GetInformer(ctx, &corev1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("start informer for Pod: %w", err)
	}
	if _, err := pods.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { hooks.changedGrants() },
		DeleteFunc: func(any) { hooks.changedGrants() },
	}); err != nil {
		return nil, fmt.Errorf("watch Pod: %w", err)
	}
	inf, err := c.GetInformer(ctx, &v2beta1.SpiderReservedIP{})
	if err != nil {
		return nil, fmt.Errorf("start informer for SpiderReservedIP: %w", err)
	}
	changed := func() {
		cc.mu.Lock()
		cc.reserved = [2]*ip.Set{}
		cc.mu.Unlock()
		hooks.reservedChanged()
		hooks.changedGrants() // a reserved address granted to the node goes back
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	}); err != nil {
		return nil, fmt.Errorf("watch SpiderReservedIP: %w", err)
	}
	nodes, err := c.GetInformer(ctx, &corev1.Node{})
	if err != nil {
		return nil, fmt.Errorf("start informer for Node: %w", err)
	}
	if _, err := nodes.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { hooks.nodePresent(true) },
		DeleteFunc: func(any) { hooks.nodePresent(false) },
	}); err != nil {
		return nil, fmt.Errorf("watch Node: %w", err)
	}
	pools, err := c.GetInformer(ctx, &v2beta1.SpiderIPPool{})
	if err != nil {
		return nil, fmt.Errorf("start informer for SpiderIPPool: %w", err)
	}
	poolChanged := func(obj any) {
		if sp, ok := obj.(*v2beta1.SpiderIPPool); ok {
			hooks.poolChanged(sp)
		}
	}
	// An address that left the pool's addresses goes back; the status, written every
	// few seconds while pods come and go, changes nothing the node asks for.
	specChanged := func(old, obj any) {
		o, ok1 := old.(*v2beta1.SpiderIPPool)
		n, ok2 := obj.(*v2beta1.SpiderIPPool)
		if !ok1 || !ok2 || o.Generation != n.Generation || o.GrantsMode() != n.GrantsMode() {
			hooks.changedGrants()
		}
	}
	if _, err := pools.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { poolChanged(obj); hooks.changedGrants() },
		UpdateFunc: func(old, obj any) { poolChanged(obj); specChanged(old, obj) },
	}); err != nil {
		return nil, fmt.Errorf("watch SpiderIPPool: %w", err)
	}
	return cc, nil
}

func (c *cachedCluster) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	err := c.cache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pod)
	if err == nil {
		return pod, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if err := c.direct.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

// FreshPod reads the pod from the API server, for when the cached copy may be stale
// (its UID differs from the one the runtime names).
func (c *cachedCluster) FreshPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	if err := c.direct.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pod); err != nil {
		return nil, err
	}
	return pod, nil
}

// JobController returns the controller of a Job (its CronJob), nil when it has none; read
// from the API server, only for Job pods that ask for an auto pool.
func (c *cachedCluster) JobController(ctx context.Context, namespace, name string) (*metav1.OwnerReference, error) {
	job := &batchv1.Job{}
	if err := c.direct.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, job); err != nil {
		return nil, err
	}
	return metav1.GetControllerOf(job), nil
}

func (c *cachedCluster) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{}
	if err := c.cache.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return nil, err
	}
	return ns, nil
}

func (c *cachedCluster) Node(ctx context.Context) (*corev1.Node, error) {
	node := &corev1.Node{}
	if err := c.cache.Get(ctx, client.ObjectKey{Name: c.node}, node); err != nil {
		return nil, fmt.Errorf("node %q: %w", c.node, err)
	}
	return node, nil
}

func (c *cachedCluster) Pools(ctx context.Context) ([]v2beta1.SpiderIPPool, error) {
	var list v2beta1.SpiderIPPoolList
	if err := c.cache.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (c *cachedCluster) FreshPools(ctx context.Context) ([]v2beta1.SpiderIPPool, error) {
	var list v2beta1.SpiderIPPoolList
	if err := c.direct.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

func (c *cachedCluster) Pool(ctx context.Context, name string) (*v2beta1.SpiderIPPool, error) {
	pool := &v2beta1.SpiderIPPool{}
	err := c.cache.Get(ctx, client.ObjectKey{Name: name}, pool)
	if apierrors.IsNotFound(err) {
		// Created a moment ago and not in the cache yet (see FreshPools).
		err = c.direct.Get(ctx, client.ObjectKey{Name: name}, pool)
	}
	if err != nil {
		return nil, fmt.Errorf("SpiderIPPool %q: %w", name, err)
	}
	return pool, nil
}

func (c *cachedCluster) HasEndpoint(namespace, name string) bool {
	err := c.cache.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &v2beta1.SpiderEndpoint{})
	return !apierrors.IsNotFound(err) // on any other error, ask the API server
}

func (c *cachedCluster) Endpoints(ctx context.Context) ([]v2beta1.SpiderEndpoint, error) {
	var list v2beta1.SpiderEndpointList
	if err := c.cache.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// PendingPods returns this node's pods in the pod network that are neither terminating
// nor finished and have no SpiderEndpoint yet, from the caches (read only).
func (c *cachedCluster) PendingPods(ctx context.Context) ([]*corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.cache.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	var eps v2beta1.SpiderEndpointList
	if err := c.cache.List(ctx, &eps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(eps.Items))
	for i := range eps.Items {
		have[eps.Items[i].Status.Current.UID] = true
	}
	var out []*corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.HostNetwork || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || have[string(p.UID)] {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// SpiderPoolAgent returns a running pod of SpiderPool's agent on this node, from the
// cache of the node's pods.
func (c *cachedCluster) SpiderPoolAgent(ctx context.Context) (*corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.cache.List(ctx, &pods, client.MatchingLabelsSelector{Selector: ipam.SpiderPoolPodSelector()}); err != nil {
		return nil, err
	}
	for i := range pods.Items {
		if ipam.SpiderPoolRunning(&pods.Items[i]) == ipam.SpiderPoolAgentComponent {
			return &pods.Items[i], nil
		}
	}
	return nil, nil
}

// Reserved returns the union of every SpiderReservedIP of a family, computed once per
// change of the reserved IPs.
func (c *cachedCluster) Reserved(is4 bool) ip.Set {
	i := 1
	if is4 {
		i = 0
	}
	c.mu.Lock()
	if s := c.reserved[i]; s != nil {
		c.mu.Unlock()
		return *s
	}
	c.mu.Unlock()
	var list v2beta1.SpiderReservedIPList
	if err := c.cache.List(context.Background(), &list); err != nil {
		return ip.Set{}
	}
	s := ipam.ReservedAddresses(list.Items, ipam.FamilyOf(is4))
	c.mu.Lock()
	c.reserved[i] = &s
	c.mu.Unlock()
	return s
}
