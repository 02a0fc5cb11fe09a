package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// orbweaver is this repository's IPAM: one real node agent per simulated node, running in
// this process against the shared API server, each serving its own unix socket, and the
// real `orbweaver` CNI plugin (bin/orbweaver, `make build`) exec'd per ADD and DEL.
type orbweaver struct {
	binary string

	client  client.Client
	dir     string            // the agents' sockets
	sockets map[string]string // node -> agent socket
	pools   []Pool
	stop    context.CancelFunc
	done    chan error
	running int

	registries []*prometheus.Registry // one per agent
	// controllerMetrics is the grant controller's registry (nil on the records protocol).
	controllerMetrics *prometheus.Registry
	before            agentStats // at Begin
	heapBefore        uint64     // the process's live heap before the agents started

	reserveSize int
	rebindDelay time.Duration

	// eip: the pools carry an EIP attribute and the EIP controller runs in-process
	// against the in-memory cloud.
	eip bool
	// records: no grant controller runs, the pools stay on the records protocol.
	records bool
}

func newOrbweaverPeer(p PeerParams) (Peer, error) {
	o := &orbweaver{binary: filepath.Join(p.BinDir, "orbweaver"), reserveSize: p.ReserveSize, rebindDelay: p.RebindDelay, eip: p.EIP, records: p.Records}
	if err := requireExecutable("orbweaver", o.binary, "make build"); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *orbweaver) Name() string {
	if o.records {
		return "orbweaver-records"
	}
	return "orbweaver"
}
func (o *orbweaver) Binary() string { return o.binary }

// Setup creates a SpiderIPPool per scenario pool and, on first use, starts the agents.
func (o *orbweaver) Setup(ctx context.Context, h *Harness, sc Scenario) error {
	o.client = h.Env.Client
	o.pools = sc.Pools
	if !sc.Reused {
		for _, p := range sc.Pools {
			sp := &v2beta1.SpiderIPPool{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name},
				Spec: v2beta1.IPPoolSpec{
					Subnet: v2beta1.CIDR(p.Prefix.Masked().String()),
					IPs:    []v2beta1.IPOrRange{v2beta1.IPOrRange(p.Range())},
				},
			}
			if o.eip {
				sp.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{EIP: &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto}}
			}
			if err := o.client.Create(ctx, sp); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("orbweaver peer: create SpiderIPPool %s: %w", p.Name, err)
			}
		}
	}
	if o.sockets != nil {
		return o.waitPools(ctx, h)
	}
	// unix socket paths are limited to 108 bytes; h.Dir may be deep.
	dir, err := os.MkdirTemp("", "ow-bench")
	if err != nil {
		return fmt.Errorf("orbweaver peer: %w", err)
	}
	o.heapBefore = liveHeap()
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	o.dir, o.stop, o.done, o.sockets = dir, stop, make(chan error, len(sc.Nodes)), map[string]string{}
	ready := make(chan string, len(sc.Nodes))
	for i, node := range sc.Nodes {
		socket := filepath.Join(dir, fmt.Sprintf("%d.sock", i))
		o.sockets[node] = socket
		// The node's CNI config folder, as a kubelet's node has it: the agent reads the
		// default pool from it to ask for addresses before the node's first ADD.
		confDir := filepath.Join(dir, fmt.Sprintf("%d.d", i))
		if err := os.Mkdir(confDir, 0o755); err != nil {
			return fmt.Errorf("orbweaver peer: %w", err)
		}
		if err := os.WriteFile(filepath.Join(confDir, "10-bench.conf"), o.NetConf(node, 0), 0o644); err != nil {
			return fmt.Errorf("orbweaver peer: %w", err)
		}
		registry := prometheus.NewRegistry()
		o.registries = append(o.registries, registry)
		cfg := agent.Config{
			NodeName: node, RESTConfig: h.ClientConfig(), SocketPath: socket, Log: logr.Discard(),
			Registry: registry, Ready: func() { ready <- node },
			ReserveSize: o.reserveSize, ReserveRebindDelay: o.rebindDelay, GrantBuffer: o.reserveSize,
			CNIConfDir:          confDir,
			StatefulSetFixedIPs: true, // the binary's default (--enable-statefulset), as SpiderPool's peer sets enableStatefulSet
		}
		o.running++
		go func() { o.done <- agent.Run(runCtx, cfg) }()
	}
	if o.eip {
		if err := o.startEIPController(runCtx, h); err != nil {
			return err
		}
	}
	if !o.records {
		if err := o.startGrantController(runCtx, h, sc.Nodes); err != nil {
			return err
		}
	}
	deadline := time.After(2 * time.Minute)
	for range sc.Nodes {
		select {
		case <-ready:
		case err := <-o.done:
			o.running--
			return fmt.Errorf("orbweaver peer: an agent stopped before it was ready: %w", err)
		case <-deadline:
			return errors.New("orbweaver peer: agents not ready within 2 minutes")
		}
	}
	return o.waitPools(ctx, h)
}

// waitPools waits until the scenario's pools exist, then gives the agents' watches a
// moment to deliver them: an agent chooses pools from its cache, and timing must not
// start while a pool created a moment ago is still on its way.
func (o *orbweaver) waitPools(ctx context.Context, h *Harness) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var list v2beta1.SpiderIPPoolList
		if err := o.client.List(ctx, &list); err != nil {
			return fmt.Errorf("orbweaver peer: list pools: %w", err)
		}
		have := map[string]bool{}
		for _, p := range list.Items {
			have[p.Name] = true
		}
		for _, p := range list.Items {
			have[p.Name] = have[p.Name] && (o.records || p.GrantsMode())
		}
		missing := 0
		for _, p := range o.pools {
			if !have[p.Name] {
				missing++
			}
		}
		if missing == 0 {
			// The agents' watches lag the API server by milliseconds here; give them a
			// moment rather than probing each one.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("orbweaver peer: %d pools missing or not switched to node grants: %w", missing, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// NetConf names the node's agent socket and the pool as the CNI default pool.
func (o *orbweaver) NetConf(node string, pool int) []byte {
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "bench",
		"type":       "orbweaver",
		"ipam": map[string]any{
			"type":                  "orbweaver",
			"ipam_unix_socket_path": o.sockets[node],
			"default_ipv4_ippool":   []string{o.pools[pool].Name},
			"log_file_path":         "-",
		},
	})
	return conf
}

// Teardown stops the agents and deletes the pools and endpoints it made.
func (o *orbweaver) Teardown(ctx context.Context) error {
	errs := []error{o.stopAgents()}
	if o.client != nil {
		if o.eip { // the EIP controller is stopped: its finalizer would hold the pools
			var pools v2beta1.SpiderIPPoolList
			errs = append(errs, o.client.List(ctx, &pools))
			for i := range pools.Items {
				errs = append(errs, client.IgnoreNotFound(o.client.Patch(ctx, &pools.Items[i],
					client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))))
			}
		}
		errs = append(errs, o.client.DeleteAllOf(ctx, &v2beta1.SpiderIPPool{}))
		// No garbage collector runs here to follow the blocks' owner references.
		errs = append(errs, o.client.DeleteAllOf(ctx, &ipamv1.IPBlock{}), o.client.DeleteAllOf(ctx, &ipamv1.IPAMNode{}))
		var eps v2beta1.SpiderEndpointList
		if err := o.client.List(ctx, &eps); err != nil {
			errs = append(errs, err)
		}
		for i := range eps.Items {
			if err := o.client.Delete(ctx, &eps.Items[i]); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// stopAgents stops the agents and the controllers Setup started, and leaves every
// object they wrote in place: what uninstalling orbweaver leaves in a cluster. A later
// Setup starts them again.
func (o *orbweaver) stopAgents() error {
	if o.stop == nil {
		return nil
	}
	var errs []error
	o.stop()
	for ; o.running > 0; o.running-- {
		if err := <-o.done; err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, os.RemoveAll(o.dir))
	o.stop, o.sockets, o.registries = nil, nil, nil
	return errors.Join(errs...)
}

// agentStats is what the agents' metrics say, summed over agents.
type agentStats struct {
	addBuckets  map[float64]uint64 // cumulative ADD durations by upper bound (s)
	addCount    uint64
	writes      map[string]float64 // pool writes by result
	batchSum    float64            // requests carried by pool writes
	batchWrites uint64
	handouts    float64 // addresses handed out from the nodes' reserves
	// grants are the grant controller's counters (orbweaver_grants_*_total), by name
	// and label values.
	grants map[string]float64
}

func (o *orbweaver) Begin() { o.before = o.collect() }

// End reports the agents' own view of ADD latency (from the time the agent got the
// request to its answer, without the plugin's exec), pool writes by result and the mean
// number of requests a pool write carried.
func (o *orbweaver) End() []string {
	after := o.collect()
	n := after.addCount - o.before.addCount
	if n == 0 {
		return nil
	}
	quantile := func(q float64) string {
		var bounds []float64
		for b := range after.addBuckets {
			bounds = append(bounds, b)
		}
		slices.Sort(bounds)
		for _, b := range bounds {
			if float64(after.addBuckets[b]-o.before.addBuckets[b]) >= q*float64(n) {
				return "≤ " + fmtSeconds(b)
			}
		}
		return "> " + fmtSeconds(bounds[len(bounds)-1])
	}
	var writes []string
	for _, r := range []string{"ok", "conflict", "error"} {
		writes = append(writes, fmt.Sprintf("%s %.0f", r, after.writes[r]-o.before.writes[r]))
	}
	batch := 0.0
	if w := after.batchWrites - o.before.batchWrites; w > 0 {
		batch = (after.batchSum - o.before.batchSum) / float64(w)
	}
	out := []string{
		fmt.Sprintf("agents' own ADD latency (histogram buckets, no plugin exec): p50 %s, p90 %s, p99 %s", quantile(0.5), quantile(0.9), quantile(0.99)),
	}
	if o.records {
		out = append(out,
			fmt.Sprintf("agents' pool writes: %s; %.1f requests per write on average", strings.Join(writes, ", "), batch),
			fmt.Sprintf("addresses handed out from the nodes' reserves, without a pool write: %.0f of %d ADDs", after.handouts-o.before.handouts, n))
	} else {
		d := func(k string) float64 { return after.grants[k] - o.before.grants[k] }
		out = append(out, fmt.Sprintf("grant controller: rounds written %.0f, idle %.0f, stale %.0f, conflict %.0f, error %.0f; addresses granted %.0f, asked back %.0f, returned %.0f; block writes ok %.0f, conflict %.0f, error %.0f",
			d("rounds_total/written"), d("rounds_total/idle"), d("rounds_total/stale"), d("rounds_total/conflict"), d("rounds_total/error"),
			d("granted_addresses_total"), d("reclaim_requests_total"), d("returned_addresses_total"),
			d("block_writes_total/ok"), d("block_writes_total/conflict"), d("block_writes_total/error")))
	}
	if o.eip {
		out = append(out, o.eipLine())
	}
	return out
}

func fmtSeconds(s float64) string {
	if s < 1 {
		return fmt.Sprintf("%.0fms", s*1000)
	}
	return fmt.Sprintf("%.1fs", s)
}

func (o *orbweaver) collect() agentStats {
	st := agentStats{addBuckets: map[float64]uint64{}, writes: map[string]float64{}, grants: map[string]float64{}}
	if o.controllerMetrics != nil {
		families, _ := o.controllerMetrics.Gather()
		for _, f := range families {
			name, ok := strings.CutPrefix(f.GetName(), "orbweaver_grants_")
			if !ok || f.GetType() != dto.MetricType_COUNTER {
				continue
			}
			for _, m := range f.GetMetric() {
				key := name
				for _, l := range m.GetLabel() {
					key += "/" + l.GetValue()
				}
				st.grants[key] += m.GetCounter().GetValue()
			}
		}
	}
	for _, reg := range o.registries {
		families, err := reg.Gather()
		if err != nil {
			continue
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				switch f.GetName() {
				case "orbweaver_agent_request_duration_seconds":
					if label(m, "op") != "add" {
						continue
					}
					h := m.GetHistogram()
					st.addCount += h.GetSampleCount()
					for _, b := range h.GetBucket() {
						st.addBuckets[b.GetUpperBound()] += b.GetCumulativeCount()
					}
				case "orbweaver_agent_pool_writes_total":
					st.writes[label(m, "result")] += m.GetCounter().GetValue()
				case "orbweaver_agent_reserve_handouts_total":
					st.handouts += m.GetCounter().GetValue()
				case "orbweaver_agent_pool_write_batch_size":
					st.batchSum += m.GetHistogram().GetSampleSum()
					st.batchWrites += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return st
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

var _ Inspector = (*orbweaver)(nil)

// liveHeap is the process's live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// AgentMemory is the live heap the agents added to this process, per node.
func (o *orbweaver) AgentMemory() (float64, string) {
	if len(o.sockets) == 0 {
		return 0, ""
	}
	now := liveHeap()
	if now < o.heapBefore {
		return 0, ""
	}
	return float64(now-o.heapBefore) / float64(len(o.sockets)),
		"Go live heap of the harness process after a collection, less what it held before the agents started, over the nodes; the agents share the process, its runtime and its code"
}

// StillRecorded returns the pods that still have a SpiderEndpoint, or a pool record
// owned by them.
func (o *orbweaver) StillRecorded(ctx context.Context, pods []*Pod) ([]*Pod, error) {
	var pools v2beta1.SpiderIPPoolList
	if err := o.client.List(ctx, &pools); err != nil {
		return nil, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	var parsed []ipam.Pool
	for i := range pools.Items {
		p, err := ipam.NewPool(&pools.Items[i], ip.Set{})
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, p)
	}
	namespaces := map[string]bool{}
	for _, p := range pods {
		namespaces[p.Namespace] = true
	}
	endpoints := map[string]string{} // namespace/name -> pod UID
	for ns := range namespaces {
		var eps v2beta1.SpiderEndpointList
		if err := o.client.List(ctx, &eps, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("list SpiderEndpoints: %w", err)
		}
		for _, se := range eps.Items {
			endpoints[se.Namespace+"/"+se.Name] = se.Status.Current.UID
		}
	}
	var out []*Pod
	for _, p := range pods {
		held := endpoints[p.String()] == p.UID
		for _, pool := range parsed {
			held = held || len(pool.HeldByPod(records.PodKey(p.UID))) > 0
		}
		if held {
			out = append(out, p)
		}
	}
	return out, nil
}

var (
	_ Recorder       = (*orbweaver)(nil)
	_ MemoryReporter = (*orbweaver)(nil)
)
