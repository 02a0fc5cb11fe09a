package subnet

import (
	"context"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// env is the package's API server for the integration tests; nil with -short.
var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

// startController runs a manager with the subnet status controller against the test's
// API server until the test ends, and returns the registry holding its metrics.
func startController(t *testing.T, e *testenv.Env) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	e.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		// Direct and Recorder are left to their defaults, the manager's.
		return SetupWithManager(ctx, mgr, Params{Registerer: reg})
	})
	return reg
}
