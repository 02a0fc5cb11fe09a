package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// countingProxy stands between every peer's API clients (agents, plugins, the floor's
// writers) and the API server, on 127.0.0.1, and counts the bytes of every response body
// it passes on: watch streams apart from the rest. That is what the
// peers' watchers actually receive, measured where they receive it.
// (apiserver_watch_events_sizes does not say it: the API server observes an event's size
// once per watch cache event, not once per watcher it sends it to; see docs/performance.md.)
//
// The proxy authenticates to the API server with the harness's admin credentials, so its
// clients need none. It serves TLS with a certificate of its own, so clients speak HTTP/2
// to it, one connection multiplexing each client's requests and watches, as they would
// to the API server (over plain HTTP client-go would fall back to HTTP/1.1 with two idle
// connections per host, and open and close one per request beyond that).
type countingProxy struct {
	srv   *http.Server
	ln    net.Listener
	host  string // https://127.0.0.1:port
	caPEM []byte // the proxy's self-signed certificate

	watchBytes, otherBytes atomic.Int64
	watches                atomic.Int64 // watch requests served (each a stream)

	mu      sync.Mutex
	byWatch map[string]int64 // watch bytes by resource
}

// startProxy starts a counting proxy in front of the API server that cfg reaches.
func startProxy(cfg *rest.Config) (*countingProxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("counting proxy: API server address %q: %w", cfg.Host, err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("counting proxy: transport: %w", err)
	}
	cert, caPEM, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("counting proxy: certificate: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("counting proxy: %w", err)
	}
	p := &countingProxy{ln: ln, host: "https://" + ln.Addr().String(), caPEM: caPEM, byWatch: map[string]int64{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport: transport,
		// Watch events go on at once, as the API server sends them.
		FlushInterval: -1,
		ModifyResponse: func(res *http.Response) error {
			watch := isWatch(res.Request.URL)
			if watch {
				p.watches.Add(1)
			}
			res.Body = &countingBody{ReadCloser: res.Body, add: func(n int) {
				if watch {
					p.watchBytes.Add(int64(n))
					p.mu.Lock()
					p.byWatch[resourceOf(res.Request.URL.Path)] += int64(n)
					p.mu.Unlock()
				} else {
					p.otherBytes.Add(int64(n))
				}
			}}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// A client that went away (a stopped agent's watch) is not worth a line.
			if !errors.Is(err, context.Canceled) {
				fmt.Fprintf(os.Stderr, "bench: counting proxy: %s %s: %v\n", r.Method, r.URL.Path, err)
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{
		Handler: rp, ReadHeaderTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12},
		// As the API server's default (--http2-max-streams-per-connection): every agent
		// of a process shares one connection, each of its watches a stream.
		HTTP2:    &http.HTTP2Config{MaxConcurrentStreams: 1000},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = p.srv.ServeTLS(ln, "", "") }()
	return p, nil
}

// selfSigned makes a certificate for 127.0.0.1 that signs itself, and its PEM.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "orbweaver bench proxy"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return cert, certPEM, err
}

// isWatch tells whether a request is a watch: ?watch=true (or 1), or the old /watch/ paths.
func isWatch(u *url.URL) bool {
	switch u.Query().Get("watch") {
	case "true", "1":
		return true
	}
	return strings.Contains(u.Path, "/watch/")
}

// resourceOf names the resource of an API path: ".../namespaces/ns/pods" -> "pods",
// "/apis/g/v/spiderippools" -> "spiderippools".
func resourceOf(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	// /api/v1/... or /apis/group/version/...
	i := 2
	if len(parts) > 0 && parts[0] == "apis" {
		i = 3
	}
	if i < len(parts) && parts[i] == "watch" {
		i++
	}
	if i+1 < len(parts) && parts[i] == "namespaces" && i+2 < len(parts) {
		i += 2
	}
	if i < len(parts) {
		return parts[i]
	}
	return path
}

type countingBody struct {
	io.ReadCloser
	add func(int)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.add(n)
	}
	return n, err
}

// proxyBytes is a snapshot of what the proxy passed on.
type proxyBytes struct {
	watch, other int64
	watches      int64
	byWatch      map[string]int64
}

func (p *countingProxy) snapshot() proxyBytes {
	p.mu.Lock()
	by := make(map[string]int64, len(p.byWatch))
	for k, v := range p.byWatch {
		by[k] = v
	}
	p.mu.Unlock()
	return proxyBytes{watch: p.watchBytes.Load(), other: p.otherBytes.Load(), watches: p.watches.Load(), byWatch: by}
}

func (b proxyBytes) sub(before proxyBytes) proxyBytes {
	out := proxyBytes{watch: b.watch - before.watch, other: b.other - before.other, watches: b.watches - before.watches, byWatch: map[string]int64{}}
	for k, v := range b.byWatch {
		if d := v - before.byWatch[k]; d != 0 {
			out.byWatch[k] = d
		}
	}
	return out
}

// Config is a client config that reaches the API server through the proxy, as the admin
// (the proxy's credentials), with no client-side rate limit.
func (p *countingProxy) Config() *rest.Config {
	return &rest.Config{Host: p.host, QPS: 100000, Burst: 100000, TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM}}
}

// WriteKubeconfig writes a kubeconfig for other processes that reaches the API server
// through the proxy, and returns its path.
func (p *countingProxy) WriteKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["bench"] = &clientcmdapi.Cluster{Server: p.host, CertificateAuthorityData: p.caPEM}
	cfg.AuthInfos["bench"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "bench"}
	cfg.CurrentContext = "bench"
	return clientcmd.WriteToFile(*cfg, path)
}

// Close stops the proxy; open watches end.
func (p *countingProxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = p.srv.Close()
	}
	return err
}
