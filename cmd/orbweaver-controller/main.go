// Command orbweaver-controller is the cluster-wide controller: the admission webhooks of
// pools, subnets and reserved IPs (every replica serves them), with their certificate,
// behind leader election for the reconcilers that come with the controller milestone. It
// only wires flags into a controller-runtime manager.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/admissionlock"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/webhookcerts"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

func main() {
	var (
		namespace, service, configuration, certDir, certSecret string
		healthAddr, metricsAddr                                string
		webhookPort                                            int
		ipv4, ipv6                                             bool
	)
	flag.StringVar(&namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the controller's namespace (default $POD_NAMESPACE): its leader Lease, admission Lease and certificate Secret live there")
	flag.StringVar(&service, "webhook-service", "orbweaver-controller", "the Service in front of the webhooks; the certificate is for <service>.<namespace>.svc")
	flag.StringVar(&configuration, "webhook-configuration", "orbweaver", "name of the Mutating- and ValidatingWebhookConfiguration that get the CA")
	flag.StringVar(&certSecret, "webhook-cert-secret", "orbweaver-webhook-certs", "Secret holding the webhooks' self-signed CA and certificate")
	flag.StringVar(&certDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "orbweaver-webhook-certs"), "where the webhook server reads tls.crt and tls.key")
	flag.IntVar(&webhookPort, "webhook-port", 5722, "webhook server port (SpiderPool's)")
	flag.StringVar(&healthAddr, "health-addr", ":5720", "address of /healthz and /readyz")
	flag.StringVar(&metricsAddr, "metrics-addr", ":5721", "address of /metrics; 0 disables")
	flag.BoolVar(&ipv4, "enable-ipv4", true, "admit IPv4 pools, subnets and reserved IPs")
	flag.BoolVar(&ipv6, "enable-ipv6", true, "admit IPv6 pools, subnets and reserved IPs")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	log := zap.New(zap.UseFlagOptions(&opts))
	ctrllog.SetLogger(log)
	if err := run(ctrl.SetupSignalHandler(), namespace, service, configuration, certSecret, certDir, healthAddr, metricsAddr, webhookPort, webhook.Config{EnableIPv4: ipv4, EnableIPv6: ipv6}); err != nil {
		log.Error(err, "orbweaver-controller failed")
		os.Exit(1)
	}
}

func run(ctx context.Context, namespace, service, configuration, certSecret, certDir, healthAddr, metricsAddr string, webhookPort int, cfg webhook.Config) error {
	if namespace == "" {
		return fmt.Errorf("no namespace: set --namespace or POD_NAMESPACE (the Deployment passes metadata.namespace)")
	}
	if !cfg.EnableIPv4 && !cfg.EnableIPv6 {
		return fmt.Errorf("--enable-ipv4 and --enable-ipv6 are both false; enable at least one")
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = 100, 200
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme(),
		LeaderElection:                true,
		LeaderElectionID:              "orbweaver-controller",
		LeaderElectionNamespace:       namespace,
		LeaderElectionReleaseOnCancel: true,
		HealthProbeBindAddress:        healthAddr,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		WebhookServer:                 ctrlwebhook.NewServer(ctrlwebhook.Options{Port: webhookPort, CertDir: certDir}),
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	direct, err := ctrlClient(mgr)
	if err != nil {
		return err
	}
	certs := &webhookcerts.Manager{
		Client: direct, Namespace: namespace, Secret: certSecret, CertDir: certDir, Configuration: configuration,
		Hosts: []string{service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local"},
	}
	// Before the webhook server starts, which needs the files.
	if _, err := certs.Ensure(ctx); err != nil {
		return err
	}
	log := ctrl.Log.WithName("webhook-certs")
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		certs.Run(ctx, 12*time.Hour, func(err error) { log.Error(err, "renewing the webhook certificate") })
		return nil
	})); err != nil {
		return err
	}
	serializer := &admissionlock.Lease{Client: direct, Namespace: namespace, Name: "orbweaver-admission"}
	if err := webhook.Register(mgr, cfg, mgr.GetAPIReader(), serializer); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// everyReplica is a runnable that runs on every replica, not only the leader.
type everyReplica func(ctx context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

var _ manager.LeaderElectionRunnable = everyReplica(nil)

// ctrlClient returns a client that reads the API server directly (the manager's client
// reads from caches, which may lag a write another replica just made).
func ctrlClient(mgr ctrl.Manager) (client.Client, error) {
	return client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
}

// scheme knows the core kinds (Leases, Secrets, webhook configurations) and orbweaver's.
func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v2beta1.AddToScheme(s))
	return s
}
