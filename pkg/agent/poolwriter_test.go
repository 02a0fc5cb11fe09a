package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/ipamtest"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

func testPool(name, subnet string, ips ...string) *v2beta1.SpiderIPPool {
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(subnet)}}
	for _, s := range ips {
		sp.Spec.IPs = append(sp.Spec.IPs, v2beta1.IPOrRange(s))
	}
	return sp
}

func ownerN(i int) records.Owner {
	return records.OwnerOf(fmt.Sprintf("uid-%d", i), fmt.Sprintf("ctr-%d", i), "eth0")
}

func startWriter(t *testing.T, p PoolWriterParams) *PoolWriter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := NewPoolWriter(p)
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func decode(t *testing.T, store ipam.PoolStore, name string) ipam.Pool {
	t.Helper()
	obj, err := store.GetPool(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ipam.NewPool(obj, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	if got, spare := *obj.Status.AllocatedIPCount, *obj.Status.Orbweaver.SpareIPCount; got != p.PodCount() || spare != p.SpareCount() {
		t.Fatalf("status.allocatedIPCount %d, spareIPCount %d; %d pods' and %d reserves' records", got, spare, p.PodCount(), p.SpareCount())
	}
	return p
}

// TestPoolWriterGroupCommit sends many concurrent allocations through one writer whose
// store fails every third write with a conflict, and checks that every owner got a
// distinct address, recorded as its own, in fewer writes than requests.
func TestPoolWriterGroupCommit(t *testing.T) {
	store := ipamtest.NewPools(testPool("p", "10.0.0.0/16", "10.0.0.0-10.0.3.255"))
	store.ConflictEvery = 3
	w := startWriter(t, PoolWriterParams{Pool: "p", Store: store, SpreadKey: 12345})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const n = 500
	got := make([]netip.Addr, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := w.Allocate(ctx, ownerN(i))
			if err != nil {
				t.Errorf("allocate %d: %v", i, err)
			}
			got[i] = a
		}()
	}
	wg.Wait()
	pool := decode(t, store, "p")
	seen := map[netip.Addr]bool{}
	for i, a := range got {
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		if h, ok := pool.Holder(a); !ok || h != ownerN(i) {
			t.Fatalf("%s recorded for %v, handed to %v", a, h, ownerN(i))
		}
	}
	st := w.Stats()
	if pool.AllocatedCount() != n || st.Writes.Load() >= n {
		t.Fatalf("%d allocated in %d writes (%d conflicts), want %d in fewer writes", pool.AllocatedCount(), st.Writes.Load(), st.Conflicts.Load(), n)
	}
	t.Logf("%d allocations: %d writes, %d conflicts, %d reads", n, st.Writes.Load(), st.Conflicts.Load(), st.Reads.Load())

	// Idempotent: the same owner gets the same address; release only by the owner.
	if a, err := w.Allocate(ctx, ownerN(7)); err != nil || a != got[7] {
		t.Fatalf("repeated allocate = %v, %v; want %v", a, err, got[7])
	}
	if ok, err := w.Release(ctx, got[7], ownerN(8)); err != nil || ok {
		t.Fatalf("release by another owner = %t, %v", ok, err)
	}
	if ok, err := w.Release(ctx, got[7], ownerN(7)); err != nil || !ok {
		t.Fatalf("release by the owner = %t, %v", ok, err)
	}
	if freed, err := w.ReleaseOwner(ctx, ownerN(9)); err != nil || len(freed) != 1 || freed[0] != got[9] {
		t.Fatalf("ReleaseOwner = %v, %v", freed, err)
	}
	if decode(t, store, "p").AllocatedCount() != n-2 {
		t.Fatal("releases not recorded")
	}
	if st.Conflicts.Load() == 0 {
		t.Fatalf("the store made %d writes fail with a conflict, the writer saw none", store.Writes()/3)
	}
}

func TestPoolWriterExhaustedAndMissing(t *testing.T) {
	store := ipamtest.NewPools(testPool("small", "10.0.0.0/24", "10.0.0.1-10.0.0.2"))
	w := startWriter(t, PoolWriterParams{Pool: "small", Store: store})
	ctx := context.Background()
	for i := range 2 {
		if _, err := w.Allocate(ctx, ownerN(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := w.Allocate(ctx, ownerN(3))
	if !errors.Is(err, ipam.ErrPoolExhausted) {
		t.Fatalf("third allocation: %v, want ErrPoolExhausted", err)
	}
	missing := startWriter(t, PoolWriterParams{Pool: "nope", Store: store})
	if _, err := missing.Allocate(ctx, ownerN(1)); !errors.Is(err, ipam.ErrPoolNotFound) {
		t.Fatalf("allocation from a missing pool: %v", err)
	}
}

// TestPoolWriterSeesReleasesMadeElsewhere: an answer that needs no write still comes from a
// fresh read, so a retried allocation after someone else freed the address takes a new one.
func TestPoolWriterSeesReleasesMadeElsewhere(t *testing.T) {
	store := ipamtest.NewPools(testPool("p", "10.0.0.0/24", "10.0.0.1-10.0.0.9"))
	w := startWriter(t, PoolWriterParams{Pool: "p", Store: store})
	other := startWriter(t, PoolWriterParams{Pool: "p", Store: store})
	ctx := context.Background()
	a, err := w.Allocate(ctx, ownerN(1))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := other.Release(ctx, a, ownerN(1)); err != nil || !ok {
		t.Fatalf("release elsewhere: %t %v", ok, err)
	}
	if _, err := w.Allocate(ctx, ownerN(1)); err != nil {
		t.Fatal(err)
	}
	if got := decode(t, store, "p"); got.AllocatedCount() != 1 {
		t.Fatalf("after re-allocation %d allocated, want 1 (the writer answered from its stale copy)", got.AllocatedCount())
	}
}

// reserveWriter starts a writer with a reserve for node "n1" and returns it with a
// function that stops it (a clean stop, which gives the reserve back).
func reserveWriter(t *testing.T, store ipam.PoolStore, pool string, max int, rebindDelay time.Duration) (*PoolWriter, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := NewPoolWriter(PoolWriterParams{Pool: pool, Store: store, SpreadKey: 1,
		Reserve: ReserveParams{Owner: records.ReserveOwner("n1"), Max: max, RebindDelay: rebindDelay}})
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return w, stop
}

// waitRecorded waits until the store records every owner at its address.
func waitRecorded(t *testing.T, store ipam.PoolStore, pool string, want map[netip.Addr]records.Owner) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := decode(t, store, pool)
		missing := 0
		for a, o := range want {
			if h, _ := p.Holder(a); h != o {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d addresses not recorded under their owners after 10s", missing, len(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPoolWriterReserve: allocations are served from the node's reserve without a write
// each; the addresses reach their owners' records in batched writes; releases of handed
// addresses need no write; a clean stop leaves no reservation and every owner recorded.
func TestPoolWriterReserve(t *testing.T) {
	store := ipamtest.NewPools(testPool("p", "10.0.0.0/24", "10.0.0.1-10.0.0.250"))
	w, stop := reserveWriter(t, store, "p", 32, time.Second)
	ctx := context.Background()

	const n = 200
	held := map[netip.Addr]records.Owner{}
	for i := range n {
		a, err := w.Allocate(ctx, ownerN(i))
		if err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
		if prev, dup := held[a]; dup {
			t.Fatalf("%s handed to %v and %v", a, prev, ownerN(i))
		}
		held[a] = ownerN(i)
		if again, err := w.Allocate(ctx, ownerN(i)); err != nil || again != a {
			t.Fatalf("repeated allocate of %d = %v, %v; want %v", i, again, err, a)
		}
	}
	_, _, handouts := w.res.counts()
	writes := store.Writes()
	t.Logf("%d allocations: %d from the reserve, %d pool writes", n, handouts, writes)
	if handouts < n/2 || writes > n/4 {
		t.Fatalf("%d allocations took %d writes with %d from the reserve; want most from the reserve and far fewer writes", n, writes, handouts)
	}
	waitRecorded(t, store, "p", held)

	// A handed address released before its rebind goes back to the spares (without a
	// write unless a write carrying its rebind is in flight).
	a, err := w.Allocate(ctx, ownerN(1000))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Release(ctx, a, ownerN(1001)); err != nil || ok {
		t.Fatalf("release of a handed address by another owner = %t, %v", ok, err)
	}
	if ok, err := w.Release(ctx, a, ownerN(1000)); err != nil || !ok {
		t.Fatalf("release of a handed address = %t, %v", ok, err)
	}
	if w.HandedTo(a, ownerN(1000)) {
		t.Fatal("released address still handed")
	}
	// A rebind of a handed address (a pod's new sandbox).
	b, err := w.Allocate(ctx, ownerN(2000))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Rebind(ctx, b, ownerN(2000), ownerN(2001)); err != nil || !ok {
		t.Fatalf("rebind of a handed address = %t, %v", ok, err)
	}
	held[b] = ownerN(2001)
	// Released addresses recorded under their pods are freed (or kept as spares).
	for i := range 10 {
		a, _ := decode(t, store, "p").HeldBy(ownerN(i))
		if ok, err := w.Release(ctx, a, ownerN(i)); err != nil || !ok {
			t.Fatalf("release of a recorded address = %t, %v", ok, err)
		}
		delete(held, a)
	}

	stop()
	p := decode(t, store, "p")
	if left := p.AllHeldBy(records.ReserveOwner("n1")); len(left) > 0 {
		t.Fatalf("a clean stop left %d addresses in reserve", len(left))
	}
	if p.AllocatedCount() != int64(len(held)) {
		t.Fatalf("after the stop the pool records %d addresses, the owners hold %d", p.AllocatedCount(), len(held))
	}
	for a, o := range held {
		if h, _ := p.Holder(a); h != o {
			t.Fatalf("%s recorded for %v, held by %v", a, h, o)
		}
	}
}

// TestPoolWriterReserveLostAnswers: writes that land but whose answers are lost (a
// timeout after the API server applied them) leave reservations the writer did not see
// land; they are adopted at the next read and given back at the stop, and no address is
// ever handed out twice.
func TestPoolWriterReserveLostAnswers(t *testing.T) {
	store := ipamtest.NewPools(testPool("p", "10.0.0.0/22", "10.0.0.1-10.0.3.250"))
	store.LostAnswerEvery = 3
	w, stop := reserveWriter(t, store, "p", 16, 5*time.Millisecond)
	ctx := context.Background()
	held := map[netip.Addr]records.Owner{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				o := ownerN(g*1000 + i)
				var a netip.Addr
				var err error
				for try := 0; try < 20; try++ { // a runtime retries a failed ADD
					if a, err = w.Allocate(ctx, o); err == nil {
						break
					}
				}
				if err != nil {
					t.Errorf("allocate: %v", err)
					return
				}
				mu.Lock()
				if prev, dup := held[a]; dup && prev != o {
					t.Errorf("%s handed to %v and %v", a, prev, o)
				}
				held[a] = o
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	stop()
	p := decode(t, store, "p")
	if left := p.AllHeldBy(records.ReserveOwner("n1")); len(left) > 0 {
		t.Fatalf("a clean stop left %d addresses in reserve", len(left))
	}
	for a, o := range held {
		if h, _ := p.Holder(a); h != o {
			t.Fatalf("%s recorded for %v, held by %v", a, h, o)
		}
	}
	if p.AllocatedCount() != int64(len(held)) {
		t.Fatalf("the pool records %d addresses, the owners hold %d: lost answers leaked addresses", p.AllocatedCount(), len(held))
	}
}

// TestPoolWriterReserveRetiresReservedSpares: a spare that a SpiderReservedIP reserves
// later is never handed out, and goes back to the pool.
func TestPoolWriterReserveRetiresReservedSpares(t *testing.T) {
	store := ipamtest.NewPools(testPool("p", "10.0.0.0/24", "10.0.0.1-10.0.0.200"))
	var mu sync.Mutex
	reserved := ip.Set{}
	ctx, cancel := context.WithCancel(context.Background())
	w := NewPoolWriter(PoolWriterParams{Pool: "p", Store: store, SpreadKey: 1,
		Reserved: func(bool) ip.Set { mu.Lock(); defer mu.Unlock(); return reserved },
		Reserve:  ReserveParams{Owner: records.ReserveOwner("n1"), Max: 32, RebindDelay: time.Hour}})
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	if _, err := w.Allocate(ctx, ownerN(0)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if spare, _, _ := w.res.counts(); spare > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no spares after the first allocation")
		}
		time.Sleep(5 * time.Millisecond)
	}
	spares := decode(t, store, "p").AllHeldBy(records.ReserveOwner("n1"))
	set, err := ip.ParseRanges(func() []string {
		var out []string
		for _, a := range spares {
			out = append(out, a.String())
		}
		return out
	}())
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	reserved = set
	mu.Unlock()
	w.Invalidate()
	for i := 1; i <= 40; i++ {
		a, err := w.Allocate(ctx, ownerN(i))
		if err != nil {
			t.Fatal(err)
		}
		if set.Contains(a) {
			t.Fatalf("handed out %s, which a SpiderReservedIP reserves now", a)
		}
	}
	for {
		p := decode(t, store, "p")
		still := 0
		for _, a := range spares {
			if h, ok := p.Holder(a); ok && h == records.ReserveOwner("n1") {
				still++
			}
		}
		if still == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d retired spares still recorded in the node's reserve", still)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPoolWriterReservesExactFit: ten nodes' writers, with reserves, fill pools of exactly
// as many addresses as they need, 8 requests at a time each (the bench's one-pool and
// ten-pools), the pools' free counts reaching them as a watch would. Every request is
// served, waiting for other nodes' idle spares within the agent's bound, no address goes
// twice, and every address ends recorded under its owner.
func TestPoolWriterReservesExactFit(t *testing.T) {
	for _, pools := range []int{1, 10} {
		t.Run(fmt.Sprintf("%d pools", pools), func(t *testing.T) { exactFit(t, pools) })
	}
}

func exactFit(t *testing.T, pools int) {
	const nodes, perNode, parallel = 10, 100, 8
	perPool := nodes * perNode / pools
	var objs []*v2beta1.SpiderIPPool
	for p := range pools {
		last := perPool // 10.p.x.y: addresses 1..perPool
		objs = append(objs, testPool(fmt.Sprintf("p%d", p), fmt.Sprintf("10.%d.0.0/16", p), fmt.Sprintf("10.%d.0.1-10.%d.%d.%d", p, p, last/256, last%256)))
	}
	store := ipamtest.NewPools(objs...)
	store.Latency = 15 * time.Millisecond // a loaded API server's write
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	writers := make([][]*PoolWriter, nodes) // [node][pool]
	for n := range writers {
		for p := range pools {
			writers[n] = append(writers[n], startWriter(t, PoolWriterParams{Pool: fmt.Sprintf("p%d", p), Store: store, SpreadKey: uint64(n) * 7919,
				Reserve: ReserveParams{Owner: records.ReserveOwner(fmt.Sprintf("n%d", n)), Max: DefaultReserveSize, RebindDelay: 100 * time.Millisecond}}))
		}
	}
	// The watch: every writer hears its pool's free count.
	go func() {
		for ctx.Err() == nil {
			for p := range pools {
				if obj, err := store.GetPool(ctx, fmt.Sprintf("p%d", p)); err == nil && obj.Status.TotalIPCount != nil {
					for n := range writers {
						writers[n][p].Observe(*obj.Status.TotalIPCount - *obj.Status.AllocatedIPCount - *obj.Status.Orbweaver.SpareIPCount)
					}
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	type key struct {
		pool int
		addr netip.Addr
	}
	var mu sync.Mutex
	held := map[key]records.Owner{}
	var wg sync.WaitGroup
	for n := range writers {
		for g := range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g; i < perNode; i += parallel {
					o, p := ownerN(n*1000+i), i%pools
					w := writers[n][p]
					a, err := w.AllocateOrWait(ctx, o)
					if err != nil {
						t.Errorf("node %d request %d: %v", n, i, err)
						return
					}
					mu.Lock()
					if prev, dup := held[key{p, a}]; dup {
						t.Errorf("%s of pool %d handed to %v and %v", a, p, prev, o)
					}
					held[key{p, a}] = o
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(held) != nodes*perNode {
		t.Fatalf("%d of %d requests served", len(held), nodes*perNode)
	}
	for p := range pools {
		want := map[netip.Addr]records.Owner{}
		for k, o := range held {
			if k.pool == p {
				want[k.addr] = o
			}
		}
		waitRecorded(t, store, fmt.Sprintf("p%d", p), want)
	}
}

// TestPoolWriterReserveForgetsFreedSpares: a spare that something outside the agent
// freed (garbage collection of a deleted node's reserve) and handed to another owner is
// never handed out by the node once the writer has read the pool; while the node is
// suspended (its Node object deleted) no spare is handed out at all.
func TestPoolWriterReserveForgetsFreedSpares(t *testing.T) {
	store := ipamtest.NewPools(testPool("p", "10.0.0.0/24", "10.0.0.1-10.0.0.200"))
	w, _ := reserveWriter(t, store, "p", 32, time.Hour)
	ctx := context.Background()
	if _, err := w.Allocate(ctx, ownerN(0)); err != nil {
		t.Fatal(err)
	}
	node := records.ReserveOwner("n1")
	spares := decode(t, store, "p").AllHeldBy(node)
	if len(spares) < 2 {
		t.Fatalf("%d spares after the first allocation, want some", len(spares))
	}
	// Free every spare behind the writer's back and give it to other owners.
	obj, err := store.GetPool(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ipam.NewPool(obj, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	stolen := map[netip.Addr]bool{}
	for i, a := range spares {
		var ok bool
		if p, ok = p.Rebind(a, node, ownerN(9000+i)); !ok {
			t.Fatalf("%s is not the node's", a)
		}
		stolen[a] = true
	}
	if err := p.WriteStatus(obj); err != nil {
		t.Fatal(err)
	}
	if err := store.UpdatePoolStatus(ctx, obj); err != nil {
		t.Fatal(err)
	}

	// Suspended: no spare is handed out; allocations are written to the pool.
	w.SuspendReserve(true)
	for i := 1; i <= 5; i++ {
		a, err := w.Allocate(ctx, ownerN(i))
		if err != nil {
			t.Fatal(err)
		}
		if stolen[a] {
			t.Fatalf("suspended, the writer handed out %s, a spare another owner holds now", a)
		}
		if h, _ := decode(t, store, "p").Holder(a); h != ownerN(i) {
			t.Fatalf("suspended, %s was not written under its owner (recorded for %v)", a, h)
		}
	}
	// Resumed: the read the suspension forced dropped the stolen spares.
	w.SuspendReserve(false)
	for i := 6; i <= 60; i++ {
		a, err := w.Allocate(ctx, ownerN(i))
		if err != nil {
			t.Fatal(err)
		}
		if stolen[a] {
			t.Fatalf("the writer handed out %s, a spare another owner holds now", a)
		}
	}
}
