package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// grantsProto is the quick measurement behind docs/design/node-grants.md, not orbweaver's
// code: the node-grant protocol reduced to its API traffic, so that its cost can be read
// beside the floor and orbweaver in one run before the real thing is built.
//
//   - A pool's addresses are split into blocks of grantBlock offsets. A block is an
//     object (here a ConfigMap, named for the pool and the block's index) that says which
//     node each granted address belongs to, and carries one label per node it names.
//   - Each node's agent watches only the blocks labelled with its node, and hands the
//     addresses granted to it to pods from memory: an ADD writes the pod's SpiderEndpoint
//     and nothing else (the floor's one write).
//   - A node that has no free address writes its demand (need = addresses in use or
//     waited for, want = need + a buffer) into its own object, and waits for a grant.
//   - One controller watches the demands and the blocks, grants free addresses (need
//     first, buffers only from what no node needs), batching every grant of a round into
//     one write per block, with the block's resourceVersion as precondition.
//
// Left out because they cost nothing per allocation: giving back buffers under pressure
// (the measured runs use no buffer on exact-fit pools), restarts, GC.
type grantsProto struct {
	mu     sync.Mutex
	h      *Harness
	pools  []Pool
	nodes  map[string]*grantNode
	ctrl   *grantController
	eps    map[string]*v2beta1.SpiderEndpoint
	runCtx context.Context
	cancel context.CancelFunc
	buffer int
}

const (
	grantNS    = "grants-proto"
	grantBlock = 64
	// grantNodeLabel prefixes the label a block carries for each node it names.
	grantNodeLabel = "n.grants.orbweaver.io/"
	grantPoolLabel = "grants.orbweaver.io/pool"
	grantKind      = "grants.orbweaver.io/kind"
)

func newGrantsPeer(p PeerParams) (Peer, error) {
	return &grantsProto{buffer: p.ReserveSize}, nil
}

func (g *grantsProto) Name() string               { return "grants-proto" }
func (g *grantsProto) Binary() string             { return "" }
func (g *grantsProto) NetConf(string, int) []byte { return nil }

func nodeLabelKey(node string) string {
	sum := sha256.Sum256([]byte(node))
	return grantNodeLabel + hex.EncodeToString(sum[:8])
}

func blockName(pool string, index int) string { return fmt.Sprintf("%s.b%d", pool, index) }

func (g *grantsProto) Setup(ctx context.Context, h *Harness, sc Scenario) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.nodes == nil {
		if err := h.ensureNamespace(ctx, grantNS); err != nil {
			return err
		}
		g.h, g.nodes, g.eps = h, map[string]*grantNode{}, map[string]*v2beta1.SpiderEndpoint{}
		runCtx, cancel := context.WithCancel(context.Background())
		g.runCtx, g.cancel = runCtx, cancel
		cs, err := kubernetes.NewForConfig(h.ClientConfig())
		if err != nil {
			return err
		}
		g.ctrl = newGrantController(cs)
		go g.ctrl.run(runCtx)
		if !cache.WaitForCacheSync(ctx.Done(), g.ctrl.synced...) {
			return errors.New("grants-proto: controller caches not synced")
		}
	}
	if !sc.Reused {
		// A new scenario starts from nothing granted: the pool of the same name in an
		// earlier scenario may have granted everything to nodes that are idle now (the
		// prototype gives nothing back).
		if err := h.Env.Client.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(grantNS), client.HasLabels{grantKind}); err != nil {
			return fmt.Errorf("grants-proto: reset: %w", err)
		}
		if err := waitEmpty(ctx, g.ctrl.blocks, g.ctrl.demands); err != nil {
			return err
		}
		g.pools = sc.Pools
		g.ctrl.setPools(sc.Pools)
		for _, n := range g.nodes {
			if err := waitEmpty(ctx, n.inf); err != nil {
				return err
			}
			n.setPools(sc.Pools)
		}
	}
	var wait []cache.InformerSynced
	for _, name := range sc.Nodes {
		if g.nodes[name] != nil {
			continue
		}
		n, err := newGrantNode(g.h, name, g.pools, g.buffer)
		if err != nil {
			return err
		}
		g.nodes[name] = n
		go n.run(g.runCtx)
		wait = append(wait, n.synced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), wait...) {
		return errors.New("grants-proto: node caches not synced")
	}
	return nil
}

func (g *grantsProto) Call(ctx context.Context, command string, pod *Pod) (netip.Addr, error) {
	g.mu.Lock()
	n := g.nodes[pod.Node]
	g.mu.Unlock()
	switch command {
	case "ADD":
		a, err := n.take(ctx, pod.Pool)
		if err != nil {
			return netip.Addr{}, err
		}
		pool := g.pools[pod.Pool]
		se := benchEndpoint(pod, pool, a)
		if err := n.c.Create(ctx, se); err != nil {
			n.give(pod.Pool, a)
			return netip.Addr{}, fmt.Errorf("create SpiderEndpoint: %w", err)
		}
		g.mu.Lock()
		g.eps[pod.String()] = se
		g.mu.Unlock()
		return a, nil
	case "DEL":
		g.mu.Lock()
		se := g.eps[pod.String()]
		delete(g.eps, pod.String())
		g.mu.Unlock()
		if se == nil {
			return netip.Addr{}, nil
		}
		if err := n.c.Delete(ctx, se); err != nil && !apierrors.IsNotFound(err) {
			return netip.Addr{}, fmt.Errorf("delete SpiderEndpoint: %w", err)
		}
		if p, err := netip.ParsePrefix(*se.Status.Current.IPs[0].IPv4); err == nil {
			n.give(pod.Pool, p.Addr())
		}
		return netip.Addr{}, nil
	}
	return netip.Addr{}, fmt.Errorf("grants-proto: %s is not supported", command)
}

// Teardown stops the controller and the nodes (the next Setup starts them afresh) and
// deletes what they wrote.
func (g *grantsProto) Teardown(ctx context.Context) error {
	if g.cancel == nil {
		return nil
	}
	g.cancel()
	g.cancel, g.nodes, g.ctrl = nil, nil, nil
	var errs []error
	for _, se := range g.eps {
		if err := g.h.Env.Client.Delete(ctx, se); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	g.eps = nil
	if err := g.h.Env.Client.DeleteAllOf(ctx, &corev1.ConfigMap{}, client.InNamespace(grantNS),
		client.HasLabels{grantKind}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitEmpty waits until the informers hold nothing.
func waitEmpty(ctx context.Context, infs ...cache.SharedIndexInformer) error {
	for _, inf := range infs {
		for len(inf.GetStore().List()) > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("grants-proto: reset: %w", ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

// benchEndpoint is the SpiderEndpoint a pod with one IPv4 address on eth0 gets.
func benchEndpoint(pod *Pod, pool Pool, a netip.Addr) *v2beta1.SpiderEndpoint {
	return &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: types.UID(pod.UID)}}},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID: pod.UID, Node: pod.Node,
				IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr(fmt.Sprintf("%s/%d", a, pool.Prefix.Bits())), IPv4Pool: ptr(pool.Name)}},
				Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: pod.ContainerID},
			},
			OwnerControllerType: "Pod", OwnerControllerName: pod.Name,
		},
	}
}

// poolOffset is a's offset from the pool's first address (the bench's pools are far
// smaller than 2^31 addresses, so the low 32 bits tell).
func poolOffset(p Pool, a netip.Addr) int { return low32(a) - low32(p.First) }

func low32(a netip.Addr) int {
	b := a.As16()
	return int(b[12])<<24 | int(b[13])<<16 | int(b[14])<<8 | int(b[15])
}

func poolAddr(p Pool, off int) netip.Addr {
	b := p.First.As16()
	v := low32(p.First) + off
	b[12], b[13], b[14], b[15] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	a := netip.AddrFrom16(b)
	if p.First.Is4() {
		a = a.Unmap()
	}
	return a
}

// ---- node side ----

type grantNode struct {
	name   string
	c      client.Client
	cs     *kubernetes.Clientset
	inf    cache.SharedIndexInformer
	synced cache.InformerSynced
	buffer int

	mu      sync.Mutex
	pools   []Pool
	granted []map[int]bool // per pool: offsets granted to this node
	used    []map[int]bool // per pool: offsets handed to pods
	pending []int          // per pool: ADDs waiting for a grant
	wake    chan struct{}  // closed and replaced when grants change
	demand  chan struct{}  // signals the demand writer
	written map[string]string
}

func newGrantNode(h *Harness, name string, pools []Pool, buffer int) (*grantNode, error) {
	c, err := client.New(h.ClientConfig(), client.Options{Scheme: h.Env.Scheme})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(h.ClientConfig())
	if err != nil {
		return nil, err
	}
	n := &grantNode{name: name, c: c, cs: cs, buffer: buffer, wake: make(chan struct{}), demand: make(chan struct{}, 1)}
	n.setPools(pools)
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(grantNS),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = nodeLabelKey(name) }))
	n.inf = f.Core().V1().ConfigMaps().Informer()
	n.synced = n.inf.HasSynced
	_, _ = n.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { n.regrant() },
		UpdateFunc: func(any, any) { n.regrant() },
		DeleteFunc: func(any) { n.regrant() },
	})
	return n, nil
}

func (n *grantNode) setPools(pools []Pool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pools = pools
	n.granted, n.used, n.pending = make([]map[int]bool, len(pools)), make([]map[int]bool, len(pools)), make([]int, len(pools))
	for i := range pools {
		n.granted[i], n.used[i] = map[int]bool{}, map[int]bool{}
	}
	n.written = map[string]string{}
}

func (n *grantNode) run(ctx context.Context) {
	go n.inf.Run(ctx.Done())
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.demand:
		}
		time.Sleep(5 * time.Millisecond) // let the node's concurrent ADDs join one write
		if err := n.writeDemand(ctx); err != nil && ctx.Err() == nil {
			select {
			case n.demand <- struct{}{}:
			default:
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// regrant rebuilds the granted sets from the blocks the node's watch holds.
func (n *grantNode) regrant() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range n.granted {
		n.granted[i] = map[int]bool{}
	}
	for _, o := range n.inf.GetStore().List() {
		cm := o.(*corev1.ConfigMap)
		pi := slices.IndexFunc(n.pools, func(p Pool) bool { return p.Name == cm.Labels[grantPoolLabel] })
		if pi < 0 {
			continue
		}
		base, _ := strconv.Atoi(cm.Annotations["base"])
		for _, f := range strings.Split(cm.Data[n.name], ",") {
			if off, err := strconv.Atoi(f); err == nil {
				n.granted[pi][base+off] = true
			}
		}
	}
	close(n.wake)
	n.wake = make(chan struct{})
}

func (n *grantNode) take(ctx context.Context, pool int) (netip.Addr, error) {
	n.mu.Lock()
	waiting := false
	defer func() {
		if waiting {
			n.pending[pool]--
		}
		n.mu.Unlock()
	}()
	for {
		for off := range n.granted[pool] {
			if !n.used[pool][off] {
				n.used[pool][off] = true
				return poolAddr(n.pools[pool], off), nil
			}
		}
		if !waiting {
			waiting = true
			n.pending[pool]++
		}
		select {
		case n.demand <- struct{}{}:
		default:
		}
		wake := n.wake
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			n.mu.Lock()
			return netip.Addr{}, fmt.Errorf("no grant for node %s in pool %s: %w", n.name, n.pools[pool].Name, ctx.Err())
		case <-wake:
		}
		n.mu.Lock()
	}
}

func (n *grantNode) give(pool int, a netip.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.used[pool], poolOffset(n.pools[pool], a))
}

func (n *grantNode) writeDemand(ctx context.Context) error {
	n.mu.Lock()
	data := map[string]string{}
	for i, p := range n.pools {
		need := len(n.used[i]) + n.pending[i]
		data[p.Name] = fmt.Sprintf("%d,%d", need, need+n.buffer)
	}
	same := maps.Equal(data, n.written)
	n.mu.Unlock()
	if same {
		return nil
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: grantNS, Name: "demand." + n.name,
		Labels: map[string]string{grantKind: "demand"}}, Data: data}
	err := n.c.Update(ctx, cm)
	if apierrors.IsNotFound(err) {
		err = n.c.Create(ctx, cm)
	}
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.written = data
	n.mu.Unlock()
	return nil
}

// ---- controller side ----

type grantController struct {
	cs      *kubernetes.Clientset
	demands cache.SharedIndexInformer
	blocks  cache.SharedIndexInformer
	synced  []cache.InformerSynced
	kick    chan struct{}

	mu    sync.Mutex
	pools []Pool
	// written holds the controller's own block writes until its watch catches up, so a
	// round never starts from a block older than what it wrote itself.
	written map[string]*corev1.ConfigMap
	// writes and conflicts count the block writes.
	writes, conflicts int
}

func newGrantController(cs *kubernetes.Clientset) *grantController {
	c := &grantController{cs: cs, kick: make(chan struct{}, 1), written: map[string]*corev1.ConfigMap{}}
	kinds := func(kind string) informers.SharedInformerFactory {
		return informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(grantNS),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.LabelSelector = labels.SelectorFromSet(labels.Set{grantKind: kind}).String()
				o.FieldSelector = fields.Everything().String()
			}))
	}
	c.demands = kinds("demand").Core().V1().ConfigMaps().Informer()
	c.blocks = kinds("block").Core().V1().ConfigMaps().Informer()
	c.synced = []cache.InformerSynced{c.demands.HasSynced, c.blocks.HasSynced}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.poke() },
		UpdateFunc: func(any, any) { c.poke() },
	}
	_, _ = c.demands.AddEventHandler(h)
	return c
}

func (c *grantController) setPools(p []Pool) {
	c.mu.Lock()
	c.pools = p
	c.written = map[string]*corev1.ConfigMap{}
	c.mu.Unlock()
	c.poke()
}

func (c *grantController) poke() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *grantController) run(ctx context.Context) {
	go c.demands.Run(ctx.Done())
	go c.blocks.Run(ctx.Done())
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		time.Sleep(10 * time.Millisecond) // one round takes every demand that came meanwhile
		if err := c.round(ctx); err != nil && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			c.poke()
		}
	}
}

type blockState struct {
	name  string
	pool  int
	base  int
	rv    string
	owner map[int]string // offset within pool -> node
	dirty bool
}

// round grants what the demands ask for and writes the changed blocks.
func (c *grantController) round(ctx context.Context) error {
	c.mu.Lock()
	pools := c.pools
	c.mu.Unlock()
	blocks := map[string]*blockState{}
	owner := make([]map[int]string, len(pools))
	granted := make([]map[string]int, len(pools))
	for i := range pools {
		owner[i], granted[i] = map[int]string{}, map[string]int{}
	}
	poolIndex := func(name string) int {
		return slices.IndexFunc(pools, func(p Pool) bool { return p.Name == name })
	}
	current := map[string]*corev1.ConfigMap{}
	for _, o := range c.blocks.GetStore().List() {
		cm := o.(*corev1.ConfigMap)
		current[cm.Name] = cm
	}
	c.mu.Lock()
	for name, cm := range c.written {
		if seen := current[name]; seen != nil && newerRV(seen.ResourceVersion, cm.ResourceVersion) {
			delete(c.written, name) // the watch caught up
			continue
		}
		current[name] = cm
	}
	c.mu.Unlock()
	for _, cm := range current {
		pi := poolIndex(cm.Labels[grantPoolLabel])
		if pi < 0 {
			continue
		}
		base, _ := strconv.Atoi(cm.Annotations["base"])
		b := &blockState{name: cm.Name, pool: pi, base: base, rv: cm.ResourceVersion, owner: map[int]string{}}
		for node, list := range cm.Data {
			for _, f := range strings.Split(list, ",") {
				if off, err := strconv.Atoi(f); err == nil {
					b.owner[base+off] = node
					owner[pi][base+off] = node
					granted[pi][node]++
				}
			}
		}
		blocks[cm.Name] = b
	}
	type ask struct {
		node       string
		need, want int
	}
	asks := make([][]ask, len(pools))
	for _, o := range c.demands.GetStore().List() {
		cm := o.(*corev1.ConfigMap)
		node := strings.TrimPrefix(cm.Name, "demand.")
		for pname, v := range cm.Data {
			pi := poolIndex(pname)
			if pi < 0 {
				continue
			}
			need, want, _ := strings.Cut(v, ",")
			a := ask{node: node}
			a.need, _ = strconv.Atoi(need)
			a.want, _ = strconv.Atoi(want)
			asks[pi] = append(asks[pi], a)
		}
	}
	for pi, p := range pools {
		sort.Slice(asks[pi], func(i, j int) bool { return asks[pi][i].node < asks[pi][j].node })
		free := p.Size - len(owner[pi])
		grant := func(node string, k int) {
			// Prefer blocks the node has, then empty blocks, then any free address.
			for pass := 0; pass < 3 && k > 0 && free > 0; pass++ {
				for bi := 0; bi*grantBlock < p.Size && k > 0; bi++ {
					b := blocks[blockName(p.Name, bi)]
					switch pass {
					case 0:
						if b == nil || !slices.Contains(slices.Collect(maps.Values(b.owner)), node) {
							continue
						}
					case 1:
						if b != nil && len(b.owner) > 0 {
							continue
						}
					}
					if b == nil {
						b = &blockState{name: blockName(p.Name, bi), pool: pi, base: bi * grantBlock, owner: map[int]string{}}
						blocks[b.name] = b
					}
					for off := b.base; off < min(b.base+grantBlock, p.Size) && k > 0; off++ {
						if _, taken := owner[pi][off]; !taken {
							owner[pi][off], b.owner[off] = node, node
							b.dirty = true
							k--
							free--
						}
					}
				}
			}
		}
		for _, a := range asks[pi] {
			if d := a.need - granted[pi][a.node]; d > 0 {
				grant(a.node, d)
				granted[pi][a.node] += d
			}
		}
		for _, a := range asks[pi] {
			if d := a.want - granted[pi][a.node]; d > 0 && free > 0 {
				grant(a.node, d)
			}
		}
	}
	var errs []error
	for _, b := range blocks {
		if !b.dirty {
			continue
		}
		if err := c.write(ctx, pools[b.pool], b); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newerRV reports whether resourceVersion a is at least b. The prototype treats them as
// the integers etcd makes them; the real controller compares with what it wrote instead.
func newerRV(a, b string) bool {
	x, _ := strconv.ParseUint(a, 10, 64)
	y, _ := strconv.ParseUint(b, 10, 64)
	return x >= y
}

func (c *grantController) write(ctx context.Context, p Pool, b *blockState) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: grantNS, Name: b.name, ResourceVersion: b.rv,
		Labels:      map[string]string{grantKind: "block", grantPoolLabel: p.Name},
		Annotations: map[string]string{"base": strconv.Itoa(b.base)}}, Data: map[string]string{}}
	per := map[string][]string{}
	for off, node := range b.owner {
		per[node] = append(per[node], strconv.Itoa(off-b.base))
	}
	for node, offs := range per {
		sort.Strings(offs)
		cm.Data[node] = strings.Join(offs, ",")
		cm.Labels[nodeLabelKey(node)] = ""
	}
	var err error
	var out *corev1.ConfigMap
	if b.rv == "" {
		out, err = c.cs.CoreV1().ConfigMaps(grantNS).Create(ctx, cm, metav1.CreateOptions{})
	} else {
		out, err = c.cs.CoreV1().ConfigMaps(grantNS).Update(ctx, cm, metav1.UpdateOptions{})
	}
	c.mu.Lock()
	if err == nil {
		c.written[out.Name] = out
	} else {
		delete(c.written, cm.Name) // read the block afresh from the watch
	}
	c.writes++
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		c.conflicts++
	}
	c.mu.Unlock()
	return err
}

var _ Caller = (*grantsProto)(nil)
