package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

const (
	scenarioOnePool   = "one-pool"
	scenarioRecreate  = "recreate"
	scenarioTenPools  = "ten-pools"
	scenarioLargePool = "large-pool"
	scenarioChurn     = "churn"
)

// scenarioNames lists the scenarios in the order they run.
func scenarioNames() []string {
	return []string{scenarioOnePool, scenarioRecreate, scenarioTenPools, scenarioLargePool, scenarioChurn}
}

// sizes are the scenarios' sizes, from the flags.
type sizes struct {
	// pods is how many ADDs each scenario times (one-pool's pool holds exactly that
	// many addresses; churn's pool too).
	pods int
	// largeSize is large-pool's pool size; largePrefill how many of its addresses are
	// allocated through the peer (untimed) before the timed ADDs.
	largeSize, largePrefill int
	// churnRate is how many DEL+ADD pairs per second churn starts, for churnDuration,
	// on a pool churnFill full.
	churnRate     float64
	churnDuration time.Duration
	churnFill     float64
}

// plan is one scenario made concrete: pools, pods and what is timed.
type plan struct {
	name string
	// report is false when the scenario runs only to prepare the next one (one-pool
	// ahead of recreate when one-pool itself was not asked for).
	report bool
	pools  []Pool
	reused bool
	// prefill are ADDed, untimed, before timing starts, and keep their addresses.
	prefill []*Pod
	// pods are the pods whose ADDs are timed; replace[i], when set, is the pod DELeted
	// on the same node just before pods[i] is ADDed (recreate, churn). The replaced
	// pods' Pod objects are deleted (left Terminating, as no kubelet finishes them)
	// before timing starts: a kubelet stops a sandbox, and so DELs it, once its pod is
	// deleted, and SpiderPool releases only the addresses of pods that are not alive.
	pods    []*Pod
	replace []*Pod
	// rate, when not zero, starts the timed jobs at this many per second (churn)
	// instead of all at once.
	rate float64
}

// buildPlans lays out the selected scenarios on the given nodes, pods in namespace ns,
// pools from 10.128.0.0 up. recreate needs one-pool before it and pulls it in
// (unreported) when it was not selected.
func buildPlans(selected []string, nodes []string, sz sizes, ns string) ([]*plan, error) {
	want := map[string]bool{}
	for _, s := range selected {
		want[s] = true
	}
	n := sz.pods
	next := netip.MustParseAddr("10.128.0.0")
	var plans []*plan
	var onePool *plan
	if want[scenarioOnePool] || want[scenarioRecreate] {
		pools, after, err := layoutPools(scenarioOnePool, 1, n, next)
		if err != nil {
			return nil, err
		}
		next = after
		onePool = &plan{name: scenarioOnePool, report: want[scenarioOnePool], pools: pools, pods: makePods(ns, scenarioOnePool, n, nodes, 1)}
		plans = append(plans, onePool)
	}
	if want[scenarioRecreate] {
		plans = append(plans, &plan{
			name: scenarioRecreate, report: true, pools: onePool.pools, reused: true,
			pods:    makePods(ns, scenarioRecreate, n, nodes, 1),
			replace: onePool.pods,
		})
	}
	if want[scenarioTenPools] {
		const pools = 10
		perPool := n / pools
		if perPool < 1 {
			return nil, fmt.Errorf("%s needs at least %d pods, got %d", scenarioTenPools, pools, n)
		}
		ps, after, err := layoutPools(scenarioTenPools, pools, perPool, next)
		if err != nil {
			return nil, err
		}
		next = after
		plans = append(plans, &plan{name: scenarioTenPools, report: true, pools: ps, pods: makePods(ns, scenarioTenPools, perPool*pools, nodes, pools)})
	}
	if want[scenarioLargePool] {
		if sz.largePrefill+n > sz.largeSize {
			return nil, fmt.Errorf("%s: %d prefilled and %d timed ADDs do not fit a pool of %d", scenarioLargePool, sz.largePrefill, n, sz.largeSize)
		}
		ps, after, err := layoutPools(scenarioLargePool, 1, sz.largeSize, next)
		if err != nil {
			return nil, err
		}
		next = after
		plans = append(plans, &plan{name: scenarioLargePool, report: true, pools: ps,
			prefill: makePods(ns, scenarioLargePool+"-fill", sz.largePrefill, nodes, 1),
			pods:    makePods(ns, scenarioLargePool, n, nodes, 1)})
	}
	if want[scenarioChurn] {
		fill := int(sz.churnFill * float64(n))
		pairs := int(sz.churnRate * sz.churnDuration.Seconds())
		if fill < 1 || fill >= n || pairs < 1 {
			return nil, fmt.Errorf("%s: want a pool of %d filled to between 1 and %d addresses and at least one pair, got %d filled and %d pairs", scenarioChurn, n, n-1, fill, pairs)
		}
		if pairs > fill {
			return nil, fmt.Errorf("%s: %d pairs (rate × duration) need as many prefilled pods to replace, the pool of %d holds %d: lower -churn-rate or -churn-duration", scenarioChurn, pairs, n, fill)
		}
		ps, _, err := layoutPools(scenarioChurn, 1, n, next)
		if err != nil {
			return nil, err
		}
		prefill := makePods(ns, scenarioChurn+"-fill", fill, nodes, 1)
		// Each pair replaces a prefilled pod with a new one on the same node.
		victims := prefill[:pairs]
		pods := make([]*Pod, pairs)
		for i, v := range victims {
			pods[i] = &Pod{Namespace: ns, Name: fmt.Sprintf("%s-%d", scenarioChurn, i), ContainerID: newContainerID(), Node: v.Node}
		}
		plans = append(plans, &plan{name: scenarioChurn, report: true, pools: ps, prefill: prefill, pods: pods, replace: victims, rate: sz.churnRate})
	}
	return plans, nil
}

// makePods makes n pods named <prefix>-<i>, round-robin over the nodes. With several
// pools, each node's run of consecutive pods cycles through the pools, so every node
// allocates from every pool and the pools are busy at the same time.
func makePods(ns, prefix string, n int, nodes []string, pools int) []*Pod {
	pods := make([]*Pod, n)
	for i := range pods {
		pods[i] = &Pod{
			Namespace: ns, Name: fmt.Sprintf("%s-%d", prefix, i), ContainerID: newContainerID(),
			Node: nodes[i%len(nodes)], Pool: (i / len(nodes)) % pools,
		}
	}
	return pods
}

// layoutPools lays out count pools of exactly size addresses each, named <prefix>-<i>,
// in aligned blocks from next up: each pool's subnet is the smallest that holds size
// addresses besides its network and broadcast addresses, and its range starts at the
// subnet's first host. It returns the address after the last block. IPv4 only; the
// blocks must stay inside 10.128.0.0/9.
func layoutPools(prefix string, count, size int, next netip.Addr) ([]Pool, netip.Addr, error) {
	const limit = uint64(11) << 24 // 11.0.0.0, the end of 10.128.0.0/9
	if size < 1 || !next.Is4() {
		return nil, next, fmt.Errorf("layout pools %s: want at least one address from an IPv4 start, got %d from %s", prefix, size, next)
	}
	bits := 32
	for bits > 9 && uint64(1)<<(32-bits) < uint64(size)+2 {
		bits--
	}
	block := uint64(1) << (32 - bits)
	if block < uint64(size)+2 {
		return nil, next, fmt.Errorf("layout pools %s: %d addresses do not fit in 10.128.0.0/9", prefix, size)
	}
	b4 := next.As4()
	cursor := uint64(binary.BigEndian.Uint32(b4[:]))
	pools := make([]Pool, count)
	for i := range pools {
		cursor = (cursor + block - 1) &^ (block - 1)
		if cursor+block > limit {
			return nil, next, fmt.Errorf("layout pools %s: %d pools of %d addresses do not fit in 10.128.0.0/9", prefix, count, size)
		}
		first := cursor + 1
		pools[i] = Pool{
			Name:   fmt.Sprintf("%s-%d", prefix, i),
			Prefix: netip.PrefixFrom(addr4(cursor), bits),
			First:  addr4(first), Last: addr4(first + uint64(size) - 1),
			Size: size,
		}
		cursor += block
	}
	return pools, addr4(cursor), nil
}

func addr4(v uint64) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(v))
	return netip.AddrFrom4(b)
}

// holding is one address handed to a pod: held from the end of its ADD until the
// start of its DEL (zero until then). Within those bounds the plugin has certainly
// counted the address as the pod's.
type holding struct {
	pod      string
	ip       netip.Addr
	from, to time.Time
}

// ledger records every address a peer handed out during a run.
type ledger struct {
	mu    sync.Mutex
	held  []*holding
	byPod map[*Pod][]*holding // a pod with several interfaces or families holds several
}

func newLedger() *ledger { return &ledger{byPod: map[*Pod][]*holding{}} }

func (l *ledger) hold(p *Pod, ip netip.Addr, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := &holding{pod: p.String(), ip: ip, from: at}
	l.held = append(l.held, h)
	l.byPod[p] = append(l.byPod[p], h)
}

// release ends p's holdings at the start of its successful DEL. After a failed DEL the
// holdings stay open: the addresses must not be handed out again.
func (l *ledger) release(p *Pod, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.byPod[p] {
		if h.to.IsZero() {
			h.to = at
		}
	}
}

// doubleAllocations returns one message per address handed to a second pod while an
// earlier holder still held it.
func (l *ledger) doubleAllocations() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return overlaps(l.held)
}

// overlaps finds holdings of the same address whose intervals overlap.
func overlaps(held []*holding) []string {
	byIP := map[netip.Addr][]*holding{}
	for _, h := range held {
		byIP[h.ip] = append(byIP[h.ip], h)
	}
	var out []string
	for ip, hs := range byIP {
		sort.Slice(hs, func(i, j int) bool { return hs[i].from.Before(hs[j].from) })
		// latest is the holding whose end lies furthest ahead so far.
		latest := hs[0]
		for _, h := range hs[1:] {
			if latest.to.IsZero() || latest.to.After(h.from) {
				out = append(out, fmt.Sprintf("%s handed to %s while %s still held it", ip, h.pod, latest.pod))
			}
			if !latest.to.IsZero() && (h.to.IsZero() || h.to.After(latest.to)) {
				latest = h
			}
		}
	}
	slices.Sort(out)
	return out
}

// runScenario prepares and runs one scenario for a peer and measures it, within
// h.ScenarioTimeout (prefill included). Infrastructure failures return an error; failed
// ADDs are counted in the result, and a scenario the bound cut short is marked so.
func (h *Harness) runScenario(ctx context.Context, p Peer, pl *plan, led *ledger) (*result, error) {
	ctx, cancel := context.WithTimeout(ctx, h.ScenarioTimeout)
	defer cancel()
	sc := Scenario{Name: pl.name, Nodes: h.Nodes, Pools: pl.pools, Reused: pl.reused}
	if err := p.Setup(ctx, h, sc); err != nil {
		return nil, fmt.Errorf("%s: set up %s: %w", p.Name(), pl.name, err)
	}
	if !pl.reused {
		if err := h.warmUp(ctx, p, pl); err != nil {
			return nil, err
		}
	}
	res := &result{peer: p.Name(), scenario: pl.name, nodes: len(h.Nodes), pods: len(pl.pods)}
	if len(pl.prefill) > 0 {
		note, err := h.prefill(ctx, p, pl, led)
		res.notes = append(res.notes, note)
		if err != nil || ctx.Err() != nil {
			res.incomplete = true
			res.skipped = "prefill not done: " + note
			return res, err
		}
	}
	if err := h.createPods(ctx, pl.pods); err != nil {
		return nil, err
	}
	if len(pl.replace) > 0 {
		if err := h.deletePods(ctx, pl.replace, terminating); err != nil {
			return nil, err
		}
	}
	if !pl.reused || len(pl.prefill) > 0 {
		if err := sleep(ctx, h.Settle); err != nil {
			return nil, err
		}
	}

	before, err := h.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	res.load = loadAverage()
	adds := make([]call, len(pl.pods))
	dels := make([]call, len(pl.replace))
	jobs := make([]job, len(pl.pods))
	var done atomic.Int64
	for i, pod := range pl.pods {
		jobs[i] = job{node: pod.Node, run: func(ctx context.Context) {
			if pl.replace != nil {
				old := pl.replace[i]
				dels[i] = h.cni(ctx, p, "DEL", old)
				if dels[i].err == nil {
					led.release(old, dels[i].start)
				}
			}
			adds[i] = h.cni(ctx, p, "ADD", pod)
			if adds[i].err == nil {
				led.hold(pod, adds[i].ip, adds[i].end)
			}
			done.Add(1)
		}}
	}
	inspector, _ := p.(Inspector)
	if inspector != nil {
		inspector.Begin()
	}
	profiled := make(chan error, 1)
	if h.APIServerProfile != "" {
		file := fmt.Sprintf("%s-%s-%d-%s.pprof", h.APIServerProfile, p.Name(), len(h.Nodes), pl.name)
		go func() { profiled <- h.profileAPIServer(ctx, file, h.APIServerProfileFor) }()
	} else {
		profiled <- nil
	}
	stopProfile := h.profileSelf(fmt.Sprintf("%s-%s-%d-%s.pprof", h.CPUProfile, p.Name(), len(h.Nodes), pl.name))
	start := time.Now()
	stopProgress := h.reportProgress(fmt.Sprintf("%s %d nodes %s", p.Name(), len(h.Nodes), pl.name), start, &done, len(jobs))
	if pl.rate > 0 {
		runAtRate(ctx, h.Nodes, h.Parallel, jobs, pl.rate)
	} else {
		runPerNode(ctx, h.Nodes, h.Parallel, jobs)
	}
	res.wall = time.Since(start)
	stopProfile()
	if err := <-profiled; err != nil {
		fmt.Fprintf(h.Progress, "bench: %v\n", err)
	}
	stopProgress()
	if inspector != nil {
		res.notes = append(res.notes, inspector.End()...)
	}
	res.incomplete = ctx.Err() != nil

	// Measure even after the deadline, so a cut-short scenario still reports.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer scancel()
	after, err := h.snapshot(sctx)
	if err != nil {
		return nil, err
	}
	res.cost = after.sub(before)
	res.addCalls(adds, pl)
	res.delCalls(dels)
	res.violations = led.doubleAllocations()
	if m, ok := p.(MemoryReporter); ok {
		res.agentMem, res.agentMemHow = m.AgentMemory()
	}
	if r, ok := p.(Recorder); ok && len(pl.replace) > 0 {
		var released []*Pod
		for i, d := range dels {
			if d.err == nil && !d.end.IsZero() {
				released = append(released, pl.replace[i])
			}
		}
		held, err := r.StillRecorded(sctx, released)
		if err != nil {
			return res, fmt.Errorf("%s: %s: look for DEL leaks: %w", p.Name(), pl.name, err)
		}
		res.leaks, res.leakChecked = len(held), true
		for _, pod := range held {
			res.noteErr(fmt.Errorf("DEL of %s exited 0 but its address is still recorded for it", pod))
		}
	}

	if pl.replace != nil {
		// The kubelet would remove the old Pod objects after their DEL; untimed.
		if err := h.deletePods(sctx, pl.replace, 0); err != nil {
			return res, err
		}
	}
	return res, nil
}

// warmUp ADDs and DELs one untimed pod per pool, so every peer starts with its pools
// (and its own CRDs' request paths) in use rather than brand new. Each warm-up pod is
// deleted before its DEL, in the kubelet's order: SpiderPool releases no address of a
// pod that is still alive, and the warm-up must leave the pools as full as it found them.
func (h *Harness) warmUp(ctx context.Context, p Peer, pl *plan) error {
	ns := pl.pods[0].Namespace
	for i := range pl.pools {
		warm := &Pod{Namespace: ns, Name: fmt.Sprintf("warmup-%s-%d", pl.name, i), ContainerID: newContainerID(), Node: h.Nodes[i%len(h.Nodes)], Pool: i}
		pods := []*Pod{warm}
		if err := h.createPods(ctx, pods); err != nil {
			return err
		}
		if c := h.cni(ctx, p, "ADD", warm); c.err != nil {
			return fmt.Errorf("%s: warm-up: %w", p.Name(), c.err)
		}
		if err := h.deletePods(ctx, pods, terminating); err != nil {
			return err
		}
		if c := h.cni(ctx, p, "DEL", warm); c.err != nil {
			return fmt.Errorf("%s: warm-up: %w", p.Name(), c.err)
		}
		if err := h.deletePods(ctx, pods, 0); err != nil {
			return err
		}
	}
	return nil
}

// prefill ADDs the plan's prefill pods, untimed, and says how it went.
func (h *Harness) prefill(ctx context.Context, p Peer, pl *plan, led *ledger) (string, error) {
	if err := h.createPods(ctx, pl.prefill); err != nil {
		return "prefill: creating Pods: " + err.Error(), err
	}
	var failed, cut atomic.Int64
	var firstErr atomic.Value
	jobs := make([]job, len(pl.prefill))
	var done atomic.Int64
	for i, pod := range pl.prefill {
		jobs[i] = job{node: pod.Node, run: func(ctx context.Context) {
			defer done.Add(1)
			c := h.cni(ctx, p, "ADD", pod)
			if c.cut {
				cut.Add(1)
				return
			}
			if c.err != nil {
				if failed.Add(1) == 1 {
					firstErr.Store(c.err.Error())
				}
				return
			}
			led.hold(pod, c.ip, c.end)
		}}
	}
	start := time.Now()
	stop := h.reportProgress(fmt.Sprintf("%s %d nodes %s prefill", p.Name(), len(h.Nodes), pl.name), start, &done, len(jobs))
	runPerNode(ctx, h.Nodes, h.Parallel, jobs)
	stop()
	wall := time.Since(start)
	ok := int64(len(jobs)) - failed.Load() - cut.Load()
	note := fmt.Sprintf("prefill (untimed, through the peer): %d of %d ADDs done in %.1fs (%.1f/s)",
		ok, len(jobs), wall.Seconds(), float64(ok)/wall.Seconds())
	if n := failed.Load(); n > 0 {
		note += fmt.Sprintf(", %d failed on the first try, first: %s", n, clip(firstErr.Load().(string), 300))
	}
	if n := cut.Load(); n > 0 || ctx.Err() != nil {
		note += fmt.Sprintf("; cut by -scenario-timeout, %d not done", n)
	}
	return note, nil
}

// costSnapshot is what the API server and the counting proxy had counted at one moment.
type costSnapshot struct {
	server  serverMetrics
	proxy   proxyBytes
	etcdCPU float64 // seconds
	// self is the harness process's CPU (the in-process agents, controllers and the
	// counting proxy); children the CPU of its children that exited (the exec'd plugins:
	// the servers and out-of-process agents run until the end); machine every core's busy
	// time; all in seconds.
	self, children, machine float64
}

func (h *Harness) snapshot(ctx context.Context) (costSnapshot, error) {
	m, err := scrapeServer(ctx, h.Env.Config)
	if err != nil {
		return costSnapshot{}, err
	}
	c := costSnapshot{server: m, etcdCPU: processCPU(h.etcdPID), machine: machineBusy()}
	c.self, c.children = rusageCPU()
	if h.Proxy != nil {
		c.proxy = h.Proxy.snapshot()
	}
	return c, nil
}

func (c costSnapshot) sub(before costSnapshot) costSnapshot {
	return costSnapshot{server: c.server.sub(before.server), proxy: c.proxy.sub(before.proxy), etcdCPU: c.etcdCPU - before.etcdCPU,
		self: c.self - before.self, children: c.children - before.children, machine: c.machine - before.machine}
}

// profileSelf starts profiling this process's CPU into file when -cpuprofile is set, and
// returns what stops it.
func (h *Harness) profileSelf(file string) (stop func()) {
	if h.CPUProfile == "" {
		return func() {}
	}
	f, err := os.Create(file)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(h.Progress, "bench: cpu profile: %v\n", err)
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// reportProgress prints how many of total jobs are done every 15 seconds until the
// returned function is called.
func (h *Harness) reportProgress(what string, start time.Time, done *atomic.Int64, total int) func() {
	if h.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				fmt.Fprintf(h.Progress, "bench: %s: %d/%d after %.0fs\n", what, done.Load(), total, now.Sub(start).Seconds())
			}
		}
	}()
	return func() { close(quit); <-finished }
}
