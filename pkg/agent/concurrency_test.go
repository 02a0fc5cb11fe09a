package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// ledger is what the simulated pods believe they hold.
type ledger struct {
	mu        sync.Mutex
	held      map[records.Owner]netip.Addr // answered allocations not yet released
	uncertain map[records.Owner]bool       // requests that failed: the write may or may not have landed
	ops       int                          // requests answered, failed ones included
}

// TestManyAgentsOnePool runs 10 simulated agents, each with its own API connection and
// pool writer, allocating and releasing 2,400 times in random interleavings from one
// pool of 300 addresses against the real API server, killing and restarting agents mid
// way. Afterwards no address has two owners, every answered allocation is recorded for
// its owner, nothing else is recorded except for requests that failed, and the count
// equals the records.
func TestManyAgentsOnePool(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pool := testPool("many-agents", "10.50.0.0/23", "10.50.0.1-10.50.1.44")
	if err := e.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}

	const agents, workersPerAgent, opsPerWorker = 10, 6, 40
	led := &ledger{held: map[records.Owner]netip.Addr{}, uncertain: map[records.Owner]bool{}}
	stores := make([]crdstore.Pools, agents)
	for i := range stores {
		c, err := client.New(e.Config, client.Options{Scheme: e.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = crdstore.Pools{Client: c}
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var totalWrites, totalConflicts int64
	for a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(a), 99))
			// Each agent runs in two lives: it is killed (its writer stopped with requests
			// in flight) and restarted with nothing remembered.
			for life := range 2 {
				lifeCtx, kill := context.WithCancel(ctx)
				w := NewPoolWriter(PoolWriterParams{Pool: pool.Name, Store: stores[a], SpreadKey: nodeKey(fmt.Sprintf("node-%d", a))})
				done := make(chan struct{})
				go func() { w.Run(lifeCtx); close(done) }()
				var workers sync.WaitGroup
				for wk := range workersPerAgent {
					// rng belongs to this agent's goroutine: each worker gets its own
					// source, seeded here, not inside the worker (a data race).
					wrng := rand.New(rand.NewPCG(rng.Uint64(), 1))
					workers.Add(1)
					go func() {
						defer workers.Done()
						runWorker(lifeCtx, w, led, fmt.Sprintf("a%d-l%d-w%d", a, life, wk), opsPerWorker/2, wrng)
					}()
				}
				if life == 0 {
					time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond)
					kill() // mid-way: in-flight requests fail, their writes may land
				}
				workers.Wait()
				kill()
				<-done
				mu.Lock()
				totalWrites += w.Stats().Writes.Load()
				totalConflicts += w.Stats().Conflicts.Load()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	obj, err := stores[0].GetPool(ctx, pool.Name)
	if err != nil {
		t.Fatal(err)
	}
	final, err := ipam.NewPool(obj, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if *obj.Status.AllocatedIPCount != final.PodCount() || *obj.Status.Orbweaver.SpareIPCount != final.SpareCount() {
		t.Fatalf("allocatedIPCount %d, spareIPCount %d != %d pods' and %d reserves' records",
			*obj.Status.AllocatedIPCount, *obj.Status.Orbweaver.SpareIPCount, final.PodCount(), final.SpareCount())
	}
	seen := map[netip.Addr]records.Owner{}
	for o, a := range led.held {
		if led.uncertain[o] {
			// A release that failed on the client side may have landed and the address
			// gone to someone else: the kubelet would retry that DEL. Nothing to check.
			continue
		}
		if prev, dup := seen[a]; dup {
			t.Fatalf("%s handed to two live owners: %v and %v", a, prev, o)
		}
		seen[a] = o
		if h, ok := final.Holder(a); !ok || h != o {
			t.Fatalf("%s answered to %v, recorded for %v (recorded: %t)", a, o, h, ok)
		}
	}
	// Every record belongs to an owner that holds it or whose request failed (a write
	// that landed after its caller gave up: the kubelet's DEL or GC frees it).
	leftByFailures := 0
	for _, o := range final.Owners() {
		if _, held := led.held[o]; held {
			continue
		}
		if !led.uncertain[o] {
			t.Fatalf("record for %v, which neither holds an address nor had a request fail", o)
		}
		leftByFailures++
	}
	if led.ops < 2000 {
		t.Fatalf("only %d operations ran, want at least 2000", led.ops)
	}
	t.Logf("%d agents x 2 lives, %d operations (%d failed): %d held, %d records left by failed requests; %d writes, %d conflicts",
		agents, led.ops, len(led.uncertain), len(led.held), leftByFailures, totalWrites, totalConflicts)
}

// runWorker allocates for new owners and releases what it holds, at random.
func runWorker(ctx context.Context, w *PoolWriter, led *ledger, name string, ops int, rng *rand.Rand) {
	var mine []records.Owner
	for i := 0; i < ops*2 && ctx.Err() == nil; i++ {
		if len(mine) == 0 || rng.IntN(2) > 0 {
			o := records.OwnerOf(fmt.Sprintf("%s-%d", name, i), "ctr", "eth0")
			a, err := w.Allocate(ctx, o)
			led.mu.Lock()
			led.ops++
			switch {
			case err == nil:
				led.held[o] = a
				mine = append(mine, o)
			case errors.Is(err, ipam.ErrPoolExhausted):
			default:
				led.uncertain[o] = true
			}
			led.mu.Unlock()
			continue
		}
		j := rng.IntN(len(mine))
		o := mine[j]
		led.mu.Lock()
		a := led.held[o]
		led.mu.Unlock()
		ok, err := w.Release(ctx, a, o)
		led.mu.Lock()
		led.ops++
		if err == nil {
			if !ok {
				panic(fmt.Sprintf("release of %s by its owner refused", a))
			}
			delete(led.held, o)
			mine = append(mine[:j], mine[j+1:]...)
		} else {
			// Unknown whether the release landed; the owner still believes it holds a.
			led.uncertain[o] = true
		}
		led.mu.Unlock()
	}
}
