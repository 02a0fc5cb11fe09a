//go:build linux

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// cniNIC is one interface of a pod: the network that attaches it and what it must get.
type cniNIC struct {
	network string // the conflist's name
	plugin  string // bridge or macvlan
	ifName  string
	pools   []string // short names of the pools its addresses come from, IPv4 first
	// routes are the NIC's routes through a gateway, "dst via gw", "default" for the
	// default routes; any other such route on the NIC fails the test.
	routes []string
	// bridgeAddrs are the addresses the bridge holds in the host namespace (isGateway).
	bridgeAddrs []string
}

// TestCNI is tier 3: the orbweaver binary built from this tree as the IPAM of the real
// bridge and macvlan plugins, run through libcni as a container runtime runs them, in
// network namespaces of the test's own, against one in-process agent and the real API
// server.
func TestCNI(t *testing.T) {
	testenv.Require(t, env)
	requireNetAdmin(t)
	start := time.Now()
	h := newCNIHarness(t)

	tests := []struct {
		name        string
		cniVersion  string
		annotations map[string]string
		nics        []cniNIC
	}{
		{
			name:        "bridge IPv4",
			cniVersion:  "1.0.0",
			annotations: map[string]string{"ipam.spidernet.io/ippool": h.annotation(map[string]any{"ipv4": []string{"a4"}})},
			nics: []cniNIC{{
				network: "net-a", plugin: "bridge", ifName: "eth0", pools: []string{"a4"},
				routes:      []string{"default via 10.251.1.1", "10.252.1.0/24 via 10.251.1.1"},
				bridgeAddrs: []string{"10.251.1.1/24"},
			}},
		},
		{
			// 0.4.0 goes through libcni's and the plugins' result conversions.
			name:       "macvlan dual-stack at 0.4.0",
			cniVersion: "0.4.0",
			annotations: map[string]string{"ipam.spidernet.io/ippool": h.annotation(map[string]any{
				"ipv4": []string{"b4"}, "ipv6": []string{"b6"},
			})},
			nics: []cniNIC{{
				network: "net-b", plugin: "macvlan", ifName: "eth0", pools: []string{"b4", "b6"},
				routes: []string{"default via 10.251.2.1", "default via fd00:251::1"},
			}},
		},
		{
			name:       "two NICs",
			cniVersion: "1.0.0",
			annotations: map[string]string{"ipam.spidernet.io/ippools": h.annotation([]map[string]any{
				{"interface": "eth0", "ipv4": []string{"c4"}},
				{"interface": "net1", "ipv4": []string{"d4"}, "cleangateway": true},
			})},
			nics: []cniNIC{
				{
					network: "net-a", plugin: "bridge", ifName: "eth0", pools: []string{"c4"},
					routes: []string{"default via 10.251.3.1"}, bridgeAddrs: []string{"10.251.3.1/24"},
				},
				// cleangateway: net1 gets its address and no default route.
				{network: "net-b", plugin: "macvlan", ifName: "net1", pools: []string{"d4"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxFor(t)
			sb := h.sandbox(t, tt.name, tt.annotations)
			lists := make([]*libcni.NetworkConfigList, len(tt.nics))
			rts := make([]*libcni.RuntimeConf, len(tt.nics))
			results := make([]*current.Result, len(tt.nics))
			for i, nic := range tt.nics {
				lists[i], rts[i] = sb.conflist(t, nic.network, tt.cniVersion, nic.plugin), sb.runtimeConf(nic.ifName)
				sb.delOnCleanup(t, lists[i], rts[i])
				res, err := sb.rt.add(ctx, lists[i], rts[i])
				if err != nil {
					t.Fatalf("ADD %s %s: %v", nic.network, nic.ifName, err)
				}
				if res.Version() != tt.cniVersion {
					t.Errorf("ADD %s %s: result of version %s, want %s", nic.network, nic.ifName, res.Version(), tt.cniVersion)
				}
				if results[i], err = current.GetResult(res); err != nil {
					t.Fatalf("ADD %s %s: result %v: %v", nic.network, nic.ifName, res, err)
				}
			}

			se := h.endpoint(ctx, t, sb.pod)
			podLinks := links(t, sb.netns.name)
			for i, nic := range tt.nics {
				// What the agent recorded, what the runtime got and what the interface
				// has must be the same addresses, from the NIC's pools.
				recorded := h.recordedAddrs(t, se, nic)
				if got := resultAddrs(results[i]); !equalSets(got, recorded) {
					t.Errorf("%s: CNI result has %v, the SpiderEndpoint records %v", nic.ifName, got, recorded)
				}
				link, ok := findLink(podLinks, nic.ifName)
				if !ok {
					t.Fatalf("no %s in %s: %v", nic.ifName, sb.netns.name, linkNames(podLinks))
				}
				if got := link.globalAddrs(); !equalSets(got, recorded) {
					t.Errorf("%s has addresses %v, want %v", nic.ifName, got, recorded)
				}
				if got := gatewayRoutes(t, sb.netns.name, nic.ifName); !equalSets(got, nic.routes) {
					t.Errorf("%s has routes %q, want %q", nic.ifName, got, nic.routes)
				}
				if nic.bridgeAddrs != nil {
					br, ok := findLink(links(t, sb.host.name), bridgeName)
					if !ok || !equalSets(br.globalAddrs(), nic.bridgeAddrs) {
						t.Errorf("bridge %s in the host namespace: %+v, want addresses %v", bridgeName, br, nic.bridgeAddrs)
					}
					if inMachineNS(bridgeName) {
						t.Errorf("bridge %s is in the test process's own network namespace, not only in %s", bridgeName, sb.host.name)
					}
				}
				for _, p := range nic.pools {
					h.waitAllocated(t, p, 1)
				}
			}

			for i, nic := range tt.nics {
				if err := sb.rt.check(ctx, lists[i], rts[i]); err != nil {
					t.Errorf("CHECK %s %s: %v", nic.network, nic.ifName, err)
				}
			}

			for i := len(tt.nics) - 1; i >= 0; i-- {
				if err := sb.rt.del(ctx, lists[i], rts[i]); err != nil {
					t.Fatalf("DEL %s %s: %v", tt.nics[i].network, tt.nics[i].ifName, err)
				}
			}
			h.waitEndpointGone(t, sb.pod)
			for _, nic := range tt.nics {
				for _, p := range nic.pools {
					h.waitAllocated(t, p, 0)
				}
			}
			if got := linkNames(links(t, sb.netns.name)); !slices.Equal(got, []string{"lo"}) {
				t.Errorf("after DEL, %s has links %v, want only lo", sb.netns.name, got)
			}
		})
	}

	t.Run("missing pool", func(t *testing.T) {
		ctx := ctxFor(t)
		missing := h.poolName("missing")
		// The IPv4 pool exists: whatever the agent may take from it before it meets the
		// missing IPv6 pool must be given back.
		sb := h.sandbox(t, "missing pool", map[string]string{"ipam.spidernet.io/ippool": h.annotation(map[string]any{
			"ipv4": []string{"e4"}, "ipv6": []string{missing},
		})})
		list, rt := sb.conflist(t, "net-a", "1.0.0", "bridge"), sb.runtimeConf("eth0")
		sb.delOnCleanup(t, list, rt)
		res, err := sb.rt.add(ctx, list, rt)
		if err == nil {
			t.Fatalf("ADD succeeded with %v", res)
		}
		var cniErr *types.Error
		if !errors.As(err, &cniErr) {
			t.Fatalf("ADD failed with %T, want a CNI error: %v", err, err)
		}
		if cniErr.Code != 7 || !strings.Contains(cniErr.Msg, missing) {
			t.Errorf("ADD failed with code %d %q, want code 7 (invalid network config) naming %s", cniErr.Code, cniErr.Msg, missing)
		}

		// Nothing allocated, nothing recorded, nothing configured.
		if _, err := getEndpoint(ctx, sb.pod); !apierrors.IsNotFound(err) {
			t.Errorf("SpiderEndpoint after the failed ADD: %v, want NotFound", err)
		}
		h.waitAllocated(t, "e4", 0)
		for _, l := range links(t, sb.netns.name) {
			if addrs := l.globalAddrs(); len(addrs) > 0 {
				t.Errorf("after the failed ADD, %s in %s has addresses %v", l.IfName, sb.netns.name, addrs)
			}
		}
		// bridge (and macvlan, v1.9.1) create the pod's link before they call IPAM and
		// leave it when IPAM fails; the runtime's DEL after a failed ADD removes it.
		t.Logf("links in the pod namespace after the failed ADD: %v", linkNames(links(t, sb.netns.name)))
		if err := sb.rt.del(ctx, list, rt); err != nil {
			t.Fatalf("DEL after the failed ADD: %v", err)
		}
		if got := linkNames(links(t, sb.netns.name)); !slices.Equal(got, []string{"lo"}) {
			t.Errorf("after DEL, %s has links %v, want only lo", sb.netns.name, got)
		}
		h.waitAllocated(t, "e4", 0)
	})
	t.Logf("TestCNI took %s", time.Since(start).Round(time.Millisecond))
}

// cniHarness is what the cases of TestCNI share: the CNI bin folder, an agent for one
// node, a Kubernetes namespace and the pools, created before the agent starts so that
// its caches hold them once it is ready.
type cniHarness struct {
	binDir, socket, node, namespace, suffix string
	pools                                   map[string]*v2beta1.SpiderIPPool // by short name
}

func newCNIHarness(t *testing.T) *cniHarness {
	t.Helper()
	ctx := ctxFor(t)
	h := &cniHarness{binDir: cniBinDir(t, env.Root), suffix: randHex(t, 3)}
	h.node = "cni-node-" + h.suffix
	h.namespace = "cni-" + h.suffix

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.namespace}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), ns) })
	// No controller-manager runs to create the ServiceAccount that pods need.
	if err := env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: h.namespace, Name: "default"}}); err != nil {
		t.Fatal(err)
	}

	route := func(dst, gw string) v2beta1.Route { return v2beta1.Route{Dst: dst, Gw: v2beta1.IPAddress(gw)} }
	h.pools = map[string]*v2beta1.SpiderIPPool{
		"a4": h.pool("a4", "10.251.1.0/24", "10.251.1.10-10.251.1.19", "10.251.1.1", route("10.252.1.0/24", "10.251.1.1")),
		"b4": h.pool("b4", "10.251.2.0/24", "10.251.2.10-10.251.2.19", "10.251.2.1"),
		"b6": h.pool("b6", "fd00:251::/64", "fd00:251::10-fd00:251::1f", "fd00:251::1"),
		"c4": h.pool("c4", "10.251.3.0/24", "10.251.3.10-10.251.3.19", "10.251.3.1"),
		"d4": h.pool("d4", "10.251.4.0/24", "10.251.4.10-10.251.4.19", "10.251.4.1"),
		"e4": h.pool("e4", "10.251.5.0/24", "10.251.5.10-10.251.5.19", "10.251.5.1"),
	}
	for _, p := range h.pools {
		if err := env.Client.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	}
	h.socket = startCNIAgent(t, h.node)
	return h
}

func (h *cniHarness) poolName(short string) string { return "cni-" + short + "-" + h.suffix }

func (h *cniHarness) pool(short, subnet, ips, gateway string, routes ...v2beta1.Route) *v2beta1.SpiderIPPool {
	return &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: h.poolName(short)},
		Spec: v2beta1.IPPoolSpec{
			Subnet:  v2beta1.CIDR(subnet),
			IPs:     []v2beta1.IPOrRange{v2beta1.IPOrRange(ips)},
			Gateway: ptr.To(v2beta1.IPAddress(gateway)),
			Routes:  routes,
		},
	}
}

// annotation renders a pool annotation, replacing the short pool names of the harness
// in "ipv4" and "ipv6" by the pools' names.
func (h *cniHarness) annotation(v any) string {
	rename := func(m map[string]any) {
		for _, fam := range []string{"ipv4", "ipv6"} {
			if names, ok := m[fam].([]string); ok {
				out := make([]string, len(names))
				for i, n := range names {
					out[i] = n
					if _, ok := h.pools[n]; ok {
						out[i] = h.poolName(n)
					}
				}
				m[fam] = out
			}
		}
	}
	switch v := v.(type) {
	case map[string]any:
		rename(v)
	case []map[string]any:
		for _, m := range v {
			rename(m)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sandbox is one pod sandbox: its pod object, a host namespace with its own bridge and
// macvlan master, the pod's namespace with lo set up by the loopback plugin, and the
// orbweaver IPAM section that logs into the test's folder.
type sandbox struct {
	pod         *corev1.Pod
	host, netns *netNS
	rt          *cniRuntime
	containerID string
	ipam        map[string]any
}

func (h *cniHarness) sandbox(t *testing.T, name string, annotations map[string]string) *sandbox {
	t.Helper()
	ctx := ctxFor(t)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: h.namespace, Name: strings.ReplaceAll(strings.ToLower(strings.ReplaceAll(name, ".", "")), " ", "-"),
			Annotations: annotations,
		},
		Spec: corev1.PodSpec{
			NodeName:                     h.node,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}},
		},
	}
	if err := env.Client.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod) })

	// Namespaces first, so that their deletion is the last cleanup, after the DELs.
	sb := &sandbox{pod: pod, netns: newNetNS(t, "ow-pod-"), host: newNetNS(t, "ow-host-"), containerID: randHex(t, 32)}
	setupHostNS(t, sb.host)
	disableDAD(t, sb.netns)
	sb.rt = newCNIRuntime(t, h.binDir, sb.host)

	logFile := filepath.Join(t.TempDir(), "orbweaver.log")
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("orbweaver's log %s:\n%s", logFile, b)
		}
	})
	sb.ipam = map[string]any{
		"type": "orbweaver", "ipam_unix_socket_path": h.socket,
		"log_file_path": logFile, "log_level": "debug", "timeout": "30s",
	}

	lo, rt := sb.conflist(t, "lo", "1.0.0", "loopback"), sb.runtimeConf("lo")
	sb.delOnCleanup(t, lo, rt)
	if _, err := sb.rt.add(ctx, lo, rt); err != nil {
		t.Fatalf("ADD loopback: %v", err)
	}
	return sb
}

func (sb *sandbox) conflist(t *testing.T, network, cniVersion, plugin string) *libcni.NetworkConfigList {
	return conflist(t, network, cniVersion, plugin, sb.ipam)
}

func (sb *sandbox) runtimeConf(ifName string) *libcni.RuntimeConf {
	return runtimeConf(sb.pod, sb.containerID, sb.netns.path, ifName)
}

// delOnCleanup DELs the attachment when the test ends, as a runtime does whatever the
// ADD did; DEL is idempotent, so a test's own DEL does not make it fail.
func (sb *sandbox) delOnCleanup(t *testing.T, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sb.rt.del(ctx, list, rt); err != nil {
			t.Errorf("DEL %s %s when the test ended: %v", list.Name, rt.IfName, err)
		}
	})
}

func getEndpoint(ctx context.Context, pod *corev1.Pod) (*v2beta1.SpiderEndpoint, error) {
	se := &v2beta1.SpiderEndpoint{}
	return se, env.Client.Get(ctx, client.ObjectKeyFromObject(pod), se)
}

func (h *cniHarness) endpoint(ctx context.Context, t *testing.T, pod *corev1.Pod) *v2beta1.SpiderEndpoint {
	t.Helper()
	se, err := getEndpoint(ctx, pod)
	if err != nil {
		t.Fatalf("SpiderEndpoint of %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	return se
}

// recordedAddrs returns the addresses the endpoint records for the NIC, after checking
// that they come from the NIC's pools and carry their subnets' prefix lengths.
func (h *cniHarness) recordedAddrs(t *testing.T, se *v2beta1.SpiderEndpoint, nic cniNIC) []string {
	t.Helper()
	i := slices.IndexFunc(se.Status.Current.IPs, func(d v2beta1.IPAllocationDetail) bool { return d.NIC == nic.ifName })
	if i < 0 {
		t.Fatalf("SpiderEndpoint %s/%s has no interface %s: %+v", se.Namespace, se.Name, nic.ifName, se.Status.Current.IPs)
	}
	d := se.Status.Current.IPs[i]
	var addrs, pools []string
	for _, a := range []struct{ addr, pool *string }{{d.IPv4, d.IPv4Pool}, {d.IPv6, d.IPv6Pool}} {
		if a.addr == nil {
			continue
		}
		addrs, pools = append(addrs, *a.addr), append(pools, ptr.Deref(a.pool, ""))
		p, err := netip.ParsePrefix(*a.addr)
		if err != nil {
			t.Fatalf("SpiderEndpoint records %q for %s: %v", *a.addr, nic.ifName, err)
		}
		pool := h.pools[strings.TrimSuffix(strings.TrimPrefix(ptr.Deref(a.pool, ""), "cni-"), "-"+h.suffix)]
		if pool == nil {
			continue // reported below as the wrong pool
		}
		subnet := netip.MustParsePrefix(string(pool.Spec.Subnet))
		if !subnet.Contains(p.Addr()) || p.Bits() != subnet.Bits() {
			t.Errorf("%s got %s from pool %s, want an address of its subnet %s with its prefix length", nic.ifName, p, pool.Name, subnet)
		}
	}
	var want []string
	for _, p := range nic.pools {
		want = append(want, h.poolName(p))
	}
	if !slices.Equal(pools, want) {
		t.Errorf("%s got addresses %v from pools %v, want pools %v", nic.ifName, addrs, pools, want)
	}
	return addrs
}

// waitAllocated waits until the pool records n addresses under pods. Addresses the
// node's agent holds in reserve (records.ReserveOwner) are not pods': one handed to a pod
// moves to the pod's record within the agent's rebind delay.
func (h *cniHarness) waitAllocated(t *testing.T, short string, n int) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%d addresses of pool %s recorded under pods", n, h.poolName(short)), func() (bool, error) {
		sp := &v2beta1.SpiderIPPool{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Name: h.poolName(short)}, sp); err != nil {
			return false, err
		}
		p, err := ipam.NewPool(sp, ip.Set{})
		if err != nil {
			return false, err
		}
		got := 0
		for _, o := range p.Owners() {
			if !o.IsReserve() {
				got++
			}
		}
		return got == n, fmt.Errorf("%d recorded under pods (%d in all)", got, p.AllocatedCount())
	})
}

func (h *cniHarness) waitEndpointGone(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	testenv.WaitFor(t, "the SpiderEndpoint of "+pod.Name+" to go", func() (bool, error) {
		_, err := getEndpoint(context.Background(), pod)
		return apierrors.IsNotFound(err), err
	})
}

func resultAddrs(r *current.Result) []string {
	var out []string
	for _, ip := range r.IPs {
		out = append(out, ip.Address.String())
	}
	return out
}

func findLink(ls []ipLink, name string) (ipLink, bool) {
	for _, l := range ls {
		if l.IfName == name {
			return l, true
		}
	}
	return ipLink{}, false
}

func linkNames(ls []ipLink) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.IfName)
	}
	return out
}

func equalSets(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
