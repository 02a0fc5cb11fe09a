package cni

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

func TestParseConfig(t *testing.T) {
	defaults := IPAMConfig{
		SocketPath: DefaultSocketPath,
		Timeout:    DefaultTimeout,
		Log: LogConfig{
			Level: LogLevelInfo, FilePath: DefaultLogFilePath,
			MaxSizeMB: 100, MaxAgeDays: 30, MaxCount: 10,
		},
	}
	with := func(f func(c *IPAMConfig)) IPAMConfig {
		c := defaults
		f(&c)
		return c
	}
	tests := []struct {
		name string
		ipam string // the ipam section
		want IPAMConfig
	}{
		{name: "defaults", ipam: `{"type": "orbweaver"}`, want: defaults},
		{
			name: "every key",
			ipam: `{"type": "orbweaver",
				"default_ipv4_ippool": ["v4-a", "v4-*"], "default_ipv6_ippool": ["v6-a"],
				"clean_gateway": true, "ipam_unix_socket_path": "/run/ow.sock",
				"log_level": "DEBUG", "log_file_path": "/var/log/ow/cni.log",
				"log_file_max_size": 20, "log_file_max_age": 7, "log_file_max_count": 3,
				"timeout": "1m30s"}`,
			want: IPAMConfig{
				DefaultIPv4IPPool: []string{"v4-a", "v4-*"}, DefaultIPv6IPPool: []string{"v6-a"},
				CleanGateway: true, SocketPath: "/run/ow.sock", Timeout: 90 * time.Second,
				Log: LogConfig{Level: LogLevelDebug, FilePath: "/var/log/ow/cni.log", MaxSizeMB: 20, MaxAgeDays: 7, MaxCount: 3},
			},
		},
		{
			name: "SpiderPool config with its extra keys and quoted sizes",
			ipam: `{"type": "spiderpool", "log_level": "Info", "match_master_subnet": true,
				"log_file_max_size": "100M", "log_file_max_age": "30d", "log_file_max_count": 7,
				"default_ipv4_ippool": ["default-ipv4-pool1", "default-ipv4-pool2"]}`,
			want: with(func(c *IPAMConfig) {
				c.DefaultIPv4IPPool = []string{"default-ipv4-pool1", "default-ipv4-pool2"}
				c.Log.MaxCount = 7
			}),
		},
		{name: "log off with empty path", ipam: `{"type": "orbweaver", "log_file_path": ""}`, want: with(func(c *IPAMConfig) { c.Log.FilePath = "" })},
		{name: "log off with -", ipam: `{"type": "orbweaver", "log_file_path": "-"}`, want: with(func(c *IPAMConfig) { c.Log.FilePath = "" })},
		{name: "zero sizes mean default", ipam: `{"type": "orbweaver", "log_file_max_size": 0, "log_file_max_count": "0"}`, want: defaults},
		{name: "warn", ipam: `{"type": "orbweaver", "log_level": "Warn"}`, want: with(func(c *IPAMConfig) { c.Log.Level = LogLevelWarn })},
		{name: "null values", ipam: `{"type": "orbweaver", "log_file_max_age": null, "default_ipv4_ippool": null}`, want: defaults},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := `{"cniVersion": "1.0.0", "name": "net1", "type": "macvlan", "ipam": ` + tt.ipam + `}`
			got, err := ParseConfig([]byte(conf))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.IPAM, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got.IPAM, tt.want)
			}
			if got.Name != "net1" || got.CNIVersion != "1.0.0" {
				t.Errorf("name %q, cniVersion %q", got.Name, got.CNIVersion)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	long := "/" + strings.Repeat("s", maxSocketPath)
	tests := []struct {
		name     string
		conf     string
		wantCode uint
		want     []string // in the message
	}{
		{"not JSON", `{"cniVersion":`, types.ErrDecodingFailure, []string{"not valid JSON"}},
		{"unsupported cniVersion", `{"cniVersion": "0.2.0", "name": "n", "ipam": {"type": "orbweaver"}}`, types.ErrIncompatibleCNIVersion, []string{`"0.2.0"`, "0.3.1, 0.4.0, 1.0.0, 1.1.0"}},
		{"no cniVersion", `{"name": "n", "ipam": {"type": "orbweaver"}}`, types.ErrIncompatibleCNIVersion, []string{"cniVersion"}},
		{"no name", `{"cniVersion": "1.0.0", "ipam": {"type": "orbweaver"}}`, types.ErrInvalidNetworkConfig, []string{"name: missing"}},
		{"no ipam", `{"cniVersion": "1.0.0", "name": "n"}`, types.ErrInvalidNetworkConfig, []string{"ipam: missing"}},
		{"other ipam type", `{"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local"}}`, types.ErrInvalidNetworkConfig, []string{"ipam.type", "host-local"}},
		{"ipam not an object", `{"cniVersion": "1.0.0", "name": "n", "ipam": "orbweaver"}`, types.ErrInvalidNetworkConfig, []string{"ipam:", "an object"}},
		{"pools not a list", ipamConf(`"default_ipv4_ippool": "v4-a"`), types.ErrInvalidNetworkConfig, []string{"ipam.default_ipv4_ippool", "a list of strings"}},
		{"pool not a string", ipamConf(`"default_ipv6_ippool": [1]`), types.ErrInvalidNetworkConfig, []string{"ipam.default_ipv6_ippool", "a string"}},
		{"empty pool name", ipamConf(`"default_ipv6_ippool": ["a", " "]`), types.ErrInvalidNetworkConfig, []string{"ipam.default_ipv6_ippool[1]", "empty"}},
		{"clean_gateway string", ipamConf(`"clean_gateway": "true"`), types.ErrInvalidNetworkConfig, []string{"ipam.clean_gateway", "true or false"}},
		{"relative socket", ipamConf(`"ipam_unix_socket_path": "agent.sock"`), types.ErrInvalidNetworkConfig, []string{"ipam.ipam_unix_socket_path", "absolute"}},
		{"long socket", ipamConf(`"ipam_unix_socket_path": "` + long + `"`), types.ErrInvalidNetworkConfig, []string{"ipam.ipam_unix_socket_path", "at most 107"}},
		{"socket not a string", ipamConf(`"ipam_unix_socket_path": 5`), types.ErrInvalidNetworkConfig, []string{"ipam.ipam_unix_socket_path", "a string"}},
		{"timeout without unit", ipamConf(`"timeout": "60"`), types.ErrInvalidNetworkConfig, []string{"ipam.timeout", `"60"`}},
		{"timeout negative", ipamConf(`"timeout": "-1s"`), types.ErrInvalidNetworkConfig, []string{"ipam.timeout", "not positive"}},
		{"timeout number", ipamConf(`"timeout": 60`), types.ErrInvalidNetworkConfig, []string{"ipam.timeout", "a string"}},
		{"log level", ipamConf(`"log_level": "trace"`), types.ErrInvalidNetworkConfig, []string{"ipam.log_level", "trace", "debug, info, warn, error"}},
		{"relative log path", ipamConf(`"log_file_path": "orbweaver.log"`), types.ErrInvalidNetworkConfig, []string{"ipam.log_file_path", "absolute"}},
		{"negative size", ipamConf(`"log_file_max_size": -1`), types.ErrInvalidNetworkConfig, []string{"ipam.log_file_max_size", "-1"}},
		{"fractional size", ipamConf(`"log_file_max_size": 1.5`), types.ErrInvalidNetworkConfig, []string{"ipam.log_file_max_size", "1.5"}},
		{"size with a wrong unit", ipamConf(`"log_file_max_size": "1G"`), types.ErrInvalidNetworkConfig, []string{"ipam.log_file_max_size", `"1G"`}},
		{"age as an object", ipamConf(`"log_file_max_age": {"days": 3}`), types.ErrInvalidNetworkConfig, []string{"ipam.log_file_max_age", `{"days":3}`}},
		{"count with a unit", ipamConf(`"log_file_max_count": "7d"`), types.ErrInvalidNetworkConfig, []string{"ipam.log_file_max_count"}},
		{"valid attachments not a list", `{"cniVersion": "1.1.0", "name": "n", "ipam": {"type": "orbweaver"}, "cni.dev/valid-attachments": {"a": 1}}`, types.ErrInvalidNetworkConfig, []string{"cni.dev/valid-attachments", "a list of objects"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.conf))
			e := cniError(t, err, tt.wantCode)
			for _, w := range tt.want {
				if !strings.Contains(e.Msg, w) {
					t.Errorf("message %q does not contain %q", e.Msg, w)
				}
			}
		})
	}
}

// ipamConf is a config whose ipam section has the keys in kv besides its type.
func ipamConf(kv string) string {
	return `{"cniVersion": "1.1.0", "name": "n", "ipam": {"type": "orbweaver", ` + kv + `}}`
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name     string
		args     string
		want     PodArgs
		wantCode uint
	}{
		{
			name: "containerd",
			args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=c0ffee;K8S_POD_UID=u-1",
			want: PodArgs{Namespace: "team-a", Name: "web-0", UID: "u-1", InfraContainerID: "c0ffee"},
		},
		{name: "no UID", args: "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b", want: PodArgs{Namespace: "a", Name: "b"}},
		{name: "unknown keys and empty pairs", args: ";FOO=bar;K8S_POD_NAMESPACE=a;;K8S_POD_NAME=b;IP=10.0.0.1;", want: PodArgs{Namespace: "a", Name: "b"}},
		{name: "value with =", args: "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b;X=c=d", want: PodArgs{Namespace: "a", Name: "b"}},
		{name: "empty", args: "", wantCode: types.ErrInvalidNetworkConfig},
		{name: "no name", args: "K8S_POD_NAMESPACE=a", wantCode: types.ErrInvalidNetworkConfig},
		{name: "empty name", args: "K8S_POD_NAMESPACE=a;K8S_POD_NAME=", wantCode: types.ErrInvalidNetworkConfig},
		{name: "keys are case-sensitive", args: "k8s_pod_namespace=a;k8s_pod_name=b", wantCode: types.ErrInvalidNetworkConfig},
		{name: "pair without =", args: "K8S_POD_NAMESPACE=a;K8S_POD_NAME", wantCode: types.ErrInvalidEnvironmentVariables},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.args)
			if tt.wantCode != 0 {
				cniError(t, err, tt.wantCode)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
