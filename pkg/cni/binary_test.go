package cni

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// TestBinary builds cmd/orbweaver and runs it as a runtime would: environment
// variables, config on stdin, result on stdout and nothing else there.
func TestBinary(t *testing.T) {
	// Not skipped with -short: with the build cache warm from compiling this test,
	// building and running takes about a second.
	bin := filepath.Join(t.TempDir(), "orbweaver")
	build := exec.Command("go", "build", "-o", bin, "github.com/orbweaver-ipam/orbweaver/cmd/orbweaver")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	agent := startAgent(t, nil)
	logFile := filepath.Join(t.TempDir(), "orbweaver.log")

	run := func(t *testing.T, env []string, stdin []byte) (stdout, stderr []byte, err error) {
		t.Helper()
		cmd := exec.Command(bin)
		cmd.Env = env
		cmd.Stdin = bytes.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		return o.Bytes(), e.Bytes(), err
	}

	t.Run("VERSION", func(t *testing.T) {
		out, stderr, err := run(t, []string{"CNI_COMMAND=VERSION"}, nil)
		if err != nil {
			t.Fatalf("%v: %s", err, stderr)
		}
		var v struct {
			CNIVersion        string   `json:"cniVersion"`
			SupportedVersions []string `json:"supportedVersions"`
		}
		decodeStrict(t, out, &v)
		if !slices.Equal(v.SupportedVersions, SupportedVersions()) {
			t.Errorf("supportedVersions %q, want %q", v.SupportedVersions, SupportedVersions())
		}
	})

	env := []string{
		"CNI_CONTAINERID=c0ffee",
		"CNI_NETNS=/var/run/netns/cni-1234",
		// skel compares CNI_NETNS with the plugin's own netns after ADD; the path
		// above does not exist in a test.
		"CNI_NETNS_OVERRIDE=1",
		"CNI_IFNAME=eth0",
		"CNI_PATH=/opt/cni/bin",
		"CNI_ARGS=" + podArgs,
	}
	conf := netConf(t, "1.1.0", agent.socket, map[string]any{"log_file_path": logFile})

	t.Run("ADD", func(t *testing.T) {
		out, stderr, err := run(t, append(env, "CNI_COMMAND=ADD"), conf)
		if err != nil {
			t.Fatalf("%v\nstdout: %s\nstderr: %s", err, out, stderr)
		}
		var r types100.Result
		decodeStrict(t, out, &r)
		if len(r.IPs) != 2 || r.IPs[0].Address.String() != "10.6.0.10/16" {
			t.Errorf("result %s", out)
		}
		if len(stderr) != 0 {
			t.Errorf("stderr %q", stderr)
		}
		if msgs := readLog(t, logFile); !slices.Contains(msgs, "allocated") {
			t.Errorf("log %q", msgs)
		}
	})

	t.Run("ADD error is a CNI error on stdout", func(t *testing.T) {
		bad := netConf(t, "1.1.0", agent.socket, map[string]any{"timeout": "never"})
		out, _, err := run(t, append(env, "CNI_COMMAND=ADD"), bad)
		if err == nil {
			t.Fatal("exit status 0")
		}
		var e struct {
			CNIVersion string `json:"cniVersion"`
			Code       uint   `json:"code"`
			Msg        string `json:"msg"`
		}
		if json.Unmarshal(out, &e) != nil || e.Code != 7 {
			t.Errorf("stdout %s", out)
		}
	})
}
