package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// Defaults of the ipam section; the names and meanings of the keys are SpiderPool's
// (cmd/spiderpool/cmd/cni_types.go), the paths are orbweaver's own.
const (
	DefaultSocketPath      = "/var/run/orbweaver/agent.sock"
	DefaultLogFilePath     = "/var/log/orbweaver/orbweaver.log"
	DefaultLogLevel        = LogLevelInfo
	DefaultLogFileMaxSize  = 100 // MB
	DefaultLogFileMaxAge   = 30  // days
	DefaultLogFileMaxCount = 10  // rotated files
	DefaultTimeout         = 60 * time.Second
)

// IPAMType is the ipam.type this plugin answers to; "spiderpool" is accepted too.
const IPAMType = "orbweaver"

// spiderpoolIPAMType is accepted too, so a SpiderPool network config works unchanged
// when the orbweaver binary is installed under SpiderPool's name.
const spiderpoolIPAMType = "spiderpool"

// maxSocketPath is the longest path a unix socket address holds on Linux
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Log levels of log_level, lower case. logr has no warning level, so "warn" and
// "error" both keep only errors.
const (
	LogLevelDebug = "debug"
	LogLevelInfo  = "info"
	LogLevelWarn  = "warn"
	LogLevelError = "error"
)

// SupportedVersions are the CNI spec versions the plugin speaks, oldest first.
func SupportedVersions() []string { return []string{"0.3.1", "0.4.0", "1.0.0", "1.1.0"} }

// Config is a parsed and defaulted network configuration: after ParseConfig every
// field holds a valid value.
type Config struct {
	CNIVersion string
	// Name is the network's name; the agent records it with each attachment so that GC
	// of one network leaves the others alone.
	Name string
	IPAM IPAMConfig
	// RawPrevResult is the prevResult of a CHECK, as the runtime sent it.
	RawPrevResult map[string]any
	// ValidAttachments is cni.dev/valid-attachments of a GC.
	ValidAttachments []types.GCAttachment
}

// IPAMConfig is the ipam section.
type IPAMConfig struct {
	DefaultIPv4IPPool []string // default_ipv4_ippool: ordered fallbacks, wildcards allowed
	DefaultIPv6IPPool []string // default_ipv6_ippool
	CleanGateway      bool     // clean_gateway: no default route from the pools' gateways
	SocketPath        string   // ipam_unix_socket_path
	Timeout           time.Duration
	Log               LogConfig
}

// LogConfig is where and how much the plugin logs. It never logs to stdout.
type LogConfig struct {
	Level      string // one of the LogLevel constants
	FilePath   string // "" disables logging
	MaxSizeMB  int    // rotate when the file has reached this size
	MaxAgeDays int    // rotated files older than this are removed
	MaxCount   int    // rotated files kept
}

// netConfJSON is the wire form of the parts of a network config the plugin reads.
// Unknown keys are ignored: SpiderPool configs and main plugins carry many more.
type netConfJSON struct {
	CNIVersion       string               `json:"cniVersion"`
	Name             string               `json:"name"`
	IPAM             *ipamJSON            `json:"ipam"`
	PrevResult       map[string]any       `json:"prevResult"`
	ValidAttachments []types.GCAttachment `json:"cni.dev/valid-attachments"`
}

type ipamJSON struct {
	Type              string          `json:"type"`
	DefaultIPv4IPPool []string        `json:"default_ipv4_ippool"`
	DefaultIPv6IPPool []string        `json:"default_ipv6_ippool"`
	CleanGateway      bool            `json:"clean_gateway"`
	SocketPath        string          `json:"ipam_unix_socket_path"`
	LogLevel          string          `json:"log_level"`
	LogFilePath       *string         `json:"log_file_path"`
	LogFileMaxSize    json.RawMessage `json:"log_file_max_size"`
	LogFileMaxAge     json.RawMessage `json:"log_file_max_age"`
	LogFileMaxCount   json.RawMessage `json:"log_file_max_count"`
	Timeout           string          `json:"timeout"`
}

// ParseConfig parses the network config the runtime passes on stdin. Errors are
// *types.Error: code 6 for input that is not JSON, 1 for an unsupported cniVersion
// and 7 (invalid network config) naming the key and what is wrong with it.
func ParseConfig(stdin []byte) (*Config, error) {
	var raw netConfJSON
	if err := json.Unmarshal(stdin, &raw); err != nil {
		return nil, decodeError(err)
	}
	if !slices.Contains(SupportedVersions(), raw.CNIVersion) {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion,
			fmt.Sprintf("cniVersion %q is not supported; orbweaver supports %s",
				raw.CNIVersion, strings.Join(SupportedVersions(), ", ")), "")
	}
	if raw.Name == "" {
		return nil, configError("name", "missing; the network needs a name")
	}
	if raw.IPAM == nil {
		return nil, configError("ipam", "missing; add an ipam section with \"type\": %q", IPAMType)
	}
	ipam, err := parseIPAM(raw.IPAM)
	if err != nil {
		return nil, err
	}
	return &Config{
		CNIVersion:       raw.CNIVersion,
		Name:             raw.Name,
		IPAM:             ipam,
		RawPrevResult:    raw.PrevResult,
		ValidAttachments: raw.ValidAttachments,
	}, nil
}

func parseIPAM(raw *ipamJSON) (IPAMConfig, error) {
	if raw.Type != IPAMType && raw.Type != spiderpoolIPAMType {
		return IPAMConfig{}, configError("ipam.type", "is %q, want %q", raw.Type, IPAMType)
	}
	c := IPAMConfig{
		DefaultIPv4IPPool: raw.DefaultIPv4IPPool,
		DefaultIPv6IPPool: raw.DefaultIPv6IPPool,
		CleanGateway:      raw.CleanGateway,
		SocketPath:        raw.SocketPath,
		Timeout:           DefaultTimeout,
		Log: LogConfig{
			Level:    DefaultLogLevel,
			FilePath: DefaultLogFilePath,
		},
	}
	for _, f := range []struct {
		key   string
		pools []string
	}{
		{"ipam.default_ipv4_ippool", c.DefaultIPv4IPPool},
		{"ipam.default_ipv6_ippool", c.DefaultIPv6IPPool},
	} {
		for i, p := range f.pools {
			if strings.TrimSpace(p) == "" {
				return IPAMConfig{}, configError(fmt.Sprintf("%s[%d]", f.key, i), "is an empty pool name")
			}
		}
	}

	if c.SocketPath == "" {
		c.SocketPath = DefaultSocketPath
	}
	if !filepath.IsAbs(c.SocketPath) {
		return IPAMConfig{}, configError("ipam.ipam_unix_socket_path", "%q is not an absolute path", c.SocketPath)
	}
	if len(c.SocketPath) > maxSocketPath {
		return IPAMConfig{}, configError("ipam.ipam_unix_socket_path",
			"%q is %d bytes; a unix socket path has at most %d", c.SocketPath, len(c.SocketPath), maxSocketPath)
	}

	if raw.Timeout != "" {
		d, err := time.ParseDuration(raw.Timeout)
		if err != nil {
			return IPAMConfig{}, configError("ipam.timeout", "%q is not a duration such as \"60s\" or \"2m\"", raw.Timeout)
		}
		if d <= 0 {
			return IPAMConfig{}, configError("ipam.timeout", "%q is not positive", raw.Timeout)
		}
		c.Timeout = d
	}

	switch lvl := strings.ToLower(raw.LogLevel); lvl {
	case "":
	case LogLevelDebug, LogLevelInfo, LogLevelWarn, LogLevelError:
		c.Log.Level = lvl
	default:
		return IPAMConfig{}, configError("ipam.log_level", "%q is not one of debug, info, warn, error", raw.LogLevel)
	}

	if raw.LogFilePath != nil {
		switch p := *raw.LogFilePath; {
		case p == "" || p == "-":
			c.Log.FilePath = ""
		case !filepath.IsAbs(p):
			return IPAMConfig{}, configError("ipam.log_file_path", "%q is not an absolute path (\"\" or \"-\" turns logging off)", p)
		default:
			c.Log.FilePath = p
		}
	}

	var err error
	if c.Log.MaxSizeMB, err = parseCount("ipam.log_file_max_size", raw.LogFileMaxSize, DefaultLogFileMaxSize, "M", "MB", "Mi"); err != nil {
		return IPAMConfig{}, err
	}
	if c.Log.MaxAgeDays, err = parseCount("ipam.log_file_max_age", raw.LogFileMaxAge, DefaultLogFileMaxAge, "d"); err != nil {
		return IPAMConfig{}, err
	}
	if c.Log.MaxCount, err = parseCount("ipam.log_file_max_count", raw.LogFileMaxCount, DefaultLogFileMaxCount); err != nil {
		return IPAMConfig{}, err
	}
	return c, nil
}

// parseCount reads a non-negative integer key; absent or 0 means def. SpiderPool's
// code wants a JSON number while its docs show strings ("100", "100M", "30d"), so a
// string of digits with one of units is accepted as well.
func parseCount(key string, raw json.RawMessage, def int, units ...string) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return def, nil
	}
	text := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return 0, configError(key, "%s is not a string", compactJSON(raw))
		}
		for _, u := range units {
			if t, ok := strings.CutSuffix(text, u); ok {
				text = t
				break
			}
		}
	}
	n, err := strconv.Atoi(text)
	if err != nil || n < 0 || n > 1<<20 {
		want := "a whole number from 0 to 1048576"
		if len(units) > 0 {
			want += fmt.Sprintf(" (optionally a string with the unit %q)", units[0])
		}
		return 0, configError(key, "%s is not %s", compactJSON(raw), want)
	}
	if n == 0 {
		return def, nil
	}
	return n, nil
}

func configError(key, format string, args ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		"invalid orbweaver network config: "+key+": "+fmt.Sprintf(format, args...), "")
}

// decodeError names the key of a JSON type mismatch (code 7); anything else is a
// decoding failure (code 6).
func decodeError(err error) *types.Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return configError(te.Field, "is a JSON %s, want %s", te.Value, describeType(te.Type))
	}
	return types.NewError(types.ErrDecodingFailure, "network config is not valid JSON: "+err.Error(), "")
}

func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		elem := describeType(t.Elem())
		elem = strings.TrimPrefix(strings.TrimPrefix(elem, "an "), "a ")
		return "a list of " + elem + "s"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	default:
		return t.String()
	}
}

// compactJSON is used in messages that quote a value; it keeps them on one line.
func compactJSON(raw []byte) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}
