// Package eip_test runs the EIP controller against a real API server and each cloud:
// the in-memory cloud directly, and each provider's official SDK against its local
// wire-protocol emulator over the same in-memory cloud. No kubelet or agent runs: the
// tests create nodes, pods, pool records and endpoints the way those components would.
package eip_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/eipbinding"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

var seq atomic.Int64

// offsetClock is the real clock plus an offset a test moves forward, so a release
// duration of minutes passes in one jump.
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

// cloudCase is one way to reach the in-memory cloud: directly, or through a provider's
// SDK and emulator. connect returns the provider over cloud.
type cloudCase struct {
	// name is the provider name pools use (spec.orbweaver.eip.provider).
	name    string
	label   string
	connect func(t testing.TB, cloud *eiptest.Cloud) eip.Provider
	// sync: the cloud associates synchronously (EC2), so its emulator's cloud has no
	// async delay.
	sync bool
}

// clouds are the cases every scenario runs against; the SDK cases add themselves.
var clouds = []cloudCase{{
	name: "aws", label: "in-memory",
	connect: func(_ testing.TB, cloud *eiptest.Cloud) eip.Provider { return cloud },
}}

// harness is one cloud, one API-server namespace and a running controller.
type harness struct {
	t        testing.TB
	e        *testenv.Env
	ctx      context.Context
	cc       cloudCase
	cloud    *eiptest.Cloud
	provider eip.Provider
	clock    *offsetClock
	ns       string
	cluster  string
	reg      *prometheus.Registry
	stop     func()
	pools    []string
	nodes    []string
	// namespaces are the test's namespaces besides ns.
	namespaces []string
}

// newHarness starts the controller over a fresh cloud reached through cc.
func newHarness(t testing.TB, cc cloudCase) *harness {
	t.Helper()
	e := testenv.Require(t, env)
	h := &harness{t: t, e: e, ctx: context.Background(), cc: cc, cloud: eiptest.NewCloud(), clock: &offsetClock{}}
	if !cc.sync {
		h.cloud.AsyncDelay = 30 * time.Millisecond
	}
	h.provider = cc.connect(t, h.cloud)
	h.ns = fmt.Sprintf("eip-%d", seq.Add(1))
	h.cluster = "cluster-" + h.ns
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}})
	h.start(startOpts{})
	t.Cleanup(func() {
		h.stop()
		h.deleteAll()
	})
	return h
}

// startOpts change how start runs the controller.
type startOpts struct {
	// wrap, when set, wraps the provider.
	wrap func(eip.Provider) eip.Provider
	// quiet turns the orphan collector and the drift check off, so cloud calls are the
	// pods' alone.
	quiet bool
	// vendorOff does not read the vendors' annotations (they are read by default).
	vendorOff bool
	// podRequests is the controller's --eip-pod-requests ("": restricted).
	podRequests string
}

// start runs a manager with the controller.
func (h *harness) start(o startOpts) {
	h.t.Helper()
	logger := logr.Discard()
	if os.Getenv("ORBWEAVER_TEST_LOG") != "" {
		logger = testr.NewWithInterface(h.t, testr.Options{})
	}
	mgr, err := ctrl.NewManager(h.e.Config, ctrl.Options{
		Scheme: h.e.Scheme, Logger: logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	p := eip.Retrying(h.provider, eip.Backoff{Attempts: 8, Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond})
	if o.wrap != nil {
		p = o.wrap(p)
	}
	orphans, verify := 300*time.Millisecond, 300*time.Millisecond
	if o.quiet {
		orphans, verify = -1, -1
	}
	h.reg = prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	err = eipbinding.SetupWithManager(ctx, mgr, eipbinding.Params{
		Providers: map[string]eip.Provider{h.cc.name: p}, ClusterID: h.cluster,
		Direct: h.e.Client, Recorder: mgr.GetEventRecorderFor("orbweaver-eip"), Registerer: h.reg, Clock: h.clock,
		PollInterval: 50 * time.Millisecond, RetryInterval: 300 * time.Millisecond, OrphanInterval: orphans, VerifyInterval: verify,
		VendorAnnotations: !o.vendorOff, PodRequests: o.podRequests,
	})
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	h.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				h.t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			h.t.Error("manager did not stop within 30s")
		}
	}
}

func (h *harness) create(obj client.Object) {
	h.t.Helper()
	if err := h.e.Client.Create(h.ctx, obj); err != nil {
		h.t.Fatal(err)
	}
}

// deleteAll removes what the test made. Pools keep the EIP finalizer once the
// controller is gone, so it is taken off.
func (h *harness) deleteAll() {
	c, ctx := h.e.Client, h.ctx
	for _, ns := range append([]string{h.ns}, h.namespaces...) {
		in := client.InNamespace(ns)
		_ = c.DeleteAllOf(ctx, &corev1.Pod{}, in, client.GracePeriodSeconds(0))
		_ = c.DeleteAllOf(ctx, &v2beta1.SpiderEndpoint{}, in)
	}
	for _, name := range h.pools {
		sp := &v2beta1.SpiderIPPool{}
		if err := c.Get(ctx, client.ObjectKey{Name: name}, sp); err != nil {
			continue
		}
		patch := client.MergeFrom(sp.DeepCopy())
		sp.Finalizers = nil
		_ = c.Patch(ctx, sp, patch)
		_ = c.Delete(ctx, sp)
	}
	for _, name := range h.nodes {
		_ = c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
}

// namespace creates one more namespace of the test, with these labels.
func (h *harness) namespace(labels map[string]string) string {
	h.t.Helper()
	name := fmt.Sprintf("%s-ns-%d", h.ns, seq.Add(1))
	h.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})
	h.namespaces = append(h.namespaces, name)
	return name
}

// allowRequests labels a namespace orbweaver.io/eip-requests=allowed, as a cluster
// admin does: its pods' EIP requests by annotation are honoured.
func (h *harness) allowRequests(ns string) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		n := &corev1.Namespace{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKey{Name: ns}, n); err != nil {
			return err
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels[v2beta1.LabelEIPRequests] = v2beta1.EIPRequestsAllowed
		return h.e.Client.Update(h.ctx, n)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// node creates a node; its pods' IPs are placed on interface eni-<node> in the cloud.
func (h *harness) node() string {
	h.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-node-%d", h.ns, seq.Add(1))}}
	h.create(n)
	h.nodes = append(h.nodes, n.Name)
	return n.Name
}

func nicOf(node string) string { return "eni-" + node }

// pool creates a pool of its own /24 with addresses .10-.19 and the EIP attribute.
func (h *harness) pool(spec v2beta1.EIPSpec) string {
	h.t.Helper()
	spec.Provider = h.cc.name
	return h.poolOf(&spec)
}

// poolOf creates a pool of its own /24 with addresses .10-.19 and spec as its EIP
// attribute (none when nil).
func (h *harness) poolOf(spec *v2beta1.EIPSpec) string {
	h.t.Helper()
	return h.poolWith(spec, nil)
}

// poolWith is poolOf with the pool changed by mod (when set) before it is created.
func (h *harness) poolWith(spec *v2beta1.EIPSpec, mod func(*v2beta1.SpiderIPPool)) string {
	h.t.Helper()
	i := seq.Add(1)
	sp := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-pool-%d", h.ns, i)},
		Spec: v2beta1.IPPoolSpec{
			Subnet: v2beta1.CIDR(fmt.Sprintf("10.%d.%d.0/24", 150+i/250, i%250)),
			IPs:    []v2beta1.IPOrRange{v2beta1.IPOrRange(fmt.Sprintf("10.%d.%d.10-10.%d.%d.19", 150+i/250, i%250, 150+i/250, i%250))},
		},
	}
	if spec != nil {
		sp.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{EIP: spec}
	}
	if mod != nil {
		mod(sp)
	}
	h.create(sp)
	h.pools = append(h.pools, sp.Name)
	return sp.Name
}

// changePool changes a pool's records the way the agent does.
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

// toGrants puts a pool in Grants mode, as the grant controller does once every node's
// agent speaks node grants: from then on the pods' endpoints are its only records.
func (h *harness) toGrants(name string) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		sp := h.getPool(name)
		if sp.Status.Orbweaver == nil {
			sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{}
		}
		sp.Status.Orbweaver.Allocation = v2beta1.AllocationGrants
		return h.e.Client.Status().Update(h.ctx, sp)
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// podOpts shape a pod.
type podOpts struct {
	gate bool // declares the orbweaver.io/eip readiness gate
	// gates are more readiness gates the pod declares (a vendor's, e.g. ACK's).
	gates       []corev1.PodConditionType
	annotations map[string]string
	namespace   string // "": the harness's
	// statefulSet, when set, makes the pod that StatefulSet's (its controller reference;
	// no StatefulSet object exists).
	statefulSet string
}

// owners is the pod's controller reference of o, if any.
func (o podOpts) owners() []metav1.OwnerReference {
	if o.statefulSet == "" {
		return nil
	}
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: o.statefulSet, UID: types.UID("uid-" + o.statefulSet), Controller: ptr.To(true)}}
}

// run starts a pod on node the way kubelet and the agent would: the pod, an address
// of the pool recorded for it (at want, when valid), the IP placed on the node's
// interface in the cloud, and its endpoint. In a pool in Grants mode the endpoint is
// the only record, and want must be given (the agent takes it from its node's grants).
func (h *harness) run(name, node, pool string, want netip.Addr, o podOpts) (*corev1.Pod, netip.Addr) {
	h.t.Helper()
	ns := o.namespace
	if ns == "" {
		ns = h.ns
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: o.annotations, OwnerReferences: o.owners()},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}},
	}
	if o.gate {
		pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: v2beta1.PodEIPConditionType}}
	}
	for _, g := range o.gates {
		pod.Spec.ReadinessGates = append(pod.Spec.ReadinessGates, corev1.PodReadinessGate{ConditionType: g})
	}
	h.create(pod)
	owner := records.OwnerOf(string(pod.UID), "ctr-"+string(pod.UID), "eth0")
	var got netip.Addr
	if h.getPool(pool).GrantsMode() {
		if !want.IsValid() {
			h.t.Fatalf("pod %s in Grants pool %s: give its address", name, pool)
		}
		got = want
	} else {
		h.changePool(pool, func(p ipam.Pool) ipam.Pool {
			start := want
			if !start.IsValid() {
				start = p.Subnet().Addr()
			}
			next, addrs, err := p.Allocate([]records.Owner{owner}, start)
			if err != nil {
				h.t.Fatal(err)
			}
			got = addrs[0]
			return next
		})
	}
	if want.IsValid() && got != want {
		h.t.Fatalf("pod %s got %s, want %s", name, got, want)
	}
	h.cloud.Place(nicOf(node), got.String())
	se := &v2beta1.SpiderEndpoint{}
	err := h.e.Client.Get(h.ctx, client.ObjectKey{Namespace: ns, Name: name}, se)
	if apierrors.IsNotFound(err) {
		se = &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		se.Status = endpointStatus(pod, pool, got)
		h.create(se)
		return pod, got
	}
	if err != nil {
		h.t.Fatal(err)
	}
	// A StatefulSet pod's kept endpoint, moved to the new pod.
	se.Status = endpointStatus(pod, pool, got)
	if err := h.e.Client.Update(h.ctx, se); err != nil {
		h.t.Fatal(err)
	}
	return pod, got
}

func endpointStatus(pod *corev1.Pod, pool string, a netip.Addr) v2beta1.WorkloadEndpointStatus {
	return v2beta1.WorkloadEndpointStatus{
		Current: v2beta1.PodIPAllocation{
			UID: string(pod.UID), Node: pod.Spec.NodeName,
			IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(netip.PrefixFrom(a, 24).String()), IPv4Pool: ptr.To(pool)}},
			Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "ctr-" + string(pod.UID)},
		},
		OwnerControllerType: "Pod", OwnerControllerName: pod.Name,
	}
}

// stop ends a pod the way a Deployment's pod ends: the pod, its endpoint and its
// record (none in Grants mode) go.
func (h *harness) end(pod *corev1.Pod, pool string) {
	h.t.Helper()
	h.deletePod(pod)
	if err := h.e.Client.Delete(h.ctx, &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name}}); client.IgnoreNotFound(err) != nil {
		h.t.Fatal(err)
	}
	if h.getPool(pool).GrantsMode() {
		return
	}
	owner := records.OwnerOf(string(pod.UID), "ctr-"+string(pod.UID), "eth0")
	h.changePool(pool, func(p ipam.Pool) ipam.Pool {
		next, _ := p.ReleaseOwner(owner)
		return next
	})
}

// deletePod deletes the pod only: a StatefulSet pod's record and endpoint stay.
func (h *harness) deletePod(pod *corev1.Pod) {
	h.t.Helper()
	if err := h.e.Client.Delete(h.ctx, pod, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
		h.t.Fatal(err)
	}
	testenv.WaitFor(h.t, "pod "+pod.Name+" gone", func() (bool, error) {
		err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), &corev1.Pod{})
		return apierrors.IsNotFound(err), nil
	})
}

// rerun re-creates a StatefulSet pod (same name, new UID) on node: its kept record is
// rebound to the new pod and its endpoint moved, as the agent's ADD does.
func (h *harness) rerun(old *corev1.Pod, node, pool string, a netip.Addr, o podOpts) *corev1.Pod {
	h.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: old.Name, Annotations: o.annotations, OwnerReferences: o.owners()},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}},
	}
	if o.gate {
		pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: v2beta1.PodEIPConditionType}}
	}
	h.create(pod)
	from := records.OwnerOf(string(old.UID), "ctr-"+string(old.UID), "eth0")
	to := records.OwnerOf(string(pod.UID), "ctr-"+string(pod.UID), "eth0")
	h.changePool(pool, func(p ipam.Pool) ipam.Pool {
		next, ok := p.Rebind(a, from, to)
		if !ok {
			h.t.Fatalf("rebind %s from the old pod to the new one failed", a)
		}
		return next
	})
	h.cloud.Place(nicOf(node), a.String())
	// The EIP controller writes the endpoint too (its EIPs): read again on a conflict.
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		se := &v2beta1.SpiderEndpoint{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKey{Namespace: h.ns, Name: pod.Name}, se); err != nil {
			return err
		}
		se.Status = endpointStatus(pod, pool, a)
		return h.e.Client.Update(h.ctx, se)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return pod
}

// getPool reads a pool.
func (h *harness) getPool(name string) *v2beta1.SpiderIPPool {
	h.t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := h.e.Client.Get(h.ctx, client.ObjectKey{Name: name}, sp); err != nil {
		h.t.Fatal(err)
	}
	return sp
}

// binding is the pool's binding of an IP, if any.
func (h *harness) binding(pool string, a netip.Addr) (v2beta1.EIPBinding, bool) {
	sp := h.getPool(pool)
	if sp.Status.Orbweaver == nil {
		return v2beta1.EIPBinding{}, false
	}
	for _, b := range sp.Status.Orbweaver.EIPs {
		if b.IP == a.String() {
			return b, true
		}
	}
	return v2beta1.EIPBinding{}, false
}

// waitBound waits until the IP's EIP is Bound, the cloud has it InUse on the node's
// interface, and the pod shows it; it returns the binding.
func (h *harness) waitBound(pool string, pod *corev1.Pod, a netip.Addr) v2beta1.EIPBinding {
	h.t.Helper()
	var b v2beta1.EIPBinding
	testenv.WaitFor(h.t, fmt.Sprintf("the EIP of %s (pod %s) bound", a, pod.Name), func() (bool, error) {
		var ok bool
		b, ok = h.binding(pool, a)
		if !ok || b.Phase != v2beta1.EIPBound {
			return false, fmt.Errorf("binding %+v", b)
		}
		if b.NetworkInterface != nicOf(pod.Spec.NodeName) {
			// Still the binding of a previous pod on this IP, on its node's interface
			// (a StatefulSet pod that moved): the controller has not rebound it yet.
			return false, fmt.Errorf("binding %+v is on %s, the pod's node has %s", b, b.NetworkInterface, nicOf(pod.Spec.NodeName))
		}
		got := &corev1.Pod{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), got); err != nil {
			return false, err
		}
		if got.Annotations[v2beta1.AnnoAllocatedEIP] != b.PublicIP {
			return false, fmt.Errorf("pod annotation %q, want %q", got.Annotations[v2beta1.AnnoAllocatedEIP], b.PublicIP)
		}
		if slices.ContainsFunc(got.Spec.ReadinessGates, func(g corev1.PodReadinessGate) bool { return g.ConditionType == v2beta1.PodEIPConditionType }) &&
			gate(got) != corev1.ConditionTrue {
			return false, fmt.Errorf("readiness gate %s", gate(got))
		}
		se := &v2beta1.SpiderEndpoint{}
		if err := h.e.Client.Get(h.ctx, client.ObjectKeyFromObject(pod), se); err != nil {
			return false, err
		}
		if o := se.Status.Current.Orbweaver; o == nil || len(o.EIPs) != 1 || o.EIPs[0].PublicIP != b.PublicIP || o.EIPs[0].Phase != v2beta1.EIPBound {
			return false, fmt.Errorf("endpoint EIPs %+v", se.Status.Current.Orbweaver)
		}
		return true, nil
	})
	c := h.cloudEIP(b.AllocationID)
	if c.State != eip.InUse || c.PrivateIP != a.String() || c.NetworkInterface != nicOf(pod.Spec.NodeName) {
		h.t.Fatalf("the cloud has EIP %s %s on %s/%s, want InUse on %s/%s", c.ID, c.State, c.NetworkInterface, c.PrivateIP, nicOf(pod.Spec.NodeName), a)
	}
	return b
}

// gate is the pod's orbweaver.io/eip condition status ("" when absent).
func gate(pod *corev1.Pod) corev1.ConditionStatus { return condition(pod, v2beta1.PodEIPConditionType) }

// condition is the status of the pod's condition of type ct ("" when absent).
func condition(pod *corev1.Pod, ct corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range pod.Status.Conditions {
		if c.Type == ct {
			return c.Status
		}
	}
	return ""
}

// cloudEIP is the cloud's record of an EIP (zero when it has none).
func (h *harness) cloudEIP(id string) eip.Address {
	for _, a := range h.cloud.Snapshot() {
		if a.ID == id {
			return a
		}
	}
	return eip.Address{}
}

// ofCluster lists the cloud's EIPs tagged for this harness's cluster.
func (h *harness) ofCluster() []eip.Address {
	var out []eip.Address
	for _, a := range h.cloud.Snapshot() {
		if a.Tags[eipbinding.TagCluster] == h.cluster {
			out = append(out, a)
		}
	}
	return out
}

// events lists the events of an object by reason.
func (h *harness) events(name, reason string) []corev1.Event {
	h.t.Helper()
	var list corev1.EventList
	if err := h.e.Client.List(h.ctx, &list); err != nil {
		h.t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}
