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
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/ippool"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/migrate"
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
	// About 25 s on 2 cores: the bound is for a hang, not a measure.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	m := startMigration(ctx, t, PeerParams{})
	h, sp, ow, w := m.h, m.sp, m.ow, m.w
	pools, _, err := layoutPools("migrate", 1, 30, netip.MustParseAddr("10.128.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	pool := pools[0]

	// 1. SpiderPool: 12 pods of a Deployment and 6 of a StatefulSet, round-robin over the
	// nodes, as a kubelet runs them (a failed ADD is retried with the same sandbox).
	if err := sp.Setup(ctx, h, Scenario{Name: "migrate", Nodes: h.Nodes, Pools: pools}); err != nil {
		t.Fatal(err)
	}
	const plain, stateful = 12, 6
	var migrated []*Pod // the Deployment's pods, then the StatefulSet's: web-N is migrated[plain+N]
	for i := range plain {
		migrated = append(migrated, w.app.pod(fmt.Sprint(i), h.Nodes[i%3]))
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
	m.checkSpiderPoolEndpoints(ctx, migrated)
	t.Logf("SpiderPool v1.2.2 gave %d pods addresses (%d ADDs retried), in %s", len(migrated), spRetries, pool.Range())

	// 2. SpiderPool uninstalled, its objects kept; orbweaver takes over.
	stopPools := m.takeOver(ctx, pools, map[string]int{pool.Name: len(migrated)})
	defer stopPools()
	changed := m.checkEndpoints(ctx, migrated)

	// A CNI CHECK of each migrated pod's SpiderPool sandbox, with the result SpiderPool
	// gave: orbweaver's records agree.
	checks := 0
	for _, p := range migrated {
		checks += m.check(ctx, ow, p)
	}

	// A new sandbox of a migrated pod, of each kind: its address again.
	for _, p := range []*Pod{migrated[0], migrated[plain]} {
		changed += m.newSandbox(ctx, ow, p)
	}

	// New pods fill the pool to exactly full, at once, on every node.
	fill := make([]*Pod, pool.Size-len(migrated))
	for i := range fill {
		fill[i] = w.app.pod(fmt.Sprintf("new-%d", i), h.Nodes[i%3])
	}
	fillTook := m.fill(ctx, fill, pools)

	// The DEL of a SpiderPool sandbox, which orbweaver never saw, frees exactly its
	// address: the next pod on its node gets it, in a pool otherwise full.
	gone := migrated[4]
	freed := m.ip(gone)
	m.del(ctx, ow, gone)
	if err := h.deletePods(ctx, []*Pod{gone}, 0); err != nil {
		t.Fatal(err)
	}
	next := w.app.pod("after-del", gone.Node)
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
		want := m.ip(old)
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
	exported := m.giveBack(ctx, pools, stopPools)
	// SpiderPool's next pod gets the one free address; then SpiderPool's DEL of a pod
	// orbweaver served frees that pod's address for SpiderPool's next.
	first := w.app.pod("back-0", h.Nodes[0])
	if err := h.createPods(ctx, []*Pod{first}); err != nil {
		t.Fatal(err)
	}
	if got := m.add(ctx, sp, first, 10); got != m.ip(back) {
		t.Errorf("SpiderPool's first pod after the way back got %s, want %s, the one free address", got, m.ip(back))
	}
	other := fill[1]
	if err := h.deletePods(ctx, []*Pod{other}, 0); err != nil { // SpiderPool releases nothing of a live pod
		t.Fatal(err)
	}
	m.del(ctx, sp, other)
	second := w.app.pod("back-1", other.Node)
	if err := h.createPods(ctx, []*Pod{second}); err != nil {
		t.Fatal(err)
	}
	if got := m.add(ctx, sp, second, 10); got != m.ip(other) {
		t.Errorf("SpiderPool's pod after its DEL of %s (served by orbweaver) got %s, want %s", other, got, m.ip(other))
	}
	// A StatefulSet pod whose endpoint orbweaver rewrote (web-1, moved above) re-created
	// on another node keeps its address under SpiderPool too.
	old := migrated[plain+1]
	want := m.ip(old)
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
		exported, m.ip(first), m.ip(second), again.Name, old.Node, again.Node, m.ip(again), len(dups))
}

// TestMigrateFromSpiderPoolDualStackTwoNICs is TestMigrateFromSpiderPool for pods with
// more than one address. SpiderPool's real agents (IPv6 on) and plugin serve, on 3
// nodes, 6 dual-stack pods (eth0 with an IPv4 address and an IPv6 one, from two pools:
// ipam.spidernet.io/ippool) and 6 pods with two NICs (eth0 and net1, each from its own
// pool: ipam.spidernet.io/ippools, 3 naming the interfaces and 3 by position, with the
// Multus network of net1), every pool of exactly 12. Its plugin is called once per
// interface, as Multus does: the first ADD of a two-NIC pod allocates both NICs, the
// second finds net1's. After orbweaver takes over, every one of those addresses stays
// its pod's interface's: the endpoints, a CHECK of the SpiderPool sandbox per interface,
// a new sandbox's ADD per interface; new pods fill the four pools exactly; the DELs of
// SpiderPool sandboxes (every interface) free exactly their addresses; the way back
// exports them into each pool's status.allocatedIPs, and SpiderPool's next pods get
// exactly the free addresses of each family and NIC.
func TestMigrateFromSpiderPoolDualStackTwoNICs(t *testing.T) {
	// About 25 s on 2 cores: the bound is for a hang, not a measure.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	m := startMigration(ctx, t, PeerParams{IPv6: true})
	h, sp, ow := m.h, m.sp, m.ow
	const size = 12
	v4, _, err := layoutPools("migrate", 3, size, netip.MustParseAddr("10.128.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	dual4, eth0, net1 := v4[0], v4[1], v4[2]
	dual4.Name, eth0.Name, net1.Name = "dual-v4", "nics-eth0", "nics-net1"
	dual6 := Pool{Name: "dual-v6", Prefix: netip.MustParsePrefix("fd00:10:128::/120"),
		First: netip.MustParseAddr("fd00:10:128::1"), Last: netip.MustParseAddr("fd00:10:128::c"), Size: size}
	pools := []Pool{dual4, dual6, eth0, net1} // the first is IPv4: the CNI configs name it

	// net1 is a Multus network's interface: SpiderPool's agent looks for it in
	// k8s.v1.cni.cncf.io/networks (no NetworkAttachmentDefinition is read).
	const net1Network = "kube-system/macvlan-net1@net1"
	dual := newDeployment(ctx, t, m.env, m.w.ns, "dual", map[string]string{
		ipam.AnnoPodIPPool: fmt.Sprintf(`{"ipv4":[%q],"ipv6":[%q]}`, dual4.Name, dual6.Name)})
	named := newDeployment(ctx, t, m.env, m.w.ns, "nics", map[string]string{ipam.AnnoMultusNetworks: net1Network,
		ipam.AnnoPodIPPools: fmt.Sprintf(`[{"interface":"eth0","ipv4":[%q]},{"interface":"net1","ipv4":[%q]}]`, eth0.Name, net1.Name)})
	byPosition := newDeployment(ctx, t, m.env, m.w.ns, "nics-by-position", map[string]string{ipam.AnnoMultusNetworks: net1Network,
		ipam.AnnoPodIPPools: fmt.Sprintf(`[{"ipv4":[%q]},{"ipv4":[%q]}]`, eth0.Name, net1.Name)})
	dualLayout := map[string][]Pool{"eth0": {dual4, dual6}}
	nicsLayout := map[string][]Pool{"eth0": {eth0}, "net1": {net1}}

	// 1. SpiderPool, IPv6 on: the dual-stack pods, then the two-NIC pods, round-robin
	// over the nodes.
	if err := sp.Setup(ctx, h, Scenario{Name: "migrate", Nodes: h.Nodes, Pools: pools}); err != nil {
		t.Fatal(err)
	}
	const dualStack, perForm = 6, 3 // two-NIC pods: perForm naming the interfaces, perForm by position
	var duals, nics []*Pod          // nics: those naming the interfaces, then those by position
	for i := range dualStack {
		duals = append(duals, dual.pod(fmt.Sprint(i), h.Nodes[i%3]))
	}
	for _, d := range []*deployment{named, byPosition} {
		for i := range perForm {
			nics = append(nics, d.pod(fmt.Sprint(i), h.Nodes[i%3]))
		}
	}
	migrated := slices.Concat(duals, nics)
	if err := h.createPods(ctx, migrated); err != nil {
		t.Fatal(err)
	}
	spRetries := m.addAll(ctx, sp, migrated, 10)
	if t.Failed() {
		t.FailNow()
	}
	m.checkFrom(duals, dualLayout)
	m.checkFrom(nics, nicsLayout)
	m.checkSpiderPoolEndpoints(ctx, migrated)
	spAddrs := len(m.addrsOf(migrated...))
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("SpiderPool v1.2.2 gave %d dual-stack pods and %d two-NIC pods (%d naming the interfaces, %d by position) %d addresses (%d ADDs retried), in %s, %s, %s and %s",
		len(duals), len(nics), perForm, perForm, spAddrs, spRetries, dual4.Range(), dual6.Range(), eth0.Range(), net1.Range())

	// 2. orbweaver takes over: every pool's records imported, each with its pod's
	// interface.
	stopPools := m.takeOver(ctx, pools, map[string]int{dual4.Name: len(duals), dual6.Name: len(duals), eth0.Name: len(nics), net1.Name: len(nics)})
	defer stopPools()
	changed := m.checkEndpoints(ctx, migrated)
	checks := 0
	for _, p := range migrated {
		checks += m.check(ctx, ow, p)
	}
	// A new sandbox of one pod of each kind: every interface's addresses again.
	for _, p := range []*Pod{duals[0], nics[0], nics[perForm]} {
		changed += m.newSandbox(ctx, ow, p)
	}

	// New pods fill the four pools to exactly full, at once, on every node.
	var fill []*Pod
	for i := range size - len(duals) {
		fill = append(fill, dual.pod(fmt.Sprintf("new-%d", i), h.Nodes[i%3]))
	}
	for i := range size - len(nics) {
		d := named
		if i%2 == 1 {
			d = byPosition
		}
		fill = append(fill, d.pod(fmt.Sprintf("new-%d", i), h.Nodes[i%3]))
	}
	fillTook := m.fill(ctx, fill, pools)
	m.checkFrom(fill[:size-len(duals)], dualLayout)
	m.checkFrom(fill[size-len(duals):], nicsLayout)

	// The DELs of SpiderPool sandboxes, every interface of each, free exactly their
	// addresses: the next pods, in pools otherwise full, get exactly those.
	gone := []*Pod{duals[1], nics[1], nics[perForm+2]}
	after := []*Pod{dual.pod("after-del", gone[0].Node), named.pod("after-del", gone[1].Node), byPosition.pod("after-del", gone[2].Node)}
	freed := m.addrsOf(gone...)
	for _, p := range gone {
		m.del(ctx, ow, p)
	}
	if err := h.deletePods(ctx, gone, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.createPods(ctx, after); err != nil {
		t.Fatal(err)
	}
	for _, p := range after {
		m.add(ctx, ow, p, 1)
	}
	if got := m.addrsOf(after...); !slices.Equal(got, freed) {
		t.Errorf("the pods after the DELs of %v's SpiderPool sandboxes got %v, want %v, the addresses the DELs freed", gone, got, freed)
	}
	m.checkFrom(after[:1], dualLayout)
	m.checkFrom(after[1:], nicsLayout)
	live := m.checkOneOwner(ctx, len(pools)*size)
	stayed := slices.DeleteFunc(slices.Clone(migrated), func(p *Pod) bool { return slices.Contains(gone, p) })
	changed += m.checkEndpoints(ctx, stayed)
	if changed != 0 {
		t.Errorf("%d migrated pods' addresses changed", changed)
	}
	dups := m.led.doubleAllocations()
	for _, d := range dups {
		t.Errorf("duplicate: %s", d)
	}
	t.Logf("orbweaver took over: %d pods migrated with %d addresses, %d changed, %d duplicates; %d CHECKs (one per interface) of SpiderPool sandboxes passed; "+
		"%d new pods filled the 4 pools in %s; the DELs of %d SpiderPool sandboxes freed %v for the next pods; %d live addresses, each in one endpoint",
		len(migrated), spAddrs, changed, len(dups), checks, len(fill), fillTook.Round(time.Millisecond), len(gone), freed, live)
	if t.Failed() {
		t.FailNow()
	}

	// 3. The way back. A new pod of each kind goes first, so each pool has a free
	// address.
	back := []*Pod{fill[0], fill[size-len(duals)+1]} // dual-stack; two NICs by position
	for _, p := range back {
		m.del(ctx, ow, p)
	}
	if err := h.deletePods(ctx, back, 0); err != nil {
		t.Fatal(err)
	}
	exported := m.giveBack(ctx, pools, stopPools)
	// SpiderPool's next pod of each kind gets the free address of each of its pools.
	firsts := []*Pod{dual.pod("back-0", back[0].Node), named.pod("back-0", back[1].Node)}
	if err := h.createPods(ctx, firsts); err != nil {
		t.Fatal(err)
	}
	for _, p := range firsts {
		m.add(ctx, sp, p, 10)
	}
	m.checkFrom(firsts[:1], dualLayout)
	m.checkFrom(firsts[1:], nicsLayout)
	if got, want := m.addrsOf(firsts...), m.addrsOf(back...); !slices.Equal(got, want) {
		t.Errorf("SpiderPool's first pods after the way back got %v, want %v, the free addresses", got, want)
	}
	m.checkOneOwner(ctx, len(pools)*size)
	dups = m.led.doubleAllocations()
	for _, d := range dups {
		t.Errorf("duplicate: %s", d)
	}
	t.Logf("the way back: export wrote %d addresses into 4 pools; SpiderPool's next dual-stack and two-NIC pods got %v (the free ones); %d duplicates",
		exported, m.addrsOf(firsts...), len(dups))
}

// migration is the state of a migration test: an API server with 3 nodes, SpiderPool's
// peer and orbweaver's, the workloads, which pod got which addresses from whom, and
// when each held them.
type migration struct {
	t   *testing.T
	h   *Harness
	env *testenv.Env
	sp  *spiderpool
	ow  *orbweaver
	w   *workloads
	led *ledger

	mu    sync.Mutex
	addrs map[*Pod]map[string][]netip.Prefix // per interface, what its ADD returned
	live  []*Pod                             // pods that hold their addresses now
}

// startMigration builds orbweaver's plugin and starts an API server with 3 nodes, the
// namespace "migrate" and its workloads. spParams are SpiderPool's peer's (BinDir is
// set here). Everything stops when the test ends.
func startMigration(ctx context.Context, t *testing.T, spParams PeerParams) *migration {
	t.Helper()
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
	spParams.BinDir = filepath.Join(root, "bin")
	spPeer, err := newSpiderpoolPeer(spParams)
	if err != nil {
		t.Fatal(err)
	}
	owPeer, err := newOrbweaverPeer(PeerParams{BinDir: bin})
	if err != nil {
		t.Fatal(err)
	}

	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
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
	m := &migration{t: t, h: h, env: env, sp: spPeer.(*spiderpool), ow: owPeer.(*orbweaver),
		w: newWorkloads(ctx, t, env, ns), led: newLedger(), addrs: map[*Pod]map[string][]netip.Prefix{}}
	t.Cleanup(func() { // stopped in any case; both are no-ops when stopped already
		if err := errors.Join(m.ow.stopAgents(), m.sp.stopAgents()); err != nil {
			t.Error(err)
		}
	})
	return m
}

// takeOver does what the guide's steps do: SpiderPool uninstalled, its objects kept;
// orbweaver's CRDs over SpiderPool's; orbweaver's pool controller imports the records of
// each pool (want[pool] of them), then its grant controller and agents take over, and
// SpiderPool's finalizer comes off its endpoints. It returns the pool controller's stop.
func (m *migration) takeOver(ctx context.Context, pools []Pool, want map[string]int) (stopPools func()) {
	t, env := m.t, m.env
	if err := m.sp.stopAgents(); err != nil {
		t.Fatal(err)
	}
	if err := m.sp.restoreOwnCRDs(); err != nil {
		t.Fatal(err)
	}
	importStart := time.Now()
	stopPools = startPoolController(ctx, t, m.h)
	for _, pool := range pools {
		var imported *v2beta1.SpiderIPPool
		err := poll(ctx, 30*time.Second, func() (bool, error) {
			imported = &v2beta1.SpiderIPPool{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: pool.Name}, imported); err != nil {
				return false, err
			}
			return imported.Status.AllocatedIPs == nil, nil
		})
		importTook := time.Since(importStart)
		if err != nil {
			stopPools()
			t.Fatalf("SpiderPool's records of %s not imported: %v; the pool's status: %s", pool.Name, err, m.status(imported))
		}
		var cond *metav1.Condition
		if imported.Status.Orbweaver != nil {
			cond = meta.FindStatusCondition(imported.Status.Orbweaver.Conditions, v2beta1.IPPoolImportedCondition)
		}
		if cond == nil || cond.Status != metav1.ConditionTrue || deref(imported.Status.AllocatedIPCount, -1) != int64(want[pool.Name]) {
			stopPools()
			t.Fatalf("after the import of %s: condition %+v, status %s, want %d addresses", pool.Name, cond, m.status(imported), want[pool.Name])
		}
		t.Logf("import of %s: %q %s, %s after the pool controller started", pool.Name, cond.Type, cond.Message, importTook.Round(time.Millisecond))
	}
	if err := m.ow.Setup(ctx, m.h, Scenario{Name: "migrate", Nodes: m.h.Nodes, Pools: pools, Reused: true}); err != nil {
		stopPools()
		t.Fatal(err)
	}
	err := poll(ctx, 30*time.Second, func() (bool, error) {
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
	return stopPools
}

// giveBack does what the guide's way back does: orbweaver stops (its agents, then its
// pool controller), migrate.Export writes each pool's status.allocatedIPs, and
// SpiderPool's CRDs and agents come back. Each pool's status.allocatedIPs must name
// every address live pods hold in it, and nothing else; it returns how many addresses
// the export wrote.
func (m *migration) giveBack(ctx context.Context, pools []Pool, stopPools func()) int {
	t := m.t
	if err := m.ow.stopAgents(); err != nil {
		t.Fatal(err)
	}
	stopPools()
	exported, err := migrate.Export(ctx, m.env.Client, migrate.ExportOptions{Write: true})
	if err != nil {
		t.Fatal(err)
	}
	held := m.held()
	byName := map[string]migrate.PoolExport{}
	total := 0
	for _, e := range exported {
		byName[e.Pool] = e
		total += e.Addresses
	}
	for _, pool := range pools {
		e, ok := byName[pool.Name]
		if want := len(heldIn(held, pool)); !ok || !e.Written || e.Addresses != want || len(e.Unexported) != 0 {
			t.Errorf("export of %s: %+v, want %d addresses written", pool.Name, e, want)
		}
	}
	if len(exported) != len(pools) || t.Failed() {
		t.Fatalf("export: %+v, want the %d pools", exported, len(pools))
	}
	if err := m.sp.Setup(ctx, m.h, Scenario{Name: "migrate", Nodes: m.h.Nodes, Pools: pools, Reused: true}); err != nil {
		t.Fatal(err)
	}
	for _, pool := range pools {
		m.checkAllocatedIPs(ctx, pool, held)
	}
	return total
}

// fill ADDs new pods through orbweaver, each at its first try, which must fill the
// pools to exactly full; it returns how long the ADDs took.
func (m *migration) fill(ctx context.Context, pods []*Pod, pools []Pool) time.Duration {
	t := m.t
	if err := m.h.createPods(ctx, pods); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if retries := m.addAll(ctx, m.ow, pods, 1); retries > 0 || t.Failed() {
		t.Fatalf("orbweaver's ADDs of %d new pods: %d failed", len(pods), retries)
	}
	took := time.Since(start)
	held := m.held()
	for _, pool := range pools {
		if n := len(heldIn(held, pool)); n != pool.Size {
			t.Fatalf("%d addresses of %s held after the fill, want the pool's %d", n, pool.Name, pool.Size)
		}
		full := &v2beta1.SpiderIPPool{}
		if err := poll(ctx, 10*time.Second, func() (bool, error) {
			err := m.env.Client.Get(ctx, client.ObjectKey{Name: pool.Name}, full)
			return err == nil && deref(full.Status.AllocatedIPCount, -1) == int64(pool.Size), err
		}); err != nil {
			t.Errorf("the count of %s after the fill: %v; its status: %s", pool.Name, err, m.status(full))
		}
	}
	return took
}

// interfaces are a pod's interfaces as Multus sets them up, in order: eth0, then one per
// network of its k8s.v1.cni.cncf.io/networks annotation (the text form,
// "namespace/name@ifname"; net<i> for an entry without @ifname).
func interfaces(p *Pod) []string {
	out := []string{"eth0"}
	for _, n := range strings.Split(p.Annotations[ipam.AnnoMultusNetworks], ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if _, nic, ok := strings.Cut(n, "@"); ok {
			out = append(out, nic)
		} else {
			out = append(out, fmt.Sprintf("net%d", len(out)))
		}
	}
	return out
}

// add ADDs each of the pod's interfaces through the peer, in order, retrying a failure
// with the same sandbox as a kubelet does, at most tries times, and records the
// addresses; it returns eth0's first address (the zero address when every try failed,
// with the test failed).
func (m *migration) add(ctx context.Context, p Peer, pod *Pod, tries int) netip.Addr {
	a, _ := m.addRetrying(ctx, p, pod, tries)
	return a
}

// addRetrying is add; it also returns how many tries failed.
func (m *migration) addRetrying(ctx context.Context, p Peer, pod *Pod, tries int) (netip.Addr, int) {
	got := map[string][]netip.Prefix{}
	ends := map[string]time.Time{}
	failed := 0
	for _, nic := range interfaces(pod) {
		var c call
		for try := range tries {
			if c = m.h.cniIf(ctx, p, "ADD", pod, nic); c.err == nil {
				break
			}
			failed++
			if try < tries-1 && sleep(ctx, time.Second) != nil {
				break
			}
		}
		if c.err != nil {
			m.t.Errorf("%s: ADD of %s %s on %s failed %d times, last: %v", p.Name(), pod, nic, pod.Node, tries, c.err)
			return netip.Addr{}, failed
		}
		got[nic], ends[nic] = c.ips, c.end
	}
	m.mu.Lock()
	m.addrs[pod] = got
	m.live = append(m.live, pod)
	m.mu.Unlock()
	for nic, ips := range got {
		for _, a := range ips {
			m.led.hold(pod, a.Addr(), ends[nic])
		}
	}
	return got["eth0"][0].Addr(), failed
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

// del DELs each of the pod's interfaces through the peer, the last first as Multus
// does; its addresses are no longer the pod's from the start of the DELs.
func (m *migration) del(ctx context.Context, p Peer, pod *Pod) {
	m.release(pod)
	nics := interfaces(pod)
	for i := len(nics) - 1; i >= 0; i-- {
		if c := m.h.cniIf(ctx, p, "DEL", pod, nics[i]); c.err != nil {
			m.t.Errorf("%s: DEL of %s %s: %v", p.Name(), pod, nics[i], c.err)
		}
	}
}

// release ends the pod's holding of its addresses.
func (m *migration) release(pod *Pod) {
	m.led.release(pod, time.Now())
	m.mu.Lock()
	m.live = slices.DeleteFunc(m.live, func(p *Pod) bool { return p == pod })
	m.mu.Unlock()
}

// ip is the first address the pod's eth0 got: a single-stack, single-NIC pod's only one.
func (m *migration) ip(pod *Pod) netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ips := m.addrs[pod]["eth0"]; len(ips) > 0 {
		return ips[0].Addr()
	}
	return netip.Addr{}
}

// addrsOf are every address the pods got, of every interface, in address order.
func (m *migration) addrsOf(pods ...*Pod) []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []netip.Addr
	for _, p := range pods {
		for _, ips := range m.addrs[p] {
			for _, a := range ips {
				out = append(out, a.Addr())
			}
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// held maps each address live pods hold to the pod.
func (m *migration) held() map[netip.Addr]*Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[netip.Addr]*Pod{}
	for _, p := range m.live {
		for _, ips := range m.addrs[p] {
			for _, a := range ips {
				if other, dup := out[a.Addr()]; dup {
					m.t.Errorf("%s is held by %s and %s", a.Addr(), other, p)
				}
				out[a.Addr()] = p
			}
		}
	}
	return out
}

// heldIn is the part of held in the pool.
func heldIn(held map[netip.Addr]*Pod, pool Pool) map[netip.Addr]*Pod {
	out := map[netip.Addr]*Pod{}
	for a, p := range held {
		if pool.Contains(a) {
			out[a] = p
		}
	}
	return out
}

// checkFrom checks that each pod's interfaces are those of layout, each with exactly
// one address from each of its pools.
func (m *migration) checkFrom(pods []*Pod, layout map[string][]Pool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range pods {
		got := m.addrs[p]
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(layout))) {
			m.t.Errorf("%s got addresses for interfaces %v, want %v", p, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(layout)))
			continue
		}
		for nic, pools := range layout {
			ok := len(got[nic]) == len(pools)
			for _, pool := range pools {
				ok = ok && slices.ContainsFunc(got[nic], func(a netip.Prefix) bool { return pool.Contains(a.Addr()) && a.Bits() == pool.Prefix.Bits() })
			}
			if !ok {
				m.t.Errorf("%s %s got %v, want one address of each of %v", p, nic, got[nic], poolNames(pools))
			}
		}
	}
}

func poolNames(pools []Pool) []string {
	out := make([]string, len(pools))
	for i, p := range pools {
		out[i] = p.Name
	}
	return out
}

// check runs a CNI CHECK through the peer of each of the pod's interfaces, with the
// result its ADD gave as prevResult, and returns how many passed.
func (m *migration) check(ctx context.Context, p Peer, pod *Pod) int {
	passed := 0
	for _, nic := range interfaces(pod) {
		m.mu.Lock()
		prev := m.addrs[pod][nic]
		m.mu.Unlock()
		if c := m.h.cniIf(ctx, withPrevResult{Peer: p, prev: prev}, "CHECK", pod, nic); c.err != nil {
			m.t.Errorf("CHECK of the sandbox of %s %s, %v, through %s: %v", pod, nic, prev, p.Name(), c.err)
			continue
		}
		passed++
	}
	return passed
}

// newSandbox gives the pod a new sandbox (container ID) and ADDs each of its interfaces
// through the peer: each must get exactly the addresses it had. It returns 1 when one
// did not, else 0.
func (m *migration) newSandbox(ctx context.Context, p Peer, pod *Pod) int {
	pod.ContainerID = newContainerID()
	changed := 0
	for _, nic := range interfaces(pod) {
		m.mu.Lock()
		before := sortedPrefixes(m.addrs[pod][nic])
		m.mu.Unlock()
		c := m.h.cniIf(ctx, p, "ADD", pod, nic)
		if c.err != nil {
			m.t.Fatalf("ADD of a new sandbox of migrated pod %s %s: %v", pod, nic, c.err)
		}
		if got := sortedPrefixes(c.ips); !slices.Equal(got, before) {
			changed = 1
			m.t.Errorf("a new sandbox of %s %s got %v through %s, it had %v", pod, nic, got, p.Name(), before)
		}
	}
	return changed
}

// sortedPrefixes is a sorted copy, by address.
func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
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
	if err := m.h.Env.Client.List(ctx, &list, client.InNamespace(m.w.ns)); err != nil {
		m.t.Fatalf("list SpiderEndpoints: %v", err)
	}
	out := map[string]*v2beta1.SpiderEndpoint{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out
}

// checkSpiderPoolEndpoints checks that SpiderPool wrote an endpoint with its finalizer
// for each pod.
func (m *migration) checkSpiderPoolEndpoints(ctx context.Context, pods []*Pod) {
	eps := m.endpoints(ctx)
	for _, p := range pods {
		se := eps[p.Name]
		if se == nil || !controllerutil.ContainsFinalizer(se, v2beta1.Finalizer) {
			m.t.Fatalf("SpiderPool wrote no endpoint with its finalizer for %s: %+v", p, se)
		}
	}
}

// endpointNICs are the addresses an endpoint names, per interface, sorted.
func endpointNICs(se *v2beta1.SpiderEndpoint) map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for _, nic := range se.Status.Current.IPs {
		var ps []netip.Prefix
		for _, c := range []*string{nic.IPv4, nic.IPv6} {
			if p, err := netip.ParsePrefix(deref(c, "")); err == nil {
				ps = append(ps, p)
			}
		}
		out[nic.NIC] = sortedPrefixes(ps)
	}
	return out
}

// endpointAddrs are the addresses an endpoint names, of every interface and family, in
// address order.
func endpointAddrs(se *v2beta1.SpiderEndpoint) []netip.Addr {
	var out []netip.Addr
	for _, ps := range endpointNICs(se) {
		for _, p := range ps {
			out = append(out, p.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// checkEndpoints checks that each pod's SpiderEndpoint names the pod and, per
// interface, exactly the addresses it got, and returns how many do not.
func (m *migration) checkEndpoints(ctx context.Context, pods []*Pod) int {
	eps := m.endpoints(ctx)
	bad := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range pods {
		se := eps[p.Name]
		if se == nil {
			m.t.Errorf("%s has no SpiderEndpoint", p)
			bad++
			continue
		}
		want := map[string][]netip.Prefix{}
		for nic, ips := range m.addrs[p] {
			want[nic] = sortedPrefixes(ips)
		}
		if got := endpointNICs(se); se.Status.Current.UID != p.UID || !maps.EqualFunc(got, want, slices.Equal) {
			m.t.Errorf("the SpiderEndpoint of %s names pod %s and %v, want %s and %v", p, se.Status.Current.UID, got, p.UID, want)
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
// names every address held in the pool with its pod, and nothing else.
func (m *migration) checkAllocatedIPs(ctx context.Context, pool Pool, held map[netip.Addr]*Pod) {
	held = heldIn(held, pool)
	sp := &v2beta1.SpiderIPPool{}
	if err := m.h.Env.Client.Get(ctx, client.ObjectKey{Name: pool.Name}, sp); err != nil {
		m.t.Fatal(err)
	}
	var allocated map[string]struct {
		Pod    string `json:"pod"`
		PodUID string `json:"podUid"`
	}
	if err := json.Unmarshal([]byte(deref(sp.Status.AllocatedIPs, "")), &allocated); err != nil {
		m.t.Fatalf("status.allocatedIPs of %s after the export: %v", pool.Name, err)
	}
	for a, p := range held {
		if got := allocated[a.String()]; got.Pod != p.String() || got.PodUID != p.UID {
			m.t.Errorf("status.allocatedIPs of %s has %s as %+v, want %s (%s)", pool.Name, a, got, p, p.UID)
		}
	}
	if len(allocated) != len(held) || deref(sp.Status.AllocatedIPCount, -1) != int64(len(held)) {
		m.t.Errorf("status.allocatedIPs of %s has %d addresses (count %d), want the %d held", pool.Name, len(allocated), deref(sp.Status.AllocatedIPCount, -1), len(held))
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

// workloads are the Deployment "app" and the StatefulSet "web" whose pods the tests run:
// SpiderPool's agent reads a pod's owners to find its top controller, and treats a
// StatefulSet's pods as such only when the StatefulSet exists. No controller runs them.
type workloads struct {
	ns  string
	app *deployment
	sts metav1.OwnerReference
}

func newWorkloads(ctx context.Context, t *testing.T, env *testenv.Env, ns string) *workloads {
	t.Helper()
	w := &workloads{ns: ns, app: newDeployment(ctx, t, env, ns, "app", nil)}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}, Spec: appsv1.StatefulSetSpec{
		Replicas: ptr(int32(6)), ServiceName: "web", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
		Template: podTemplate("web", nil, nil)}}
	if err := env.Client.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	w.sts = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name, UID: sts.UID, Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
	return w
}

// podTemplate is a workload's pod template, labelled app: name.
func podTemplate(app string, labels, annotations map[string]string) corev1.PodTemplateSpec {
	l := map[string]string{"app": app}
	maps.Copy(l, labels)
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.invalid/pause:bench"}}}}
}

// deployment is a Deployment with its ReplicaSet (no controller runs them), whose pods
// carry the template's annotations.
type deployment struct {
	ns, name    string
	hash        string // the ReplicaSet's pod-template-hash
	rs          metav1.OwnerReference
	annotations map[string]string
}

func newDeployment(ctx context.Context, t *testing.T, env *testenv.Env, ns, name string, annotations map[string]string) *deployment {
	t.Helper()
	d := &deployment{ns: ns, name: name, hash: "5d8f7c9b6", annotations: annotations}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr(int32(30)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Template: podTemplate(name, nil, annotations)}}
	if err := env.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-" + d.hash,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name, UID: dep.UID, Controller: ptr(true)}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr(int32(30)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name, "pod-template-hash": d.hash}},
			Template: podTemplate(name, map[string]string{"pod-template-hash": d.hash}, annotations)}}
	if err := env.Client.Create(ctx, rs); err != nil {
		t.Fatal(err)
	}
	d.rs = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptr(true), BlockOwnerDeletion: ptr(true)}
	return d
}

// pod is a pod of the Deployment's ReplicaSet, named <deployment>-<hash>-<suffix>.
func (d *deployment) pod(suffix, node string) *Pod {
	return &Pod{Namespace: d.ns, Name: d.name + "-" + d.hash + "-" + suffix, ContainerID: newContainerID(), Node: node,
		Owner: ptr(d.rs), Labels: map[string]string{"app": d.name, "pod-template-hash": d.hash}, Annotations: maps.Clone(d.annotations)}
}

// statefulSetPod is the StatefulSet's pod of the ordinal.
func (w *workloads) statefulSetPod(ordinal int, node string) *Pod {
	return &Pod{Namespace: w.ns, Name: fmt.Sprintf("web-%d", ordinal), ContainerID: newContainerID(), Node: node,
		Owner: ptr(w.sts), Labels: map[string]string{"app": "web", "statefulset.kubernetes.io/pod-name": fmt.Sprintf("web-%d", ordinal)}}
}

// withPrevResult is a peer whose network configuration carries the prevResult of a CNI
// CHECK: the result that gave the interface prev.
type withPrevResult struct {
	Peer
	prev []netip.Prefix
}

func (p withPrevResult) NetConf(node string, pool int) []byte {
	var conf map[string]any
	if err := json.Unmarshal(p.Peer.NetConf(node, pool), &conf); err != nil {
		return nil
	}
	ips := make([]any, len(p.prev))
	for i, a := range p.prev {
		ips[i] = map[string]any{"address": a.String()}
	}
	conf["prevResult"] = map[string]any{"cniVersion": "1.0.0", "ips": ips}
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
