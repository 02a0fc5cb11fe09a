package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// result is what one peer did in one scenario.
type result struct {
	peer, scenario string
	nodes          int
	pods           int // ADDs attempted
	ok, failed     int
	notRun         int // ADDs the scenario's deadline stopped or never started (cut)
	wall           time.Duration
	lat            []time.Duration // successful ADDs
	latAt          []time.Duration // when each of lat started, from the first ADD's start
	dels, delsFail int
	delLat         []time.Duration
	cost           costSnapshot // API server requests, CPU, watch bytes during the timed phase
	errs           []string     // a few distinct failures
	violations     []string     // double allocations, addresses outside the pool
	load           string       // load average when timing started
	incomplete     bool         // the run's deadline cut the scenario short
	notes          []string     // what the peer's own side measured (Inspector)
	skipped        string       // why the scenario was not timed (a prefill cut short, a peer that cannot run at this scale)
	leaks          int          // successful DELs whose address stayed recorded for their pod
	leakChecked    bool         // whether the peer can tell (Recorder) and there were DELs
	agentMem       float64      // bytes per node of the peer's node agents, 0 when none
	agentMemHow    string       // how agentMem was measured
}

const maxErrs = 5

func (r *result) addCalls(adds []call, pl *plan) {
	var first time.Time
	for _, c := range adds {
		if !c.start.IsZero() && (first.IsZero() || c.start.Before(first)) {
			first = c.start
		}
	}
	for i, c := range adds {
		if c.cut || c.end.IsZero() {
			r.notRun++
			continue
		}
		if c.err != nil {
			r.failed++
			r.noteErr(c.err)
			continue
		}
		r.ok++
		r.lat = append(r.lat, c.latency())
		r.latAt = append(r.latAt, c.start.Sub(first))
		pool := pl.pools[pl.pods[i].Pool]
		if !pool.Contains(c.ip) {
			r.violations = append(r.violations, fmt.Sprintf("%s got %s, outside pool %s (%s)", pl.pods[i], c.ip, pool.Name, pool.Range()))
		}
	}
}

func (r *result) delCalls(dels []call) {
	for _, c := range dels {
		r.dels++
		if c.err != nil || c.end.IsZero() {
			r.delsFail++
			r.noteErr(c.err)
			continue
		}
		r.delLat = append(r.delLat, c.latency())
	}
}

func (r *result) noteErr(err error) {
	msg := "not run"
	if err != nil {
		msg = err.Error()
	}
	if len(r.errs) < maxErrs && !slices.Contains(r.errs, msg) {
		r.errs = append(r.errs, msg)
	}
}

func (r *result) rate() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.ok) / r.wall.Seconds()
}

func (r *result) perAlloc(v float64) float64 {
	if r.ok == 0 {
		return 0
	}
	return v / float64(r.ok)
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of ds, or 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
}

// printTable writes one row per peer, node count and scenario, the ratios between peers,
// how each peer's costs grow with the node count, and the details under it.
func printTable(w io.Writer, results []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "peer\tnodes\tscenario\tpods\twall\talloc/s\tADD p50\tp99\tfailed ADDs\tDEL leaks\twrites/alloc\treads/alloc\t409s/alloc\twatch KB/alloc\tAPI CPU ms/alloc\tagent MB/node\t")
	for _, r := range results {
		if r.skipped != "" && r.ok == 0 {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\tskipped\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", r.peer, r.nodes, r.scenario, r.pods)
			continue
		}
		wall := strconv.FormatFloat(r.wall.Seconds(), 'f', 1, 64) + "s"
		if r.incomplete {
			wall += " (cut)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%.1f\t%s\t%s\t%d\t%s\t%.2f\t%.2f\t%.2f\t%s\t%.1f\t%s\t\n",
			r.peer, r.nodes, r.scenario, r.pods, wall, r.rate(),
			fmtDur(percentile(r.lat, 0.50)), fmtDur(percentile(r.lat, 0.99)), r.failed, r.leakColumn(),
			r.perAlloc(r.cost.server.requests.writes()), r.perAlloc(r.cost.server.requests.reads()), r.perAlloc(r.cost.server.requests.conflicts()),
			r.watchColumn(), 1000*r.perAlloc(r.cost.server.cpuSeconds), fmtMB(r.agentMem))
	}
	_ = tw.Flush()

	fmt.Fprintln(w)
	for _, line := range ratios(results) {
		fmt.Fprintln(w, line)
	}
	printGrowth(w, results)

	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "%s, %d nodes, %s: load average %s at start", r.peer, r.nodes, r.scenario, r.load)
		if r.dels > 0 {
			fmt.Fprintf(w, "; %d DELs before the ADDs (in the wall time), DEL p50 %s p99 %s, %d failed",
				r.dels, fmtDur(percentile(r.delLat, 0.5)), fmtDur(percentile(r.delLat, 0.99)), r.delsFail)
		}
		fmt.Fprintln(w)
		if r.skipped != "" {
			fmt.Fprintf(w, "  skipped: %s\n", r.skipped)
		}
		if r.notRun > 0 {
			fmt.Fprintf(w, "  cut by -scenario-timeout: %d ADDs stopped or never started, counted neither done nor failed\n", r.notRun)
		}
		if r.ok > 0 {
			if r.dels > 0 {
				fmt.Fprintf(w, "  writes per allocation (the DELs' writes included): %s\n", breakdown(r))
			} else {
				fmt.Fprintf(w, "  writes per allocation: %s\n", breakdown(r))
			}
			fmt.Fprintf(w, "  reads per allocation: %s\n", perAllocation(r, r.cost.server.requests.readsByResource()))
			fmt.Fprintf(w, "  %s\n", r.watchLine())
			fmt.Fprintf(w, "  CPU per allocation: API server %.1f ms, etcd %.1f ms, plugin execs %.1f ms, harness process %.1f ms (the in-process agents and controllers, the proxy, the harness); the machine was busy %.1f ms of %.1f ms (%d cores)\n",
				1000*r.perAlloc(r.cost.server.cpuSeconds), 1000*r.perAlloc(r.cost.etcdCPU), 1000*r.perAlloc(r.cost.children), 1000*r.perAlloc(r.cost.self),
				1000*r.perAlloc(r.cost.machine), 1000*r.perAlloc(r.wall.Seconds()*float64(runtime.NumCPU())), runtime.NumCPU())
			if r.agentMemHow != "" {
				fmt.Fprintf(w, "  agent memory: %s per node (%s)\n", fmtMB(r.agentMem), r.agentMemHow)
			}
		}
		if line := r.tail(); line != "" {
			fmt.Fprintf(w, "  %s\n", line)
		}
		for _, n := range r.notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
		for _, e := range r.errs {
			fmt.Fprintf(w, "  failure: %s\n", e)
		}
		for _, v := range r.violations {
			fmt.Fprintf(w, "  VIOLATION: %s\n", v)
		}
	}
}

// watchColumn is the KB sent to watchers per allocation, or "-" when nothing counted
// (-count-watch-bytes=false).
func (r *result) watchColumn() string {
	if r.cost.proxy.watch == 0 && r.cost.proxy.other == 0 {
		return "-"
	}
	return fmtKB(r.perAlloc(float64(r.cost.proxy.watch)))
}

// leakColumn is the DEL leaks, or "-" when the scenario had no DELs or the peer cannot tell.
func (r *result) leakColumn() string {
	if !r.leakChecked {
		return "-"
	}
	return strconv.Itoa(r.leaks)
}

// watchLine says what the watchers received per allocation, by resource, and what the
// API server's own metrics would suggest.
func (r *result) watchLine() string {
	p := r.cost.proxy
	keys := make([]string, 0, len(p.byWatch))
	for k := range p.byWatch {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return p.byWatch[keys[i]] > p.byWatch[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %s", k, fmtKB(r.perAlloc(float64(p.byWatch[k])))))
	}
	by := "none"
	if len(parts) > 0 {
		by = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("sent to watchers per allocation (KB, counted by the harness's proxy): %s; other responses %s KB; "+
		"the API server's own metrics: %.0f watch events sent per allocation, about %s KB",
		by, fmtKB(r.perAlloc(float64(p.other))), r.perAlloc(sum(r.cost.server.watchEvents)), fmtKB(r.perAlloc(r.cost.server.estimatedWatchBytes())))
}

// percent formats a ratio as a percentage, with a decimal below 10 %.
func percent(f float64) string {
	if f < 0.1 {
		return strconv.FormatFloat(100*f, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(100*f, 'f', 0, 64) + "%"
}

func sum(m map[string]float64) float64 {
	var n float64
	for _, v := range m {
		n += v
	}
	return n
}

func fmtKB(b float64) string {
	switch {
	case b == 0:
		return "0"
	case b < 10*1024:
		return strconv.FormatFloat(b/1024, 'f', 2, 64)
	default:
		return strconv.FormatFloat(b/1024, 'f', 0, 64)
	}
}

func fmtMB(b float64) string {
	if b == 0 {
		return "-"
	}
	return strconv.FormatFloat(b/(1<<20), 'f', 1, 64)
}

// ratios returns, per node count and scenario, orbweaver's allocations/s over each
// other peer's, and each peer's over the floor's.
func ratios(results []*result) []string {
	var out []string
	for _, ob := range results {
		if ob.peer != "orbweaver" || ob.rate() == 0 {
			continue
		}
		for _, r := range results {
			if r.peer == "orbweaver" || r.peer == "floor" || r.scenario != ob.scenario || r.nodes != ob.nodes || r.rate() == 0 {
				continue
			}
			out = append(out, fmt.Sprintf("%d nodes, %s: orbweaver/%s allocations/s = %.1fx", r.nodes, r.scenario, r.peer, ob.rate()/r.rate()))
		}
	}
	for _, fl := range results {
		if fl.peer != "floor" || fl.rate() == 0 {
			continue
		}
		for _, r := range results {
			if r.peer == "floor" || r.scenario != fl.scenario || r.nodes != fl.nodes || r.skipped != "" {
				continue
			}
			out = append(out, fmt.Sprintf("%d nodes, %s: %s reaches %s of the floor's allocations/s (%.1f of %.1f)", r.nodes, r.scenario, r.peer, percent(r.rate()/fl.rate()), r.rate(), fl.rate()))
		}
	}
	return out
}

// printGrowth prints, for each peer and scenario measured at more than one node count,
// how its figures change with the node count.
func printGrowth(w io.Writer, results []*result) {
	type key struct{ peer, scenario string }
	by := map[key][]*result{}
	var order []key
	for _, r := range results {
		k := key{r.peer, r.scenario}
		if by[k] == nil {
			order = append(order, k)
		}
		by[k] = append(by[k], r)
	}
	for _, k := range order {
		rs := by[k]
		if len(rs) < 2 {
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].nodes < rs[j].nodes })
		fmt.Fprintf(w, "\n%s %s by node count:\n", k.peer, k.scenario)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		head := "\t"
		for _, r := range rs {
			head += fmt.Sprintf("%d nodes\t", r.nodes)
		}
		fmt.Fprintln(tw, head)
		rows := []struct {
			name string
			f    func(r *result) string
		}{
			{"alloc/s", func(r *result) string { return fmt.Sprintf("%.1f", r.rate()) }},
			{"failed ADDs", func(r *result) string { return strconv.Itoa(r.failed) }},
			{"ADD p50 / p99", func(r *result) string {
				return fmtDur(percentile(r.lat, 0.5)) + " / " + fmtDur(percentile(r.lat, 0.99))
			}},
			{"writes/alloc", func(r *result) string { return fmt.Sprintf("%.2f", r.perAlloc(r.cost.server.requests.writes())) }},
			{"409s/alloc", func(r *result) string { return fmt.Sprintf("%.2f", r.perAlloc(r.cost.server.requests.conflicts())) }},
			{"watch KB/alloc", (*result).watchColumn},
			{"API CPU ms/alloc", func(r *result) string { return fmt.Sprintf("%.1f", 1000*r.perAlloc(r.cost.server.cpuSeconds)) }},
			{"agent MB/node", func(r *result) string { return fmtMB(r.agentMem) }},
		}
		for _, row := range rows {
			line := row.name + "\t"
			for _, r := range rs {
				if r.skipped != "" && r.ok == 0 {
					line += "skipped\t"
					continue
				}
				line += row.f(r) + "\t"
			}
			fmt.Fprintln(tw, line)
		}
		_ = tw.Flush()
	}
}

// breakdown lists writes per allocation by resource and verb, largest first.
func breakdown(r *result) string { return perAllocation(r, r.cost.server.requests.writesByResource()) }

func perAllocation(r *result, by map[string]float64) string {
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if by[keys[i]] != by[keys[j]] {
			return by[keys[i]] > by[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, r.perAlloc(by[k])))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// machine describes the machine and toolchain for the report's header.
func machine() []string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	mem := "unknown"
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
					mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
			}
		}
	}
	return []string{
		fmt.Sprintf("machine: %d CPUs (nproc), %s, %s memory, load average %s", runtime.NumCPU(), model, mem, loadAverage()),
		fmt.Sprintf("go: %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH),
	}
}

// loadAverage is the 1, 5 and 15 minute load average, or "?".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "?"
}

// binaryVersion runs `path --version` and returns its first line, or "?".
func binaryVersion(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.Replace(line, " Version:", "", 1) // etcd says "etcd Version: 3.4.23"

}

// tail says when the slowest 1% of ADDs started, to tell a slow start from a slow end.
func (r *result) tail() string {
	p99 := percentile(r.lat, 0.99)
	var at []time.Duration
	for i, l := range r.lat {
		if l >= p99 {
			at = append(at, r.latAt[i])
		}
	}
	if len(at) == 0 {
		return ""
	}
	slices.Sort(at)
	return fmt.Sprintf("the %d ADDs at or above p99 started %s to %s after the first ADD (median %s)",
		len(at), fmtDur(at[0]), fmtDur(at[len(at)-1]), fmtDur(at[len(at)/2]))
}
