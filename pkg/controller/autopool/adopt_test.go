package autopool

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/webhooktest"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// TestAdoptsSpiderPoolAutoPool: an application's auto pool that SpiderPool's controller
// made before orbweaver was installed (its name, labels, pod affinity, owner reference,
// finalizer and size annotation, and the subnet's status.controlledIPPools naming it,
// all as SpiderPool v1.2.2 writes them; addresses that are not the subnet's lowest) is
// the application's pool for orbweaver too: no second pool is made, its addresses stay,
// and a scale-up grows that pool.
func TestAdoptsSpiderPoolAutoPool(t *testing.T) {
	e := testenv.Require(t, env)
	f := &fixture{t: t, e: e, ctx: context.Background(), reg: prometheus.NewRegistry()}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "autopool-"}}
	if err := e.Client.Create(f.ctx, ns); err != nil {
		t.Fatal(err)
	}
	f.ns = ns.Name
	// What SpiderPool left, written before orbweaver's webhooks serve.
	subnet := f.subnet("sp-made-subnet", "10.250.0.0/16", "10.250.200.0-10.250.200.255")
	d := deployment("web", 2, subnetAnno("sp-made-subnet", "+3"))
	f.create(d)
	app := ipam.Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: f.ns, Name: "web", UID: string(d.UID)}
	name := ipam.AutoPoolName(4, app, "eth0")
	labels := ipam.AutoPoolLabels(app, "sp-made-subnet", "eth0", 4, true)
	labels["ipam.spidernet.io/ippool-cidr"] = "10-250-0-0-16"
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Finalizers: []string{v2beta1.Finalizer},
			Annotations: map[string]string{ipam.AnnoPodIPPoolIPNumber: "+3"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: v2beta1.SchemeGroupVersion.String(), Kind: "SpiderSubnet",
				Name: subnet.Name, UID: subnet.UID, Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: "10.250.0.0/16",
			IPs: []v2beta1.IPOrRange{"10.250.200.20-10.250.200.24"}, PodAffinity: ipam.AutoPoolAffinity(app)},
	}
	f.create(pool)
	controlled := fmt.Sprintf(`{%q:{"ips":["10.250.200.20-10.250.200.24"],"application":"apps_v1_Deployment_%s_web"}}`, name, f.ns)
	testenv.WaitFor(t, "the subnet's status as SpiderPool wrote it", func() (bool, error) {
		if err := e.Client.Get(f.ctx, client.ObjectKeyFromObject(subnet), subnet); err != nil {
			return false, err
		}
		subnet.Status.ControlledIPPools = ptr.To(controlled)
		subnet.Status.TotalIPCount, subnet.Status.AllocatedIPCount = ptr.To(int64(256)), ptr.To(int64(5))
		err := e.Client.Status().Update(f.ctx, subnet)
		return err == nil, err
	})

	webhooktest.Serve(t, e, nil)
	f.start(Params{DefaultFlexibleIPNumber: 1})
	time.Sleep(2 * time.Second) // what a wrong controller would do, it does by now
	got := f.waitPool("Deployment", "web", sized(5))
	if got.Name != name || poolIPs(t, &got).String() != "10.250.200.20-10.250.200.24" {
		t.Fatalf("the application's pool is %s with %s, want SpiderPool's %s with 10.250.200.20-10.250.200.24", got.Name, poolIPs(t, &got), name)
	}
	f.update(d, func() { d.Spec.Replicas = ptr.To[int32](3) })
	got = f.waitPool("Deployment", "web", sized(6))
	if got.Name != name || !poolIPs(t, &got).Contains(netip.MustParseAddr("10.250.200.20")) || !poolIPs(t, &got).Contains(netip.MustParseAddr("10.250.200.24")) {
		t.Fatalf("after scaling to 3 the pool is %s with %s: SpiderPool's addresses should stay", got.Name, poolIPs(t, &got))
	}
}
