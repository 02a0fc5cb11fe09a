// Package webhookcerts gives the admission webhooks a serving certificate without
// cert-manager: a self-signed CA and certificate kept in a Secret (so every replica
// serves the same one), written where the webhook server reads them, with the CA patched
// into the webhook configurations, and renewed well before they expire.
package webhookcerts

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

// Manager keeps the webhooks' certificate.
type Manager struct {
	// Client reads and writes the Secret and the webhook configurations directly.
	Client client.Client
	// Namespace and Secret name the Secret holding ca.crt, tls.crt and tls.key.
	Namespace, Secret string
	// Hosts are the names the certificate is for: the webhook Service's DNS names
	// (<service>.<namespace>.svc and .svc.cluster.local).
	Hosts []string
	// CertDir is where the webhook server reads tls.crt and tls.key.
	CertDir string
	// Configuration names the Mutating- and ValidatingWebhookConfiguration whose caBundle
	// must hold the CA.
	Configuration string
	// Validity of a new certificate (default one year); it is renewed when less than a
	// third of it is left.
	Validity time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// MissingRetry is how soon Run looks again while a webhook configuration is missing
	// (DefaultMissingRetry when zero).
	MissingRetry time.Duration

	// missing is set when the last Ensure found a webhook configuration missing: Run
	// then looks again soon, not after its interval (the controller may start before
	// the configurations are created, and their empty caBundle would fail every call).
	missing atomic.Bool
}

// DefaultMissingRetry is how soon Run looks again while a webhook configuration is
// missing.
const DefaultMissingRetry = 10 * time.Second

// RBAC: a role of its own (orbweaver-controller-webhook-certs; the chart grants it with
// tls.method auto, the controller's --manage-webhook-certs): in the controller's
// namespace ("system" stands for it), create of Secrets (create cannot be limited to a
// name) and get and update of the certificate's; get and patch of the two webhook
// configurations. The names are the controller's defaults (--webhook-cert-secret,
// --webhook-configuration); the chart puts its own in their place.
//
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=create,roleName=orbweaver-controller-webhook-certs
// +kubebuilder:rbac:groups="",namespace=system,resources=secrets,verbs=get;update,resourceNames=orbweaver-webhook-certs,roleName=orbweaver-controller-webhook-certs
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;patch,resourceNames=orbweaver,roleName=orbweaver-controller-webhook-certs

// Ensure makes sure a valid certificate exists in the Secret (creating or renewing it),
// writes it to CertDir and puts the CA into the webhook configurations. Replicas may run
// it at once: the Secret is created or updated with compare-and-swap, and a replica that
// loses uses the winner's certificate.
func (m *Manager) Ensure(ctx context.Context) (webhook.Certs, error) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	validity := m.Validity
	if validity <= 0 {
		validity = 365 * 24 * time.Hour
	}
	var certs webhook.Certs
	// A write that loses to another replica's reads again and uses the winner's certificate.
	err := cas.Retry(ctx, wait.Backoff{Steps: 5}, cas.LostToAnotherWriter, func() error {
		secret := &corev1.Secret{}
		err := m.Client.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.Secret}, secret)
		switch {
		case err == nil:
			if c, ok := fromSecret(secret); ok && c.NotAfter.Sub(now()) > validity/3 && covers(c, m.Hosts) {
				certs = c // still good
				return nil
			}
			if certs, err = webhook.NewCerts(m.Hosts, now(), validity); err != nil {
				return err
			}
			secret.Data = secretData(certs)
			return m.Client.Update(ctx, secret) // carries the resourceVersion read
		case apierrors.IsNotFound(err):
			if certs, err = webhook.NewCerts(m.Hosts, now(), validity); err != nil {
				return err
			}
			return m.Client.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Secret},
				Type:       corev1.SecretTypeTLS, Data: secretData(certs),
			})
		}
		return err
	})
	switch {
	case cas.LostToAnotherWriter(err):
		return webhook.Certs{}, fmt.Errorf("webhook certificate Secret %s/%s: it kept changing under us: %w", m.Namespace, m.Secret, err)
	case err != nil:
		return webhook.Certs{}, fmt.Errorf("webhook certificate Secret %s/%s: %w", m.Namespace, m.Secret, err)
	}
	if err := certs.WriteTo(m.CertDir); err != nil {
		return webhook.Certs{}, err
	}
	return certs, m.patchCABundle(ctx, certs.CA)
}

// Run calls Ensure now and then every interval until ctx ends, logging through onError.
func (m *Manager) Run(ctx context.Context, interval time.Duration, onError func(error)) {
	for {
		if _, err := m.Ensure(ctx); err != nil && ctx.Err() == nil {
			onError(err)
		}
		wait := interval
		if m.missing.Load() {
			retry := m.MissingRetry
			if retry <= 0 {
				retry = DefaultMissingRetry
			}
			wait = min(wait, retry)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func secretData(c webhook.Certs) map[string][]byte {
	return map[string][]byte{"ca.crt": c.CA, corev1.TLSCertKey: c.Cert, corev1.TLSPrivateKeyKey: c.Key}
}

// fromSecret reads the certificates of a Secret; false when they are missing or broken.
func fromSecret(s *corev1.Secret) (webhook.Certs, bool) {
	c := webhook.Certs{CA: s.Data["ca.crt"], Cert: s.Data[corev1.TLSCertKey], Key: s.Data[corev1.TLSPrivateKeyKey]}
	block, _ := pem.Decode(c.Cert)
	if block == nil || len(c.CA) == 0 || len(c.Key) == 0 {
		return webhook.Certs{}, false
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return webhook.Certs{}, false
	}
	c.NotAfter = leaf.NotAfter
	c.Hosts = append(leaf.DNSNames, ipStrings(leaf)...)
	return c, true
}

func ipStrings(c *x509.Certificate) []string {
	out := make([]string, len(c.IPAddresses))
	for i, ip := range c.IPAddresses {
		out[i] = ip.String()
	}
	return out
}

// covers reports whether the certificate names every host.
func covers(c webhook.Certs, hosts []string) bool {
	have := map[string]bool{}
	for _, h := range c.Hosts {
		have[h] = true
	}
	for _, h := range hosts {
		if !have[h] {
			return false
		}
	}
	return true
}

// patchCABundle puts the CA into every webhook of both configurations; a configuration
// that does not exist yet (the chart creates them) is skipped.
func (m *Manager) patchCABundle(ctx context.Context, ca []byte) error {
	var errs []error
	missing := false
	defer func() { m.missing.Store(missing) }()
	for _, obj := range []client.Object{&admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{}} {
		err := m.Client.Get(ctx, client.ObjectKey{Name: m.Configuration}, obj)
		if apierrors.IsNotFound(err) {
			missing = true
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		orig := obj.DeepCopyObject().(client.Object)
		changed := false
		for _, cc := range clientConfigs(obj) {
			if !bytes.Equal(cc.CABundle, ca) {
				cc.CABundle, changed = ca, true
			}
		}
		if changed {
			errs = append(errs, m.Client.Patch(ctx, obj, client.MergeFrom(orig)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("put the webhook CA into %s: %w", m.Configuration, err)
	}
	return nil
}

// clientConfigs returns the client configuration of every webhook of a configuration.
func clientConfigs(obj client.Object) []*admissionregistrationv1.WebhookClientConfig {
	var out []*admissionregistrationv1.WebhookClientConfig
	switch c := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].ClientConfig)
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		for i := range c.Webhooks {
			out = append(out, &c.Webhooks[i].ClientConfig)
		}
	}
	return out
}
