package gc

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// The integration tests run the controller in a manager against the package's API
// server. No kubelet, kube-controller-manager or agent runs: the tests create nodes,
// pods, StatefulSets, pool records and endpoints the way those components would. Tests
// run one after another (each controller sees the whole cluster) and delete what they
// made.

// testGoneDelay is the tests' GoneDelay: above the cache lag, short for the tests.
const testGoneDelay = time.Second

var seq atomic.Int64

// offsetClock is the real clock plus an offset the test moves forward: GoneDelay and
// grace periods pass in real time, and a reclaim duration of minutes in one jump.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *offsetClock) jump(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

type harness struct {
	t     *testing.T
	e     *testenv.Env
	ctx   context.Context
	r     *Reconciler
	cache cache.Cache
	clock *offsetClock
	ns    string
	// pools and nodes this test made, deleted at the end (namespaced objects go
	// with their namespace's contents).
	pools, nodes []string
}

// startGC starts a manager running the controller, with the tests' configuration
// changed by mutate, in a new namespace.
func startGC(t *testing.T, mutate func(*Params)) *harness {
	t.Helper()
	e := testenv.Require(t, env)
	h := &harness{t: t, e: e, ctx: context.Background(), clock: &offsetClock{}}
	h.ns = fmt.Sprintf("gc-%d", seq.Add(1))
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}})
	h.create(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "default"}})

	cfg := ipam.DefaultGCConfig()
	cfg.GoneDelay = testGoneDelay
	p := Params{
		Config: cfg, StatefulSetRetention: true,
		ResyncPeriod: 500 * time.Millisecond, Debounce: 50 * time.Millisecond,
		Clock: h.clock, Registerer: prometheus.NewRegistry(), Client: e.Client,
	}
	if mutate != nil {
		mutate(&p)
	}
	r, err := newReconciler(p)
	if err != nil {
		t.Fatal(err)
	}
	mgr := newTestManager(t, e)
	if err := r.setup(mgr); err != nil {
		t.Fatal(err)
	}
	h.r, h.cache = r, mgr.GetCache()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
		h.deleteAll()
	})
	// The first pass runs once the caches have synced.
	h.passes(1)
	return h
}

func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if err := h.e.Client.Create(h.ctx, obj); err != nil {
		h.t.Fatal(err)
	}
}

// deleteAll removes what the test made, so that the next test's controller does not
// act on it.
func (h *harness) deleteAll() {
	c, ctx := h.e.Client, h.ctx
	in := client.InNamespace(h.ns)
	for _, err := range []error{
		c.DeleteAllOf(ctx, &corev1.Pod{}, in, client.GracePeriodSeconds(0)),
		c.DeleteAllOf(ctx, &v2beta1.SpiderEndpoint{}, in),
		c.DeleteAllOf(ctx, &appsv1.StatefulSet{}, in),
	} {
		if err != nil {
			h.t.Errorf("cleanup: %v", err)
		}
	}
	for _, name := range h.pools {
		if err := c.Delete(ctx, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}); client.IgnoreNotFound(err) != nil {
			h.t.Errorf("cleanup: %v", err)
		}
	}
	for _, name := range h.nodes {
		if err := c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}); client.IgnoreNotFound(err) != nil {
			h.t.Errorf("cleanup: %v", err)
		}
	}
}

// node creates a node, Ready or not.
func (h *harness) node(ready bool) string {
	h.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%d", seq.Add(1))}}
	h.create(n)
	h.nodes = append(h.nodes, n.Name)
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status, LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}}
	if err := h.e.Client.Status().Update(h.ctx, n); err != nil {
		h.t.Fatal(err)
	}
	return n.Name
}

// pool creates a pool of its own /24 with addresses .10-.250.
func (h *harness) pool(policy v2beta1.ReclaimPolicy) string {
	h.t.Helper()
	i := seq.Add(1)
	sp := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("pool-%d", i)},
		Spec: v2beta1.IPPoolSpec{
			Subnet: v2beta1.CIDR(fmt.Sprintf("10.%d.%d.0/24", 100+i/250, i%250)),
			IPs:    []v2beta1.IPOrRange{v2beta1.IPOrRange(fmt.Sprintf("10.%d.%d.10-10.%d.%d.250", 100+i/250, i%250, 100+i/250, i%250))},
		},
	}
	if policy != "" {
		sp.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: &policy}
	}
	h.create(sp)
	h.pools = append(h.pools, sp.Name)
	return sp.Name
}

// changePool changes a pool's records the way the agent does: a fresh read, a pure
// change, a status write with the read's resourceVersion, again on a conflict (the
// controller writes the same pools).
func (h *harness) changePool(name string, change func(ipam.Pool) ipam.Pool) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		sp := &v2beta1.SpiderIPPool{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKey{Name: name}, sp); err != nil {
			return err
		}
		p, err := ipam.NewPool(sp, ip.Set{})
		if err != nil {
			return err
		}
		if err := change(p).WriteStatus(sp); err != nil {
			return err
		}
		return h.e.Client.Status().Update(h.ctx, sp)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// allocate records an address of the pool for owner, as the agent's ADD does.
func (h *harness) allocate(pool string, owner records.Owner) netip.Addr {
	h.t.Helper()
	var got netip.Addr
	h.changePool(pool, func(p ipam.Pool) ipam.Pool {
		next, addrs, err := p.Allocate([]records.Owner{owner}, p.Subnet().Addr())
		if err != nil {
			h.t.Fatal(err)
		}
		got = addrs[0]
		return next
	})
	return got
}

// reserve records n addresses under a node's reserve, as the agent's reservation does.
func (h *harness) reserve(pool, node string, n int) []netip.Addr {
	h.t.Helper()
	var got []netip.Addr
	h.changePool(pool, func(p ipam.Pool) ipam.Pool {
		next, addrs := p.Reserve(records.ReserveOwner(node), n, p.Subnet().Addr())
		got = addrs
		return next
	})
	if len(got) != n {
		h.t.Fatalf("reserved %d addresses, want %d", len(got), n)
	}
	return got
}

// holder returns who the stored pool records as the holder of an address.
func (h *harness) holder(pool string, a netip.Addr) (records.Owner, bool) {
	h.t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := h.e.Client.Get(h.ctx, client.ObjectKey{Name: pool}, sp); err != nil {
		h.t.Fatal(err)
	}
	p, err := ipam.NewPool(sp, ip.Set{})
	if err != nil {
		h.t.Fatal(err)
	}
	return p.Holder(a)
}

// holds tells whether owner holds the address in the stored pool.
func (h *harness) holds(pool string, a netip.Addr, owner records.Owner) bool {
	h.t.Helper()
	o, ok := h.holder(pool, a)
	return ok && o == owner
}

// pod creates a pod bound to node (no kubelet runs it), controlled by owner if set.
func (h *harness) pod(name, node string, owner *metav1.OwnerReference) *corev1.Pod {
	h.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name, Labels: map[string]string{"app": "gc"}},
		Spec: corev1.PodSpec{
			NodeName: node, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}},
		},
	}
	if owner != nil {
		pod.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	h.create(pod)
	return pod
}

// ownerOf is the record owner of a pod's eth0, with the container ID the tests use.
func ownerOf(pod *corev1.Pod) records.Owner {
	return records.OwnerOf(string(pod.UID), "ctr-"+pod.Name, "eth0")
}

// running allocates an address for the pod's eth0 and writes its endpoint, as the agent
// does: owned by the pod, or, for a StatefulSet's pod, retained (no owner reference,
// ownerControllerType StatefulSet) with the reclaim policy annotation if set.
func (h *harness) running(pod *corev1.Pod, pool, statefulSet string, policy v2beta1.ReclaimPolicy) (netip.Addr, *v2beta1.SpiderEndpoint) {
	h.t.Helper()
	a := h.allocate(pool, ownerOf(pod))
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID: string(pod.UID), Node: pod.Spec.NodeName,
				IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(netip.PrefixFrom(a, 24).String()), IPv4Pool: ptr.To(pool)}},
				Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "ctr-" + pod.Name},
			},
			OwnerControllerType: "Pod", OwnerControllerName: pod.Name,
		},
	}
	if statefulSet == "" {
		se.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID}}
	} else {
		se.Status.OwnerControllerType, se.Status.OwnerControllerName = ipam.KindStatefulSet, statefulSet
	}
	if policy != "" {
		se.Annotations = map[string]string{ipam.AnnoReclaimPolicy: string(policy)}
	}
	h.create(se)
	return a, se
}

// endpointExists tells whether the endpoint (this very object, by UID) exists.
func (h *harness) endpointExists(se *v2beta1.SpiderEndpoint) bool {
	h.t.Helper()
	got := &v2beta1.SpiderEndpoint{}
	err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(se), got)
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return got.UID == se.UID
}

// forceDelete deletes a pod at once (grace period 0) and waits until it is gone.
func (h *harness) forceDelete(pod *corev1.Pod) {
	h.t.Helper()
	if err := h.e.Client.Delete(h.ctx, pod, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
		h.t.Fatal(err)
	}
	testenv.WaitFor(h.t, "pod "+pod.Name+" gone", func() (bool, error) {
		err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		return apierrors.IsNotFound(err), nil
	})
}

// statefulSet creates a StatefulSet (no controller makes its pods; the test does).
func (h *harness) statefulSet(name string, replicas int32) *appsv1.StatefulSet {
	h.t.Helper()
	labels := map[string]string{"app": name}
	st := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(replicas), ServiceName: name,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}},
			},
		},
	}
	h.create(st)
	return st
}

// scale sets a StatefulSet's replicas and waits until the controller's cache shows it,
// so that the next pass decides on the new count.
func (h *harness) scale(st *appsv1.StatefulSet, replicas int32) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		if err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(st), st); err != nil {
			return err
		}
		st.Spec.Replicas = ptr.To(replicas)
		return h.e.Client.Update(h.ctx, st)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	testenv.WaitFor(h.t, fmt.Sprintf("the controller's cache to see %s at %d replicas", st.Name, replicas), func() (bool, error) {
		got := &appsv1.StatefulSet{}
		err := h.cache.Get(h.ctx, client.ObjectKeyFromObject(st), got)
		return err == nil && got.Spec.Replicas != nil && *got.Spec.Replicas == replicas, err
	})
}

// stsPod creates pod <st>-<ordinal> controlled by the StatefulSet.
func (h *harness) stsPod(st *appsv1.StatefulSet, ordinal int, node string) *corev1.Pod {
	ref := metav1.NewControllerRef(st, appsv1.SchemeGroupVersion.WithKind("StatefulSet"))
	return h.pod(fmt.Sprintf("%s-%d", st.Name, ordinal), node, ref)
}

// passes waits until n more passes have completed without error. The first may have
// begun before the call: to be sure a whole pass saw a change, wait for 2.
func (h *harness) passes(n int) {
	h.t.Helper()
	base := value(h.r.metrics.runs.WithLabelValues("ok"))
	testenv.WaitFor(h.t, fmt.Sprintf("%d GC passes", n), func() (bool, error) {
		return value(h.r.metrics.runs.WithLabelValues("ok")) >= base+float64(n), nil
	})
}

// count returns a counter of the controller by reason.
func (h *harness) count(vec *prometheus.CounterVec, reason ipam.GCReason) float64 {
	return value(vec.WithLabelValues(string(reason)))
}

// assertCounts checks every reason of a counter: those named with their counts, the
// others at zero.
func (h *harness) assertCounts(what string, vec *prometheus.CounterVec, want map[ipam.GCReason]float64) {
	h.t.Helper()
	for _, reason := range ipam.GCReasons() {
		if got := h.count(vec, reason); got != want[reason] {
			h.t.Errorf("%s{reason=%q} = %v, want %v", what, reason, got, want[reason])
		}
	}
}

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// events returns "type reason" of the events on an object (by UID).
func (h *harness) events(namespace string, uid string) []string {
	h.t.Helper()
	var list corev1.EventList
	if err := h.e.Client.List(h.ctx, &list, client.InNamespace(namespace)); err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, ev := range list.Items {
		if string(ev.InvolvedObject.UID) == uid {
			out = append(out, ev.Type+" "+ev.Reason)
		}
	}
	return out
}

// newTestManager is a manager on the test API server, without metrics, logging to the
// test with ORBWEAVER_TEST_LOG set.
func newTestManager(t *testing.T, e *testenv.Env) ctrl.Manager {
	t.Helper()
	logger := logr.Discard()
	if os.Getenv("ORBWEAVER_TEST_LOG") != "" {
		logger = testr.New(t)
	}
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme: e.Scheme, Logger: logger,
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return mgr
}
