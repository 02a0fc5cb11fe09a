package workloads

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/orbweaver-ipam/orbweaver/internal/webhooktest"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/autopool"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/gc"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/ippool"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/subnet"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook/admissionlock"
)

// controllerOptions tune startControllers.
type controllerOptions struct {
	gc ipam.GCConfig
}

// startControllers runs what orbweaver-controller runs, in this process, against the
// test API server until the test ends: the admission webhooks (served on 127.0.0.1 and
// registered by URL), auto pools, pool and subnet status, and garbage collection with
// a short GoneDelay.
func startControllers(t *testing.T, opts controllerOptions) {
	t.Helper()
	logOnce.Do(func() {
		if testing.Verbose() {
			ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
		} else {
			ctrllog.SetLogger(logr.Discard())
		}
	})
	webhooktest.Serve(t, env, &admissionlock.Lease{Client: env.Client, Namespace: "default", Name: "orbweaver-admission"})
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Each test runs its own manager: controller names repeat.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := autopool.SetupWithManager(mgr, autopool.Params{DefaultFlexibleIPNumber: 1, EnableIPv4: true, EnableIPv6: true, Registerer: reg, RetryInterval: time.Second}); err != nil {
		t.Fatal(err)
	}
	if err := ippool.SetupWithManager(context.Background(), mgr, ippool.Params{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if err := subnet.SetupWithManager(mgr, subnet.Params{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	cfg := opts.gc
	if cfg.GoneDelay == 0 {
		cfg = ipam.DefaultGCConfig()
		cfg.GoneDelay = 2 * time.Second
	}
	collector, err := gc.New(gc.Params{Config: cfg, StatefulSetRetention: true, Registerer: reg, ResyncPeriod: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := collector.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller manager: %v", err)
		}
	})
}

var logOnce sync.Once
