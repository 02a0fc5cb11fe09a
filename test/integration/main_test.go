// Package integration is the integration tier: orbweaver's API and printer columns
// against a real kube-apiserver + etcd (tier 2 of docs/development.md), and the real
// orbweaver binary under the real bridge and macvlan CNI plugins in network namespaces
// (tier 3). No kubelet, scheduler or container runtime runs here: the real cluster is
// test/cluster (`make e2e`).
package integration

import (
	"os"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }
