//go:build linux

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orbweaver-ipam/orbweaver/internal/testagent"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
)

// The tier-3 harness: the orbweaver binary, built from this tree, and the
// containernetworking plugins from bin/, run by libcni in network namespaces made with
// `ip netns`. Every address and link a test creates lives in a namespace of its own,
// never in the machine's.

const (
	netnsDir = "/var/run/netns" // where `ip netns add` mounts its namespaces
	// bridgeName and macvlanMaster are links inside a test's host namespace, so they
	// cannot collide with the machine's.
	bridgeName    = "owbr0"
	macvlanMaster = "owmaster0"
)

// cniPlugins are the main plugins a test links from bin/ beside the orbweaver it builds.
var cniPlugins = []string{"bridge", "macvlan", "loopback"}

// requireNetAdmin skips the test unless it can make network namespaces.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("CNI tests need root: they create network namespaces with `ip netns` (CI runs as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("CNI tests need iproute2's `ip` on PATH: ", err)
	}
}

// cniBinDir builds cmd/orbweaver into a new folder and links the plugins of bin/ there:
// the CNI_PATH of the test.
func cniBinDir(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "orbweaver"), "./cmd/orbweaver")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/orbweaver: %v\n%s", err, out)
	}
	for _, p := range cniPlugins {
		src := filepath.Join(root, "bin", p)
		if _, err := os.Stat(src); err != nil {
			t.Fatalf("CNI plugin %s missing: run `tools/ensure.sh %s` (or `make tools`): %v", p, strings.Join(cniPlugins, " "), err)
		}
		if err := os.Symlink(src, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// startCNIAgent creates a Node and runs an in-process agent for it (testagent.Start)
// until the test ends. Objects the agent reads from its caches (namespaces, pools) should exist before it
// starts: it is ready only once its caches have synced, so it sees them at once.
func startCNIAgent(t *testing.T, node string) (socket string) {
	t.Helper()
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"kubernetes.io/hostname": node}}}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatalf("create Node %s: %v", node, err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), n) })

	cfg := agent.Config{NodeName: node, RESTConfig: env.Config}
	if testing.Verbose() {
		cfg.Log = testr.NewWithOptions(t, testr.Options{Verbosity: 1})
	}
	return testagent.Start(t, cfg)
}

// netNS is a network namespace made with `ip netns add` and deleted when the test ends.
type netNS struct {
	name string
	path string
	ns.NetNS
}

// newNetNS creates the namespace prefix<random>; the test's cleanup deletes it, after
// every cleanup registered later (DELs, for one) has run.
func newNetNS(t *testing.T, prefix string) *netNS {
	t.Helper()
	name := prefix + randHex(t, 4)
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	h, err := ns.GetNS(filepath.Join(netnsDir, name))
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return &netNS{name: name, path: h.Path(), NetNS: h}
}

// ipCmd runs `ip args...` and returns its stdout.
func ipCmd(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes()
}

// inMachineNS reports whether the network namespace of the test process, the machine's,
// has a link of this name: one the plugins should have made in a test's host namespace.
func inMachineNS(link string) bool {
	return exec.Command("ip", "link", "show", "dev", link).Run() == nil
}

// ipJSON runs `ip -j -n ns args...` and decodes its output into v.
func ipJSON(t *testing.T, netns string, v any, args ...string) {
	t.Helper()
	out := ipCmd(t, append([]string{"-j", "-n", netns}, args...)...)
	if len(bytes.TrimSpace(out)) == 0 {
		out = []byte("[]")
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("ip -j -n %s %s: %v\n%s", netns, strings.Join(args, " "), err, out)
	}
}

// ipLink is an interface as `ip -j addr` prints it.
type ipLink struct {
	IfName   string   `json:"ifname"`
	Flags    []string `json:"flags"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
		Scope     string `json:"scope"`
		Tentative bool   `json:"tentative"`
	} `json:"addr_info"`
}

// globalAddrs lists the link's addresses of global scope as CIDRs.
func (l ipLink) globalAddrs() []string {
	var out []string
	for _, a := range l.AddrInfo {
		if a.Scope == "global" {
			out = append(out, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
		}
	}
	return out
}

// links returns the interfaces of a namespace with their addresses.
func links(t *testing.T, netns string) []ipLink {
	t.Helper()
	var l []ipLink
	ipJSON(t, netns, &l, "addr", "show")
	return l
}

// ipRoute is a route as `ip -j route` prints it.
type ipRoute struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
}

// gatewayRoutes lists the routes of both families in the main table that leave dev
// through a gateway, as "dst via gw" ("default" for the default routes).
func gatewayRoutes(t *testing.T, netns, dev string) []string {
	t.Helper()
	var out []string
	for _, family := range []string{"-4", "-6"} {
		var routes []ipRoute
		ipJSON(t, netns, &routes, family, "route", "show", "table", "main")
		for _, r := range routes {
			if r.Dev == dev && r.Gateway != "" {
				out = append(out, r.Dst+" via "+r.Gateway)
			}
		}
	}
	return out
}

// setupHostNS prepares a host namespace: a veth pair whose one end is the master of
// the macvlan networks (the dummy driver is not built into every kernel; a veth end
// serves as well), and lo up.
func setupHostNS(t *testing.T, host *netNS) {
	t.Helper()
	ipCmd(t, "-n", host.name, "link", "set", "lo", "up")
	ipCmd(t, "-n", host.name, "link", "add", macvlanMaster, "type", "veth", "peer", "name", macvlanMaster+"p")
	ipCmd(t, "-n", host.name, "link", "set", macvlanMaster+"p", "up")
	ipCmd(t, "-n", host.name, "link", "set", macvlanMaster, "up")
}

// disableDAD turns IPv6 duplicate address detection off for the links that will come
// into pod, so its IPv6 addresses are usable at once and the main plugins need not
// wait for them to settle.
func disableDAD(t *testing.T, pod *netNS) {
	t.Helper()
	err := pod.Do(func(ns.NetNS) error {
		// /proc/sys/net shows the namespace of the calling thread, which Do has locked
		// into pod.
		for _, scope := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+scope+"/accept_dad", []byte("0"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("disable IPv6 DAD in %s: %v", pod.name, err)
	}
}

// cniRuntime runs libcni the way a container runtime does, but from inside a test's host
// namespace: the plugins it executes inherit the namespace of the locked thread, so
// the bridge, the host ends of the veths and the gateway addresses stay in it.
type cniRuntime struct {
	cni  *libcni.CNIConfig
	host *netNS
}

func newCNIRuntime(t *testing.T, binDir string, host *netNS) *cniRuntime {
	// libcni's default cache is /var/lib/cni: keep the results in the test's folder.
	return &cniRuntime{cni: libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil), host: host}
}

func (r *cniRuntime) add(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	var res types.Result
	err := r.host.Do(func(ns.NetNS) error {
		var err error
		res, err = r.cni.AddNetworkList(ctx, list, rt)
		return err
	})
	return res, err
}

func (r *cniRuntime) check(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return r.host.Do(func(ns.NetNS) error { return r.cni.CheckNetworkList(ctx, list, rt) })
}

func (r *cniRuntime) del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	return r.host.Do(func(ns.NetNS) error { return r.cni.DelNetworkList(ctx, list, rt) })
}

// conflist builds a network configuration list of one main plugin (bridge or macvlan)
// with orbweaver as its IPAM, or of loopback alone.
func conflist(t *testing.T, name, cniVersion, plugin string, ipam map[string]any) *libcni.NetworkConfigList {
	t.Helper()
	var p map[string]any
	switch plugin {
	case "bridge":
		// isGateway puts the pool's gateway on the bridge; the default route comes from
		// orbweaver's result, so isDefaultGateway stays off.
		p = map[string]any{"type": "bridge", "bridge": bridgeName, "isGateway": true, "ipam": ipam}
	case "macvlan":
		p = map[string]any{"type": "macvlan", "master": macvlanMaster, "mode": "bridge", "ipam": ipam}
	case "loopback":
		p = map[string]any{"type": "loopback"}
	default:
		t.Fatalf("no conflist for plugin %q", plugin)
	}
	b, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": name, "plugins": []any{p}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatalf("conflist %s: %v\n%s", name, err, b)
	}
	return list
}

// runtimeConf is what containerd passes for one interface of a pod sandbox.
func runtimeConf(pod *corev1.Pod, containerID, netnsPath, ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       netnsPath,
		IfName:      ifName,
		Args: [][2]string{
			// The main plugins refuse keys they do not know unless told to ignore them.
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", containerID},
			{"K8S_POD_UID", string(pod.UID)},
		},
	}
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
