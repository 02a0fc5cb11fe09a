package main

import (
	"strings"
	"testing"
)

// TestE2EHelmTest runs the chart's `helm test` on the installed release: the test Pod
// (`orbweaver-controller check-install`, from the controller's image) finds the agent
// ready and the webhooks admitting a valid pool and refusing an invalid one; its RBAC is
// gone once it passed, its Pod kept for the logs; a second run replaces it.
func TestE2EHelmTest(t *testing.T) {
	c := requireCluster(t)
	// helm uninstall leaves the test Pod (a hook), and later tests wait for every pod of
	// the release to be gone after one.
	t.Cleanup(func() {
		_, _ = c.kubectl("-n", "kube-system", "delete", "pod", "orbweaver-test", "--ignore-not-found", "--wait=true")
	})
	for run := 1; run <= 2; run++ {
		out, err := c.helm("test", "orbweaver", "--namespace", "kube-system", "--logs", "--timeout", "3m")
		if err != nil {
			t.Fatalf("helm test, run %d: %v\n%s", run, err, out)
		}
		for _, want := range []string{"Phase:          Succeeded", "1 agents of DaemonSet kube-system/orbweaver-agent ready", "refuse an invalid one: admission webhook"} {
			if !strings.Contains(out, want) {
				t.Errorf("helm test's output, run %d, lacks %q:\n%s", run, want, out)
			}
		}
		left := k(t, c, "kube-system", "get", "pods,serviceaccounts,roles,rolebindings", "-l", "app.kubernetes.io/component=test", "-o", "name")
		if strings.TrimSpace(left) != "pod/orbweaver-test" {
			t.Errorf("after a passing helm test, run %d: %q left; want its Pod alone", run, left)
		}
		for _, obj := range []string{"clusterrole/orbweaver-test", "clusterrolebinding/orbweaver-test"} {
			if _, err := c.kubectl("get", obj); err == nil {
				t.Errorf("run %d: %s left after a passing helm test", run, obj)
			}
		}
	}
}
