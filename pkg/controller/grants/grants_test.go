package grants

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// createPool creates an IPv4 pool in Grants mode, as the controller switches it once
// every node's agent speaks node grants (TestGrantsSwitchesPools).
func createPool(t *testing.T, e *testenv.Env, name, subnet string, ips ...v2beta1.IPOrRange) *v2beta1.SpiderIPPool {
	t.Helper()
	sp := createRecordsPool(t, e, name, subnet, ips...)
	sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
	if err := e.Client.Status().Update(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	return sp
}

// createRecordsPool creates an IPv4 pool as the webhook leaves it: no status.
func createRecordsPool(t *testing.T, e *testenv.Env, name, subnet string, ips ...v2beta1.IPOrRange) *v2beta1.SpiderIPPool {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(subnet), IPs: ips}}
	if err := e.Client.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.Client.Delete(ctx, sp)
		_ = e.Client.DeleteAllOf(ctx, &ipamv1.IPBlock{}, client.MatchingLabels{ipam.BlockPoolLabel: name})
	})
	return sp
}

// setDemand writes node's demand on pool, creating its IPAMNode if needed.
func setDemand(t *testing.T, e *testenv.Env, node, pool string, need, want int) {
	t.Helper()
	ctx := context.Background()
	for range 20 {
		n := &ipamv1.IPAMNode{}
		err := e.Client.Get(ctx, client.ObjectKey{Name: node}, n)
		if apierrors.IsNotFound(err) {
			n = &ipamv1.IPAMNode{ObjectMeta: metav1.ObjectMeta{Name: node}}
			n.Spec.Pools = []ipamv1.PoolDemand{{Pool: pool, Need: int32(need), Want: int32(want)}}
			if err = e.Client.Create(ctx, n); err == nil {
				t.Cleanup(func() { _ = e.Client.Delete(context.Background(), n) })
				return
			}
		} else if err == nil {
			i := slices.IndexFunc(n.Spec.Pools, func(d ipamv1.PoolDemand) bool { return d.Pool == pool })
			if i < 0 {
				n.Spec.Pools = append(n.Spec.Pools, ipamv1.PoolDemand{Pool: pool})
				i = len(n.Spec.Pools) - 1
			}
			n.Spec.Pools[i].Need, n.Spec.Pools[i].Want = int32(need), int32(want)
			if err = e.Client.Update(ctx, n); err == nil {
				return
			}
		}
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	t.Fatalf("demand of %s on %s: too many conflicts", node, pool)
}

// grantsOf reads every block of pool from the API server: node -> addresses, and the
// addresses asked back.
func grantsOf(t testing.TB, e *testenv.Env, pool, subnet string) (map[string][]netip.Addr, map[netip.Addr]bool, map[netip.Addr]*ipamv1.IPBlock) {
	t.Helper()
	var list ipamv1.IPBlockList
	if err := e.Client.List(context.Background(), &list, client.MatchingLabels{ipam.BlockPoolLabel: pool}); err != nil {
		t.Fatal(err)
	}
	per, asked, objs := map[string][]netip.Addr{}, map[netip.Addr]bool{}, map[netip.Addr]*ipamv1.IPBlock{}
	for i := range list.Items {
		g, err := ipam.GrantBlockOf(netip.MustParsePrefix(subnet), &list.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		for a, n := range g.Owners {
			per[n] = append(per[n], a)
		}
		for a := range g.Reclaim {
			asked[a] = true
		}
		objs[g.Start] = &list.Items[i]
	}
	for _, as := range per {
		slices.SortFunc(as, netip.Addr.Compare)
	}
	return per, asked, objs
}

// giveBack plays node's agent: it removes the addresses asked of it from its grants.
func giveBack(t *testing.T, e *testenv.Env, pool, subnet, node string) int {
	t.Helper()
	given := 0
	testenv.WaitFor(t, node+" gives back", func() (bool, error) {
		_, _, objs := grantsOf(t, e, pool, subnet)
		for _, obj := range objs {
			g, err := ipam.GrantBlockOf(netip.MustParsePrefix(subnet), obj)
			if err != nil {
				return false, err
			}
			n := 0
			for a := range g.Reclaim {
				if g.Owners[a] == node {
					delete(g.Owners, a)
					delete(g.Reclaim, a)
					n++
				}
			}
			if n == 0 {
				continue
			}
			nb := obj.DeepCopy()
			g.Write(pool, nb)
			if err := e.Client.Update(context.Background(), nb); err != nil {
				return false, err
			}
			given += n
		}
		return true, nil
	})
	return given
}

func counts(per map[string][]netip.Addr) map[string]int {
	out := map[string]int{}
	for n, as := range per {
		out[n] = len(as)
	}
	return out
}

// TestGrantsSmallPool: five addresses for three nodes, exactly what they need; then a
// node needs one more while another holds one it no longer needs: the controller asks
// for it, the node gives it back, and it is granted to the node that waits.
func TestGrantsSmallPool(t *testing.T) {
	e := testenv.Require(t, env)
	const pool, subnet = "grants-small", "10.20.0.0/24"
	sp := createPool(t, e, pool, subnet, "10.20.0.10-10.20.0.14")
	// All three demands before the first round: a round that saw only gs-a's would grant
	// it its buffer too, and nothing here answers the reclaim requests that would then
	// take the buffer back for gs-b (on a loaded machine the demands came in separate
	// rounds and the test timed out).
	setDemand(t, e, "gs-a", pool, 2, 4)
	setDemand(t, e, "gs-b", pool, 2, 4)
	setDemand(t, e, "gs-c", pool, 1, 4)
	startController(t, e)
	want := map[string]int{"gs-a": 2, "gs-b": 2, "gs-c": 1}
	testenv.WaitFor(t, "every need granted", func() (bool, error) {
		per, _, _ := grantsOf(t, e, pool, subnet)
		return maps.Equal(counts(per), want), nil
	})
	_, _, objs := grantsOf(t, e, pool, subnet)
	if len(objs) != 1 {
		t.Fatalf("%d blocks for a pool of 5 addresses, want 1", len(objs))
	}
	for _, b := range objs {
		if b.Name != pool+".10.20.0.0" || b.Labels[ipam.BlockNodeLabel("gs-c")] != "gs-c" || len(b.OwnerReferences) != 1 || b.OwnerReferences[0].UID != sp.UID {
			t.Errorf("block %s: labels %v, owners %v", b.Name, b.Labels, b.OwnerReferences)
		}
	}

	setDemand(t, e, "gs-a", pool, 1, 1)
	setDemand(t, e, "gs-c", pool, 2, 2)
	var asked map[netip.Addr]bool
	testenv.WaitFor(t, "gs-a asked to give one back", func() (bool, error) {
		_, asked, _ = grantsOf(t, e, pool, subnet)
		return len(asked) == 1, nil
	})
	if n := giveBack(t, e, pool, subnet, "gs-a"); n != 1 {
		t.Fatalf("gs-a gave back %d addresses, want 1", n)
	}
	want = map[string]int{"gs-a": 1, "gs-b": 2, "gs-c": 2}
	testenv.WaitFor(t, "the address given back granted to gs-c", func() (bool, error) {
		per, _, _ := grantsOf(t, e, pool, subnet)
		return maps.Equal(counts(per), want), nil
	})
	var evs corev1.EventList
	if err := e.Client.List(context.Background(), &evs, client.MatchingFields{"involvedObject.name": pool}); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs.Items, func(ev corev1.Event) bool {
		return ev.Reason == EventNeedUnmet && strings.Contains(ev.Message, "node gs-c needs 1 more")
	}) {
		t.Errorf("no %s event naming gs-c on the pool", EventNeedUnmet)
	}
}

// TestGrantsTwoControllersNeverMoveAnAddress runs two grant controllers at once (a
// leader and a deposed one that still writes) while 60 nodes change their needs on a
// pool that cannot give every node its want, and nodes give back what they are asked
// for. A watch on the blocks sees every version. An address may leave a node only by
// that node's give-back: a version in which an address goes from one node straight to
// another is a second owner, and the test fails on it.
func TestGrantsTwoControllersNeverMoveAnAddress(t *testing.T) {
	e := testenv.Require(t, env)
	const pool, subnet = "grants-two", "10.21.0.0/22"
	createPool(t, e, pool, subnet, "10.21.0.1-10.21.1.44") // 300 addresses
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The observer: every version of every block, in order.
	wc, err := client.NewWithWatch(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(ctx, &ipamv1.IPBlockList{}, client.MatchingLabels{ipam.BlockPoolLabel: pool})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	owner := map[netip.Addr]string{}
	var moved []string
	observed := make(chan struct{})
	go func() {
		defer close(observed)
		for ev := range w.ResultChan() {
			b, ok := ev.Object.(*ipamv1.IPBlock)
			if !ok {
				continue
			}
			g, err := ipam.GrantBlockOf(netip.MustParsePrefix(subnet), b)
			if err != nil {
				mu.Lock()
				moved = append(moved, err.Error())
				mu.Unlock()
				continue
			}
			mu.Lock()
			start := g.Start
			for a := range owner {
				if ipam.BlockStart(netip.MustParsePrefix(subnet), a) == start {
					if _, still := g.Owners[a]; !still || ev.Type == watch.Deleted {
						delete(owner, a)
					}
				}
			}
			if ev.Type != watch.Deleted {
				for a, n := range g.Owners {
					if was, ok := owner[a]; ok && was != n {
						moved = append(moved, fmt.Sprintf("%s went from %s to %s in %s@%s", a, was, n, b.Name, b.ResourceVersion))
					}
					owner[a] = n
				}
			}
			mu.Unlock()
		}
	}()

	startController(t, e)
	startController(t, e)
	const nodes = 60
	rng := rand.New(rand.NewPCG(7, 7))
	need := map[string]int{}
	for range 8 {
		for i := range nodes {
			n := fmt.Sprintf("gt-%02d", i)
			need[n] = rng.IntN(6)
			setDemand(t, e, n, pool, need[n], need[n]+3)
		}
		time.Sleep(300 * time.Millisecond)
		for i := range nodes {
			giveBack(t, e, pool, subnet, fmt.Sprintf("gt-%02d", i))
		}
	}
	total := 0
	for _, k := range need {
		total += k
	}
	if total > 300 {
		t.Fatalf("the test's needs (%d) exceed the pool", total)
	}
	testenv.WaitFor(t, "every node's need granted", func() (bool, error) {
		for i := range nodes {
			giveBack(t, e, pool, subnet, fmt.Sprintf("gt-%02d", i))
		}
		per, _, _ := grantsOf(t, e, pool, subnet)
		for n, k := range need {
			if len(per[n]) < k {
				return false, fmt.Errorf("%s has %d of %d", n, len(per[n]), k)
			}
		}
		return true, nil
	})
	cancel()
	w.Stop()
	<-observed
	mu.Lock()
	defer mu.Unlock()
	if len(moved) > 0 {
		t.Fatalf("addresses changed owner without a give-back:\n%s", strings.Join(moved, "\n"))
	}
}

// TestGrantsSwitchesPools: a pool switches to node grants only once it records nothing
// and every Node's agent speaks node grants; a pool with records stays.
func TestGrantsSwitchesPools(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	var nodes corev1.NodeList
	if err := e.Client.List(ctx, &nodes); err != nil {
		t.Fatal(err)
	}
	for i := range nodes.Items { // other tests' nodes: registered, as their agents would
		registerNode(t, e, nodes.Items[i].Name, 2)
	}
	for _, n := range []string{"gsw-a", "gsw-b"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}
		if err := e.Client.Create(ctx, node); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Client.Delete(context.Background(), node) })
	}
	empty := createRecordsPool(t, e, "grants-switch", "10.22.0.0/24", "10.22.0.10-10.22.0.20")
	const recSubnet = "10.22.1.0/24"
	withRecords := createRecordsPool(t, e, "grants-switch-records", recSubnet, "10.22.1.10-10.22.1.20")
	a := netip.MustParseAddr
	recs, err := records.Encode(netip.MustParsePrefix(recSubnet), []records.Record{
		{IP: a("10.22.1.10"), Owner: records.ReserveOwner("gsw-a")},              // gsw-a's reserve
		{IP: a("10.22.1.11"), Owner: records.OwnerOf("uid-db-0", "ctr", "eth0")}, // a pod on gsw-b
		{IP: a("10.22.1.12"), Owner: records.OwnerOf("uid-web", "ctr", "eth0")},  // its endpoint comes later
	})
	if err != nil {
		t.Fatal(err)
	}
	withRecords.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: recs}
	if err := e.Client.Status().Update(ctx, withRecords); err != nil {
		t.Fatal(err)
	}
	endpoint := func(name, uid, node, addr string) {
		se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
		se.Status.Current = v2beta1.PodIPAllocation{UID: uid, Node: node, IPs: []v2beta1.IPAllocationDetail{{
			NIC: "eth0", IPv4: ptr.To(addr + "/24"), IPv4Pool: ptr.To(withRecords.Name)}}}
		if err := e.Client.Create(ctx, se); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Client.Delete(context.Background(), se) })
	}
	endpoint("db-0", "uid-db-0", "gsw-b", "10.22.1.11")
	startController(t, e)
	registerNode(t, e, "gsw-a", 2)
	time.Sleep(500 * time.Millisecond)
	if sp := getPool(t, e, empty.Name); sp.GrantsMode() {
		t.Fatal("the pool switched while node gsw-b's agent does not speak node grants")
	}
	registerNode(t, e, "gsw-b", 2)
	testenv.WaitFor(t, "the pool switches", func() (bool, error) { return getPool(t, e, empty.Name).GrantsMode(), nil })

	// The pool with records switches too, and each address its records hold goes to
	// the node that holds it; the one whose pod has no endpoint yet stays in the
	// records, granted to nobody, until the endpoint shows.
	testenv.WaitFor(t, "the records move to node grants", func() (bool, error) {
		per, _, _ := grantsOf(t, e, withRecords.Name, recSubnet)
		return getPool(t, e, withRecords.Name).GrantsMode() &&
			slices.Equal(per["gsw-a"], []netip.Addr{a("10.22.1.10")}) && slices.Equal(per["gsw-b"], []netip.Addr{a("10.22.1.11")}), nil
	})
	left, err := records.Decode(netip.MustParsePrefix(recSubnet), getPool(t, e, withRecords.Name).Status.Orbweaver.Records)
	if err != nil || len(left) != 1 || left[0].IP != a("10.22.1.12") {
		t.Fatalf("records left %v (%v), want only 10.22.1.12", left, err)
	}
	endpoint("web", "uid-web", "gsw-a", "10.22.1.12")
	testenv.WaitFor(t, "the last record moves", func() (bool, error) {
		per, _, _ := grantsOf(t, e, withRecords.Name, recSubnet)
		st := getPool(t, e, withRecords.Name).Status.Orbweaver
		return len(st.Records) == 0 && slices.Equal(per["gsw-a"], []netip.Addr{a("10.22.1.10"), a("10.22.1.12")}), nil
	})
}

func registerNode(t *testing.T, e *testenv.Env, name string, protocol int32) {
	t.Helper()
	ctx := context.Background()
	n := &ipamv1.IPAMNode{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(ctx, n); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, n); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Cleanup(func() { _ = e.Client.Delete(context.Background(), n) })
	}
	n.Status.Protocol = protocol
	if err := e.Client.Status().Update(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func getPool(t *testing.T, e *testenv.Env, name string) *v2beta1.SpiderIPPool {
	t.Helper()
	sp := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(context.Background(), client.ObjectKey{Name: name}, sp); err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestGrantsGoneNode deletes a node (its IPAMNode; no Node object exists here) that
// holds grants, one of them held by a StatefulSet pod's endpoint. Once the node has been
// gone for the gone delay, the controller takes back what no endpoint holds and keeps
// the held address, and when another node asks for that address by name it moves there.
// While the node is not gone for good yet, nothing moves.
func TestGrantsGoneNode(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	const pool, subnet = "grants-gone", "10.21.0.0/24"
	createPool(t, e, pool, subnet, "10.21.0.10-10.21.0.19")
	startControllerWith(t, e, Params{GoneDelay: 2 * time.Second})
	setDemand(t, e, "gn-a", pool, 3, 3)
	var mine []netip.Addr
	testenv.WaitFor(t, "gn-a granted 3", func() (bool, error) {
		per, _, _ := grantsOf(t, e, pool, subnet)
		mine = per["gn-a"]
		return len(mine) == 3, nil
	})
	held := mine[1]
	se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db-0"}}
	se.Status.Current = v2beta1.PodIPAllocation{UID: "uid-db-0", Node: "gn-a", IPs: []v2beta1.IPAllocationDetail{{
		NIC: "eth0", IPv4: ptr.To(held.String() + "/24"), IPv4Pool: ptr.To(pool)}}}
	if err := e.Client.Create(ctx, se); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), se) })

	if err := e.Client.Delete(ctx, &ipamv1.IPAMNode{ObjectMeta: metav1.ObjectMeta{Name: "gn-a"}}); err != nil {
		t.Fatal(err)
	}
	// Within the gone delay, nothing moves.
	time.Sleep(500 * time.Millisecond)
	if per, _, _ := grantsOf(t, e, pool, subnet); len(per["gn-a"]) != 3 {
		t.Fatalf("gn-a lost grants %v before the gone delay", per["gn-a"])
	}
	testenv.WaitFor(t, "gn-a keeps only the held address", func() (bool, error) {
		per, _, _ := grantsOf(t, e, pool, subnet)
		return slices.Equal(per["gn-a"], []netip.Addr{held}), nil
	})

	// The StatefulSet pod comes back on gn-b and asks for its address.
	n := &ipamv1.IPAMNode{ObjectMeta: metav1.ObjectMeta{Name: "gn-b"}}
	n.Spec.Pools = []ipamv1.PoolDemand{{Pool: pool, IPs: []string{held.String()}}}
	if err := e.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), n) })
	testenv.WaitFor(t, "the held address moves to gn-b", func() (bool, error) {
		per, _, _ := grantsOf(t, e, pool, subnet)
		return len(per["gn-a"]) == 0 && slices.Equal(per["gn-b"], []netip.Addr{held}), nil
	})
}
