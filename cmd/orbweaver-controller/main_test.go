package main

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	alibabaemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/alibaba"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/testproc"
	"github.com/orbweaver-ipam/orbweaver/pkg/controller/eipbinding"
	"github.com/orbweaver-ipam/orbweaver/pkg/crdcheck"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

// waitReadyz waits until run, started with health as its health address, answers
// /readyz; the error says why not: run returned first (on done), or within passed.
func waitReadyz(health string, within time.Duration, done <-chan error) error {
	return testproc.WaitHTTP("http://"+health+"/readyz", within, func() (bool, error) {
		select {
		case err := <-done:
			return true, fmt.Errorf("run stopped: %v", err)
		default:
			return false, nil
		}
	})
}

// TestRun starts the controller as main does against a real API server: it makes the
// webhook certificate Secret, becomes leader, serves /readyz once the webhook server is
// up, takes an Alibaba EIP pool in hand through the emulator while AWS, configured
// without credentials, is reported on its pool instead of stopping the controller, and
// stops cleanly.
func TestRun(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "controller-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", e.Kubeconfig)
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", alibabaemu.AccessKeyID)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "emulator")
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	emu := httptest.NewServer(alibabaemu.New(eiptest.NewCloud()))
	defer emu.Close()
	health := testproc.FreeAddr(t)
	done := make(chan error, 1)
	go func() {
		o := options{
			namespace: ns.Name, service: "orbweaver-controller", configuration: "orbweaver-run-test",
			certSecret: "orbweaver-webhook-certs", certDir: t.TempDir(), healthAddr: health, metricsAddr: "0",
			webhookPort: testproc.FreePort(t), webhook: webhook.Config{EnableIPv4: true, EnableIPv6: true},
			statefulSet: true, autoPoolDefaultN: 1, gcEnabled: true, gc: ipam.DefaultGCConfig(),
			gcResync: time.Minute, reclaimPolicy: "Follow", clusterID: "run-test",
			eipClouds: map[string]*eip.Config{
				"alibaba": {Region: "cn-hangzhou", Endpoint: emu.URL},
				"aws":     {Region: "us-east-1", Endpoint: "http://127.0.0.1:1"},
			},
		}
		done <- run(ctx, o)
	}()
	if err := waitReadyz(health, 30*time.Second, done); err != nil {
		t.Fatal(err)
	}
	secret := &corev1.Secret{}
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "orbweaver-webhook-certs"}, secret); err != nil || len(secret.Data["tls.crt"]) == 0 {
		t.Fatalf("webhook certificate Secret: %v (%d bytes of tls.crt)", err, len(secret.Data["tls.crt"]))
	}
	testenv.WaitFor(t, "the leader Lease", func() (bool, error) {
		lease := &coordinationv1.Lease{}
		err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "orbweaver-controller"}, lease)
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", err
	})
	pools := map[string]string{"alibaba": "run-test-eip-alibaba", "aws": "run-test-eip-aws"}
	for provider, name := range pools {
		sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.IPPoolSpec{
			Subnet: "10.199.0.0/24", IPs: []v2beta1.IPOrRange{"10.199.0.10"},
			Orbweaver: &v2beta1.IPPoolOrbweaverSpec{EIP: &v2beta1.EIPSpec{Provider: provider, Mode: v2beta1.EIPAuto}},
		}}
		if err := e.Client.Create(ctx, sp); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = e.Client.Patch(context.Background(), sp, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
			_ = e.Client.Delete(context.Background(), sp)
		}()
	}
	testenv.WaitFor(t, "the EIP controller to take both pools in hand", func() (bool, error) {
		for provider, name := range pools {
			sp := &v2beta1.SpiderIPPool{}
			if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, sp); err != nil || !slices.Contains(sp.Finalizers, eipbinding.Finalizer) {
				return false, err
			}
			var c *metav1.Condition
			if sp.Status.Orbweaver != nil {
				c = meta.FindStatusCondition(sp.Status.Orbweaver.Conditions, v2beta1.IPPoolEIPReadyCondition)
			}
			switch {
			case c == nil:
				return false, fmt.Errorf("pool %s has no EIPReady condition", name)
			case provider == "alibaba" && c.Status != metav1.ConditionTrue,
				provider == "aws" && (c.Reason != v2beta1.EIPProviderMissingReason || !strings.Contains(c.Message, "did not start")):
				return false, fmt.Errorf("pool %s: EIPReady %s %s: %s", name, c.Status, c.Reason, c.Message)
			}
		}
		return true, nil
	})
	stopRun(t, cancel, done)
}

// TestRunRefusesSpiderPoolSchema: against an API server of its own that serves
// SpiderPool's CRDs (as after `helm install` over SpiderPool, which keeps them), the
// controller returns at once with the refusal and the command to run, before it writes
// anything (no certificate Secret); a Warning event on the pool CRD says the same.
func TestRunRefusesSpiderPoolSchema(t *testing.T) {
	own := spiderPoolAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := options{
		namespace: metav1.NamespaceDefault, service: "orbweaver-controller", configuration: "orbweaver-refuse-test",
		certSecret: "orbweaver-webhook-certs", certDir: t.TempDir(), healthAddr: testproc.FreeAddr(t), metricsAddr: "0",
		webhookPort: testproc.FreePort(t), webhook: webhook.Config{EnableIPv4: true, EnableIPv6: true},
		gc: ipam.DefaultGCConfig(), gcResync: time.Minute, reclaimPolicy: "Follow", clusterID: "refuse-test",
	}
	err := run(ctx, o)
	if !errors.Is(err, crdcheck.ErrSchema) || !strings.Contains(err.Error(), "orbweaver-controller refuses to start") ||
		!strings.Contains(err.Error(), "spiderippools.spiderpool.spidernet.io lacks spec.vlan, spec.orbweaver, status.orbweaver") ||
		!strings.Contains(err.Error(), crdcheck.Fix) {
		t.Fatalf("run = %v; want the refusal with what to run", err)
	}
	if err := own.Client.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: o.certSecret}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the certificate Secret after the refusal: %v; want NotFound", err)
	}
	var events corev1.EventList
	if err := own.Client.List(ctx, &events, client.InNamespace(metav1.NamespaceDefault)); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events.Items, func(ev corev1.Event) bool {
		return ev.InvolvedObject.Name == "spiderippools.spiderpool.spidernet.io" && ev.Type == corev1.EventTypeWarning &&
			ev.Source.Component == "orbweaver-controller" && strings.Contains(ev.Message, crdcheck.Fix)
	}) {
		t.Errorf("no Warning event from orbweaver-controller on the SpiderIPPool CRD: %+v", events.Items)
	}
}

// spiderPoolAPIServer starts an API server of the test's own that serves SpiderPool
// v1.2.2's CRDs, as after `helm install` over SpiderPool (which keeps them), and points
// KUBECONFIG at it; it stops with the test.
func spiderPoolAPIServer(t *testing.T) *testenv.Env {
	t.Helper()
	testenv.Require(t, env)
	own, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := own.Stop(); err != nil {
			t.Error(err)
		}
	})
	spiderPool := filepath.Join(own.Root, "pkg", "crdcheck", "testdata", "spiderpool-v1.2.2")
	if _, err := envtest.InstallCRDs(own.Config, envtest.CRDInstallOptions{Paths: []string{spiderPool}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", own.Kubeconfig)
	return own
}

// TestRunUpgradesSpiderPoolSchema: the same API server state (SpiderPool's CRDs, as
// `helm install` over SpiderPool leaves them) with --upgrade-crds, the chart's default:
// the controller puts this release's CRDs in place and starts (/readyz), and the API
// server then keeps orbweaver's fields.
func TestRunUpgradesSpiderPoolSchema(t *testing.T) {
	// run registers controllers and metrics process-wide, so a process runs it once:
	// TestRun has, so this test runs in a process of its own (this test binary again).
	if !inOwnProcess(t) {
		return
	}
	own := spiderPoolAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	health := testproc.FreeAddr(t)
	o := options{
		namespace: metav1.NamespaceDefault, service: "orbweaver-controller", configuration: "orbweaver-upgrade-test",
		certSecret: "orbweaver-webhook-certs", certDir: t.TempDir(), healthAddr: health, metricsAddr: "0",
		webhookPort: testproc.FreePort(t), webhook: webhook.Config{EnableIPv4: true, EnableIPv6: true},
		gc: ipam.DefaultGCConfig(), gcResync: time.Minute, reclaimPolicy: "Follow", clusterID: "upgrade-test",
		upgradeCRDs: true,
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, o) }()
	// A bound for a hang, not a measure: an API server of its own that has just replaced
	// three CRDs, on 2 cores shared with the rest of make test, took over 30 s once.
	if err := waitReadyz(health, 90*time.Second, done); err != nil {
		served := crdcheck.Ensure(ctx, crdcheck.Params{Client: own.Client, Component: "check"})
		t.Fatalf("%v (the served CRDs: %v)", err, served)
	}
	if err := crdcheck.Ensure(ctx, crdcheck.Params{Client: own.Client, Component: "check"}); err != nil {
		t.Errorf("after the controller started: %v", err)
	}
	testenv.WaitFor(t, "spec.orbweaver kept", func() (bool, error) {
		sp := &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{GenerateName: "upgraded-"}, Spec: v2beta1.IPPoolSpec{
			Subnet: "10.97.0.0/24", IPs: []v2beta1.IPOrRange{"10.97.0.10"},
			Orbweaver: &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptr.To(v2beta1.ReclaimNever)},
		}}
		if err := own.Client.Create(ctx, sp); err != nil {
			return false, err
		}
		defer func() { _ = own.Client.Delete(context.Background(), sp) }()
		return sp.Spec.Orbweaver != nil, fmt.Errorf("spec.orbweaver pruned")
	})
	stopRun(t, cancel, done)
}

// inOwnProcess runs the calling test again in a process of its own (this test binary,
// only that test) and reports whether this is that process: the parent waits for the
// child, fails with the end of its output unless it passes, and gets false. run
// registers controllers and metrics process-wide, so a process runs it only once.
func inOwnProcess(t *testing.T) bool {
	t.Helper()
	if os.Getenv("ORBWEAVER_TEST_CHILD") == t.Name() {
		return true
	}
	testenv.Require(t, env)
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), "ORBWEAVER_TEST_CHILD="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s in a process of its own: %v\n%s", t.Name(), err, lastLines(string(out), 40))
	}
	return false
}

// stopRun ends run's context (cancel) and fails the test if run, reporting on done,
// returns an error or has not returned 30s later.
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop within 30s of its context's end")
	}
}

// lastLines is the end of a child test process's output.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
