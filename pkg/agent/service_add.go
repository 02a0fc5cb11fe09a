package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/go-logr/logr"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// addRequest is one ADD with what the agent looked up for it.
type addRequest struct {
	args  *models.AddArgs
	att   *models.Attachment
	pod   *corev1.Pod
	owner records.Owner
	// retain: the pod keeps its addresses across re-creation (retainsFor).
	retain bool
	// ordinal is the pod's ordinal when it takes the address of it in its pools
	// (ipam.AnnoIPByOrdinal, ordinalFor); -1 otherwise.
	ordinal int
	// log carries the pod, sandbox and interface.
	log logr.Logger
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
// container and interface, and leaves nothing behind when it fails. Its steps, in order:
// the pod (podOf), no SpiderPool agent beside this one (refuseBesideSpiderPool), the
// pod's endpoint and whose it is (endpointFor), the addresses it already holds (reuse),
// new addresses (allocateWaiting), and the record of them (record).
func (s *Service) Add(ctx context.Context, args *models.AddArgs) (res *models.AddResult, err error) {
	start := time.Now()
	att := args.Attachment
	log := s.log.WithValues("Pod", podRef(att), "containerID", short(*att.ContainerID), "ifName", *att.IfName)
	defer func() { s.metrics.observe("add", start, err) }()

	pod, err := s.podOf(ctx, att)
	if err != nil {
		return nil, err
	}
	req := &addRequest{args: args, att: att, pod: pod, owner: records.OwnerOf(string(pod.UID), *att.ContainerID, *att.IfName), ordinal: -1, log: log}
	s.defaults.learn(*att.IfName, args.DefaultIPv4IPPool, args.DefaultIPv6IPPool)
	defer func() {
		if err != nil {
			_, reason := classify(err)
			s.events.Warning(pod, EventAllocationFailed, fmt.Sprintf("%s: %v", reason, err))
			log.Info("allocation failed", "reason", reason, "error", err.Error())
		}
	}()
	if err := s.refuseBesideSpiderPool(ctx); err != nil {
		return nil, err
	}
	if req.retain, err = s.retainsFor(pod); err != nil {
		return nil, fmt.Errorf("pod %s: %w", podRef(att), err)
	}
	if req.ordinal, err = s.ordinalFor(pod, req.retain); err != nil {
		return nil, fmt.Errorf("pod %s: %w", podRef(att), err)
	}
	se, err := s.endpointFor(ctx, req)
	if err != nil {
		return nil, err
	}
	res, cands, se, err := s.reuse(ctx, req, se)
	if res != nil || err != nil {
		return res, err
	}
	allocs, c, err := s.allocateWaiting(ctx, req, cands)
	if err != nil {
		return nil, err
	}
	detail, result := s.describe(*att.IfName, allocs, c.cleanGateway || args.CleanGateway, c.routes)
	if err := s.record(ctx, req, se, detail); err != nil {
		s.rollback(req, allocs)
		return nil, err
	}
	log.V(1).Info("allocated", "ips", result.Ips)
	return result, nil
}

// podOf returns the pod the runtime names. When the cache still holds a previous pod of
// that name, the API server is asked; a pod whose UID is not the one the runtime names
// was re-created, and the runtime retries.
func (s *Service) podOf(ctx context.Context, att *models.Attachment) (*corev1.Pod, error) {
	pod, err := s.cluster.Pod(ctx, *att.PodNamespace, *att.PodName)
	if err != nil {
		return nil, fmt.Errorf("look up pod %s: %w", podRef(att), err)
	}
	if att.PodUID != "" && string(pod.UID) != att.PodUID {
		if pod, err = s.cluster.FreshPod(ctx, *att.PodNamespace, *att.PodName); err != nil {
			return nil, fmt.Errorf("look up pod %s: %w", podRef(att), err)
		}
	}
	if att.PodUID != "" && string(pod.UID) != att.PodUID {
		return nil, fmt.Errorf("pod %s has UID %s, the runtime asked for %s: the pod was re-created; the runtime will retry", podRef(att), pod.UID, att.PodUID)
	}
	return pod, nil
}

// refuseBesideSpiderPool fails while SpiderPool's agent runs on this node: both agents
// would hand out the same free addresses.
func (s *Service) refuseBesideSpiderPool(ctx context.Context) error {
	sp, err := s.cluster.SpiderPoolAgent(ctx)
	if err != nil {
		return fmt.Errorf("look for SpiderPool's agent on this node: %w", err)
	}
	if sp != nil {
		return fmt.Errorf("%w: its agent runs on this node (pod %s/%s); orbweaver allocates nothing here until SpiderPool is uninstalled (docs/guides/migrate-from-spiderpool.md)",
			ipam.ErrSpiderPoolRunning, sp.Namespace, sp.Name)
	}
	return nil
}

// endpointFor returns the endpoint this ADD builds on, nil for none, once it has acted
// on whose the pod's endpoint is (ipam.RelateEndpoint): the addresses of the pod's
// previous sandbox, or of a StatefulSet pod's predecessor, move to this sandbox; those
// of a previous pod of the same name are freed.
func (s *Service) endpointFor(ctx context.Context, req *addRequest) (*v2beta1.SpiderEndpoint, error) {
	att := req.att
	se, err := s.currentEndpoint(ctx, req.pod, req.retain)
	if errors.Is(err, crdstore.ErrEndpointNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	switch s.relate(se, req.pod, *att.ContainerID, req.retain) {
	case ipam.EndpointNone:
		return nil, nil
	case ipam.EndpointPredecessor:
		if se, err = s.moveEndpoint(ctx, se, req.pod, *att.ContainerID); err != nil {
			return nil, fmt.Errorf("give the addresses of StatefulSet pod %s to its new instance: %w", podRef(att), err)
		}
		req.log.Info("StatefulSet pod re-created: it keeps its addresses", "SpiderEndpoint", klog.KObj(se))
	case ipam.EndpointPreviousPod:
		if err := s.releaseEndpoint(ctx, se); err != nil {
			return nil, fmt.Errorf("release the IPs of the previous pod named %s: %w", podRef(att), err)
		}
		return nil, nil
	case ipam.EndpointOtherSandbox:
		if se, err = s.moveEndpoint(ctx, se, req.pod, *att.ContainerID); err != nil {
			return nil, fmt.Errorf("move the addresses of pod %s to its new sandbox: %w", podRef(att), err)
		}
	}
	return se, nil
}

// reuse answers from the addresses the endpoint already records for the interface: a
// repeated ADD gets the same ones, and a StatefulSet pod keeps its own while its pools
// are still the ones it would choose. When a changed pool annotation chose other pools,
// the kept addresses are released, and reuse returns the pools chosen and the endpoint
// as it is after the release. A nil result and nil error mean: allocate, from cands when
// not nil.
func (s *Service) reuse(ctx context.Context, req *addRequest, se *v2beta1.SpiderEndpoint) (*models.AddResult, *candidates, *v2beta1.SpiderEndpoint, error) {
	if se == nil {
		return nil, nil, nil, nil
	}
	ifName := *req.att.IfName
	nic := findNIC(se, ifName)
	if nic == nil {
		return nil, nil, se, nil
	}
	if !req.retain {
		return resultOf(nic), nil, se, nil
	}
	cands, err := s.selectPoolsWaiting(ctx, req)
	if err != nil && !errors.Is(err, ipam.ErrPoolRefused) {
		return nil, nil, nil, err
	}
	if err == nil && stillChosen(nic, cands) {
		return resultOf(nic), nil, se, nil
	}
	if kerr := s.keptPoolsServe(ctx, se, nic, cands); kerr != nil {
		return nil, nil, nil, kerr
	}
	if err != nil {
		return nil, nil, nil, err
	}
	req.log.Info("the pod's pools changed: releasing its kept addresses", "ipv4Pool", ptr.Deref(nic.IPv4Pool, ""), "ipv6Pool", ptr.Deref(nic.IPv6Pool, ""))
	if err := s.releaseNIC(ctx, se, ifName); err != nil {
		return nil, nil, nil, err
	}
	se, err = s.currentEndpoint(ctx, req.pod, true)
	if errors.Is(err, crdstore.ErrEndpointNotFound) {
		return nil, &cands, nil, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return nil, &cands, se, nil
}

// allocateWaiting takes the NIC's addresses from cands, or from the pools it chooses
// when cands is nil, and returns the pools it used. An application's own pool is sized
// by the controller: when it is full, the ADD waits (up to autoPoolWait) for it to grow,
// or for an old pod of a rolling update to give an address back.
func (s *Service) allocateWaiting(ctx context.Context, req *addRequest, cands *candidates) ([]nicAllocation, candidates, error) {
	var c candidates
	if cands != nil {
		c = *cands
	} else {
		var err error
		if c, err = s.selectPoolsWaiting(ctx, req); err != nil {
			return nil, c, err
		}
	}
	allocs, err := s.allocate(ctx, req, c)
	for wait := s.autoPoolDeadline(ctx); errors.Is(err, ipam.ErrPoolExhausted) && c.auto && time.Now().Before(wait); {
		if !s.awaitPoolChange(ctx, wait) {
			break
		}
		if c, err = s.selectPoolsWaiting(ctx, req); err != nil {
			return nil, c, err
		}
		allocs, err = s.allocate(ctx, req, c)
	}
	return allocs, c, err
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
// A pod that takes the address of its ordinal takes it from the first pool.
func (s *Service) allocateFamily(ctx context.Context, req *addRequest, pools []string) (nicAllocation, error) {
	if req.ordinal >= 0 {
		return s.allocateOrdinal(ctx, req, pools[0])
	}
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

// allocateOrdinal takes the address of the pod's ordinal in the pool
// (ipam.OrdinalAddress). Only a pool served by node grants can hand out one given
// address; a pool on the records protocol is refused.
func (s *Service) allocateOrdinal(ctx context.Context, req *addRequest, name string) (nicAllocation, error) {
	pool, err := s.cluster.Pool(ctx, name)
	if err != nil {
		return nicAllocation{}, err
	}
	addr, err := ipam.OrdinalAddress(pool, req.ordinal)
	if err != nil {
		return nicAllocation{}, fmt.Errorf("pod %s (%s): %w", podRef(req.att), ipam.AnnoIPByOrdinal, err)
	}
	// writers.get decides by the same cached pool: a pool in Grants mode gets its grants.
	g, ok := s.writers.get(name).(*grantPool)
	if !ok {
		return nicAllocation{}, fmt.Errorf("%w: pod %s (%s) takes %s of SpiderIPPool %q, which is not served by node grants (docs/design/node-grants.md): a given address needs them; remove the annotation, or let every agent speak node grants",
			ipam.ErrOrdinalAddress, podRef(req.att), ipam.AnnoIPByOrdinal, addr, name)
	}
	if err := g.Take(ctx, addr, req.owner); err != nil {
		return nicAllocation{}, fmt.Errorf("pod %s (%s, ordinal %d): %w", podRef(req.att), ipam.AnnoIPByOrdinal, req.ordinal, err)
	}
	return nicAllocation{pool: pool, addr: addr}, nil
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

func (e *inlineErrors) Error() string { return e.msg }

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
