package cni

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types040 "github.com/containernetworking/cni/pkg/types/040"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/wire"
)

// route is a types.Route in comparable form.
type route struct{ dst, gw string }

func TestAddPrintsResultInConfigVersion(t *testing.T) {
	agent := startAgent(t, nil)
	wantIPs := []struct{ addr, gw string }{{"10.6.0.10/16", "10.6.0.1"}, {"fd00:6::10/64", "fd00:6::1"}}
	wantRoutes := []route{{"10.96.0.0/12", "10.6.0.254"}, {"0.0.0.0/0", "10.6.0.1"}, {"::/0", "fd00:6::1"}}

	for _, v := range SupportedVersions() {
		t.Run(v, func(t *testing.T) {
			p, out := plugin()
			if err := p.Add(cmdArgs(netConf(t, v, agent.socket, nil))); err != nil {
				t.Fatal(err)
			}
			var ips []struct{ addr, gw string }
			var routes []route
			var ifaces int
			switch v {
			case "0.3.1", "0.4.0":
				var r types040.Result
				decodeStrict(t, out.Bytes(), &r)
				if r.CNIVersion != v {
					t.Errorf("cniVersion %q, want %q", r.CNIVersion, v)
				}
				for _, c := range r.IPs {
					ips = append(ips, struct{ addr, gw string }{c.Address.String(), c.Gateway.String()})
				}
				routes = routesOf(r.Routes)
				ifaces = len(r.Interfaces)
			default:
				var r types100.Result
				decodeStrict(t, out.Bytes(), &r)
				if r.CNIVersion != v {
					t.Errorf("cniVersion %q, want %q", r.CNIVersion, v)
				}
				for _, c := range r.IPs {
					ips = append(ips, struct{ addr, gw string }{c.Address.String(), c.Gateway.String()})
				}
				routes = routesOf(r.Routes)
				ifaces = len(r.Interfaces)
			}
			if !slices.Equal(ips, wantIPs) {
				t.Errorf("IPs %v, want %v", ips, wantIPs)
			}
			if !slices.Equal(routes, wantRoutes) {
				t.Errorf("routes %v, want %v", routes, wantRoutes)
			}
			if ifaces != 0 {
				t.Errorf("%d interfaces; an IPAM plugin returns none", ifaces)
			}
		})
	}
}

// decodeStrict parses the whole of b as one JSON value into v.
func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not a %T: %v\n%s", v, err, b)
	}
	if dec.More() {
		t.Fatalf("stdout has more than one JSON value:\n%s", b)
	}
}

func routesOf(rs []*types.Route) []route {
	var out []route
	for _, r := range rs {
		gw := ""
		if r.GW != nil {
			gw = r.GW.String()
		}
		out = append(out, route{r.Dst.String(), gw})
	}
	return out
}

func TestAddRoutesAndGateways(t *testing.T) {
	ip := func(addr, gw, nic string) map[string]any {
		return map[string]any{"version": 4, "address": addr, "gateway": gw, "pool": "p", "nic": nic}
	}
	tests := []struct {
		name         string
		cleanGateway bool
		ips          []map[string]any
		routes       []map[string]any
		want         []route
	}{
		{
			name: "default route per family with a gateway",
			ips: []map[string]any{
				ip("10.6.0.10/16", "10.6.0.1", "eth0"),
				{"version": 6, "address": "fd00::10/64", "gateway": "fd00::1", "pool": "p6"},
			},
			want: []route{{"0.0.0.0/0", "10.6.0.1"}, {"::/0", "fd00::1"}},
		},
		{
			name:         "clean_gateway adds none",
			cleanGateway: true,
			ips:          []map[string]any{ip("10.6.0.10/16", "10.6.0.1", "eth0")},
			routes:       []map[string]any{{"ifName": "eth0", "dst": "10.96.0.0/12", "gw": "10.6.0.254"}},
			want:         []route{{"10.96.0.0/12", "10.6.0.254"}},
		},
		{
			name: "no gateway, no default route",
			ips:  []map[string]any{ip("10.6.0.10/16", "", "eth0")},
		},
		{
			name: "agent's default route is not doubled",
			ips:  []map[string]any{ip("10.6.0.10/16", "10.6.0.1", "eth0")},
			routes: []map[string]any{
				{"ifName": "eth0", "dst": "0.0.0.0/0", "gw": "10.6.0.2"},
			},
			want: []route{{"0.0.0.0/0", "10.6.0.2"}},
		},
		{
			name: "one default route for two IPs of a family",
			ips:  []map[string]any{ip("10.6.0.10/16", "10.6.0.1", "eth0"), ip("10.8.0.10/16", "10.8.0.1", "")},
			want: []route{{"0.0.0.0/0", "10.6.0.1"}},
		},
		{
			name: "other interfaces' routes and IPs are left out",
			ips:  []map[string]any{ip("10.6.0.10/16", "", "eth0"), ip("10.7.0.10/16", "10.7.0.1", "net1")},
			routes: []map[string]any{
				{"ifName": "net1", "dst": "10.97.0.0/16"},
				{"dst": "192.168.0.0/16"},
				{"ifName": "eth0", "dst": "10.98.1.0/24"},
			},
			want: []route{{"192.168.0.0/16", ""}, {"10.98.1.0/24", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := startAgent(t, map[string]reply{"/v1/ipam/add": {body: map[string]any{"ips": tt.ips, "routes": tt.routes}}})
			p, out := plugin()
			err := p.Add(cmdArgs(netConf(t, "1.1.0", agent.socket, map[string]any{"clean_gateway": tt.cleanGateway})))
			if err != nil {
				t.Fatal(err)
			}
			var r types100.Result
			decodeStrict(t, out.Bytes(), &r)
			if got := routesOf(r.Routes); !slices.Equal(got, tt.want) {
				t.Errorf("routes %v, want %v", got, tt.want)
			}
			var sent wire.AddArgs
			agent.body(t, "/v1/ipam/add", &sent)
			if sent.CleanGateway != tt.cleanGateway {
				t.Errorf("sent cleanGateway %v, want %v", sent.CleanGateway, tt.cleanGateway)
			}
		})
	}
}

func TestAddSendsAttachmentAndPools(t *testing.T) {
	agent := startAgent(t, nil)
	p, _ := plugin()
	if err := p.Add(cmdArgs(netConf(t, "1.0.0", agent.socket, nil))); err != nil {
		t.Fatal(err)
	}
	var sent wire.AddArgs
	agent.body(t, "/v1/ipam/add", &sent)
	a := sent.Attachment
	if a == nil {
		t.Fatal("no attachment sent")
	}
	got := []string{*a.ContainerID, *a.IfName, a.NetNamespace, *a.PodNamespace, *a.PodName, a.PodUID, a.NetworkName}
	want := []string{"c0ffee", "eth0", "/var/run/netns/cni-1234", "team-a", "web-0", "0b5b3f5e-uid", "macvlan-net"}
	if !slices.Equal(got, want) {
		t.Errorf("attachment %q, want %q", got, want)
	}
	if !slices.Equal(sent.DefaultIPv4IPPool, []string{"v4-a", "v4-b"}) || !slices.Equal(sent.DefaultIPv6IPPool, []string{"v6-a"}) {
		t.Errorf("pools %q %q", sent.DefaultIPv4IPPool, sent.DefaultIPv6IPPool)
	}
}

func TestAddBadAnswer(t *testing.T) {
	tests := []struct {
		name string
		body any
		raw  string
	}{
		{"no IP for the interface", map[string]any{"ips": []map[string]any{{"version": 4, "address": "10.0.0.2/24", "pool": "p", "nic": "net1"}}}, ""},
		{"address without prefix", map[string]any{"ips": []map[string]any{{"version": 4, "address": "10.0.0.2", "pool": "p"}}}, ""},
		{"gateway of the other family", map[string]any{"ips": []map[string]any{{"version": 4, "address": "10.0.0.2/24", "gateway": "fd00::1", "pool": "p"}}}, ""},
		{"bad route", map[string]any{"ips": []map[string]any{{"version": 4, "address": "10.0.0.2/24", "pool": "p"}}, "routes": []map[string]any{{"dst": "nope"}}}, ""},
		{"not JSON", nil, "]["},
		{"a string", "ok", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := startAgent(t, map[string]reply{"/v1/ipam/add": {body: tt.body, raw: tt.raw}})
			p, out := plugin()
			cniError(t, p.Add(cmdArgs(netConf(t, "1.1.0", agent.socket, nil))), types.ErrInternal)
			if out.Len() != 0 {
				t.Errorf("stdout %q after an error", out)
			}
		})
	}
}

// Each command maps the agent's Error model to a CNI error with the same code,
// the message, and the reason as details.
func TestAgentErrorModel(t *testing.T) {
	commands := []struct {
		name string
		path string
		run  func(Plugin, *skel.CmdArgs) error
	}{
		{"ADD", "/v1/ipam/add", Plugin.Add},
		{"DEL", "/v1/ipam/del", Plugin.Del},
		{"CHECK", "/v1/ipam/check", Plugin.Check},
		{"GC", "/v1/ipam/gc", Plugin.GC},
	}
	tests := []struct {
		name     string
		status   int
		body     any
		wantCode uint
		wantMsg  string
		wantRsn  string
	}{
		{"try again", 503, agentErr(11, "Conflict", "pool v4-a changed, retry"), 11, "pool v4-a changed, retry", "Conflict"},
		{"config", 400, agentErr(7, "UnknownPool", "pool v4-z does not exist"), 7, "pool v4-z does not exist", "UnknownPool"},
		{"exhausted", 500, agentErr(999, "PoolExhausted", "pools v4-a, v4-b have no free IP"), 999, "pools v4-a, v4-b have no free IP", "PoolExhausted"},
		{"code 0 is internal", 500, agentErr(0, "", "odd"), 999, "odd", ""},
		{"no body", 500, nil, 999, "HTTP 500", ""},
	}
	for _, c := range commands {
		for _, tt := range tests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				agent := startAgent(t, map[string]reply{c.path: {status: tt.status, body: tt.body}})
				conf := netConf(t, "1.1.0", agent.socket, nil)
				if c.name == "CHECK" {
					conf = withPrevResult(t, conf, prevResult100)
				}
				p, _ := plugin()
				e := cniError(t, c.run(p, cmdArgs(conf)), tt.wantCode)
				if !strings.Contains(e.Msg, tt.wantMsg) || e.Details != tt.wantRsn {
					t.Errorf("got %q / %q, want message %q and details %q", e.Msg, e.Details, tt.wantMsg, tt.wantRsn)
				}
			})
		}
	}
}

func TestAgentUnreachable(t *testing.T) {
	commands := []struct {
		name string
		run  func(Plugin, *skel.CmdArgs) error
	}{
		{"ADD", Plugin.Add},
		{"DEL", Plugin.Del},
		{"GC", Plugin.GC},
	}
	tests := []struct {
		name    string
		socket  func(t *testing.T) string
		timeout string
		want    []string
	}{
		{
			name:   "socket missing",
			socket: func(t *testing.T) string { return filepath.Join(t.TempDir(), "missing.sock") },
			want:   []string{"missing.sock", "no such file", "orbweaver-agent DaemonSet", "kubectl -n kube-system logs ds/orbweaver-agent"},
		},
		{
			name: "connection refused",
			socket: func(t *testing.T) string {
				path := filepath.Join(t.TempDir(), "stale.sock")
				ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
				if err != nil {
					t.Fatal(err)
				}
				ln.SetUnlinkOnClose(false)
				_ = ln.Close()
				return path
			},
			want: []string{"stale.sock", "connection refused", "kubectl -n kube-system logs ds/orbweaver-agent"},
		},
		{
			name: "agent never answers",
			socket: func(t *testing.T) string {
				return startAgent(t, map[string]reply{
					"/v1/ipam/add": {hang: true}, "/v1/ipam/del": {hang: true}, "/v1/ipam/gc": {hang: true},
				}).socket
			},
			timeout: "200ms",
			want:    []string{"did not answer", "within 200ms", "ipam.timeout"},
		},
	}
	for _, c := range commands {
		for _, tt := range tests {
			t.Run(c.name+"/"+tt.name, func(t *testing.T) {
				ipam := map[string]any{}
				if tt.timeout != "" {
					ipam["timeout"] = tt.timeout
				}
				p, out := plugin()
				e := cniError(t, c.run(p, cmdArgs(netConf(t, "1.1.0", tt.socket(t), ipam))), types.ErrTryAgainLater)
				for _, w := range tt.want {
					if !strings.Contains(e.Msg, w) {
						t.Errorf("message %q does not contain %q", e.Msg, w)
					}
				}
				if out.Len() != 0 {
					t.Errorf("stdout %q after an error", out)
				}
			})
		}
	}
}

func TestDel(t *testing.T) {
	tests := []struct {
		name      string
		args      string
		netns     string
		wantCalls int
	}{
		{"pod args", podArgs, "/var/run/netns/cni-1234", 1},
		{"no netns (container gone)", podArgs, "", 1},
		{"no pod args: nothing was allocated", "IgnoreUnknown=1", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := startAgent(t, nil)
			args := cmdArgs(netConf(t, "1.1.0", agent.socket, nil))
			args.Args, args.Netns = tt.args, tt.netns
			p, out := plugin()
			if err := p.Del(args); err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Errorf("DEL printed %q", out)
			}
			if got := agent.callCount("/v1/ipam/del"); got != tt.wantCalls {
				t.Fatalf("%d calls to del, want %d", got, tt.wantCalls)
			}
			if tt.wantCalls == 0 {
				return
			}
			var a wire.Attachment
			agent.body(t, "/v1/ipam/del", &a)
			got := []string{*a.ContainerID, *a.IfName, a.NetNamespace, *a.PodNamespace, *a.PodName, a.PodUID, a.NetworkName}
			want := []string{"c0ffee", "eth0", tt.netns, "team-a", "web-0", "0b5b3f5e-uid", "macvlan-net"}
			if !slices.Equal(got, want) {
				t.Errorf("attachment %q, want %q", got, want)
			}
		})
	}
}

const prevResult100 = `{"cniVersion":"1.0.0",
	"interfaces":[{"name":"veth1","mac":"aa:bb:cc:dd:ee:ff"},{"name":"eth0","sandbox":"/var/run/netns/cni-1234"}],
	"ips":[{"interface":1,"address":"10.6.0.10/16","gateway":"10.6.0.1"},
	       {"interface":0,"address":"169.254.1.1/32"},
	       {"address":"fd00:6::10/64"}]}`

const prevResult040 = `{"cniVersion":"0.4.0",
	"ips":[{"version":"4","address":"10.6.0.10/16","gateway":"10.6.0.1"}]}`

func withPrevResult(t *testing.T, conf []byte, prev string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	m["prevResult"] = json.RawMessage(prev)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		version  string
		prev     string
		wantIPs  []string
		wantCode uint
	}{
		{"1.0.0 with interfaces", "1.0.0", prevResult100, []string{"10.6.0.10/16", "fd00:6::10/64"}, 0},
		{"0.4.0", "0.4.0", prevResult040, []string{"10.6.0.10/16"}, 0},
		{"no prevResult", "1.1.0", "", nil, types.ErrInvalidNetworkConfig},
		{"bad prevResult", "1.1.0", `{"ips":[{"address":"nope"}]}`, nil, types.ErrInvalidNetworkConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := startAgent(t, nil)
			conf := netConf(t, tt.version, agent.socket, nil)
			if tt.prev != "" {
				conf = withPrevResult(t, conf, tt.prev)
			}
			p, out := plugin()
			err := p.Check(cmdArgs(conf))
			if tt.wantCode != 0 {
				cniError(t, err, tt.wantCode)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Errorf("CHECK printed %q", out)
			}
			var sent wire.CheckArgs
			agent.body(t, "/v1/ipam/check", &sent)
			if !slices.Equal(sent.Ips, tt.wantIPs) {
				t.Errorf("sent ips %q, want %q", sent.Ips, tt.wantIPs)
			}
			if sent.Attachment == nil || *sent.Attachment.PodName != "web-0" || *sent.Attachment.ContainerID != "c0ffee" {
				t.Errorf("attachment %+v", sent.Attachment)
			}
		})
	}
}

func TestGC(t *testing.T) {
	tests := []struct {
		name  string
		valid any
		want  []string // containerID/ifName
	}{
		{"two attachments", []map[string]string{{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}}, []string{"c1/eth0", "c2/net1"}},
		{"none valid", []map[string]string{}, []string{}},
		{"key absent", nil, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := startAgent(t, nil)
			var m map[string]any
			if err := json.Unmarshal(netConf(t, "1.1.0", agent.socket, nil), &m); err != nil {
				t.Fatal(err)
			}
			if tt.valid != nil {
				m["cni.dev/valid-attachments"] = tt.valid
			}
			conf, _ := json.Marshal(m)
			p, out := plugin()
			if err := p.GC(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf}); err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Errorf("GC printed %q", out)
			}
			var raw map[string]json.RawMessage
			agent.body(t, "/v1/ipam/gc", &raw)
			if string(raw["validAttachments"]) == "null" {
				t.Error("validAttachments sent as null; the agent must see an explicit list")
			}
			var sent wire.GCArgs
			agent.body(t, "/v1/ipam/gc", &sent)
			if sent.NetworkName == nil || *sent.NetworkName != "macvlan-net" {
				t.Errorf("networkName %v, want macvlan-net", sent.NetworkName)
			}
			got := []string{}
			for _, a := range sent.ValidAttachments {
				got = append(got, *a.ContainerID+"/"+*a.IfName)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("validAttachments %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name    string
		reply   *reply
		socket  string // overrides the fake agent's
		wantErr bool
		want    []string
		details string
	}{
		{name: "ready", reply: &reply{body: map[string]any{"ready": true}}},
		{
			name:    "not ready with reasons",
			reply:   &reply{body: map[string]any{"ready": false, "reasons": []string{"pool cache not synced", "no SpiderIPPool for IPv4"}}},
			wantErr: true, want: []string{"not ready", "pool cache not synced; no SpiderIPPool for IPv4"},
		},
		{
			name:    "error model",
			reply:   &reply{status: 503, body: agentErr(11, "NotReady", "informers not synced")},
			wantErr: true, want: []string{"informers not synced"}, details: "NotReady",
		},
		{
			name:    "agent unreachable",
			socket:  "/nonexistent/agent.sock",
			wantErr: true, want: []string{"/nonexistent/agent.sock", "kubectl -n kube-system logs ds/orbweaver-agent"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			replies := map[string]reply{}
			if tt.reply != nil {
				replies["/v1/status"] = *tt.reply
			}
			socket := startAgent(t, replies).socket
			if tt.socket != "" {
				socket = tt.socket
			}
			p, out := plugin()
			err := p.Status(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: netConf(t, "1.1.0", socket, nil)})
			if out.Len() != 0 {
				t.Errorf("STATUS printed %q", out)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e := cniError(t, err, types.ErrPluginNotAvailable)
			for _, w := range tt.want {
				if !strings.Contains(e.Msg, w) {
					t.Errorf("message %q does not contain %q", e.Msg, w)
				}
			}
			if e.Details != tt.details {
				t.Errorf("details %q, want %q", e.Details, tt.details)
			}
		})
	}
}

// TestStatusWarnsAboutVersionSkew: STATUS succeeds whatever the agent's version, and
// warns (log file and stderr) only when both sides are stamped releases that differ.
func TestStatusWarnsAboutVersionSkew(t *testing.T) {
	tests := []struct {
		name          string
		plugin, agent string // the agent's "" sends no version field (an older agent)
		warn          bool
	}{
		{name: "same release", plugin: "1.4.0", agent: "1.4.0"},
		{name: "same release, v prefix on one side", plugin: "v1.4.0", agent: "1.4.0"},
		{name: "agent newer", plugin: "1.4.0", agent: "1.5.0", warn: true},
		{name: "agent older", plugin: "1.4.0", agent: "1.3.2", warn: true},
		{name: "dev plugin", plugin: "dev", agent: "1.4.0"},
		{name: "dev agent", plugin: "1.4.0", agent: "dev"},
		{name: "unstamped plugin", plugin: "", agent: "1.4.0"},
		{name: "agent without the version field", plugin: "1.4.0", agent: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{"ready": true}
			if tt.agent != "" {
				body["version"], body["commit"] = tt.agent, "3f9c2a1"
			}
			agent := startAgent(t, map[string]reply{"/v1/status": {body: body}})
			logFile := filepath.Join(t.TempDir(), "orbweaver.log")
			var out, stderr bytes.Buffer
			p := Plugin{Stdout: &out, Stderr: &stderr, Version: tt.plugin}
			// At log_level warn, which keeps only errors, the warning still shows.
			conf := netConf(t, "1.1.0", agent.socket, map[string]any{"log_level": "warn", "log_file_path": logFile})
			if err := p.Status(&skel.CmdArgs{Path: "/opt/cni/bin", StdinData: conf}); err != nil {
				t.Fatalf("STATUS failed on a version skew: %v", err)
			}
			if out.Len() != 0 {
				t.Errorf("STATUS printed %q", out.String())
			}
			warned := slices.ContainsFunc(readLog(t, logFile), func(m string) bool { return strings.Contains(m, "versions differ") })
			if warned != tt.warn {
				t.Errorf("log warns %t, want %t", warned, tt.warn)
			}
			if tt.warn {
				for _, w := range []string{"warning", tt.plugin, tt.agent, agent.socket} {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("stderr %q does not contain %q", stderr.String(), w)
					}
				}
			} else if stderr.Len() != 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}

// Config and CNI_ARGS problems fail before the agent is asked.
func TestCommandsRejectBadInput(t *testing.T) {
	agent := startAgent(t, nil)
	tests := []struct {
		name     string
		conf     []byte
		args     string
		run      func(Plugin, *skel.CmdArgs) error
		wantCode uint
		want     []string
	}{
		{
			name: "ADD bad timeout", run: Plugin.Add, args: podArgs,
			conf:     netConf(t, "1.1.0", agent.socket, map[string]any{"timeout": "soon"}),
			wantCode: types.ErrInvalidNetworkConfig, want: []string{"ipam.timeout", `"soon"`},
		},
		{
			name: "ADD clean_gateway not a bool", run: Plugin.Add, args: podArgs,
			conf:     netConf(t, "1.1.0", agent.socket, map[string]any{"clean_gateway": "yes"}),
			wantCode: types.ErrInvalidNetworkConfig, want: []string{"ipam.clean_gateway", "true or false"},
		},
		{
			name: "DEL bad log level", run: Plugin.Del, args: podArgs,
			conf:     netConf(t, "1.1.0", agent.socket, map[string]any{"log_level": "verbose"}),
			wantCode: types.ErrInvalidNetworkConfig, want: []string{"ipam.log_level", "verbose"},
		},
		{
			name: "ADD without pod name", run: Plugin.Add, args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a",
			conf:     netConf(t, "1.1.0", agent.socket, nil),
			wantCode: types.ErrInvalidNetworkConfig, want: []string{"did not pass the Kubernetes pod args", "K8S_POD_NAME"},
		},
		{
			name: "CHECK without CNI_ARGS", run: Plugin.Check, args: "",
			conf:     withPrevResult(t, netConf(t, "1.1.0", agent.socket, nil), prevResult100),
			wantCode: types.ErrInvalidNetworkConfig, want: []string{"K8S_POD_NAMESPACE and K8S_POD_NAME"},
		},
		{
			name: "ADD malformed CNI_ARGS", run: Plugin.Add, args: "K8S_POD_NAMESPACE=a;garbage",
			conf:     netConf(t, "1.1.0", agent.socket, nil),
			wantCode: types.ErrInvalidEnvironmentVariables, want: []string{"CNI_ARGS", "garbage"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := cmdArgs(tt.conf)
			args.Args = tt.args
			p, out := plugin()
			e := cniError(t, tt.run(p, args), tt.wantCode)
			for _, w := range tt.want {
				if !strings.Contains(e.Msg, w) {
					t.Errorf("message %q does not contain %q", e.Msg, w)
				}
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q after an error", out)
			}
		})
	}
	if n := agent.callCount("/v1/ipam/add") + agent.callCount("/v1/ipam/del") + agent.callCount("/v1/ipam/check"); n != 0 {
		t.Errorf("the agent was called %d times", n)
	}
}

func TestCommandsLogJSONLines(t *testing.T) {
	tests := []struct {
		level    string
		want     []string // messages that must appear
		wantNone []string // and must not
	}{
		{"debug", []string{"start", "allocated", "done"}, nil},
		{"INFO", []string{"allocated"}, []string{"start", "done"}},
		{"error", nil, []string{"start", "allocated", "done"}},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			agent := startAgent(t, nil)
			logFile := filepath.Join(t.TempDir(), "sub", "orbweaver.log")
			p, _ := plugin()
			conf := netConf(t, "1.1.0", agent.socket, map[string]any{"log_level": tt.level, "log_file_path": logFile})
			if err := p.Add(cmdArgs(conf)); err != nil {
				t.Fatal(err)
			}
			msgs := readLog(t, logFile)
			for _, w := range tt.want {
				if !slices.Contains(msgs, w) {
					t.Errorf("log has %q, want %q in it", msgs, w)
				}
			}
			for _, w := range tt.wantNone {
				if slices.Contains(msgs, w) {
					t.Errorf("log has %q at level %s", w, tt.level)
				}
			}
		})
	}
}

// readLog returns the messages of a log file, failing on a line that is not a
// JSON object.
func readLog(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			TS  string `json:"ts"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.TS == "" {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		msgs = append(msgs, line.Msg)
	}
	return msgs
}
