package main

import (
	"context"
	"errors"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLayoutPools(t *testing.T) {
	tests := []struct {
		name        string
		count, size int
		next        string
		want        []string // "prefix first-last"
		wantNext    string
		wantErr     bool
	}{
		{name: "1000 in a /22", count: 1, size: 1000, next: "10.128.0.0",
			want: []string{"10.128.0.0/22 10.128.0.1-10.128.3.232"}, wantNext: "10.128.4.0"},
		{name: "1022 still fit a /22", count: 1, size: 1022, next: "10.128.0.0",
			want: []string{"10.128.0.0/22 10.128.0.1-10.128.3.254"}, wantNext: "10.128.4.0"},
		{name: "1023 need a /21", count: 1, size: 1023, next: "10.128.0.0",
			want: []string{"10.128.0.0/21 10.128.0.1-10.128.3.255"}, wantNext: "10.128.8.0"},
		{name: "ten of 100, aligned after an earlier block", count: 10, size: 100, next: "10.128.4.0",
			want: []string{
				"10.128.4.0/25 10.128.4.1-10.128.4.100", "10.128.4.128/25 10.128.4.129-10.128.4.228",
				"10.128.5.0/25 10.128.5.1-10.128.5.100", "10.128.5.128/25 10.128.5.129-10.128.5.228",
				"10.128.6.0/25 10.128.6.1-10.128.6.100", "10.128.6.128/25 10.128.6.129-10.128.6.228",
				"10.128.7.0/25 10.128.7.1-10.128.7.100", "10.128.7.128/25 10.128.7.129-10.128.7.228",
				"10.128.8.0/25 10.128.8.1-10.128.8.100", "10.128.8.128/25 10.128.8.129-10.128.8.228",
			}, wantNext: "10.128.9.0"},
		{name: "unaligned start rounds up", count: 1, size: 20, next: "10.128.0.5",
			want: []string{"10.128.0.32/27 10.128.0.33-10.128.0.52"}, wantNext: "10.128.0.64"},
		{name: "one address", count: 1, size: 1, next: "10.128.0.0",
			want: []string{"10.128.0.0/30 10.128.0.1-10.128.0.1"}, wantNext: "10.128.0.4"},
		{name: "too big", count: 1, size: 1 << 24, next: "10.128.0.0", wantErr: true},
		{name: "past the end", count: 2, size: 1 << 22, next: "10.128.0.0", wantErr: true},
		{name: "empty pools", count: 1, size: 0, next: "10.128.0.0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pools, next, err := layoutPools("p", tt.count, tt.size, netip.MustParseAddr(tt.next))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %v", pools)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, p := range pools {
				got = append(got, p.Prefix.String()+" "+p.Range())
				if n := countRange(p.First, p.Last); n != tt.size || p.Size != tt.size {
					t.Errorf("pool %d holds %d addresses (Size %d), want %d", i, n, p.Size, tt.size)
				}
				if !p.Prefix.Contains(p.First) || !p.Prefix.Contains(p.Last) || p.First == p.Prefix.Addr() {
					t.Errorf("pool %d range %s not among the hosts of %s", i, p.Range(), p.Prefix)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if next.String() != tt.wantNext {
				t.Errorf("next %s, want %s", next, tt.wantNext)
			}
		})
	}
}

func countRange(first, last netip.Addr) int {
	n := 1
	for a := first; a != last; a = a.Next() {
		n++
	}
	return n
}

func TestBuildPlans(t *testing.T) {
	nodes := []string{"n0", "n1", "n2"}
	sz := sizes{pods: 30, largeSize: 1000, largePrefill: 200, churnRate: 2, churnDuration: 10 * time.Second, churnFill: 0.9}
	tests := []struct {
		name     string
		selected []string
		want     []string // name:report:prefill:pods:pools
	}{
		{name: "all", selected: scenarioNames(), want: []string{
			"one-pool:true:0:30:1", "recreate:true:0:30:1", "ten-pools:true:0:30:10", "large-pool:true:200:30:1", "churn:true:27:20:1",
		}},
		{name: "recreate pulls in one-pool unreported", selected: []string{"recreate"}, want: []string{"one-pool:false:0:30:1", "recreate:true:0:30:1"}},
		{name: "ten-pools alone", selected: []string{"ten-pools"}, want: []string{"ten-pools:true:0:30:10"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plans, err := buildPlans(tt.selected, nodes, sz, "ns")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			byName := map[string]*plan{}
			for _, p := range plans {
				byName[p.name] = p
				got = append(got, strings.Join([]string{p.name, strconv.FormatBool(p.report), strconv.Itoa(len(p.prefill)), strconv.Itoa(len(p.pods)), strconv.Itoa(len(p.pools))}, ":"))
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if rc := byName["recreate"]; rc != nil {
				op := byName["one-pool"]
				if !rc.reused || !slices.Equal(rc.replace, op.pods) || rc.pools[0] != op.pools[0] {
					t.Errorf("recreate must replace one-pool's pods in one-pool's pool")
				}
				for i := range rc.pods {
					if rc.pods[i].Node != rc.replace[i].Node || rc.pods[i].Name == rc.replace[i].Name || rc.pods[i].ContainerID == rc.replace[i].ContainerID {
						t.Errorf("replacement %d: %+v for %+v", i, rc.pods[i], rc.replace[i])
					}
				}
			}
			if lp := byName["large-pool"]; lp != nil && lp.pools[0].Size != 1000 {
				t.Errorf("large-pool's pool holds %d addresses, want 1000", lp.pools[0].Size)
			}
			if ch := byName["churn"]; ch != nil {
				if ch.rate != 2 || ch.pools[0].Size != 30 || len(ch.replace) != 20 {
					t.Errorf("churn: rate %v, pool of %d, %d replaced; want 2, 30, 20", ch.rate, ch.pools[0].Size, len(ch.replace))
				}
				for i := range ch.pods {
					if ch.replace[i] != ch.prefill[i] || ch.pods[i].Node != ch.replace[i].Node {
						t.Errorf("churn pair %d replaces %s on %s with %s on %s; want the prefilled pod %d, same node",
							i, ch.replace[i], ch.replace[i].Node, ch.pods[i], ch.pods[i].Node, i)
					}
				}
			}
			// Pools of one run never overlap.
			var all []Pool
			for _, p := range plans {
				if !p.reused {
					all = append(all, p.pools...)
				}
			}
			for i := range all {
				for j := range i {
					if all[i].Prefix.Overlaps(all[j].Prefix) {
						t.Errorf("pools %s (%s) and %s (%s) overlap", all[i].Name, all[i].Prefix, all[j].Name, all[j].Prefix)
					}
				}
			}
		})
	}
}

func TestBuildPlansRefusesSizesThatCannotWork(t *testing.T) {
	base := sizes{pods: 100, largeSize: 1000, largePrefill: 200, churnRate: 1, churnDuration: 10 * time.Second, churnFill: 0.5}
	tests := []struct {
		name    string
		mod     func(*sizes)
		wantErr string
	}{
		{name: "prefill and timed ADDs overflow the large pool", mod: func(s *sizes) { s.largePrefill = 950 }, wantErr: "do not fit a pool of 1000"},
		{name: "more churn pairs than prefilled pods", mod: func(s *sizes) { s.churnRate = 10 }, wantErr: "lower -churn-rate"},
		{name: "churn pool filled to the brim", mod: func(s *sizes) { s.churnFill = 1 }, wantErr: "filled to between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sz := base
			tt.mod(&sz)
			_, err := buildPlans(scenarioNames(), []string{"n0"}, sz, "ns")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRunAtRateRunsEveryJobOnItsNode(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	var mu sync.Mutex
	ran := map[string][]int{}
	var jobs []job
	for i := range 30 {
		node := nodes[i%3]
		jobs = append(jobs, job{node: node, run: func(context.Context) {
			mu.Lock()
			ran[node] = append(ran[node], i)
			mu.Unlock()
		}})
	}
	runAtRate(context.Background(), nodes, 1, jobs, 1000)
	for i, n := range nodes {
		want := []int{i, i + 3, i + 6, i + 9, i + 12, i + 15, i + 18, i + 21, i + 24, i + 27}
		if !slices.Equal(ran[n], want) {
			t.Errorf("node %s ran %v, want %v in order", n, ran[n], want)
		}
	}
	// Once the context ends, the rest start at once and are still accounted for.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var count atomic.Int64
	for i := range jobs {
		jobs[i].run = func(context.Context) { count.Add(1) }
	}
	runAtRate(ctx, nodes, 2, jobs, 0.001) // a job every 1000 s, were the context alive
	if count.Load() != 30 {
		t.Errorf("%d jobs ran after the context ended, want all 30", count.Load())
	}
}

func TestMakePodsSpreadsNodesAndPools(t *testing.T) {
	nodes := []string{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"}
	pods := makePods("ns", "p", 1000, nodes, 10)
	perNode := map[string]int{}
	perNodePool := map[string]map[int]int{}
	for _, p := range pods {
		perNode[p.Node]++
		if perNodePool[p.Node] == nil {
			perNodePool[p.Node] = map[int]int{}
		}
		perNodePool[p.Node][p.Pool]++
	}
	for _, n := range nodes {
		if perNode[n] != 100 || len(perNodePool[n]) != 10 {
			t.Errorf("node %s: %d pods over %d pools, want 100 over 10", n, perNode[n], len(perNodePool[n]))
		}
		for pool, c := range perNodePool[n] {
			if c != 10 {
				t.Errorf("node %s pool %d: %d pods, want 10", n, pool, c)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var out []time.Duration
		for _, v := range vs {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: percentile must sort
	}
	tests := []struct {
		name string
		ds   []time.Duration
		q    float64
		want time.Duration
	}{
		{name: "none", ds: nil, q: 0.5, want: 0},
		{name: "one", ds: ms(7), q: 0.99, want: 7 * time.Millisecond},
		{name: "p50 of 100", ds: ms(hundred...), q: 0.5, want: 50 * time.Millisecond},
		{name: "p90 of 100", ds: ms(hundred...), q: 0.9, want: 90 * time.Millisecond},
		{name: "p99 of 100", ds: ms(hundred...), q: 0.99, want: 99 * time.Millisecond},
		{name: "p50 of 3", ds: ms(3, 1, 2), q: 0.5, want: 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.ds, tt.q); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRequestCounts(t *testing.T) {
	text := `# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 30
apiserver_request_total{code="409",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 4
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 1e+03
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="APPLY",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 99
apiserver_request_total{code="200",component="a\"b,c",dry_run="",group="",resource="nodes",scope="cluster",subresource="",verb="DELETE",version="v1"} 1 1700000000000
apiserver_request_duration_seconds_bucket{verb="PUT",le="0.1"} 5
`
	before := `apiserver_request_total{code="200",group="coordination.k8s.io",resource="leases",subresource="",verb="PUT"} 10
`
	got, err := parseRequestCounts([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseRequestCounts([]byte(before))
	if err != nil {
		t.Fatal(err)
	}
	d := got.sub(b)
	if w := d.writes(); w != 20+4+1000+2+1 {
		t.Errorf("writes %v, want 1027", w)
	}
	if c := d.conflicts(); c != 4 {
		t.Errorf("conflicts %v, want 4", c)
	}
	by := d.writesByResource()
	if by["leases PUT"] != 24 || by["pods/status APPLY"] != 2 || by["pods POST"] != 1000 || by["nodes DELETE"] != 1 || len(by) != 4 {
		t.Errorf("by resource %v", by)
	}

	for _, bad := range []string{
		`apiserver_request_total{code="200" 1`,
		`apiserver_request_total{code=200} 1`,
		`apiserver_request_total{code="200"} x`,
		`apiserver_request_total{code="200"}`,
	} {
		if _, err := parseRequestCounts([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestOverlaps(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ip := netip.MustParseAddr("10.0.0.1")
	other := netip.MustParseAddr("10.0.0.2")
	tests := []struct {
		name string
		held []*holding
		want int
	}{
		{name: "distinct addresses", held: []*holding{{pod: "a", ip: ip, from: at(0)}, {pod: "b", ip: other, from: at(0)}}},
		{name: "reuse after release", held: []*holding{{pod: "a", ip: ip, from: at(0), to: at(5)}, {pod: "b", ip: ip, from: at(6)}}},
		{name: "reuse when the release began (DEL still running)", held: []*holding{{pod: "a", ip: ip, from: at(0), to: at(5)}, {pod: "b", ip: ip, from: at(5)}}},
		{name: "twice while held", held: []*holding{{pod: "a", ip: ip, from: at(0)}, {pod: "b", ip: ip, from: at(1)}}, want: 1},
		{name: "handed out before the DEL began", held: []*holding{{pod: "a", ip: ip, from: at(0), to: at(5)}, {pod: "b", ip: ip, from: at(4)}}, want: 1},
		{name: "a long holder covers later short ones", held: []*holding{
			{pod: "a", ip: ip, from: at(0), to: at(10)}, {pod: "b", ip: ip, from: at(1), to: at(2)}, {pod: "c", ip: ip, from: at(3)},
		}, want: 2},
		{name: "chain of clean reuses", held: []*holding{
			{pod: "c", ip: ip, from: at(20)}, {pod: "a", ip: ip, from: at(0), to: at(10)}, {pod: "b", ip: ip, from: at(11), to: at(19)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := overlaps(tt.held); len(got) != tt.want {
				t.Errorf("got %q, want %d violations", got, tt.want)
			}
		})
	}
}

func TestResultIPAndPluginOutput(t *testing.T) {
	ips, err := resultIPs([]byte(`{"cniVersion":"1.0.0","ips":[{"address":"10.128.0.7/22"}],"dns":{}}`))
	if err != nil || !slices.Equal(ips, []netip.Prefix{netip.MustParsePrefix("10.128.0.7/22")}) {
		t.Errorf("resultIPs = %v, %v", ips, err)
	}
	dual := `{"cniVersion":"1.0.0","ips":[{"address":"10.128.0.7/22"},{"address":"fd00:10:128::7/120"}]}`
	ips, err = resultIPs([]byte(dual))
	if err != nil || !slices.Equal(ips, []netip.Prefix{netip.MustParsePrefix("10.128.0.7/22"), netip.MustParsePrefix("fd00:10:128::7/120")}) {
		t.Errorf("resultIPs(dual-stack) = %v, %v", ips, err)
	}
	for _, bad := range []string{``, `{}`, `{"ips":[{"address":"10.1.1.1"}]}`, `{"ips":[{"address":"10.1.1.1/24"},{"address":"fd00::1"}]}`} {
		if _, err := resultIPs([]byte(bad)); err == nil {
			t.Errorf("resultIPs(%q): want an error", bad)
		}
	}
	got := pluginOutput([]byte(`{"code":999,"msg":"config file not found"}`), []byte("line1\nlast line\n"))
	if got != ": CNI error 999: config file not found: stderr: line1 | last line" {
		t.Errorf("pluginOutput = %q", got)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults", args: nil},
		{name: "whereabouts alone", args: []string{"-peers", "whereabouts", "-pods", "200", "-scenarios", "one-pool"}},
		{name: "unknown peer", args: []string{"-peers", "calico"}, wantErr: `unknown peer "calico"`},
		{name: "peer twice", args: []string{"-peers", "whereabouts,whereabouts"}, wantErr: "named twice"},
		{name: "unknown scenario", args: []string{"-scenarios", "two-pools"}, wantErr: `unknown scenario "two-pools"`},
		{name: "no nodes", args: []string{"-nodes", "0"}, wantErr: "not a positive count"},
		{name: "node counts twice", args: []string{"-nodes", "10,10"}, wantErr: "named twice"},
		{name: "scale subset", args: []string{"-peers", "orbweaver,spiderpool", "-nodes", "500,10", "-scenarios", "one-pool,churn"}},
		{name: "churn that cannot fit", args: []string{"-scenarios", "churn", "-pods", "100", "-churn-rate", "100"}, wantErr: "lower -churn-rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, &strings.Builder{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.args == nil && (!slices.Equal(o.nodes, []int{10, 100, 500}) || o.sizes.pods != 1000 || o.parallel != 8 ||
					!slices.Equal(o.peers, []string{"floor", "orbweaver", "spiderpool", "whereabouts"}) || !slices.Equal(o.scenarios, scenarioNames())) {
					t.Errorf("defaults: %+v", o)
				}
				if tt.name == "scale subset" && !slices.Equal(o.nodes, []int{10, 500}) {
					t.Errorf("-nodes 500,10 gave %v, want them in increasing order", o.nodes)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWhereaboutsNetConf(t *testing.T) {
	w := &whereabouts{dir: "/tmp/wb"}
	pools, _, err := layoutPools("one-pool", 1, 1000, netip.MustParseAddr("10.128.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := w.netConf(pools[0], "/tmp/kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cniVersion":"1.0.0","name":"bench","type":"whereabouts","ipam":{"type":"whereabouts","range":"10.128.0.0/22",` +
		`"range_start":"10.128.0.1","range_end":"10.128.3.232","log_level":"error","configuration_path":"/tmp/wb/whereabouts.conf",` +
		`"kubernetes":{"kubeconfig":"/tmp/kubeconfig"}}}`
	if string(conf) != want {
		t.Errorf("got  %s\nwant %s", conf, want)
	}
}

func TestParseServerMetrics(t *testing.T) {
	text := `# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
apiserver_request_total{code="201",group="spiderpool.spidernet.io",resource="spiderendpoints",subresource="",verb="POST"} 7
apiserver_watch_events_total{group="spiderpool.spidernet.io",kind="SpiderIPPool",version="v2beta1"} 100
apiserver_watch_events_sizes_sum{group="spiderpool.spidernet.io",kind="SpiderIPPool",version="v2beta1"} 4096
apiserver_watch_events_sizes_count{group="spiderpool.spidernet.io",kind="SpiderIPPool",version="v2beta1"} 4
apiserver_watch_events_sizes_bucket{group="spiderpool.spidernet.io",kind="SpiderIPPool",version="v2beta1",le="1024"} 4
`
	m, err := parseServerMetrics([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	before, err := parseServerMetrics([]byte("process_cpu_seconds_total 2.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := m.sub(before)
	if d.cpuSeconds != 10 || d.requests.writes() != 7 {
		t.Errorf("cpu %v, writes %v; want 10 and 7", d.cpuSeconds, d.requests.writes())
	}
	// 100 events sent, of a mean serialized size of 1024 bytes.
	if got := d.estimatedWatchBytes(); got != 100*1024 {
		t.Errorf("estimated watch bytes %v, want %v", got, 100*1024)
	}
	if _, err := parseServerMetrics([]byte("process_cpu_seconds_total x\n")); err == nil {
		t.Error("a malformed CPU value: want an error")
	}
}

func TestResourceOfAndIsWatch(t *testing.T) {
	tests := []struct {
		url, resource string
		watch         bool
	}{
		{"/apis/spiderpool.spidernet.io/v2beta1/spiderippools?watch=true&resourceVersion=5", "spiderippools", true},
		{"/apis/spiderpool.spidernet.io/v2beta1/namespaces/ns/spiderendpoints?watch=1", "spiderendpoints", true},
		{"/apis/spiderpool.spidernet.io/v2beta1/namespaces/ns/spiderendpoints/pod-1", "spiderendpoints", false},
		{"/api/v1/pods?fieldSelector=spec.nodeName%3Dn1&watch=true", "pods", true},
		{"/api/v1/namespaces", "namespaces", false},
		{"/api/v1/namespaces/kube-system", "namespaces", false},
		{"/api/v1/watch/namespaces/ns/pods", "pods", true},
		{"/apis/spiderpool.spidernet.io/v2beta1/spiderippools/p/status", "spiderippools", false},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := resourceOf(u.Path); got != tt.resource {
			t.Errorf("resourceOf(%s) = %q, want %q", u.Path, got, tt.resource)
		}
		if got := isWatch(u); got != tt.watch {
			t.Errorf("isWatch(%s) = %v, want %v", tt.url, got, tt.watch)
		}
	}
}

func TestPrintTableShowsEveryPeerAndTheGrowth(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	mk := func(peer string, nodes, ok int, wall time.Duration) *result {
		r := &result{peer: peer, scenario: "one-pool", nodes: nodes, pods: ok, ok: ok, wall: wall, load: "1.0 1.0 1.0"}
		for range ok {
			r.lat = append(r.lat, ms(100))
			r.latAt = append(r.latAt, 0)
		}
		r.cost.server.cpuSeconds = float64(ok) * 0.002
		r.cost.proxy.watch = int64(ok) * 2048
		return r
	}
	results := []*result{
		mk("floor", 10, 100, time.Second), mk("orbweaver", 10, 100, 2*time.Second), mk("spiderpool", 10, 100, 20*time.Second),
		mk("orbweaver", 100, 100, 4*time.Second),
		{peer: "spiderpool", scenario: "one-pool", nodes: 100, pods: 100, skipped: "needs more memory"},
	}
	var b strings.Builder
	printTable(&b, results)
	out := b.String()
	for _, want := range []string{
		"10 nodes, one-pool: orbweaver/spiderpool allocations/s = 10.0x",
		"10 nodes, one-pool: orbweaver reaches 50% of the floor's allocations/s",
		"orbweaver one-pool by node count:",
		"spiderpool one-pool by node count:",
		"skipped: needs more memory",
		"2.00", // watch KB per allocation
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestAddCallsKeepsCutApartFromFailures(t *testing.T) {
	pools, _, err := layoutPools("p", 1, 10, netip.MustParseAddr("10.128.0.0"))
	if err != nil {
		t.Fatal(err)
	}
	pl := &plan{pools: pools, pods: makePods("ns", "p", 4, []string{"n"}, 1)}
	t0 := time.Unix(1000, 0)
	adds := []call{
		{start: t0, end: t0.Add(time.Millisecond), ip: netip.MustParseAddr("10.128.0.1")},
		{start: t0, end: t0.Add(time.Millisecond), err: errors.New("pool exhausted")},
		{start: t0, end: t0.Add(time.Millisecond), err: context.DeadlineExceeded, cut: true},
		{start: t0, end: t0.Add(time.Millisecond), ip: netip.MustParseAddr("10.129.0.1")},
	}
	r := &result{}
	r.addCalls(adds, pl)
	if r.ok != 2 || r.failed != 1 || r.notRun != 1 {
		t.Errorf("ok %d, failed %d, not run %d; want 2, 1, 1", r.ok, r.failed, r.notRun)
	}
	if len(r.violations) != 1 || !strings.Contains(r.violations[0], "10.129.0.1") {
		t.Errorf("violations %q, want the address outside the pool", r.violations)
	}
}
