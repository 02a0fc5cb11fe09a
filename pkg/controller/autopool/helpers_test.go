package autopool

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/webhooktest"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// fixture is one test's running controller, with the admission webhooks in front of the
// API server as in a cluster.
type fixture struct {
	t   *testing.T
	e   *testenv.Env
	ctx context.Context
	ns  string
	reg *prometheus.Registry
	// stops stops each manager start started.
	stops []func()
}

// setup serves the webhooks and starts a manager running SetupWithManager with p (its
// Client, Registerer and RetryInterval filled in when unset), in a new namespace. The
// manager stops with the test.
func setup(t *testing.T, p Params) *fixture {
	t.Helper()
	e := testenv.Require(t, env)
	f := &fixture{t: t, e: e, ctx: context.Background(), reg: prometheus.NewRegistry()}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "autopool-"}}
	if err := e.Client.Create(f.ctx, ns); err != nil {
		t.Fatal(err)
	}
	f.ns = ns.Name
	webhooktest.Serve(t, e, nil)
	f.start(p)
	return f
}

// start runs a manager with the controllers until stopManagers or the end of the test.
func (f *fixture) start(p Params) {
	f.t.Helper()
	if p.Client == nil {
		p.Client = f.e.Client
	}
	if p.Registerer == nil {
		p.Registerer = f.reg
	}
	if p.RetryInterval == 0 {
		p.RetryInterval = 200 * time.Millisecond
	}
	if !p.EnableIPv4 && !p.EnableIPv6 {
		p.EnableIPv4, p.EnableIPv6 = true, true
	}
	mgr, err := ctrl.NewManager(f.e.Config, ctrl.Options{
		Scheme:                 f.e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := SetupWithManager(f.ctx, mgr, p); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				f.t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			f.t.Error("manager did not stop within 30s")
		}
	}
	f.t.Cleanup(stop)
	f.stops = append(f.stops, stop)
}

// stopManagers stops the managers started so far; the webhooks keep serving.
func (f *fixture) stopManagers() {
	for _, stop := range f.stops {
		stop()
	}
	f.stops = nil
}

func (f *fixture) create(obj client.Object) {
	f.t.Helper()
	if obj.GetNamespace() == "" && !isClusterScoped(obj) {
		obj.SetNamespace(f.ns)
	}
	if err := f.e.Client.Create(f.ctx, obj); err != nil {
		f.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func isClusterScoped(obj client.Object) bool {
	switch obj.(type) {
	case *v2beta1.SpiderSubnet, *v2beta1.SpiderIPPool, *v2beta1.SpiderReservedIP:
		return true
	}
	return false
}

// update reads obj fresh, applies change and writes it, again on a conflict.
func (f *fixture) update(obj client.Object, change func()) {
	f.t.Helper()
	testenv.WaitFor(f.t, "update "+obj.GetName(), func() (bool, error) {
		if err := f.e.Client.Get(f.ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return false, err
		}
		change()
		err := f.e.Client.Update(f.ctx, obj)
		return err == nil, err
	})
}

// subnet creates a SpiderSubnet.
func (f *fixture) subnet(name, cidr string, ips ...string) *v2beta1.SpiderSubnet {
	f.t.Helper()
	s := &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.SubnetSpec{Subnet: v2beta1.CIDR(cidr), IPs: rangesOfStrings(ips)}}
	f.create(s)
	return s
}

func rangesOfStrings(ss []string) []v2beta1.IPOrRange {
	out := make([]v2beta1.IPOrRange, len(ss))
	for i, s := range ss {
		out[i] = v2beta1.IPOrRange(s)
	}
	return out
}

// template is a pod template with auto-pool annotations.
func template(app string, annotations map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
}

func deployment(name string, replicas int32, annotations map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: template(name, annotations)}}
}

// subnetAnno is ipam.spidernet.io/subnet for one IPv4 subnet, and the size.
func subnetAnno(subnet, ipNumber string) map[string]string {
	a := map[string]string{ipam.AnnoPodSubnet: fmt.Sprintf(`{"ipv4":[%q]}`, subnet)}
	if ipNumber != "" {
		a[ipam.AnnoPodIPPoolIPNumber] = ipNumber
	}
	return a
}

// pools returns the live (not terminating) auto pools of an application's kind,
// namespace and name, read fresh.
func (f *fixture) pools(kind, ns, name string) []v2beta1.SpiderIPPool {
	f.t.Helper()
	var list v2beta1.SpiderIPPoolList
	if err := f.e.Client.List(f.ctx, &list, appSelector(ipam.Application{Kind: kind, Namespace: ns, Name: name})); err != nil {
		f.t.Fatal(err)
	}
	var out []v2beta1.SpiderIPPool
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// waitPool waits until the application has exactly one live auto pool, for which ok
// holds, and returns it.
func (f *fixture) waitPool(kind, name string, ok func(p *v2beta1.SpiderIPPool, ips ip.Set) bool) v2beta1.SpiderIPPool {
	f.t.Helper()
	var got v2beta1.SpiderIPPool
	testenv.WaitFor(f.t, fmt.Sprintf("the auto pool of %s %s/%s", kind, f.ns, name), func() (bool, error) {
		ps := f.pools(kind, f.ns, name)
		if len(ps) != 1 {
			return false, fmt.Errorf("%d pools", len(ps))
		}
		got = ps[0]
		ips := poolIPs(f.t, &got)
		return ok(&got, ips), fmt.Errorf("pool %s has %s (%s)", got.Name, ips, ips.Count())
	})
	return got
}

// sized is a waitPool condition: n addresses.
func sized(n uint64) func(*v2beta1.SpiderIPPool, ip.Set) bool {
	return func(_ *v2beta1.SpiderIPPool, ips ip.Set) bool { return ips.Count() == ip.CountFromUint64(n) }
}

func poolIPs(t *testing.T, p *v2beta1.SpiderIPPool) ip.Set {
	t.Helper()
	s, err := ip.ParseRanges(tokensOf(p.Spec.IPs))
	if err != nil {
		t.Fatalf("pool %s spec.ips: %v", p.Name, err)
	}
	return s
}

func tokensOf(rs []v2beta1.IPOrRange) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = string(r)
	}
	return out
}

// waitEvent waits for an event of a reason on an object of the test's namespace whose
// message contains every one of parts, and returns it.
func (f *fixture) waitEvent(objName, eventType, reason string, parts ...string) corev1.Event {
	f.t.Helper()
	var got corev1.Event
	testenv.WaitFor(f.t, fmt.Sprintf("a %s event %s on %s", eventType, reason, objName), func() (bool, error) {
		var list corev1.EventList
		if err := f.e.Client.List(f.ctx, &list, client.InNamespace(f.ns)); err != nil {
			return false, err
		}
		var seen []string
		for _, ev := range list.Items {
			if ev.InvolvedObject.Name != objName || ev.Reason != reason || ev.Type != eventType {
				continue
			}
			seen = append(seen, ev.Message)
			all := true
			for _, p := range parts {
				all = all && strings.Contains(ev.Message, p)
			}
			if all {
				got = ev
				return true, nil
			}
		}
		return false, fmt.Errorf("events seen: %q", seen)
	})
	return got
}

// hold writes allocation records on addresses of a pool, as an agent would: pods hold
// them.
func (f *fixture) hold(poolName string, addrs ...string) {
	f.t.Helper()
	testenv.WaitFor(f.t, "records on "+poolName, func() (bool, error) {
		p := &v2beta1.SpiderIPPool{}
		if err := f.e.Client.Get(f.ctx, client.ObjectKey{Name: poolName}, p); err != nil {
			return false, err
		}
		prefix := netip.MustParsePrefix(string(p.Spec.Subnet))
		var recs []records.Record
		for _, a := range addrs {
			recs = append(recs, records.Record{IP: netip.MustParseAddr(a), Owner: records.OwnerOf("pod-"+a, "container", "eth0")})
		}
		data, err := records.Encode(prefix, recs)
		if err != nil {
			f.t.Fatal(err)
		}
		n := int64(len(recs))
		p.Status.AllocatedIPCount = &n
		p.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: data}
		if len(recs) == 0 {
			p.Status.Orbweaver = nil
		}
		err = f.e.Client.Status().Update(f.ctx, p)
		return err == nil, err
	})
}

// dropFinalizer removes the pool's finalizer, as the pool controller does once no
// address is allocated, and waits until the pool is gone.
func (f *fixture) dropFinalizer(name string) {
	f.t.Helper()
	testenv.WaitFor(f.t, "SpiderIPPool "+name+" gone", func() (bool, error) {
		p := &v2beta1.SpiderIPPool{}
		err := f.e.Client.Get(f.ctx, client.ObjectKey{Name: name}, p)
		if err != nil {
			return client.IgnoreNotFound(err) == nil, err
		}
		p.Finalizers = nil
		return false, f.e.Client.Update(f.ctx, p)
	})
}

// waitDeleting waits until the pool has a deletionTimestamp (its finalizer keeps it).
func (f *fixture) waitDeleting(name string) {
	f.t.Helper()
	testenv.WaitFor(f.t, "SpiderIPPool "+name+" being deleted", func() (bool, error) {
		p := &v2beta1.SpiderIPPool{}
		if err := f.e.Client.Get(f.ctx, client.ObjectKey{Name: name}, p); err != nil {
			return false, err
		}
		return p.DeletionTimestamp != nil, fmt.Errorf("no deletionTimestamp")
	})
}

// counter is the value of a counter of the fixture's registry with the given labels.
func (f *fixture) counter(name string, labels map[string]string) float64 {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// waitCounter waits until a counter is at least min.
func (f *fixture) waitCounter(name string, labels map[string]string, min float64) {
	f.t.Helper()
	testenv.WaitFor(f.t, fmt.Sprintf("%s%v >= %v", name, labels, min), func() (bool, error) {
		got := f.counter(name, labels)
		return got >= min, fmt.Errorf("%v", got)
	})
}
