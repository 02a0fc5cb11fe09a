package grants

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
)

// manyScale is how much TestNodeGrantsManyAgentsKills does.
type manyScale struct {
	nodes, slots, rounds int // pods in flight at the peak: nodes × slots = the pool's size
	agentKills           int
	killEvery            time.Duration
	hold                 time.Duration // the longest a pod keeps its address
}

func manyAgentsScale() manyScale {
	if raceDetector {
		// The race detector slows every agent and the API server 5-10 times: 100 agents
		// on 2 cores then starve the API server (a block write took 6 s, a reclaim three
		// of them), and what is measured is the machine. The same run at 100 nodes, without
		// the detector, is in every `make test`.
		return manyScale{nodes: 50, slots: 2, rounds: 3, agentKills: 14, killEvery: 600 * time.Millisecond, hold: 200 * time.Millisecond}
	}
	return manyScale{nodes: 100, slots: 2, rounds: 4, agentKills: 20, killEvery: 400 * time.Millisecond, hold: 200 * time.Millisecond}
}

// manyQuarantine is the agents' quarantine after a crash here; a write a crash leaves in
// flight lands within half of it.
const manyQuarantine = 2 * time.Second

// TestNodeGrantsManyAgentsKills runs 100 agents (50 under the race detector; simulated nodes, each its own agent,
// API connection and socket) and the grant controller on one exact-fit pool: as many
// addresses as pods in flight at the peak (two per node). Every pod slot creates a pod,
// ADDs it, keeps it a moment, DELs and deletes it, a few rounds over, all at once.
// Meanwhile agents are killed, preferably with a SpiderEndpoint or IPAMNode write in
// flight, which lands late (during the next life's quarantine) or never, and started
// again; the grant controller is killed twice (once right after one of its block
// writes, before the next) and started again. A pod whose ADD a kill cut gets the runtime's DEL and a new sandbox.
//
// During the run: every ADD's answer is checked against the addresses answered to pods
// not DELed yet and against the block's grant (the address must be granted to the
// node); every state of the endpoints, in etcd's order, is checked for an address two
// endpoints name; an ADD may fail only when its own agent was killed. At the end, with
// every pod gone, no endpoint is left, and as many pods as the pool has addresses,
// spread over the nodes, all get one.
func TestNodeGrantsManyAgentsKills(t *testing.T) {
	e := testenv.Require(t, env)
	sc := manyAgentsScale()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	size := sc.nodes * sc.slots
	ips := []v2beta1.IPOrRange{v2beta1.IPOrRange(fmt.Sprintf("10.85.0.1-10.85.0.%d", size))}
	w := newWorld(t, ctx, e, "many-agents", "10.85.0.0/24", ips, sc.nodes, func(cfg *agent.Config) {
		cfg.ReserveQuarantine = manyQuarantine
	})
	if w.size != size {
		t.Fatalf("pool of %d addresses, want %d", w.size, size)
	}
	// Every SpiderEndpoint and IPAMNode write is kept back for up to 10ms, so that a
	// kill finds some in flight.
	for _, n := range w.nodes {
		n.hold = func(r *http.Request, _ []byte) bool { return isWrite(r, "spiderendpoints", "ipamnodes") }
		n.onHold = func(h *heldWrite) { time.AfterFunc(time.Duration(rand.IntN(10_000))*time.Microsecond, h.release) }
	}
	if _, err := w.ctl.start(nil); err != nil {
		t.Fatal(err)
	}
	w.startAgents(ctx)
	t.Logf("%d agents serving after %s", sc.nodes, time.Since(start).Round(time.Millisecond))

	var st manyStats
	workers := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		killAgents(ctx, w, sc, &st, workers)
	}()
	var wg sync.WaitGroup
	for s := range size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(s), 19))
			runSlot(ctx, w, w.nodes[s%sc.nodes], fmt.Sprintf("s%d", s), sc, rng, &st)
		}()
	}
	wg.Wait()
	close(workers)
	<-killerDone
	run := time.Since(start)
	for _, n := range w.nodes {
		if _, err := n.current(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st.agentKills.Load() < int64(sc.agentKills)/2 || st.ctlKills.Load() < 2 {
		t.Errorf("only %d agent kills and %d controller kills ran, want %d and 2", st.agentKills.Load(), st.ctlKills.Load(), sc.agentKills)
	}
	w.checkIdle(ctx)
	w.fullRound(ctx, nil)
	w.report()
	t.Logf("%d nodes, pool of %d: %d ADDs answered (%d of them in the full round), %d cut by their agent's kill, 0 allowed to fail otherwise (%d did); "+
		"%d agent kills (%d with writes in flight: %d landed late, %d dropped, %d late ones refused), %d controller kills; run %s, total %s",
		sc.nodes, size, w.adds.Load(), size, st.cutAdds.Load(), st.failedAdds.Load(),
		st.agentKills.Load(), st.midKills.Load(), st.landed.Load(), st.dropped.Load(), st.refused.Load(), st.ctlKills.Load(),
		run.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

type manyStats struct {
	cutAdds, failedAdds            atomic.Int64
	agentKills, midKills, ctlKills atomic.Int64
	landed, dropped, refused       atomic.Int64
}

// runSlot is one pod slot of a node: rounds of create, ADD, hold, DEL, delete.
func runSlot(ctx context.Context, w *world, n *agentNode, slot string, sc manyScale, rng *rand.Rand, st *manyStats) {
	for r := range sc.rounds {
		pod, err := w.newPod(ctx, fmt.Sprintf("%s-%d", slot, r), n.name)
		if err != nil {
			w.problem("%v", err)
			return
		}
		a, ctr, ok := addUntilServed(ctx, w, n, pod, st)
		if ok {
			time.Sleep(time.Duration(rng.Int64N(int64(sc.hold))))
			w.gave(a)
		}
		if ctr != "" {
			delUntilServed(ctx, w, n, pod, ctr)
		}
		if err := w.deletePod(ctx, pod); err != nil {
			w.problem("%v", err)
		}
	}
}

// addUntilServed ADDs the pod until an agent answers, as the runtime does: an ADD that
// a kill of its agent cut is followed by a DEL of its sandbox (once the writes the
// kill left in flight have landed or not) and an ADD of a new sandbox. Any other
// failure is a failure of the protocol: the pool has an address for every slot.
func addUntilServed(ctx context.Context, w *world, n *agentNode, pod *corev1.Pod, st *manyStats) (netip.Addr, string, bool) {
	for attempt := range 6 {
		ctr := fmt.Sprintf("c%d", attempt)
		a, l, err := n.add(ctx, pod, ctr)
		if err == nil {
			w.took(ctx, a, pod.Name, n.name)
			return a, ctr, true
		}
		if l == nil || !l.killedBefore(time.Now()) {
			if st.failedAdds.Add(1) == 1 {
				err = fmt.Errorf("%w\nthe pool then: %s", err, w.dump(ctx, n.name))
			}
			w.problem("failed ADD while the pool had an address for it: %v", err)
			return netip.Addr{}, ctr, false
		}
		st.cutAdds.Add(1)
		select {
		case <-l.settled:
		case <-time.After(30 * time.Second):
			w.problem("the writes a kill of %s left in flight did not settle within 30s", n.name)
			return netip.Addr{}, ctr, false
		}
		delUntilServed(ctx, w, n, pod, ctr)
	}
	w.problem("ADD of %s/%s cut by kills 6 times", pod.Namespace, pod.Name)
	return netip.Addr{}, "", false
}

// delUntilServed DELs the sandbox until an agent answers.
func delUntilServed(ctx context.Context, w *world, n *agentNode, pod *corev1.Pod, ctr string) {
	for range 6 {
		l, err := n.del(ctx, pod, ctr)
		if err == nil {
			return
		}
		if l == nil || !l.killedBefore(time.Now()) {
			w.problem("failed DEL: %v", err)
			return
		}
	}
	w.problem("DEL of %s/%s (%s) cut by kills 6 times", pod.Namespace, pod.Name, ctr)
}

// killAgents kills an agent every sc.killEvery (one with a write in flight when there
// is one) and starts it again a moment later, until sc.agentKills are done or the
// workers are; it kills the grant controller after a third of the kills and, between
// two of its block writes, after two thirds.
func killAgents(ctx context.Context, w *world, sc manyScale, st *manyStats, workers <-chan struct{}) {
	rng := rand.New(rand.NewPCG(7, 7))
	var restarts sync.WaitGroup
	defer restarts.Wait()
	for k := range sc.agentKills {
		select {
		case <-workers:
			return
		case <-ctx.Done():
			return
		case <-time.After(sc.killEvery):
		}
		switch k {
		case sc.agentKills / 3:
			killController(ctx, w, st, false)
		case 2 * sc.agentKills / 3:
			killController(ctx, w, st, true)
		}
		var n, up *agentNode
		for _, i := range rng.Perm(len(w.nodes)) {
			w.nodes[i].mu.Lock()
			l := w.nodes[i].cur
			w.nodes[i].mu.Unlock()
			if l == nil {
				continue // being restarted
			}
			up = w.nodes[i]
			if l.wire.inFlight() > 0 {
				n = w.nodes[i]
				break
			}
		}
		if n == nil {
			n = up
		}
		if n == nil {
			continue
		}
		l, stranded, err := n.kill()
		if err != nil {
			w.problem("%v", err)
			return
		}
		st.agentKills.Add(1)
		if len(stranded) > 0 {
			st.midKills.Add(1)
		}
		l.settle(stranded, func(*heldWrite) (bool, time.Duration) {
			if rng.IntN(2) == 0 {
				st.dropped.Add(1)
				return false, 0
			}
			return true, time.Duration(rng.Int64N(int64(manyQuarantine / 2)))
		}, func(h *heldWrite, err error) {
			if err != nil {
				st.refused.Add(1) // a conflict or a gone object: the server refused it
			} else {
				st.landed.Add(1)
			}
		})
		pause := time.Duration(50+rng.IntN(150)) * time.Millisecond
		restarts.Add(1)
		go func() {
			defer restarts.Done()
			time.Sleep(pause)
			// Like the kubelet, start a container that exits again; but an agent that
			// cannot start is a failure of its own.
			for try := 0; try < 3; try++ {
				err := n.start(ctx)
				if err == nil {
					break
				}
				w.problem("agent restart after a kill: %v", err)
			}
		}()
	}
}

// killController kills the grant controller, at once or (between) after its next block
// write, and starts it again.
func killController(ctx context.Context, w *world, st *manyStats, midRound bool) {
	if midRound {
		w.ctl.mu.Lock()
		l := w.ctl.cur
		w.ctl.mu.Unlock()
		if l != nil {
			l.cutAfter.Store(l.blockWrites.Load() + 1)
			select {
			case <-l.cutCh:
			case <-time.After(5 * time.Second): // no round wrote twice: kill it anyway
			case <-ctx.Done():
			}
		}
	}
	if err := w.ctl.kill(); err != nil {
		w.problem("%v", err)
		return
	}
	st.ctlKills.Add(1)
	time.Sleep(300 * time.Millisecond)
	if _, err := w.ctl.start(nil); err != nil {
		w.problem("start the grant controller again: %v", err)
	}
}
