package inspect

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// TestPlanRelease is the table of release's decisions: what goes (records, endpoint
// entries), what stays and why, and the errors of bad input.
func TestPlanRelease(t *testing.T) {
	running := corev1.PodRunning
	dead := Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.1", "u-gone", "c1", "eth0"))},
		Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u-gone", "n1", "eth0", "10.9.0.1", "rec", "c1")}, Nodes: nodes("n1")}
	live := dead
	live.Pods = []corev1.Pod{livePod("ns", "a", "u-gone", "n1", running)}
	finished := dead
	finished.Pods = []corev1.Pod{livePod("ns", "a", "u-gone", "n1", corev1.PodFailed)}
	twoPools := dead
	twoPools.Pools = append(slices.Clone(dead.Pools), pool("rec2", sub, "10.9.0.1-10.9.0.50", withRecords(sub, rec("10.9.0.1", "u9", "c9", "eth0"))))

	for _, tc := range []struct {
		name  string
		snap  Snapshot
		addr  string
		pool  string
		force bool
		// records and endpoints count the removals; kept are substrings of the kept
		// holders' reasons.
		records, endpoints int
		kept               []string
		err                error
		errText, state     string
		forced             bool
	}{
		{name: "records: a pod that is gone", snap: dead, addr: "10.9.0.1", records: 1, endpoints: 1},
		{name: "records: a pod that is gone, pool named", snap: dead, addr: "10.9.0.1", pool: "rec", records: 1, endpoints: 1},
		{name: "records: a finished pod", snap: finished, addr: "10.9.0.1", records: 1, endpoints: 1},
		{name: "records: a live pod", snap: live, addr: "10.9.0.1", err: ErrRefused, kept: []string{"exists (on node n1)", "--force"}},
		{name: "records: a live pod, --force", snap: live, addr: "10.9.0.1", force: true, records: 1, endpoints: 1, forced: true},
		{
			name: "records: a dead pod's record under a live pod's endpoint",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.1", "u-gone", "c1", "eth0"))},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "b", "u2", "n1", "eth0", "10.9.0.1", "rec", "c2")},
				Pods:      []corev1.Pod{livePod("ns", "b", "u2", "n1", running)}},
			addr: "10.9.0.1", err: ErrRefused, kept: []string{"exists", "without this record the pool could hand the address to another pod"},
		},
		{
			name: "records: a dead pod's stale endpoint beside a live pod's record",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{recPool(rec("10.9.0.1", "u2", "c2", "eth0"))},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "b", "u2", "n1", "eth0", "10.9.0.1", "rec", "c2"),
					endpoint("ns", "old", "u-gone", "n1", "eth0", "10.9.0.1", "rec", "c1")},
				Pods: []corev1.Pod{livePod("ns", "b", "u2", "n1", running)}},
			addr: "10.9.0.1", endpoints: 1, kept: []string{"exists"},
		},
		{
			name: "grants: a pod that is gone; the grant stays its node's",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u-gone", "n1", "eth0", "10.8.0.1", "gr", "c1")},
				Blocks:    []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1"})}, Nodes: nodes("n1")},
			addr: "10.8.0.1", endpoints: 1,
		},
		{
			name: "a node's spare",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Blocks: []ipamv1.IPBlock{grantBlock(map[string]string{"10.8.0.1": "n1"})}, Nodes: nodes("n1")},
			addr: "10.8.0.1", err: ErrRefused, kept: []string{"a node's, no pod's"},
		},
		{
			name: "SpiderPool's record",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{pool("sp", "10.7.0.0/24", "10.7.0.1-10.7.0.50", func(sp *v2beta1.SpiderIPPool) {
				sp.Status.AllocatedIPs = ptr.To(`{"10.7.0.5":{"pod":"ns/old","podUid":"u-old"}}`)
			})}},
			addr: "10.7.0.5", force: true, err: ErrRefused, kept: []string{"not imported yet"},
		},
		{
			name: "a StatefulSet's address",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints:    []v2beta1.SpiderEndpoint{ownedBy("db", endpoint("ns", "db-0", "u-old", "n1", "eth0", "10.8.0.1", "gr", "c1"))},
				StatefulSets: []appsv1.StatefulSet{statefulSet("ns", "db", 1)}},
			addr: "10.8.0.1", err: ErrRefused, kept: []string{"kept for StatefulSet ns/db", "--force"},
		},
		{
			name: "a StatefulSet's address, --force",
			snap: Snapshot{Pools: []v2beta1.SpiderIPPool{grPool()},
				Endpoints:    []v2beta1.SpiderEndpoint{ownedBy("db", endpoint("ns", "db-0", "u-old", "n1", "eth0", "10.8.0.1", "gr", "c1"))},
				StatefulSets: []appsv1.StatefulSet{statefulSet("ns", "db", 1)}},
			addr: "10.8.0.1", force: true, endpoints: 1, forced: true,
		},
		{
			name: "an endpoint naming a pool that does not exist",
			snap: Snapshot{Endpoints: []v2beta1.SpiderEndpoint{endpoint("ns", "a", "u-gone", "n1", "eth0", "10.5.0.7", "gone", "c1")}},
			addr: "10.5.0.7", endpoints: 1,
		},
		{name: "a free address", snap: dead, addr: "10.9.0.2", state: StateFree},
		{name: "an unknown pool", snap: dead, addr: "10.9.0.1", pool: "nope", err: ipam.ErrPoolNotFound},
		{name: "an address of no pool", snap: dead, addr: "192.0.2.1", err: ErrNotInPool},
		{name: "outside the named pool", snap: twoPools, addr: "10.8.0.1", pool: "rec", err: ErrNotInPool},
		{name: "held in two pools", snap: twoPools, addr: "10.9.0.1", err: ErrAmbiguous, errText: "rec, rec2"},
		{name: "held in two pools, one named", snap: twoPools, addr: "10.9.0.1", pool: "rec2", records: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := PlanRelease(tc.snap, netip.MustParseAddr(tc.addr), tc.pool, tc.force)
			if !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if tc.errText != "" && !strings.Contains(err.Error(), tc.errText) {
				t.Errorf("error %q lacks %q", err, tc.errText)
			}
			if len(plan.Records) != tc.records || len(plan.Endpoints) != tc.endpoints {
				t.Errorf("%d records and %d endpoints, want %d and %d: %+v", len(plan.Records), len(plan.Endpoints), tc.records, tc.endpoints, plan)
			}
			var why []string
			for _, k := range plan.Kept {
				why = append(why, k.Why)
			}
			for _, k := range tc.kept {
				if !strings.Contains(strings.Join(why, "; ")+errString(err), k) {
					t.Errorf("kept %q (error %v) lacks %q", why, err, k)
				}
			}
			if plan.State != tc.state || (len(plan.Forced) > 0) != tc.forced {
				t.Errorf("state %q forced %q, want %q and %v", plan.State, plan.Forced, tc.state, tc.forced)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func testScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v2beta1.AddToScheme, ipamv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// TestReleaseRetries runs Release's compare-and-swap loop against a fake client that
// makes writes lose races: a write that loses twice lands on the third try; one that
// always loses fails, saying so, after the bounded number of tries; a record that
// changed hands between the read and the write is left alone. (The real API server is
// main_test.go's.)
func TestReleaseRetries(t *testing.T) {
	sp := recPool(rec("10.9.0.1", "u-gone", "c1", "eth0"))
	se := endpoint("ns", "a", "u-gone", "n1", "eth0", "10.9.0.1", "rec", "c1")
	se.UID = "se-uid"
	backoff := wait.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "x"}, "x", errors.New("the object has been modified"))
	for _, tc := range []struct {
		name string
		// losePool and loseEndpoint are how many writes of each lose a race.
		losePool, loseEndpoint int
		// steal gives the record to another owner before every pool read.
		steal   bool
		err     string
		records bool // the record is gone at the end
	}{
		{name: "no race", records: true},
		{name: "the pool write loses twice", losePool: 2, records: true},
		{name: "the endpoint write loses twice", loseEndpoint: 2, records: true},
		{name: "the pool write always loses", losePool: 100, err: "gave up after 3 tries"},
		{name: "the endpoint write always loses", loseEndpoint: 100, records: true, err: "gave up after 3 tries"},
		{name: "the record changed hands", steal: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			lostPool, lostEndpoint := 0, 0
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithStatusSubresource(&v2beta1.SpiderIPPool{}).
				WithObjects(sp.DeepCopy(), se.DeepCopy()).
				WithInterceptorFuncs(interceptor.Funcs{
					Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
						if err := c.Get(ctx, key, obj, opts...); err != nil {
							return err
						}
						if p, ok := obj.(*v2beta1.SpiderIPPool); ok && tc.steal {
							pool, err := ipam.NewPool(p, ip.Set{})
							if err != nil {
								return err
							}
							pool, _ = pool.Rebind(netip.MustParseAddr("10.9.0.1"), records.OwnerOf("u-gone", "c1", "eth0"), records.OwnerOf("u-new", "c7", "eth0"))
							return pool.WriteStatus(p)
						}
						return nil
					},
					SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
						if lostPool < tc.losePool {
							lostPool++
							return conflict
						}
						return c.Status().Update(ctx, obj, opts...)
					},
					Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
						if lostEndpoint < tc.loseEndpoint {
							lostEndpoint++
							return conflict
						}
						return c.Delete(ctx, obj, opts...)
					},
				}).Build()
			res, err := Release(ctx, c, ReleaseOptions{Addr: netip.MustParseAddr("10.9.0.1"), Backoff: backoff})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
			got := &v2beta1.SpiderIPPool{}
			if err := c.Get(ctx, client.ObjectKey{Name: "rec"}, got); err != nil {
				t.Fatal(err)
			}
			if tc.steal {
				// The dead pod's endpoint still goes; the record, now another pod's, stays.
				if len(res.Released) != 1 || res.Released[0].Object != "SpiderEndpoint/ns/a" || len(res.Kept) != 1 ||
					!strings.Contains(res.Kept[0].Why, "changed since it was read") || !strings.Contains(res.Kept[0].Holder, "record of ns/a") {
					t.Errorf("a record that changed hands: %+v", res)
				}
				return
			}
			pool, err := ipam.NewPool(got, ip.Set{})
			if err != nil {
				t.Fatal(err)
			}
			if _, held := pool.Holder(netip.MustParseAddr("10.9.0.1")); held == tc.records {
				t.Errorf("record still there: %v, want removed: %v (%+v)", held, tc.records, res)
			}
		})
	}
}

// TestWithoutAddress: release takes one address out of an endpoint: that family of
// that interface (with its pool and gateway), the interface once it has no address
// left (and its network), and says when none is left (the endpoint is then deleted).
func TestWithoutAddress(t *testing.T) {
	se := endpoint("ns", "a", "u1", "n1", "eth0", "10.9.0.1", "rec", "c1")
	se.Status.Current.IPs[0].IPv6, se.Status.Current.IPs[0].IPv6Pool = ptr.To("fd00::1/64"), ptr.To("rec6")
	se.Status.Current.IPs[0].IPv4Gateway = ptr.To("10.9.0.254")
	se.Status.Current.IPs = append(se.Status.Current.IPs, v2beta1.IPAllocationDetail{NIC: "net1", IPv4: ptr.To("10.8.0.3/24"), IPv4Pool: ptr.To("gr")})
	se.Status.Current.Orbweaver.Networks = map[string]string{"eth0": "default", "net1": "macvlan"}
	se.Status.Current.Orbweaver.EIPs = []v2beta1.PodEIP{{IP: "10.8.0.3", PublicIP: "203.0.113.9"}}

	next, empty := withoutAddress(&se, "rec", netip.MustParseAddr("10.9.0.1"))
	eth0 := next.Status.Current.IPs[0]
	if empty || len(next.Status.Current.IPs) != 2 || eth0.IPv4 != nil || eth0.IPv4Pool != nil || eth0.IPv4Gateway != nil || eth0.IPv6 == nil {
		t.Errorf("without 10.9.0.1: empty %v, %+v", empty, next.Status.Current.IPs)
	}
	next, empty = withoutAddress(next, "gr", netip.MustParseAddr("10.8.0.3"))
	if empty || len(next.Status.Current.IPs) != 1 || next.Status.Current.Orbweaver.Networks["net1"] != "" || len(next.Status.Current.Orbweaver.EIPs) != 0 {
		t.Errorf("without 10.8.0.3: empty %v, %+v %+v", empty, next.Status.Current.IPs, next.Status.Current.Orbweaver)
	}
	if _, empty = withoutAddress(next, "rec6", netip.MustParseAddr("fd00::1")); !empty {
		t.Error("without its last address the endpoint is not empty")
	}
	if se.Status.Current.IPs[0].IPv4 == nil {
		t.Error("withoutAddress changed its argument")
	}
}
