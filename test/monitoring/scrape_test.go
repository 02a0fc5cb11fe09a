package monitoring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/testproc"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
)

// Names of the test's objects.
const (
	nsName      = "monitoring"
	agentNode   = "mon-node-a"
	idleNode    = "mon-node-b" // a Node without an agent: keeps recordsPool out of node grants
	grantsPool  = "mon-grants"
	recordsPool = "mon-records" // 10 addresses, of which the test fills 9: 90 %
	subnetName  = "mon-subnet"
)

// comparison is an alert expression's threshold: `<expression> <op> <number>` at the
// end of the expression, the form every rule of rules.yaml has.
var comparison = regexp.MustCompile(`(?s)^(.*\S)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9.]+)\s*$`)

// TestPanelsAndAlertsHaveSeries runs a real Prometheus against a real orbweaver: the
// controller and one agent, the release binaries, against a real API server. The agent
// serves two pools: mon-grants in node grants (the default mode: the controller grants
// the node IPBlocks) and mon-records in records mode (the agent writes the pool; a
// second Node without an agent keeps the pool from switching), so that the series of
// both modes exist. The test makes real allocations through the agent's socket (5 pods
// in mon-grants, 9 of mon-records' 10 addresses, one DEL, one ADD naming a pool that
// does not exist), lets Prometheus scrape every second and evaluate the rules, then:
//
//   - both targets are up, and both processes export Go and process metrics;
//   - every rule of rules.yaml evaluates without error in Prometheus' rule manager;
//   - every alert expression, its threshold removed (`X > 0.05` is evaluated as X),
//     returns series, and so does every selector it names on its own: no alert rests on
//     a metric that never appears. What the threshold compares is the value, which the
//     test does not judge, except for OrbweaverPoolAlmostFull: with 9 of 10 addresses
//     held it must hold, in full, for mon-records and not for mon-grants;
//   - every query of every dashboard panel returns series, and so does each of its
//     selectors: no dead panel.
func TestPanelsAndAlertsHaveSeries(t *testing.T) {
	e := testenv.Require(t, env)
	prometheus := tool(t, "prometheus")
	bins := buildBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()

	// The cluster's objects: the agent's node, a pool in node grants and its subnet.
	mustCreate(t, e, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName}})
	mustCreate(t, e, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: nsName, Name: "default"}})
	mustCreate(t, e, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: agentNode}})
	mustCreate(t, e, &v2beta1.SpiderSubnet{ObjectMeta: metav1.ObjectMeta{Name: subnetName},
		Spec: v2beta1.SubnetSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: "10.77.0.0/24", IPs: []v2beta1.IPOrRange{"10.77.0.10-10.77.0.99"}}})
	gp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: grantsPool},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: "10.77.0.0/24", IPs: []v2beta1.IPOrRange{"10.77.0.10-10.77.0.49"}}}
	mustCreate(t, e, gp)
	gp.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{Allocation: v2beta1.AllocationGrants}
	if err := e.Client.Status().Update(ctx, gp); err != nil {
		t.Fatal(err)
	}
	// A Node whose agent does not speak node grants (it has none): pools created from
	// now on stay in records mode.
	mustCreate(t, e, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: idleNode}})
	mustCreate(t, e, &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: recordsPool},
		Spec: v2beta1.IPPoolSpec{IPVersion: ptr.To(v2beta1.IPv4), Subnet: "10.77.1.0/24", IPs: []v2beta1.IPOrRange{"10.77.1.10-10.77.1.19"}}})

	// The controller and the agent, metrics on 127.0.0.1.
	ctlMetrics, agentMetrics := testproc.FreeAddr(t), testproc.FreeAddr(t)
	ctlHealth, agentHealth := testproc.FreeAddr(t), testproc.FreeAddr(t)
	ctl := testproc.Start(t, "orbweaver-controller", filepath.Join(bins, "orbweaver-controller"), nil,
		"--kubeconfig="+e.Kubeconfig, "--namespace=kube-system",
		"--health-addr="+ctlHealth, "--metrics-addr="+ctlMetrics,
		"--webhook-host=127.0.0.1", fmt.Sprintf("--webhook-port=%d", testproc.FreePort(t)), "--webhook-cert-dir="+filepath.Join(dir, "certs"))
	agent := testproc.Start(t, "orbweaver-agent", filepath.Join(bins, "orbweaver-agent"), nil,
		"--kubeconfig="+e.Kubeconfig, "--node-name="+agentNode,
		"--socket="+filepath.Join(dir, "agent.sock"), "--lock-file="+filepath.Join(dir, "agent.lock"),
		"--health-addr="+agentHealth, "--metrics-addr="+agentMetrics)
	if err := ctl.WaitHTTP("http://"+ctlHealth+"/readyz", 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := agent.WaitHTTP("http://"+agentHealth+"/readyz", 90*time.Second); err != nil {
		t.Fatal(err)
	}

	// Prometheus: both targets every second, rules.yaml evaluated every second.
	promAddr := testproc.FreeAddr(t)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: orbweaver-agent
    static_configs: [{targets: [%q]}]
  - job_name: orbweaver-controller
    static_configs: [{targets: [%q]}]
`, monitoringFile(t, "rules.yaml"), agentMetrics, ctlMetrics)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := testproc.Start(t, "prometheus", prometheus, nil, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"), "--web.listen-address="+promAddr, "--log.level=warn")
	if err := srv.WaitHTTP("http://"+promAddr+"/-/ready", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	p := prom{base: "http://" + promAddr}
	// Both targets scraped twice before anything happens: rates and increases see the
	// allocations as growth.
	for _, job := range []string{"orbweaver-agent", "orbweaver-controller"} {
		waitQuery(ctx, t, p, `count_over_time(up{job="`+job+`"}[1m]) >= 2 and up{job="`+job+`"} == 1`)
	}

	// Real allocations through the agent's socket.
	client := api.NewUnixClient(filepath.Join(dir, "agent.sock"))
	var pods []*corev1.Pod
	for i := range 5 {
		pods = append(pods, newPod(t, e, fmt.Sprintf("grants-%d", i), grantsPool))
	}
	for i := range 9 {
		pods = append(pods, newPod(t, e, fmt.Sprintf("records-%d", i), recordsPool))
	}
	for _, pod := range pods {
		if err := add(ctx, client, pod); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.DelContext(ctx, operations.NewDelParams().WithArgs(attachment(pods[0]))); err != nil {
		t.Fatalf("DEL %s: %v", pods[0].Name, err)
	}
	if err := add(ctx, client, newPod(t, e, "unknown-pool", "no-such-pool")); err == nil {
		t.Fatal("an ADD naming a pool that does not exist succeeded")
	}

	// Wait until Prometheus holds what the allocations did: mon-records 9 of 10 held
	// (the controller's status), ADD rates over at least two scrapes of the agent, the
	// agent's writes of mon-records, the controller's IPBlock writes for mon-grants.
	waitQuery(ctx, t, p, `orbweaver_ippool_allocated_addresses{pool="`+recordsPool+`"} == 9`)
	waitQuery(ctx, t, p, `increase(orbweaver_agent_requests_total{op="add",result="ok"}[1m]) > 0`)
	waitQuery(ctx, t, p, `increase(orbweaver_agent_requests_total{op="add",result!="ok"}[1m]) > 0`)
	// A pool's write series appear with its first write: wait for two samples of them.
	waitQuery(ctx, t, p, `count_over_time(orbweaver_agent_pool_writes_total{pool="`+recordsPool+`",result="ok"}[1m]) >= 2`)
	waitQuery(ctx, t, p, `orbweaver_grants_block_writes_total{result="ok"} > 0`)

	t.Run("targets and process metrics", func(t *testing.T) {
		for _, job := range []string{"orbweaver-agent", "orbweaver-controller"} {
			for _, expr := range []string{`up{job="` + job + `"} == 1`, `process_cpu_seconds_total{job="` + job + `"}`,
				`process_resident_memory_bytes{job="` + job + `"}`, `go_goroutines{job="` + job + `"}`, `orbweaver_build_info{job="` + job + `"}`} {
				mustHaveSeries(ctx, t, p, expr, expr)
			}
		}
	})

	t.Run("rules evaluate", func(t *testing.T) {
		var data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name           string `json:"name"`
					Health         string `json:"health"`
					LastError      string `json:"lastError"`
					LastEvaluation string `json:"lastEvaluation"`
				} `json:"rules"`
			} `json:"groups"`
		}
		want := len(alerts(t))
		deadline := time.Now().Add(30 * time.Second)
		for {
			if err := p.get(ctx, "/api/v1/rules", nil, &data); err != nil {
				t.Fatal(err)
			}
			n, unevaluated := 0, 0
			for _, g := range data.Groups {
				for _, r := range g.Rules {
					n++
					if r.Health == "unknown" || strings.HasPrefix(r.LastEvaluation, "0001-") {
						unevaluated++
					}
				}
			}
			if n == want && unevaluated == 0 || time.Now().After(deadline) {
				if n != want {
					t.Fatalf("Prometheus loaded %d rules; rules.yaml has %d", n, want)
				}
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					t.Errorf("%s: health %s: %s", r.Name, r.Health, r.LastError)
				}
			}
		}
	})

	t.Run("alert expressions", func(t *testing.T) {
		for _, r := range alerts(t) {
			t.Run(r.Alert, func(t *testing.T) {
				tree, err := p.ast(ctx, r.Expr)
				if err != nil {
					t.Fatal(err)
				}
				m := comparison.FindStringSubmatch(r.Expr)
				if tree["type"] != "binaryExpr" || m == nil || tree["op"] != m[2] {
					t.Fatalf("expression %q does not end in `<op> <number>`; the test evaluates thresholds it can remove", r.Expr)
				}
				if rhs, _ := tree["rhs"].(map[string]any); rhs["type"] != "numberLiteral" {
					t.Fatalf("expression %q: the right side of %s is %v, not a number", r.Expr, m[2], rhs["type"])
				}
				// What is checked: the expression before its threshold returns series.
				mustHaveSeries(ctx, t, p, r.Alert+" without `"+m[2]+" "+m[3]+"`", m[1])
				sels := selectors(tree)
				if len(sels) == 0 {
					t.Errorf("found no metric in %q", r.Expr)
				}
				for _, s := range sels {
					mustHaveSeries(ctx, t, p, r.Alert+" selector", s)
				}
				t.Logf("%s: the expression before `%s %s` and its selectors %v return series", r.Alert, m[2], m[3], sels)
			})
		}
		// The pool alert in full: it holds for the pool 90 % held, not for the other.
		expr := ""
		for _, r := range alerts(t) {
			if r.Alert == "OrbweaverPoolAlmostFull" {
				expr = r.Expr
			}
		}
		got, err := p.query(ctx, expr)
		if err != nil {
			t.Fatal(err)
		}
		var pools []string
		for _, s := range got {
			pools = append(pools, s.Metric["pool"])
		}
		if len(pools) != 1 || pools[0] != recordsPool {
			t.Errorf("OrbweaverPoolAlmostFull holds for pools %v; want [%s] (9 of 10 addresses held)", pools, recordsPool)
		}
	})

	t.Run("dashboard panels", func(t *testing.T) {
		queries, metrics := dashboardQueries(t), map[string]bool{}
		defer func() { t.Logf("%d panel queries naming %d selectors return series", len(queries), len(metrics)) }()
		for _, q := range queries {
			mustHaveSeries(ctx, t, p, q.where, q.expr)
			tree, err := p.ast(ctx, q.expr)
			if err != nil {
				t.Errorf("%s: %v", q.where, err)
				continue
			}
			sels := selectors(tree)
			if len(sels) == 0 {
				t.Errorf("%s: found no metric in %q", q.where, q.expr)
			}
			for _, s := range sels {
				metrics[s] = true
				mustHaveSeries(ctx, t, p, q.where+" selector", s)
			}
		}
	})
}

func mustCreate(t *testing.T, e *testenv.Env, obj client.Object) {
	t.Helper()
	if err := e.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// newPod creates a pod on the agent's node that asks for pool by annotation.
func newPod(t *testing.T, e *testenv.Env, name, pool string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: nsName, Name: name,
		Annotations: map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["` + pool + `"]}`}},
		Spec: corev1.PodSpec{NodeName: agentNode, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}}}}
	mustCreate(t, e, pod)
	return pod
}

func attachment(pod *corev1.Pod) *models.Attachment {
	return &models.Attachment{ContainerID: ptr.To("ctr-" + string(pod.UID)), IfName: ptr.To("eth0"),
		PodNamespace: ptr.To(pod.Namespace), PodName: ptr.To(pod.Name), PodUID: string(pod.UID), NetNamespace: "/var/run/netns/test"}
}

// add is one ADD through the agent's socket, as the CNI plugin makes it.
func add(ctx context.Context, c operations.ClientService, pod *corev1.Pod) error {
	_, err := c.AddContext(ctx, operations.NewAddParams().WithArgs(&models.AddArgs{Attachment: attachment(pod)}))
	var bad *operations.AddDefault
	if errors.As(err, &bad) && bad.Payload != nil && bad.Payload.Message != nil {
		return fmt.Errorf("ADD %s: %s", pod.Name, *bad.Payload.Message)
	}
	if err != nil {
		return fmt.Errorf("ADD %s: %w", pod.Name, err)
	}
	return nil
}

// waitQuery waits (up to 60s) until expr returns series.
func waitQuery(ctx context.Context, t *testing.T, p prom, expr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := p.query(ctx, expr)
		if err == nil && len(got) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus: %q returns no series after 60s (%v)", expr, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// mustHaveSeries fails the test unless expr returns at least one series now.
func mustHaveSeries(ctx context.Context, t *testing.T, p prom, where, expr string) {
	t.Helper()
	got, err := p.query(ctx, expr)
	if err == nil && len(got) == 0 {
		err = errNoSeries
	}
	if err != nil {
		t.Errorf("%s: %s: %v", where, expr, err)
	}
}
