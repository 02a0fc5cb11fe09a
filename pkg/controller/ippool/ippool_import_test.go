package ippool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// spiderPoolWrote gives a pool the status SpiderPool's agents leave: status.allocatedIPs
// and the count, no status.orbweaver.
func spiderPoolWrote(t *testing.T, e *testenv.Env, name, allocatedIPs string, count int64) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		sp := getPool(t, e, name)
		sp.Status.AllocatedIPs = ptr.To(allocatedIPs)
		sp.Status.AllocatedIPCount = ptr.To(count)
		return e.Client.Status().Update(context.Background(), sp)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// spiderPoolEndpoint creates a SpiderEndpoint as SpiderPool's agent writes it: its
// finalizer, no sandbox, the pod's UID and node.
func spiderPoolEndpoint(t *testing.T, e *testenv.Env, ns, pod, uid string, nics ...v2beta1.IPAllocationDetail) {
	t.Helper()
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod, Finalizers: []string{v2beta1.Finalizer}},
		Status: v2beta1.WorkloadEndpointStatus{
			Current:             v2beta1.PodIPAllocation{UID: uid, Node: "node-a", IPs: nics},
			OwnerControllerType: "Pod", OwnerControllerName: pod,
		},
	}
	if err := e.Client.Create(context.Background(), se); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = e.Client.Patch(ctx, se, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
		_ = e.Client.Delete(ctx, se)
	})
}

func decoded(t *testing.T, sp *v2beta1.SpiderIPPool) map[netip.Addr]records.Owner {
	t.Helper()
	out := map[netip.Addr]records.Owner{}
	if sp.Status.Orbweaver == nil {
		return out
	}
	recs, err := records.Decode(netip.MustParsePrefix(string(sp.Spec.Subnet)), sp.Status.Orbweaver.Records)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		out[r.IP] = r.Owner
	}
	return out
}

// TestImportSpiderPoolRecords: a pool SpiderPool allocated from, with records in both of
// its shapes beside a record orbweaver wrote, is imported in one write by three
// controllers at once: every address keeps its pod (owner: the pod UID and the
// interface, from the older record's own field, else the pod's endpoint, else eth0),
// status.allocatedIPs goes, the count covers all, the condition and an event say so;
// and SpiderPool's finalizer leaves its endpoints.
func TestImportSpiderPoolRecords(t *testing.T) {
	e := testenv.Require(t, env)
	ns := grantsNamespace(t, e)
	const pool = "import-ok"
	createPool(t, e, pool, "10.244.150.0/24", true, "10.244.150.10-10.244.150.20")
	native := records.OwnerOf("uid-native", "ctr-native", "eth0")
	agentWrite(t, e, pool, allocateTo(t, native))
	raw := fmt.Sprintf(`{"10.244.150.11":{"pod":"%[1]s/web-0","podUid":"u0"},`+
		`"10.244.150.12":{"pod":"%[1]s/web-1","podUid":"u1"},`+
		`"10.244.150.13":{"interface":"net2","pod":"%[1]s/old-0","podUid":"u2"}}`, ns)
	spiderPoolEndpoint(t, e, ns, "web-1", "u1",
		v2beta1.IPAllocationDetail{NIC: "eth0", IPv4: ptr.To("10.9.9.9/24"), IPv4Pool: ptr.To("elsewhere")},
		v2beta1.IPAllocationDetail{NIC: "net1", IPv4: ptr.To("10.244.150.12/24"), IPv4Pool: ptr.To(pool)})
	spiderPoolWrote(t, e, pool, raw, 4)

	for range 3 {
		startController(t, e)
	}
	sp := waitPool(t, e, pool, "imported", hasCondition(v2beta1.IPPoolImportedCondition, metav1.ConditionTrue, v2beta1.IPPoolImportedReason))
	if sp.Status.AllocatedIPs != nil {
		t.Errorf("status.allocatedIPs is still %q after the import", *sp.Status.AllocatedIPs)
	}
	got := decoded(t, sp)
	want := map[netip.Addr]records.Owner{
		netip.MustParseAddr("10.244.150.10"): native, // the first free address, orbweaver's
		netip.MustParseAddr("10.244.150.11"): records.OwnerOf("u0", "", "eth0"),
		netip.MustParseAddr("10.244.150.12"): records.OwnerOf("u1", "", "net1"),
		netip.MustParseAddr("10.244.150.13"): records.OwnerOf("u2", "", "net2"),
	}
	if len(got) != len(want) {
		t.Fatalf("records %v, want %v", got, want)
	}
	for a, o := range want {
		if got[a] != o {
			t.Errorf("%s: owner %v, want %v", a, got[a], o)
		}
	}
	if c := condition(sp, v2beta1.IPPoolImportedCondition); !strings.Contains(c.Message, "imported 3 addresses") {
		t.Errorf("condition message %q, want the 3 imported", c.Message)
	}
	waitPool(t, e, pool, "counts", counts(11, 4))
	waitEvent(t, e, pool, EventSpiderPoolRecordsImported)
	testenv.WaitFor(t, "SpiderPool's finalizer off its endpoint", func() (bool, error) {
		se := &v2beta1.SpiderEndpoint{}
		if err := e.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web-1"}, se); err != nil {
			return false, err
		}
		return len(se.Finalizers) == 0, nil
	})
}

// TestImportRefusesBadSpiderPoolRecords: records that cannot be imported as they are
// stay where they are, the pool's condition is False naming the record, a Warning event
// says so, and the counts stay SpiderPool's. Fixing the record imports the pool.
func TestImportRefusesBadSpiderPoolRecords(t *testing.T) {
	e := testenv.Require(t, env)
	startController(t, e)
	var wg sync.WaitGroup
	for i, tc := range []struct{ raw, says string }{
		{`{"10.244.151.10":{"pod":"a/x","podUid":"u"},"10.244.151.10":{"pod":"a/y","podUid":"v"}}`, `record "10.244.151.10": the address is named twice`},
		{`{"10.244.151.99":{"pod":"a/x","podUid":"u"}}`, `record "10.244.151.99": the address is outside the pool's spec.ips`},
		{`{"10.244.151.10":{"pod":"a/x","podUid":"u"}`, `status.allocatedIPs`},
		{`{"10.244.151.10":{"pod":"x","podUid":"u"}}`, `pod "x" is not namespace/name`},
	} {
		pool := fmt.Sprintf("import-bad-%d", i)
		createPool(t, e, pool, "10.244.151.0/24", false, "10.244.151.10-10.244.151.20")
		spiderPoolWrote(t, e, pool, tc.raw, 1)
		wg.Add(1)
		t.Run(pool, func(t *testing.T) {
			defer wg.Done()
			sp := waitPool(t, e, pool, "refused", hasCondition(v2beta1.IPPoolImportedCondition, metav1.ConditionFalse, v2beta1.IPPoolForeignRecordsInvalidReason))
			if c := condition(sp, v2beta1.IPPoolImportedCondition); !strings.Contains(c.Message, tc.says) {
				t.Errorf("condition message %q, want %q", c.Message, tc.says)
			}
			if sp.Status.AllocatedIPs == nil || *sp.Status.AllocatedIPs != tc.raw {
				t.Errorf("status.allocatedIPs changed to %v", sp.Status.AllocatedIPs)
			}
			if ptr.Deref(sp.Status.AllocatedIPCount, -1) != 1 {
				t.Errorf("allocatedIPCount %d, want SpiderPool's 1 left as it was", ptr.Deref(sp.Status.AllocatedIPCount, -1))
			}
			waitEvent(t, e, pool, EventSpiderPoolRecordsInvalid)
		})
	}
	wg.Wait()
	// The admin fixes the first pool's record: it is imported.
	spiderPoolWrote(t, e, "import-bad-0", `{"10.244.151.10":{"pod":"a/x","podUid":"u"}}`, 1)
	sp := waitPool(t, e, "import-bad-0", "imported once fixed", hasCondition(v2beta1.IPPoolImportedCondition, metav1.ConditionTrue, v2beta1.IPPoolImportedReason))
	if got := decoded(t, sp); len(got) != 1 || got[netip.MustParseAddr("10.244.151.10")] != records.OwnerOf("u", "", "eth0") {
		t.Errorf("records %v after the fix", got)
	}
}

// TestImportSpiderPoolRecordsLarge imports a pool of 5,000 SpiderPool records (its
// default per-pool cap) and logs how long the import took, from the controller's start
// to the condition.
func TestImportSpiderPoolRecordsLarge(t *testing.T) {
	e := testenv.Require(t, env)
	const pool = "import-large"
	createPool(t, e, pool, "10.245.0.0/16", false, "10.245.0.1-10.245.255.254")
	var sb strings.Builder
	sb.WriteByte('{')
	a := netip.MustParseAddr("10.245.0.1")
	for i := range 5000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `%q:{"pod":"default/web-%d","podUid":"uid-%d"}`, a.String(), i, i)
		a = a.Next()
	}
	sb.WriteByte('}')
	spiderPoolWrote(t, e, pool, sb.String(), 5000)
	start := time.Now()
	startController(t, e)
	sp := waitPool(t, e, pool, "imported", hasCondition(v2beta1.IPPoolImportedCondition, metav1.ConditionTrue, v2beta1.IPPoolImportedReason))
	took := time.Since(start)
	if got := decoded(t, sp); len(got) != 5000 || got[netip.MustParseAddr("10.245.19.136")] != records.OwnerOf("uid-4999", "", "eth0") {
		t.Fatalf("%d records imported, the last %v", len(got), got[netip.MustParseAddr("10.245.19.136")])
	}
	t.Logf("5,000 SpiderPool records (%d bytes of status.allocatedIPs) imported in %s, from the controller's start (records now %d bytes)",
		sb.Len(), took.Round(time.Millisecond), len(sp.Status.Orbweaver.Records))
}

// TestImportWaitsForSpiderPool: while a pod of SpiderPool's controller (or agent) runs,
// its agents may still write the records, so the import waits, saying which pod runs;
// then while its webhook configuration is left behind; once both are gone the pool is
// imported.
func TestImportWaitsForSpiderPool(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := grantsNamespace(t, e)
	sp := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "spiderpool-controller-0",
		Labels: map[string]string{"app.kubernetes.io/name": "spiderpool", "app.kubernetes.io/component": "spiderpool-controller"}},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/spiderpool-controller:1"}}}}
	if err := e.Client.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	const pool = "import-waits"
	createPool(t, e, pool, "10.244.152.0/24", false, "10.244.152.10-10.244.152.20")
	spiderPoolWrote(t, e, pool, `{"10.244.152.10":{"pod":"a/x","podUid":"u"}}`, 1)
	startController(t, e)
	got := waitPool(t, e, pool, "waiting", hasCondition(v2beta1.IPPoolImportedCondition, metav1.ConditionFalse, v2beta1.IPPoolSpiderPoolRunningReason))
	if c := condition(got, v2beta1.IPPoolImportedCondition); !strings.Contains(c.Message, ns+"/spiderpool-controller-0") {
		t.Errorf("condition message %q does not name the pod", c.Message)
	}
	if got.Status.AllocatedIPs == nil {
		t.Fatal("imported while SpiderPool runs")
	}
	waitEvent(t, e, pool, EventSpiderPoolRunning)
	// Its pods go, its webhook configuration stays behind: still not uninstalled.
	hook := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "spiderpool-controller"}}
	if err := e.Client.Create(ctx, hook); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Delete(ctx, sp, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	waitPool(t, e, pool, "waiting for the webhook configuration", func(sp *v2beta1.SpiderIPPool) bool {
		c := condition(sp, v2beta1.IPPoolImportedCondition)
		return c != nil && c.Reason == v2beta1.IPPoolSpiderPoolRunningReason && strings.Contains(c.Message, "validatingwebhookconfiguration spiderpool-controller") &&
			!strings.Contains(c.Message, "spiderpool-controller-0")
	})
	if err := e.Client.Delete(ctx, hook); err != nil {
		t.Fatal(err)
	}
	waitPool(t, e, pool, "imported once SpiderPool is gone", hasCondition(v2beta1.IPPoolImportedCondition, metav1.ConditionTrue, v2beta1.IPPoolImportedReason))
}

// TestImportInterrupted stops the pool controller at random points of the import of six
// pools, 20 times, each time from SpiderPool's state again. After every stop each pool
// has either all of SpiderPool's records and none imported, or none of them and all
// imported: never a part, never an address lost or given twice. Then the controller
// runs to the end and every pool is imported, once.
func TestImportInterrupted(t *testing.T) {
	e := testenv.Require(t, env)
	type poolCase struct {
		name, raw string
		native    netip.Addr
		records   []byte // the native record alone
		want      map[netip.Addr]records.Owner
	}
	var pools []*poolCase
	for i := range 6 {
		pc := &poolCase{name: fmt.Sprintf("import-cut-%d", i), want: map[netip.Addr]records.Owner{}}
		createPool(t, e, pc.name, fmt.Sprintf("10.246.%d.0/24", i), false, v2beta1.IPOrRange(fmt.Sprintf("10.246.%d.1-10.246.%d.200", i, i)))
		native := records.OwnerOf(fmt.Sprintf("native-%d", i), "c", "eth0")
		pc.records = agentWrite(t, e, pc.name, allocateTo(t, native))
		pc.native = netip.MustParseAddr(fmt.Sprintf("10.246.%d.1", i))
		pc.want[pc.native] = native
		var sb strings.Builder
		sb.WriteByte('{')
		for j := range 50 {
			if j > 0 {
				sb.WriteByte(',')
			}
			a := netip.MustParseAddr(fmt.Sprintf("10.246.%d.%d", i, 100+j))
			fmt.Fprintf(&sb, `%q:{"pod":"ns/p%d-%d","podUid":"u%d-%d"}`, a.String(), i, j, i, j)
			pc.want[a] = records.OwnerOf(fmt.Sprintf("u%d-%d", i, j), "", "eth0")
		}
		sb.WriteByte('}')
		pc.raw = sb.String()
		pools = append(pools, pc)
	}
	// reset puts every pool back to what SpiderPool left beside orbweaver's own record.
	reset := func() {
		t.Helper()
		for _, pc := range pools {
			err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
				sp := getPool(t, e, pc.name)
				sp.Status.AllocatedIPs, sp.Status.AllocatedIPCount = ptr.To(pc.raw), ptr.To(int64(51))
				sp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Records: pc.records}
				return e.Client.Status().Update(context.Background(), sp)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	// check returns how many pools are imported, and fails on a pool in between.
	check := func() (imported int) {
		t.Helper()
		for _, pc := range pools {
			sp := getPool(t, e, pc.name)
			got := decoded(t, sp)
			if sp.Status.AllocatedIPs != nil {
				if *sp.Status.AllocatedIPs != pc.raw || len(got) != 1 || got[pc.native] != pc.want[pc.native] {
					t.Fatalf("pool %s half imported: allocatedIPs changed or records %v", pc.name, got)
				}
				continue
			}
			if len(got) != len(pc.want) {
				t.Fatalf("pool %s: %d records after the import, want %d", pc.name, len(got), len(pc.want))
			}
			for a, o := range pc.want {
				if got[a] != o {
					t.Fatalf("pool %s: %s owned by %v, want %v", pc.name, a, got[a], o)
				}
			}
			imported++
		}
		return imported
	}
	rng := rand.New(rand.NewPCG(14, 20))
	var byCount [7]int
	for range 20 {
		reset()
		stop := startStoppableController(t, e)
		time.Sleep(time.Duration(rng.IntN(600)) * time.Millisecond)
		stop()
		byCount[check()]++
	}
	startController(t, e)
	for _, pc := range pools {
		waitPool(t, e, pc.name, "imported", hasCondition(v2beta1.IPPoolImportedCondition, metav1.ConditionTrue, v2beta1.IPPoolImportedReason))
	}
	if n := check(); n != len(pools) {
		t.Fatalf("%d of %d pools imported at the end", n, len(pools))
	}
	t.Logf("20 stops at random points; pools imported when stopped (0..6): %v; each pool whole every time, all 6 at the end", byCount)
}

// startStoppableController runs the pool controller until stop is called.
func startStoppableController(t *testing.T, e *testenv.Env) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := SetupWithManager(ctx, mgr, Params{Direct: e.Client, Recorder: mgr.GetEventRecorderFor("orbweaver-ippool")}); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("pool controller still running 30s after its stop")
		}
	}
}
