package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// The full-agent stress test: sizes and bounds.
const (
	stressAgents       = 10
	stressWorkers      = 3  // per agent
	stressSlots        = 15 // pod names per worker: 450 names for 300 addresses
	stressOpsPerWorker = 90 // answered IPAM requests per worker: 2,700 in all
	stressReqTimeout   = 8 * time.Second
	stressWorkPhase    = 110 * time.Second
	stressPoolName     = "full-agents"
)

// TestManyFullAgentsOnePool is the one-IP-one-owner proof at the level of whole agents:
// 10 real agents (agent.Run, each its own API client, node and socket) serve 3 workers
// each, which create pods bound to their node and drive them through the agent's unix
// socket with the generated client the CNI plugin uses: ADD, repeated ADD (same IP),
// ADD of a new sandbox without a DEL of the old one (same IP, the old sandbox's late DEL
// releases nothing), DEL, DEL of a stale container (releases nothing), re-creation of a
// pod under the same name with a new UID, with or without a DEL first, and the late DEL
// of the previous pod. All of it runs in random interleavings on one pool of 300
// addresses for 450 pod names, so the pool runs full at times, while agents are killed
// with requests in flight and restarted on the same node and socket with nothing
// remembered. A failed ADD or DEL is followed by DELs until one succeeds, as the
// runtime does; a stale DEL is followed by a read of the pool, which must still record
// what the pod holds.
//
// Afterwards, from the API server: every attachment the ledger holds has exactly its IP
// in its pod's SpiderEndpoint and in the pool's records; no two held attachments or
// their SpiderEndpoints share an IP; every record belongs to a held attachment or to one
// whose request failed or whose pod was deleted without a DEL (counted); the pool's
// count equals its records. Then every uncertain attachment gets a DEL through a live
// agent, after which the pool records exactly the held attachments, the
// SpiderEndpoints are exactly theirs, and CHECK confirms each one.
func TestManyFullAgentsOnePool(t *testing.T) {
	e := testenv.Require(t, env)
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()

	pool := testPool(stressPoolName, "10.71.0.0/23", "10.71.0.1-10.71.1.44") // 300 addresses
	if err := e.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, e, nil)
	errLog := &errorLog{}

	agents := make([]*stressAgent, stressAgents)
	var startErrs [stressAgents]error
	var starting sync.WaitGroup
	for i := range agents {
		node := fmt.Sprintf("stress-node-%d", nodeSeq.Add(1))
		if err := e.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"kubernetes.io/hostname": node}}}); err != nil {
			t.Fatal(err)
		}
		socket := shortTempDir(t) + "/agent.sock"
		agents[i] = &stressAgent{testAgent: testAgent{node: node, socket: socket, api: api.NewUnixClient(socket)}, e: e, log: errLog.logger(node)}
		starting.Add(1)
		go func() { defer starting.Done(); startErrs[i] = agents[i].start() }()
	}
	starting.Wait()
	t.Cleanup(func() {
		for _, a := range agents {
			if err := a.stop(false); err != nil {
				t.Errorf("stop agent %s: %v", a.node, err)
			}
		}
	})
	// stopAll stops every agent cleanly: each moves the addresses it handed out from its
	// reserve to their pods in the pool and gives its spares back.
	stopAll := func() {
		for _, a := range agents {
			if err := a.stop(false); err != nil {
				t.Fatalf("stop agent %s: %v", a.node, err)
			}
		}
	}
	startAll := func() {
		for _, a := range agents {
			if !a.running() {
				if err := a.start(); err != nil {
					t.Fatalf("start agent %s: %v", a.node, err)
				}
			}
		}
	}
	if err := errors.Join(startErrs[:]...); err != nil {
		t.Fatal(err)
	}

	led := &stressLedger{atts: map[records.Owner]*stressAtt{}, kinds: map[string]int{}, failures: map[string]int{}, samples: map[string]string{}}

	// The work phase: workers on every agent, and a killer that stops and restarts the
	// agents one after the other while their workers' requests are in flight.
	workCtx, stopWork := context.WithTimeout(ctx, stressWorkPhase)
	defer stopWork()
	var workers sync.WaitGroup
	var all []*stressWorker
	for a := range agents {
		for w := range stressWorkers {
			wk := &stressWorker{
				t: t, e: e, led: led, agent: agents[a], ns: ns,
				name: fmt.Sprintf("a%d-w%d", a, w),
				rng:  rand.New(rand.NewPCG(uint64(a*stressWorkers+w), uint64(time.Now().UnixNano()))),
			}
			for s := range stressSlots {
				wk.slots = append(wk.slots, &stressSlot{name: fmt.Sprintf("%s-p%d", wk.name, s)})
			}
			all = append(all, wk)
			workers.Add(1)
			go func() { defer workers.Done(); wk.run(workCtx) }()
		}
	}
	workDone := make(chan struct{})
	peak := make(chan int64, 1)
	go func() { peak <- samplePeak(ctx, e, workDone) }()
	killerDone := make(chan struct{})
	kills, crashes := 0, 0
	go func() {
		defer close(killerDone)
		kills, crashes = killAgents(t, agents, led, workDone)
	}()
	workers.Wait()
	close(workDone)
	<-killerDone
	workTime := time.Since(started)
	peakAllocated := <-peak
	if ctx.Err() != nil {
		t.Fatalf("the work phase used the whole test deadline: %v", ctx.Err())
	}
	// Start the killed agents (each settles what a crashed life left in reserve), then
	// stop all cleanly: the pool must then record every address under its pod, and no
	// reserve may be left.
	startAll()
	stopAll()

	// Checks against what the API server holds now.
	final := readStressPool(t, ctx, e)
	for _, o := range final.Owners() {
		if o.IsReserve() {
			t.Errorf("after every agent stopped cleanly the pool still records %d addresses in a node's reserve", len(final.AllHeldBy(o)))
		}
	}
	endpoints := listEndpoints(t, ctx, e, ns)
	sum := led.verify(t, final, endpoints)

	// Clean up: DEL every attachment whose fate is unknown (a failed request, a pod
	// deleted without a DEL), as the runtime's retries and GC would, through a live agent.
	cleaned, checked := 0, 0
	report := func() {
		var m stressMetrics
		for _, a := range agents {
			m.add(a.registries())
		}
		t.Logf("%d agents x %d workers, %d kills (%d of them crashes); %d IPAM requests answered, %d failed (%d in all; %d pods created), work phase %s, total %s",
			stressAgents, stressWorkers, kills, crashes, led.answered, led.failed, led.answered+led.failed, led.podCreates, workTime.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
		t.Logf("requests by kind: %s", formatCounts(led.kinds))
		t.Logf("failures by reason: %s", formatCounts(led.failures))
		for _, reason := range slices.Sorted(maps.Keys(led.samples)) {
			t.Logf("first %s: %s", reason, led.samples[reason])
		}
		t.Logf("pool of %d addresses: at most %d allocated during the work phase (sampled every 200ms)", final.TotalCount(), peakAllocated)
		t.Logf("after the work phase: %d held, %d records of uncertain attachments, %d of pods deleted without DEL, %d stale SpiderEndpoints; clean-up DELs %d, CHECKs %d",
			sum.held, sum.uncertainRecords, sum.orphanRecords, sum.staleEndpoints, cleaned, checked)
		changing := 0
		for _, k := range []string{"add", "add-new-sandbox", "del", "del-retry", "del-late"} {
			changing += led.kinds[k] - led.failuresOf(k)
		}
		t.Logf("agent metrics: %d pool write attempts, %d of them conflicts; %.2f requests per attempt; %.2f landed writes per answered ADD or DEL that may change the pool (%d); %d addresses handed out from reserves; agent requests %s",
			m.writes, m.conflicts, m.batchAvg(), float64(m.writes-m.conflicts)/float64(max(changing, 1)), changing, m.handouts, formatCounts(m.requests))
		if n := errLog.count(); n > 0 {
			t.Logf("agents logged %d errors, first: %s", n, errLog.first())
		}
	}
	startAll()
	cleaned = eachWorker(all, func(wk *stressWorker) int { return wk.cleanUp(ctx) })
	if t.Failed() {
		report()
		t.FailNow()
	}
	checked = eachWorker(all, func(wk *stressWorker) int { return wk.checkHeld(ctx) })
	stopAll()
	final = readStressPool(t, ctx, e)
	endpoints = listEndpoints(t, ctx, e, ns)
	led.verifyClean(t, final, endpoints)
	report()
	if led.answered < 2000 {
		t.Fatalf("only %d requests answered, want at least 2000", led.answered)
	}
	if kills < stressAgents {
		t.Fatalf("only %d agent kills, want at least one per agent", kills)
	}
}

// eachWorker runs f for every worker at once and returns the sum of what they return.
func eachWorker(all []*stressWorker, f func(*stressWorker) int) int {
	var wg sync.WaitGroup
	counts := make([]int, len(all))
	for i, wk := range all {
		wg.Add(1)
		go func() { defer wg.Done(); counts[i] = f(wk) }()
	}
	wg.Wait()
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// samplePeak reads the pool every 200ms until done is closed and returns the highest
// allocated count it saw.
func samplePeak(ctx context.Context, e *testenv.Env, done <-chan struct{}) int64 {
	var peak int64
	for {
		if p, err := readPoolState(ctx, e); err == nil {
			peak = max(peak, p.AllocatedCount())
		}
		select {
		case <-done:
			return peak
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// killAgents stops and restarts the agents one after the other, in random order, until
// done is closed, and returns the number of kills and of those that were crashes (half,
// at random; the others are clean stops). Kills follow the work's progress,
// one every 60 to 140 answered requests, not the clock: on a slow machine a clock would
// kill the agents more often than they can work.
func killAgents(t *testing.T, agents []*stressAgent, led *stressLedger, done <-chan struct{}) (kills, crashes int) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	next := 0
	for {
		for _, i := range rng.Perm(len(agents)) {
			next += 60 + rng.IntN(80)
			for led.progress() < next {
				select {
				case <-done:
					return kills, crashes
				case <-time.After(10 * time.Millisecond):
				}
			}
			a := agents[i]
			crash := rng.IntN(2) == 0
			if err := a.stop(crash); err != nil {
				t.Errorf("kill agent %s: %v", a.node, err)
				return kills, crashes
			}
			kills++
			if crash {
				crashes++
			}
			time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
			if err := a.start(); err != nil {
				t.Errorf("restart agent %s: %v", a.node, err)
				return kills, crashes
			}
		}
	}
}

// stressAgent is a real agent that can be killed and started again on the same node and
// socket, as often as needed.
type stressAgent struct {
	testAgent
	e   *testenv.Env
	log logr.Logger

	mu     sync.Mutex
	cancel context.CancelFunc // nil when not running
	done   chan error
	crash  *atomic.Bool // the running life's crash switch
	regs   []*prometheus.Registry
}

// stressQuarantine is the agents' reserve quarantine: a crashed agent's writes land
// within milliseconds here.
const stressQuarantine = 300 * time.Millisecond

// start runs a fresh agent.Run for the node and waits until it serves.
func (a *stressAgent) start() error {
	reg := prometheus.NewRegistry()
	ready := make(chan struct{})
	runCtx, cancel := context.WithCancel(context.Background())
	crash := &atomic.Bool{}
	cfg := Config{NodeName: a.node, RESTConfig: a.e.Config, SocketPath: a.socket, Log: a.log, Registry: reg, Ready: func() { close(ready) },
		ReserveQuarantine: stressQuarantine, crashOnStop: crash}
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return fmt.Errorf("agent %s stopped before it was ready: %w", a.node, err)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		return fmt.Errorf("agent %s not ready after 30s", a.node)
	}
	a.mu.Lock()
	a.cancel, a.done, a.crash = cancel, done, crash
	a.regs = append(a.regs, reg)
	a.mu.Unlock()
	return nil
}

func (a *stressAgent) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cancel != nil
}

// lives is how many times the agent has been started.
func (a *stressAgent) lives() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.regs)
}

func (a *stressAgent) registries() []*prometheus.Registry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.regs)
}

// stop cancels the agent's Run, whatever it is doing, and waits until its socket is
// gone: Run returns before its HTTP server has closed the listener, and closing a unix
// listener unlinks its path, which would remove the socket of the next life. A crash
// cuts the requests in flight and leaves the node's reserve for the next life to settle;
// a clean stop gives it back.
func (a *stressAgent) stop(crash bool) error {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.cancel, a.done = nil, nil
	if a.crash != nil {
		a.crash.Store(crash)
	}
	a.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			return err
		}
	case <-time.After(30 * time.Second):
		return errors.New("Run did not return within 30s of its context's end")
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(a.socket); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("socket %s still there 20s after the agent stopped", a.socket)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// attState is what the ledger knows about one attachment (pod UID, container, NIC).
type attState int

const (
	// attHeld: an ADD was answered and no DEL, failed request or re-creation since.
	attHeld attState = iota
	// attUncertain: a request for it failed or is in flight; the pool may or may not
	// record it. A DEL that succeeds makes it attReleased.
	attUncertain
	// attOrphan: held when its pod was deleted without a DEL; the next pod of the same
	// name frees it (its ADD releases the previous pod's endpoint), or a late DEL does.
	attOrphan
	// attReleased: a DEL succeeded, or the sandbox that replaced it took its IP over, or
	// the next pod of its name was answered: the pool must not record it.
	attReleased
)

func (s attState) String() string {
	return [...]string{"held", "uncertain", "orphan", "released"}[s]
}

// stressAtt is one attachment in the ledger.
type stressAtt struct {
	att   attachment
	owner records.Owner
	state attState
	addr  netip.Addr // when held or orphan
}

// stressLedger is what the simulated runtimes believe.
type stressLedger struct {
	mu               sync.Mutex
	atts             map[records.Owner]*stressAtt
	answered, failed int
	podCreates       int
	kinds, failures  map[string]int
	samples          map[string]string // the first message of each kind and reason the agent reported
}

func (l *stressLedger) track(a attachment) *stressAtt {
	o := records.OwnerOf(string(a.pod.UID), a.containerID, a.ifName)
	l.mu.Lock()
	defer l.mu.Unlock()
	sa, ok := l.atts[o]
	if !ok {
		sa = &stressAtt{att: a, owner: o, state: attUncertain}
		l.atts[o] = sa
	}
	return sa
}

func (l *stressLedger) set(sa *stressAtt, st attState, addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sa.state, sa.addr = st, addr
}

func (l *stressLedger) state(sa *stressAtt) attState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sa.state
}

// count records one request of a kind and its outcome.
func (l *stressLedger) count(kind string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kinds[kind]++
	if err == nil {
		l.answered++
		return
	}
	l.failed++
	reason := kind + ": " + failureReason(err)
	l.failures[reason]++
	var ae *agentError
	if _, seen := l.samples[reason]; !seen && errors.As(err, &ae) {
		l.samples[reason] = ptr.Deref(ae.model.Message, "")
	}
}

// progress returns how many requests have been answered so far.
func (l *stressLedger) progress() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answered
}

// failuresOf returns how many requests of a kind failed.
func (l *stressLedger) failuresOf(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for reason, c := range l.failures {
		if strings.HasPrefix(reason, kind+": ") {
			n += c
		}
	}
	return n
}

// failureReason classifies a failed request: the agent's reason, or what the transport
// saw (agent down, cut off, timed out).
func failureReason(err error) string {
	var ae *agentError
	switch {
	case errors.As(err, &ae):
		return ae.model.Reason
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return "agent down"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, syscall.ECONNRESET), strings.Contains(err.Error(), "EOF"):
		return "cut off"
	}
	return "transport: " + err.Error()
}

// stressSlot is one pod name driven by one worker.
type stressSlot struct {
	name    string
	pod     *corev1.Pod  // the current pod of this name, nil before the first
	cur     *stressAtt   // the held attachment of the current pod
	pending []*stressAtt // attachments that need a DEL (after a failed request), oldest first
	oldCtrs []string     // containers of the current pod that a later sandbox took over
	orphans []*stressAtt // held attachments of earlier pods of this name, deleted without DEL
}

// stressWorker drives its slots through one agent, as one node's runtime would.
type stressWorker struct {
	t     *testing.T
	e     *testenv.Env
	led   *stressLedger
	agent *stressAgent
	ns    string
	name  string
	rng   *rand.Rand
	slots []*stressSlot
	done  int // answered requests
}

// run works until the worker has had its share of answers and its agent has been
// killed at least once, or the work phase ends.
func (w *stressWorker) run(ctx context.Context) {
	for (w.done < stressOpsPerWorker || w.agent.lives() < 2) && ctx.Err() == nil {
		w.step(ctx, w.slots[w.rng.IntN(len(w.slots))])
	}
}

// step runs one operation on a slot, chosen at random among those that fit its state.
func (w *stressWorker) step(ctx context.Context, s *stressSlot) {
	r := w.rng.IntN(100)
	switch {
	case len(s.pending) > 0:
		// The runtime retries a DEL until it succeeds.
		w.delPending(ctx, s)
	case s.pod == nil:
		w.recreate(ctx, s, false)
	case s.cur == nil && r < 80:
		w.addNew(ctx, s, "add")
	case s.cur == nil && r < 90:
		w.recreate(ctx, s, false)
	case s.cur == nil:
		w.staleDel(ctx, s)
	case r < 20:
		w.delCurrent(ctx, s)
	case r < 38:
		w.repeatAdd(ctx, s)
	case r < 56:
		w.staleDel(ctx, s)
	case r < 72:
		w.newSandbox(ctx, s)
	default:
		w.recreate(ctx, s, r < 86)
	}
}

func (w *stressWorker) newCtr() string {
	return fmt.Sprintf("%016x%016x", w.rng.Uint64(), w.rng.Uint64())
}

// request runs one IPAM request under the plugin's kind of deadline and counts it.
func (w *stressWorker) request(ctx context.Context, kind string, f func(ctx context.Context) error) error {
	rctx, cancel := context.WithTimeout(ctx, stressReqTimeout)
	defer cancel()
	err := f(rctx)
	w.led.count(kind, err)
	if err == nil {
		w.done++
	} else if reason := failureReason(err); reason == "agent down" || reason == ReasonNotReady {
		// The agent is being restarted: back off as a runtime would.
		time.Sleep(time.Duration(20+w.rng.IntN(80)) * time.Millisecond)
	}
	return err
}

func (w *stressWorker) add(ctx context.Context, kind string, a attachment) (netip.Addr, error) {
	var addr netip.Addr
	err := w.request(ctx, kind, func(ctx context.Context) error {
		res, err := w.agent.add(ctx, a)
		if err != nil {
			return err
		}
		if len(res.Ips) != 1 || res.Ips[0].Address == nil {
			return fmt.Errorf("ADD answered %d addresses, want one", len(res.Ips))
		}
		p, err := netip.ParsePrefix(*res.Ips[0].Address)
		if err != nil {
			return err
		}
		addr = p.Addr()
		return nil
	})
	return addr, err
}

// addNew attaches a new sandbox to a pod that holds nothing.
func (w *stressWorker) addNew(ctx context.Context, s *stressSlot, kind string) {
	sa := w.led.track(attachment{pod: s.pod, containerID: w.newCtr(), ifName: "eth0"})
	addr, err := w.add(ctx, kind, sa.att)
	if err != nil {
		s.pending = append(s.pending, sa)
		return
	}
	w.led.set(sa, attHeld, addr)
	s.cur = sa
	// The pod's ADD released the endpoint of the previous pod of this name.
	for _, o := range s.orphans {
		if w.led.state(o) == attOrphan {
			w.led.set(o, attReleased, netip.Addr{})
		}
	}
	s.orphans = nil
}

// repeatAdd repeats the ADD of the held attachment: it must answer the same IP.
func (w *stressWorker) repeatAdd(ctx context.Context, s *stressSlot) {
	addr, err := w.add(ctx, "add-repeat", s.cur.att)
	switch {
	case err != nil:
		w.led.set(s.cur, attUncertain, netip.Addr{})
		s.pending = append(s.pending, s.cur)
		s.cur = nil
	case addr != s.cur.addr:
		w.t.Errorf("repeated ADD of %s container %s answered %s, the first ADD %s", s.name, short(s.cur.att.containerID), addr, s.cur.addr)
	}
}

// newSandbox attaches a new sandbox of the pod without a DEL of the old one (a node
// that rebooted): the pod keeps its IP, and the old sandbox's late DEL frees nothing.
func (w *stressWorker) newSandbox(ctx context.Context, s *stressSlot) {
	old := s.cur
	sa := w.led.track(attachment{pod: s.pod, containerID: w.newCtr(), ifName: "eth0"})
	addr, err := w.add(ctx, "add-new-sandbox", sa.att)
	if err != nil {
		// The old sandbox is gone either way; whether the pool moved its IP to the new
		// one is unknown. The runtime DELs the new one; the old one's DEL never comes.
		w.led.set(old, attUncertain, netip.Addr{})
		s.pending = append(s.pending, sa)
		s.cur = nil
		return
	}
	if addr != old.addr {
		w.t.Errorf("ADD of a new sandbox of %s answered %s, the pod held %s", s.name, addr, old.addr)
	}
	w.led.set(old, attReleased, netip.Addr{})
	w.led.set(sa, attHeld, addr)
	s.cur = sa
	s.oldCtrs = append(s.oldCtrs, old.att.containerID)
}

// delCurrent releases the held attachment.
func (w *stressWorker) delCurrent(ctx context.Context, s *stressSlot) {
	sa := s.cur
	s.cur = nil
	w.led.set(sa, attUncertain, netip.Addr{})
	if err := w.request(ctx, "del", func(ctx context.Context) error { return w.agent.del(ctx, sa.att) }); err != nil {
		s.pending = append(s.pending, sa)
		return
	}
	w.led.set(sa, attReleased, netip.Addr{})
}

// delPending retries the DEL of the oldest attachment whose request failed.
func (w *stressWorker) delPending(ctx context.Context, s *stressSlot) {
	sa := s.pending[0]
	if err := w.request(ctx, "del-retry", func(ctx context.Context) error { return w.agent.del(ctx, sa.att) }); err != nil {
		return
	}
	w.led.set(sa, attReleased, netip.Addr{})
	s.pending = s.pending[1:]
}

// staleDel sends a DEL that must free nothing the pod holds: for a container that never
// existed, or one a later sandbox took over. Sometimes it is instead the late DEL of a
// previous pod of the same name, which frees only what that pod held.
func (w *stressWorker) staleDel(ctx context.Context, s *stressSlot) {
	var sa *stressAtt
	kind := "del-stale"
	switch r := w.rng.IntN(3); {
	case r == 0 && len(s.orphans) > 0:
		sa, kind = s.orphans[0], "del-late"
		s.orphans = s.orphans[1:]
		w.led.set(sa, attUncertain, netip.Addr{})
	case r == 1 && len(s.oldCtrs) > 0:
		sa = w.led.track(attachment{pod: s.pod, containerID: s.oldCtrs[w.rng.IntN(len(s.oldCtrs))], ifName: "eth0"})
	default:
		sa = w.led.track(attachment{pod: s.pod, containerID: w.newCtr(), ifName: "eth0"})
	}
	if err := w.request(ctx, kind, func(ctx context.Context) error { return w.agent.del(ctx, sa.att) }); err != nil {
		if kind == "del-late" {
			s.pending = append(s.pending, sa)
		}
		return
	}
	w.led.set(sa, attReleased, netip.Addr{})
	if s.cur == nil {
		return
	}
	// The held attachment must still be recorded, read from the API server now.
	p, err := readPoolState(ctx, w.e)
	if err != nil {
		return // the work phase is ending
	}
	h, ok := p.Holder(s.cur.addr)
	if ok && h.IsReserve() {
		// Handed out from the node's reserve: its SpiderEndpoint is the record.
		if se, err := getEndpoint(ctx, w.e, s.cur.att.pod); err == nil {
			if addr, ctr, named := endpointAddr(se); named && addr == s.cur.addr && ctr == s.cur.att.containerID {
				return
			}
		}
	}
	if !ok || h != s.cur.owner {
		w.t.Errorf("%s of %s (container %s) released %s, held by container %s (recorded: %t)", kind, s.name, short(sa.att.containerID), s.cur.addr, short(s.cur.att.containerID), ok)
	}
}

// recreate deletes the pod, with or without a DEL of its attachment first (no kubelet
// confirms a graceful deletion here, so it goes at once), and creates a new pod of the
// same name, with a new UID.
func (w *stressWorker) recreate(ctx context.Context, s *stressSlot, delFirst bool) {
	if s.cur != nil {
		if delFirst {
			w.delCurrent(ctx, s)
		} else {
			w.led.set(s.cur, attOrphan, s.cur.addr)
			s.orphans = append(s.orphans, s.cur)
			s.cur = nil
		}
	}
	if s.pod != nil {
		if err := w.e.Client.Delete(ctx, s.pod, client.GracePeriodSeconds(0)); err != nil && !apierrors.IsNotFound(err) {
			return // the work phase is ending
		}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.ns, Name: s.name, Annotations: poolAnnotation(stressPoolName, "")},
		Spec: corev1.PodSpec{
			NodeName:                     w.agent.node,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}},
		},
	}
	for try := 0; ; try++ {
		err := w.e.Client.Create(ctx, pod)
		if err == nil {
			break
		}
		if !apierrors.IsAlreadyExists(err) || try == 50 || ctx.Err() != nil {
			s.pod = nil
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.pod = pod
	s.oldCtrs = nil
	w.led.mu.Lock()
	w.led.podCreates++
	w.led.mu.Unlock()
}

// cleanUp DELs every attachment of the worker's slots whose fate is unknown, and returns
// how many it DELed.
func (w *stressWorker) cleanUp(ctx context.Context) int {
	n := 0
	tried := map[*stressAtt]bool{}
	for _, s := range w.slots {
		for _, sa := range slices.Concat(s.pending, s.orphans) {
			tried[sa] = true
			if w.cleanDel(ctx, sa) {
				n++
			}
		}
		s.pending, s.orphans = nil, nil
	}
	// Uncertain attachments no slot tracks any more (the old sandbox of a failed
	// new-sandbox ADD).
	w.led.mu.Lock()
	var rest []*stressAtt
	for _, sa := range w.led.atts {
		if sa.state == attUncertain && !tried[sa] && strings.HasPrefix(sa.att.pod.Name, w.name+"-") {
			rest = append(rest, sa)
		}
	}
	w.led.mu.Unlock()
	for _, sa := range rest {
		if w.cleanDel(ctx, sa) {
			n++
		}
	}
	return n
}

func (w *stressWorker) cleanDel(ctx context.Context, sa *stressAtt) bool {
	if st := w.led.state(sa); st != attUncertain && st != attOrphan {
		return false
	}
	var err error
	for try := 0; try < 5 && ctx.Err() == nil; try++ {
		rctx, cancel := context.WithTimeout(ctx, 2*stressReqTimeout)
		err = w.agent.del(rctx, sa.att)
		cancel()
		if err == nil {
			w.led.set(sa, attReleased, netip.Addr{})
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.t.Errorf("clean-up DEL of %s container %s: %v", sa.att.pod.Name, short(sa.att.containerID), err)
	return false
}

// checkHeld runs CHECK for every held attachment of the worker: it must confirm it.
func (w *stressWorker) checkHeld(ctx context.Context) int {
	n := 0
	for _, s := range w.slots {
		if s.cur == nil {
			continue
		}
		cidr := netip.PrefixFrom(s.cur.addr, 23).String()
		rctx, cancel := context.WithTimeout(ctx, 2*stressReqTimeout)
		err := w.agent.check(rctx, s.cur.att, cidr)
		cancel()
		if err != nil {
			w.t.Errorf("CHECK of %s container %s with %s: %v", s.name, short(s.cur.att.containerID), cidr, err)
		}
		n++
	}
	return n
}

func readPoolState(ctx context.Context, e *testenv.Env) (ipam.Pool, error) {
	obj := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, types.NamespacedName{Name: stressPoolName}, obj); err != nil {
		return ipam.Pool{}, err
	}
	return ipam.NewPool(obj, ip.Set{})
}

// readStressPool reads the pool and checks that its count equals its records.
func readStressPool(t *testing.T, ctx context.Context, e *testenv.Env) ipam.Pool {
	t.Helper()
	obj := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, types.NamespacedName{Name: stressPoolName}, obj); err != nil {
		t.Fatal(err)
	}
	p, err := ipam.NewPool(obj, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if got, spare := ptr.Deref(obj.Status.AllocatedIPCount, -1), ptr.Deref(obj.Status.Orbweaver.SpareIPCount, -1); got != p.PodCount() || spare != p.SpareCount() {
		t.Fatalf("pool %s: status.allocatedIPCount %d, spareIPCount %d; %d pods' and %d reserves' records", stressPoolName, got, spare, p.PodCount(), p.SpareCount())
	}
	// One owner per IP: the raw records name each address once.
	var raw []records.Record
	if obj.Status.Orbweaver != nil {
		if raw, err = records.Decode(p.Subnet(), obj.Status.Orbweaver.Records); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[netip.Addr]records.Owner{}
	for _, r := range raw {
		if prev, dup := seen[r.IP]; dup {
			t.Fatalf("pool %s records %s twice: for %v and %v", stressPoolName, r.IP, prev, r.Owner)
		}
		seen[r.IP] = r.Owner
	}
	if int64(len(raw)) != p.AllocatedCount() {
		t.Fatalf("pool %s: %d raw records, %d decoded", stressPoolName, len(raw), p.AllocatedCount())
	}
	return p
}

func listEndpoints(t *testing.T, ctx context.Context, e *testenv.Env, ns string) []v2beta1.SpiderEndpoint {
	t.Helper()
	var list v2beta1.SpiderEndpointList
	if err := e.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// endpointAddr is the eth0 IPv4 address an endpoint names, with its container.
func endpointAddr(se *v2beta1.SpiderEndpoint) (netip.Addr, string, bool) {
	nic := findNIC(se, "eth0")
	if nic == nil || nic.IPv4 == nil {
		return netip.Addr{}, "", false
	}
	p, err := netip.ParsePrefix(*nic.IPv4)
	if err != nil {
		return netip.Addr{}, "", false
	}
	return p.Addr(), containerOf(se), true
}

type stressSummary struct {
	held, uncertainRecords, orphanRecords, staleEndpoints int
}

// verify checks the pool and the endpoints against the ledger after the work phase.
func (l *stressLedger) verify(t *testing.T, p ipam.Pool, endpoints []v2beta1.SpiderEndpoint) stressSummary {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum stressSummary
	byName := map[string]*v2beta1.SpiderEndpoint{}
	for i := range endpoints {
		byName[endpoints[i].Name] = &endpoints[i]
	}
	heldAddr := map[netip.Addr]*stressAtt{}
	heldPods := map[string]bool{}
	for _, sa := range l.atts {
		if sa.state != attHeld {
			continue
		}
		sum.held++
		if prev, dup := heldAddr[sa.addr]; dup {
			t.Errorf("%s answered to two held attachments: %s container %s and %s container %s", sa.addr, prev.att.pod.Name, short(prev.att.containerID), sa.att.pod.Name, short(sa.att.containerID))
		}
		heldAddr[sa.addr] = sa
		heldPods[sa.att.pod.Name] = true
		if h, ok := p.Holder(sa.addr); !ok || h != sa.owner {
			t.Errorf("%s held by %s container %s, but the pool records it for %v (recorded: %t)", sa.addr, sa.att.pod.Name, short(sa.att.containerID), h, ok)
		} else if h.Pod != records.PodKey(string(sa.att.pod.UID)) {
			t.Errorf("%s held by %s, recorded for another pod key", sa.addr, sa.att.pod.Name)
		}
		se := byName[sa.att.pod.Name]
		if se == nil {
			t.Errorf("%s held by %s container %s, which has no SpiderEndpoint", sa.addr, sa.att.pod.Name, short(sa.att.containerID))
			continue
		}
		addr, ctr, ok := endpointAddr(se)
		if se.Status.Current.UID != string(sa.att.pod.UID) || ctr != sa.att.containerID || !ok || addr != sa.addr {
			t.Errorf("%s held by %s (UID %s) container %s, but its SpiderEndpoint names %s (UID %s, container %s)",
				sa.addr, sa.att.pod.Name, sa.att.pod.UID, short(sa.att.containerID), addr, se.Status.Current.UID, short(ctr))
		}
	}
	// No two endpoints of held pods name the same IP; the others are counted.
	seAddr := map[netip.Addr]string{}
	for i := range endpoints {
		se := &endpoints[i]
		if !heldPods[se.Name] {
			sum.staleEndpoints++
			continue
		}
		if addr, _, ok := endpointAddr(se); ok {
			if prev, dup := seAddr[addr]; dup {
				t.Errorf("SpiderEndpoints %s and %s both name %s", prev, se.Name, addr)
			}
			seAddr[addr] = se.Name
		}
	}
	// Every record belongs to a held attachment or one whose fate is unknown.
	for _, o := range p.Owners() {
		sa := l.atts[o]
		switch {
		case sa == nil:
			t.Errorf("the pool records %v, which no request of this test ever named", o)
		case sa.state == attUncertain:
			sum.uncertainRecords++
		case sa.state == attOrphan:
			sum.orphanRecords++
		case sa.state == attReleased:
			a, _ := p.HeldBy(o)
			t.Errorf("the pool records %s for %s container %s, released by an answered request", a, sa.att.pod.Name, short(sa.att.containerID))
		}
	}
	return sum
}

// verifyClean checks, after the clean-up, that the pool records exactly the held
// attachments and the endpoints are exactly theirs.
func (l *stressLedger) verifyClean(t *testing.T, p ipam.Pool, endpoints []v2beta1.SpiderEndpoint) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	held := map[records.Owner]*stressAtt{}
	for o, sa := range l.atts {
		if sa.state == attHeld {
			held[o] = sa
		}
	}
	if got, want := p.AllocatedCount(), int64(len(held)); got != want {
		t.Errorf("after the clean-up the pool records %d addresses, the ledger holds %d", got, want)
	}
	for _, o := range p.Owners() {
		if held[o] == nil {
			a, _ := p.HeldBy(o)
			sa := l.atts[o]
			if sa == nil {
				t.Errorf("after the clean-up the pool records %s for an unknown owner %v", a, o)
			} else {
				t.Errorf("after the clean-up the pool records %s for %s container %s (%s)", a, sa.att.pod.Name, short(sa.att.containerID), sa.state)
			}
		}
	}
	heldPods := map[string]*stressAtt{}
	for _, sa := range held {
		heldPods[sa.att.pod.Name] = sa
	}
	seAddr := map[netip.Addr]string{}
	for i := range endpoints {
		se := &endpoints[i]
		addr, ctr, _ := endpointAddr(se)
		if prev, dup := seAddr[addr]; dup {
			t.Errorf("after the clean-up SpiderEndpoints %s and %s both name %s", prev, se.Name, addr)
		}
		seAddr[addr] = se.Name
		if sa := heldPods[se.Name]; sa == nil || sa.att.containerID != ctr || string(sa.att.pod.UID) != se.Status.Current.UID {
			t.Errorf("after the clean-up SpiderEndpoint %s (container %s, %s) belongs to no held attachment", se.Name, short(ctr), addr)
		}
	}
	if len(endpoints) != len(held) {
		t.Errorf("after the clean-up %d SpiderEndpoints, %d held attachments", len(endpoints), len(held))
	}
}

// stressMetrics sums what the agents' registries counted over all their lives.
type stressMetrics struct {
	writes, conflicts    int64
	handouts             int64 // addresses handed out from a node's reserve
	batchSum, batchCount float64
	requests             map[string]int
}

func (m *stressMetrics) add(regs []*prometheus.Registry) {
	if m.requests == nil {
		m.requests = map[string]int{}
	}
	for _, reg := range regs {
		families, err := reg.Gather()
		if err != nil {
			continue
		}
		for _, f := range families {
			for _, s := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range s.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				switch f.GetName() {
				case "orbweaver_agent_pool_writes_total":
					n := int64(s.GetCounter().GetValue())
					m.writes += n
					if labels["result"] == "conflict" {
						m.conflicts += n
					}
				case "orbweaver_agent_pool_write_batch_size":
					m.batchSum += s.GetHistogram().GetSampleSum()
					m.batchCount += float64(s.GetHistogram().GetSampleCount())
				case "orbweaver_agent_reserve_handouts_total":
					m.handouts += int64(s.GetCounter().GetValue())
				case "orbweaver_agent_requests_total":
					if v := int(s.GetCounter().GetValue()); v > 0 { // every result shows at 0 from the start
						m.requests[labels["op"]+"/"+labels["result"]] += v
					}
				}
			}
		}
	}
}

func (m *stressMetrics) batchAvg() float64 {
	if m.batchCount == 0 {
		return 0
	}
	return m.batchSum / m.batchCount
}

func formatCounts(c map[string]int) string {
	keys := slices.Sorted(maps.Keys(c))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, c[k])
	}
	return strings.Join(parts, " ")
}

// errorLog keeps the agents' error logs (nothing else) without writing to the test's
// log: a killed agent's handlers may still log after the test has ended.
type errorLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *errorLog) logger(node string) logr.Logger {
	sink := funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, node+" "+prefix+" "+args)
	}, funcr.Options{}).GetSink()
	return logr.New(errorsOnly{sink})
}

func (l *errorLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func (l *errorLog) first() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return ""
	}
	return l.lines[0]
}

// errorsOnly passes on errors and drops every info message.
type errorsOnly struct{ logr.LogSink }

func (errorsOnly) Enabled(int) bool { return false }

func (s errorsOnly) WithValues(kv ...any) logr.LogSink {
	return errorsOnly{s.LogSink.WithValues(kv...)}
}

func (s errorsOnly) WithName(name string) logr.LogSink { return errorsOnly{s.LogSink.WithName(name)} }
