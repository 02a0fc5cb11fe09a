// Command orbweaver-agent is the node agent: one per node (a DaemonSet), serving the
// orbweaver CNI plugin on a unix socket. It only wires flags into agent.Config.
//
// `orbweaver-agent install-cni` is the DaemonSet's init container: it installs the
// plugin binary (and a conflist, when given) into the host's CNI folders.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "install-cni" {
		if err := installCNI(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "orbweaver-agent install-cni:", err)
			os.Exit(1)
		}
		return
	}
	var cfg agent.Config
	var ipv4, ipv6 bool
	flag.StringVar(&cfg.NodeName, "node-name", os.Getenv("NODE_NAME"), "the node this agent serves (default $NODE_NAME)")
	flag.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file; empty means the in-cluster configuration")
	flag.StringVar(&cfg.SocketPath, "socket", agent.DefaultSocketPath, "unix socket the CNI plugin calls (its ipam_unix_socket_path)")
	flag.StringVar(&cfg.HealthAddr, "health-addr", ":5710", "address of /healthz and /readyz; empty disables")
	flag.StringVar(&cfg.MetricsAddr, "metrics-addr", ":5711", "address of /metrics; empty disables")
	flag.BoolVar(&ipv4, "enable-ipv4", true, "serve IPv4 addresses")
	flag.BoolVar(&ipv6, "enable-ipv6", true, "serve IPv6 addresses")
	flag.StringVar(&cfg.MultusClusterNetwork, "multus-cluster-network", "", "Multus' cluster network (ns/name), matched against spec.multusName for eth0")
	var qps float64
	flag.Float64Var(&qps, "kube-api-qps", 100, "API requests per second this agent may make")
	flag.IntVar(&cfg.Burst, "kube-api-burst", 200, "API request burst")
	flag.IntVar(&cfg.ReserveSize, "reserve-size", agent.DefaultReserveSize, "most addresses of each pool kept reserved for this node, handed to pods without a pool write; negative turns reserving off")
	flag.DurationVar(&cfg.ReserveQuarantine, "reserve-quarantine", agent.DefaultReserveQuarantine, "how long a restarted agent waits before settling the reserve a crashed predecessor left")
	flag.DurationVar(&cfg.ReserveRebindDelay, "reserve-rebind-delay", agent.DefaultRebindDelay, "how long addresses handed out from the reserve wait to be recorded under their pods in one pool write")
	flag.BoolVar(&cfg.StatefulSetFixedIPs, "enable-statefulset", true, "a StatefulSet's re-created pod keeps its predecessor's IPs (must match the controller's --enable-statefulset)")
	flag.BoolVar(&cfg.StatefulSetFixedIPOptIn, "statefulset-fixed-ip-opt-in", false, "with --enable-statefulset, only StatefulSet pods annotated orbweaver.io/fixed-ip (or Kingsoft's k8s.ksyun.com/pod-ip-fixed) \"true\" keep their IPs; the others release them with the pod")
	statefulKinds := flag.String("stateful-workload-kinds", "", "comma-separated <group>/<version>/<Kind> of controllers whose pods keep their IPs as a StatefulSet's, e.g. apps.kruise.io/v1beta1/StatefulSet (must match the controller's)")
	flag.DurationVar(&cfg.AutoPoolWait, "auto-pool-wait", agent.DefaultAutoPoolWait, "how long an ADD waits for its application's auto pool to be created or to have room")
	flag.DurationVar(&cfg.SchemaWait, "schema-wait", 2*time.Minute, "how long the agent waits at start for orbweaver's CRDs to be served (the controller puts them in place with --upgrade-crds) before it refuses to start")
	nodeGrants := true
	flag.BoolVar(&nodeGrants, "node-grants", true, "speak node grants (docs/design/node-grants.md): register this node in its IPAMNode, and serve pools the controller switched to grants from this node's grants; must match the controller's --node-grants")
	flag.IntVar(&cfg.GrantBuffer, "grant-buffer", 0, "node grants: most addresses beyond its need this node asks of a pool, so its next pods need no round of the controller; 0 means the default ("+fmt.Sprint(agent.DefaultGrantBuffer)+"), negative none")
	flag.StringVar(&cfg.CNIConfDir, "cni-conf-dir", "", "node grants: the host's CNI config folder, as mounted; the default pools of the config that uses this plugin let the node ask for addresses before its pods' first ADD (empty: learned from the first ADD)")
	flag.DurationVar(&cfg.GrantWait, "grant-wait", agent.DefaultGrantWait, "node grants: how long an ADD waits for an address to be granted to this node before it fails with the pool exhausted; below the plugin's timeout")
	flag.StringVar(&cfg.LockPath, "lock-file", "", "lock file that keeps a second agent of this node from reserving (default: node-<name>.lock beside the socket)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String("orbweaver-agent"))
		return
	}
	kinds, err := ipam.ParseStatefulKinds(strings.Split(*statefulKinds, ","))
	if err != nil {
		fmt.Fprintln(os.Stderr, "orbweaver-agent: --stateful-workload-kinds:", err)
		os.Exit(2)
	}
	cfg.StatefulKinds = kinds
	cfg.QPS = float32(qps)
	cfg.NoGrants = !nodeGrants
	cfg.EnableIPv4, cfg.EnableIPv6 = ipv4, ipv6
	if !ipv4 && !ipv6 {
		fmt.Fprintln(os.Stderr, "orbweaver-agent: --enable-ipv4 and --enable-ipv6 are both false; enable at least one")
		os.Exit(2)
	}

	log := zap.New(zap.UseFlagOptions(&opts))
	ctrllog.SetLogger(log) // controller-runtime's caches log through it
	cfg.Log = log
	log.Info("starting", "version", version.Version(), "commit", version.Commit(), "node", cfg.NodeName)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(ctx, cfg); err != nil {
		log.Error(err, "orbweaver-agent failed")
		os.Exit(1)
	}
}

// installCNI installs the plugin into --bin-dir and, with --conflist, that file into
// --conf-dir; each atomically (agent.InstallFile).
func installCNI(args []string) error {
	fs := flag.NewFlagSet("install-cni", flag.ContinueOnError)
	plugin := fs.String("plugin", "/usr/bin/orbweaver", "the orbweaver CNI plugin binary to install")
	binDir := fs.String("bin-dir", "/host/opt/cni/bin", "the host's CNI plugin folder, as mounted")
	conflist := fs.String("conflist", "", "a network config list to install too (empty: none; the main CNI owns the config)")
	confDir := fs.String("conf-dir", "/host/etc/cni/net.d", "the host's CNI config folder, as mounted")
	alsoAs := fs.String("also-as", "", `install the plugin under these names too, comma-separated (e.g. "spiderpool", so SpiderPool's network configs work unchanged)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := agent.InstallFile(*plugin, *binDir, 0o755); err != nil {
		return err
	}
	fmt.Printf("installed %s into %s\n", *plugin, *binDir)
	for _, name := range strings.Split(*alsoAs, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if strings.ContainsRune(name, '/') {
			return fmt.Errorf("--also-as %q: a file name, not a path", name)
		}
		if err := agent.InstallFileAs(*plugin, *binDir, name, 0o755); err != nil {
			return err
		}
		fmt.Printf("installed %s into %s as %s\n", *plugin, *binDir, name)
	}
	if *conflist == "" {
		return nil
	}
	if err := agent.InstallFile(*conflist, *confDir, 0o644); err != nil {
		return err
	}
	fmt.Printf("installed %s into %s\n", *conflist, *confDir)
	return nil
}
