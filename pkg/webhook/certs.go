package webhook

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certs are a self-signed certificate authority and a serving certificate it signed, in
// PEM: what the webhook server needs when no one (cert-manager, the user) provides one.
// The CA goes into the webhook configurations' caBundle.
type Certs struct {
	CA, Cert, Key []byte
	// NotAfter is when the serving certificate expires.
	NotAfter time.Time
	// Hosts are the names and addresses the serving certificate is for.
	Hosts []string
}

// NewCerts makes a CA and a serving certificate for hosts (DNS names or IP addresses),
// valid from now for validity.
func NewCerts(hosts []string, now time.Time, validity time.Duration) (Certs, error) {
	if len(hosts) == 0 {
		return Certs{}, errors.New("webhook certificates: no host names")
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certs{}, fmt.Errorf("webhook certificates: %w", err)
	}
	notBefore, notAfter := now.Add(-time.Hour), now.Add(validity) // an hour of clock skew
	ca := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "orbweaver-webhook-ca"},
		NotBefore: notBefore, NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return Certs{}, fmt.Errorf("webhook certificates: CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certs{}, fmt.Errorf("webhook certificates: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Certs{}, fmt.Errorf("webhook certificates: %w", err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		return Certs{}, fmt.Errorf("webhook certificates: serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Certs{}, fmt.Errorf("webhook certificates: %w", err)
	}
	return Certs{
		CA:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		Key:      pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		NotAfter: notAfter,
		Hosts:    hosts,
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("webhook certificates: no randomness: " + err.Error())
	}
	return n
}

// WriteTo writes the serving certificate and key as tls.crt and tls.key, the names
// controller-runtime's webhook server reads from its CertDir (it reloads them when they
// change), and the CA as ca.crt.
func (c Certs) WriteTo(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("webhook certificates: %w", err)
	}
	for name, data := range map[string][]byte{"ca.crt": c.CA, "tls.crt": c.Cert, "tls.key": c.Key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return fmt.Errorf("webhook certificates: %w", err)
		}
	}
	return nil
}
