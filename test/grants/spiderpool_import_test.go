package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/ippool"
	"github.com/orbweaver-ipam/orbweaver/pkg/migrate"
)

// startPoolController runs the pool status controller (which imports SpiderPool's
// records) until stop is called or the test ends.
func startPoolController(t *testing.T, e *testenv.Env) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := ippool.SetupWithManager(ctx, mgr, ippool.Params{Direct: e.Client, StatusInterval: 100 * time.Millisecond}); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("pool controller still running 30s after its stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// spiderPoolPod is a pod SpiderPool's agent served: its address, and its endpoint as
// SpiderPool writes it (its finalizer, the node, no sandbox) unless SpiderPool stopped
// between its pool write and its endpoint write.
type spiderPoolPod struct {
	pod        *corev1.Pod
	node       int
	addr       netip.Addr
	noEndpoint bool
}

// TestNodeGrantsImportsSpiderPool takes over a pool from SpiderPool, as a user switching
// a live cluster does: 9 pods on 3 nodes hold addresses SpiderPool gave them
// (status.allocatedIPs, in both of its record shapes; 8 with the endpoint SpiderPool
// writes, 1 without), scattered over a pool of 24 including its first two addresses.
// orbweaver's agents start first: an ADD fails, saying why, and allocates nothing.
// Then the pool controller imports the records and the grant controller takes the
// pool over. Every address SpiderPool gave stays its pod's: a new sandbox of a migrated
// pod gets its address again, 15 new pods fill the pool to exactly full with no
// address of a live pod (and no two endpoints ever name one address, in etcd's order),
// and the DEL of a migrated pod's sandbox, which orbweaver never saw, frees exactly its
// address for the next pod.
func TestNodeGrantsImportsSpiderPool(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const name = "sp-import"
	w := newWorld(t, ctx, e, name, "10.86.0.0/24", []v2beta1.IPOrRange{"10.86.0.1-10.86.0.24"}, 3, nil)
	held := []string{"10.86.0.1", "10.86.0.2", "10.86.0.5", "10.86.0.8", "10.86.0.11", "10.86.0.14", "10.86.0.17", "10.86.0.20", "10.86.0.24"}
	var olds []*spiderPoolPod
	allocated := map[string]map[string]string{}
	for i, s := range held {
		p := &spiderPoolPod{node: i % 3, addr: netip.MustParseAddr(s), noEndpoint: i == 4}
		var err error
		if p.pod, err = w.newPod(ctx, fmt.Sprintf("old-%d", i), w.nodes[p.node].name); err != nil {
			t.Fatal(err)
		}
		olds = append(olds, p)
		entry := map[string]string{"pod": name + "/" + p.pod.Name, "podUid": string(p.pod.UID)}
		if i%2 == 1 {
			entry["interface"] = "eth0" // SpiderPool's older record shape
		}
		allocated[s] = entry
		if p.noEndpoint {
			continue
		}
		se := &v2beta1.SpiderEndpoint{
			ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: p.pod.Name, Finalizers: []string{v2beta1.Finalizer},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: p.pod.Name, UID: p.pod.UID}}},
			Status: v2beta1.WorkloadEndpointStatus{
				Current: v2beta1.PodIPAllocation{UID: string(p.pod.UID), Node: w.nodes[p.node].name, IPs: []v2beta1.IPAllocationDetail{
					{NIC: "eth0", IPv4: ptr.To(s + "/24"), IPv4Pool: ptr.To(name), Vlan: ptr.To(int64(0))}}},
				OwnerControllerType: "Pod", OwnerControllerName: p.pod.Name,
			},
		}
		if err := e.Client.Create(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := json.Marshal(allocated)
	if err != nil {
		t.Fatal(err)
	}
	sp := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, sp); err != nil {
		t.Fatal(err)
	}
	sp.Status = v2beta1.IPPoolStatus{AllocatedIPs: ptr.To(string(raw)), AllocatedIPCount: ptr.To(int64(len(held))), TotalIPCount: ptr.To(int64(24))}
	if err := e.Client.Status().Update(ctx, sp); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	for _, p := range olds {
		w.live[p.addr] = p.pod.Name + " on " + w.nodes[p.node].name + " (SpiderPool's)" // the checks of every ADD count them
	}
	w.mu.Unlock()

	// orbweaver's agents first, without its controllers: nothing is allocated.
	w.startAgents(ctx)
	early, err := w.newPod(ctx, "early", w.nodes[0].name)
	if err != nil {
		t.Fatal(err)
	}
	if a, _, err := w.nodes[0].add(ctx, early, "c"); err == nil {
		t.Fatalf("an ADD before the import got %s", a)
	} else if !strings.Contains(err.Error(), "status.allocatedIPs") {
		t.Errorf("an ADD before the import failed with %q, want it to say the pool holds SpiderPool's records", err)
	}
	if err := w.deletePod(ctx, early); err != nil {
		t.Fatal(err)
	}

	stopPools := startPoolController(t, e)
	if _, err := w.ctl.start(nil); err != nil {
		t.Fatal(err)
	}
	waitImported(ctx, t, e, name)
	w.probeAgents(ctx, "probe")

	// A new sandbox of a migrated pod: its address again.
	re := olds[0]
	if a, _, err := w.nodes[re.node].add(ctx, re.pod, "new-sandbox"); err != nil {
		t.Fatalf("ADD of a new sandbox of %s: %v", re.pod.Name, err)
	} else if a != re.addr {
		t.Errorf("a new sandbox of %s got %s, want its address %s", re.pod.Name, a, re.addr)
	}

	// The rest of the pool, at once: 15 new pods.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var got []netip.Addr
	for i := range 24 - len(held) {
		n := w.nodes[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			pod, err := w.newPod(ctx, fmt.Sprintf("new-%d", i), n.name)
			if err != nil {
				w.problem("%v", err)
				return
			}
			a, _, err := n.add(ctx, pod, "c")
			if err != nil {
				w.problem("ADD of %s while the pool had an address for it: %v", pod.Name, err)
				return
			}
			w.took(ctx, a, pod.Name, n.name)
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	w.report()
	if t.Failed() {
		t.Fatalf("the pool after the fill:\n%s", w.dump(ctx, ""))
	}
	for _, a := range got {
		if slices.Contains(held, a.String()) {
			t.Errorf("a new pod got %s, the address of a migrated pod", a)
		}
	}

	// The DEL of a migrated pod's sandbox (SpiderPool's: orbweaver never saw its ID)
	// frees its address, and only it: the next pod on that node gets it.
	gone := olds[3]
	if _, err := w.nodes[gone.node].del(ctx, gone.pod, "spiderpool-sandbox"); err != nil {
		t.Fatalf("DEL of %s: %v", gone.pod.Name, err)
	}
	w.gave(gone.addr)
	if err := w.deletePod(ctx, gone.pod); err != nil {
		t.Fatal(err)
	}
	next, err := w.newPod(ctx, "after-del", w.nodes[gone.node].name)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := w.nodes[gone.node].add(ctx, next, "c")
	if err != nil {
		t.Fatalf("ADD after the DEL of a migrated pod: %v\n%s", err, w.dump(ctx, w.nodes[gone.node].name))
	}
	w.took(ctx, a, next.Name, w.nodes[gone.node].name)
	if a != gone.addr {
		t.Errorf("the pod after the DEL got %s, want %s, the one address the DEL freed", a, gone.addr)
	}
	w.report()

	// The way back: orbweaver stops, its allocations are written in SpiderPool's
	// format, every live pod with its address, the one without an endpoint too.
	for _, n := range w.nodes {
		if err := n.halt(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.ctl.kill(); err != nil {
		t.Fatal(err)
	}
	stopPools()
	res, err := migrate.Export(ctx, e.Client, migrate.ExportOptions{Pools: []string{name}, Write: true})
	if err != nil {
		t.Fatal(err)
	}
	sp = &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, sp); err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].Written || res[0].BlocksDeleted == 0 || len(res[0].Unexported) != 0 || sp.Status.AllocatedIPs == nil || sp.Status.Orbweaver != nil {
		t.Fatalf("export: %+v; the pool's status then: %+v", res, sp.Status)
	}
	var back map[string]struct {
		Pod    string `json:"pod"`
		PodUID string `json:"podUid"`
	}
	if err := json.Unmarshal([]byte(*sp.Status.AllocatedIPs), &back); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	live := maps.Clone(w.live)
	w.mu.Unlock()
	if len(back) != len(live) || ptr.Deref(sp.Status.AllocatedIPCount, -1) != int64(len(live)) {
		t.Errorf("exported %d addresses (count %d), want the %d live ones", len(back), ptr.Deref(sp.Status.AllocatedIPCount, -1), len(live))
	}
	for a, who := range live {
		rec, ok := back[a.String()]
		if !ok || !strings.HasPrefix(who, strings.TrimPrefix(rec.Pod, name+"/")+" on ") {
			t.Errorf("%s: exported as %+v, held by %s", a, rec, who)
		}
	}

	// And forward again: imported anew, and the pool's next DEL and ADD on a node
	// free and take exactly one address.
	startPoolController(t, e)
	if _, err := w.ctl.start(nil); err != nil {
		t.Fatal(err)
	}
	w.startAgents(ctx)
	waitImported(ctx, t, e, name)
	if _, err := w.nodes[gone.node].del(ctx, next, "c"); err != nil {
		t.Fatal(err)
	}
	w.gave(gone.addr)
	again, err := w.newPod(ctx, "forward-again", w.nodes[gone.node].name)
	if err != nil {
		t.Fatal(err)
	}
	if a := w.addAfterImport(ctx, w.nodes[gone.node], again); a != gone.addr {
		t.Errorf("after the second import the pod got %s, want %s", a, gone.addr)
	} else {
		w.took(ctx, a, again.Name, w.nodes[gone.node].name)
	}
	w.report()
}

// probeAgents waits until every agent's cache shows the import: until then an agent
// refuses the pool (as it should: the runtime retries), so each node ADDs a probe pod
// until it is served, then DELs it.
func (w *world) probeAgents(ctx context.Context, prefix string) {
	w.t.Helper()
	for i, n := range w.nodes {
		pod, err := w.newPod(ctx, fmt.Sprintf("%s-%d", prefix, i), n.name)
		if err != nil {
			w.t.Fatal(err)
		}
		a := w.addAfterImport(ctx, n, pod)
		w.took(ctx, a, pod.Name, n.name)
		if _, err := n.del(ctx, pod, "c"); err != nil {
			w.t.Fatal(err)
		}
		w.gave(a)
		if err := w.deletePod(ctx, pod); err != nil {
			w.t.Fatal(err)
		}
	}
}

// addAfterImport ADDs the pod as the runtime does while the agent's cache may not show
// the import yet: again while the agent refuses the pool for its SpiderPool records.
func (w *world) addAfterImport(ctx context.Context, n *agentNode, pod *corev1.Pod) netip.Addr {
	w.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		a, _, err := n.add(ctx, pod, "c")
		if err == nil {
			return a
		}
		if !strings.Contains(err.Error(), "status.allocatedIPs") || time.Now().After(deadline) {
			w.t.Fatalf("the agent of %s, after the import: %v\n%s", n.name, err, w.dump(ctx, n.name))
		}
		time.Sleep(50 * time.Millisecond) // its cache has not seen the import yet
	}
}

// waitImported waits until the pool's SpiderPool records are imported and the pool is in
// Grants mode.
func waitImported(ctx context.Context, t *testing.T, e *testenv.Env, name string) {
	t.Helper()
	err := waitFor(ctx, time.Minute, "the pool imported and in Grants mode", func(ctx context.Context) (bool, error) {
		sp := &v2beta1.SpiderIPPool{}
		if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, sp); err != nil {
			return false, err
		}
		return sp.Status.AllocatedIPs == nil && sp.GrantsMode(), nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
