package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/webhooktest"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

func pool(name, cidr string, opts ...func(*v2beta1.SpiderIPPool)) *v2beta1.SpiderIPPool {
	p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(cidr)}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func ips(ss ...string) func(*v2beta1.SpiderIPPool) {
	return func(p *v2beta1.SpiderIPPool) {
		for _, s := range ss {
			p.Spec.IPs = append(p.Spec.IPs, v2beta1.IPOrRange(s))
		}
	}
}

func gateway(gw string) func(*v2beta1.SpiderIPPool) {
	return func(p *v2beta1.SpiderIPPool) { g := v2beta1.IPAddress(gw); p.Spec.Gateway = &g }
}

func route(dst, gw string) func(*v2beta1.SpiderIPPool) {
	return func(p *v2beta1.SpiderIPPool) {
		p.Spec.Routes = append(p.Spec.Routes, v2beta1.Route{Dst: dst, Gw: v2beta1.IPAddress(gw)})
	}
}

// causes returns "path: type" of each cause of an Invalid error.
func causes(err error) []string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	var out []string
	for _, c := range status.Status().Details.Causes {
		out = append(out, c.Field+": "+string(c.Type))
	}
	slices.Sort(out)
	return out
}

// TestWebhooksAgainstTheAPIServer: the API server calls the webhooks; a pool is
// defaulted (merged ranges, version, label, finalizer); invalid objects are refused with
// every problem at its field path and nothing is stored; an overlap with a stored pool is
// refused; a shrink under an allocated address is refused.
func TestWebhooksAgainstTheAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	webhooktest.Serve(t, e, nil)
	ctx := context.Background()
	cleanup := func(p *v2beta1.SpiderIPPool) {
		t.Cleanup(func() {
			// No controller removes the finalizer in this test.
			_ = e.Client.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
			_ = e.Client.Delete(context.Background(), p)
		})
	}

	a := pool("wh-a", "10.90.0.0/24", ips("10.90.0.20", "10.90.0.10-10.90.0.19"))
	if err := e.Client.Create(ctx, a); err != nil {
		t.Fatalf("a valid pool was refused: %v", err)
	}
	cleanup(a)
	if got := fmt.Sprint(a.Spec.IPs); got != "[10.90.0.10-10.90.0.20]" {
		t.Errorf("spec.ips stored as %s, want the merged range", got)
	}
	if a.Spec.IPVersion == nil || *a.Spec.IPVersion != 4 || a.Labels[webhook.LabelIPPoolCIDR] != "10-90-0-0-24" || !slices.Contains(a.Finalizers, v2beta1.Finalizer) {
		t.Errorf("not defaulted: ipVersion %v, labels %v, finalizers %v", a.Spec.IPVersion, a.Labels, a.Finalizers)
	}

	for _, tt := range []struct {
		name string
		obj  *v2beta1.SpiderIPPool
		want []string
	}{
		{"several problems at once", pool("wh-bad", "10.91.0.0/24", ips("10.91.0.5", "fd00::1", "10.92.0.1"),
			gateway("10.99.0.1"), route("0.0.0.0/0", "10.91.0.1")), []string{"spec.gateway: FieldValueInvalid", "spec.ips[1]: FieldValueInvalid", "spec.ips[2]: FieldValueInvalid", "spec.routes[0].dst: FieldValueInvalid"}},
		{"overlaps a stored pool", pool("wh-b", "10.90.0.0/24", ips("10.90.0.15-10.90.0.30")), []string{"spec.ips: FieldValueForbidden"}},
		{"non-canonical subnet", pool("wh-c", "10.93.0.1/24", ips("10.93.0.5")), []string{"spec.subnet: FieldValueInvalid"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := e.Client.Create(ctx, tt.obj)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			if got := causes(err); !slices.Equal(got, tt.want) {
				t.Fatalf("refused with %v, want %v (%v)", got, tt.want, err)
			}
			if err := e.Client.Get(ctx, client.ObjectKeyFromObject(tt.obj), &v2beta1.SpiderIPPool{}); !apierrors.IsNotFound(err) {
				t.Fatalf("a refused pool was stored: %v", err)
			}
		})
	}

	t.Run("a shrink under an allocated address", func(t *testing.T) {
		// Allocate 10.90.0.20 in a's records, as an agent would, then drop it from spec.ips.
		p := &v2beta1.SpiderIPPool{}
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(a), p); err != nil {
			t.Fatal(err)
		}
		if err := allocateForTest(p, "10.90.0.20"); err != nil {
			t.Fatal(err)
		}
		if err := e.Client.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Spec.IPs = []v2beta1.IPOrRange{"10.90.0.10-10.90.0.19"}
		err := e.Client.Update(ctx, p)
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "10.90.0.20") {
			t.Fatalf("removing an allocated address: %v, want Invalid naming 10.90.0.20", err)
		}
	})
}

// TestGrantsPoolShrinkAgainstTheAPIServer: for a pool in Grants mode, which records
// nothing, the webhook reads the SpiderEndpoints from the API server: excluding or
// dropping an address an endpoint holds is refused, naming it, and excluding or
// dropping addresses no endpoint holds is admitted.
func TestGrantsPoolShrinkAgainstTheAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	webhooktest.Serve(t, e, nil)
	ctx := context.Background()
	p := pool("wh-grants", "10.94.0.0/24", ips("10.94.0.10-10.94.0.20"))
	if err := e.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Client.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
		_ = e.Client.Delete(context.Background(), p)
	})
	// Grants mode, as the grant controller sets it (status writes are not admitted).
	p.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
	if err := e.Client.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	const ns = "wh-grants"
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// The endpoint an agent's ADD writes: the only record that pod-a holds 10.94.0.12.
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pod-a"},
		Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{UID: "uid-a", Node: "node-a",
			IPs: []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptrTo("10.94.0.12/24"), IPv4Pool: ptrTo(p.Name)}}}},
	}
	if err := e.Client.Create(ctx, se); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), se) })

	update := func(change func(*v2beta1.SpiderIPPool)) error {
		got := &v2beta1.SpiderIPPool{}
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
			t.Fatal(err)
		}
		change(got)
		return e.Client.Update(ctx, got)
	}
	for _, tt := range []struct {
		name   string
		change func(*v2beta1.SpiderIPPool)
		refuse string // "": admitted
	}{
		{"excluding the held address", func(p *v2beta1.SpiderIPPool) { p.Spec.ExcludeIPs = []v2beta1.IPOrRange{"10.94.0.11-10.94.0.12"} }, "spec.excludeIPs"},
		{"dropping the held address", func(p *v2beta1.SpiderIPPool) { p.Spec.IPs = []v2beta1.IPOrRange{"10.94.0.13-10.94.0.20"} }, "spec.ips"},
		{"excluding an unheld address", func(p *v2beta1.SpiderIPPool) { p.Spec.ExcludeIPs = []v2beta1.IPOrRange{"10.94.0.13"} }, ""},
		{"dropping unheld addresses", func(p *v2beta1.SpiderIPPool) { p.Spec.IPs = []v2beta1.IPOrRange{"10.94.0.10-10.94.0.15"} }, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := update(tt.change)
			if tt.refuse == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "10.94.0.12 (1 address) allocated to pods") {
				t.Fatalf("got %v, want Invalid naming 10.94.0.12 allocated to pods", err)
			}
			if got := causes(err); !slices.Equal(got, []string{tt.refuse + ": FieldValueForbidden"}) {
				t.Fatalf("refused with %v, want %s", got, tt.refuse)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

// allocateForTest records addr in the pool's status for a made-up pod, as an agent would.
func allocateForTest(p *v2beta1.SpiderIPPool, addr string) error {
	state, err := ipam.NewPool(p, ip.Set{})
	if err != nil {
		return err
	}
	state, got, err := state.Allocate([]records.Owner{records.OwnerOf("pod-uid", "ctr", "eth0")}, netip.MustParseAddr(addr))
	if err != nil {
		return err
	}
	if got[0] != netip.MustParseAddr(addr) {
		return fmt.Errorf("allocated %s, want %s", got[0], addr)
	}
	return state.WriteStatus(p)
}

// TestInvalidSpecsRefusedByTheAPIServer replays every invalid pool and subnet create of
// the rules' tables (TestValidateIPPoolCreate, TestValidateSubnetCreate) against the API
// server with the webhooks registered: each is refused (by the CRD schema or by
// admission) with causes only at the field paths the rules name, and nothing is stored.
func TestInvalidSpecsRefusedByTheAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	webhooktest.Serve(t, e, nil)
	ctx := context.Background()
	cases := webhook.InvalidCreates()
	if len(cases) < 30 {
		t.Fatalf("only %d invalid specs in the rules' tables; the API-server check wants at least 30", len(cases))
	}
	for i, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			obj := tt.Object
			obj.SetName(fmt.Sprintf("invalid-%d", i))
			err := e.Client.Create(ctx, obj)
			if err == nil {
				_ = e.Client.Delete(ctx, obj)
				t.Fatalf("stored; want it refused at %v", tt.Paths)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want Invalid, got %v", err)
			}
			got := causes(err)
			if len(got) == 0 {
				t.Fatalf("refused without causes: %v", err)
			}
			// Defaulting merges list entries before validation, so indices may shift:
			// paths are compared without them. The API server's own note that it skipped
			// rules of an invalid object has no field.
			unindexed := regexp.MustCompile(`\[\d+\]`)
			matched := 0
			for _, c := range got {
				path, _, _ := strings.Cut(c, ": ")
				if path == "<nil>" {
					continue
				}
				matched++
				if !slices.ContainsFunc(tt.Paths, func(p string) bool { return unindexed.ReplaceAllString(p, "") == unindexed.ReplaceAllString(path, "") }) {
					t.Errorf("cause %q is at none of the paths the rules name, %v (%v)", c, tt.Paths, err)
				}
			}
			if matched == 0 {
				t.Errorf("refused without a field path: %v", err)
			}
			if err := e.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj.DeepCopyObject().(client.Object)); !apierrors.IsNotFound(err) {
				t.Fatalf("a refused object was stored: %v", err)
			}
		})
	}
	t.Logf("%d invalid specs refused by the API server", len(cases))
}
