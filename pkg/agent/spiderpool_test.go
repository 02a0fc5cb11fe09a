package agent

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// TestAgentRefusesBesideSpiderPool: while a pod of SpiderPool's agent runs on the node,
// an ADD allocates nothing (both agents would hand out the same free addresses) and
// says why, on the pod too; once that pod is gone the same ADD succeeds. A SpiderPool
// agent on another node does not stop this one.
func TestAgentRefusesBesideSpiderPool(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ta := startAgent(t, e)
	other := startAgent(t, e)
	newPool(t, e, "beside-sp", "10.34.0.0/24", nil, "10.34.0.5-10.34.0.9")
	waitForPools(t, ta)
	ns := newNamespace(t, e, nil)
	spAgent := newPod(t, e, ns, "spiderpool-agent-x", ta.node, nil)
	spAgent.Labels = map[string]string{"app.kubernetes.io/name": "spiderpool", "app.kubernetes.io/component": "spiderpool-agent"}
	if err := e.Client.Update(ctx, spAgent); err != nil {
		t.Fatal(err)
	}
	spAgent.Status.Phase = corev1.PodRunning
	if err := e.Client.Status().Update(ctx, spAgent); err != nil {
		t.Fatal(err)
	}

	pod := newPod(t, e, ns, "web", ta.node, poolAnnotation("beside-sp", ""))
	att := attachment{pod: pod, containerID: "c1", ifName: "eth0"}
	testenv.WaitFor(t, "the ADD refused while SpiderPool's agent runs on the node", func() (bool, error) {
		_, err := ta.add(ctx, att)
		return err != nil, nil
	})
	_, err := ta.add(ctx, att)
	wantAgentError(t, err, codeTryAgainLater, ReasonSpiderPoolRunning, ns+"/spiderpool-agent-x", "uninstalled")
	testenv.WaitFor(t, "a Warning event on the pod", func() (bool, error) {
		w, err := podWarnings(ctx, e, pod)
		return len(w) > 0 && containsAll(w[0], "SpiderPool"), err
	})
	if n := podsHold(t, e, "beside-sp"); n != 0 {
		t.Fatalf("%d addresses held after the refused ADD", n)
	}

	elsewhere := newPod(t, e, ns, "elsewhere", other.node, poolAnnotation("beside-sp", ""))
	if _, err := other.add(ctx, attachment{pod: elsewhere, containerID: "c2", ifName: "eth0"}); err != nil {
		t.Fatalf("an ADD on a node without SpiderPool's agent: %v", err)
	}

	if err := e.Client.Delete(ctx, spAgent, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the ADD served once SpiderPool's agent is gone", func() (bool, error) {
		_, err := ta.add(ctx, att)
		return err == nil, err
	})
}
