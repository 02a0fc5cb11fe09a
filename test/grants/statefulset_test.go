package grants

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestNodeGrantsStatefulSetMoves: a StatefulSet pod keeps its address while it is
// re-created on another node, back and forth, on a pool in Grants mode. The new node asks for the address by name, the old node gives it
// back once the old pod instance is gone from the API server, and no address is ever in
// two endpoints.
func TestNodeGrantsStatefulSetMoves(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const pool, subnet = "grants-sts", "10.81.0.0/24"
	grantsPool(ctx, t, e, pool, subnet, "10.81.0.10-10.81.0.29", true, nil)
	ns := podNamespace(ctx, t, e, "grants-sts")
	startController(t, e)
	nodes := startNodes(ctx, t, e, "grants-sts-node", 2)
	sts := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: "sts-uid-grants", Controller: ptr.To(true)}
	newPod := func(name, nodeName string, owner *metav1.OwnerReference) *corev1.Pod {
		return boundPod(ctx, t, e, ns.Name, name, nodeName, nil, owner)
	}

	pod := newPod("db-0", nodes[0].name, &sts)
	want, err := nodes[0].add(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	// Other pods take addresses on both nodes, and both nodes hold free ones: a pod
	// that lost its address would get another at once.
	for i := range 9 {
		p := newPod(fmt.Sprintf("fill-%d", i), nodes[i%2].name, nil)
		if _, err := nodes[i%2].add(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	on := 0
	for round := 1; round <= 4; round++ {
		if err := nodes[on].del(ctx, pod); err != nil {
			t.Fatal(err)
		}
		forceDeletePod(ctx, t, e, pod)
		on = 1 - on
		pod = newPod("db-0", nodes[on].name, &sts)
		got, err := nodes[on].add(ctx, pod)
		if err != nil {
			t.Fatalf("round %d: ADD on %s: %v", round, nodes[on].name, err)
		}
		if got != want {
			t.Fatalf("round %d: the re-created pod got %s on %s, want its address %s", round, got, nodes[on].name, want)
		}
		testenv.WaitFor(t, "the address granted to the pod's node", func() (bool, error) {
			return grantedTo(t, e, pool, subnet)[want] == nodes[on].name, nil
		})
		var se v2beta1.SpiderEndpoint
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(pod), &se); err != nil {
			t.Fatal(err)
		}
		if se.Status.Current.Node != nodes[on].name || se.Status.Current.UID != string(pod.UID) {
			t.Fatalf("round %d: endpoint on %s for %s, want %s and the new pod", round, se.Status.Current.Node, se.Status.Current.UID, nodes[on].name)
		}
	}

	// No address is in two endpoints.
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
	if len(seen) != 10 {
		t.Errorf("%d addresses held, want 10", len(seen))
	}
}

// grantedTo reads which node each address of pool is granted to.
func grantedTo(t *testing.T, e *testenv.Env, pool, subnet string) map[netip.Addr]string {
	t.Helper()
	var blocks ipamv1.IPBlockList
	if err := e.Client.List(context.Background(), &blocks, client.MatchingLabels{ipam.BlockPoolLabel: pool}); err != nil {
		t.Fatal(err)
	}
	out := map[netip.Addr]string{}
	for i := range blocks.Items {
		g, err := ipam.GrantBlockOf(netip.MustParsePrefix(subnet), &blocks.Items[i])
		if err != nil {
			t.Fatal(err)
		}
		for a, n := range g.Owners {
			out[a] = n
		}
	}
	return out
}
