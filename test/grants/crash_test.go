package grants

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
)

// crashQuarantine is the agents' quarantine in the crash cases: a write a crashed life
// left in flight lands within half of it.
const crashQuarantine = 2 * time.Second

// TestNodeGrantsCrashSteps crashes an agent or the grant controller at each step of the
// protocol where a crash can happen (docs/design/node-grants.md, "Crashes at every
// step"), with the writes the crash leaves in flight landing late or never, and checks
// afterwards that no address ever had two owners (every state of the endpoints, as a
// watch shows them in etcd's order, and every ADD's answer against the others live and
// the block's grant) and that none is lost (with every pod gone, as many pods as the
// pool has addresses all get one).
//
// The agents ask for no buffer here, so that every grant is exactly a need and each
// case's addresses are known: a1 < a2 < a3 are the pool's addresses in order, and the
// controller asks a node for its highest unused addresses first.
func TestNodeGrantsCrashSteps(t *testing.T) {
	e := testenv.Require(t, env)
	cases := []struct {
		name string
		// ips of the pool, in subnet 10.<90+i>.0.0/24.
		ips func(net string) []v2beta1.IPOrRange
		run func(t *testing.T, ctx context.Context, c *crashCase)
	}{
		{"agent crashes before the endpoint write", rangeOf(10, 11), crashBeforeEndpointWrite},
		{"endpoint write lands during the next life's quarantine; that life hands out", rangeOf(10, 11), lateEndpointNextLifeHandsOut},
		{"endpoint write lands during the next life's quarantine; that life is asked to give back", rangeOf(10, 11), lateEndpointNextLifeAsked},
		{"endpoint write lands during the next life's quarantine; that life's watch lags", rangeOf(10, 11), lateEndpointNextLifeLags},
		{"agent crashes after answering a reclaim, controller down until the next life runs", rangeOf(10, 12), answerThenCrash},
		{"agent crashes with its reclaim answer in flight; it lands in the next life", rangeOf(10, 12), answerInFlight},
		{"controller crashes between the block writes of a round", blocksOf3, controllerCrashMidRound},
		{"controller loses the answer to a block write", blocksOf3, controllerLosesAnswer},
		{"API server restarts with ADDs in flight", rangeOf(10, 13), apiServerRestart},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runCrashCase(t, e, fmt.Sprintf("crash-%d", i), fmt.Sprintf("10.%d.0", 90+i), tc.ips, tc.run)
		})
	}
}

// TestNodeGrantsDelWhileCacheLags: X's cache of its endpoints lags (its endpoint watch
// delivers nothing for a while) when p2, just ADDed, is DELed; the deletion of p2's
// endpoint is slow to land. Meanwhile p3 on X needs an address. X must not hand p3 the
// address p2's endpoint still names: it is p2's until the deletion has landed.
func TestNodeGrantsDelWhileCacheLags(t *testing.T) {
	e := testenv.Require(t, env)
	runCrashCase(t, e, "cache-lags", "10.89.0", rangeOf(10, 11), delWhileCacheLags)
}

// runCrashCase runs one case on a pool of ips in net.0/24, two nodes X and Y without
// grant buffers, and the grant controller; then checks that no address had two owners
// and none is lost.
func runCrashCase(t *testing.T, e *testenv.Env, name, net string, ips func(string) []v2beta1.IPOrRange, run func(*testing.T, context.Context, *crashCase)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := &crashCase{traps: map[string]*trap{}}
	c.w = newWorld(t, ctx, e, name, net+".0/24", ips(net), 2, func(cfg *agent.Config) {
		cfg.GrantBuffer = -1
		cfg.ReserveQuarantine = crashQuarantine
	})
	for _, n := range c.w.nodes {
		tr := &trap{got: make(chan *heldWrite, 8)}
		c.traps[n.name] = tr
		n.hold, n.onHold, n.lag = tr.hold, tr.onHold, newLag("spiderendpoints")
	}
	c.x, c.y = c.w.nodes[0], c.w.nodes[1]
	c.addrs = poolAddrs(t, c.w)
	if _, err := c.w.ctl.start(nil); err != nil {
		t.Fatal(err)
	}
	c.w.startAgents(ctx)

	run(t, ctx, c)

	// Every pod the case left goes, then the pool must be whole.
	c.cleanup(ctx)
	c.w.checkIdle(ctx)
	c.w.fullRound(ctx, nil)
	c.w.report()
}

func delWhileCacheLags(t *testing.T, ctx context.Context, c *crashCase) {
	p1 := c.pod(t, ctx, "p1", c.x)
	c.add(t, ctx, p1, c.x, "c0")
	c.x.lag.shut()
	p2 := c.pod(t, ctx, "p2", c.x)
	a2 := c.add(t, ctx, p2, c.x, "c0")
	tr := c.traps[c.x.name]
	tr.arm(func(r *http.Request, _ []byte) bool {
		return r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/spiderendpoints/p2")
	})
	c.w.gave(a2)
	del := make(chan error, 1)
	go func() { _, err := c.x.del(ctx, p2, "c0"); del <- err }()
	select {
	case <-tr.got:
	case <-time.After(20 * time.Second):
		t.Fatal("the DEL of p2 never deleted its endpoint")
	}
	p3 := c.pod(t, ctx, "p3", c.x)
	r3 := c.addAsync(ctx, p3, c.x, "c0")
	select {
	case r := <-r3: // with p2's endpoint still there
		r3 = done(r)
	case <-time.After(2 * time.Second):
	}
	tr.releaseAll()
	if err := <-del; err != nil {
		t.Fatal(err)
	}
	c.x.lag.lift()
	if r := wait(t, r3, "p3's ADD"); r.addr != a2 {
		t.Errorf("p3 got %s, want %s", r.addr, a2)
	}
}

// crashCase is one case's world: nodes X and Y, the pool's addresses in order, and the
// pods still there.
type crashCase struct {
	w     *world
	x, y  *agentNode
	addrs []netip.Addr
	traps map[string]*trap

	mu   sync.Mutex
	pods []podSandbox
}

// podSandbox is a pod and the sandbox the runtime last ADDed for it.
type podSandbox struct {
	pod  *corev1.Pod
	node *agentNode
	ctr  string
}

func (c *crashCase) a(i int) netip.Addr { return c.addrs[i-1] }

// pod creates a pod on n.
func (c *crashCase) pod(t *testing.T, ctx context.Context, name string, n *agentNode) *corev1.Pod {
	t.Helper()
	p, err := c.w.newPod(ctx, name, n.name)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.pods = append(c.pods, podSandbox{pod: p, node: n})
	c.mu.Unlock()
	return p
}

// sandboxOf notes the sandbox the runtime ADDs for p.
func (c *crashCase) sandboxOf(p *corev1.Pod, ctr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.pods {
		if c.pods[i].pod == p {
			c.pods[i].ctr = ctr
		}
	}
}

// add ADDs sandbox ctr of p on n, which must succeed, and checks the answer.
func (c *crashCase) add(t *testing.T, ctx context.Context, p *corev1.Pod, n *agentNode, ctr string) netip.Addr {
	t.Helper()
	r := <-c.addAsync(ctx, p, n, ctr)
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.addr
}

type addResult struct {
	addr netip.Addr
	l    *life
	err  error
}

// addAsync ADDs sandbox ctr of p on n in the background; an answer is checked as it
// comes.
func (c *crashCase) addAsync(ctx context.Context, p *corev1.Pod, n *agentNode, ctr string) <-chan addResult {
	c.sandboxOf(p, ctr)
	out := make(chan addResult, 1)
	go func() {
		a, l, err := n.add(ctx, p, ctr)
		if err == nil {
			c.w.took(ctx, a, p.Name, n.name)
		}
		out <- addResult{a, l, err}
	}()
	return out
}

// del DELs p's last sandbox, which must succeed.
func (c *crashCase) del(t *testing.T, ctx context.Context, p *corev1.Pod, n *agentNode, ctr string, a netip.Addr) {
	t.Helper()
	if a.IsValid() {
		c.w.gave(a)
	}
	if _, err := n.del(ctx, p, ctr); err != nil {
		t.Fatal(err)
	}
}

// cleanup DELs and deletes every pod the case created.
func (c *crashCase) cleanup(ctx context.Context) {
	c.mu.Lock()
	pods := slices.Clone(c.pods)
	c.mu.Unlock()
	for _, ps := range pods {
		if ps.ctr != "" {
			if _, err := ps.node.del(ctx, ps.pod, ps.ctr); err != nil {
				c.w.problem("cleanup: %v", err)
			}
		}
		if err := c.w.deletePod(ctx, ps.pod); err != nil {
			c.w.problem("cleanup: %v", err)
		}
	}
	c.w.mu.Lock()
	clear(c.w.live)
	c.w.mu.Unlock()
}

// need reads the need node's IPAMNode states for the pool (-1 when none).
func (c *crashCase) need(ctx context.Context, node string) (int, error) {
	n := &ipamv1.IPAMNode{}
	if err := c.w.e.Client.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
		return -1, err
	}
	for _, d := range n.Spec.Pools {
		if d.Pool == c.w.pool {
			return int(d.Need), nil
		}
	}
	return -1, nil
}

func (c *crashCase) waitNeed(t *testing.T, ctx context.Context, node string, want int) {
	t.Helper()
	if err := waitFor(ctx, 10*time.Second, fmt.Sprintf("node %s to need %d", node, want), func(ctx context.Context) (bool, error) {
		n, err := c.need(ctx, node)
		return n == want, err
	}); err != nil {
		t.Fatal(err)
	}
}

// killWithHeld waits for the write n's armed trap keeps back, and kills n's agent as
// soon as it is held: the write is in flight at the crash.
func (c *crashCase) killWithHeld(t *testing.T, ctx context.Context, n *agentNode) (*heldWrite, *life) {
	t.Helper()
	tr := c.traps[n.name]
	var h *heldWrite
	select {
	case h = <-tr.got:
	case <-ctx.Done():
		t.Fatal("the write to keep back never came")
	case <-time.After(20 * time.Second):
		t.Fatal("the write to keep back did not come within 20s")
	}
	l, stranded, err := n.kill()
	if err != nil {
		t.Fatal(err)
	}
	if len(stranded) != 1 || stranded[0] != h {
		t.Fatalf("the kill stranded %v, want only %s", stranded, h)
	}
	return h, l
}

// restart starts n's next life, which finds no clean stop and waits out its quarantine;
// it returns when the quarantine ends.
func (c *crashCase) restart(t *testing.T, ctx context.Context, n *agentNode) time.Time {
	t.Helper()
	if err := n.start(ctx); err != nil {
		t.Fatal(err)
	}
	return time.Now().Add(crashQuarantine)
}

func sleepUntil(ctx context.Context, at time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(at)):
	}
}

// mustName checks that a held SpiderEndpoint write names a.
func mustName(t *testing.T, h *heldWrite, a netip.Addr) {
	t.Helper()
	se := h.endpoint()
	if se == nil || !slices.Contains(endpointAddrs(se), a) {
		t.Fatalf("the endpoint write kept back (%s) does not name %s", h, a)
	}
}

// mustFail checks that an ADD cut by its agent's kill failed.
func mustFail(t *testing.T, ch <-chan addResult) {
	t.Helper()
	select {
	case r := <-ch:
		if r.err == nil {
			t.Fatalf("an ADD whose endpoint write never came back was answered %s", r.addr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an ADD cut by its agent's kill did not return within 30s")
	}
}

func wait(t *testing.T, ch <-chan addResult, what string) addResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no answer within 60s", what)
	}
	return addResult{}
}

// endpointCreate matches the creation of a SpiderEndpoint.
func endpointCreate(r *http.Request, _ []byte) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/spiderendpoints")
}

// answerWrite matches a write of an IPAMNode that answers a reclaim request.
func answerWrite(r *http.Request, body []byte) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/ipamnodes/") && !strings.HasSuffix(r.URL.Path, "/status") &&
		bytes.Contains(body, []byte(`"giveBack"`))
}

// demandWrite matches any write of an IPAMNode's spec.
func demandWrite(r *http.Request, _ []byte) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/ipamnodes/") && !strings.HasSuffix(r.URL.Path, "/status")
}

// crashBeforeEndpointWrite: X hands a2 to p2 and dies before p2's endpoint write is
// sent; the write never lands. The address was taken in memory only: X's next life
// must be able to hand it out again (p2's next sandbox gets it: nothing else is free).
func crashBeforeEndpointWrite(t *testing.T, ctx context.Context, c *crashCase) {
	p1 := c.pod(t, ctx, "p1", c.x)
	c.add(t, ctx, p1, c.x, "c0")
	p2 := c.pod(t, ctx, "p2", c.x)
	c.traps[c.x.name].arm(endpointCreate)
	r2 := c.addAsync(ctx, p2, c.x, "c0")
	h, _ := c.killWithHeld(t, ctx, c.x)
	mustName(t, h, c.a(2))
	h.drop()
	mustFail(t, r2)

	c.restart(t, ctx, c.x)
	c.del(t, ctx, p2, c.x, "c0", netip.Addr{}) // the runtime's DEL after the failed ADD
	if got := c.add(t, ctx, p2, c.x, "c1"); got != c.a(2) {
		t.Errorf("p2's next sandbox got %s, want %s (the only address left)", got, c.a(2))
	}
}

// lateEndpointNextLifeHandsOut: X hands a2 to p2 and dies with p2's endpoint write in
// flight; the write lands during the quarantine of X's next life. That life must not
// hand a2 to p3 meanwhile: after the quarantine it sees p2's endpoint, and p3 gets a2
// only once the runtime has DELed p2's failed sandbox.
func lateEndpointNextLifeHandsOut(t *testing.T, ctx context.Context, c *crashCase) {
	p1 := c.pod(t, ctx, "p1", c.x)
	c.add(t, ctx, p1, c.x, "c0")
	p2 := c.pod(t, ctx, "p2", c.x)
	c.traps[c.x.name].arm(endpointCreate)
	r2 := c.addAsync(ctx, p2, c.x, "c0")
	h, _ := c.killWithHeld(t, ctx, c.x)
	mustName(t, h, c.a(2))
	mustFail(t, r2)

	free := c.restart(t, ctx, c.x)
	p3 := c.pod(t, ctx, "p3", c.x)
	r3 := c.addAsync(ctx, p3, c.x, "c0")
	time.Sleep(crashQuarantine / 2)
	if err := h.land(ctx); err != nil {
		t.Fatalf("p2's endpoint write, landing late: %v", err)
	}
	sleepUntil(ctx, free.Add(500*time.Millisecond))
	c.del(t, ctx, p2, c.x, "c0", netip.Addr{}) // the runtime's DEL after the failed ADD
	if r := wait(t, r3, "p3's ADD"); r.addr != c.a(2) {
		t.Errorf("p3 got %s, want %s", r.addr, c.a(2))
	}
}

// lateEndpointNextLifeAsked: X hands a2 to p2 and dies with p2's endpoint write in
// flight. X's next life DELs p1 (its need drops to 0) and Y's pod needs an address:
// the controller, whose view shows a2 unheld, asks X for it. X's next life must not
// give a2 back before its quarantine ends: p2's endpoint lands in it.
func lateEndpointNextLifeAsked(t *testing.T, ctx context.Context, c *crashCase) {
	p1 := c.pod(t, ctx, "p1", c.x)
	a1 := c.add(t, ctx, p1, c.x, "c0")
	p2 := c.pod(t, ctx, "p2", c.x)
	c.traps[c.x.name].arm(endpointCreate)
	r2 := c.addAsync(ctx, p2, c.x, "c0")
	h, _ := c.killWithHeld(t, ctx, c.x)
	mustName(t, h, c.a(2))
	mustFail(t, r2)

	free := c.restart(t, ctx, c.x)
	c.del(t, ctx, p1, c.x, "c0", a1)
	c.waitNeed(t, ctx, c.x.name, 0)
	q1 := c.pod(t, ctx, "q1", c.y)
	rq := c.addAsync(ctx, q1, c.y, "c0")
	select {
	case r := <-rq: // q1 answered during X's quarantine
		rq = done(r)
	case <-time.After(time.Until(free.Add(-crashQuarantine / 2))):
	}
	if err := h.land(ctx); err != nil {
		t.Fatalf("p2's endpoint write, landing late: %v", err)
	}
	sleepUntil(ctx, free.Add(500*time.Millisecond))
	c.del(t, ctx, p2, c.x, "c0", netip.Addr{}) // the runtime's DEL after the failed ADD
	wait(t, rq, "q1's ADD")
}

// lateEndpointNextLifeLags: as lateEndpointNextLifeHandsOut, but the watch of X's next
// life delivers p2's late endpoint only after the quarantine (the write landed within
// it; the API server is slow to tell). The quarantine is over only once the next life
// knows its node's endpoints as the API server has them (docs/design/node-grants.md:
// it lists them before it hands anything out).
func lateEndpointNextLifeLags(t *testing.T, ctx context.Context, c *crashCase) {
	p1 := c.pod(t, ctx, "p1", c.x)
	c.add(t, ctx, p1, c.x, "c0")
	p2 := c.pod(t, ctx, "p2", c.x)
	c.traps[c.x.name].arm(endpointCreate)
	r2 := c.addAsync(ctx, p2, c.x, "c0")
	h, _ := c.killWithHeld(t, ctx, c.x)
	mustName(t, h, c.a(2))
	mustFail(t, r2)

	c.x.lag.shut() // the next life lists, then its watch falls behind
	free := c.restart(t, ctx, c.x)
	p3 := c.pod(t, ctx, "p3", c.x)
	r3 := c.addAsync(ctx, p3, c.x, "c0")
	time.Sleep(crashQuarantine / 2)
	if err := h.land(ctx); err != nil {
		t.Fatalf("p2's endpoint write, landing late: %v", err)
	}
	sleepUntil(ctx, free.Add(time.Second))
	c.x.lag.lift()
	c.del(t, ctx, p2, c.x, "c0", netip.Addr{}) // the runtime's DEL after the failed ADD
	wait(t, r3, "p3's ADD")
}

func done(r addResult) <-chan addResult {
	ch := make(chan addResult, 1)
	ch <- r
	return ch
}

// answerThenCrash: the controller asks X for a2 (Y's q1 needs it), X answers in its
// IPAMNode, and the controller crashes before it applies the answer. X crashes too; its
// next life runs with a pod waiting (p3) and its demand writes held, while the
// controller, back, applies the old answer and grants a2 to Y. X's next life must never
// hand out a2, which the block asks back from it.
func answerThenCrash(t *testing.T, ctx context.Context, c *crashCase) {
	p1 := c.pod(t, ctx, "p1", c.x)
	c.add(t, ctx, p1, c.x, "c0")
	p2 := c.pod(t, ctx, "p2", c.x)
	a2 := c.add(t, ctx, p2, c.x, "c0")
	q0 := c.pod(t, ctx, "q0", c.y)
	a3 := c.add(t, ctx, q0, c.y, "c0")
	c.del(t, ctx, p2, c.x, "c0", a2)
	c.waitNeed(t, ctx, c.x.name, 1)

	// The controller's next life lands its next block write (the request to X) and
	// dies at the one after (applying X's answer).
	if err := c.w.ctl.kill(); err != nil {
		t.Fatal(err)
	}
	cl, err := c.w.ctl.start(func(l *ctlLife) { l.cutAfter.Store(1) })
	if err != nil {
		t.Fatal(err)
	}
	q1 := c.pod(t, ctx, "q1", c.y)
	rq := c.addAsync(ctx, q1, c.y, "c0")
	select {
	case <-cl.cutCh:
	case <-time.After(20 * time.Second):
		t.Fatal("the controller never came to apply X's answer")
	}
	if err := c.w.ctl.kill(); err != nil {
		t.Fatal(err)
	}
	n := &ipamv1.IPAMNode{}
	if err := c.w.e.Client.Get(ctx, client.ObjectKey{Name: c.x.name}, n); err != nil {
		t.Fatal(err)
	}
	if !answers(n, c.w.pool, a2) {
		t.Fatalf("X's IPAMNode does not give back %s: %+v", a2, n.Spec.Pools)
	}
	if _, _, err := c.x.kill(); err != nil {
		t.Fatal(err)
	}

	// X's next life: its demand stays unwritten (the old answer stays in its IPAMNode)
	// until the controller has applied the old answer.
	tr := c.traps[c.x.name]
	tr.arm(demandWrite)
	free := c.restart(t, ctx, c.x)
	p3 := c.pod(t, ctx, "p3", c.x)
	r3 := c.addAsync(ctx, p3, c.x, "c0")
	sleepUntil(ctx, free.Add(500*time.Millisecond)) // X could hand a2 out by now
	if _, err := c.w.ctl.start(nil); err != nil {
		t.Fatal(err)
	}
	if r := wait(t, rq, "q1's ADD"); r.addr != a2 {
		t.Errorf("q1 got %s, want %s", r.addr, a2)
	}
	tr.releaseAll()
	// p3 waits until Y lets q0 go.
	c.del(t, ctx, q0, c.y, "c0", a3)
	if r := wait(t, r3, "p3's ADD"); r.addr != a3 {
		t.Errorf("p3 got %s, want %s", r.addr, a3)
	}
}

// answers reports whether an IPAMNode gives back a for pool.
func answers(n *ipamv1.IPAMNode, pool string, a netip.Addr) bool {
	for _, d := range n.Spec.Pools {
		if d.Pool != pool {
			continue
		}
		for _, gb := range d.GiveBack {
			if slices.Contains(gb.IPs, a.String()) {
				return true
			}
		}
	}
	return false
}

// answerInFlight: the controller asks X for a2 and X dies with its answer in flight.
// X's next life (a pod of its own waiting) writes its demand, then the old answer
// lands. Whatever the late answer does, a2 has one owner, and Y's q1 and X's p3 both
// get an address once Y lets q0 go.
func answerInFlight(t *testing.T, ctx context.Context, c *crashCase) {
	p1 := c.pod(t, ctx, "p1", c.x)
	c.add(t, ctx, p1, c.x, "c0")
	p2 := c.pod(t, ctx, "p2", c.x)
	a2 := c.add(t, ctx, p2, c.x, "c0")
	q0 := c.pod(t, ctx, "q0", c.y)
	a3 := c.add(t, ctx, q0, c.y, "c0")
	c.del(t, ctx, p2, c.x, "c0", a2)
	c.waitNeed(t, ctx, c.x.name, 1)

	c.traps[c.x.name].arm(answerWrite)
	q1 := c.pod(t, ctx, "q1", c.y)
	rq := c.addAsync(ctx, q1, c.y, "c0")
	h, _ := c.killWithHeld(t, ctx, c.x)

	c.restart(t, ctx, c.x)
	p3 := c.pod(t, ctx, "p3", c.x)
	r3 := c.addAsync(ctx, p3, c.x, "c0")
	c.waitNeed(t, ctx, c.x.name, 2) // p1 and p3
	err := h.land(ctx)
	t.Logf("X's old answer, landing after its next life wrote its demand: %v", err)
	// Four pods want three addresses until Y lets q0 go.
	c.del(t, ctx, q0, c.y, "c0", a3)
	wait(t, rq, "q1's ADD")
	wait(t, r3, "p3's ADD")
}

// blocksOf3 is a pool of 14 addresses in three blocks (64 addresses each).
func blocksOf3(net string) []v2beta1.IPOrRange {
	return []v2beta1.IPOrRange{v2beta1.IPOrRange(net + ".60-" + net + ".67"), v2beta1.IPOrRange(net + ".125-" + net + ".130")}
}

// rangeOf is a pool of the addresses .from to .to.
func rangeOf(from, to int) func(string) []v2beta1.IPOrRange {
	return func(net string) []v2beta1.IPOrRange {
		return []v2beta1.IPOrRange{v2beta1.IPOrRange(fmt.Sprintf("%s.%d-%s.%d", net, from, net, to))}
	}
}

// controllerCrashMidRound: with the controller down, X and Y each wait for 7
// addresses; the controller comes back, plans one round that writes all three blocks,
// and dies after the first write lands. Its next life plans from the blocks as they
// are, and every ADD gets an address.
func controllerCrashMidRound(t *testing.T, ctx context.Context, c *crashCase) {
	midRound(t, ctx, c, func(l *ctlLife) { l.cutAfter.Store(1) }, true)
}

// controllerLosesAnswer: the first block write of the round lands but the controller
// is told it failed; it goes on from what its cache shows.
func controllerLosesAnswer(t *testing.T, ctx context.Context, c *crashCase) {
	midRound(t, ctx, c, func(l *ctlLife) { l.loseAt.Store(1) }, false)
}

func midRound(t *testing.T, ctx context.Context, c *crashCase, tune func(*ctlLife), crash bool) {
	if err := c.w.ctl.kill(); err != nil {
		t.Fatal(err)
	}
	var results []<-chan addResult
	for i := range 7 {
		for _, n := range []*agentNode{c.x, c.y} {
			p := c.pod(t, ctx, fmt.Sprintf("p%d-%s", i, n.name), n)
			results = append(results, c.addAsync(ctx, p, n, "c0"))
		}
	}
	c.waitNeed(t, ctx, c.x.name, 7)
	c.waitNeed(t, ctx, c.y.name, 7)
	cl, err := c.w.ctl.start(tune)
	if err != nil {
		t.Fatal(err)
	}
	if crash {
		select {
		case <-cl.cutCh:
		case <-time.After(20 * time.Second):
			t.Fatal("the controller's round never came to its second block write")
		}
		if err := c.w.ctl.kill(); err != nil {
			t.Fatal(err)
		}
		if got, err := c.w.grants(ctx); err != nil || len(got) == 0 || len(got) == c.w.size {
			t.Fatalf("after the crash %d addresses are granted (%v), want some but not all", len(got), err)
		}
		if _, err := c.w.ctl.start(nil); err != nil {
			t.Fatal(err)
		}
	}
	var errs []error
	for _, ch := range results {
		if r := <-ch; r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// poolAddrs are the pool's addresses in order.
func poolAddrs(t *testing.T, w *world) []netip.Addr {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := w.e.Client.Get(context.Background(), client.ObjectKey{Name: w.pool}, sp); err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, r := range sp.Spec.IPs {
		from, to, _ := strings.Cut(string(r), "-")
		a, b := netip.MustParseAddr(from), netip.MustParseAddr(to)
		for ; a.Compare(b) <= 0; a = a.Next() {
			out = append(out, a)
		}
	}
	return out
}

// trap keeps back the next write that its match picks, once armed; or every write
// match picks until releaseAll.
type trap struct {
	mu    sync.Mutex
	match func(*http.Request, []byte) bool
	held  []*heldWrite
	got   chan *heldWrite
}

// arm makes the trap keep back the next write match picks.
func (tr *trap) arm(match func(*http.Request, []byte) bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.match = match
}

func (tr *trap) hold(r *http.Request, body []byte) bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.match == nil || !tr.match(r, body) {
		return false
	}
	tr.match = nil
	return true
}

func (tr *trap) onHold(h *heldWrite) {
	tr.mu.Lock()
	tr.held = append(tr.held, h)
	tr.mu.Unlock()
	select {
	case tr.got <- h:
	default:
	}
}

// releaseAll disarms the trap and lets every write it keeps back go.
func (tr *trap) releaseAll() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.match = nil
	for _, h := range tr.held {
		h.release()
	}
}

// apiServerRestart: the API server restarts while X and Y each wait for a grant. Every
// watch breaks and every write in flight fails; the agents' and the controller's
// informers list again. An ADD that failed meanwhile gets the runtime's DEL and another
// sandbox; all of them, and the ADDs after, get an address.
func apiServerRestart(t *testing.T, ctx context.Context, c *crashCase) {
	p1 := c.pod(t, ctx, "p1", c.x)
	c.add(t, ctx, p1, c.x, "c0")
	q1 := c.pod(t, ctx, "q1", c.y)
	c.add(t, ctx, q1, c.y, "c0")
	p2 := c.pod(t, ctx, "p2", c.x)
	q2 := c.pod(t, ctx, "q2", c.y)
	pending := map[*corev1.Pod]<-chan addResult{p2: c.addAsync(ctx, p2, c.x, "c0"), q2: c.addAsync(ctx, q2, c.y, "c0")}
	start := time.Now()
	if err := c.w.e.RestartAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server back after %s", time.Since(start).Round(time.Millisecond))
	for p, ch := range pending {
		n := c.x
		if p == q2 {
			n = c.y
		}
		r := <-ch
		for try := 1; r.err != nil && try <= 5; try++ {
			t.Logf("ADD of %s during the restart: %v; the runtime DELs it and tries again", p.Name, r.err)
			if _, err := n.del(ctx, p, fmt.Sprintf("c%d", try-1)); err != nil {
				t.Logf("DEL: %v", err)
			}
			time.Sleep(time.Second)
			r = <-c.addAsync(ctx, p, n, fmt.Sprintf("c%d", try))
		}
		if r.err != nil {
			t.Fatalf("ADD of %s after the API server restart: %v", p.Name, r.err)
		}
	}
}
