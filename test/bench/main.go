// Command bench measures how fast IPAM plugins hand out addresses against a real API
// server, and what each allocation costs it. It plays N simulated nodes against one
// kube-apiserver + etcd on 127.0.0.1 (internal/testenv), creates the Node and Pod objects
// first (bound with spec.nodeName, run by no kubelet), then execs each peer's CNI plugin
// once per pod sandbox, as a container runtime calls an IPAM plugin through libcni, at
// most -parallel at a time per node and -max-inflight in all. Every API client of every
// peer goes through a counting proxy in this process, which measures what watchers
// receive. Per peer, node count and scenario it reports allocations/s, ADD latency,
// first-try failures, DEL leaks, API writes, reads and 409s per allocation, bytes sent to
// watchers, API server CPU per allocation and agent memory per node, and it fails loudly
// when an address is handed out twice.
//
//	go run ./test/bench -peers spiderpool,orbweaver -nodes 10,100 -scenarios one-pool
//
// Scenarios (all by default, in this order), each run at every -nodes count:
//
//	one-pool    -pods pods from one pool of exactly -pods addresses, round-robin over the nodes
//	recreate    after one-pool: every pod is deleted, DELeted, and a replacement (new Pod
//	            UID, new container) ADDed on the same node, so releases and allocations
//	            overlap; the ADDs are measured
//	ten-pools   10 pools of -pods/10 addresses, -pods/10 pods from each
//	large-pool  a pool of -large-pool-size addresses, -large-prefill of them allocated
//	            through the peer first (untimed), then -pods ADDs timed
//	churn       a pool of -pods addresses filled to -churn-fill through the peer, then
//	            -churn-rate DEL+ADD pairs a second for -churn-duration
//
// Peers: orbweaver (`make build`), spiderpool and whereabouts (built by `tools/ensure.sh
// spiderpool spiderpool-agent whereabouts`), and floor: no IPAM, only the SpiderEndpoint
// each pod's record needs, written from this process with the same concurrency.
// -scenario-timeout bounds each scenario, -timeout the whole run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

type options struct {
	peers         []string
	scenarios     []string
	nodes         []int
	sizes         sizes
	parallel      int
	maxInflight   int
	scenarioTime  time.Duration
	settle        time.Duration
	timeout       time.Duration
	opTimeout     time.Duration
	serverOutput  bool
	reserveSize   int
	records       bool
	rebindDelay   time.Duration
	eip           bool
	binDir        string
	countBytes    bool
	cpuProfile    string
	apiProfile    string
	apiProfileFor time.Duration
}

func main() {
	// controller-runtime's caches (inside orbweaver's agents) log through its process-wide
	// logger; the harness prints its own report instead.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	peers := fs.String("peers", strings.Join(defaultPeers, ","), "comma-separated peers to run: "+strings.Join(sortedKeys(peerConstructors()), ", "))
	scenarios := fs.String("scenarios", strings.Join(scenarioNames(), ","), "comma-separated scenarios: "+strings.Join(scenarioNames(), ", "))
	nodes := fs.String("nodes", "10,100,500", "comma-separated simulated node counts; every scenario runs at each")
	fs.IntVar(&o.sizes.pods, "pods", 1000, "timed ADDs per scenario (one-pool's and churn's pools have exactly this many addresses)")
	fs.IntVar(&o.sizes.largeSize, "large-pool-size", 65536, "large-pool: the pool's addresses")
	fs.IntVar(&o.sizes.largePrefill, "large-prefill", 20000, "large-pool: addresses allocated through the peer before timing")
	fs.Float64Var(&o.sizes.churnRate, "churn-rate", 10, "churn: DEL+ADD pairs started per second")
	fs.DurationVar(&o.sizes.churnDuration, "churn-duration", time.Minute, "churn: how long pairs are started")
	fs.Float64Var(&o.sizes.churnFill, "churn-fill", 0.95, "churn: how full the pool is when churn starts")
	fs.IntVar(&o.parallel, "parallel", 8, "CNI calls at once per node")
	fs.IntVar(&o.maxInflight, "max-inflight", 256, "CNI calls at once in all (the machine's bound: every exec is a process on these few cores)")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "how long the pods are bound to their nodes before their ADDs are timed")
	fs.DurationVar(&o.scenarioTime, "scenario-timeout", 10*time.Minute, "bound on each scenario, its prefill included; a scenario cut short is reported as cut")
	fs.DurationVar(&o.timeout, "timeout", 6*time.Hour, "bound on the whole run")
	fs.DurationVar(&o.opTimeout, "op-timeout", 3*time.Minute, "bound on each plugin exec")
	fs.BoolVar(&o.countBytes, "count-watch-bytes", true, "put the counting proxy between the peers' clients and the API server (false: they go straight to it, to see what the proxy costs)")
	fs.StringVar(&o.binDir, "bin", "", "where the peers' binaries are (default: the repository's bin/)")
	fs.BoolVar(&o.serverOutput, "server-output", false, "show the API server's and etcd's logs")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "profile the harness process (its in-process agents and controllers included) while each scenario is timed; files are <this>-<peer>-<nodes>-<scenario>.pprof")
	fs.StringVar(&o.apiProfile, "apiserver-cpuprofile", "", "profile the API server during each scenario; files are <this>-<peer>-<scenario>.pprof")
	fs.DurationVar(&o.apiProfileFor, "apiserver-profile-for", 5*time.Second, "how long each API server profile runs from the start of timing")
	fs.IntVar(&o.reserveSize, "orbweaver-reserve-size", 0, "orbweaver agents' --reserve-size (records protocol) and grant buffer cap (node grants) (0: the agent's defaults)")
	fs.DurationVar(&o.rebindDelay, "orbweaver-rebind-delay", 0, "orbweaver agents' --reserve-rebind-delay (0: the agent's default)")
	fs.BoolVar(&o.records, "orbweaver-records", false, "keep orbweaver's pools on the records protocol (no grant controller runs): orbweaver before node grants")
	fs.BoolVar(&o.eip, "orbweaver-eip", false, "give orbweaver's pools an EIP attribute and run the EIP controller in-process against the in-memory cloud, to measure what binding EIPs costs allocation")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.peers = splitList(*peers)
	o.scenarios = splitList(*scenarios)
	var errs []error
	for _, f := range splitList(*nodes) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("-nodes: %q is not a positive count", f))
			continue
		}
		if slices.Contains(o.nodes, n) {
			errs = append(errs, fmt.Errorf("-nodes: %d named twice", n))
		}
		o.nodes = append(o.nodes, n)
	}
	slices.Sort(o.nodes)
	known := peerConstructors()
	for i, p := range o.peers {
		if slices.Contains(o.peers[:i], p) {
			errs = append(errs, fmt.Errorf("peer %q named twice", p))
		}
		if known[p] == nil {
			errs = append(errs, fmt.Errorf("unknown peer %q (known: %s)", p, strings.Join(sortedKeys(known), ", ")))
		}
	}
	for _, s := range o.scenarios {
		if !slices.Contains(scenarioNames(), s) {
			errs = append(errs, fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(scenarioNames(), ", ")))
		}
	}
	if len(o.peers) == 0 || len(o.scenarios) == 0 {
		errs = append(errs, errors.New("-peers and -scenarios must name at least one each"))
	}
	if len(o.nodes) == 0 || o.sizes.pods < 1 || o.parallel < 1 || o.maxInflight < 1 || o.timeout <= 0 || o.opTimeout <= 0 || o.scenarioTime <= 0 {
		errs = append(errs, errors.New("-nodes, -pods, -parallel, -max-inflight, -timeout, -scenario-timeout and -op-timeout must be positive"))
	}
	if o.sizes.churnRate <= 0 || o.sizes.churnDuration <= 0 || o.sizes.churnFill <= 0 || o.sizes.churnFill >= 1 {
		errs = append(errs, errors.New("-churn-rate and -churn-duration must be positive, -churn-fill between 0 and 1"))
	}
	if len(errs) == 0 && len(o.nodes) > 0 {
		// Lay the plans out once now, so a size that cannot work fails before any server starts.
		if _, err := buildPlans(o.scenarios, []string{"n"}, o.sizes, "ns"); err != nil {
			errs = append(errs, err)
		}
	}
	return o, errors.Join(errs...)
}

func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "bench:", err)
		}
		return 2
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	// Every peer must be runnable before any server starts.
	var peers []Peer
	var errs []error
	for _, name := range opts.peers {
		binDir := opts.binDir
		if binDir == "" {
			binDir = filepath.Join(root, "bin")
		}
		p, err := peerConstructors()[name](PeerParams{BinDir: binDir, ReserveSize: opts.reserveSize, RebindDelay: opts.rebindDelay, EIP: opts.eip, Records: opts.records})
		if _, direct := p.(Caller); err == nil && !direct {
			err = requireExecutable(name, p.Binary(), "tools/ensure.sh "+name)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		peers = append(peers, p)
	}
	if len(errs) > 0 {
		fmt.Fprintln(stderr, "bench:", errors.Join(errs...))
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()

	results, err := bench(ctx, opts, peers, stdout, stderr)
	if len(results) > 0 {
		fmt.Fprintln(stdout)
		printTable(stdout, results)
	}
	code := 0
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		code = 1
	}
	for _, r := range results {
		if len(r.violations) > 0 {
			fmt.Fprintf(stderr, "bench: FAIL: %s %s handed out addresses wrongly (%d violations, listed above)\n", r.peer, r.scenario, len(r.violations))
			code = 1
		}
		if r.incomplete {
			code = 1
		}
	}
	return code
}

// defaultPeers run when -peers is not given: every peer, the floor first.
var defaultPeers = []string{"floor", "orbweaver", "spiderpool", "whereabouts"}

// bench starts the API server and the counting proxy, runs every peer through the
// scenarios at every node count and returns the results gathered so far, also on error.
func bench(ctx context.Context, opts options, peers []Peer, stdout, stderr io.Writer) (results []*result, err error) {
	for _, line := range machine() {
		fmt.Fprintln(stdout, line)
	}
	env, err := testenv.Start(testenv.Options{ShowServerOutput: opts.serverOutput})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, env.Stop()) }()
	var proxy *countingProxy
	if opts.countBytes {
		if proxy, err = startProxy(env.Config); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, proxy.Close()) }()
	}

	maxNodes := opts.nodes[len(opts.nodes)-1]
	fmt.Fprintf(stdout, "servers: kube-apiserver %s, %s (127.0.0.1 only)\n", serverVersion(env), binaryVersion(ctx, filepath.Join(env.BinDir, "etcd")))
	fmt.Fprintf(stdout, "run: %s nodes, %d timed ADDs per scenario, %d CNI calls at once per node and at most %d in all, scenarios %s\n",
		strings.Trim(strings.Join(strings.Fields(fmt.Sprint(opts.nodes)), ","), "[]"), opts.sizes.pods, opts.parallel, opts.maxInflight, strings.Join(opts.scenarios, ","))
	for _, p := range peers {
		if _, direct := p.(Caller); direct {
			fmt.Fprintf(stdout, "peer %s: in this process\n", p.Name())
			continue
		}
		bin, err := filepath.EvalSymlinks(p.Binary())
		if err != nil {
			bin = p.Binary()
		}
		fmt.Fprintf(stdout, "peer %s: %s\n", p.Name(), bin)
	}

	h := &Harness{Env: env, Dir: filepath.Join(env.Dir(), "bench"), Parallel: opts.parallel, OpTimeout: opts.opTimeout, Progress: stderr,
		CPUProfile: opts.cpuProfile, APIServerProfile: opts.apiProfile, APIServerProfileFor: opts.apiProfileFor, ScenarioTimeout: opts.scenarioTime, Settle: opts.settle,
		Proxy: proxy, slots: make(chan struct{}, opts.maxInflight),
		etcdPID: findProcess("etcd", "--data-dir="+filepath.Join(env.Dir(), "etcd"))}
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return nil, err
	}
	h.Kubeconfig = env.Kubeconfig
	if proxy != nil {
		h.Kubeconfig = filepath.Join(h.Dir, "proxy.kubeconfig")
		if err := proxy.WriteKubeconfig(h.Kubeconfig); err != nil {
			return nil, err
		}
	}
	for i := range maxNodes {
		h.Nodes = append(h.Nodes, fmt.Sprintf("bench-node-%03d", i))
	}
	if err := h.createNodes(ctx); err != nil {
		return nil, err
	}
	all := h.Nodes

	for _, n := range opts.nodes {
		h.Nodes = all[:n]
		for _, p := range peers {
			if s, ok := p.(Scaler); ok {
				if why := s.Supports(n); why != nil {
					fmt.Fprintf(stderr, "bench: %s at %d nodes: skipped: %v\n", p.Name(), n, why)
					for _, sc := range opts.scenarios {
						results = append(results, &result{peer: p.Name(), scenario: sc, nodes: n, pods: opts.sizes.pods, skipped: why.Error()})
					}
					continue
				}
			}
			rs, err := h.runPeer(ctx, p, opts)
			results = append(results, rs...)
			if err != nil {
				return results, err
			}
		}
	}
	return results, nil
}

// runPeer runs one peer through the selected scenarios on h.Nodes and tears it down.
func (h *Harness) runPeer(ctx context.Context, p Peer, opts options) (results []*result, err error) {
	ns := fmt.Sprintf("bench-%s-%d", p.Name(), len(h.Nodes))
	defer func() {
		// Cleanup survives the run's deadline, with a bound of its own.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if terr := p.Teardown(tctx); terr != nil {
			err = errors.Join(err, fmt.Errorf("%s: teardown: %w", p.Name(), terr))
		}
		// The next peer should find no pods of this one (SpiderPool's agents cache every
		// pod of the cluster). The API server deletes a collection one pod at a time,
		// about 100 a second here: large-pool leaves 21,000. Pods left over slow the
		// next peers' caches, not their correctness, so a failure here is only reported.
		pctx, pcancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Minute)
		defer pcancel()
		if perr := h.deleteAllPods(pctx, ns); perr != nil {
			fmt.Fprintf(h.Progress, "bench: %s: %v (going on)\n", p.Name(), perr)
		}
	}()
	if err := h.ensureNamespace(ctx, ns); err != nil {
		return nil, err
	}
	plans, err := buildPlans(opts.scenarios, h.Nodes, opts.sizes, ns)
	if err != nil {
		return nil, err
	}
	led := newLedger()
	for _, pl := range plans {
		fmt.Fprintf(h.Progress, "bench: %s %d nodes %s: %d ADDs...\n", p.Name(), len(h.Nodes), pl.name, len(pl.pods))
		res, err := h.runScenario(ctx, p, pl, led)
		if res != nil {
			fmt.Fprintf(h.Progress, "bench: %s %d nodes %s: %d ok, %d failed in %.1fs\n", p.Name(), len(h.Nodes), pl.name, res.ok, res.failed, res.wall.Seconds())
			if pl.report {
				results = append(results, res)
			}
		}
		if err != nil {
			return results, err
		}
		if ctx.Err() != nil {
			return results, fmt.Errorf("%s: stopped after %s: %w", p.Name(), pl.name, context.Cause(ctx))
		}
	}
	return results, nil
}

func serverVersion(env *testenv.Env) string {
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		return "?"
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		return "?"
	}
	return v.GitVersion
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
