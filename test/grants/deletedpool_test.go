package grants

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestNodeGrantsDeletedPool: a node that served a pool goes on asking for grants of
// other pools after that pool is deleted (its line leaves the node's demand; it used to
// block every demand write, so the node's next pods waited out the grant wait).
func TestNodeGrantsDeletedPool(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := grantsPool(ctx, t, e, "grants-deleted-a", "10.83.0.0/24", "10.83.0.10-10.83.0.19", false, nil)
	grantsPool(ctx, t, e, "grants-deleted-b", "10.83.1.0/24", "10.83.1.10-10.83.1.19", false, nil)
	ns := podNamespace(ctx, t, e, "grants-deleted")
	startController(t, e)
	n := startNodes(ctx, t, e, "grants-deleted-node", 1)[0]
	podOn := func(name, pool string) *corev1.Pod {
		return boundPod(ctx, t, e, ns.Name, name, n.name, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["` + pool + `"]}`}, nil)
	}
	p := podOn("on-a", first.Name)
	if _, err := n.add(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := n.del(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // the node's next demand passes see the pool gone
	if _, err := n.add(ctx, podOn("on-b", "grants-deleted-b")); err != nil {
		t.Fatal(err)
	}
}

// TestNodeGrantsFullPoolPassedOver: a pod whose pools are [full, roomy] gets an address
// of the second at once: the first counts every address held and the node holds none
// of it free, so no grant will come. Waiting for one (the grant wait is 20 s here) would
// outlast the ADD's 10 s.
func TestNodeGrantsFullPoolPassedOver(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	grantsPool(ctx, t, e, "grants-full-a", "10.84.0.0/24", "10.84.0.10-10.84.0.19", false, func(st *v2beta1.IPPoolStatus) {
		// As the pool controller counts the endpoints of other nodes' pods.
		st.AllocatedIPCount, st.TotalIPCount = ptr.To[int64](10), ptr.To[int64](10)
	})
	grantsPool(ctx, t, e, "grants-full-b", "10.84.1.0/24", "10.84.1.10-10.84.1.19", false, nil)
	ns := podNamespace(ctx, t, e, "grants-full")
	n := startNodes(ctx, t, e, "grants-full-node", 1)[0]
	startController(t, e)
	p := boundPod(ctx, t, e, ns.Name, "two-pools", n.name, map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["grants-full-a","grants-full-b"]}`}, nil)
	addCtx, addCancel := context.WithTimeout(ctx, 10*time.Second)
	defer addCancel()
	a, err := n.add(addCtx, p)
	if err != nil {
		t.Fatal(err)
	}
	if !netip.MustParsePrefix("10.84.1.0/24").Contains(a) {
		t.Errorf("got %s, want an address of grants-full-b", a)
	}
}
