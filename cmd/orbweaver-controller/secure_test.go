package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/http"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/internal/testproc"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

// TestRunProvidedCertsSecureMetrics runs the controller as the chart does with tls.method
// certManager or provided and metrics.secure: --manage-webhook-certs=false serves the
// certificate found in --webhook-cert-dir and writes no Secret; --metrics-secure serves
// /metrics over HTTPS only to a token the API server authenticates and authorizes for GET
// /metrics (401 without a token, 403 for a ServiceAccount without the right, 200 with).
func TestRunProvidedCertsSecureMetrics(t *testing.T) {
	// run registers controllers and metrics process-wide: a process of its own, as
	// TestRunUpgradesSpiderPoolSchema.
	if !inOwnProcess(t) {
		return
	}
	e := testenv.Require(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Setenv("KUBECONFIG", e.Kubeconfig)
	ns := metav1.NamespaceDefault

	// The certificate cert-manager (or the user) put in the mounted Secret.
	certDir := t.TempDir()
	certs, err := webhook.NewCerts([]string{"orbweaver-controller." + ns + ".svc"}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := certs.WriteTo(certDir); err != nil {
		t.Fatal(err)
	}

	health, metricsAddr, webhookPort := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreePort(t)
	o := options{
		namespace: ns, service: "orbweaver-controller", configuration: "orbweaver-secure-test",
		certSecret: "orbweaver-webhook-certs", certDir: certDir, certsGiven: true,
		healthAddr: health, metricsAddr: metricsAddr, metricsSecure: true,
		webhookHost: "127.0.0.1", webhookPort: webhookPort, webhook: webhook.Config{EnableIPv4: true, EnableIPv6: true},
		gc: ipam.DefaultGCConfig(), gcResync: time.Minute, reclaimPolicy: "Follow", clusterID: "secure-test",
	}
	done := make(chan error, 1)
	go func() { done <- run(ctx, o) }()
	if err := waitReadyz(health, 30*time.Second, done); err != nil {
		t.Fatal(err)
	}

	if err := e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.certSecret}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("Secret %s with --manage-webhook-certs=false: %v; want NotFound", o.certSecret, err)
	}
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", webhookPort), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("the webhook server: %v", err)
	}
	served := conn.ConnectionState().PeerCertificates[0].Raw
	conn.Close()
	if want := pemBody(t, certs.Cert); !bytes.Equal(served, want) {
		t.Error("the webhook server serves another certificate than --webhook-cert-dir's")
	}

	// Two ServiceAccounts: one allowed GET /metrics, one not.
	reader := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "secure-test-metrics-reader"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "secure-test-metrics-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}}}
	for _, obj := range []client.Object{reader, binding,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prometheus"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "someone"}}} {
		if err := e.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	token := func(sa string) string {
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
		if err := e.Client.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}, tr); err != nil {
			t.Fatalf("token of %s: %v", sa, err)
		}
		return tr.Status.Token
	}
	scraper := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, tt := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a ServiceAccount without the right", token("someone"), http.StatusForbidden},
		{"the metrics reader", token("prometheus"), http.StatusOK},
	} {
		// The RBAC caches may lag the binding just made: wait for the expected answer.
		testenv.WaitFor(t, "/metrics for "+tt.name, func() (bool, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+metricsAddr+"/metrics", nil)
			if err != nil {
				return false, err
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := scraper.Do(req)
			if err != nil {
				return false, err
			}
			resp.Body.Close()
			return resp.StatusCode == tt.want, fmt.Errorf("%s; want %d", resp.Status, tt.want)
		})
	}
	if resp, err := http.Get("http://" + metricsAddr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("/metrics answers over plain HTTP with --metrics-secure")
		}
	}

	stopRun(t, cancel, done)
}

// pemBody is the DER of the first PEM block.
func pemBody(t *testing.T, b []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatal("no PEM block")
	}
	return block.Bytes
}
