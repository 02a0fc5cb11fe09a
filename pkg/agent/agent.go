package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/crdcheck"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/crdstore"
	"github.com/orbweaver-ipam/orbweaver/pkg/version/buildinfo"
)

// DefaultSocketPath is where the agent serves the CNI plugin.
const DefaultSocketPath = "/var/run/orbweaver/agent.sock"

// Config is everything the node agent needs to run.
type Config struct {
	// NodeName is the node this agent serves (the DaemonSet passes spec.nodeName).
	NodeName string
	// RESTConfig reaches the API server; when nil, Kubeconfig is read, and when that is
	// empty too, the in-cluster configuration is used.
	RESTConfig *rest.Config
	Kubeconfig string
	// QPS and Burst limit this agent's API requests (defaults 100 and 200): group commit
	// keeps pool writes far below them; SpiderEndpoint writes are one per pod.
	QPS   float32
	Burst int
	// SocketPath is the unix socket the CNI plugin calls (DefaultSocketPath when empty).
	SocketPath string
	// HealthAddr serves /healthz and /readyz, MetricsAddr serves /metrics; empty disables.
	HealthAddr, MetricsAddr string
	// EnableIPv4 and EnableIPv6 are the families served; both false means both.
	EnableIPv4, EnableIPv6 bool
	// MultusClusterNetwork is Multus' cluster network ("ns/name"), for spec.multusName.
	MultusClusterNetwork string
	// Registry receives the agent's metrics; nil means a registry of its own.
	Registry *prometheus.Registry
	Log      logr.Logger
	// Ready, if set, is called once the caches have synced and the socket serves.
	Ready func()

	// ReserveSize is the most addresses of each pool the agent keeps reserved for its
	// node, to hand to pods without a pool write (docs/design/allocation.md); 0 means
	// DefaultReserveSize, a negative value turns reserving off.
	ReserveSize int
	// ReserveQuarantine is how long a restarted agent waits before it settles what a
	// crashed predecessor left in reserve (default 10 s): longer than any write the
	// predecessor sent can take to land.
	ReserveQuarantine time.Duration
	// ReserveRebindDelay is how long handed-out addresses wait to be recorded under their
	// pods in one pool write (DefaultRebindDelay).
	ReserveRebindDelay time.Duration
	// LockPath is the file whose lock makes this the node's only reserving agent
	// (default: node-<name>.lock beside the socket).
	LockPath string

	// StatefulSetFixedIPs gives a StatefulSet's re-created pod its predecessor's
	// addresses (ServiceParams.StatefulSetFixedIPs); the binary turns it on by default,
	// as SpiderPool's enableStatefulSet. It must match the controller's setting.
	StatefulSetFixedIPs bool
	// StatefulSetFixedIPOptIn keeps the IPs of only the StatefulSet pods that ask
	// (ipam.FixedIPWanted: orbweaver.io/fixed-ip or KCE's k8s.ksyun.com/pod-ip-fixed
	// "true"); the others release theirs with the pod, as Kingsoft KCE.
	StatefulSetFixedIPOptIn bool
	// StatefulKinds adds controllers whose pods keep their addresses as a StatefulSet's
	// (--stateful-workload-kinds, e.g. OpenKruise's apps.kruise.io/v1beta1/StatefulSet).
	// It must match the controller's setting.
	StatefulKinds ipam.StatefulKinds
	// AutoPoolWait bounds an ADD's wait for its auto pool (DefaultAutoPoolWait).
	AutoPoolWait time.Duration
	// SchemaWait is how long the agent waits at start for orbweaver's CRDs to be served
	// (the controller puts them in place) before it refuses to start; 0 checks once.
	SchemaWait time.Duration

	// NoGrants keeps the agent from speaking node grants (docs/design/node-grants.md):
	// it registers no IPAMNode, so the controller never switches a pool to Grants mode.
	NoGrants bool
	// GrantBuffer is how many addresses beyond its need the node asks of a pool
	// (DefaultGrantBuffer when 0; negative: none).
	GrantBuffer int
	// GrantWait bounds an ADD's wait for a grant (DefaultGrantWait when 0).
	GrantWait time.Duration
	// CNIConfDir is the node's CNI config folder, as mounted: the default pools of the
	// config that uses this plugin let the node ask for addresses for its pods before
	// their first ADD ("": learned from the first ADD).
	CNIConfDir string

	// crashOnStop, when set and true as Run stops, makes it end as a crash would
	// (tests): requests in flight are cut and the reserve is not given back.
	crashOnStop *atomic.Bool
}

// Defaults of the reserve settings.
const (
	DefaultReserveSize       = 64
	DefaultReserveQuarantine = 10 * time.Second
	// DefaultRebindDelay: a handed-out address is recorded under its pod within this.
	// Measured (docs/performance.md): shorter delays add pool writes, which ten nodes'
	// writers then conflict on, without making anything faster.
	DefaultRebindDelay = 2 * time.Second
)

// RBAC of Run itself: the start-up check of the served CRDs (crdcheck.Await) and the
// events the agent records on pods and, refusing, on CRDs. The agent's role is generated
// from the markers of this package and cmd/orbweaver-agent only (make generate).
//
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Run serves IPAM requests for one node until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.NodeName == "" {
		return errors.New("orbweaver agent: no node name: set --node-name or the NODE_NAME environment variable (the DaemonSet passes spec.nodeName)")
	}
	if cfg.SocketPath == "" {
		cfg.SocketPath = DefaultSocketPath
	}
	if cfg.ReserveSize == 0 {
		cfg.ReserveSize = DefaultReserveSize
	}
	if cfg.ReserveQuarantine == 0 {
		cfg.ReserveQuarantine = DefaultReserveQuarantine
	}
	if cfg.LockPath == "" {
		cfg.LockPath = filepath.Join(filepath.Dir(cfg.SocketPath), "node-"+cfg.NodeName+".lock")
	}
	log := cfg.Log.WithValues("node", cfg.NodeName)
	restCfg, err := restConfig(cfg)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v2beta1.AddToScheme(scheme))
	utilruntime.Must(ipamv1.AddToScheme(scheme))

	direct, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("orbweaver agent: API client: %w", err)
	}
	// Before anything is read or written: a CRD without orbweaver's fields (SpiderPool's,
	// kept by Helm) would have the API server drop the agent's records on every write.
	if err := crdcheck.Await(ctx, crdcheck.Params{Client: direct, Component: "orbweaver-agent", Host: cfg.NodeName, Log: log}, cfg.SchemaWait, 5*time.Second); err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("orbweaver agent: API client: %w", err)
	}
	informers, err := cache.New(restCfg, nodeScopedCacheOptions(scheme, cfg.NodeName))
	if err != nil {
		return fmt.Errorf("orbweaver agent: caches: %w", err)
	}

	// Shutdown runs in order: stop accepting requests and let the ones in flight finish
	// (their pool writes and rollbacks too), then stop the pool writers and the caches.
	// work outlives ctx for that; serving ends with ctx.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	broadcaster := record.NewBroadcaster(record.WithContext(work))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme, corev1.EventSource{Component: "orbweaver-agent", Host: cfg.NodeName})

	metrics := NewMetrics()
	registry := cfg.Registry
	if registry == nil {
		// A registry of its own (the binary): the process's Go and process metrics too.
		registry = prometheus.NewRegistry()
		registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if err := metrics.Register(registry); err != nil {
		return fmt.Errorf("orbweaver agent: metrics: %w", err)
	}
	if err := registry.Register(buildinfo.Collector()); err != nil {
		return fmt.Errorf("orbweaver agent: metrics: %w", err)
	}

	var synced atomic.Bool
	var svc *Service
	var grants *grantSet
	var grantsReady atomic.Bool
	if !cfg.NoGrants {
		buffer := cfg.GrantBuffer
		switch {
		case buffer == 0:
			buffer = DefaultGrantBuffer
		case buffer < 0:
			buffer = 0
		}
		wait := cfg.GrantWait
		if wait <= 0 {
			wait = DefaultGrantWait
		}
		grants = newGrantSet(&grantDeps{
			node: cfg.NodeName, pins: &pins{}, direct: direct, buffer: buffer, wait: wait, log: log, ready: grantsReady.Load,
			blocks: func() []ipamv1.IPBlock {
				var l ipamv1.IPBlockList
				// Read only: no copy of each block per ADD.
				if err := informers.List(work, &l, client.UnsafeDisableDeepCopy); err != nil {
					return nil
				}
				return l.Items
			},
		})
	}
	cluster, err := newCachedCluster(work, informers, direct, cfg.NodeName, clusterHooks{
		grantsChanged: func() {
			if grants != nil {
				grants.changed()
			}
		},
		reservedChanged: func() {
			if svc != nil {
				svc.writers.invalidate()
			}
		},
		poolChanged: func(sp *v2beta1.SpiderIPPool) {
			if svc != nil {
				svc.writers.observe(sp)
				svc.PoolChanged()
			}
		},
		nodePresent: func(present bool) {
			if svc != nil {
				svc.writers.suspendReserves(!present)
			}
			if !present {
				log.Info("this node's Node object was deleted: no address is handed out from the node's reserve until it is back (garbage collection frees a deleted node's reserve)")
			}
		},
	})
	if err != nil {
		return fmt.Errorf("orbweaver agent: %w", err)
	}
	svc = NewService(work, ServiceParams{
		Node: cfg.NodeName, Cluster: cluster,
		Endpoints: crdstore.Endpoints{Client: direct}, Pools: crdstore.Pools{Client: direct},
		Events: recorderEvents{recorder: recorder}, Log: log, Metrics: metrics,
		EnableIPv4: cfg.EnableIPv4, EnableIPv6: cfg.EnableIPv6, MultusClusterNetwork: cfg.MultusClusterNetwork,
		Synced:     synced.Load,
		ReserveMax: max(cfg.ReserveSize, 0), ReserveRebindDelay: cfg.ReserveRebindDelay, SettleFirst: true,
		StatefulSetFixedIPs: cfg.StatefulSetFixedIPs, StatefulSetFixedIPOptIn: cfg.StatefulSetFixedIPOptIn, StatefulKinds: cfg.StatefulKinds, AutoPoolWait: cfg.AutoPoolWait,
		Grants: grants, CNIConfDir: cfg.CNIConfDir,
	})
	if grants != nil {
		grants.d.cluster = cluster
	}
	if err := metrics.registerReserves(registry, svc.writers); err != nil {
		return fmt.Errorf("orbweaver agent: metrics: %w", err)
	}

	// One agent per node: a second one (a rolling update that surges) waits here, before
	// it takes the socket, until the first has given its reserve back and exited.
	unlock, err := lockNode(ctx, cfg.LockPath, log)
	if err != nil {
		return err
	}
	defer unlock()

	errs := make(chan error, 4)
	go func() {
		if err := informers.Start(work); err != nil {
			errs <- fmt.Errorf("orbweaver agent: caches: %w", err)
		}
	}()
	socketDone := make(chan error, 1)
	go func() { socketDone <- ServeUnix(ctx, cfg.SocketPath, requireSynced(svc, Handler(svc))) }()
	// stop ends serving and waits until the socket server has answered what it took and
	// closed (and so removed) its socket, so a successor's socket is never removed by us;
	// then the pool writers give the node's reserve back, and only then does the lock go.
	stop := func(runErr error) error {
		if cfg.crashOnStop != nil && cfg.crashOnStop.Load() {
			svc.writers.abandon()
			stopWork()
		}
		cancel()
		if err := <-socketDone; err != nil && runErr == nil {
			runErr = fmt.Errorf("orbweaver agent: socket %s: %w", cfg.SocketPath, err)
		}
		stopWork()
		svc.writers.wait()
		if grants != nil && synced.Load() && (cfg.crashOnStop == nil || !cfg.crashOnStop.Load()) {
			// Every request is answered: nothing this life sent can land later.
			stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := grants.stopped(stopCtx); err != nil {
				log.Error(err, "record the clean stop in the node's IPAMNode: the next agent waits out the quarantine")
			}
			stopCancel()
		}
		return runErr
	}
	if cfg.HealthAddr != "" {
		go func() { errs <- serveTCP(ctx, cfg.HealthAddr, healthHandler(synced.Load)) }()
	}
	if cfg.MetricsAddr != "" {
		go func() {
			errs <- serveTCP(ctx, cfg.MetricsAddr, promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
		}()
	}

	log.Info("waiting for caches", "socket", cfg.SocketPath)
	syncCtx, syncCancel := context.WithTimeout(ctx, 2*time.Minute)
	ok := informers.WaitForCacheSync(syncCtx)
	syncCancel()
	if !ok {
		return stop(fmt.Errorf("orbweaver agent: caches did not sync within 2 minutes: check that the API server is reachable, that the CRDs are installed (kubectl get crd spiderippools.spiderpool.spidernet.io), and that it is Kubernetes 1.31 or later (the agent watches its node's SpiderEndpoints with a field selector on a custom resource): %w", errors.Join(ctx.Err(), drain(errs))))
	}
	if cfg.ReserveSize > 0 {
		if err := settleInheritedReserves(ctx, svc, direct, cfg.ReserveQuarantine, log); err != nil {
			return stop(fmt.Errorf("orbweaver agent: settle the reserve a previous agent of this node left: %w", err))
		}
	}
	svc.MarkSettled()
	if grants != nil {
		if err := startGrants(ctx, work, grants, cluster, &grantsReady, cfg.ReserveQuarantine, log); err != nil {
			return stop(err)
		}
	}
	synced.Store(true)
	log.Info("serving", "socket", cfg.SocketPath)
	if cfg.Ready != nil {
		cfg.Ready()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case runErr = <-errs:
	case runErr = <-socketDone:
		socketDone <- nil // stop reads it again
	}
	return stop(runErr)
}

// startGrants registers the node's IPAMNode and starts its demand writer. After a crash
// of the previous life (no clean stop recorded), nothing is handed out by node grants
// until the quarantine has passed: an endpoint write that life sent could still land.
func startGrants(ctx, work context.Context, gs *grantSet, cluster *cachedCluster, ready *atomic.Bool, quarantine time.Duration, log logr.Logger) error {
	node, err := cluster.Node(ctx)
	nodeUID := ""
	if err == nil {
		nodeUID = string(node.UID)
	}
	clean, err := gs.register(ctx, nodeUID)
	if err != nil {
		return fmt.Errorf("orbweaver agent: node grants: %w", err)
	}
	if clean {
		ready.Store(true)
	} else {
		log.Info("the previous agent of this node did not stop cleanly: no address is handed out by node grants during the quarantine", "quarantine", quarantine)
		go func() {
			sleep(work, quarantine)
			// What the node's endpoints hold now, from the API server: a write of the
			// crashed life that landed during the quarantine may not be in the cache yet.
			for work.Err() == nil {
				err := gs.pinListed(work)
				if err == nil {
					break
				}
				log.Error(err, "list the node's SpiderEndpoints after the quarantine; nothing is handed out by node grants until it succeeds")
				sleep(work, time.Second)
			}
			ready.Store(true)
			gs.changed()
		}()
	}
	go gs.run(work)
	return nil
}

// drain returns an error already sent, if any.
func drain(errs chan error) error {
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func restConfig(cfg Config) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	switch {
	case cfg.RESTConfig != nil:
		rc = rest.CopyConfig(cfg.RESTConfig)
	case cfg.Kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	default:
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("orbweaver agent: API server configuration: %w", err)
	}
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.QPS == 0 {
		rc.QPS = 100
	}
	if rc.Burst == 0 {
		rc.Burst = 200
	}
	rc.UserAgent = "orbweaver-agent/" + cfg.NodeName
	return rc, nil
}

// requireSynced answers IPAM requests with "try again later" until the caches have
// synced: a release computed from an empty cache could miss what a pool records.
func requireSynced(s *Service, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" && !s.synced() {
			writeJSON(w, http.StatusServiceUnavailable, apiError(errNotReady))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// healthHandler serves liveness (the process answers) and readiness (caches synced).
func healthHandler(synced func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !synced() {
			http.Error(w, errNotReady.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	return mux
}

func serveTCP(ctx context.Context, addr string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("orbweaver agent: listen on %s: %w", addr, err)
	}
	return serve(ctx, l, h)
}
