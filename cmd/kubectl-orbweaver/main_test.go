package main

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	corev1 "k8s.io/api/core/v1"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/inspect"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

// TestCommands runs the plugin's commands against a real API server through a
// kubeconfig, as kubectl runs a plugin: `ipam show --ip` names a pod's holder (table and
// JSON) and fails for an address of no pool; `spiderpool export` prints, and writes
// nothing without --write; an unknown command fails.
func TestCommands(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "cli"},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: "10.61.0.0/24", IPs: []v2beta1.IPOrRange{"10.61.0.1-10.61.0.9"}}}
	if err := e.Client.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cli"}}); err != nil {
		t.Fatal(err)
	}
	se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: "cli", Name: "web-0"}}
	se.Status.Current = v2beta1.PodIPAllocation{UID: "u-web-0", Node: "node-a",
		IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To("10.61.0.4/24"), IPv4Pool: ptr.To("cli")}},
		Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "0123456789abcdef0123"}}
	se.Status.OwnerControllerType, se.Status.OwnerControllerName = "Pod", "web-0"
	if err := e.Client.Create(ctx, se); err != nil {
		t.Fatal(err)
	}
	kc := "--kubeconfig=" + e.Kubeconfig

	var out strings.Builder
	if err := run(ctx, []string{"ipam", "show", "--ip", "10.61.0.4", kc}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"POOL", "cli", "Held", "cli/web-0", "node-a", "eth0", "0123456789ab"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("ipam show lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(ctx, []string{"ipam", "show", "--ip", "10.61.0.5", "-o", "json", kc}, &out); err != nil {
		t.Fatal(err)
	}
	var hs []inspect.Holding
	if err := json.Unmarshal([]byte(out.String()), &hs); err != nil || len(hs) != 1 || hs[0].State != inspect.StateFree {
		t.Errorf("ipam show -o json of a free address: %v, %s", err, out.String())
	}
	if err := run(ctx, []string{"ipam", "show", "--ip", "192.0.2.1", kc}, &out); err == nil || !strings.Contains(err.Error(), "no pool") {
		t.Errorf("an address of no pool: %v", err)
	}
	if err := run(ctx, []string{"ipam", "show", "--ip", "not-an-ip", kc}, &out); err == nil {
		t.Error("--ip not-an-ip accepted")
	}

	out.Reset()
	if err := run(ctx, []string{"spiderpool", "export", "--pool", "cli", kc}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Nothing written") || !strings.Contains(out.String(), "cli ") {
		t.Errorf("export without --write:\n%s", out.String())
	}
	got := &v2beta1.SpiderIPPool{}
	if err := e.Client.Get(ctx, client.ObjectKey{Name: "cli"}, got); err != nil || got.Status.AllocatedIPs != nil {
		t.Errorf("export without --write wrote status.allocatedIPs: %v %v", err, got.Status.AllocatedIPs)
	}
	if err := run(ctx, []string{"nope"}, &out); err == nil {
		t.Error("an unknown command succeeded")
	}
}

// cluster is what TestIPAM plants: pools of both modes with records, endpoints, grants
// and pods, each address in a known state.
type cluster struct {
	t   *testing.T
	ctx context.Context
	e   *testenv.Env
	ns  string
}

func (c *cluster) create(obj client.Object) {
	c.t.Helper()
	if err := c.e.Client.Create(c.ctx, obj); err != nil {
		c.t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// pod creates a pod on a node (Pending: no kubelet runs it, and it exists) and returns
// its UID.
func (c *cluster) pod(name, node string) string {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: name},
		Spec: corev1.PodSpec{NodeName: node, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}}}
	c.create(p)
	return string(p.UID)
}

// endpoint creates the SpiderEndpoint of a pod (uid) holding addr of pool on a node.
func (c *cluster) endpoint(name, uid, node, addr, pool string) {
	se := &v2beta1.SpiderEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: name}}
	se.Status.Current = v2beta1.PodIPAllocation{UID: uid, Node: node,
		IPs:       []v2beta1.IPAllocationDetail{{NIC: "eth0", IPv4: ptr.To(addr + "/24"), IPv4Pool: ptr.To(pool)}},
		Orbweaver: &v2beta1.PodAllocationOrbweaver{ContainerID: "ctr-" + name}}
	se.Status.OwnerControllerType, se.Status.OwnerControllerName = "Pod", name
	c.create(se)
}

// pool creates a pool; grants switches it to Grants mode; recs are its records.
func (c *cluster) pool(name, subnet, ips, exclude string, grants bool, recs ...records.Record) {
	c.t.Helper()
	sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: v2beta1.CIDR(subnet), IPs: []v2beta1.IPOrRange{v2beta1.IPOrRange(ips)}}}
	if exclude != "" {
		sp.Spec.ExcludeIPs = []v2beta1.IPOrRange{v2beta1.IPOrRange(exclude)}
	}
	c.create(sp)
	st := &v2beta1.IPPoolOrbweaverStatus{}
	if grants {
		st.Allocation = v2beta1.AllocationGrants
	}
	if len(recs) > 0 {
		data, err := records.Encode(netip.MustParsePrefix(subnet), recs)
		if err != nil {
			c.t.Fatal(err)
		}
		st.Records = data
	}
	sp.Status.Orbweaver = st
	if err := c.e.Client.Status().Update(c.ctx, sp); err != nil {
		c.t.Fatal(err)
	}
}

// grant creates the IPBlock of pool starting at start, granting each address to a node.
func (c *cluster) grant(pool, start string, owners map[string]string) {
	g := &ipam.GrantBlock{Start: netip.MustParseAddr(start), Owners: map[netip.Addr]string{}, Reclaim: map[netip.Addr]string{}}
	for a, n := range owners {
		g.Owners[netip.MustParseAddr(a)] = n
	}
	b := &ipamv1.IPBlock{ObjectMeta: metav1.ObjectMeta{Name: ipam.BlockName(pool, g.Start)}}
	g.Write(pool, b)
	c.create(b)
}

// run runs the plugin (against the test's API server unless args name a kubeconfig)
// and returns its output and exit code.
func (c *cluster) run(args ...string) (string, int) {
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--kubeconfig") }) {
		args = append(args, "--kubeconfig="+c.e.Kubeconfig)
	}
	var out strings.Builder
	err := run(c.ctx, args, &out)
	if err != nil {
		out.WriteString("\n(error: " + err.Error() + ")")
	}
	return out.String(), exitCode(err)
}

// state is the state `ipam show --ip` gives addr in pool.
func (c *cluster) state(addr, pool string) string {
	c.t.Helper()
	out, code := c.run("ipam", "show", "--ip", addr, "--pool", pool, "-o", "json")
	var hs []inspect.Holding
	if err := json.Unmarshal([]byte(out), &hs); code != 0 || err != nil || len(hs) == 0 {
		c.t.Fatalf("ipam show --ip %s: exit %d, %v:\n%s", addr, code, err, out)
	}
	return hs[0].State
}

// problems runs `ipam check` on the pools and returns "Kind pool address" per problem.
func (c *cluster) problems(pools ...string) ([]string, int) {
	c.t.Helper()
	args := []string{"ipam", "check", "-o", "json"}
	for _, p := range pools {
		args = append(args, "--pool", p)
	}
	out, code := c.run(args...)
	var ps []inspect.Problem
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n(error", 2)[0]), &ps); err != nil {
		c.t.Fatalf("ipam check: exit %d, %v:\n%s", code, err, out)
	}
	var got []string
	for _, p := range ps {
		got = append(got, string(p.Kind)+" "+p.Pool+" "+p.Address)
	}
	return got, code
}

// TestIPAM runs `ipam show`, `ipam check` and `ipam release` against a real API server
// with pools of both modes in which every address is in a known state: show's counts
// are what was created, check finds the planted leaks and double owner (exit 1) and
// nothing in a clean pool (exit 0), release refuses a live owner (exit 1), releases dead
// ones (records and endpoints go; the address is then Free, or its node's spare in
// Grants mode) and ends the double owner once one pod is gone; bad input (malformed
// address, address of no pool, unknown pool, no cluster) exits 2.
func TestIPAM(t *testing.T) {
	e := testenv.Require(t, env)
	c := &cluster{t: t, ctx: context.Background(), e: e, ns: "ipam"}
	c.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}})
	for _, n := range []string{"node-a", "node-b"} {
		c.create(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}})
	}
	web, api, dupA, dupB, ok := c.pod("web-1", "node-a"), c.pod("api-1", "node-a"), c.pod("dup-a", "node-a"), c.pod("dup-b", "node-a"), c.pod("ok-1", "node-b")
	rec := func(a, uid, name string) records.Record {
		return records.Record{IP: netip.MustParseAddr(a), Owner: records.OwnerOf(uid, "ctr-"+name, "eth0")}
	}
	// Records mode: .1 a live pod, .2 node-a's spare, .3 a record of a pod that is gone,
	// .5 the record and endpoint of a pod that is gone; .20 excluded.
	c.pool("ipam-rec", "10.62.0.0/24", "10.62.0.1-10.62.0.20", "10.62.0.20", false,
		rec("10.62.0.1", web, "web-1"),
		records.Record{IP: netip.MustParseAddr("10.62.0.2"), Owner: records.ReserveOwner("node-a")},
		rec("10.62.0.3", "uid-gone-3", "gone-3"),
		rec("10.62.0.5", "uid-gone-5", "old-5"))
	c.endpoint("web-1", web, "node-a", "10.62.0.1", "ipam-rec")
	c.endpoint("old-5", "uid-gone-5", "node-a", "10.62.0.5", "ipam-rec")
	// Grants mode: .1-.4 granted to node-a, .5 to node-b; .1 a live pod, .3 two live
	// pods, .5 a pod that is gone.
	c.pool("ipam-gr", "10.63.0.0/24", "10.63.0.1-10.63.0.30", "", true)
	c.grant("ipam-gr", "10.63.0.0", map[string]string{"10.63.0.1": "node-a", "10.63.0.2": "node-a", "10.63.0.3": "node-a",
		"10.63.0.4": "node-a", "10.63.0.5": "node-b"})
	c.endpoint("api-1", api, "node-a", "10.63.0.1", "ipam-gr")
	c.endpoint("dup-a", dupA, "node-a", "10.63.0.3", "ipam-gr")
	c.endpoint("dup-b", dupB, "node-a", "10.63.0.3", "ipam-gr")
	c.endpoint("gone-5", "uid-gone-g5", "node-b", "10.63.0.5", "ipam-gr")
	// A clean pool.
	c.pool("ipam-ok", "10.64.0.0/24", "10.64.0.1-10.64.0.10", "", false, rec("10.64.0.1", ok, "ok-1"))
	c.endpoint("ok-1", ok, "node-b", "10.64.0.1", "ipam-ok")

	t.Run("show", func(t *testing.T) {
		out, code := c.run("ipam", "show", "--pool", "ipam-rec", "--pool", "ipam-gr", "--pool", "ipam-ok", "-o", "json")
		var got []inspect.PoolSummary
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
			t.Fatalf("ipam show: exit %d, %v:\n%s", code, err, out)
		}
		want := []inspect.PoolSummary{ // in the API server's order: by name
			{Pool: "ipam-gr", Mode: "Grants", Subnet: "10.63.0.0/24", Total: 30, Used: 3, Spare: 2, Free: 25,
				Nodes: []inspect.NodeCount{{Node: "node-a", Used: 2, Spare: 2}, {Node: "node-b", Used: 1}}},
			{Pool: "ipam-ok", Mode: "Records", Subnet: "10.64.0.0/24", Total: 10, Used: 1, Free: 9,
				Nodes: []inspect.NodeCount{{Node: "node-b", Used: 1}}},
			{Pool: "ipam-rec", Mode: "Records", Subnet: "10.62.0.0/24", Total: 19, Used: 3, Spare: 1, Free: 15,
				Nodes: []inspect.NodeCount{{Node: "", Used: 1}, {Node: "node-a", Used: 2, Spare: 1}}},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ipam show -o json:\n got %+v\nwant %+v", got, want)
		}
		out, code = c.run("ipam", "show", "--pool", "ipam-gr", "-o", "wide")
		for _, w := range []string{"POOL", "SPIDERPOOL", "NODES", "ipam-gr", "Grants", "node-a: 2/2", "node-b: 1/0"} {
			if code != 0 || !strings.Contains(out, w) {
				t.Errorf("ipam show -o wide (exit %d) lacks %q:\n%s", code, w, out)
			}
		}
		if out, code := c.run("ipam", "show", "--pool", "ipam-ok", "-o", "yaml"); code != 0 || !strings.Contains(out, "pool: ipam-ok") {
			t.Errorf("ipam show -o yaml: exit %d:\n%s", code, out)
		}
	})

	t.Run("check", func(t *testing.T) {
		got, code := c.problems("ipam-rec", "ipam-gr")
		want := []string{"DoubleOwner ipam-gr 10.63.0.3", "Leak ipam-gr 10.63.0.5", "Leak ipam-rec 10.62.0.3", "Leak ipam-rec 10.62.0.5"}
		if code != 1 || !slices.Equal(got, want) {
			t.Errorf("ipam check: exit %d, %q; want exit 1, %q", code, got, want)
		}
		out, code := c.run("ipam", "check", "--pool", "ipam-gr")
		for _, w := range []string{"KIND", "WHAT TO DO", "DoubleOwner", "SpiderEndpoint ipam/dup-b", "garbage collection frees it"} {
			if code != 1 || !strings.Contains(out, w) {
				t.Errorf("ipam check table (exit %d) lacks %q:\n%s", code, w, out)
			}
		}
		if got, code := c.problems("ipam-ok"); code != 0 || len(got) != 0 {
			t.Errorf("ipam check of a clean pool: exit %d, %q", code, got)
		}
		if out, code := c.run("ipam", "check", "--pool", "ipam-ok"); code != 0 || !strings.Contains(out, "No problems found") {
			t.Errorf("ipam check of a clean pool: exit %d:\n%s", code, out)
		}
	})

	t.Run("release", func(t *testing.T) {
		// A live owner is refused, and nothing changes.
		out, code := c.run("ipam", "release", "--ip", "10.63.0.1")
		if code != 1 || !strings.Contains(out, "ipam/api-1 exists") || !strings.Contains(out, "--force") {
			t.Errorf("release of a live pod's address: exit %d:\n%s", code, out)
		}
		if s := c.state("10.63.0.1", "ipam-gr"); s != inspect.StateHeld {
			t.Errorf("after a refused release 10.63.0.1 is %s", s)
		}
		// A dry run writes nothing.
		if out, code := c.run("ipam", "release", "--ip", "10.62.0.5", "--dry-run"); code != 0 || !strings.Contains(out, "would remove the record") ||
			!strings.Contains(out, "Nothing written") {
			t.Errorf("release --dry-run: exit %d:\n%s", code, out)
		}
		if s := c.state("10.62.0.5", "ipam-rec"); s != inspect.StateHeld {
			t.Errorf("after a dry run 10.62.0.5 is %s", s)
		}
		// Dead owners: the record, or the record and the endpoint, go; the address is Free.
		for _, a := range []string{"10.62.0.3", "10.62.0.5"} {
			out, code := c.run("ipam", "release", "--ip", a)
			if code != 0 || !strings.Contains(out, "record removed") {
				t.Errorf("release %s: exit %d:\n%s", a, code, out)
			}
			if s := c.state(a, "ipam-rec"); s != inspect.StateFree {
				t.Errorf("after its release %s is %s", a, s)
			}
		}
		if err := e.Client.Get(c.ctx, client.ObjectKey{Namespace: c.ns, Name: "old-5"}, &v2beta1.SpiderEndpoint{}); !apierrors.IsNotFound(err) {
			t.Errorf("the released pod's endpoint: %v, want it deleted", err)
		}
		// Grants mode: the endpoint goes, and the address is its node's spare again.
		out, code = c.run("ipam", "release", "--ip", "10.63.0.5", "--pool", "ipam-gr", "-o", "json")
		var res inspect.ReleaseResult
		if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || len(res.Released) != 1 || res.Released[0].Object != "SpiderEndpoint/ipam/gone-5" {
			t.Errorf("release of a Grants pool's address: exit %d, %v:\n%s", code, err, out)
		}
		if s := c.state("10.63.0.5", "ipam-gr"); s != inspect.StateSpare {
			t.Errorf("after its release 10.63.0.5 is %s, want node-b's spare", s)
		}
		// Two live owners: refused; once one pod is gone, its endpoint goes and the other stays.
		if out, code := c.run("ipam", "release", "--ip", "10.63.0.3"); code != 1 {
			t.Errorf("release of two live pods' address: exit %d:\n%s", code, out)
		}
		if err := e.Client.Delete(c.ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: "dup-b"}}, client.GracePeriodSeconds(0)); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "pod dup-b gone", func() (bool, error) {
			err := e.Client.Get(c.ctx, client.ObjectKey{Namespace: c.ns, Name: "dup-b"}, &corev1.Pod{})
			return apierrors.IsNotFound(err), nil
		})
		out, code = c.run("ipam", "release", "--ip", "10.63.0.3")
		if code != 0 || !strings.Contains(out, "SpiderEndpoint/ipam/dup-b") || strings.Contains(out, "SpiderEndpoint/ipam/dup-a") || !strings.Contains(out, "ipam/dup-a exists") {
			t.Errorf("release of a double owner's dead half: exit %d:\n%s", code, out)
		}
		if got, code := c.problems("ipam-rec", "ipam-gr"); code != 0 || len(got) != 0 {
			t.Errorf("ipam check after the releases: exit %d, %q", code, got)
		}
		// Nothing holds a free address: nothing to do, and no error.
		if out, code := c.run("ipam", "release", "--ip", "10.62.0.3"); code != 0 || !strings.Contains(out, "nothing released") {
			t.Errorf("release of a free address: exit %d:\n%s", code, out)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		unreachable := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"ipam", "release", "--ip", "not-an-ip"}, "not an IP address"},
			{[]string{"ipam", "release"}, "--ip is required"},
			{[]string{"ipam", "release", "--ip", "192.0.2.1"}, "in no pool"},
			{[]string{"ipam", "release", "--ip", "10.62.0.1", "--pool", "nope"}, "pool not found"},
			{[]string{"ipam", "release", "--ip", "10.63.0.1", "--pool", "ipam-rec"}, "outside the subnet"},
			{[]string{"ipam", "show", "--pool", "nope"}, "pool not found"},
			{[]string{"ipam", "show", "--ip", "10.62.0.1", "--pool", "nope"}, "pool not found"},
			{[]string{"ipam", "show", "-o", "xml"}, "want table, wide, json, yaml"},
			{[]string{"ipam", "check", "--pool", "nope"}, "pool not found"},
			{[]string{"ipam", "check", "--bogus"}, "flag provided but not defined"},
			{[]string{"ipam", "check", "--kubeconfig=" + unreachable}, "list SpiderIPPools"},
			{[]string{"ipam", "release", "--ip", "10.62.0.1", "--kubeconfig=" + unreachable}, "list SpiderIPPools"},
		} {
			out, code := c.run(tc.args...)
			if code != 2 || !strings.Contains(out, tc.want) {
				t.Errorf("%q: exit %d, want 2 and %q:\n%s", tc.args, code, tc.want, out)
			}
		}
	})
}

// TestPoolWhy runs `pool why` against a real API server: the pod's candidates with their
// verdicts (table and JSON, flags before or after the pod), exit 1 when every candidate
// refuses the pod, exit 2 for a pod that does not exist.
func TestPoolWhy(t *testing.T) {
	e := testenv.Require(t, env)
	c := &cluster{t: t, ctx: context.Background(), e: e, ns: "why"}
	c.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}})
	c.create(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-w", Labels: map[string]string{"zone": "east"}}})
	for _, name := range []string{"why-west", "why-any"} {
		sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: "10.63.0.0/24", IPs: []v2beta1.IPOrRange{"10.63.0.1-10.63.0.9"}}}
		if name == "why-west" {
			sp.Spec.NodeAffinity = &metav1.LabelSelector{MatchLabels: map[string]string{"zone": "west"}}
		}
		c.create(sp)
	}
	pod := func(name, pools string) {
		c.create(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: name,
			Annotations: map[string]string{ipam.AnnoPodIPPool: `{"ipv4":[` + pools + `]}`}},
			Spec: corev1.PodSpec{NodeName: "node-w", AutomountServiceAccountToken: ptr.To(false),
				Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}}})
	}
	pod("web", `"why-west","why-any"`)
	pod("stuck", `"why-west"`)

	out, code := c.run("pool", "why", "-n", c.ns, "web")
	t.Logf("pool why -n why web:\n%s", out)
	for _, want := range []string{"Pod why/web on node node-w", "eth0: pools named by pod annotation ipam.spidernet.io/ippool",
		"why-any", "Taken", "why-west", "Refused", `spec.nodeAffinity "zone=west" does not match the labels of node "node-w"`,
		"default_ipv4_ippool/default_ipv6_ippool are unknown"} {
		if !strings.Contains(out, want) {
			t.Errorf("pool why lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d, want 0:\n%s", code, out)
	}

	out, code = c.run("pool", "why", "web", "--namespace="+c.ns, "-o", "json", "--default-ipv4-ippool", "why-any")
	var why inspect.PodWhy
	if err := json.Unmarshal([]byte(out), &why); err != nil || code != 0 {
		t.Fatalf("pool why -o json: exit %d, %v:\n%s", code, err, out)
	}
	if len(why.Interfaces) != 1 || len(why.Interfaces[0].Pools) != 2 || why.Interfaces[0].Pools[0].Verdict != inspect.VerdictTaken ||
		why.Interfaces[0].Pools[1].Verdict != inspect.VerdictRefused || !strings.Contains(strings.Join(why.Assumptions, "\n"), "as given by --default-ipv4-ippool") {
		t.Errorf("pool why -o json: %+v", why)
	}

	out, code = c.run("pool", "why", "stuck", "-n", c.ns)
	if code != 1 || !strings.Contains(out, "every IPv4 pool named by pod annotation ipam.spidernet.io/ippool refuses") ||
		!strings.Contains(out, "no pool would give interface eth0 an address") {
		t.Errorf("a pod every pool refuses: exit %d:\n%s", code, out)
	}
	if out, code = c.run("pool", "why", "ghost", "-n", c.ns); code != 2 || !strings.Contains(out, "why/ghost does not exist") {
		t.Errorf("a pod that does not exist: exit %d:\n%s", code, out)
	}
}

// TestParseWhy reads `pool why` arguments as kubectl users write them.
func TestParseWhy(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want inspect.WhyOptions
		code int // exit code of the error; 0 when none
	}{
		{name: "pod then namespace", args: []string{"web", "-n", "team-a"},
			want: inspect.WhyOptions{Pod: "web", Namespace: "team-a", EnableIPv4: true, EnableIPv6: true}},
		{name: "flags around the pod", args: []string{"--interface", "net1", "web", "--namespace=team-a", "--enable-ipv6=false", "--default-ipv4-ippool", "a, b"},
			want: inspect.WhyOptions{Pod: "web", Namespace: "team-a", Interfaces: []string{"net1"}, EnableIPv4: true,
				CNIDefaultIPv4: []string{"a", "b"}, CNIDefaultsGiven: true}},
		{name: "empty CNI defaults are given too", args: []string{"web", "--default-ipv6-ippool="},
			want: inspect.WhyOptions{Pod: "web", EnableIPv4: true, EnableIPv6: true, CNIDefaultsGiven: true}},
		{name: "no pod", args: []string{"-n", "x"}, code: 2},
		{name: "two pods", args: []string{"a", "b"}, code: 2},
		{name: "bad output", args: []string{"a", "-o", "wide"}, code: 2},
		{name: "no family", args: []string{"a", "--enable-ipv4=false", "--enable-ipv6=false"}, code: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseWhy(tt.args)
			if tt.code != 0 {
				if exitCode(err) != tt.code {
					t.Fatalf("error %v (exit %d), want exit %d", err, exitCode(err), tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.opts, tt.want) {
				t.Errorf("got  %+v\nwant %+v", f.opts, tt.want)
			}
		})
	}
}
