package cni

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// The fuzz targets check invariants, not only the absence of panics. Seeds come
// from f.Add and from testdata/fuzz/<FuzzName>/.

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","ipam":{"type":"orbweaver"}}`))
	f.Add([]byte(ipamConf(`"timeout":"250ms","log_level":"WARN","log_file_max_size":"100M","log_file_max_age":"30d"`)))
	f.Add([]byte(ipamConf(`"default_ipv4_ippool":["a","b*"],"clean_gateway":true,"log_file_path":"-"`)))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, want *types.Error", err, err)
			}
			switch e.Code {
			case types.ErrIncompatibleCNIVersion, types.ErrDecodingFailure:
			case types.ErrInvalidNetworkConfig:
				rest, ok := strings.CutPrefix(e.Msg, "invalid orbweaver network config: ")
				if !ok || !strings.Contains(rest, ": ") {
					t.Fatalf("code 7 message %q does not name a key", e.Msg)
				}
			default:
				t.Fatalf("code %d (%s)", e.Code, e.Msg)
			}
			return
		}
		if !slices.Contains(SupportedVersions(), cfg.CNIVersion) || cfg.Name == "" {
			t.Fatalf("cniVersion %q, name %q", cfg.CNIVersion, cfg.Name)
		}
		c := cfg.IPAM
		if !filepath.IsAbs(c.SocketPath) || len(c.SocketPath) > maxSocketPath {
			t.Fatalf("socket %q", c.SocketPath)
		}
		if c.Timeout <= 0 {
			t.Fatalf("timeout %v", c.Timeout)
		}
		if !slices.Contains([]string{LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError}, c.Log.Level) {
			t.Fatalf("log level %q", c.Log.Level)
		}
		if c.Log.FilePath != "" && !filepath.IsAbs(c.Log.FilePath) {
			t.Fatalf("log file %q", c.Log.FilePath)
		}
		if c.Log.MaxSizeMB < 1 || c.Log.MaxAgeDays < 1 || c.Log.MaxCount < 1 {
			t.Fatalf("log limits %+v", c.Log)
		}
		for _, p := range slices.Concat(c.DefaultIPv4IPPool, c.DefaultIPv6IPPool) {
			if strings.TrimSpace(p) == "" {
				t.Fatalf("empty pool name in %q %q", c.DefaultIPv4IPPool, c.DefaultIPv6IPPool)
			}
		}
		again, err := ParseConfig(data)
		if err != nil || !reflect.DeepEqual(cfg, again) {
			t.Fatalf("second parse differs: %+v, %v", again, err)
		}
	})
}

func FuzzParseArgs(f *testing.F) {
	f.Add(podArgs)
	f.Add("K8S_POD_NAMESPACE=a;K8S_POD_NAME=b=c;;")
	f.Add("K8S_POD_NAMESPACE=a")
	f.Fuzz(func(t *testing.T, s string) {
		raw, rawErr := parseArgs(s)
		pod, err := ParseArgs(s)
		if err != nil {
			var e *types.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is a %T, want *types.Error", err, err)
			}
			switch {
			case e.Code == types.ErrInvalidEnvironmentVariables && rawErr != nil:
			case e.Code == types.ErrInvalidNetworkConfig && rawErr == nil && (raw.Namespace == "" || raw.Name == ""):
			default:
				t.Fatalf("code %d (%s); parseArgs gave %+v, %v", e.Code, e.Msg, raw, rawErr)
			}
			return
		}
		if pod != raw || pod.Namespace == "" || pod.Name == "" {
			t.Fatalf("ParseArgs %+v, parseArgs %+v", pod, raw)
		}
		// What the runtime would send for these values parses back to them.
		again, err := ParseArgs("K8S_POD_NAMESPACE=" + pod.Namespace + ";K8S_POD_NAME=" + pod.Name +
			";K8S_POD_UID=" + pod.UID + ";K8S_POD_INFRA_CONTAINER_ID=" + pod.InfraContainerID)
		if err != nil || again != pod {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, pod)
		}
	})
}
