package grants

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/testenv"
)

// TestNodeGrantsDeletedPool: a node that served a pool goes on asking for grants of
// other pools after that pool is deleted (its line leaves the node's demand; it used to
// block every demand write, so the node's next pods waited out the grant wait).
func TestNodeGrantsDeletedPool(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newPool := func(name, subnet, ips string) *v2beta1.SpiderIPPool {
		sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(subnet), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(ips)}}}
		if err := e.Client.Create(ctx, sp); err != nil {
			t.Fatal(err)
		}
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
		if err := e.Client.Status().Update(ctx, sp); err != nil {
			t.Fatal(err)
		}
		return sp
	}
	first := newPool("grants-deleted-a", "10.83.0.0/24", "10.83.0.10-10.83.0.19")
	newPool("grants-deleted-b", "10.83.1.0/24", "10.83.1.10-10.83.1.19")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "grants-deleted"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	startController(t, e)
	dir, err := os.MkdirTemp("", "grants")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n := &node{name: "grants-deleted-node", socket: filepath.Join(dir, "a.sock")}
	n.api = api.NewUnixClient(n.socket)
	if err := e.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}); err != nil {
		t.Fatal(err)
	}
	n.start(t, e)
	t.Cleanup(func() { n.halt(t) })
	podOn := func(name, pool string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: name,
			Annotations: map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["` + pool + `"]}`}},
			Spec: corev1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}}}
		if err := e.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		return p
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
	newPool := func(name, subnet, ips string, full bool) {
		sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(subnet), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(ips)}}}
		if err := e.Client.Create(ctx, sp); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Client.Delete(context.Background(), sp) })
		sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
		if full { // as the pool controller counts endpoints of other nodes' pods
			sp.Status.AllocatedIPCount, sp.Status.TotalIPCount = ptr.To[int64](10), ptr.To[int64](10)
		}
		if err := e.Client.Status().Update(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	newPool("grants-full-a", "10.84.0.0/24", "10.84.0.10-10.84.0.19", true)
	newPool("grants-full-b", "10.84.1.0/24", "10.84.1.10-10.84.1.19", false)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "grants-full"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "grants")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	n := &node{name: "grants-full-node", socket: filepath.Join(dir, "a.sock")}
	n.api = api.NewUnixClient(n.socket)
	if err := e.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name}}); err != nil {
		t.Fatal(err)
	}
	n.start(t, e)
	t.Cleanup(func() { n.halt(t) })
	startController(t, e)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "two-pools",
		Annotations: map[string]string{ipam.AnnoPodIPPool: `{"ipv4":["grants-full-a","grants-full-b"]}`}},
		Spec: corev1.PodSpec{NodeName: n.name, AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}}}
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
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
