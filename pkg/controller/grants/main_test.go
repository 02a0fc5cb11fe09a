package grants

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

// startController runs a manager with the grant controller until the test ends. Several
// may run at once: no leader election here, which is what a deposed leader that still
// writes looks like.
func startController(t *testing.T, e *testenv.Env) *prometheus.Registry {
	t.Helper()
	return startControllerWith(t, e, Params{})
}

// startControllerWith is startController with p (its Registerer is set here).
func startControllerWith(t *testing.T, e *testenv.Env, p Params) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	p.Registerer = reg
	e.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error { return SetupWithManager(ctx, mgr, p) })
	return reg
}
