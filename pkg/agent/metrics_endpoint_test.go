package agent

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// TestAgentMetricsEndpoint: the binary's registry (no Config.Registry) exports the build,
// the Go runtime's and the process's metrics beside the agent's own.
func TestAgentMetricsEndpoint(t *testing.T) {
	e := testenv.Require(t, env)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startAgent(t, e, func(c *Config) { c.MetricsAddr = addr })
	var body string
	testenv.WaitFor(t, "/metrics", func() (bool, error) {
		resp, err := http.Get(fmt.Sprintf("http://%s/metrics", addr))
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil && resp.StatusCode == http.StatusOK, err
	})
	for _, want := range []string{`orbweaver_build_info{commit="`, `version="dev"} 1`, "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
