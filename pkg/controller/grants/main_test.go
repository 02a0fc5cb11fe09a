package grants

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

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
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	p.Registerer = reg
	if err := SetupWithManager(ctx, mgr, p); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("manager did not stop within 30s")
		}
	})
	return reg
}
