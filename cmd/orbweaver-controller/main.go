// Command orbweaver-controller is the cluster-wide controller: the admission webhooks of
// pools, subnets and reserved IPs (every replica serves them), with their certificate;
// and, on the elected leader, auto pools per application, pool and subnet status, IP
// garbage collection with StatefulSet retention, node grants (the addresses each node
// may hand out), and the pools' EIPs in the configured clouds. It only wires flags into a
// controller-runtime manager.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	chart "github.com/orbweaver-ipam/orbweaver/charts/orbweaver"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/autopool"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/eipbinding"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/gc"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/grants"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/ippool"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/subnet"
	"github.com/orbweaver-ipam/orbweaver/pkg/crdcheck"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/alibaba"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/aws"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/tencent"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/version"
	"github.com/orbweaver-ipam/orbweaver/pkg/version/buildinfo"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook/admissionlock"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook/webhookcerts"
)

// options are the controller's settings, from flags.
type options struct {
	namespace, service, configuration, certDir, certSecret string
	healthAddr, metricsAddr                                string
	webhookHost                                            string
	webhookPort                                            int
	webhook                                                webhook.Config
	upgradeCRDs                                            bool
	// certsGiven: serve the certificate found in certDir (--manage-webhook-certs=false);
	// the zero value makes and keeps the self-signed one.
	certsGiven    bool
	metricsSecure bool

	statefulSet        bool
	nodeGrants         bool
	autoPoolDefaultN   int
	autoPoolThirdParty string
	statefulKinds      string
	kinds              ipam.StatefulKinds // statefulKinds, parsed
	gcEnabled          bool
	gc                 ipam.GCConfig
	gcResync           time.Duration
	reclaimPolicy      string

	clusterID      string
	eipClouds      map[string]*eip.Config
	eipOrphanEvery time.Duration
	eipDefault     string
	eipVendor      bool
	eipPodRequests string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "check-install" {
		if err := checkInstall(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "orbweaver-controller check-install:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	o.gc = ipam.DefaultGCConfig()
	flag.StringVar(&o.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the controller's namespace (default $POD_NAMESPACE): its leader Lease, admission Lease and certificate Secret live there")
	flag.StringVar(&o.service, "webhook-service", "orbweaver-controller", "the Service in front of the webhooks; the certificate is for <service>.<namespace>.svc")
	flag.StringVar(&o.configuration, "webhook-configuration", "orbweaver", "name of the Mutating- and ValidatingWebhookConfiguration that get the CA")
	flag.StringVar(&o.certSecret, "webhook-cert-secret", "orbweaver-webhook-certs", "Secret holding the webhooks' self-signed CA and certificate")
	manageCerts := flag.Bool("manage-webhook-certs", true, "make, renew and keep in --webhook-cert-secret a self-signed certificate for the webhooks and put its CA into the webhook configurations; false: serve the tls.crt and tls.key found in --webhook-cert-dir (cert-manager's or yours, mounted from a Secret; reloaded when they change) and leave the caBundle to whoever made them")
	flag.StringVar(&o.certDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "orbweaver-webhook-certs"), "where the webhook server reads tls.crt and tls.key")
	flag.IntVar(&o.webhookPort, "webhook-port", 5722, "webhook server port (SpiderPool's)")
	flag.StringVar(&o.webhookHost, "webhook-host", "", "address the webhook server listens on; empty means every interface")
	flag.StringVar(&o.healthAddr, "health-addr", ":5720", "address of /healthz and /readyz")
	flag.StringVar(&o.metricsAddr, "metrics-addr", ":5721", "address of /metrics; 0 disables")
	flag.BoolVar(&o.metricsSecure, "metrics-secure", false, "serve /metrics over HTTPS (a self-signed certificate) to clients whose bearer token the API server authenticates (TokenReview) and authorizes for GET on the non-resource URL /metrics (SubjectAccessReview); false: plain HTTP to anyone who reaches --metrics-addr")
	flag.BoolVar(&o.upgradeCRDs, "upgrade-crds", true, "at start, put this release's CRDs in place of served ones that lack orbweaver's fields (SpiderPool's, or an older orbweaver's, which helm install and upgrade keep); off: refuse to start instead, saying what to apply")
	flag.BoolVar(&o.webhook.EnableIPv4, "enable-ipv4", true, "serve IPv4: admit IPv4 pools, subnets and reserved IPs, make IPv4 auto pools")
	flag.BoolVar(&o.webhook.EnableIPv6, "enable-ipv6", true, "serve IPv6: admit IPv6 pools, subnets and reserved IPs, make IPv6 auto pools")
	flag.BoolVar(&o.statefulSet, "enable-statefulset", true, "keep a StatefulSet pod's IPs while the StatefulSet wants its ordinal (must match the agents' --enable-statefulset)")
	flag.BoolVar(&o.nodeGrants, "node-grants", true, "run the grant controller (docs/design/node-grants.md): it switches a pool to node grants once every node's agent speaks them, then grants addresses to nodes in IPBlocks; must match the agents' --node-grants")
	flag.IntVar(&o.autoPoolDefaultN, "auto-pool-default-ip-number", 1, `the N of "+N" for applications whose template has no ipam.spidernet.io/ippool-ip-number (SpiderPool's clusterSubnetDefaultFlexibleIPNumber)`)
	flag.StringVar(&o.autoPoolThirdParty, "auto-pool-third-party-kinds", "", "further workload kinds that get auto pools, comma-separated group/version/Kind (e.g. apps.kruise.io/v1alpha1/CloneSet); their ippool-ip-number must be a fixed N")
	flag.StringVar(&o.statefulKinds, "stateful-workload-kinds", "", "further controllers whose pods keep their IPs as a StatefulSet's, comma-separated group/version/Kind (e.g. apps.kruise.io/v1beta1/StatefulSet); GC reads their spec.replicas; must match the agents'")
	flag.BoolVar(&o.gcEnabled, "gc-enabled", true, "run IP garbage collection")
	flag.DurationVar(&o.gc.GoneDelay, "gc-gone-delay", o.gc.GoneDelay, "how long a pod (or node) must have been gone before GC frees what it held; above the watch lag")
	flag.DurationVar(&o.gc.AdditionalGraceDelay, "gc-additional-grace-delay", 0, "added to a terminating pod's grace period before GC frees its IPs")
	flag.BoolVar(&o.gc.ReleaseTerminatingOnReadyNode, "gc-release-terminating-on-ready-node", true, "free the IPs of a pod stuck terminating past its grace period on a Ready node")
	flag.BoolVar(&o.gc.ReleaseTerminatingOnNotReadyNode, "gc-release-terminating-on-not-ready-node", true, "free the IPs of a pod stuck terminating past its grace period on a NotReady or deleted node")
	flag.StringVar(&o.reclaimPolicy, "gc-default-reclaim-policy", string(v2beta1.ReclaimFollow), "reclaim policy of StatefulSet IPs for pools that set none: Follow, Never, Reserved (kept until the StatefulSet is deleted) or a duration such as 10m")
	flag.DurationVar(&o.gcResync, "gc-resync-period", gc.DefaultResyncPeriod, "longest time between two full GC passes")
	flag.StringVar(&o.clusterID, "cluster-id", "", "tags every EIP this cluster allocates, so clusters sharing a cloud account never collect each other's; default the kube-system namespace's UID")
	flag.DurationVar(&o.eipOrphanEvery, "eip-orphan-interval", 10*time.Minute, "how often EIPs tagged for this cluster that no pool tracks are released (after two passes); 0 disables")
	flag.StringVar(&o.eipDefault, "eip-default-provider", "", "cloud of the EIPs pods ask for by annotation (orbweaver.io/with-eip) in pools without an EIP attribute; default the only enabled one")
	flag.BoolVar(&o.eipVendor, "eip-vendor-annotations", false, "also read Alibaba ACK's and Tencent TKE's EIP pod annotations (k8s.aliyun.com/pod-with-eip, tke.cloud.tencent.com/eip-attributes, ...), and set ACK's readiness gate k8s.aliyun.com/eip and annotation k8s.aliyun.com/allocated-eipAddress, so their manifests apply unchanged")
	flag.StringVar(&o.eipPodRequests, "eip-pod-requests", eipbinding.PodRequestsRestricted, "whose per-pod EIP requests (orbweaver.io/with-eip, orbweaver.io/eip-id, the per-pod attributes, the vendors' annotations) are honoured: restricted (only in namespaces labelled orbweaver.io/eip-requests=allowed and for IPs of pools with spec.orbweaver.eip.allowPodRequests) or open (every pod's: single-tenant clusters)")
	o.eipClouds = map[string]*eip.Config{}
	for _, name := range []string{"alibaba", "aws", "tencent"} {
		c := &eip.Config{}
		o.eipClouds[name] = c
		flag.StringVar(&c.Region, "eip-"+name+"-region", "", "enables EIP pools of provider "+name+" in this region (credentials from the SDK's standard chain: environment, files, instance role)")
		flag.StringVar(&c.Endpoint, "eip-"+name+"-endpoint", "", "overrides the "+name+" API endpoints with one base URL (a private endpoint, or a local emulator)")
	}
	showVersion := flag.Bool("version", false, "print the version and exit")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	o.certsGiven = !*manageCerts
	if *showVersion {
		fmt.Println(version.String("orbweaver-controller"))
		return
	}
	log := zap.New(zap.UseFlagOptions(&opts))
	ctrllog.SetLogger(log)
	log.Info("starting", "version", version.Version(), "commit", version.Commit())
	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		log.Error(err, "orbweaver-controller failed")
		os.Exit(1)
	}
}

// RBAC of the manager's leader election, in --namespace ("system" stands for it): the
// Lease orbweaver-controller (create cannot be limited to a name).
//
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=create
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;update,resourceNames=orbweaver-controller

func run(ctx context.Context, o options) error {
	if o.namespace == "" {
		return fmt.Errorf("no namespace: set --namespace or POD_NAMESPACE (the Deployment passes metadata.namespace)")
	}
	if !o.webhook.EnableIPv4 && !o.webhook.EnableIPv6 {
		return fmt.Errorf("--enable-ipv4 and --enable-ipv6 are both false; enable at least one")
	}
	o.gc.DefaultReclaimPolicy = v2beta1.ReclaimPolicy(o.reclaimPolicy)
	if _, _, err := o.gc.DefaultReclaimPolicy.ReclaimAfterFor(false); err != nil {
		return fmt.Errorf("--gc-default-reclaim-policy: %w", err)
	}
	thirdParty, err := parseKinds(o.autoPoolThirdParty)
	if err != nil {
		return fmt.Errorf("--auto-pool-third-party-kinds: %w", err)
	}
	if o.kinds, err = ipam.ParseStatefulKinds(strings.Split(o.statefulKinds, ",")); err != nil {
		return fmt.Errorf("--stateful-workload-kinds: %w", err)
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
		LeaderElectionNamespace:       o.namespace,
		LeaderElectionReleaseOnCancel: true,
		HealthProbeBindAddress:        o.healthAddr,
		Metrics:                       metricsOptions(o),
		WebhookServer:                 ctrlwebhook.NewServer(ctrlwebhook.Options{Host: o.webhookHost, Port: o.webhookPort, CertDir: o.certDir}),
		// The caches hold every pod, node and workload: keep them small.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	direct, err := ctrlClient(mgr)
	if err != nil {
		return err
	}
	// Before anything is written: a CRD without orbweaver's fields (SpiderPool's, kept by
	// Helm) would have the API server drop them on every write.
	if o.upgradeCRDs {
		want, err := crdcheck.ReadCRDs(chart.CRDs, "crds")
		if err != nil {
			return fmt.Errorf("this release's CRDs: %w", err)
		}
		if _, err := crdcheck.Upgrade(ctx, crdcheck.Params{Client: direct, Component: "orbweaver-controller", Log: ctrl.Log.WithName("crdcheck")}, want); err != nil {
			return err
		}
	}
	if err := crdcheck.Ensure(ctx, crdcheck.Params{Client: direct, Component: "orbweaver-controller", Log: ctrl.Log.WithName("crdcheck")}); err != nil {
		return err
	}
	// The build, beside controller-runtime's Go and process metrics. Registered once per
	// process: run is called again by tests in the same process.
	if err := metrics.Registry.Register(buildinfo.Collector()); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return fmt.Errorf("metrics: %w", err)
	}
	for _, c := range components(mgr, direct, o, thirdParty) {
		if !c.enabled {
			continue
		}
		if err := c.setup(ctx, mgr); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// component is one part of the controller: a name for its errors, whether the flags
// enable it, and its registration with the manager, which is the package's
// SetupWithManager(ctx, mgr, Params). Where a part runs is its own: the webhooks and the
// renewal of their certificate on every replica, the controllers only on the elected
// leader.
type component struct {
	name    string
	enabled bool
	setup   func(context.Context, ctrl.Manager) error
}

// with binds a package's SetupWithManager to its parameters.
func with[P any](setup func(context.Context, ctrl.Manager, P) error, p P) func(context.Context, ctrl.Manager) error {
	return func(ctx context.Context, mgr ctrl.Manager) error { return setup(ctx, mgr, p) }
}

// components are the parts of the controller, in the order they are registered: the
// self-signed certificate first, since the webhook server reads its files as it starts.
func components(mgr ctrl.Manager, direct client.Client, o options, thirdParty []schema.GroupVersionKind) []component {
	reg := metrics.Registry
	return []component{
		// On every replica.
		{"webhook certificate", !o.certsGiven, with(webhookcerts.SetupWithManager, webhookcerts.Params{Manager: &webhookcerts.Manager{
			Client: direct, Namespace: o.namespace, Secret: o.certSecret, CertDir: o.certDir, Configuration: o.configuration,
			Hosts: []string{o.service + "." + o.namespace + ".svc", o.service + "." + o.namespace + ".svc.cluster.local"},
		}})},
		{"webhooks", true, with(webhook.SetupWithManager, webhook.Params{Config: o.webhook, Reader: mgr.GetAPIReader(),
			Serializer: &admissionlock.Lease{Client: direct, Namespace: o.namespace, Name: "orbweaver-admission"}})},
		// On the leader.
		{"auto pools", true, with(autopool.SetupWithManager, autopool.Params{
			DefaultFlexibleIPNumber: o.autoPoolDefaultN, ThirdPartyKinds: thirdParty,
			EnableIPv4: o.webhook.EnableIPv4, EnableIPv6: o.webhook.EnableIPv6, Client: direct, Registerer: reg,
		})},
		{"pool status", true, with(ippool.SetupWithManager, ippool.Params{Direct: direct, Registerer: reg})},
		{"node grants", o.nodeGrants, with(grants.SetupWithManager, grants.Params{Direct: direct, Registerer: reg, GoneDelay: o.gc.GoneDelay})},
		{"subnet status", true, with(subnet.SetupWithManager, subnet.Params{Direct: direct, Registerer: reg})},
		{"EIPs", true, func(ctx context.Context, mgr ctrl.Manager) error {
			p, err := eipParams(ctx, mgr, direct, o)
			if err != nil {
				return err
			}
			return eipbinding.SetupWithManager(ctx, mgr, p)
		}},
		{"IP garbage collection", o.gcEnabled, with(gc.SetupWithManager, gc.Params{
			Config: o.gc, StatefulSetRetention: o.statefulSet, StatefulKinds: o.kinds, ResyncPeriod: o.gcResync, Client: direct, Registerer: reg,
		})},
	}
}

// RBAC of --metrics-secure, a role of its own (orbweaver-controller-metrics-secure; the
// chart grants it with metrics.secure): a TokenReview and a SubjectAccessReview per
// scrape.
//
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create,roleName=orbweaver-controller-metrics-secure
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create,roleName=orbweaver-controller-metrics-secure

// metricsOptions serves /metrics on --metrics-addr: plain HTTP, or with --metrics-secure
// HTTPS behind the API server's authentication and authorization of each request.
func metricsOptions(o options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.metricsAddr}
	if o.metricsSecure {
		m.SecureServing = true
		m.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return m
}

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
	utilruntime.Must(ipamv1.AddToScheme(s))
	return s
}

// newProvider builds one cloud's EIP adapter.
var newProvider = map[string]func(context.Context, eip.Config) (eip.Provider, error){
	"alibaba": func(ctx context.Context, c eip.Config) (eip.Provider, error) { return alibaba.New(ctx, c) },
	"aws":     func(ctx context.Context, c eip.Config) (eip.Provider, error) { return aws.New(ctx, c) },
	"tencent": func(ctx context.Context, c eip.Config) (eip.Provider, error) { return tencent.New(ctx, c) },
}

// RBAC of the default --cluster-id: the kube-system namespace read.
//
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get

// eipParams are the EIP controller's, with the clouds whose region is set. A cloud whose
// adapter cannot start (no credentials) is left out with its error: its pools' EIPReady
// condition says why, and the rest of the controller runs on.
func eipParams(ctx context.Context, mgr ctrl.Manager, direct client.Client, o options) (eipbinding.Params, error) {
	log := ctrl.Log.WithName("eip")
	providers, broken := map[string]eip.Provider{}, map[string]error{}
	for name, c := range o.eipClouds {
		if c.Region == "" {
			continue
		}
		p, err := newProvider[name](ctx, *c)
		if err != nil {
			log.Error(err, "EIP provider unavailable; its pools get no EIPs", "provider", name, "region", c.Region)
			broken[name] = err
			continue
		}
		providers[name] = eip.Retrying(p, eip.DefaultBackoff)
		log.Info("EIP provider ready", "provider", name, "region", c.Region, "endpoint", c.Endpoint)
	}
	clusterID := o.clusterID
	if clusterID == "" {
		ns := &corev1.Namespace{}
		if err := direct.Get(ctx, client.ObjectKey{Name: metav1.NamespaceSystem}, ns); err != nil {
			return eipbinding.Params{}, fmt.Errorf("read the kube-system namespace for the default --cluster-id: %w", err)
		}
		clusterID = string(ns.UID)
	}
	orphans := o.eipOrphanEvery
	if orphans <= 0 {
		orphans = -1
	}
	return eipbinding.Params{
		Providers: providers, ProviderErrors: broken, ClusterID: clusterID, Direct: direct,
		Recorder: mgr.GetEventRecorderFor("orbweaver-eip"), Registerer: metrics.Registry, OrphanInterval: orphans,
		DefaultProvider: o.eipDefault, VendorAnnotations: o.eipVendor, PodRequests: o.eipPodRequests,
	}, nil
}

// parseKinds reads "group/version/Kind,..." ("v1/Kind" for the core group).
func parseKinds(s string) ([]schema.GroupVersionKind, error) {
	var out []schema.GroupVersionKind
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		i := strings.LastIndexByte(item, '/')
		if i <= 0 || i == len(item)-1 {
			return nil, fmt.Errorf("%q: write group/version/Kind, e.g. apps.kruise.io/v1alpha1/CloneSet", item)
		}
		gv, err := schema.ParseGroupVersion(item[:i])
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		out = append(out, gv.WithKind(item[i+1:]))
	}
	return out, nil
}
