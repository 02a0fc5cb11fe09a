package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/ippool"
	"github.com/orbweaver-ipam/orbweaver/pkg/migrate"
	"github.com/orbweaver-ipam/orbweaver/pkg/testenv"
)

// TestMigrateFromSpiderPool switches a cluster from SpiderPool's real agent and plugin
// (v1.2.2, tools/ensure.sh) to orbweaver and back, as docs/guides/migrate-from-spiderpool.md
// tells a user to: SpiderPool's agents on 3 nodes give 18 pods (12 of a Deployment, 6 of
// a StatefulSet) addresses from a pool of exactly 30; its agents stop, its objects stay;
// orbweaver's CRDs go over SpiderPool's, orbweaver's pool controller imports the
// records, its grant controller and agents take over, and orbweaver's plugin serves.
// Every migrated pod keeps its address (its endpoint, a CHECK of its SpiderPool sandbox,
// a new sandbox's ADD), new pods fill the pool to exactly full without a live address,
// the DEL of a SpiderPool sandbox frees exactly its address, a migrated StatefulSet pod
// re-created on another node keeps its address, and no address ever has two owners.
// Then the way back: orbweaver stops, migrate.Export writes status.allocatedIPs,
// SpiderPool's CRDs and agents come back, and SpiderPool's next pods get the free
// addresses only.
func TestMigrateFromSpiderPool(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real API server, SpiderPool's agents and orbweaver's")
	}
	if os.Geteuid() != 0 {
		const why = "SpiderPool's plugin opens the sandbox's network namespace and announces the address in it: needs root to make one (make test runs as root)"
		if os.Getenv("CI") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	ctrllog.SetLogger(logr.Discard()) // the managers' and agents' caches log through it
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "orbweaver"), "./cmd/orbweaver")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/orbweaver: %v\n%s", err, out)
	}
	// About 45 s on 2 cores: the bound is for a hang, not a measure.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	spPeer, err := newSpiderpoolPeer(PeerParams{BinDir: filepath.Join(root, "bin")})
	if err != nil {
		t.Fatal(err)
	}
	owPeer, err := newOrbweaverPeer(PeerParams{BinDir: bin})
	if err != nil {
		t.Fatal(err)
	}
	sp, ow := spPeer.(*spiderpool), owPeer.(*orbweaver)

	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	}()
	h := &Harness{Env: env, Dir: filepath.Join(env.Dir(), "bench"), Parallel: 2, OpTimeout: 40 * time.Second,
		Progress: io.Discard, ScenarioTimeout: time.Minute, Kubeconfig: env.Kubeconfig}
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		h.Nodes = append(h.Nodes, fmt.Sprintf("migrate-node-%d", i))
	}
	const ns = "migrate"
	if err := errors.Join(h.createNodes(ctx), h.ensureNamespace(ctx, ns)); err != nil {
		t.Fatal(err)
	}
	pools, _, err := layoutPools("migrate", 1, 30, netip.MustParseAddr("10.128.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	pool := pools[0]
	sc := Scenario{Name: "migrate", Nodes: h.Nodes, Pools: pools}
	w := newWorkloads(ctx, t, env, ns)
	m := &migration{t: t, h: h, led: newLedger(), addr: map[*Pod]netip.Addr{}}
	defer func() { // stopped in any case; both are no-ops when stopped already
		if err := errors.Join(ow.stopAgents(), sp.stopAgents()); err != nil {
			t.Error(err)
		}
	}()

	// 1. SpiderPool: 12 pods of a Deployment and 6 of a StatefulSet, round-robin over the
	// nodes, as a kubelet runs them (a failed ADD is retried with the same sandbox).
	if err := sp.Setup(ctx, h, sc); err != nil {
		t.Fatal(err)
	}
	const plain, stateful = 12, 6
	var migrated []*Pod // the Deployment's pods, then the StatefulSet's: web-N is migrated[plain+N]
	for i := range plain {
		migrated = append(migrated, w.deploymentPod(fmt.Sprintf("app-%s-%d", w.hash, i), h.Nodes[i%3]))
	}
	for i := range stateful {
		migrated = append(migrated, w.statefulSetPod(i, h.Nodes[i%3]))
	}
	if err := h.createPods(ctx, migrated); err != nil {
		t.Fatal(err)
	}
	spRetries := m.addAll(ctx, sp, migrated, 10)
	if t.Failed() {
		t.FailNow()
	}
	recorded, err := sp.StillRecorded(ctx, migrated)
	if err != nil {
		t.Fatal(err)
	}
	if len(recorded) != len(migrated) {
		t.Fatalf("SpiderPool's status.allocatedIPs names %d of the %d pods", len(recorded), len(migrated))
	}
	spEndpoints := m.endpoints(ctx)
	for _, p := range migrated {
		se := spEndpoints[p.Name]
		if se == nil || !controllerutil.ContainsFinalizer(se, v2beta1.Finalizer) {
			t.Fatalf("SpiderPool wrote no endpoint with its finalizer for %s: %+v", p, se)
		}
	}
	t.Logf("SpiderPool v1.2.2 gave %d pods addresses (%d ADDs retried), in %s", len(migrated), spRetries, pool.Range())

	// 2. SpiderPool uninstalled, its objects kept; orbweaver's CRDs over SpiderPool's;
	// orbweaver's pool controller imports the records, then its grant controller and
	// agents take over.
	if err := sp.stopAgents(); err != nil {
		t.Fatal(err)
	}
	if err := sp.restoreOwnCRDs(); err != nil {
		t.Fatal(err)
	}
	importStart := time.Now()
	stopPools := startPoolController(ctx, t, h)
	defer stopPools()
	var imported *v2beta1.SpiderIPPool
	err = poll(ctx, 30*time.Second, func() (bool, error) {
		imported = &v2beta1.SpiderIPPool{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: pool.Name}, imported); err != nil {
			return false, err
		}
		return imported.Status.AllocatedIPs == nil, nil
	})
	importTook := time.Since(importStart)
	if err != nil {
		t.Fatalf("SpiderPool's records of %s not imported: %v; the pool's status: %s", pool.Name, err, m.status(imported))
	}
	var cond *metav1.Condition
	if imported.Status.Orbweaver != nil {
		cond = meta.FindStatusCondition(imported.Status.Orbweaver.Conditions, v2beta1.IPPoolImportedCondition)
	}
	if cond == nil || cond.Status != metav1.ConditionTrue || deref(imported.Status.AllocatedIPCount, -1) != int64(len(migrated)) {
		t.Fatalf("after the import: condition %+v, status %s", cond, m.status(imported))
	}
	t.Logf("import: %q %s, %s after the pool controller started", cond.Type, cond.Message, importTook.Round(time.Millisecond))
	if err := ow.Setup(ctx, h, Scenario{Name: "migrate", Nodes: h.Nodes, Pools: pools, Reused: true}); err != nil {
		t.Fatal(err)
	}
	// SpiderPool's finalizer comes off its endpoints, and every endpoint still names its
	// pod and the address SpiderPool gave it.
	err = poll(ctx, 30*time.Second, func() (bool, error) {
		for _, se := range m.endpoints(ctx) {
			if controllerutil.ContainsFinalizer(se, v2beta1.Finalizer) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("SpiderPool's finalizer still on endpoints: %v", err)
	}
	changed := m.checkEndpoints(ctx, migrated)

	// A CNI CHECK of each migrated pod's SpiderPool sandbox, with the result SpiderPool
	// gave: orbweaver's records agree.
	checks := 0
	for _, p := range migrated {
		c := h.cni(ctx, withPrevResult{Peer: ow, prev: netip.PrefixFrom(m.addr[p], pool.Prefix.Bits())}, "CHECK", p)
		if c.err != nil {
			t.Errorf("CHECK of SpiderPool's sandbox of %s through orbweaver: %v", p, c.err)
			continue
		}
		checks++
	}

	// A new sandbox of a migrated pod, of each kind: its address again.
	for _, p := range []*Pod{migrated[0], migrated[plain]} {
		before := m.addr[p]
		p.ContainerID = newContainerID()
		c := h.cni(ctx, ow, "ADD", p)
		if c.err != nil {
			t.Fatalf("ADD of a new sandbox of migrated pod %s: %v", p, c.err)
		}
		if c.ip != before {
			changed++
			t.Errorf("a new sandbox of %s got %s through orbweaver, SpiderPool gave it %s", p, c.ip, before)
		}
	}

	// New pods fill the pool to exactly full, at once, on every node.
	fill := make([]*Pod, pool.Size-len(migrated))
	for i := range fill {
		fill[i] = w.deploymentPod(fmt.Sprintf("app-%s-new-%d", w.hash, i), h.Nodes[i%3])
	}
	if err := h.createPods(ctx, fill); err != nil {
		t.Fatal(err)
	}
	fillStart := time.Now()
	if retries := m.addAll(ctx, ow, fill, 1); retries > 0 || t.Failed() {
		t.Fatalf("orbweaver's ADDs of %d new pods: %d failed", len(fill), retries)
	}
	fillTook := time.Since(fillStart)
	if held := m.held(); len(held) != pool.Size {
		t.Fatalf("%d addresses held after the fill, want the pool's %d", len(held), pool.Size)
	}
	full := &v2beta1.SpiderIPPool{}
	if err := poll(ctx, 10*time.Second, func() (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Name: pool.Name}, full)
		return err == nil && deref(full.Status.AllocatedIPCount, -1) == int64(pool.Size), err
	}); err != nil {
		t.Errorf("the pool's count after the fill: %v; its status: %s", err, m.status(full))
	}

	// The DEL of a SpiderPool sandbox, which orbweaver never saw, frees exactly its
	// address: the next pod on its node gets it, in a pool otherwise full.
	gone := migrated[4]
	freed := m.addr[gone]
	m.del(ctx, ow, gone)
	if err := h.deletePods(ctx, []*Pod{gone}, 0); err != nil {
		t.Fatal(err)
	}
	next := w.deploymentPod("app-"+w.hash+"-after-del", gone.Node)
	if err := h.createPods(ctx, []*Pod{next}); err != nil {
		t.Fatal(err)
	}
	if got := m.add(ctx, ow, next, 1); got != freed {
		t.Errorf("the pod after the DEL of %s's SpiderPool sandbox got %s, want %s, the one address the DEL freed", gone, got, freed)
	}

	// Migrated StatefulSet pods re-created on another node keep their addresses: web-1
	// after its DEL (its node drained), web-2 without one (its node lost).
	var moved []string
	for _, ord := range []int{1, 2} {
		old := migrated[plain+ord]
		want := m.addr[old]
		if ord == 1 {
			m.del(ctx, ow, old)
			// Kept for the pod's next instance: a DEL that freed it would leave the
			// pool's one free address for web-1 to get back by chance.
			if se := m.endpoints(ctx)[old.Name]; se == nil || !slices.Equal(endpointAddrs(se), []netip.Addr{want}) {
				t.Errorf("after the DEL of %s's SpiderPool sandbox its endpoint is %+v, want it kept with %s", old, se, want)
			}
		}
		if err := h.deletePods(ctx, []*Pod{old}, 0); err != nil {
			t.Fatal(err)
		}
		m.release(old)
		again := w.statefulSetPod(ord, h.Nodes[(slices.Index(h.Nodes, old.Node)+1)%3])
		if err := m.recreate(ctx, again); err != nil {
			t.Fatal(err)
		}
		migrated[plain+ord] = again
		if got := m.add(ctx, ow, again, 1); got != want {
			changed++
			t.Errorf("StatefulSet pod %s re-created on %s got %s, it had %s on %s", again, again.Node, got, want, old.Node)
		}
		moved = append(moved, fmt.Sprintf("%s %s→%s", again.Name, old.Node, again.Node))
	}
	live := m.checkOneOwner(ctx, pool.Size)
	changed += m.checkEndpoints(ctx, slices.DeleteFunc(slices.Clone(migrated), func(p *Pod) bool { return p == gone }))
	if changed != 0 {
		t.Errorf("%d migrated pods' addresses changed", changed)
	}
	dups := m.led.doubleAllocations()
	for _, d := range dups {
		t.Errorf("duplicate: %s", d)
	}
	t.Logf("orbweaver took over: %d pods migrated (%d of a Deployment, %d of a StatefulSet), %d addresses changed, %d duplicates; "+
		"%d CHECKs of SpiderPool sandboxes passed; %d new pods filled the pool in %s; the DEL of %s's SpiderPool sandbox freed %s for the next pod; "+
		"StatefulSet pods moved with their addresses: %s; %d live addresses, each in one endpoint",
		len(migrated), plain, stateful, changed, len(dups), checks, len(fill), fillTook.Round(time.Millisecond), gone, freed, strings.Join(moved, ", "), live)
	if t.Failed() {
		t.FailNow()
	}

	// 3. The way back. One new pod goes first, so the pool has a free address.
	back := fill[0]
	m.del(ctx, ow, back)
	if err := h.deletePods(ctx, []*Pod{back}, 0); err != nil {
		t.Fatal(err)
	}
	if err := ow.stopAgents(); err != nil {
		t.Fatal(err)
	}
	stopPools()
	exported, err := migrate.Export(ctx, env.Client, migrate.ExportOptions{Write: true})
	if err != nil {
		t.Fatal(err)
	}
	held := m.held()
	if len(exported) != 1 || !exported[0].Written || exported[0].Addresses != len(held) || len(exported[0].Unexported) != 0 {
		t.Fatalf("export: %+v, want %d addresses written", exported, len(held))
	}
	if err := sp.Setup(ctx, h, Scenario{Name: "migrate", Nodes: h.Nodes, Pools: pools, Reused: true}); err != nil {
		t.Fatal(err)
	}
	m.checkAllocatedIPs(ctx, pool.Name, held)
	// SpiderPool's next pod gets the one free address; then SpiderPool's DEL of a pod
	// orbweaver served frees that pod's address for SpiderPool's next.
	first := w.deploymentPod("app-"+w.hash+"-back-0", h.Nodes[0])
	if err := h.createPods(ctx, []*Pod{first}); err != nil {
		t.Fatal(err)
	}
	if got := m.add(ctx, sp, first, 10); got != m.addr[back] {
		t.Errorf("SpiderPool's first pod after the way back got %s, want %s, the one free address", got, m.addr[back])
	}
	other := fill[1]
	if err := h.deletePods(ctx, []*Pod{other}, 0); err != nil { // SpiderPool releases nothing of a live pod
		t.Fatal(err)
	}
	m.del(ctx, sp, other)
	second := w.deploymentPod("app-"+w.hash+"-back-1", other.Node)
	if err := h.createPods(ctx, []*Pod{second}); err != nil {
		t.Fatal(err)
	}
	if got := m.add(ctx, sp, second, 10); got != m.addr[other] {
		t.Errorf("SpiderPool's pod after its DEL of %s (served by orbweaver) got %s, want %s", other, got, m.addr[other])
	}
	// A StatefulSet pod whose endpoint orbweaver rewrote (web-1, moved above) re-created
	// on another node keeps its address under SpiderPool too.
	old := migrated[plain+1]
	want := m.addr[old]
	if err := h.deletePods(ctx, []*Pod{old}, 0); err != nil {
		t.Fatal(err)
	}
	m.del(ctx, sp, old)
	again := w.statefulSetPod(1, h.Nodes[(slices.Index(h.Nodes, old.Node)+1)%3])
	if err := m.recreate(ctx, again); err != nil {
		t.Fatal(err)
	}
	if got := m.add(ctx, sp, again, 10); got != want {
		t.Errorf("SpiderPool gave StatefulSet pod %s re-created on %s %s, it had %s on %s under orbweaver", again, again.Node, got, want, old.Node)
	}
	// No kube-controller-manager runs here: do what its garbage collector does to the
	// endpoints of the pods deleted since, which SpiderPool's DEL leaves to it.
	if err := m.collectEndpoints(ctx); err != nil {
		t.Fatal(err)
	}
	m.checkOneOwner(ctx, pool.Size)
	dups = m.led.doubleAllocations()
	for _, d := range dups {
		t.Errorf("duplicate: %s", d)
	}
	t.Logf("the way back: export wrote %d addresses; SpiderPool's next pods got %s and %s (the free ones); %s re-created %s→%s kept %s under SpiderPool; %d duplicates",
		exported[0].Addresses, m.addr[first], m.addr[second], again.Name, old.Node, again.Node, m.addr[again], len(dups))
}

// migration is the state of TestMigrateFromSpiderPool: which pod got which address from
// whom, and when each held it.
type migration struct {
	t    *testing.T
	h    *Harness
	led  *ledger
	mu   sync.Mutex
	addr map[*Pod]netip.Addr // the address each pod got
	live []*Pod              // pods that hold an address now
}

// add ADDs the pod through the peer, retrying a failure with the same sandbox as a
// kubelet does, at most tries times, and records its address (the zero address when
// every try failed, with the test failed).
func (m *migration) add(ctx context.Context, p Peer, pod *Pod, tries int) netip.Addr {
	a, _ := m.addRetrying(ctx, p, pod, tries)
	return a
}

func (m *migration) addRetrying(ctx context.Context, p Peer, pod *Pod, tries int) (netip.Addr, int) {
	var c call
	for try := range tries {
		if c = m.h.cni(ctx, p, "ADD", pod); c.err == nil {
			m.mu.Lock()
			m.addr[pod] = c.ip
			m.live = append(m.live, pod)
			m.mu.Unlock()
			m.led.hold(pod, c.ip, c.end)
			return c.ip, try
		}
		if try < tries-1 && sleep(ctx, time.Second) != nil {
			break
		}
	}
	m.t.Errorf("%s: ADD of %s on %s failed %d times, last: %v", p.Name(), pod, pod.Node, tries, c.err)
	return netip.Addr{}, tries
}

// addAll ADDs the pods through the peer, Parallel at a time per node, and returns how
// many tries failed.
func (m *migration) addAll(ctx context.Context, p Peer, pods []*Pod, tries int) int {
	var mu sync.Mutex
	failed := 0
	jobs := make([]job, len(pods))
	for i, pod := range pods {
		jobs[i] = job{node: pod.Node, run: func(ctx context.Context) {
			_, n := m.addRetrying(ctx, p, pod, tries)
			mu.Lock()
			failed += n
			mu.Unlock()
		}}
	}
	runPerNode(ctx, m.h.Nodes, m.h.Parallel, jobs)
	return failed
}

// del DELs the pod's sandbox through the peer; the address is no longer the pod's from
// the start of the DEL.
func (m *migration) del(ctx context.Context, p Peer, pod *Pod) {
	m.release(pod)
	if c := m.h.cni(ctx, p, "DEL", pod); c.err != nil {
		m.t.Errorf("%s: DEL of %s: %v", p.Name(), pod, c.err)
	}
}

// release ends the pod's holding of its address.
func (m *migration) release(pod *Pod) {
	m.led.release(pod, time.Now())
	m.mu.Lock()
	m.live = slices.DeleteFunc(m.live, func(p *Pod) bool { return p == pod })
	m.mu.Unlock()
}

// held maps each address live pods hold to the pod.
func (m *migration) held() map[netip.Addr]*Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[netip.Addr]*Pod{}
	for _, p := range m.live {
		if other, dup := out[m.addr[p]]; dup {
			m.t.Errorf("%s is held by %s and %s", m.addr[p], other, p)
		}
		out[m.addr[p]] = p
	}
	return out
}

// recreate creates the pod once its predecessor of the same name is gone from the API
// server (a StatefulSet re-creates its pod so).
func (m *migration) recreate(ctx context.Context, pod *Pod) error {
	err := poll(ctx, 10*time.Second, func() (bool, error) {
		err := m.h.Env.Client.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: pod.Name}, &corev1.Pod{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		return fmt.Errorf("the previous pod %s not gone: %w", pod, err)
	}
	return m.h.createPods(ctx, []*Pod{pod})
}

// collectEndpoints deletes the endpoints whose owner pod is gone, as Kubernetes' garbage
// collector does.
func (m *migration) collectEndpoints(ctx context.Context) error {
	c := m.h.Env.Client
	for _, se := range m.endpoints(ctx) {
		for _, ref := range se.OwnerReferences {
			var pod corev1.Pod
			err := c.Get(ctx, client.ObjectKey{Namespace: se.Namespace, Name: ref.Name}, &pod)
			if ref.Kind != "Pod" || (err == nil && pod.UID == ref.UID) {
				continue
			}
			if client.IgnoreNotFound(err) != nil {
				return err
			}
			if err := c.Delete(ctx, se, client.Preconditions{UID: &se.UID}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete SpiderEndpoint %s/%s: %w", se.Namespace, se.Name, err)
			}
		}
	}
	return nil
}

// endpoints returns the namespace's SpiderEndpoints by name.
func (m *migration) endpoints(ctx context.Context) map[string]*v2beta1.SpiderEndpoint {
	var list v2beta1.SpiderEndpointList
	if err := m.h.Env.Client.List(ctx, &list, client.InNamespace("migrate")); err != nil {
		m.t.Fatalf("list SpiderEndpoints: %v", err)
	}
	out := map[string]*v2beta1.SpiderEndpoint{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// endpointAddrs are the IPv4 addresses an endpoint names.
func endpointAddrs(se *v2beta1.SpiderEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, nic := range se.Status.Current.IPs {
		if p, err := netip.ParsePrefix(deref(nic.IPv4, "")); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

// checkEndpoints checks that each pod's SpiderEndpoint names the pod and exactly the
// address it got, and returns how many do not.
func (m *migration) checkEndpoints(ctx context.Context, pods []*Pod) int {
	eps := m.endpoints(ctx)
	bad := 0
	for _, p := range pods {
		se := eps[p.Name]
		if se == nil {
			m.t.Errorf("%s has no SpiderEndpoint", p)
			bad++
			continue
		}
		if got := endpointAddrs(se); se.Status.Current.UID != p.UID || len(got) != 1 || got[0] != m.addr[p] {
			m.t.Errorf("the SpiderEndpoint of %s names pod %s and %v, want %s and %s", p, se.Status.Current.UID, got, p.UID, m.addr[p])
			bad++
		}
	}
	return bad
}

// checkOneOwner checks that no address is named by two SpiderEndpoints and that the
// endpoints name exactly the addresses live pods hold, want of them; it returns how many
// the endpoints name.
func (m *migration) checkOneOwner(ctx context.Context, want int) int {
	owners := map[netip.Addr][]string{}
	for name, se := range m.endpoints(ctx) {
		for _, a := range endpointAddrs(se) {
			owners[a] = append(owners[a], name)
		}
	}
	for a, names := range owners {
		if len(names) > 1 {
			m.t.Errorf("%s has %d owners: %v", a, len(names), names)
		}
	}
	held := m.held()
	for a, p := range held {
		if names := owners[a]; len(names) != 1 || names[0] != p.Name {
			m.t.Errorf("%s is %s's, the endpoints say %v", a, p, names)
		}
	}
	if len(owners) != len(held) || len(held) != want {
		m.t.Errorf("the endpoints name %d addresses, the live pods hold %d, want %d", len(owners), len(held), want)
	}
	return len(owners)
}

// checkAllocatedIPs checks that the pool's status.allocatedIPs, as SpiderPool reads it,
// names every held address with its pod, and nothing else.
func (m *migration) checkAllocatedIPs(ctx context.Context, pool string, held map[netip.Addr]*Pod) {
	sp := &v2beta1.SpiderIPPool{}
	if err := m.h.Env.Client.Get(ctx, client.ObjectKey{Name: pool}, sp); err != nil {
		m.t.Fatal(err)
	}
	var allocated map[string]struct {
		Pod    string `json:"pod"`
		PodUID string `json:"podUid"`
	}
	if err := json.Unmarshal([]byte(deref(sp.Status.AllocatedIPs, "")), &allocated); err != nil {
		m.t.Fatalf("status.allocatedIPs of %s after the export: %v", pool, err)
	}
	for a, p := range held {
		if got := allocated[a.String()]; got.Pod != p.String() || got.PodUID != p.UID {
			m.t.Errorf("status.allocatedIPs has %s as %+v, want %s (%s)", a, got, p, p.UID)
		}
	}
	if len(allocated) != len(held) || deref(sp.Status.AllocatedIPCount, -1) != int64(len(held)) {
		m.t.Errorf("status.allocatedIPs has %d addresses (count %d), want the %d held", len(allocated), deref(sp.Status.AllocatedIPCount, -1), len(held))
	}
}

// status formats a pool's status for a failure message.
func (m *migration) status(sp *v2beta1.SpiderIPPool) string {
	if sp == nil {
		return "(none)"
	}
	b, _ := json.Marshal(sp.Status)
	return string(b)
}

// workloads are the Deployment (with its ReplicaSet) and the StatefulSet whose pods the
// test runs: SpiderPool's agent reads a pod's owners to find its top controller, and
// treats a StatefulSet's pods as such only when the StatefulSet exists. No controller
// runs them.
type workloads struct {
	ns   string
	hash string // the ReplicaSet's pod-template-hash
	rs   metav1.OwnerReference
	sts  metav1.OwnerReference
}

func newWorkloads(ctx context.Context, t *testing.T, env *testenv.Env, ns string) *workloads {
	t.Helper()
	w := &workloads{ns: ns, hash: "5d8f7c9b6"}
	template := func(app string, labels map[string]string) corev1.PodTemplateSpec {
		l := map[string]string{"app": app}
		maps.Copy(l, labels)
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/pause:bench"}}}}
	}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr(int32(30)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}}, Template: template("app", nil)}}
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-" + w.hash,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: ptr(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(30)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app", "pod-template-hash": w.hash}},
			Template: template("app", map[string]string{"pod-template-hash": w.hash})}}
	if err := env.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr(int32(6)), ServiceName: "web", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: template("web", nil)}}
	if err := env.Client.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	w.rs = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
	w.sts = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
	return w
}

// deploymentPod is a pod of the Deployment's ReplicaSet.
func (w *workloads) deploymentPod(name, node string) *Pod {
	return &Pod{Namespace: w.ns, Name: name, ContainerID: newContainerID(), Node: node,
		Owner: ptr(w.rs), Labels: map[string]string{"app": "app", "pod-template-hash": w.hash}}
}

// statefulSetPod is the StatefulSet's pod of the ordinal.
func (w *workloads) statefulSetPod(ordinal int, node string) *Pod {
	return &Pod{Namespace: w.ns, Name: fmt.Sprintf("web-%d", ordinal), ContainerID: newContainerID(), Node: node,
		Owner: ptr(w.sts), Labels: map[string]string{"app": "web", "statefulset.kubernetes.io/pod-name": fmt.Sprintf("web-%d", ordinal)}}
}

// withPrevResult is a peer whose network configuration carries the prevResult of a CNI
// CHECK: the result that gave the pod prev.
type withPrevResult struct {
	Peer
	prev netip.Prefix
}

func (p withPrevResult) NetConf(node string, pool int) []byte {
	var conf map[string]any
	if err := json.Unmarshal(p.Peer.NetConf(node, pool), &conf); err != nil {
		return nil
	}
	conf["prevResult"] = map[string]any{"cniVersion": "1.0.0", "ips": []any{map[string]any{"address": p.prev.String()}}}
	out, _ := json.Marshal(conf)
	return out
}

// startPoolController runs orbweaver's pool status controller, which imports SpiderPool's
// records, in this process until the returned stop is called.
func startPoolController(ctx context.Context, t *testing.T, h *Harness) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(h.ClientConfig(), ctrl.Options{
		Scheme: h.Env.Scheme, Logger: logr.Discard(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := ippool.SetupWithManager(ctx, mgr, ippool.Params{Direct: h.Env.Client, StatusInterval: 100 * time.Millisecond}); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("pool controller: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("pool controller still running 30s after its stop")
			}
		})
	}
}

// poll calls cond every 100ms until it holds, for at most d.
func poll(ctx context.Context, d time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if sleep(ctx, 100*time.Millisecond) != nil {
			return errors.Join(fmt.Errorf("not within %s", d), last)
		}
	}
}

// deref is *p, or def when p is nil.
func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
