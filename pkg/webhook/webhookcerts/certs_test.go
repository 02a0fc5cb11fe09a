package webhookcerts

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}

// TestEnsure: the first call makes a certificate, stores it in the Secret, writes it for
// the server and puts the CA into both webhook configurations; later calls reuse it;
// once a third of its validity is left it is renewed and the CA patched again; replicas
// racing on a fresh Secret end up with one certificate.
func TestEnsure(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "certs-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	mwc, vwc := webhook.Configurations("orbweaver-certs-test", func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns.Name, Name: "orbweaver-webhook", Path: &path}}
	})
	// Nothing may call these while the test runs (no server answers): they select no
	// object.
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}}
	}
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}}
	}
	for _, obj := range []client.Object{mwc, vwc} {
		if err := e.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Client.Delete(context.Background(), obj) })
	}
	clock := time.Now()
	hosts := []string{"orbweaver-webhook." + ns.Name + ".svc"}
	newManager := func(dir string) *Manager {
		return &Manager{Client: e.Client, Namespace: ns.Name, Secret: "orbweaver-webhook-certs", Hosts: hosts,
			CertDir: dir, Configuration: "orbweaver-certs-test", Validity: 90 * 24 * time.Hour, Now: func() time.Time { return clock }}
	}

	// Replicas racing on a fresh Secret.
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	got := make([]webhook.Certs, len(dirs))
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, dir := range dirs {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], errs[i] = newManager(dir).Ensure(ctx) }()
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i].CA, got[0].CA) {
			t.Fatalf("replicas %d and 0 ended with different CAs", i)
		}
		written, err := os.ReadFile(filepath.Join(dirs[i], "tls.crt"))
		if err != nil || !bytes.Equal(written, got[0].Cert) {
			t.Fatalf("replica %d wrote %d bytes of tls.crt (%v), want the Secret's certificate", i, len(written), err)
		}
	}
	first := got[0]
	wantCA := func(ca []byte) {
		t.Helper()
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(mwc), mwc); err != nil {
			t.Fatal(err)
		}
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(vwc), vwc); err != nil {
			t.Fatal(err)
		}
		for _, w := range mwc.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, ca) {
				t.Fatalf("mutating webhook %s has another caBundle", w.Name)
			}
		}
		for _, w := range vwc.Webhooks {
			if !bytes.Equal(w.ClientConfig.CABundle, ca) {
				t.Fatalf("validating webhook %s has another caBundle", w.Name)
			}
		}
	}
	wantCA(first.CA)

	// A month later the certificate is kept.
	clock = clock.Add(30 * 24 * time.Hour)
	again, err := newManager(t.TempDir()).Ensure(ctx)
	if err != nil || !bytes.Equal(again.Cert, first.Cert) {
		t.Fatalf("a month later: %v, certificate renewed: %t; want it kept", err, !bytes.Equal(again.Cert, first.Cert))
	}
	// With less than a third of its validity left, it is renewed.
	clock = clock.Add(40 * 24 * time.Hour)
	renewed, err := newManager(t.TempDir()).Ensure(ctx)
	if err != nil || bytes.Equal(renewed.Cert, first.Cert) {
		t.Fatalf("70 days in: %v, renewed: %t; want a new certificate", err, !bytes.Equal(renewed.Cert, first.Cert))
	}
	wantCA(renewed.CA)
	// A new host name renews it too.
	hosts = append(hosts, "orbweaver-webhook."+ns.Name+".svc.cluster.local")
	wider, err := newManager(t.TempDir()).Ensure(ctx)
	if err != nil || bytes.Equal(wider.Cert, renewed.Cert) {
		t.Fatalf("with a new host: %v, renewed: %t; want a new certificate", err, !bytes.Equal(wider.Cert, renewed.Cert))
	}
}

// TestRunPatchesLateConfigurations: the controller started before its webhook
// configurations existed; Run patches their CA soon after they appear, not after its
// 12-hour interval.
func TestRunPatchesLateConfigurations(t *testing.T) {
	e := testenv.Require(t, env)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "certs-late-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Client: e.Client, Namespace: ns.Name, Secret: "orbweaver-webhook-certs", Hosts: []string{"x." + ns.Name + ".svc"},
		CertDir: t.TempDir(), Configuration: "orbweaver-late-test", MissingRetry: 100 * time.Millisecond}
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx, 12*time.Hour, func(err error) { t.Errorf("Run: %v", err) }) }()
	defer func() { cancel(); <-done }()
	testenv.WaitFor(t, "the first Ensure", func() (bool, error) { return m.missing.Load(), nil })

	mwc, vwc := webhook.Configurations("orbweaver-late-test", func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns.Name, Name: "x", Path: &path}}
	})
	// No server answers: they select no object.
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}}
	}
	for i := range vwc.Webhooks {
		vwc.Webhooks[i].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"never": "matches"}}
	}
	for _, obj := range []client.Object{mwc, vwc} {
		if err := e.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Client.Delete(context.Background(), obj) })
	}
	testenv.WaitFor(t, "the CA in both late configurations", func() (bool, error) {
		for _, obj := range []client.Object{&admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{}} {
			if err := e.Client.Get(ctx, client.ObjectKey{Name: "orbweaver-late-test"}, obj); err != nil {
				return false, err
			}
			for _, cc := range clientConfigs(obj) {
				if len(cc.CABundle) == 0 {
					return false, nil
				}
			}
		}
		return true, nil
	})
}
