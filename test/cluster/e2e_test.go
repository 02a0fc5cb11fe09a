package main

// The end-to-end suite: the local cluster of this package (a real kubelet with
// containerd), orbweaver installed by its Helm chart, real pods. TestMain brings the
// cluster up in .e2e-cluster, installs orbweaver, runs the tests and tears it all down.
// It needs root; -short (make unit) and ORBWEAVER_E2E=0 skip it.

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/inspect"
)

var e2e *cluster

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() || os.Getenv("ORBWEAVER_E2E") == "0" {
		os.Exit(m.Run())
	}
	os.Exit(func() int {
		root, err := testenv.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, alive := newCluster(root, filepath.Join(root, ".cluster")).procs.alive("kubelet"); alive {
			fmt.Fprintln(os.Stderr, "e2e: the demo cluster is running (.cluster): run make demo-down first, or skip the e2e suite with ORBWEAVER_E2E=0")
			return 1
		}
		if os.Geteuid() != 0 {
			fmt.Fprintln(os.Stderr, "e2e: the local cluster needs root; skip the e2e suite with ORBWEAVER_E2E=0")
			return 1
		}
		c := newCluster(root, filepath.Join(root, ".e2e-cluster"))
		c.noTools = os.Getenv("ORBWEAVER_E2E_NO_TOOLS") == "1"
		_ = c.down() // what a crashed run left
		defer func() {
			if err := c.down(); err != nil {
				fmt.Fprintln(os.Stderr, "e2e: down:", err)
			}
		}()
		if err := c.up(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: up:", err)
			return 1
		}
		if err := c.install(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: install:", err)
			return 1
		}
		e2e = c
		return m.Run()
	}())
}

func requireCluster(t *testing.T) *cluster {
	t.Helper()
	if e2e == nil {
		t.Skip("e2e: no local cluster (-short or ORBWEAVER_E2E=0)")
	}
	return e2e
}

// k runs kubectl in namespace ns (none when empty) and fails the test on error.
func k(t *testing.T, c *cluster, ns string, args ...string) string {
	t.Helper()
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := c.kubectl(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func apply(t *testing.T, c *cluster, ns, manifest string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	k(t, c, ns, "apply", "-f", path)
}

func namespace(t *testing.T, c *cluster, name string) string {
	t.Helper()
	k(t, c, "", "create", "namespace", name)
	t.Cleanup(func() { _, _ = c.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s") })
	if err := waitFor("ServiceAccount default in "+name, 60*time.Second, func() error {
		_, err := c.kubectl("-n", name, "get", "serviceaccount", "default")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return name
}

// pod is what the tests read of a pod.
type pod struct {
	Name, Phase, IP, UID string
	Deleting             bool
}

func pods(t *testing.T, c *cluster, ns, selector string) []pod {
	t.Helper()
	out := k(t, c, ns, "get", "pods", "-l", selector, "-o", "json")
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string
				UID               string
				DeletionTimestamp *string
			}
			Status struct {
				Phase string
				PodIP string
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	var ps []pod
	for _, it := range list.Items {
		ps = append(ps, pod{Name: it.Metadata.Name, UID: it.Metadata.UID, Phase: it.Status.Phase, IP: it.Status.PodIP, Deleting: it.Metadata.DeletionTimestamp != nil})
	}
	return ps
}

// running waits until exactly n pods match selector, all Running with an IP, and
// returns them by name.
func running(t *testing.T, c *cluster, ns, selector string, n int) map[string]pod {
	t.Helper()
	var got map[string]pod
	if err := waitFor(fmt.Sprintf("%d running pods %s in %s", n, selector, ns), 120*time.Second, func() error {
		got = map[string]pod{}
		all := pods(t, c, ns, selector)
		for _, p := range all {
			if p.Phase == "Running" && p.IP != "" && !p.Deleting {
				got[p.Name] = p
			}
		}
		if len(got) != n || len(all) != n {
			return fmt.Errorf("%d of %d pods running", len(got), len(all))
		}
		return nil
	}); err != nil {
		ev, _ := c.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp")
		t.Fatalf("%v\nevents:\n%s", err, ev)
	}
	unique(t, got)
	return got
}

// unique fails when two pods share an IP.
func unique(t *testing.T, ps map[string]pod) {
	t.Helper()
	seen := map[string]string{}
	for _, p := range ps {
		if other, dup := seen[p.IP]; dup {
			t.Fatalf("pods %s and %s share %s", other, p.Name, p.IP)
		}
		seen[p.IP] = p.Name
	}
}

// autoPool returns the application's only auto pool: its name, spec.ips and totalIPCount.
func autoPool(t *testing.T, c *cluster, ns, app string) (name string, ips []string, total string) {
	t.Helper()
	out := k(t, c, "", "get", "sp", "-l", "ipam.spidernet.io/owner-application-namespace="+ns+",ipam.spidernet.io/owner-application-name="+app,
		"-o", `jsonpath={range .items[*]}{.metadata.name}|{.spec.ips}|{.status.totalIPCount}{"\n"}{end}`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 || lines[0] == "" {
		t.Fatalf("auto pools of %s/%s: %q, want exactly one", ns, app, out)
	}
	f := strings.Split(lines[0], "|")
	if err := json.Unmarshal([]byte(f[1]), &ips); err != nil {
		t.Fatal(err)
	}
	return f[0], ips, f[2]
}

// inRanges tells whether ip lies in one of SpiderPool-form ranges.
func inRanges(ip string, ranges []string) bool {
	a := netip.MustParseAddr(ip)
	for _, r := range ranges {
		lo, hi, found := strings.Cut(r, "-")
		if !found {
			hi = lo
		}
		if a.Compare(netip.MustParseAddr(lo)) >= 0 && a.Compare(netip.MustParseAddr(hi)) <= 0 {
			return true
		}
	}
	return false
}

const workloadTemplate = `
    metadata:
      labels: {app: %[1]s}
      annotations: %[2]s
    spec:
      dnsPolicy: Default
      terminationGracePeriodSeconds: 1
      containers:
        - {name: w, image: localhost/workload:local, imagePullPolicy: Never}
`

func deploymentYAML(name string, replicas int, annotations string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: %[3]d
  selector: {matchLabels: {app: %[1]s}}
  template:`+workloadTemplate, name, annotations, replicas)
}

func statefulSetYAML(name string, replicas int, annotations string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: %[1]s}
spec:
  replicas: %[3]d
  serviceName: %[1]s
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: %[1]s}}
  template:`+workloadTemplate, name, annotations, replicas)
}

// TestE2ESeed004: the auto pool of Deployment nginx ('+3', 2 replicas) has 5 IPs inside
// the subnet; the pods' IPs stay inside it across a restart and a scale-up, which grows
// the pool to 6; deleting the Deployment reclaims the pool.
func TestE2ESeed004(t *testing.T) {
	c := requireCluster(t)
	ns := namespace(t, c, "e2e-seed004")
	apply(t, c, "", `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: e2e-subnet-v4}
spec:
  ipVersion: 4
  subnet: 10.244.0.0/16
  ips: [10.244.140.0-10.244.199.255]
  gateway: 10.244.0.1
`)
	t.Cleanup(func() { _, _ = c.kubectl("delete", "ss", "e2e-subnet-v4", "--wait=false") })
	apply(t, c, ns, deploymentYAML("nginx", 2, `{ipam.spidernet.io/subnet: '{"ipv4":["e2e-subnet-v4"]}', ipam.spidernet.io/ippool-ip-number: '+3'}`))
	ps := running(t, c, ns, "app=nginx", 2)
	pool, ips, total := autoPool(t, c, ns, "nginx")
	if total != "5" {
		t.Fatalf("auto pool %s has %s IPs, want 5", pool, total)
	}
	for _, p := range ps {
		if !inRanges(p.IP, ips) || !inRanges(p.IP, []string{"10.244.140.0-10.244.199.255"}) {
			t.Errorf("pod %s has %s, outside pool %s %v", p.Name, p.IP, pool, ips)
		}
	}
	// A restart: the replacement's IP is inside the pool too.
	for name := range ps {
		k(t, c, ns, "delete", "pod", name, "--wait=false")
		break
	}
	for _, p := range running(t, c, ns, "app=nginx", 2) {
		if !inRanges(p.IP, ips) {
			t.Errorf("after a restart pod %s has %s, outside pool %v", p.Name, p.IP, ips)
		}
	}
	k(t, c, ns, "scale", "deployment", "nginx", "--replicas=3")
	ps = running(t, c, ns, "app=nginx", 3)
	if err := waitFor("the pool to grow to 6", 60*time.Second, func() error {
		if _, _, total = autoPool(t, c, ns, "nginx"); total != "6" {
			return fmt.Errorf("%s IPs", total)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, ips, _ = autoPool(t, c, ns, "nginx")
	for _, p := range ps {
		if !inRanges(p.IP, ips) {
			t.Errorf("after the scale-up pod %s has %s, outside pool %v", p.Name, p.IP, ips)
		}
	}
	k(t, c, ns, "delete", "deployment", "nginx")
	if err := waitFor("auto pool "+pool+" reclaimed", 120*time.Second, func() error {
		out, err := c.kubectl("get", "sp", pool, "--ignore-not-found", "-o", "name")
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("still there")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestE2EManualPoolAndMissingPool: pods on a pool named by annotation get its IPs; a pod
// naming a pool that does not exist stays ContainerCreating with a clear event, and
// starts once the pool is created.
func TestE2EManualPoolAndMissingPool(t *testing.T) {
	c := requireCluster(t)
	ns := namespace(t, c, "e2e-manual")
	apply(t, c, "", `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: e2e-manual}
spec:
  subnet: 10.244.0.0/16
  ips: [10.244.150.10-10.244.150.19]
  gateway: 10.244.0.1
`)
	t.Cleanup(func() {
		_, _ = c.kubectl("delete", "sp", "e2e-manual", "e2e-late", "--wait=false", "--ignore-not-found")
	})
	apply(t, c, ns, deploymentYAML("manual", 3, `{ipam.spidernet.io/ippool: '{"ipv4":["e2e-manual"]}'}`))
	for _, p := range running(t, c, ns, "app=manual", 3) {
		if !inRanges(p.IP, []string{"10.244.150.10-10.244.150.19"}) {
			t.Errorf("pod %s has %s, outside e2e-manual", p.Name, p.IP)
		}
	}

	apply(t, c, ns, deploymentYAML("late", 1, `{ipam.spidernet.io/ippool: '{"ipv4":["e2e-late"]}'}`))
	if err := waitFor("an event naming the missing pool", 90*time.Second, func() error {
		out, err := c.kubectl("-n", ns, "get", "events", "--field-selector", "type=Warning", "-o", "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}")
		if err == nil && !strings.Contains(out, `"e2e-late"`) {
			err = fmt.Errorf("no event names the pool yet: %s", out)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods(t, c, ns, "app=late") {
		if p.Phase == "Running" {
			t.Fatalf("pod %s runs without its pool", p.Name)
		}
	}
	apply(t, c, "", `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: e2e-late}
spec:
  subnet: 10.244.0.0/16
  ips: [10.244.151.10-10.244.151.19]
  gateway: 10.244.0.1
`)
	for _, p := range running(t, c, ns, "app=late", 1) {
		if !inRanges(p.IP, []string{"10.244.151.10-10.244.151.19"}) {
			t.Errorf("pod %s has %s, outside e2e-late", p.Name, p.IP)
		}
	}
}

// TestE2EStatefulSet: a deleted StatefulSet pod comes back with its IP; scaled 3 -> 1 ->
// 3 with reclaim policy Never, pod 1 comes back with its IP, while pod 2's, released by
// hand (`kubectl delete se db-2`, seed 002's manual reclaim) while scaled down, is no
// longer held by anyone; a deleted StatefulSet's IPs are reclaimed (policy Follow).
func TestE2EStatefulSet(t *testing.T) {
	c := requireCluster(t)
	ns := namespace(t, c, "e2e-sts")
	apply(t, c, "", `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: e2e-sts}
spec:
  subnet: 10.244.0.0/16
  ips: [10.244.160.10-10.244.160.40]
  gateway: 10.244.0.1
`)
	t.Cleanup(func() { _, _ = c.kubectl("delete", "sp", "e2e-sts", "--wait=false") })
	apply(t, c, ns, statefulSetYAML("db", 3, `{ipam.spidernet.io/ippool: '{"ipv4":["e2e-sts"]}', orbweaver.io/ip-reclaim-policy: Never}`))
	before := running(t, c, ns, "app=db", 3)

	for i := 0; i < 3; i++ {
		k(t, c, ns, "delete", "pod", "db-1")
		now := running(t, c, ns, "app=db", 3)
		if now["db-1"].IP != before["db-1"].IP || now["db-1"].UID == before["db-1"].UID {
			t.Fatalf("round %d: db-1 came back with %s (UID %s), want %s from a new pod", i, now["db-1"].IP, now["db-1"].UID, before["db-1"].IP)
		}
		before["db-1"] = now["db-1"]
	}

	k(t, c, ns, "scale", "statefulset", "db", "--replicas=1")
	running(t, c, ns, "app=db", 1)
	// Reclaim db-2's kept IP by hand: its record goes (garbage collection's
	// OrphanRecord, within the install's 10 s gone delay) and no pod holds the address.
	cli := buildCLI(t, c)
	k(t, c, ns, "delete", "se", "db-2")
	if err := waitFor("db-2's address no longer held", 90*time.Second, func() error {
		out, err := runCLI(cli, c, "ipam", "show", "--ip", before["db-2"].IP, "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		var hs []inspect.Holding
		if err := json.Unmarshal([]byte(out), &hs); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		for _, h := range hs {
			if h.State == inspect.StateHeld {
				return fmt.Errorf("still held: %s", out)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	k(t, c, ns, "scale", "statefulset", "db", "--replicas=3")
	after := running(t, c, ns, "app=db", 3)
	for _, name := range []string{"db-0", "db-1"} {
		if after[name].IP != before[name].IP {
			t.Errorf("%s came back with %s after 3 -> 1 -> 3, want %s (policy Never)", name, after[name].IP, before[name].IP)
		}
	}

	apply(t, c, ns, statefulSetYAML("cache", 2, `{ipam.spidernet.io/ippool: '{"ipv4":["e2e-sts"]}'}`))
	running(t, c, ns, "app=cache", 2)
	k(t, c, ns, "delete", "statefulset", "cache")
	if err := waitFor("cache's endpoints reclaimed", 120*time.Second, func() error {
		out, err := c.kubectl("-n", ns, "get", "se", "-o", "name")
		if err == nil && strings.Contains(out, "cache-") {
			err = fmt.Errorf("left: %s", out)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
