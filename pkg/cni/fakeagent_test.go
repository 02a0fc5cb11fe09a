package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// reply is what the fake agent answers on one path.
type reply struct {
	status int    // 0 means 200
	body   any    // JSON-encoded; nil sends no body
	raw    string // sent as is instead of body
	hang   bool
}

// fakeAgent is orbweaver-agent's wire protocol (pkg/agent/api/openapi.yaml) on a
// unix socket in t.TempDir(): JSON bodies, errors as the Error model with a non-200
// status.
type fakeAgent struct {
	socket string

	mu      sync.Mutex
	replies map[string]reply
	bodies  map[string][]byte // the last request body per path
	calls   map[string]int
}

// agentErr is the Error model as the agent sends it.
func agentErr(code int32, reason, msg string) map[string]any {
	return map[string]any{"code": code, "reason": reason, "message": msg}
}

func defaultAddResult() map[string]any {
	return map[string]any{
		"ips": []map[string]any{
			{"version": 4, "address": "10.6.0.10/16", "gateway": "10.6.0.1", "pool": "v4-a", "nic": "eth0"},
			{"version": 6, "address": "fd00:6::10/64", "gateway": "fd00:6::1", "pool": "v6-a", "nic": "eth0"},
			{"version": 4, "address": "10.7.0.10/16", "gateway": "10.7.0.1", "pool": "v4-b", "nic": "net1"},
		},
		"routes": []map[string]any{
			{"ifName": "eth0", "dst": "10.96.0.0/12", "gw": "10.6.0.254"},
			{"ifName": "net1", "dst": "10.97.0.0/16", "gw": "10.7.0.254"},
		},
	}
}

func startAgent(t *testing.T, replies map[string]reply) *fakeAgent {
	t.Helper()
	a := &fakeAgent{
		socket: filepath.Join(t.TempDir(), "agent.sock"),
		replies: map[string]reply{
			"/v1/ipam/add":   {body: defaultAddResult()},
			"/v1/ipam/del":   {},
			"/v1/ipam/check": {},
			"/v1/ipam/gc":    {body: map[string]any{"released": 2}},
			"/v1/status":     {body: map[string]any{"ready": true}},
		},
		bodies: map[string][]byte{},
		calls:  map[string]int{},
	}
	for p, r := range replies {
		a.replies[p] = r
	}
	ln, err := net.Listen("unix", a.socket)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := http.MethodPost
		if r.URL.Path == "/v1/status" {
			want = http.MethodGet
		}
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		rep, ok := a.replies[r.URL.Path]
		a.bodies[r.URL.Path] = body
		a.calls[r.URL.Path]++
		a.mu.Unlock()
		switch {
		case !ok:
			writeJSON(w, http.StatusNotFound, agentErr(999, "Internal", "no such path "+r.URL.Path))
			return
		case r.Method != want:
			writeJSON(w, http.StatusMethodNotAllowed, agentErr(999, "Internal", "method "+r.Method))
			return
		case r.Method == http.MethodPost && r.Header.Get("Content-Type") != "application/json":
			writeJSON(w, http.StatusUnsupportedMediaType, agentErr(999, "Internal", "content type "+r.Header.Get("Content-Type")))
			return
		case rep.hang:
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		status := rep.status
		if status == 0 {
			status = http.StatusOK
		}
		if rep.raw != "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, rep.raw)
			return
		}
		writeJSON(w, status, rep.body)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		close(stop)
		_ = srv.Close()
	})
	return a
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if body != nil {
		_ = json.NewEncoder(w).Encode(body)
	}
}

// body decodes the last request body sent to path into v.
func (a *fakeAgent) body(t *testing.T, path string, v any) {
	t.Helper()
	a.mu.Lock()
	b, ok := a.bodies[path]
	a.mu.Unlock()
	if !ok {
		t.Fatalf("the agent got no request on %s", path)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("request body on %s: %v: %s", path, err, b)
	}
}

func (a *fakeAgent) callCount(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[path]
}

// netConf is a network config as a runtime passes it to the IPAM plugin, with
// ipam keys from ipam overriding the defaults below (a nil value deletes the key).
func netConf(t *testing.T, cniVersion, socket string, ipam map[string]any) []byte {
	t.Helper()
	section := map[string]any{
		"type":                  "orbweaver",
		"ipam_unix_socket_path": socket,
		"log_file_path":         filepath.Join(t.TempDir(), "log", "orbweaver.log"),
		"log_level":             "debug",
		"default_ipv4_ippool":   []string{"v4-a", "v4-b"},
		"default_ipv6_ippool":   []string{"v6-a"},
		"match_master_subnet":   false, // a SpiderPool key orbweaver ignores
	}
	for k, v := range ipam {
		if v == nil {
			delete(section, k)
		} else {
			section[k] = v
		}
	}
	b, err := json.Marshal(map[string]any{
		"cniVersion": cniVersion,
		"name":       "macvlan-net",
		"type":       "macvlan",
		"master":     "ens256",
		"ipam":       section,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const podArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=0b5b3f5e-uid"

func cmdArgs(conf []byte) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: "c0ffee",
		Netns:       "/var/run/netns/cni-1234",
		IfName:      "eth0",
		Args:        podArgs,
		Path:        "/opt/cni/bin",
		StdinData:   conf,
	}
}

// cniError asserts err is a *types.Error with the code and returns it.
func cniError(t *testing.T, err error, code uint) *types.Error {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want a *types.Error with code %d", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("got code %d (%q, details %q), want %d", e.Code, e.Msg, e.Details, code)
	}
	t.Logf("code %d: %s (details %q)", e.Code, e.Msg, e.Details)
	return e
}

// plugin returns a Plugin whose stdout is the returned buffer.
func plugin() (Plugin, *bytes.Buffer) {
	var out bytes.Buffer
	return Plugin{Stdout: &out}, &out
}
