package workloads

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

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
	cfg := opts.gc
	if cfg.GoneDelay == 0 {
		cfg = ipam.DefaultGCConfig()
		cfg.GoneDelay = 2 * time.Second
	}
	reg := prometheus.NewRegistry()
	env.StartManager(t, func(ctx context.Context, mgr ctrl.Manager) error {
		if err := autopool.SetupWithManager(ctx, mgr, autopool.Params{DefaultFlexibleIPNumber: 1, EnableIPv4: true, EnableIPv6: true, Registerer: reg, RetryInterval: time.Second}); err != nil {
			return err
		}
		if err := ippool.SetupWithManager(ctx, mgr, ippool.Params{Registerer: reg}); err != nil {
			return err
		}
		if err := subnet.SetupWithManager(ctx, mgr, subnet.Params{Registerer: reg}); err != nil {
			return err
		}
		return gc.SetupWithManager(ctx, mgr, gc.Params{Config: cfg, StatefulSetRetention: true, Registerer: reg, ResyncPeriod: 30 * time.Second})
	})
}

var logOnce sync.Once
