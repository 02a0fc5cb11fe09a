// Package testagent runs a real node agent (agent.Run) in the test process, the way the
// integration and workload tiers simulate a node's agent against a test API server.
package testagent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent"
)

// Start runs an agent with cfg until the test ends and returns, once the agent is ready
// (its caches synced), the path of its socket. cfg names the node and the API server
// (NodeName, RESTConfig); the Node object should exist. Start sets SocketPath (in a new
// short folder: a unix socket path holds at most 107 bytes, and t.TempDir() can be
// longer) and Ready; a cfg without a Log gets the test's log at verbosity 0 with -v, and
// none without. When the test ends the agent is stopped, and the test fails if it
// returns an error or takes more than 30s.
func Start(t testing.TB, cfg agent.Config) (socket string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "ow")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.SocketPath = filepath.Join(dir, "agent.sock")
	if cfg.Log.GetSink() == nil {
		cfg.Log = logr.Discard()
		if testing.Verbose() {
			cfg.Log = testr.NewWithInterface(t, testr.Options{Verbosity: 0})
		}
	}
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent %s: %v", cfg.NodeName, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("agent %s did not stop within 30s", cfg.NodeName)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent %s stopped before it was ready: %v", cfg.NodeName, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("agent %s not ready after 60s", cfg.NodeName)
	}
	return cfg.SocketPath
}
