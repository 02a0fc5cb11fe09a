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
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/ipamtest"
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
	if got := *obj.Status.AllocatedIPCount; got != p.AllocatedCount() {
		t.Fatalf("status.allocatedIPCount %d, records %d", got, p.AllocatedCount())
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
	if st.Conflicts.Load() == 0 {
		t.Fatal("the store injected conflicts, the writer saw none")
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
