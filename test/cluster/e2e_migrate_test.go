package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/inspect"
)

// migratePool is the pool SpiderPool serves first: exactly 10 addresses, so that a
// duplicate would show as a pod without one, and the last free address is known.
const (
	migratePool       = "e2e-migrate"
	migratePoolRange  = "10.244.170.10-10.244.170.19"
	migratePoolSize   = 10
	migratePoolAnno   = `{ipam.spidernet.io/ippool: '{"ipv4":["` + migratePool + `"]}'}`
	importedCondition = "SpiderPoolRecordsImported"
)

// TestE2EMigrateFromSpiderPool switches this cluster from SpiderPool to orbweaver and
// back, on real pods, as docs/guides/migrate-from-spiderpool.md tells a user to.
//
// SpiderPool v1.2.2's own agent (a DaemonSet pod of an image built here, as orbweaver's
// are) and its own plugin give a Deployment's 5 pods and a StatefulSet's 3 their
// addresses from a pool of exactly 10. Then, with the guide's first step forgotten,
// orbweaver is installed by its chart over SpiderPool's CRDs (its controller puts
// orbweaver's in place) while SpiderPool's agent still runs: the pool is not imported
// and a new pod's ADD is refused, saying why. SpiderPool's agent goes; the pool is
// imported; the waiting pod gets an address no pod holds. Every check after
// that is the guide's: the pods keep their addresses (inside their network namespaces
// too, and in orbweaver's own view, `kubectl orbweaver ipam show --ip`), the pool fills
// to exactly full, a deleted SpiderPool pod's address is what its replacement gets, a
// StatefulSet pod keeps its address. Then the way back: orbweaver is uninstalled,
// `kubectl orbweaver spiderpool export --write` writes status.allocatedIPs, SpiderPool
// comes back and serves the next pods from the address freed, none other.
//
// The cluster is orbweaver's again at the end, for the tests that run after.
func TestE2EMigrateFromSpiderPool(t *testing.T) {
	c := requireCluster(t)
	cli := buildCLI(t, c)

	// 0. The cluster as a SpiderPool user has it: SpiderPool's CRDs, agent and plugin.
	uninstallOrbweaver(t, c)
	t.Cleanup(func() { restoreOrbweaver(t, c) })
	spiderPoolCRDs(t, c)
	if err := c.importSpiderPoolImage(); err != nil {
		t.Fatal(err)
	}
	startSpiderPool(t, c)
	apply(t, c, "", fmt.Sprintf(`apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: %s}
spec:
  ipVersion: 4
  subnet: 10.244.0.0/16
  ips: [%s]
  gateway: 10.244.0.1
`, migratePool, migratePoolRange))
	t.Cleanup(func() { _, _ = c.kubectl("delete", "sp", migratePool, "--wait=false", "--ignore-not-found") })
	ns := namespace(t, c, "e2e-migrate")

	// 1. SpiderPool serves 8 pods.
	apply(t, c, ns, deploymentYAML("web", 5, migratePoolAnno))
	apply(t, c, ns, statefulSetYAML("db", 3, migratePoolAnno))
	web := running(t, c, ns, "app=web", 5)
	db := running(t, c, ns, "app=db", 3)
	before := union(web, db)
	unique(t, before)
	if got := spiderPoolRecords(t, c); !maps.Equal(got, uidByIP(before)) {
		t.Fatalf("SpiderPool's status.allocatedIPs %v, want the pods' %v", got, uidByIP(before))
	}

	// 2. orbweaver goes in (guide steps 2 and 3: helm keeps SpiderPool's CRDs, and the
	// controller puts orbweaver's in their place) before SpiderPool's agent is gone (step
	// 1 forgotten): the pool stays SpiderPool's, and an ADD says what to do.
	if err := c.install(); err != nil {
		t.Fatal(err)
	}
	waitImportCondition(t, c, "False", "SpiderPoolRunning")
	k(t, c, ns, "scale", "deployment", "web", "--replicas=6")
	waitPodEvent(t, c, ns, "app=web", "SpiderPool")

	// 3. Step 1, late: SpiderPool's agent goes. The import follows, and the waiting pod
	// gets the address nobody holds.
	stopSpiderPool(t, c)
	waitImportCondition(t, c, "True", "Imported")
	web = running(t, c, ns, "app=web", 6)
	now := union(web, db)
	unique(t, now)
	kept(t, before, now)
	servedIPs(t, now)
	held(t, c, cli, now)
	allocatedCount(t, c, 9)

	// 4. The pool fills to exactly full; nobody gets a live address.
	k(t, c, ns, "scale", "deployment", "web", "--replicas=7")
	web = running(t, c, ns, "app=web", 7)
	now = union(web, db)
	unique(t, now)
	kept(t, before, now)
	if len(now) != migratePoolSize {
		t.Fatalf("%d pods, want %d", len(now), migratePoolSize)
	}
	allocatedCount(t, c, migratePoolSize)

	// 5. A SpiderPool pod deleted: its DEL (orbweaver's plugin, SpiderPool's sandbox) frees
	// exactly its address, which its replacement gets, the pool being full otherwise.
	victim := before[firstOf(web, before)]
	k(t, c, ns, "delete", "pod", victim.Name)
	web = replaced(t, c, ns, "app=web", 7, victim)
	if ip := newcomer(web, now).IP; ip != victim.IP {
		t.Errorf("the replacement of SpiderPool's %s got %s, want its freed %s", victim.Name, ip, victim.IP)
	}
	// A StatefulSet pod SpiderPool placed keeps its address under orbweaver.
	k(t, c, ns, "delete", "pod", "db-1")
	db = running(t, c, ns, "app=db", 3)
	if db["db-1"].IP != before["db-1"].IP || db["db-1"].UID == before["db-1"].UID {
		t.Errorf("db-1 came back with %s (UID %s), want %s from a new pod", db["db-1"].IP, db["db-1"].UID, before["db-1"].IP)
	}
	now = union(web, db)
	unique(t, now)
	held(t, c, cli, now)
	// orbweaver's own audit of the migrated pool finds nothing wrong (a leak younger than
	// GC's delay would be the product at work: it is asked again), and it refuses to
	// release a live pod's address.
	if err := waitFor("ipam check clean", 60*time.Second, func() error {
		out, err := runCLI(cli, c, "ipam", "check", "--pool", migratePool)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if out, err := runCLI(cli, c, "ipam", "release", "--ip", now["db-0"].IP); err == nil || !strings.Contains(out, "refused") {
		t.Errorf("ipam release of live db-0's %s: %v\n%s; want a refusal", now["db-0"].IP, err, out)
	}

	// 6. The way back (guide §5): orbweaver out, its records written in SpiderPool's
	// format, SpiderPool's CRDs, agent and plugin back.
	uninstallOrbweaver(t, c)
	out, err := runCLI(cli, c, "spiderpool", "export", "--write", "--pool", migratePool)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, out)
	}
	t.Logf("kubectl orbweaver spiderpool export --write:\n%s", out)
	spiderPoolCRDs(t, c)
	startSpiderPool(t, c)
	if got := spiderPoolRecords(t, c); !maps.Equal(got, uidByIP(now)) {
		t.Fatalf("exported status.allocatedIPs %v, want the pods' %v", got, uidByIP(now))
	}
	// SpiderPool's next pod gets the address freed, the only one.
	victim = now[firstOf(web, now)]
	k(t, c, ns, "delete", "pod", victim.Name)
	web = replaced(t, c, ns, "app=web", 7, victim)
	if ip := newcomer(web, now).IP; ip != victim.IP {
		t.Errorf("SpiderPool gave the replacement of %s %s, want its freed %s", victim.Name, ip, victim.IP)
	}
	k(t, c, ns, "delete", "pod", "db-2")
	db = running(t, c, ns, "app=db", 3)
	if db["db-2"].IP != now["db-2"].IP {
		t.Errorf("under SpiderPool again db-2 came back with %s, want %s", db["db-2"].IP, now["db-2"].IP)
	}
	final := union(web, db)
	unique(t, final)
	servedIPs(t, final)
	if got := spiderPoolRecords(t, c); !maps.Equal(got, uidByIP(final)) {
		t.Errorf("SpiderPool's status.allocatedIPs %v, want the pods' %v", got, uidByIP(final))
	}
}

// buildCLI builds the kubectl plugin, as `make build` does.
func buildCLI(t *testing.T, c *cluster) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubectl-orbweaver")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-orbweaver")
	cmd.Dir = c.root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kubectl-orbweaver: %v\n%s", err, out)
	}
	return bin
}

func runCLI(cli string, c *cluster, args ...string) (string, error) {
	return run(cli, append(args, "--kubeconfig", c.kubeconfig())...)
}

// uninstallOrbweaver removes orbweaver's release and waits until its pods are gone (the
// guide's "its controller must not run").
func uninstallOrbweaver(t *testing.T, c *cluster) {
	t.Helper()
	if out, err := c.helm("uninstall", "orbweaver", "--namespace", "kube-system", "--wait", "--timeout", "2m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	gone(t, c, "app.kubernetes.io/name=orbweaver")
}

// gone waits until no pod in kube-system matches selector.
func gone(t *testing.T, c *cluster, selector string) {
	t.Helper()
	if err := podsGone(c, selector); err != nil {
		t.Fatal(err)
	}
}

func podsGone(c *cluster, selector string) error {
	return waitFor("no pods "+selector, 120*time.Second, func() error {
		out, err := c.kubectl("-n", "kube-system", "get", "pods", "-l", selector, "-o", "name")
		if err == nil && strings.TrimSpace(out) != "" {
			err = fmt.Errorf("left: %s", out)
		}
		return err
	})
}

// spiderPoolCRDs puts SpiderPool's CRDs over orbweaver's, server-side, as the way back
// says (helm would keep the existing ones).
func spiderPoolCRDs(t *testing.T, c *cluster) {
	t.Helper()
	k(t, c, "", "apply", "--server-side", "--force-conflicts", "-f", filepath.Join(c.bin, "spiderpool-crds")+"/")
}

// startSpiderPool runs SpiderPool's agent and points the pods' network at its plugin.
func startSpiderPool(t *testing.T, c *cluster) {
	t.Helper()
	if err := c.installSpiderPoolPlugin(); err != nil {
		t.Fatal(err)
	}
	apply(t, c, "", c.spiderPoolAgentManifest())
	if out, err := c.kubectl("-n", "kube-system", "rollout", "status", "daemonset/spiderpool-agent", "--timeout=120s"); err != nil {
		logs, _ := c.kubectl("-n", "kube-system", "logs", "daemonset/spiderpool-agent", "--tail=30")
		t.Fatalf("SpiderPool's agent: %v\n%s\n%s\n%s", err, out, c.describeInstall(), logs)
	}
}

// stopSpiderPool removes SpiderPool's agent (the guide's `helm uninstall spiderpool`).
func stopSpiderPool(t *testing.T, c *cluster) {
	t.Helper()
	k(t, c, "", "delete", "--ignore-not-found", "-n", "kube-system", "daemonset/spiderpool-agent", "configmap/spiderpool-conf", "serviceaccount/spiderpool-agent")
	k(t, c, "", "delete", "--ignore-not-found", "clusterrolebinding/e2e-spiderpool-agent")
	gone(t, c, "app.kubernetes.io/component=spiderpool-agent")
}

// restoreOrbweaver leaves the cluster as TestMain made it, whatever step failed:
// SpiderPool gone, orbweaver's CRDs, orbweaver installed (its agent writes its conflist).
func restoreOrbweaver(t *testing.T, c *cluster) {
	_, _ = c.kubectl("delete", "--ignore-not-found", "-n", "kube-system", "daemonset/spiderpool-agent", "configmap/spiderpool-conf", "serviceaccount/spiderpool-agent")
	_, _ = c.kubectl("delete", "--ignore-not-found", "clusterrolebinding/e2e-spiderpool-agent")
	// orbweaver's agent refuses ADDs on the node while SpiderPool's agent pod exists.
	if err := podsGone(c, "app.kubernetes.io/component=spiderpool-agent"); err != nil {
		t.Error(err)
	}
	if _, err := c.kubectl("apply", "--server-side", "--force-conflicts", "-f", filepath.Join(c.root, "charts", "orbweaver", "crds")+"/"); err != nil {
		t.Errorf("restore orbweaver's CRDs: %v", err)
	}
	if err := c.install(); err != nil {
		t.Errorf("reinstall orbweaver: %v", err)
	}
}

// allocatedCount waits until the pool's ALLOCATED-IP-COUNT is want (the pods' count
// settles after the grants do).
func allocatedCount(t *testing.T, c *cluster, want int) {
	t.Helper()
	if err := waitFor(fmt.Sprintf("ALLOCATED-IP-COUNT %d", want), 60*time.Second, func() error {
		got := k(t, c, "", "get", "sp", migratePool, "-o", "jsonpath={.status.allocatedIPCount}")
		if got != fmt.Sprint(want) {
			return fmt.Errorf("%s", got)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
}

// waitImportCondition waits for the pool's SpiderPoolRecordsImported condition.
func waitImportCondition(t *testing.T, c *cluster, status, reason string) {
	t.Helper()
	var last string
	if err := waitFor(fmt.Sprintf("%s %s/%s", importedCondition, status, reason), 90*time.Second, func() error {
		out, err := c.kubectl("get", "sp", migratePool, "-o", "json")
		if err != nil {
			return err
		}
		var sp v2beta1.SpiderIPPool
		if err := json.Unmarshal([]byte(out), &sp); err != nil {
			return err
		}
		if sp.Status.Orbweaver != nil {
			for _, cond := range sp.Status.Orbweaver.Conditions {
				if cond.Type == importedCondition {
					last = fmt.Sprintf("%s %s: %s", cond.Status, cond.Reason, cond.Message)
					if string(cond.Status) == status && cond.Reason == reason {
						return nil
					}
				}
			}
		}
		return fmt.Errorf("condition: %q", last)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s", importedCondition, last)
}

// waitPodEvent waits for an event on a pod of selector whose message has want.
func waitPodEvent(t *testing.T, c *cluster, ns, selector, want string) {
	t.Helper()
	if err := waitFor("an event on a pod "+selector+" saying "+want, 90*time.Second, func() error {
		out, err := c.kubectl("-n", ns, "get", "events", "--field-selector", "involvedObject.kind=Pod", "-o", `jsonpath={range .items[*]}{.involvedObject.name} {.reason}: {.message}{"\n"}{end}`)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, want) {
				t.Logf("event: %s", line)
				return nil
			}
		}
		return fmt.Errorf("none yet")
	}); err != nil {
		t.Fatal(err)
	}
}

// spiderPoolRecords reads the pool's status.allocatedIPs as address -> pod UID.
func spiderPoolRecords(t *testing.T, c *cluster) map[string]string {
	t.Helper()
	raw := k(t, c, "", "get", "sp", migratePool, "-o", "jsonpath={.status.allocatedIPs}")
	var recs map[string]struct {
		PodUID string `json:"podUid"`
	}
	if raw != "" {
		if err := json.Unmarshal([]byte(raw), &recs); err != nil {
			t.Fatalf("status.allocatedIPs %q: %v", raw, err)
		}
	}
	out := map[string]string{}
	for a, r := range recs {
		out[a] = r.PodUID
	}
	return out
}

// held checks orbweaver's own view: each pod holds its address, and nothing else does.
func held(t *testing.T, c *cluster, cli string, ps map[string]pod) {
	t.Helper()
	for _, p := range ps {
		out, err := runCLI(cli, c, "ipam", "show", "--ip", p.IP, "-o", "json")
		if err != nil {
			t.Fatalf("ipam show --ip %s: %v\n%s", p.IP, err, out)
		}
		var hs []inspect.Holding
		if err := json.Unmarshal([]byte(out), &hs); err != nil {
			t.Fatalf("ipam show --ip %s: %v\n%s", p.IP, err, out)
		}
		if len(hs) != 1 || hs[0].State != inspect.StateHeld || hs[0].Pod != p.Name || hs[0].PodUID != p.UID || len(hs[0].Notes) > 0 {
			t.Errorf("ipam show --ip %s: %s, want only pod %s (%s), no notes", p.IP, out, p.Name, p.UID)
		}
	}
}

func union(a, b map[string]pod) map[string]pod {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func uidByIP(ps map[string]pod) map[string]string {
	out := map[string]string{}
	for _, p := range ps {
		out[p.IP] = p.UID
	}
	return out
}

// kept fails when a pod of before that still runs has another address or UID.
func kept(t *testing.T, before, now map[string]pod) {
	t.Helper()
	for name, p := range before {
		if q, ok := now[name]; ok && (q.IP != p.IP || q.UID != p.UID) {
			t.Errorf("pod %s: %s (UID %s) before, %s (UID %s) now", name, p.IP, p.UID, q.IP, q.UID)
		}
	}
}

// firstOf is the first pod name (sorted) of ps that is also in of.
func firstOf(ps, of map[string]pod) string {
	for _, name := range slices.Sorted(maps.Keys(ps)) {
		if _, ok := of[name]; ok {
			return name
		}
	}
	return ""
}

// newcomer is the one pod of now not in before.
func newcomer(now, before map[string]pod) pod {
	for name, p := range now {
		if _, ok := before[name]; !ok {
			return p
		}
	}
	return pod{}
}

// replaced waits until n pods of selector run and gone is not one of them.
func replaced(t *testing.T, c *cluster, ns, selector string, n int, gone pod) map[string]pod {
	t.Helper()
	var ps map[string]pod
	if err := waitFor(gone.Name+" replaced", 120*time.Second, func() error {
		ps = running(t, c, ns, selector, n)
		if _, still := ps[gone.Name]; still {
			return fmt.Errorf("%s still runs", gone.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ps
}
