package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestRun starts the controller as main does against a real API server: it makes the
// webhook certificate Secret, becomes leader, serves /readyz once the webhook server is
// up, and stops cleanly.
func TestRun(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "controller-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", e.Kubeconfig)
	health := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	done := make(chan error, 1)
	go func() {
		o := options{
			namespace: ns.Name, service: "orbweaver-controller", configuration: "orbweaver-run-test",
			certSecret: "orbweaver-webhook-certs", certDir: t.TempDir(), healthAddr: health, metricsAddr: "0",
			webhookPort: freePort(t), webhook: webhook.Config{EnableIPv4: true, EnableIPv6: true},
			statefulSet: true, autoPoolDefaultN: 1, gcEnabled: true, gc: ipam.DefaultGCConfig(),
			gcResync: time.Minute, reclaimPolicy: "Follow",
		}
		done <- run(ctx, o)
	}()
	testenv.WaitFor(t, "/readyz", func() (bool, error) {
		select {
		case err := <-done:
			t.Fatalf("run stopped: %v", err)
		default:
		}
		resp, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("/readyz: %s", resp.Status)
	})
	secret := &corev1.Secret{}
	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "orbweaver-webhook-certs"}, secret); err != nil || len(secret.Data["tls.crt"]) == 0 {
		t.Fatalf("webhook certificate Secret: %v (%d bytes of tls.crt)", err, len(secret.Data["tls.crt"]))
	}
	testenv.WaitFor(t, "the leader Lease", func() (bool, error) {
		lease := &coordinationv1.Lease{}
		err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "orbweaver-controller"}, lease)
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", err
	})
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
