package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// pki writes the cluster's certificates once: a CA, the API server's serving certificate,
// client certificates for each component (real Node,RBAC authorization), the kubelet's
// serving certificate, the service-account key pair, and a kubeconfig per client.
type pki struct {
	dir    string
	server string // https://<node ip>:6443
	caCert *x509.Certificate
	caKey  crypto.Signer
}

func (p *pki) path(name string) string { return filepath.Join(p.dir, name) }

func (p *pki) ensure(nodeName string, nodeIP net.IP) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	if err := p.ensureCA(); err != nil {
		return err
	}
	serving := []struct {
		name  string
		cn    string
		ips   []net.IP
		names []string
	}{
		{"apiserver", "kube-apiserver", []net.IP{nodeIP, net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
			[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{"kubelet-serving", "system:node:" + nodeName, []net.IP{nodeIP}, []string{nodeName}},
	}
	for _, s := range serving {
		if p.exists(s.name + ".crt") {
			continue
		}
		if err := p.issue(s.name, pkix.Name{CommonName: s.cn}, s.ips, s.names, x509.ExtKeyUsageServerAuth); err != nil {
			return err
		}
	}
	clients := []struct {
		name string
		cn   string
		org  string
	}{
		{"admin", "orbweaver-admin", "system:masters"},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"},
		{"controller-manager", "system:kube-controller-manager", ""},
		{"scheduler", "system:kube-scheduler", ""},
		{"kubelet", "system:node:" + nodeName, "system:nodes"},
		{"kube-proxy", "system:kube-proxy", ""},
	}
	for _, c := range clients {
		if p.exists(c.name + ".crt") {
			continue
		}
		subject := pkix.Name{CommonName: c.cn}
		if c.org != "" {
			subject.Organization = []string{c.org}
		}
		if err := p.issue(c.name, subject, nil, nil, x509.ExtKeyUsageClientAuth); err != nil {
			return err
		}
		if c.name == "apiserver-kubelet-client" {
			continue
		}
		if err := p.kubeconfig(c.name); err != nil {
			return err
		}
	}
	if p.exists("sa.key") {
		return nil
	}
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.path("sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(sa)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(p.path("sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func (p *pki) exists(name string) bool {
	_, err := os.Stat(p.path(name))
	return err == nil
}

// ensureCA loads the CA, making it first when there is none.
func (p *pki) ensureCA() error {
	if p.exists("ca.crt") {
		return p.loadCA()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orbweaver-local-cluster-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := writePair(p.path("ca"), der, key); err != nil {
		return err
	}
	return p.loadCA()
}

func (p *pki) loadCA() error {
	data, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("%s: no certificate", p.path("ca.crt"))
	}
	if p.caCert, err = x509.ParseCertificate(block.Bytes); err != nil {
		return err
	}
	keyData, err := os.ReadFile(p.path("ca.key"))
	if err != nil {
		return err
	}
	kb, _ := pem.Decode(keyData)
	if kb == nil {
		return fmt.Errorf("%s: no key", p.path("ca.key"))
	}
	k, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return err
	}
	p.caKey = k
	return nil
}

var serial = time.Now().UnixNano()

func (p *pki) issue(name string, subject pkix.Name, ips []net.IP, names []string, usage x509.ExtKeyUsage) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: ips, DNSNames: names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		return err
	}
	return writePair(p.path(name), der, key)
}

func writePair(base string, der []byte, key *ecdsa.PrivateKey) error {
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
}

// kubeconfig writes <name>.kubeconfig for the client certificate <name>.
func (p *pki) kubeconfig(name string) error {
	ca, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return err
	}
	crt, err := os.ReadFile(p.path(name + ".crt"))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(p.path(name + ".key"))
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: p.server, CertificateAuthorityData: ca}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name}
	cfg.CurrentContext = "local"
	return clientcmd.WriteToFile(*cfg, p.path(name+".kubeconfig"))
}
