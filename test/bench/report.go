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
	pods           int // ADDs attempted
	ok, failed     int
	wall           time.Duration
	lat            []time.Duration // successful ADDs
	latAt          []time.Duration // when each of lat started, from the first ADD's start
	dels, delsFail int
	delLat         []time.Duration
	requests       requestCounts // API requests during the timed phase
	errs           []string      // a few distinct failures
	violations     []string      // double allocations, addresses outside the pool
	load           string        // load average when timing started
	incomplete     bool          // the run's deadline cut the scenario short
	notes          []string      // what the peer's own side measured (Inspector)
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
		if c.err != nil || c.end.IsZero() {
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

// printTable writes one row per peer and scenario, the orbweaver/peer ratios, and the
// details under it.
func printTable(w io.Writer, results []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "peer\tscenario\tpods\twall\talloc/s\tADD p50\tp90\tp99\twrites/alloc\t409s\tfailed ADDs\t")
	for _, r := range results {
		wall := strconv.FormatFloat(r.wall.Seconds(), 'f', 1, 64) + "s"
		if r.incomplete {
			wall += " (cut)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.1f\t%s\t%s\t%s\t%.2f\t%.0f\t%d\t\n",
			r.peer, r.scenario, r.pods, wall, r.rate(),
			fmtDur(percentile(r.lat, 0.50)), fmtDur(percentile(r.lat, 0.90)), fmtDur(percentile(r.lat, 0.99)),
			r.perAlloc(r.requests.writes()), r.requests.conflicts(), r.failed)
	}
	_ = tw.Flush()

	for _, line := range ratios(results) {
		fmt.Fprintln(w, line)
	}

	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "%s %s: load average %s at start", r.peer, r.scenario, r.load)
		if r.dels > 0 {
			fmt.Fprintf(w, "; %d DELs overlapping the ADDs (in the wall time), DEL p50 %s p99 %s, %d failed",
				r.dels, fmtDur(percentile(r.delLat, 0.5)), fmtDur(percentile(r.delLat, 0.99)), r.delsFail)
		}
		fmt.Fprintln(w)
		if r.dels > 0 {
			fmt.Fprintf(w, "  writes per allocation (the DELs' writes included): %s\n", breakdown(r))
		} else {
			fmt.Fprintf(w, "  writes per allocation: %s\n", breakdown(r))
		}
		fmt.Fprintf(w, "  reads per allocation: %s\n", perAllocation(r, r.requests.readsByResource()))
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

// ratios returns, per scenario, orbweaver's allocations/s over each other peer's.
func ratios(results []*result) []string {
	var out []string
	for _, ob := range results {
		if ob.peer != "orbweaver" {
			continue
		}
		for _, r := range results {
			if r.peer == "orbweaver" || r.scenario != ob.scenario || r.rate() == 0 {
				continue
			}
			out = append(out, fmt.Sprintf("%s: orbweaver/%s allocations/s = %.1fx", r.scenario, r.peer, ob.rate()/r.rate()))
		}
	}
	return out
}

// breakdown lists writes per allocation by resource and verb, largest first.
func breakdown(r *result) string { return perAllocation(r, r.requests.writesByResource()) }

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
