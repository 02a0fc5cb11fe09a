package chart

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/testproc"
)

// TestInstall, against a real API server with the CRDs:
//  1. the API server accepts every object of both value sets (kubectl apply
//     --dry-run=server), default pools and subnets included, and a default pool that
//     exists already is not rendered (lookup);
//  2. `helm install` with the default values succeeds and prints the notes;
//  3. the agent's ServiceAccount may not write pods nor read Secrets, the controller's
//     may read only its own Secret (RBAC evaluated by the API server);
//  4. the controller, run with the Deployment's flags as its ServiceAccount, starts: its
//     Secret, its Lease, every reconciler's caches synced, and the CA in both webhook
//     configurations the chart made;
//  5. the agent, run with the DaemonSet's flags as its ServiceAccount, gets ready (its
//     caches synced);
//  6. `helm upgrade` keeps the CA the controller wrote; `helm uninstall` keeps the CRDs.
func TestInstall(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()

	t.Run("server-side dry run", func(t *testing.T) {
		for _, vs := range valueSets(t) {
			manifest, err := templateRaw(t, vs.args...)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := e.KubectlWithInput(ctx, manifest, "apply", "--dry-run=server", "-f", "-"); err != nil {
				t.Errorf("%s: %v\n%s", vs.name, err, out)
			}
		}
	})
	if t.Failed() {
		return
	}

	helmArgs := func(args ...string) []string {
		return append(args, "--namespace", namespace, "--kubeconfig", e.Kubeconfig)
	}

	// Before the webhook configurations exist, so the pool needs no webhook.
	t.Run("default pools that exist are not rendered", func(t *testing.T) {
		existing := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "default-v4"},
			Spec: v2beta1.IPPoolSpec{Subnet: "10.245.0.0/24", IPs: []v2beta1.IPOrRange{"10.245.0.10-10.245.0.200"}}}
		if err := e.Client.Create(ctx, existing); err != nil {
			t.Fatal(err)
		}
		out, err := runHelm(t, helmArgs("template", release, chartDir(t), "--dry-run=server", "-f", valueSets(t)[1].args[1])...)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decode(out)
		if err != nil {
			t.Fatal(err)
		}
		if objs.get("SpiderIPPool", "default-v4") != nil || objs.get("SpiderIPPool", "default-v6") == nil || objs.get("SpiderSubnet", "default-subnet-v4") == nil {
			t.Errorf("with default-v4 stored, rendered %d pools and %d subnets; want only default-v6 and default-subnet-v4",
				len(objs.ofKind("SpiderIPPool")), len(objs.ofKind("SpiderSubnet")))
		}
	})
	out, err := runHelm(t, helmArgs("install", release, chartDir(t))...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"STATUS: deployed", "DaemonSet orbweaver-agent", "No pool exists yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("helm install's output lacks %q:\n%s", want, out)
		}
	}
	r := parse(t, render(t)) // what was installed
	agentSA := "system:serviceaccount:" + namespace + ":" + r.daemonSet.Spec.Template.Spec.ServiceAccountName
	ctlSA := "system:serviceaccount:" + namespace + ":" + r.deployment.Spec.Template.Spec.ServiceAccountName

	t.Run("RBAC as the API server sees it", func(t *testing.T) {
		tests := []struct {
			as, verb, resource, ns string
			want                   bool
		}{
			{agentSA, "create", "pods", "default", false},
			{agentSA, "update", "pods", "default", false},
			{agentSA, "patch", "pods --subresource=status", "default", false},
			{agentSA, "delete", "pods", "default", false},
			{agentSA, "get", "secrets", namespace, false},
			{agentSA, "list", "secrets", "default", false},
			{agentSA, "watch", "pods", "", true},
			{agentSA, "update", "spiderippools.spiderpool.spidernet.io --subresource=status", "", true},
			{agentSA, "update", "spiderippools.spiderpool.spidernet.io", "", false},
			{agentSA, "create", "spiderendpoints.spiderpool.spidernet.io", "default", true},
			{ctlSA, "get", "secrets/" + r.ctlFlags["webhook-cert-secret"], namespace, true},
			{ctlSA, "get", "secrets/other", namespace, false},
			{ctlSA, "list", "secrets", namespace, false},
			{ctlSA, "get", "secrets/" + r.ctlFlags["webhook-cert-secret"], "default", false},
			{ctlSA, "patch", "validatingwebhookconfigurations/" + r.ctlFlags["webhook-configuration"], "", true},
			{ctlSA, "patch", "validatingwebhookconfigurations/someone-elses", "", false},
			{ctlSA, "update", "leases/orbweaver-controller", namespace, true},
			{ctlSA, "delete", "pods", "default", false},
		}
		for _, tt := range tests {
			args := append([]string{"auth", "can-i", tt.verb}, strings.Fields(tt.resource)...)
			args = append(args, "--as", tt.as)
			if tt.ns != "" {
				args = append(args, "-n", tt.ns)
			}
			out, err := e.Kubectl(ctx, args...)
			got := strings.TrimSpace(out) == "yes"
			if err != nil && strings.TrimSpace(out) != "no" {
				t.Fatalf("kubectl %v: %v", args, err)
			}
			if got != tt.want {
				t.Errorf("%s may %s %s in %q: %v; want %v", tt.as, tt.verb, tt.resource, tt.ns, got, tt.want)
			}
		}
	})

	// The controller as its ServiceAccount, with the chart's flags; only the addresses
	// and the certificate folder are the test's.
	health := testproc.FreeAddr(t)
	ctl := testproc.Start(t, "orbweaver-controller", binary(t, "orbweaver-controller"),
		[]string{"POD_NAMESPACE=" + namespace},
		slices.Concat(r.controller.Args, []string{
			"--kubeconfig=" + impersonating(t, e, ctlSA),
			"--health-addr=" + health, "--metrics-addr=0",
			fmt.Sprintf("--webhook-port=%d", testproc.FreePort(t)), "--webhook-cert-dir=" + t.TempDir()})...)
	waitReady(t, ctl, health)
	testenv.WaitFor(t, "every reconciler of the controller to sync its caches", func() (bool, error) {
		log := ctl.Output()
		started, workers := strings.Count(log, `"msg":"Starting Controller"`), strings.Count(log, `"msg":"Starting workers"`)
		// The API server's RBAC caches have the chart's bindings already: the can-i
		// checks above saw each of them grant. A refusal now is the chart's.
		if strings.Contains(log, "forbidden") {
			t.Fatal("the controller was refused something; see its output")
		}
		return started > 0 && workers == started, fmt.Errorf("%d of %d controllers started their workers", workers, started)
	})
	lease := &coordinationv1.Lease{}
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "orbweaver-controller"}, lease); err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("leader Lease: %v", err)
	}
	secret := &corev1.Secret{}
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: r.ctlFlags["webhook-cert-secret"]}, secret); err != nil {
		t.Fatalf("webhook certificate Secret: %v", err)
	}
	ca := secret.Data["ca.crt"]
	assertCA := func(when string) {
		t.Helper()
		name := r.ctlFlags["webhook-configuration"]
		m, v := &admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{}
		for _, obj := range []client.Object{m, v} {
			if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, obj); err != nil {
				t.Fatal(err)
			}
		}
		var bundles [][]byte
		for _, w := range m.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
		for _, w := range v.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
		for i, b := range bundles {
			if len(ca) == 0 || !bytes.Equal(b, ca) {
				t.Errorf("%s: webhook %d of %s has caBundle of %d bytes; want the Secret's CA (%d bytes)", when, i, name, len(b), len(ca))
			}
		}
	}
	assertCA("after the controller started")

	// The agent as its ServiceAccount, with the chart's flags; the socket, its lock and
	// the addresses are the test's.
	agentHealth := testproc.FreeAddr(t)
	agent := testproc.Start(t, "orbweaver-agent", binary(t, "orbweaver-agent"),
		[]string{"NODE_NAME=chart-test-node"},
		slices.Concat(r.agent.Args, []string{
			"--kubeconfig=" + impersonating(t, e, agentSA),
			"--socket=" + filepath.Join(t.TempDir(), "agent.sock"),
			"--health-addr=" + agentHealth, "--metrics-addr="})...)
	waitReady(t, agent, agentHealth)

	if _, err := runHelm(t, helmArgs("upgrade", release, chartDir(t), "--set", "agent.logLevel=debug")...); err != nil {
		t.Fatal(err)
	}
	assertCA("after helm upgrade")

	for _, p := range []*testproc.Process{agent, ctl} {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	}
	for _, p := range []*testproc.Process{ctl, agent} {
		if strings.Contains(p.Output(), "forbidden") {
			t.Errorf("%s was refused something:\n%s", p.Name, p.Output())
		}
	}

	if _, err := runHelm(t, helmArgs("uninstall", release)...); err != nil {
		t.Fatal(err)
	}
	for _, u := range r.objs.ofKind("ClusterRole") {
		if err := e.Client.Get(ctx, client.ObjectKey{Name: u.GetName()}, &rbacv1.ClusterRole{}); !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole %s after helm uninstall: %v; want NotFound", u.GetName(), err)
		}
	}
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := e.Client.Get(ctx, client.ObjectKey{Name: "spiderippools.spiderpool.spidernet.io"}, crd); err != nil {
		t.Errorf("the SpiderIPPool CRD after helm uninstall: %v; helm keeps CRDs", err)
	}
}

// impersonating writes a kubeconfig that reaches the API server as user (a
// ServiceAccount's name), through the admin's impersonation.
func impersonating(t *testing.T, e *testenv.Env, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = user
		ns := strings.Split(user, ":")[2]
		a.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitReady waits for GET /readyz on addr to answer 200, failing at once if the process
// exits.
func waitReady(t *testing.T, p *testproc.Process, addr string) {
	t.Helper()
	if err := p.WaitHTTP("http://"+addr+"/readyz", 30*time.Second); err != nil {
		t.Fatal(err)
	}
}
