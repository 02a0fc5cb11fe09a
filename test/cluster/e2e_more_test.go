package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

func manualPool(t *testing.T, c *cluster, name, ips string) {
	t.Helper()
	apply(t, c, "", fmt.Sprintf(`apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: %s}
spec:
  subnet: 10.244.0.0/16
  ips: [%s]
  gateway: 10.244.0.1
`, name, ips))
	t.Cleanup(func() { _, _ = c.kubectl("delete", "sp", name, "--wait=false", "--ignore-not-found") })
}

// podHolders counts the pool's records held by pods (node reserves left out).
func podHolders(t *testing.T, c *cluster, pool string) int {
	t.Helper()
	var sp v2beta1.SpiderIPPool
	if err := json.Unmarshal([]byte(k(t, c, "", "get", "sp", pool, "-o", "json")), &sp); err != nil {
		t.Fatal(err)
	}
	p, err := ipam.NewPool(&sp, ip.Set{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, o := range p.Owners() {
		if !o.IsReserve() {
			n++
		}
	}
	return n
}

// servedIPs asks each pod's workload, over the node bridge, which addresses its network
// namespace has: what the pod's status says must be what is inside the pod.
func servedIPs(t *testing.T, ps map[string]pod) {
	t.Helper()
	for _, p := range ps {
		if body := answer(t, p.IP); !strings.HasPrefix(body, p.Name+" ") || !strings.Contains(body, "eth0="+p.IP+"/") {
			t.Errorf("pod %s with status IP %s says from inside: %q", p.Name, p.IP, body)
		}
	}
}

// answer is what a workload pod answers on :8080, over the node bridge. An address
// handed from a deleted pod to a new one at once leaves the node's neighbour entry
// pointing at the old pod's interface until it expires (the bridge plugin sends no
// gratuitous ARP): it is forgotten first.
func answer(t *testing.T, ip string) string {
	t.Helper()
	_, _ = run("ip", "neigh", "flush", "to", ip, "dev", bridgeName)
	client := &http.Client{Timeout: 3 * time.Second}
	var body string
	if err := waitFor("pod "+ip+" answering on :8080", 30*time.Second, func() error {
		resp, err := client.Get("http://" + ip + ":8080/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return body
}

// TestE2ENamespaceDefaultPool: a namespace's default pool serves its pods.
func TestE2ENamespaceDefaultPool(t *testing.T) {
	c := requireCluster(t)
	manualPool(t, c, "e2e-ns-default", "10.244.170.10-10.244.170.19")
	ns := namespace(t, c, "e2e-nsdefault")
	k(t, c, "", "annotate", "namespace", ns, `ipam.spidernet.io/default-ipv4-ippool=["e2e-ns-default"]`)
	apply(t, c, ns, deploymentYAML("plain", 2, `{}`))
	ps := running(t, c, ns, "app=plain", 2)
	for _, p := range ps {
		if !inRanges(p.IP, []string{"10.244.170.10-10.244.170.19"}) {
			t.Errorf("pod %s has %s, outside the namespace's default pool", p.Name, p.IP)
		}
	}
	servedIPs(t, ps)
}

// TestE2ERollingUpdate: a Deployment of 4 on a pool of exactly 5 IPs rolls over with
// maxSurge 1: the surge pod finds the free IP, no two live pods ever share an IP
// (checked at every poll), and each pod's IP is the one inside its network namespace.
func TestE2ERollingUpdate(t *testing.T) {
	c := requireCluster(t)
	manualPool(t, c, "e2e-rolling", "10.244.171.10-10.244.171.14")
	ns := namespace(t, c, "e2e-rolling")
	dep := deploymentYAML("roll", 4, `{ipam.spidernet.io/ippool: '{"ipv4":["e2e-rolling"]}'}`)
	dep = strings.Replace(dep, "  replicas: 4\n", "  replicas: 4\n  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n", 1)
	apply(t, c, ns, dep)
	servedIPs(t, running(t, c, ns, "app=roll", 4))
	k(t, c, ns, "set", "env", "deployment/roll", "REVISION=2")
	err := waitFor("the rollout done", 180*time.Second, func() error {
		live := map[string]pod{}
		for _, p := range pods(t, c, ns, "app=roll") {
			if p.Phase == "Running" && p.IP != "" && !p.Deleting {
				live[p.Name] = p
			}
		}
		unique(t, live)
		out, err := c.kubectl("-n", ns, "rollout", "status", "deployment/roll", "--timeout=1s")
		if err == nil && !strings.Contains(out, "successfully rolled out") {
			err = fmt.Errorf("%s", out)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	servedIPs(t, running(t, c, ns, "app=roll", 4))
}

// agentPIDs returns the host pids of the orbweaver-agent processes.
func agentPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmd), "/usr/bin/orbweaver-agent\x00") || strings.Contains(string(cmd), "install-cni") {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestE2EReliability: while 50 pods start, the agent is killed with SIGKILL; during a
// scale of an auto pool's Deployment the controller is restarted; then kube-apiserver
// is restarted while pods start. Every pod ends Running with a unique IP, and once
// everything is deleted, no pod's record is left in the pools.
func TestE2EReliability(t *testing.T) {
	c := requireCluster(t)
	manualPool(t, c, "e2e-chaos", "10.244.172.10-10.244.172.99")
	ns := namespace(t, c, "e2e-chaos")

	apply(t, c, ns, deploymentYAML("burst", 50, `{ipam.spidernet.io/ippool: '{"ipv4":["e2e-chaos"]}'}`))
	killed := 0
	if err := waitFor("an agent to kill while pods start", 30*time.Second, func() error {
		for _, pid := range agentPIDs() {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		if killed == 0 {
			return fmt.Errorf("no orbweaver-agent process found")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	running(t, c, ns, "app=burst", 50)
	t.Logf("agent killed (%d process) while 50 pods started: all 50 Running with unique IPs", killed)

	// The controller restarted during a scale of an auto pool's Deployment.
	apply(t, c, "", `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderSubnet
metadata: {name: e2e-chaos-subnet}
spec:
  subnet: 10.244.0.0/16
  ips: [10.244.140.0-10.244.199.255]
  gateway: 10.244.0.1
`)
	apply(t, c, ns, deploymentYAML("grow", 2, `{ipam.spidernet.io/subnet: '{"ipv4":["e2e-chaos-subnet"]}', ipam.spidernet.io/ippool-ip-number: '+1'}`))
	running(t, c, ns, "app=grow", 2)
	k(t, c, ns, "scale", "deployment", "grow", "--replicas=6")
	k(t, c, "kube-system", "delete", "pod", "-l", "app.kubernetes.io/component=controller", "--wait=false")
	running(t, c, ns, "app=grow", 6)
	if err := waitFor("the auto pool at 7 IPs", 90*time.Second, func() error {
		if _, _, total := autoPool(t, c, ns, "grow"); total != "7" {
			return fmt.Errorf("%s IPs", total)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// kube-apiserver restarted while pods start.
	k(t, c, ns, "scale", "deployment", "burst", "--replicas=70")
	if err := c.procs.stop("kube-apiserver", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := c.apiserver(); err != nil {
		t.Fatal(err)
	}
	all := running(t, c, ns, "app=burst", 70)
	for name, p := range running(t, c, ns, "app=grow", 6) {
		all[name] = p
	}
	unique(t, all)

	// Everything deleted: no pod's record is left once GC has run.
	k(t, c, ns, "delete", "deployment", "burst", "grow")
	if err := waitFor("every pod gone", 120*time.Second, func() error {
		if ps := pods(t, c, ns, "app in (burst,grow)"); len(ps) > 0 {
			return fmt.Errorf("%d pods left", len(ps))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if podHolders(t, c, "e2e-chaos") == 0 {
			break
		}
		time.Sleep(time.Second)
	}
	if n := podHolders(t, c, "e2e-chaos"); n != 0 {
		t.Fatalf("%d addresses of e2e-chaos still held by pods after every pod is gone and GC ran", n)
	}
	_, _ = c.kubectl("delete", "ss", "e2e-chaos-subnet", "--wait=false")
}

// TestE2EEIP: seed 000's prober on a real node, its EIPs in the emulated Alibaba Cloud
// through the official SDK: each pod turns Ready only once the cloud has its EIP in use
// on the pod's IP; the pod's annotation and endpoint show it; a rolling update gives the
// surge pods their own EIPs, and at no poll do two live pods show one EIP; the old pods'
// EIPs are released (Follow).
func TestE2EEIP(t *testing.T) {
	c := requireCluster(t)
	ns := namespace(t, c, "e2e-eip")
	manifest, err := os.ReadFile(filepath.Join(c.root, "docs", "examples", "eip-prober.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := strings.ReplaceAll(string(manifest), "prober-eip-v4", "e2e-eip-v4")
	m = strings.ReplaceAll(m, "10.244.140.", "10.244.173.")
	apply(t, c, ns, m)
	t.Cleanup(func() {
		_, _ = c.kubectl("-n", ns, "delete", "deployment", "prober", "--wait=true", "--timeout=60s")
		_, _ = c.kubectl("delete", "sp", "e2e-eip-v4", "--wait=false", "--ignore-not-found")
	})
	type eipPod struct {
		name, ip, eip, gate, ready string
		deleting                   bool
	}
	// running lists the Running pods, terminating ones included: they keep their IP and
	// EIP until they are gone.
	running := func() []eipPod {
		var list corev1.PodList
		if err := json.Unmarshal([]byte(k(t, c, ns, "get", "pods", "-l", "app=prober", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		var ps []eipPod
		for _, p := range list.Items {
			if p.Status.Phase != corev1.PodRunning {
				continue
			}
			e := eipPod{name: p.Name, ip: p.Status.PodIP, eip: p.Annotations[v2beta1.AnnoAllocatedEIP], deleting: p.DeletionTimestamp != nil}
			for _, cond := range p.Status.Conditions {
				switch cond.Type {
				case v2beta1.PodEIPConditionType:
					e.gate = string(cond.Status)
				case corev1.PodReady:
					e.ready = string(cond.Status)
				}
			}
			ps = append(ps, e)
		}
		return ps
	}
	// check fails the test when two running pods show one EIP, and says whether exactly
	// two pods run, not terminating, Ready with their EIPs.
	check := func() ([]eipPod, error) {
		owner := map[string]string{}
		var ready []eipPod
		for _, p := range running() {
			if p.eip != "" {
				if other, ok := owner[p.eip]; ok {
					t.Fatalf("EIP %s on pods %s and %s", p.eip, other, p.name)
				}
				owner[p.eip] = p.name
			}
			if !p.deleting && p.eip != "" && p.ready == "True" {
				ready = append(ready, p)
			}
		}
		if len(ready) != 2 || len(running()) != 2 {
			return nil, fmt.Errorf("running pods %+v", running())
		}
		return ready, nil
	}
	bound := func() []eipPod {
		t.Helper()
		var ps []eipPod
		if err := waitFor("2 prober pods Ready with their EIPs, and no other", 120*time.Second, func() (err error) {
			ps, err = check()
			return err
		}); err != nil {
			ev, _ := c.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp")
			t.Fatalf("%v\nevents:\n%s", err, ev)
		}
		eips, err := cloudEIPs()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.gate != "True" {
				t.Errorf("pod %s: gate %s", p.name, p.gate)
			}
			found := false
			for _, e := range eips {
				if e.PublicIP == p.eip {
					found = true
					if e.State != eip.InUse || e.PrivateIP != p.ip {
						t.Errorf("pod %s (%s) shows EIP %s, which the cloud has %s on %s", p.name, p.ip, p.eip, e.State, e.PrivateIP)
					}
				}
			}
			if !found {
				t.Errorf("pod %s shows EIP %s, unknown to the cloud", p.name, p.eip)
			}
			se := k(t, c, ns, "get", "se", p.name, "-o", "jsonpath={.status.current.orbweaver.eips[0].publicIP}")
			if se != p.eip {
				t.Errorf("pod %s: endpoint shows EIP %q, the pod %q", p.name, se, p.eip)
			}
			// Its init container waited for the annotation through the downward API; the
			// prober answers the EIP it sees from inside.
			if body := answer(t, p.ip); !strings.Contains(body, " eip="+p.eip) {
				t.Errorf("pod %s (%s) answers %q, want its EIP %s", p.name, p.ip, body, p.eip)
			}
		}
		return ps
	}
	before := bound()
	k(t, c, ns, "set", "env", "deployment/prober", "REVISION=2")
	if err := waitFor("the rollout done", 180*time.Second, func() error {
		_, _ = check() // the invariant at every poll
		out, err := c.kubectl("-n", ns, "rollout", "status", "deployment/prober", "--timeout=1s")
		if err == nil && !strings.Contains(out, "successfully rolled out") {
			err = fmt.Errorf("%s", out)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	after := bound()
	if err := waitFor("the old pods' EIPs released (Follow)", 60*time.Second, func() error {
		eips, err := cloudEIPs()
		if err != nil {
			return err
		}
		n := 0
		for _, e := range eips {
			if e.Tags["orbweaver.io/pool"] == "e2e-eip-v4" {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d EIPs of the pool in the cloud, want 2", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("before the rollout %+v; after %+v", before, after)
}

// TestE2EEIPRequestRefused: a pod in a namespace nobody allowed asks for an EIP by
// annotation (issue 18's secure default): it runs and turns Ready on its private IP,
// gets no EIP, a Warning event names the rule and what an administrator must change,
// and the cloud has not one EIP more. Once an administrator labels the namespace, the
// same pod gets its EIP, tagged with its namespace.
func TestE2EEIPRequestRefused(t *testing.T) {
	c := requireCluster(t)
	ns := namespace(t, c, "e2e-eip-requests")
	manualPool(t, c, "e2e-eip-requests", "10.244.174.10-10.244.174.14")
	before, err := cloudEIPs()
	if err != nil {
		t.Fatal(err)
	}
	apply(t, c, ns, deploymentYAML("asker", 1, `{ipam.spidernet.io/ippool: '{"ipv4":["e2e-eip-requests"]}', `+
		v2beta1.AnnoWithEIP+`: "true", `+v2beta1.AnnoEIPProvider+`: alibaba}`))
	t.Cleanup(func() { _, _ = c.kubectl("-n", ns, "delete", "deployment", "asker", "--wait=true", "--timeout=60s") })
	p := running(t, c, ns, "app=asker", 1)
	waitPodEvent(t, c, ns, "app=asker", "NamespaceNotAllowed")
	var name string
	for n := range p {
		name = n
	}
	if err := waitFor("the refused pod Ready", 60*time.Second, func() error {
		out, err := c.kubectl("-n", ns, "get", "pod", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && out != "True" {
			err = fmt.Errorf("Ready %q", out)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ev := k(t, c, ns, "get", "events", "--field-selector", "involvedObject.name="+name+",reason=EIPRequestRefused", "-o", "jsonpath={.items[*].message}")
	if !strings.Contains(ev, v2beta1.LabelEIPRequests+"="+v2beta1.EIPRequestsAllowed) || !strings.Contains(ev, "allowPodRequests") {
		t.Errorf("the refusal %q does not say what an administrator changes", ev)
	}
	if got := k(t, c, ns, "get", "pod", name, "-o", "jsonpath={.metadata.annotations.orbweaver\\.io/allocated-eip}"); got != "" {
		t.Errorf("the refused pod shows EIP %q", got)
	}
	if after, err := cloudEIPs(); err != nil || len(after) != len(before) {
		t.Errorf("the cloud has %d EIPs after the refusal, %d before (%v)", len(after), len(before), err)
	}

	k(t, c, "", "label", "namespace", ns, v2beta1.LabelEIPRequests+"="+v2beta1.EIPRequestsAllowed)
	var public string
	if err := waitFor("the EIP once the namespace is allowed", 90*time.Second, func() error {
		public = k(t, c, ns, "get", "pod", name, "-o", "jsonpath={.metadata.annotations.orbweaver\\.io/allocated-eip}")
		if public == "" {
			return fmt.Errorf("none yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	eips, err := cloudEIPs()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range eips {
		if e.PublicIP == public {
			found = e.Tags["orbweaver.io/namespace"] == ns && e.State == eip.InUse && e.PrivateIP == p[name].IP
		}
	}
	if !found {
		t.Errorf("the cloud has no EIP %s in use on %s tagged for namespace %s: %+v", public, p[name].IP, ns, eips)
	}
}

// TestE2EStatefulSetEIP is issue 16's per-pod manual release (seed 003's `kubectl
// delete eipc <pod>`), with the SpiderEndpoint as the per-pod record: a StatefulSet
// pod keeps its private IP and its EIP across deletion, and an ordinal scaled away
// keeps both (policy Never). Deleting that ordinal's SpiderEndpoint releases its IP
// and, under the pool's Follow strategy, its EIP in the cloud; the other ordinal keeps
// its own, still bound.
func TestE2EStatefulSetEIP(t *testing.T) {
	c := requireCluster(t)
	ns := namespace(t, c, "e2e-sts-eip")
	apply(t, c, "", `apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: e2e-sts-eip}
spec:
  ipVersion: 4
  subnet: 10.244.0.0/16
  ips: [10.244.175.10-10.244.175.14]
  gateway: 10.244.0.1
  orbweaver:
    eip: {provider: alibaba, mode: Auto, bandwidth: 5, releaseStrategy: Follow}
`)
	apply(t, c, ns, statefulSetYAML("gw", 2, `{ipam.spidernet.io/ippool: '{"ipv4":["e2e-sts-eip"]}', orbweaver.io/ip-reclaim-policy: Never}`))
	t.Cleanup(func() {
		_, _ = c.kubectl("-n", ns, "delete", "statefulset", "gw", "--wait=true", "--timeout=60s")
		_, _ = c.kubectl("delete", "sp", "e2e-sts-eip", "--wait=false", "--ignore-not-found")
	})

	// eips waits until the running pods of gw all show an EIP the cloud has bound to
	// their IP, and returns pod name -> EIP.
	eips := func(n int) map[string]string {
		t.Helper()
		var got map[string]string
		if err := waitFor(fmt.Sprintf("%d gw pods with their EIPs bound", n), 120*time.Second, func() error {
			ps := running(t, c, ns, "app=gw", n)
			cloud, err := cloudEIPs()
			if err != nil {
				return err
			}
			got = map[string]string{}
			for name, p := range ps {
				pub := k(t, c, ns, "get", "pod", name, "-o", "jsonpath={.metadata.annotations.orbweaver\\.io/allocated-eip}")
				if pub == "" {
					return fmt.Errorf("pod %s has no EIP yet", name)
				}
				bound := false
				for _, e := range cloud {
					bound = bound || (e.PublicIP == pub && e.State == eip.InUse && e.PrivateIP == p.IP)
				}
				if !bound {
					return fmt.Errorf("pod %s (%s) shows EIP %s, which the cloud has not bound to it", name, p.IP, pub)
				}
				got[name] = pub
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	inCloud := func(pub string) bool {
		t.Helper()
		cloud, err := cloudEIPs()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range cloud {
			if e.PublicIP == pub {
				return true
			}
		}
		return false
	}

	before := running(t, c, ns, "app=gw", 2)
	first := eips(2)
	if first["gw-0"] == first["gw-1"] {
		t.Fatalf("gw-0 and gw-1 share EIP %s", first["gw-0"])
	}

	k(t, c, ns, "delete", "pod", "gw-1")
	again := running(t, c, ns, "app=gw", 2)
	if again["gw-1"].IP != before["gw-1"].IP || again["gw-1"].UID == before["gw-1"].UID {
		t.Fatalf("gw-1 came back with %s (UID %s), want %s from a new pod", again["gw-1"].IP, again["gw-1"].UID, before["gw-1"].IP)
	}
	if now := eips(2); now["gw-1"] != first["gw-1"] {
		t.Fatalf("re-created gw-1 shows EIP %s, want its own %s", now["gw-1"], first["gw-1"])
	}

	k(t, c, ns, "scale", "statefulset", "gw", "--replicas=1")
	running(t, c, ns, "app=gw", 1)
	if !inCloud(first["gw-1"]) {
		t.Fatalf("gw-1's EIP %s left the cloud on scale-down; its IP is kept (policy Never), so is its EIP", first["gw-1"])
	}

	// Release gw-1's IP and EIP by hand: delete its record.
	k(t, c, ns, "delete", "se", "gw-1")
	if err := waitFor("gw-1's EIP released in the cloud", 120*time.Second, func() error {
		if inCloud(first["gw-1"]) {
			return fmt.Errorf("EIP %s still in the cloud", first["gw-1"])
		}
		return nil
	}); err != nil {
		ev, _ := c.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp")
		t.Fatalf("%v\nevents:\n%s", err, ev)
	}
	if now := eips(1); now["gw-0"] != first["gw-0"] {
		t.Fatalf("gw-0 shows EIP %s after gw-1's release, want its own %s", now["gw-0"], first["gw-0"])
	}
}
