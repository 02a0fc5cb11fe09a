package grants

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestNodeGrantsIPByOrdinal: a StatefulSet with orbweaver.io/ip-by-ordinal on a pool in
// Grants mode (SpiderPool #3488). Its pods, on two nodes, each take the address of
// their ordinal, whichever node the controller granted it to first; a re-created pod
// keeps its address on the other node; the pod whose ordinal's address another pod
// holds fails, naming it, and gets no other address; an ordinal beyond the pool fails
// saying the pool's size. No address is ever in two endpoints.
func TestNodeGrantsIPByOrdinal(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const pool, subnet = "grants-ordinal", "10.82.0.0/24"
	grantsPool(ctx, t, e, pool, subnet, "10.82.0.10-10.82.0.17", true, nil)
	ns := podNamespace(ctx, t, e, "grants-ordinal")
	startController(t, e)
	short := func(c *agent.Config) { c.GrantWait = 3 * time.Second }
	nodes := []*node{
		startTunedNode(ctx, t, e, "grants-ordinal-node-0", short),
		startTunedNode(ctx, t, e, "grants-ordinal-node-1", short),
	}
	sts := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "sts-uid-ordinal", Controller: ptr.To(true)}
	byOrdinal := map[string]string{ipam.AnnoIPByOrdinal: "true"}
	first := netip.MustParseAddr("10.82.0.10").As4()
	addrOf := func(i int) netip.Addr { // the pool's 8 addresses, 10.82.0.10 on
		a := first
		a[3] += byte(i)
		return netip.AddrFrom4(a)
	}

	// A pod of no StatefulSet takes one address first, on node 1.
	squatter := boundPod(ctx, t, e, ns.Name, "squatter", nodes[1].name, nil, nil)
	taken, err := nodes[1].add(ctx, squatter)
	if err != nil {
		t.Fatal(err)
	}
	takenOrdinal := -1
	for i := range 8 {
		if addrOf(i) == taken {
			takenOrdinal = i
		}
	}
	if takenOrdinal < 0 {
		t.Fatalf("the squatter got %s, outside the pool", taken)
	}

	pods := map[int]*corev1.Pod{}
	for i := range 6 {
		if i == takenOrdinal {
			continue
		}
		n := nodes[i%2]
		p := boundPod(ctx, t, e, ns.Name, fmt.Sprintf("db-%d", i), n.name, byOrdinal, &sts)
		start := time.Now()
		got, err := n.add(ctx, p)
		t.Logf("db-%d on %s: %s in %s", i, n.name, got, time.Since(start).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("db-%d on %s: %v", i, n.name, err)
		}
		if got != addrOf(i) {
			t.Fatalf("db-%d got %s, want its ordinal's %s", i, got, addrOf(i))
		}
		pods[i] = p
	}

	// The ordinal whose address the squatter holds: refused, naming the address, and no
	// other address given. On the squatter's node the refusal is at once; on the other
	// after the grant wait.
	for _, n := range nodes {
		p := boundPod(ctx, t, e, ns.Name, fmt.Sprintf("db-%d", takenOrdinal), n.name, byOrdinal, &sts)
		_, err := n.add(ctx, p)
		if err == nil || !strings.Contains(err.Error(), taken.String()) || !strings.Contains(err.Error(), "ordinal") {
			t.Fatalf("db-%d on %s, whose address %s the squatter holds: %v; want a refusal naming it", takenOrdinal, n.name, taken, err)
		}
		forceDeletePod(ctx, t, e, p)
	}

	// Beyond the pool's 8 addresses.
	far := boundPod(ctx, t, e, ns.Name, "db-8", nodes[0].name, byOrdinal, &sts)
	if _, err := nodes[0].add(ctx, far); err == nil || !strings.Contains(err.Error(), "has 8 addresses") {
		t.Fatalf("db-8 beyond a pool of 8: %v, want a refusal saying the pool's size", err)
	}

	// db-1 re-created on the other node keeps its address.
	moved := 1
	if moved == takenOrdinal {
		moved = 2
	}
	from := nodes[moved%2]
	if err := from.del(ctx, pods[moved]); err != nil {
		t.Fatal(err)
	}
	forceDeletePod(ctx, t, e, pods[moved])
	to := nodes[1-moved%2]
	again := boundPod(ctx, t, e, ns.Name, fmt.Sprintf("db-%d", moved), to.name, byOrdinal, &sts)
	start := time.Now()
	got, err := to.add(ctx, again)
	t.Logf("db-%d re-created on %s: %s in %s", moved, to.name, got, time.Since(start).Round(time.Millisecond))
	if err != nil || got != addrOf(moved) {
		t.Fatalf("db-%d re-created on %s: %s, %v; want its address %s", moved, to.name, got, err, addrOf(moved))
	}

	var eps v2beta1.SpiderEndpointList
	if err := e.Client.List(ctx, &eps, client.InNamespace(ns.Name)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, se := range eps.Items {
		for _, nic := range se.Status.Current.IPs {
			a := ptr.Deref(nic.IPv4, "")
			if other, dup := seen[a]; dup {
				t.Errorf("%s is in the endpoints of %s and %s", a, other, se.Name)
			}
			seen[a] = se.Name
		}
	}
}
