// Package chart tests the Helm chart charts/orbweaver: it renders the chart with bin/helm
// (default values, every option on, single --set values) and checks the objects: the
// agent's and the controller's RBAC against their reference docs, the DaemonSet and the
// Deployment, the webhook configurations against pkg/webhook, every flag against the
// binaries' own -h, the values schema, the init container (`orbweaver-agent install-cni`
// run for real on temporary folders), and, against a real API server, a server-side dry
// run, `helm install`, `helm upgrade` and `helm uninstall`, and both binaries running with
// the chart's ServiceAccounts.
//
// Only TestInstall needs the API server (skipped with -short); the others need bin/helm
// (`make tools`) and build cmd/orbweaver-agent and cmd/orbweaver-controller.
package chart

import (
	"os"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// env is the package's API server for TestInstall; nil with -short.
var env *testenv.Env

func TestMain(m *testing.M) {
	code := testenv.Main(m, &env)
	cleanupBinaries()
	os.Exit(code)
}
