package crdcheck

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// TestUpgrade, against a real API server serving SpiderPool v1.2.2's CRDs with a pool
// SpiderPool wrote (status.allocatedIPs): Upgrade puts orbweaver's CRDs in place of the
// three that lack its fields and of none other, Ensure then passes, the pool SpiderPool
// wrote keeps its spec and records, the API server keeps orbweaver's fields from then
// on, and a second Upgrade writes nothing.
func TestUpgrade(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	p := Params{Client: e.Client, Component: "orbweaver-test", Log: testr.New(t)}
	want, err := ReadCRDs(os.DirFS("../../charts/orbweaver"), "crds")
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(Kinds()) {
		t.Fatalf("%d CRDs in the chart, want %d", len(want), len(Kinds()))
	}

	installCRDs(t, e, spiderPoolCRDs)
	t.Cleanup(func() { installCRDs(t, e, orbweaverCRDs) })
	records := `{"10.98.0.10":{"pod":"default/web-0","podUid":"0b6f5c3e-1111-4a3e-9d2c-000000000001"}}`
	var sp *v2beta1.SpiderIPPool
	testenv.WaitFor(t, "SpiderPool's schema served", func() (bool, error) {
		sp = &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{GenerateName: "spiderpools-"}, Spec: v2beta1.IPPoolSpec{
			Subnet: "10.98.0.0/24", IPs: []v2beta1.IPOrRange{"10.98.0.10-10.98.0.20"},
			Orbweaver: &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptrTo(v2beta1.ReclaimNever)},
		}}
		if err := e.Client.Create(ctx, sp); err != nil {
			return false, err
		}
		if sp.Spec.Orbweaver == nil {
			return true, nil
		}
		return false, e.Client.Delete(ctx, sp)
	})
	t.Cleanup(func() { _ = e.Client.Delete(ctx, sp) })
	sp.Status.AllocatedIPs = &records
	if err := e.Client.Status().Update(ctx, sp); err != nil {
		t.Fatal(err)
	}

	wrote, err := Upgrade(ctx, p, want)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(wrote)
	if w := []string{"spiderendpoints.spiderpool.spidernet.io", "spiderippools.spiderpool.spidernet.io", "spidersubnets.spiderpool.spidernet.io"}; !slices.Equal(wrote, w) {
		t.Errorf("Upgrade wrote %v, want %v (spiderreservedips' schema is SpiderPool's, IPAMNode and IPBlock were orbweaver's)", wrote, w)
	}
	if err := Ensure(ctx, p); err != nil {
		t.Fatalf("Ensure after Upgrade: %v", err)
	}

	got := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, client.ObjectKeyFromObject(sp), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.AllocatedIPs == nil || *got.Status.AllocatedIPs != records || len(got.Spec.IPs) != 1 {
		t.Errorf("SpiderPool's pool after the upgrade: spec.ips %v, status.allocatedIPs %v; want them kept", got.Spec.IPs, got.Status.AllocatedIPs)
	}
	testenv.WaitFor(t, "orbweaver's schema served", func() (bool, error) {
		got.Spec.Orbweaver = &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptrTo(v2beta1.ReclaimNever)}
		if err := e.Client.Update(ctx, got); err != nil {
			return false, err
		}
		return got.Spec.Orbweaver != nil, nil
	})

	again, err := Upgrade(ctx, p, want)
	if err != nil || len(again) != 0 {
		t.Errorf("a second Upgrade wrote %v (%v), want nothing", again, err)
	}
}
