package ippool

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// kubectlTable runs kubectl and splits its table output into cells (testenv.SplitTable).
func kubectlTable(t *testing.T, e *testenv.Env, args ...string) [][]string {
	t.Helper()
	out, err := e.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return testenv.SplitTable(out)
}

// TestKubectlGetSP: `kubectl get sp` prints the counts the controller keeps, SpiderPool's
// columns first and in SpiderPool's order: ALLOCATED-IP-COUNT counts the pods'
// addresses only, FREE what a new allocation could take, SPARE (with -o wide) the node
// reserve's addresses, AGE the pool's age.
func TestKubectlGetSP(t *testing.T) {
	e := testenv.Require(t, env)
	startController(t, e)
	const name = "status-kubectl"
	createPool(t, e, name, "10.35.0.0/24", false, "10.35.0.10-10.35.0.29", "10.35.0.40")
	waitPool(t, e, name, "first counts", counts(21, 0))
	agentWrite(t, e, name, func(p ipam.Pool) ipam.Pool {
		p = allocateTo(t, podOwner(1), podOwner(2))(p)
		p, _ = p.Reserve(records.ReserveOwner("node-a"), 3, netip.Addr{})
		return p
	})
	waitPool(t, e, name, "2 allocated to pods, 3 spares", countsSpare(21, 2, 3))

	tests := []struct {
		args   []string
		header []string
		row    []string // without AGE, the last column
	}{
		{
			args:   []string{"get", "sp", name},
			header: []string{"NAME", "VERSION", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT", "DEFAULT", "FREE", "AGE"},
			row:    []string{name, "4", "10.35.0.0/24", "2", "21", "false", "16"},
		},
		{
			args: []string{"get", "sp", name, "-o", "wide"},
			header: []string{"NAME", "VERSION", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT", "DEFAULT",
				"DISABLE", "NODENAME", "MULTUSNAME", "APP-NAMESPACE", "FREE", "SPARE", "AGE"},
			row: []string{name, "4", "10.35.0.0/24", "2", "21", "false", "false", "", "", "", "16", "3"},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			rows := kubectlTable(t, e, tt.args...)
			if len(rows) != 2 || !slices.Equal(rows[0], tt.header) {
				t.Fatalf("kubectl %s = %q, want the header %q and one row", strings.Join(tt.args, " "), rows, tt.header)
			}
			got, age := rows[1][:len(rows[1])-1], rows[1][len(rows[1])-1]
			if !slices.Equal(got, tt.row) {
				t.Errorf("row = %q, want %q", got, tt.row)
			}
			if age == "" || !strings.ContainsAny(age[len(age)-1:], "smhd") {
				t.Errorf("AGE = %q, want a duration", age)
			}
		})
	}
}

// readyOf returns the pool's Ready condition (status.conditions), or nil.
func readyOf(sp *v2beta1.SpiderIPPool) *metav1.Condition {
	return meta.FindStatusCondition(sp.Status.Conditions, v2beta1.IPPoolReadyCondition)
}

// hasReady is true when the pool's Ready condition has the status and reason, for the
// pool's generation.
func hasReady(status metav1.ConditionStatus, reason string) func(*v2beta1.SpiderIPPool) bool {
	return func(sp *v2beta1.SpiderIPPool) bool {
		c := readyOf(sp)
		return c != nil && c.Status == status && c.Reason == reason && c.ObservedGeneration == sp.Generation
	}
}

// kubectlWait runs `kubectl wait --for=<cond> sp/<name>` and fails the test unless it
// succeeds.
func kubectlWait(t *testing.T, e *testenv.Env, name, cond string) {
	t.Helper()
	if out, err := e.Kubectl(context.Background(), "wait", "--for="+cond, "sp/"+name, "--timeout=60s"); err != nil {
		t.Fatalf("kubectl wait --for=%s sp/%s: %v\n%s", cond, name, err, out)
	}
}

// TestKubectlWaitReady: `kubectl wait --for=condition=Ready sp/<name>` returns once the
// pool controller finds the pool can serve, with the observed generation following
// spec changes; a pool agents cannot allocate from is Ready=False with the reason of
// what blocks it: SpiderPool's records while SpiderPool runs (SpiderPoolRunning, then
// Ready once SpiderPool is gone and they are imported), records that do not decode
// (RecordsCorrupt), a spec that does not parse (SpecInvalid), spec.disable (Disabled).
// Counts equal the addresses pods hold, node spares counted apart, throughout.
func TestKubectlWaitReady(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	startController(t, e)

	t.Run("a good pool", func(t *testing.T) {
		const name = "ready-good"
		createPool(t, e, name, "10.37.0.0/24", false, "10.37.0.10-10.37.0.19")
		kubectlWait(t, e, name, "condition=Ready")
		sp := getPool(t, e, name)
		if c := readyOf(sp); c == nil || c.Status != metav1.ConditionTrue || c.Reason != v2beta1.IPPoolServingReason || c.ObservedGeneration != sp.Generation {
			t.Fatalf("Ready = %+v, want True/Serving for generation %d", c, sp.Generation)
		}
		if len(sp.Status.Conditions) != 1 || condition(sp, v2beta1.IPPoolRecordsValidCondition) == nil {
			t.Fatalf("status.conditions %+v, status.orbweaver %+v: want Ready beside the detailed conditions", sp.Status.Conditions, sp.Status.Orbweaver)
		}

		// Three pods and a node's reserve of two: the counts keep them apart.
		agentWrite(t, e, name, func(p ipam.Pool) ipam.Pool {
			p = allocateTo(t, podOwner(1), podOwner(2), podOwner(3))(p)
			p, _ = p.Reserve(records.ReserveOwner("node-a"), 2, netip.Addr{})
			return p
		})
		sp = waitPool(t, e, name, "3 pods, 2 spares, 5 free", func(sp *v2beta1.SpiderIPPool) bool {
			return countsSpare(10, 3, 2)(sp) && ptr.Deref(sp.Status.Orbweaver.FreeIPCount, -1) == 5
		})
		// The reserve settles: one spare to a new pod, the other given back.
		agentWrite(t, e, name, func(p ipam.Pool) ipam.Pool {
			spares := p.AllHeldBy(records.ReserveOwner("node-a"))
			p, _ = p.Rebind(spares[0], records.ReserveOwner("node-a"), podOwner(4))
			p, _ = p.Release(spares[1], records.ReserveOwner("node-a"))
			return p
		})
		waitPool(t, e, name, "4 pods, no spare, 6 free", func(sp *v2beta1.SpiderIPPool) bool {
			return countsSpare(10, 4, 0)(sp) && ptr.Deref(sp.Status.Orbweaver.FreeIPCount, -1) == 6
		})

		// A spec change: Ready follows the new generation.
		sp = getPool(t, e, name)
		sp.Spec.IPs = []v2beta1.IPOrRange{"10.37.0.10-10.37.0.29"}
		if err := e.Client.Update(ctx, sp); err != nil {
			t.Fatal(err)
		}
		waitPool(t, e, name, "Ready for the new generation", hasReady(metav1.ConditionTrue, v2beta1.IPPoolServingReason))
		kubectlWait(t, e, name, "condition=Ready")

		// Disabled: no new address, so not Ready; enabled again: Ready.
		setDisable(t, e, name, true)
		kubectlWait(t, e, name, "condition=Ready=false")
		waitPool(t, e, name, "Ready False: Disabled", hasReady(metav1.ConditionFalse, v2beta1.IPPoolDisabledReason))
		setDisable(t, e, name, false)
		kubectlWait(t, e, name, "condition=Ready")
	})

	t.Run("SpiderPool's records while SpiderPool runs", func(t *testing.T) {
		ns := grantsNamespace(t, e)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "spiderpool-agent-x",
			Labels: map[string]string{"app.kubernetes.io/name": "spiderpool", "app.kubernetes.io/component": "spiderpool-agent"}},
			Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/spiderpool-agent:1"}}}}
		if err := e.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Client.Delete(context.Background(), pod, client.GracePeriodSeconds(0)) })
		const name = "ready-spiderpool"
		createPool(t, e, name, "10.37.1.0/24", false, "10.37.1.10-10.37.1.19")
		spiderPoolWrote(t, e, name, `{"10.37.1.10":{"pod":"a/x","podUid":"u1"},"10.37.1.11":{"pod":"a/y","podUid":"u2"}}`, 2)

		kubectlWait(t, e, name, "condition=Ready=false")
		sp := waitPool(t, e, name, "Ready False: SpiderPoolRunning", hasReady(metav1.ConditionFalse, v2beta1.IPPoolSpiderPoolRunningReason))
		if c := readyOf(sp); !strings.Contains(c.Message, ns+"/spiderpool-agent-x") {
			t.Errorf("Ready message %q does not name SpiderPool's pod", c.Message)
		}
		if sp.Status.AllocatedIPs == nil {
			t.Fatal("imported while SpiderPool runs")
		}

		if err := e.Client.Delete(ctx, pod, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		kubectlWait(t, e, name, "condition=Ready")
		sp = waitPool(t, e, name, "imported: 2 pods, no spare", countsSpare(10, 2, 0))
		if sp.Status.AllocatedIPs != nil || !hasReady(metav1.ConditionTrue, v2beta1.IPPoolServingReason)(sp) {
			t.Fatalf("after the import: allocatedIPs %v, Ready %+v", sp.Status.AllocatedIPs, readyOf(sp))
		}
	})

	t.Run("records that do not decode", func(t *testing.T) {
		const name = "ready-corrupt"
		createPool(t, e, name, "10.37.2.0/24", false, "10.37.2.10-10.37.2.19")
		kubectlWait(t, e, name, "condition=Ready")
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			sp := getPool(t, e, name)
			sp.Status.Orbweaver.Records = []byte{9, 9, 9}
			return e.Client.Status().Update(ctx, sp)
		})
		if err != nil {
			t.Fatal(err)
		}
		kubectlWait(t, e, name, "condition=Ready=false")
		sp := waitPool(t, e, name, "Ready False: RecordsCorrupt", hasReady(metav1.ConditionFalse, v2beta1.IPPoolRecordsCorruptReason))
		if c := readyOf(sp); !strings.Contains(c.Message, "status.orbweaver.records") {
			t.Errorf("Ready message %q does not say which field", c.Message)
		}
	})

	t.Run("a spec that does not parse", func(t *testing.T) {
		// The schema takes it (no webhook runs here); the allocation core does not.
		const name = "ready-badspec"
		createPool(t, e, name, "10.37.3.0/24", false, "10.37.3.19-10.37.3.10")
		kubectlWait(t, e, name, "condition=Ready=false")
		sp := waitPool(t, e, name, "Ready False: SpecInvalid", hasReady(metav1.ConditionFalse, v2beta1.IPPoolSpecInvalidReason))
		if c := readyOf(sp); !strings.Contains(c.Message, "10.37.3.19-10.37.3.10") {
			t.Errorf("Ready message %q does not name the range", c.Message)
		}
		waitEvent(t, e, name, EventPoolSpecInvalid)
	})
}

// setDisable sets the pool's spec.disable.
func setDisable(t *testing.T, e *testenv.Env, name string, disable bool) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		sp := getPool(t, e, name)
		sp.Spec.Disable = ptr.To(disable)
		return e.Client.Update(context.Background(), sp)
	})
	if err != nil {
		t.Fatal(err)
	}
}
