package wire

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// serve answers on a unix socket in t.TempDir() with h behind net/http's server, as
// the agent does.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "a.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return socket
}

// serveRaw answers every connection with f on the raw connection, once it has read the
// request's head.
func serveRaw(t *testing.T, f func(net.Conn)) string {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "a.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Read the request's head first, as the agent does before it answers:
				// answering before would race the client's write.
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				f(c)
			}()
		}
	}()
	return socket
}

func strp(s string) *string { return &s }

func TestClientAnswers(t *testing.T) {
	// An ADD answer above net/http's 4 KiB buffer goes out without a Content-Length;
	// the client reads it to the close.
	var big AddResult
	for i := 0; i < 200; i++ {
		big.Ips = append(big.Ips, &IPConfig{Address: strp("10.0.0.1/24"), Nic: "eth0", Pool: strp("pool-with-a-long-name")})
	}
	var gotMethod, gotPath, gotType string
	var gotBody Attachment
	socket := serve(t, func(w http.ResponseWriter, r *http.Request) {
		gotMethod, gotPath, gotType = r.Method, r.URL.Path, r.Header.Get("Content-Type")
		switch r.URL.Path {
		case "/v1/ipam/add":
			var args AddArgs
			_ = json.NewDecoder(r.Body).Decode(&args)
			gotBody = *args.Attachment
			_ = json.NewEncoder(w).Encode(big)
		case "/v1/ipam/del":
			w.WriteHeader(http.StatusNoContent)
		case "/v1/status":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ready":true}`))
		default:
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"code":11,"message":"the pool is busy"}`))
		}
	})
	c := NewClient(socket)
	ctx := context.Background()

	res, err := c.Add(ctx, &AddArgs{Attachment: &Attachment{PodName: strp("p"), PodNamespace: strp("ns")}})
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if len(res.Ips) != len(big.Ips) || *res.Ips[199].Pool != "pool-with-a-long-name" {
		t.Fatalf("Add decoded %d addresses", len(res.Ips))
	}
	if gotMethod != "POST" || gotPath != "/v1/ipam/add" || gotType != "application/json" || *gotBody.PodName != "p" {
		t.Fatalf("the agent saw %s %s (%s) for pod %v", gotMethod, gotPath, gotType, gotBody.PodName)
	}

	if err := c.Del(ctx, &Attachment{}); err != nil {
		t.Fatalf("Del answered 204: %v", err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Ready == nil || !*st.Ready || gotMethod != "GET" {
		t.Fatalf("Status: %+v, %v (method %s)", st, err, gotMethod)
	}

	err = c.Check(ctx, &CheckArgs{})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Payload == nil || *ae.Payload.Code != 11 {
		t.Fatalf("Check against a 409 with an Error body: %v", err)
	}
	if !strings.Contains(err.Error(), "the pool is busy") {
		t.Fatalf("the agent's message is lost: %v", err)
	}
}

func TestClientNoAnswer(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		socket func(t *testing.T) string
		ops    []string // the connection error may come at either step
	}{
		{"no socket", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.sock") }, []string{"dial"}},
		{"closed at once", func(t *testing.T) string { return serveRaw(t, func(net.Conn) {}) }, []string{"send", "receive"}},
		{"closed mid-head", func(t *testing.T) string {
			return serveRaw(t, func(c net.Conn) { _, _ = c.Write([]byte("HTTP/1.0 200 OK\r\nContent-")) })
		}, []string{"receive"}},
		{"not HTTP", func(t *testing.T) string {
			return serveRaw(t, func(c net.Conn) { _, _ = c.Write([]byte("SSH-2.0-OpenSSH\r\n\r\n")) })
		}, []string{"receive"}},
		{"chunked", func(t *testing.T) string {
			return serveRaw(t, func(c net.Conn) {
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"))
			})
		}, []string{"receive"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(tt.socket(t)).Status(ctx)
			var ce *ConnError
			if !errors.As(err, &ce) || !slices.Contains(tt.ops, ce.Op) {
				t.Fatalf("got %v, want a ConnError of %v", err, tt.ops)
			}
		})
	}

	t.Run("short body", func(t *testing.T) {
		socket := serveRaw(t, func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 40\r\n\r\n{\"ready\":"))
		})
		if _, err := NewClient(socket).Status(ctx); err == nil || !strings.Contains(err.Error(), "read the answer") {
			t.Fatalf("a body cut short: %v", err)
		}
	})
}

func TestClientGivesUpWithContext(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	socket := serveRaw(t, func(net.Conn) { <-hang })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := NewClient(socket).Status(ctx); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a hung agent past the deadline: %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call outlived its context by 10 s")
	}
}
