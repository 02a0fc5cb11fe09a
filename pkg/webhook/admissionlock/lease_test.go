package admissionlock

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/webhooktest"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

// TestRacingOverlappingCreates creates two overlapping pools at the same moment, 50
// times, through webhooks serialized by a Lease: each time exactly one is stored and the
// other is refused for the overlap. (Without the Lease, the same 50 races stored both
// pools every time when this was written: the read-then-admit race SpiderPool's webhook
// has.)
func TestRacingOverlappingCreates(t *testing.T) {
	e := testenv.Require(t, env)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "admission-"}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	webhooktest.Serve(t, e, &Lease{Client: e.Client, Namespace: ns.Name, Name: "orbweaver-admission"})
	stored, refused := race(t, e, "lk", 50)
	if stored != 50 || refused != 50 {
		t.Fatalf("50 races: %d pools stored, %d refused; want exactly one of each race", stored, refused)
	}
}

// race runs n rounds of two creates at once of pools with the same /24 and overlapping
// ranges, and counts the pools stored and refused.
func race(t *testing.T, e *testenv.Env, prefix string, n int) (stored, refused int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		subnet := fmt.Sprintf("10.%d.%d.0/24", 100+i/200, i%200)
		first := fmt.Sprintf("10.%d.%d.10-10.%d.%d.20", 100+i/200, i%200, 100+i/200, i%200)
		second := fmt.Sprintf("10.%d.%d.15-10.%d.%d.30", 100+i/200, i%200, 100+i/200, i%200)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, r := range []string{first, second} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d-%d", prefix, i, j)},
					Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(subnet), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(r)}}}
				errs[j] = e.Client.Create(ctx, p)
				if errs[j] == nil {
					t.Cleanup(func() {
						_ = e.Client.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
						_ = e.Client.Delete(context.Background(), p)
					})
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			switch {
			case err == nil:
				stored++
			case apierrors.IsInvalid(err):
				refused++
			default:
				t.Fatalf("race %d: %v", i, err)
			}
		}
	}
	return stored, refused
}

// TestRacingStaticEIPClaims creates two pools listing the same Static EIP (in disjoint
// subnets) at the same moment, 20 times, through the served webhooks: each time exactly
// one is stored, and the other is refused at spec.orbweaver.eip.static[0], naming the
// pool that has the EIP. One EIP belongs to one pool IP.
func TestRacingStaticEIPClaims(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "admission-eip-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	webhooktest.Serve(t, e, &Lease{Client: e.Client, Namespace: ns.Name, Name: "orbweaver-admission"})
	for i := range 20 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		names := []string{fmt.Sprintf("eipclaim-%d-a", i), fmt.Sprintf("eipclaim-%d-b", i)}
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: names[j]}, Spec: v2beta1.IPPoolSpec{
					Subnet: v2beta1.CIDR(fmt.Sprintf("10.%d.%d.0/24", 160+j, i)), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(fmt.Sprintf("10.%d.%d.10", 160+j, i))},
					Orbweaver: &v2beta1.IPPoolOrbweaverSpec{EIP: &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{fmt.Sprintf("eipalloc-race-%d", i)}}},
				}}
				errs[j] = e.Client.Create(ctx, p)
				if errs[j] == nil {
					t.Cleanup(func() {
						_ = e.Client.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
						_ = e.Client.Delete(context.Background(), p)
					})
				}
			}()
		}
		wg.Wait()
		stored := 0
		for j, err := range errs {
			switch {
			case err == nil:
				stored++
			case apierrors.IsInvalid(err):
				other := names[1-j]
				if msg := err.Error(); !strings.Contains(msg, "spec.orbweaver.eip.static[0]") || !strings.Contains(msg, other) {
					t.Errorf("race %d: refused without naming the field and pool %s: %v", i, other, err)
				}
			default:
				t.Fatalf("race %d: %v", i, err)
			}
		}
		if stored != 1 {
			t.Fatalf("race %d: %d pools stored listing one Static EIP, want exactly 1 (%v)", i, stored, errs)
		}
	}
}
