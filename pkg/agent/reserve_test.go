package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// nodeAgent runs agent lives for one node, on one socket and lock file.
type nodeAgent struct {
	testAgent
	t   *testing.T
	e   *testenv.Env
	cfg func(*Config)
}

func newNodeAgent(t *testing.T, e *testenv.Env, cfg func(*Config)) *nodeAgent {
	t.Helper()
	node := fmt.Sprintf("node-%d", nodeSeq.Add(1))
	if err := e.Client.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}); err != nil {
		t.Fatal(err)
	}
	socket := shortTempDir(t) + "/agent.sock"
	return &nodeAgent{testAgent: testAgent{node: node, socket: socket, api: api.NewUnixClient(socket)}, t: t, e: e, cfg: cfg}
}

// life is one running agent.Run of the node.
type life struct {
	ready chan struct{}
	done  chan error
	stop  func(crash bool) error
}

// start begins a life; it is ready when ready is closed.
func (n *nodeAgent) start() *life {
	crash := &atomic.Bool{}
	cfg := Config{NodeName: n.node, RESTConfig: n.e.Config, SocketPath: n.socket, Log: quietLog(n.t), crashOnStop: crash}
	if n.cfg != nil {
		n.cfg(&cfg)
	}
	l := &life{ready: make(chan struct{}), done: make(chan error, 1)}
	cfg.Ready = func() { close(l.ready) }
	ctx, cancel := context.WithCancel(context.Background())
	go func() { l.done <- Run(ctx, cfg) }()
	stopped := false
	l.stop = func(c bool) error {
		if stopped {
			return nil
		}
		stopped = true
		crash.Store(c)
		cancel()
		select {
		case err := <-l.done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("agent %s did not stop within 30s", n.node)
		}
	}
	n.t.Cleanup(func() { _ = l.stop(false) })
	return l
}

func (n *nodeAgent) startReady() *life {
	n.t.Helper()
	l := n.start()
	select {
	case <-l.ready:
	case err := <-l.done:
		n.t.Fatalf("agent %s stopped before it was ready: %v", n.node, err)
	case <-time.After(60 * time.Second):
		n.t.Fatalf("agent %s not ready after 60s", n.node)
	}
	return l
}

// TestAgentReserve: pods get addresses from the node's reserve; a crash leaves them
// recorded only as the node's reserve (and in the pods' SpiderEndpoints); the next life
// waits for the node lock, settles them after the quarantine (each pod's address under
// the pod, the spares back), and serves the same addresses again; a clean stop leaves
// no reserve behind.
func TestAgentReserve(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const quarantine = 500 * time.Millisecond
	n := newNodeAgent(t, e, func(c *Config) {
		c.ReserveQuarantine = quarantine
		c.ReserveRebindDelay = time.Hour // nothing is rebound before the crash
	})
	first := n.startReady()
	newPool(t, e, "rsv", "10.40.0.0/24", nil, "10.40.0.1-10.40.0.200")
	waitForPools(t, &n.testAgent)
	ns := newNamespace(t, e, nil)
	nodeOwner := records.ReserveOwner(n.node)

	var atts []attachment
	addrs := map[string]netip.Addr{}
	// stillHanded counts the pods' addresses the pool records only as the node's.
	stillHanded := func() int {
		p := readPool(t, e, "rsv")
		n := 0
		for _, a := range addrs {
			if h, _ := p.Holder(a); h == nodeOwner {
				n++
			}
		}
		return n
	}
	// Each top-up write also rebinds what was handed out: add pods until a few are
	// handed out after the last one.
	for i := 0; i < 12 || stillHanded() < 3; i++ {
		if i == 40 {
			t.Fatalf("after 40 pods only %d addresses are handed out from the reserve", stillHanded())
		}
		pod := newPod(t, e, ns, fmt.Sprintf("r%d", i), n.node, poolAnnotation("rsv", ""))
		a := attachment{pod: pod, containerID: fmt.Sprintf("c%d", i), ifName: "eth0"}
		res, err := n.add(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		atts = append(atts, a)
		addrs[pod.Name] = netip.MustParsePrefix(*res.Ips[0].Address).Addr()
		if err := n.check(ctx, a, *res.Ips[0].Address); err != nil {
			t.Fatalf("CHECK of an address handed out from the reserve: %v", err)
		}
	}
	handed := stillHanded()
	if got := podsHold(t, e, "rsv"); got != len(atts) {
		t.Fatalf("pods hold %d addresses, want %d", got, len(atts))
	}
	// The last pod, whose address is still only handed out, is deleted.
	last := atts[len(atts)-1]
	if h, _ := readPool(t, e, "rsv").Holder(addrs[last.pod.Name]); h != nodeOwner {
		t.Fatalf("the last pod's address is recorded for %v, want the node's reserve", h)
	}
	if err := n.del(ctx, last); err != nil {
		t.Fatal(err)
	}
	delete(addrs, last.pod.Name)
	atts = atts[:len(atts)-1]

	if err := first.stop(true); err != nil {
		t.Fatalf("crash: %v", err)
	}
	reserved := readPool(t, e, "rsv").AllHeldBy(nodeOwner)
	t.Logf("after the crash the pool records %d addresses in the node's reserve (%d handed to pods)", len(reserved), handed-1)
	if handed-1 < 2 || len(reserved) < handed-1 {
		t.Fatalf("the pool records %d addresses in the node's reserve, want at least the %d handed out", len(reserved), handed-1)
	}

	// A second life cannot start serving while another holds the node lock.
	second := n.start()
	third := n.start()
	var serving, waiting *life
	select {
	case <-second.ready:
		serving, waiting = second, third
	case <-third.ready:
		serving, waiting = third, second
	case <-time.After(60 * time.Second):
		t.Fatal("neither new life got ready within 60s")
	}
	select {
	case <-waiting.ready:
		t.Fatal("two agents of one node serve at once")
	case <-time.After(2 * quarantine):
	}
	if err := waiting.stop(false); err == nil || !containsAll(err.Error(), "node lock") {
		t.Fatalf("the waiting agent stopped with %v, want an error about the node lock", err)
	}

	p := readPool(t, e, "rsv")
	if left := p.AllHeldBy(nodeOwner); len(left) > DefaultReserveSize {
		t.Fatalf("after settling the node still reserves %d addresses", len(left))
	}
	for _, a := range atts {
		want := addrs[a.pod.Name]
		if h, _ := p.Holder(want); h != records.OwnerOf(string(a.pod.UID), a.containerID, "eth0") {
			t.Fatalf("after settling %s is recorded for %v, want pod %s", want, h, a.pod.Name)
		}
		res, err := n.add(ctx, a)
		if err != nil || netip.MustParsePrefix(*res.Ips[0].Address).Addr() != want {
			t.Fatalf("repeated ADD of %s after the crash = %+v, %v; want %s", a.pod.Name, res, err, want)
		}
	}
	// New pods never get an address a pod holds.
	for i := range 5 {
		pod := newPod(t, e, ns, fmt.Sprintf("s%d", i), n.node, poolAnnotation("rsv", ""))
		res, err := n.add(ctx, attachment{pod: pod, containerID: fmt.Sprintf("s%d", i), ifName: "eth0"})
		if err != nil {
			t.Fatal(err)
		}
		got := netip.MustParsePrefix(*res.Ips[0].Address).Addr()
		for name, a := range addrs {
			if a == got {
				t.Fatalf("new pod %s got %s, which %s holds", pod.Name, got, name)
			}
		}
		addrs[pod.Name] = got
	}
	if got := podsHold(t, e, "rsv"); got != len(addrs) {
		t.Fatalf("pods hold %d addresses, want %d", got, len(addrs))
	}

	if err := serving.stop(false); err != nil {
		t.Fatal(err)
	}
	p = readPool(t, e, "rsv")
	if left := p.AllHeldBy(nodeOwner); len(left) > 0 {
		t.Fatalf("a clean stop left %d addresses in the node's reserve", len(left))
	}
	if p.AllocatedCount() != int64(len(addrs)) {
		t.Fatalf("after a clean stop the pool records %d addresses, pods hold %d", p.AllocatedCount(), len(addrs))
	}
}
