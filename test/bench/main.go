// Command bench measures how fast IPAM plugins hand out addresses against a real API
// server. It plays N simulated nodes against one kube-apiserver + etcd on 127.0.0.1
// (pkg/testenv), creates the Node and Pod objects first (bound with spec.nodeName, run by
// no kubelet), then execs each peer's CNI plugin once per pod sandbox, as a container
// runtime calls an IPAM plugin through libcni, at most -parallel at a time per node. Per
// peer and scenario it reports allocations/s, ADD latency, API writes per allocation and
// 409 conflicts (from the API server's apiserver_request_total), and it fails loudly when
// an address is handed out twice.
//
//	go run ./test/bench -peers whereabouts -pods 200 -scenarios one-pool
//
// Scenarios (all by default, in this order):
//
//	one-pool   -pods pods from one pool of exactly -pods addresses, round-robin over the nodes
//	recreate   after one-pool: every pod is DELeted and a replacement (new Pod UID, new
//	           container) ADDed on the same node, each node doing -parallel of these at a
//	           time, so releases and allocations overlap; the ADDs are measured
//	ten-pools  10 pools of -pods/10 addresses, -pods/10 pods from each
//
// Peers: whereabouts (built by `tools/ensure.sh whereabouts`) and orbweaver (not wired
// yet: peer_orbweaver.go). -timeout bounds the whole run.
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
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/orbweaver-ipam/orbweaver/pkg/testenv"
)

type options struct {
	peers         []string
	scenarios     []string
	nodes         int
	pods          int
	parallel      int
	timeout       time.Duration
	opTimeout     time.Duration
	serverOutput  bool
	reserveSize   int
	rebindDelay   time.Duration
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
	peers := fs.String("peers", "orbweaver,whereabouts", "comma-separated peers to run: "+strings.Join(sortedKeys(peerConstructors()), ", "))
	scenarios := fs.String("scenarios", strings.Join(scenarioNames(), ","), "comma-separated scenarios: "+strings.Join(scenarioNames(), ", "))
	fs.IntVar(&o.nodes, "nodes", 10, "simulated nodes")
	fs.IntVar(&o.pods, "pods", 1000, "pods per scenario (one-pool's pool has exactly this many addresses)")
	fs.IntVar(&o.parallel, "parallel", 8, "CNI calls at once per node")
	fs.DurationVar(&o.timeout, "timeout", 20*time.Minute, "bound on the whole run")
	fs.DurationVar(&o.opTimeout, "op-timeout", 3*time.Minute, "bound on each plugin exec")
	fs.BoolVar(&o.serverOutput, "server-output", false, "show the API server's and etcd's logs")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the harness process (its agents included) to this file")
	fs.StringVar(&o.apiProfile, "apiserver-cpuprofile", "", "profile the API server during each scenario; files are <this>-<peer>-<scenario>.pprof")
	fs.DurationVar(&o.apiProfileFor, "apiserver-profile-for", 5*time.Second, "how long each API server profile runs from the start of timing")
	fs.IntVar(&o.reserveSize, "orbweaver-reserve-size", 0, "orbweaver agents' --reserve-size (0: the agent's default)")
	fs.DurationVar(&o.rebindDelay, "orbweaver-rebind-delay", 0, "orbweaver agents' --reserve-rebind-delay (0: the agent's default)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.peers = splitList(*peers)
	o.scenarios = splitList(*scenarios)
	var errs []error
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
	if o.nodes < 1 || o.pods < 1 || o.parallel < 1 || o.timeout <= 0 || o.opTimeout <= 0 {
		errs = append(errs, errors.New("-nodes, -pods, -parallel, -timeout and -op-timeout must be positive"))
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
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "bench: cpu profile:", err)
			return 1
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	// Every peer must be runnable before any server starts.
	var peers []Peer
	var errs []error
	for _, name := range opts.peers {
		p, err := peerConstructors()[name](PeerParams{BinDir: filepath.Join(root, "bin"), ReserveSize: opts.reserveSize, RebindDelay: opts.rebindDelay})
		if err == nil {
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

// bench starts the API server, runs every peer through the scenarios and returns the
// results gathered so far, also on error.
func bench(ctx context.Context, opts options, peers []Peer, stdout, stderr io.Writer) (results []*result, err error) {
	for _, line := range machine() {
		fmt.Fprintln(stdout, line)
	}
	env, err := testenv.Start(testenv.Options{ShowServerOutput: opts.serverOutput})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, env.Stop()) }()

	fmt.Fprintf(stdout, "servers: kube-apiserver %s, %s (127.0.0.1 only)\n", serverVersion(env), binaryVersion(ctx, filepath.Join(env.BinDir, "etcd")))
	fmt.Fprintf(stdout, "run: %d nodes, %d pods, %d CNI calls at once per node (%d in all), scenarios %s\n",
		opts.nodes, opts.pods, opts.parallel, opts.nodes*opts.parallel, strings.Join(opts.scenarios, ","))
	for _, p := range peers {
		bin, err := filepath.EvalSymlinks(p.Binary())
		if err != nil {
			bin = p.Binary()
		}
		fmt.Fprintf(stdout, "peer %s: %s\n", p.Name(), bin)
	}

	h := &Harness{Env: env, Dir: filepath.Join(env.Dir(), "bench"), Parallel: opts.parallel, OpTimeout: opts.opTimeout, Progress: stderr,
		APIServerProfile: opts.apiProfile, APIServerProfileFor: opts.apiProfileFor}
	for i := range opts.nodes {
		h.Nodes = append(h.Nodes, fmt.Sprintf("bench-node-%02d", i))
	}
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := h.createNodes(ctx); err != nil {
		return nil, err
	}

	for _, p := range peers {
		rs, err := h.runPeer(ctx, p, opts)
		results = append(results, rs...)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// runPeer runs one peer through the selected scenarios and tears it down.
func (h *Harness) runPeer(ctx context.Context, p Peer, opts options) (results []*result, err error) {
	defer func() {
		// Cleanup survives the run's deadline, with a bound of its own.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if terr := p.Teardown(tctx); terr != nil {
			err = errors.Join(err, fmt.Errorf("%s: teardown: %w", p.Name(), terr))
		}
	}()
	ns := "bench-" + p.Name()
	if err := h.ensureNamespace(ctx, ns); err != nil {
		return nil, err
	}
	plans, err := buildPlans(opts.scenarios, h.Nodes, opts.pods, ns)
	if err != nil {
		return nil, err
	}
	led := newLedger()
	for _, pl := range plans {
		fmt.Fprintf(h.Progress, "bench: %s %s: %d ADDs on %d nodes...\n", p.Name(), pl.name, len(pl.pods), len(h.Nodes))
		res, err := h.runScenario(ctx, p, pl, led)
		if res != nil {
			fmt.Fprintf(h.Progress, "bench: %s %s: %d ok, %d failed in %.1fs\n", p.Name(), pl.name, res.ok, res.failed, res.wall.Seconds())
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
