// Package workloads runs orbweaver's controller and agents against a real kube-apiserver
// with kube-controller-manager's workload controllers, so Deployments, StatefulSets,
// DaemonSets and Jobs make real Pod objects. No scheduler or kubelet runs: a small
// stand-in (fakeKubelet) binds each pod to a node, asks that node's real agent for its
// IPs over the agent's socket, as the CNI plugin does, and reports the pod Running and
// Ready; a pod being deleted gets its CNI DEL and is then removed. The real kubelet tier
// (containerd, the CNI binary, the Helm chart) is test/cluster's.
package workloads

import (
	"os"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

var (
	env *testenv.Env
	kcm *testenv.ControllerManager
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, func(e *testenv.Env) (func() error, error) {
		var err error
		if kcm, err = e.StartControllerManager(); err != nil {
			return nil, err
		}
		return kcm.Stop, nil
	}))
}
