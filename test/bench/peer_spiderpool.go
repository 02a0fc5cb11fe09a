package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// spiderpoolAgentMemory is what one SpiderPool agent was seen to need at most here
// (about 60 MB RSS idle, 83 MB after 1000 allocations, measured on the machine these
// benchmarks were written on), rounded up: what Supports counts on.
const spiderpoolAgentMemory = 100 << 20

// spiderpool is github.com/spidernet-io/spiderpool v1.2.2, built by `tools/ensure.sh
// spiderpool spiderpool-agent`: one real spiderpool-agent process per simulated node, as
// its DaemonSet would run, and its real `spiderpool` IPAM plugin exec'd per CNI call,
// against its own CRDs (from its module). No spiderpool-controller and no webhooks run:
// the agent allocates without them (its pools carry the fields its webhook would default).
//
// SpiderPool's CRDs are of the same group and kinds as orbweaver's, so while this peer
// runs they replace orbweaver's in the API server, and Teardown puts orbweaver's back.
type spiderpool struct {
	binary, agent, crds string

	h         *Harness
	client    client.Client
	ownCRDs   string // orbweaver's CRDs, restored by Teardown
	dir       string // configs, sockets, logs
	netns     string // the one network namespace the plugin opens and announces in
	netnsName string
	sockets   map[string]string // node -> agent socket
	agents    []*exec.Cmd
	exited    chan error
	pools     []Pool
	installed bool
	pluginLog string // the plugin's log file
	ipv6      bool   // enableIPv6 in the agents' conf.yml
}

func newSpiderpoolPeer(p PeerParams) (Peer, error) {
	s := &spiderpool{
		binary: filepath.Join(p.BinDir, "spiderpool"),
		agent:  filepath.Join(p.BinDir, "spiderpool-agent"),
		crds:   filepath.Join(p.BinDir, "spiderpool-crds"),
		ipv6:   p.IPv6,
	}
	const ensure = "tools/ensure.sh spiderpool spiderpool-agent"
	if err := requireExecutable("spiderpool", s.binary, ensure); err != nil {
		return nil, err
	}
	if err := requireExecutable("spiderpool", s.agent, ensure); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(s.crds, "spiderpool.spidernet.io_spiderippools.yaml")); err != nil {
		return nil, fmt.Errorf("spiderpool peer: CRDs missing in %s: run `%s` first: %w", s.crds, ensure, err)
	}
	return s, nil
}

func (s *spiderpool) Name() string   { return "spiderpool" }
func (s *spiderpool) Binary() string { return s.binary }

// Supports refuses what this machine cannot run: the plugin enters a network namespace
// (root), and each node is a process of its own.
func (s *spiderpool) Supports(nodes int) error {
	if os.Geteuid() != 0 {
		return errors.New("its plugin opens the sandbox's network namespace and announces the address in it: needs root to make one")
	}
	avail := memAvailable()
	if need := float64(nodes) * spiderpoolAgentMemory; avail > 0 && need > 0.7*avail {
		return fmt.Errorf("%d agent processes need about %.0f GiB (%d MiB each, as measured), more than 70%% of the %.1f GiB available",
			nodes, need/(1<<30), spiderpoolAgentMemory>>20, avail/(1<<30))
	}
	return nil
}

// Setup installs SpiderPool's CRDs in place of orbweaver's, creates the scenario's pools
// and, on first use, makes the network namespace and starts one agent per node.
func (s *spiderpool) Setup(ctx context.Context, h *Harness, sc Scenario) error {
	s.pools = sc.Pools
	if !s.installed {
		s.h, s.client = h, h.Env.Client
		s.ownCRDs = filepath.Join(h.Env.Root, "charts", "orbweaver", "crds")
		if err := installCRDs(h, s.crds); err != nil {
			return fmt.Errorf("spiderpool peer: %w", err)
		}
		s.installed = true
	}
	if !sc.Reused {
		for _, p := range sc.Pools {
			version := int64(4)
			if p.Prefix.Addr().Is6() {
				version = 6
			}
			pool := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
				"metadata": map[string]any{"name": p.Name},
				"spec": map[string]any{
					// What its mutating webhook would have set: the agent refuses a pool
					// without ipVersion.
					"ipVersion": version, "subnet": p.Prefix.Masked().String(), "ips": []any{p.Range()},
					"disable": false, "default": false,
				},
			}}
			if err := s.client.Create(ctx, pool); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("spiderpool peer: create SpiderIPPool %s: %w", p.Name, err)
			}
		}
	}
	if s.sockets != nil {
		return sleep(ctx, 500*time.Millisecond) // the agents' caches see the new pools
	}
	return s.start(ctx, h, sc.Nodes)
}

// installCRDs installs (or replaces) the CRDs in dir and gives the API server a moment to
// serve their schemas: an update of a CRD's schema takes effect a little after it is
// accepted, and objects written before would be pruned by the old one.
func installCRDs(h *Harness, dir string) error {
	if _, err := envtest.InstallCRDs(h.Env.Config, envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("install CRDs from %s: %w", dir, err)
	}
	time.Sleep(3 * time.Second)
	return nil
}

// start makes the network namespace and starts the agents, and waits until each says it
// is ready.
func (s *spiderpool) start(ctx context.Context, h *Harness, nodes []string) error {
	dir, err := os.MkdirTemp("", "sp-bench") // socket paths are limited to 108 bytes
	if err != nil {
		return fmt.Errorf("spiderpool peer: %w", err)
	}
	s.dir, s.sockets, s.exited = dir, map[string]string{}, make(chan error, len(nodes))
	s.netnsName = "ow-bench-sp-" + strconv.Itoa(os.Getpid())
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", s.netnsName).CombinedOutput(); err != nil {
		return fmt.Errorf("spiderpool peer: ip netns add %s: %v: %s", s.netnsName, err, out)
	}
	s.netns = "/var/run/netns/" + s.netnsName
	s.pluginLog = filepath.Join(dir, "plugin.log")

	ports := make([]int, len(nodes))
	for i, node := range nodes {
		nodeDir := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o700); err != nil {
			return fmt.Errorf("spiderpool peer: %w", err)
		}
		socket := filepath.Join(nodeDir, "sp.sock")
		conf := fmt.Sprintf(`ipamUnixSocketPath: %s
enableIPv4: true
enableIPv6: %t
enableStatefulSet: true
enableKubevirtStaticIP: false
enableSpiderSubnet: false
enableAutoPoolForApplication: false
enableIPConflictDetection: false
enableGatewayDetection: false
tuneSysctlConfig: false
`, socket, s.ipv6)
		confPath := filepath.Join(nodeDir, "conf.yml")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			return fmt.Errorf("spiderpool peer: %w", err)
		}
		if ports[i], err = freePort(); err != nil {
			return fmt.Errorf("spiderpool peer: %w", err)
		}
		logFile, err := os.Create(filepath.Join(nodeDir, "agent.log"))
		if err != nil {
			return fmt.Errorf("spiderpool peer: %w", err)
		}
		cmd := exec.Command(s.agent, "daemon", "--config-path="+confPath)
		cmd.Env = append(os.Environ(),
			"KUBECONFIG="+h.Kubeconfig,
			"SPIDERPOOL_NODE_NAME="+node,
			"SPIDERPOOL_POD_NAME=spiderpool-agent-"+node,
			"SPIDERPOOL_POD_NAMESPACE=kube-system",
			"SPIDERPOOL_LOG_LEVEL=error", // as quiet as orbweaver's agents and whereabouts here
			"SPIDERPOOL_HEALTH_PORT="+strconv.Itoa(ports[i]),
			"SPIDERPOOL_METRIC_HTTP_PORT=0", // required, unused: metrics are off
			"SPIDERPOOL_ENABLED_METRIC=false",
			"SPIDERPOOL_GOPS_LISTEN_PORT=", // empty: off (every agent would take 5712)
			// Its chart sets this; without it an ADD for eth0 fails "cluster-network multus isn't set".
			"MULTUS_CLUSTER_NETWORK=kube-system/macvlan",
		)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logFile.Close()
			return fmt.Errorf("spiderpool peer: start agent for %s: %w", node, err)
		}
		logFile.Close()
		s.agents = append(s.agents, cmd)
		s.sockets[node] = socket
		go func() { s.exited <- cmd.Wait() }()
		// Start them a few at a time: each lists every pool, pod and endpoint at start.
		if i%10 == 9 {
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	hc := &http.Client{Timeout: 2 * time.Second}
	for i, node := range nodes {
		for {
			resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/v1/runtime/readiness", ports[i]))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case err := <-s.exited:
				s.exited <- err
				return fmt.Errorf("spiderpool peer: an agent exited before it was ready (%v); its log: %s", err, tail(filepath.Join(s.dir, strconv.Itoa(i), "agent.log"), 600))
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("spiderpool peer: agent of %s not ready within 3 minutes; its log: %s", node, tail(filepath.Join(s.dir, strconv.Itoa(i), "agent.log"), 600))
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// NetNS is the network namespace the harness passes as CNI_NETNS: SpiderPool's plugin
// opens it before anything else and sends a gratuitous ARP in it (which fails, harmlessly,
// for want of an eth0 there).
func (s *spiderpool) NetNS() string { return s.netns }

// NetConf names the node's agent socket and the pool as the CNI default pool.
func (s *spiderpool) NetConf(node string, pool int) []byte {
	conf, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "bench",
		"type":       "spiderpool",
		"ipam": map[string]any{
			"type":                  "spiderpool",
			"ipam_unix_socket_path": s.sockets[node],
			"default_ipv4_ippool":   []string{s.pools[pool].Name},
			"log_level":             "error",
			"log_file_path":         s.pluginLog,
		},
	})
	return conf
}

// StillRecorded returns the pods whose UID a pool's status.allocatedIPs still names.
func (s *spiderpool) StillRecorded(ctx context.Context, pods []*Pod) ([]*Pod, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: "spiderpool.spidernet.io", Version: "v2beta1", Kind: "SpiderIPPoolList"})
	if err := s.client.List(ctx, list); err != nil {
		return nil, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	uids := map[string]bool{}
	for _, p := range list.Items {
		raw, ok, _ := unstructured.NestedString(p.Object, "status", "allocatedIPs")
		if !ok || raw == "" {
			continue
		}
		var allocated map[string]struct {
			Pod    string `json:"pod"`
			PodUID string `json:"podUid"`
		}
		if err := json.Unmarshal([]byte(raw), &allocated); err != nil {
			return nil, fmt.Errorf("SpiderIPPool %s status.allocatedIPs: %w", p.GetName(), err)
		}
		for _, a := range allocated {
			uids[a.PodUID] = true
		}
	}
	var out []*Pod
	for _, p := range pods {
		if uids[p.UID] {
			out = append(out, p)
		}
	}
	return out, nil
}

// AgentMemory is the agents' mean resident memory.
func (s *spiderpool) AgentMemory() (float64, string) {
	var total float64
	n := 0
	for _, a := range s.agents {
		if rss := processRSS(a.Process.Pid); rss > 0 {
			total += rss
			n++
		}
	}
	if n == 0 {
		return 0, ""
	}
	return total / float64(n), "mean resident memory (VmRSS) of the agent processes"
}

// Teardown stops the agents, deletes what SpiderPool wrote and puts orbweaver's CRDs back.
func (s *spiderpool) Teardown(ctx context.Context) error {
	errs := []error{s.stopAgents()}
	if s.client == nil {
		return errors.Join(errs...)
	}
	for _, kind := range []string{"SpiderEndpoint", "SpiderIPPool"} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: "spiderpool.spidernet.io", Version: "v2beta1", Kind: kind + "List"})
		if err := s.client.List(ctx, list); err != nil {
			errs = append(errs, fmt.Errorf("list %ss: %w", kind, err))
			continue
		}
		for i := range list.Items {
			obj := &list.Items[i]
			if len(obj.GetFinalizers()) > 0 {
				patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
				if err := s.client.Patch(ctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, err)
				}
			}
			if err := s.client.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, s.restoreOwnCRDs())
	return errors.Join(errs...)
}

// spiderpoolAgentGrace is how long stopAgents waits after SIGTERM before it kills the
// agents. SpiderPool v1.2.2's agent shuts its servers down on SIGTERM but never exits
// (cmd/spiderpool-agent/cmd/daemon.go, WatchSignal): a kubelet kills it once the pod's
// grace period is over, and so does this, sooner.
const spiderpoolAgentGrace = 2 * time.Second

// stopAgents stops the agents and removes the network namespace and the agents' files,
// and leaves every object SpiderPool wrote, and its CRDs, in place: what uninstalling
// SpiderPool's DaemonSet leaves in a cluster. A later Setup starts the agents again.
func (s *spiderpool) stopAgents() error {
	var errs []error
	for _, a := range s.agents {
		_ = a.Process.Signal(syscall.SIGTERM)
	}
	for range s.agents {
		select {
		case <-s.exited:
		case <-time.After(spiderpoolAgentGrace):
			for _, a := range s.agents {
				_ = a.Process.Kill()
			}
		}
	}
	s.agents, s.sockets = nil, nil
	if s.netnsName != "" {
		if out, err := exec.Command("ip", "netns", "delete", s.netnsName).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns delete %s: %v: %s", s.netnsName, err, out))
		}
		s.netnsName = ""
	}
	if s.dir != "" {
		errs = append(errs, os.RemoveAll(s.dir))
		s.dir = ""
	}
	return errors.Join(errs...)
}

// restoreOwnCRDs puts orbweaver's CRDs back over SpiderPool's, keeping every object; a
// later Setup installs SpiderPool's again.
func (s *spiderpool) restoreOwnCRDs() error {
	if !s.installed {
		return nil
	}
	if err := installCRDs(s.h, s.ownCRDs); err != nil {
		return fmt.Errorf("put orbweaver's CRDs back: %w", err)
	}
	s.installed = false
	return nil
}

// freePort asks the kernel for a free TCP port on all addresses (where SpiderPool's agent
// listens) and gives it back.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// memAvailable is /proc/meminfo's MemAvailable in bytes, or 0.
func memAvailable() float64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

// tail is the last n bytes of a file, for error messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return strings.TrimSpace(string(data))
}

var (
	_ Recorder       = (*spiderpool)(nil)
	_ MemoryReporter = (*spiderpool)(nil)
	_ Scaler         = (*spiderpool)(nil)
)
