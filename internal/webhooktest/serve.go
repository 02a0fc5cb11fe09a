// Package webhooktest serves orbweaver's admission webhooks to a test API server.
package webhooktest

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

// Serve runs webhook.SetupWithManager's webhooks on 127.0.0.1 with certificates from
// webhook.NewCerts, registers them with the API server by URL (a cluster uses a
// Service), and waits until the API server calls them. Everything stops with the test.
func Serve(t *testing.T, e *testenv.Env, serializer webhook.Serializer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	certs, err := webhook.NewCerts([]string{"127.0.0.1"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := certs.WriteTo(dir); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          ctrlwebhook.NewServer(ctrlwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir}),
	})
	if err != nil {
		t.Fatal(err)
	}
	p := webhook.Params{Config: webhook.Config{EnableIPv4: true, EnableIPv6: true}, Reader: mgr.GetAPIReader(), Serializer: serializer}
	if err := webhook.SetupWithManager(ctx, mgr, p); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	name := fmt.Sprintf("orbweaver-test-%d", port)
	mwc, vwc := webhook.Configurations(name, func(path string) admissionregistrationv1.WebhookClientConfig {
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, path)
		return admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: certs.CA}
	})
	for _, obj := range []client.Object{mwc, vwc} {
		if err := e.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, obj := range []client.Object{mwc, vwc} {
			_ = e.Client.Delete(context.Background(), obj)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook manager: %v", err)
		}
	})
	// The API server calls the webhooks once it has seen the configurations and the
	// server answers: wait until a dry-run create comes back defaulted.
	testenv.WaitFor(t, "the webhooks to serve", func() (bool, error) {
		probe := &v2beta1.SpiderReservedIP{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v2beta1.ReservedIPSpec{IPs: []v2beta1.IPOrRange{"192.0.2.9"}}}
		err := e.Client.Create(ctx, probe, client.DryRunAll)
		return err == nil && probe.Spec.IPVersion != nil, err
	})
}
