package agent

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// BenchmarkPoolWriterBurst measures the pool-write path alone (no CNI exec, no endpoint
// writes): 1,000 allocations arrive at once, 100 on each of 10 nodes, for a pool of
// exactly 1,000 addresses, against the real API server. It reports allocations per
// second, pool writes per allocation, conflicts and latency percentiles.
func BenchmarkPoolWriterBurst(b *testing.B) {
	e := testenv.Require(b, env)
	const nodes, perNode = 10, 100
	ctx := context.Background()
	stores := make([]crdstore.Pools, nodes)
	for i := range stores {
		c, err := client.New(e.Config, client.Options{Scheme: e.Scheme})
		if err != nil {
			b.Fatal(err)
		}
		stores[i] = crdstore.Pools{Client: c}
	}
	var lat []time.Duration
	var writes, conflicts int64
	b.ResetTimer()
	for run := range b.N {
		b.StopTimer()
		pool := testPool(fmt.Sprintf("bench-burst-%d-%d", b.N, run), "10.60.0.0/22", "10.60.0.1-10.60.3.232")
		if err := e.Client.Create(ctx, pool); err != nil {
			b.Fatal(err)
		}
		writers := make([]*PoolWriter, nodes)
		runCtx, stop := context.WithCancel(ctx)
		var running sync.WaitGroup
		for n := range writers {
			writers[n] = NewPoolWriter(PoolWriterParams{Pool: pool.Name, Store: stores[n], SpreadKey: nodeKey(fmt.Sprintf("node-%d", n))})
			running.Add(1)
			go func() { defer running.Done(); writers[n].Run(runCtx) }()
		}
		// Warm the CRD path once (the first requests after creating a CRD are slow).
		if _, err := writers[0].Allocate(ctx, records.OwnerOf("warm", "warm", "eth0")); err != nil {
			b.Fatal(err)
		}
		if _, err := writers[0].ReleaseOwner(ctx, records.OwnerOf("warm", "warm", "eth0")); err != nil {
			b.Fatal(err)
		}
		w0, c0 := sumStats(writers)
		b.StartTimer()

		var mu sync.Mutex
		var wg sync.WaitGroup
		for n := range nodes {
			for p := range perNode {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					_, err := writers[n].Allocate(ctx, records.OwnerOf(fmt.Sprintf("pod-%d-%d", n, p), "ctr", "eth0"))
					d := time.Since(start)
					if err != nil {
						b.Error(err)
					}
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}()
			}
		}
		wg.Wait()
		b.StopTimer()
		w1, c1 := sumStats(writers)
		writes += w1 - w0
		conflicts += c1 - c0
		stop()
		running.Wait()
		if err := e.Client.Delete(ctx, pool); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	allocs := float64(b.N * nodes * perNode)
	slices.Sort(lat)
	b.ReportMetric(allocs/b.Elapsed().Seconds(), "allocs/s")
	b.ReportMetric(float64(writes)/allocs, "writes/alloc")
	b.ReportMetric(float64(conflicts)/allocs, "conflicts/alloc")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func sumStats(ws []*PoolWriter) (writes, conflicts int64) {
	for _, w := range ws {
		writes += w.Stats().Writes.Load()
		conflicts += w.Stats().Conflicts.Load()
	}
	return writes, conflicts
}
