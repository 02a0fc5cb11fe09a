package grants

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// TestNodeGrantsMigratesRecords upgrades a pool that agents allocated from by records
// (format 1, with each node's reserve) to node grants while pods keep coming and going.
// Three agents serve the pool by records while a fourth Node's agent does not speak node
// grants; when that Node goes, the controller switches the pool and grants each address
// the records hold to the node that holds it, and the agents go on from their grants.
// Throughout, no address is handed to two live pods; afterwards every pod that was
// running keeps its address (a repeated ADD returns it), every endpoint's address is
// granted to the endpoint's node, the records are empty, and every ADD succeeded.
func TestNodeGrantsMigratesRecords(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const pool, subnet = "grants-migrate", "10.82.0.0/24"
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: pool},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: subnet, IPs: []v2beta1.IPOrRange{"10.82.0.10-10.82.0.109"}, Default: ptr.To(true)}}
	if err := e.Client.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	// A default pool: later tests' pods must not find it.
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), sp) })
	ns := podNamespace(ctx, t, e, "grants-migrate")
	// The node whose agent is older: while it exists no pool switches.
	old := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "grants-migrate-old"}}
	if err := e.Client.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	startController(t, e)
	nodes := startNodes(ctx, t, e, "grants-migrate-node", 3)
	newPod := func(name, nodeName string) *corev1.Pod {
		return boundPod(ctx, t, e, ns.Name, name, nodeName, nil, nil)
	}

	// live tracks which pod holds each address handed out, from ADD to DEL.
	var mu sync.Mutex
	live := map[netip.Addr]string{}
	var failures []error
	take := func(a netip.Addr, who string) {
		mu.Lock()
		defer mu.Unlock()
		if other, dup := live[a]; dup {
			failures = append(failures, fmt.Errorf("%s handed to %s while %s holds it", a, who, other))
		}
		live[a] = who
	}
	drop := func(a netip.Addr) {
		mu.Lock()
		defer mu.Unlock()
		delete(live, a)
	}

	// 45 pods by records.
	type running struct {
		pod  *corev1.Pod
		node *node
		addr netip.Addr
	}
	var steady []running
	for i := range 45 {
		n := nodes[i%3]
		p := newPod(fmt.Sprintf("steady-%d", i), n.name)
		a, err := n.add(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		take(a, p.Name)
		steady = append(steady, running{p, n, a})
	}
	if got := getPool(ctx, t, e, pool); got.GrantsMode() || got.Status.Orbweaver == nil || len(got.Status.Orbweaver.Records) == 0 {
		t.Fatal("the pool should be allocated by records while a node's agent does not speak node grants")
	}

	// Churn on every node during the switch: each worker adds and deletes its own pods.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		n := nodes[w%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := newPod(fmt.Sprintf("churn-%d-%d", w, i), n.name)
				a, err := n.add(ctx, p)
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					return
				}
				take(a, p.Name)
				drop(a) // the DEL below may land any moment after this
				if err := n.del(ctx, p); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					return
				}
				_ = e.Client.Delete(ctx, p, client.GracePeriodSeconds(0))
			}
		}()
	}
	time.Sleep(time.Second)
	if err := e.Client.Delete(ctx, old); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the pool switches to node grants and its records move", func() (bool, error) {
		got := getPool(ctx, t, e, pool)
		return got.GrantsMode() && len(got.Status.Orbweaver.Records) == 0, nil
	})
	time.Sleep(2 * time.Second) // churn on grants
	close(stop)
	wg.Wait()
	mu.Lock()
	for _, err := range failures {
		t.Error(err)
	}
	mu.Unlock()
	if t.Failed() {
		t.FailNow()
	}

	for _, r := range steady {
		got, err := r.node.add(ctx, r.pod)
		if err != nil || got != r.addr {
			t.Errorf("repeated ADD of %s after the switch: %s, %v; want %s", r.pod.Name, got, err, r.addr)
		}
	}
	// New pods after the switch get addresses nobody holds.
	for i := range 6 {
		n := nodes[i%3]
		p := newPod(fmt.Sprintf("after-%d", i), n.name)
		a, err := n.add(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		take(a, p.Name)
	}
	var eps v2beta1.SpiderEndpointList
	if err := e.Client.List(ctx, &eps, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	grants := grantedTo(t, e, pool, subnet)
	seen := map[netip.Addr]string{}
	for _, se := range eps.Items {
		pfx, err := netip.ParsePrefix(*se.Status.Current.IPs[0].IPv4)
		if err != nil {
			t.Fatal(err)
		}
		a := pfx.Addr()
		if other, dup := seen[a]; dup {
			t.Errorf("%s is in the endpoints of %s and %s", a, other, se.Name)
		}
		seen[a] = se.Name
		if grants[a] != se.Status.Current.Node {
			t.Errorf("%s of %s (node %s) is granted to %q", a, se.Name, se.Status.Current.Node, grants[a])
		}
	}
	if len(seen) != 51 {
		t.Errorf("%d endpoints hold addresses, want 51", len(seen))
	}
}

func getPool(ctx context.Context, t *testing.T, e *testenv.Env, name string) *v2beta1.SpiderIPPool {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, sp); err != nil {
		t.Fatal(err)
	}
	return sp
}
