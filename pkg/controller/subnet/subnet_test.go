package subnet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/testmetrics"
)

func createSubnet(t *testing.T, e *testenv.Env, name, cidr string, finalizer bool, ips ...v2beta1.IPOrRange) {
	t.Helper()
	s := &v2beta1.SpiderSubnet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v2beta1.SubnetSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(cidr), IPs: ips},
	}
	if finalizer {
		s.Finalizers = []string{v2beta1.Finalizer}
	}
	create(t, e, s)
}

// createPool creates a pool (no webhook runs here: labels are the test's) and removes
// it when the test ends.
func createPool(t *testing.T, e *testenv.Env, name, cidr string, labels map[string]string, ips ...v2beta1.IPOrRange) *v2beta1.SpiderIPPool {
	t.Helper()
	p := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(cidr), IPs: ips},
	}
	create(t, e, p)
	return p
}

func create(t *testing.T, e *testenv.Env, obj client.Object) {
	t.Helper()
	if err := e.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.Client.Patch(ctx, obj, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
		_ = e.Client.Delete(ctx, obj)
	})
}

// waitSubnet waits until cond holds for the subnet as the API server has it.
func waitSubnet(t *testing.T, e *testenv.Env, name, what string, cond func(s *v2beta1.SpiderSubnet) bool) *v2beta1.SpiderSubnet {
	t.Helper()
	var s *v2beta1.SpiderSubnet
	testenv.WaitFor(t, fmt.Sprintf("subnet %s: %s", name, what), func() (bool, error) {
		s = &v2beta1.SpiderSubnet{}
		if err := e.Client.Get(context.Background(), client.ObjectKey{Name: name}, s); err != nil {
			return false, err
		}
		return cond(s), nil
	})
	return s
}

// status holds when the subnet shows exactly these controlledIPPools and counts.
func status(pools string, total, allocated int64) func(*v2beta1.SpiderSubnet) bool {
	return func(s *v2beta1.SpiderSubnet) bool {
		return ptr.Deref(s.Status.ControlledIPPools, "") == pools &&
			ptr.Deref(s.Status.TotalIPCount, -1) == total && ptr.Deref(s.Status.AllocatedIPCount, -1) == allocated
	}
}

func condition(s *v2beta1.SpiderSubnet, typ string) *metav1.Condition {
	if s.Status.Orbweaver == nil {
		return nil
	}
	return meta.FindStatusCondition(s.Status.Orbweaver.Conditions, typ)
}

func hasCondition(typ string, st metav1.ConditionStatus, reason string) func(*v2beta1.SpiderSubnet) bool {
	return func(s *v2beta1.SpiderSubnet) bool {
		c := condition(s, typ)
		return c != nil && c.Status == st && c.Reason == reason && c.ObservedGeneration == s.Generation
	}
}

func waitEvent(t *testing.T, e *testenv.Env, subnet, reason string) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("event %s on subnet %s", reason, subnet), func() (bool, error) {
		var events corev1.EventList
		if err := e.Client.List(context.Background(), &events, client.InNamespace(metav1.NamespaceDefault)); err != nil {
			return false, err
		}
		return slices.ContainsFunc(events.Items, func(ev corev1.Event) bool {
			return ev.InvolvedObject.Kind == "SpiderSubnet" && ev.InvolvedObject.Name == subnet && ev.Reason == reason
		}), nil
	})
}

// TestControlledIPPools: a subnet with a manual pool and an auto pool lists both in
// controlledIPPools (the auto pool with its application), allocatedIPCount is the sum
// of their addresses, and both follow the pools: a pool growing, a pool moved to
// another subnet by its label, a pool deleted. `kubectl get ss` prints the counts.
func TestControlledIPPools(t *testing.T) {
	e := testenv.Require(t, env)
	reg := startController(t, e)
	ctx := context.Background()
	const name, cidr = "nginx-subnet-v4", "10.36.0.0/16"
	createSubnet(t, e, name, cidr, false, "10.36.100.0-10.36.100.255")
	waitSubnet(t, e, name, "counts with no pool", func(s *v2beta1.SpiderSubnet) bool {
		return s.Status.ControlledIPPools == nil && status("", 256, 0)(s) &&
			hasCondition(v2beta1.SubnetExhaustedCondition, metav1.ConditionFalse, v2beta1.SubnetFreeAddressesReason)(s) &&
			hasCondition(v2beta1.SubnetPoolsOutsideCondition, metav1.ConditionFalse, v2beta1.SubnetPoolsInsideReason)(s)
	})

	auto := createPool(t, e, "auto4-nginx-eth0-9a2b3", cidr, autoLabels("apps/v1", "Deployment", "default", "nginx", name), "10.36.100.0-10.36.100.4")
	manual := createPool(t, e, "manual-v4", cidr, nil, "10.36.100.10-10.36.100.19")
	const both = `{"auto4-nginx-eth0-9a2b3":{"ips":["10.36.100.0-10.36.100.4"],"application":"apps_v1_Deployment_default_nginx"},"manual-v4":{"ips":["10.36.100.10-10.36.100.19"]}}`
	waitSubnet(t, e, name, "both pools", status(both, 256, 15))
	if v, ok := testmetrics.Value(t, reg, "orbweaver_subnet_free_addresses", map[string]string{"subnet": name}); !ok || v != 241 {
		t.Fatalf("free addresses gauge = %v (present %t), want 241", v, ok)
	}

	out, err := e.Kubectl(ctx, "get", "ss", name, "--no-headers")
	if err != nil {
		t.Fatal(err)
	}
	// SpiderPool's columns, then AGE.
	if got, want := strings.Fields(out), []string{name, "4", cidr, "15", "256"}; len(got) != len(want)+1 || !slices.Equal(got[:len(want)], want) {
		t.Fatalf("kubectl get ss = %q, want %q and the age", got, want)
	}
	if out, err := e.Kubectl(ctx, "wait", "--for=condition=Ready", "ss/"+name, "--timeout=60s"); err != nil {
		t.Fatalf("kubectl wait --for=condition=Ready ss/%s: %v\n%s", name, err, out)
	}

	auto.Spec.IPs = []v2beta1.IPOrRange{"10.36.100.0-10.36.100.5"}
	if err := e.Client.Update(ctx, auto); err != nil {
		t.Fatal(err)
	}
	waitSubnet(t, e, name, "the auto pool grew", status(strings.Replace(both, "10.36.100.4", "10.36.100.5", 1), 256, 16))

	// The label gives the manual pool to another subnet: this one lets it go.
	manual.Labels = map[string]string{"ipam.spidernet.io/owner-spider-subnet": "another"}
	if err := e.Client.Update(ctx, manual); err != nil {
		t.Fatal(err)
	}
	const autoOnly = `{"auto4-nginx-eth0-9a2b3":{"ips":["10.36.100.0-10.36.100.5"],"application":"apps_v1_Deployment_default_nginx"}}`
	waitSubnet(t, e, name, "the relabelled pool left", status(autoOnly, 256, 6))

	if err := e.Client.Delete(ctx, auto); err != nil {
		t.Fatal(err)
	}
	waitSubnet(t, e, name, "no pool after the deletion", func(s *v2beta1.SpiderSubnet) bool {
		return s.Status.ControlledIPPools == nil && status("", 256, 0)(s)
	})
}

// TestSubnetConditions: Exhausted when pools and a SpiderReservedIP take every address
// (with an event), cleared when the reservation goes; PoolsOutside for a pool with
// addresses outside the subnet's.
func TestSubnetConditions(t *testing.T) {
	e := testenv.Require(t, env)
	startController(t, e)
	ctx := context.Background()
	const name, cidr = "status-small", "10.37.0.0/24"
	createSubnet(t, e, name, cidr, false, "10.37.0.10-10.37.0.13")
	createPool(t, e, "small-a", cidr, nil, "10.37.0.10-10.37.0.12")
	waitSubnet(t, e, name, "one pool, one address left", func(s *v2beta1.SpiderSubnet) bool {
		return status(`{"small-a":{"ips":["10.37.0.10-10.37.0.12"]}}`, 4, 3)(s) &&
			hasCondition(v2beta1.SubnetExhaustedCondition, metav1.ConditionFalse, v2beta1.SubnetFreeAddressesReason)(s)
	})

	r := &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: "status-small-reserved"}, Spec: v2beta1.ReservedIPSpec{IPs: []v2beta1.IPOrRange{"10.37.0.13"}}}
	create(t, e, r)
	s := waitSubnet(t, e, name, "Exhausted", hasCondition(v2beta1.SubnetExhaustedCondition, metav1.ConditionTrue, v2beta1.SubnetNoFreeAddressReason))
	if msg := condition(s, v2beta1.SubnetExhaustedCondition).Message; !strings.Contains(msg, "3 are in pools and 1 reserved") {
		t.Fatalf("Exhausted message = %q", msg)
	}
	waitEvent(t, e, name, EventSubnetExhausted)
	if err := e.Client.Delete(ctx, r); err != nil {
		t.Fatal(err)
	}
	waitSubnet(t, e, name, "not Exhausted without the reservation", hasCondition(v2beta1.SubnetExhaustedCondition, metav1.ConditionFalse, v2beta1.SubnetFreeAddressesReason))

	createPool(t, e, "small-over", cidr, map[string]string{"ipam.spidernet.io/owner-spider-subnet": name}, "10.37.0.13-10.37.0.15")
	s = waitSubnet(t, e, name, "PoolsOutside", hasCondition(v2beta1.SubnetPoolsOutsideCondition, metav1.ConditionTrue, v2beta1.SubnetAddressesOutsideSubnetReason))
	if msg := condition(s, v2beta1.SubnetPoolsOutsideCondition).Message; !strings.Contains(msg, `SpiderIPPool "small-over" has 10.37.0.14-10.37.0.15 (2 addresses)`) {
		t.Fatalf("PoolsOutside message = %q", msg)
	}
	if !status(`{"small-a":{"ips":["10.37.0.10-10.37.0.12"]},"small-over":{"ips":["10.37.0.13"]}}`, 4, 4)(s) {
		t.Fatalf("status = %v %v %v", ptr.Deref(s.Status.ControlledIPPools, "<nil>"), s.Status.TotalIPCount, s.Status.AllocatedIPCount)
	}
	waitEvent(t, e, name, EventSubnetPoolsOutside)
}

// TestDeletedSubnetWaitsForPools: a deleted subnet with the finalizer stays while a pool
// belongs to it, saying which, and goes once the pool is gone.
func TestDeletedSubnetWaitsForPools(t *testing.T) {
	e := testenv.Require(t, env)
	startController(t, e)
	ctx := context.Background()
	const name, cidr = "status-deleted", "10.38.0.0/24"
	createSubnet(t, e, name, cidr, true, "10.38.0.10-10.38.0.20")
	pool := createPool(t, e, "deleted-pool", cidr, nil, "10.38.0.10")
	waitSubnet(t, e, name, "the pool listed", status(`{"deleted-pool":{"ips":["10.38.0.10"]}}`, 11, 1))

	if err := e.Client.Delete(ctx, &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	s := waitSubnet(t, e, name, "DeletionBlocked", hasCondition(v2beta1.SubnetDeletionBlockedCondition, metav1.ConditionTrue, v2beta1.SubnetPoolsRemainReason))
	if msg := condition(s, v2beta1.SubnetDeletionBlockedCondition).Message; !strings.Contains(msg, "belong to the subnet: deleted-pool") {
		t.Fatalf("DeletionBlocked message = %q", msg)
	}
	if s.DeletionTimestamp == nil || !slices.Contains(s.Finalizers, v2beta1.Finalizer) {
		t.Fatalf("deleted subnet: finalizers %v, deletionTimestamp %v", s.Finalizers, s.DeletionTimestamp)
	}
	waitEvent(t, e, name, EventSubnetDeletionWaiting)

	if err := e.Client.Delete(ctx, pool); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the subnet goes with its last pool", func() (bool, error) {
		err := e.Client.Get(ctx, client.ObjectKey{Name: name}, &v2beta1.SpiderSubnet{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
}
