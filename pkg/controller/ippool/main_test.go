package ippool

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

// startController runs a manager with the pool status controller against the test's API
// server until the test ends, and returns the registry holding its metrics. change, when
// given, changes the Params first.
func startController(t *testing.T, e *testenv.Env, change ...func(*Params)) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	e.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		p := Params{Direct: e.Client, Recorder: mgr.GetEventRecorderFor("orbweaver-ippool"), Registerer: reg}
		for _, c := range change {
			c(&p)
		}
		return SetupWithManager(ctx, mgr, p)
	})
	return reg
}
