// Package testenv runs a real kube-apiserver and etcd on 127.0.0.1 with orbweaver's CRDs
// installed, for integration tests and the demo. Every integration test uses it.
//
// The binaries come from the repository's bin/ (built by `make tools`) unless
// KUBEBUILDER_ASSETS names another folder. Ports are random. Stop removes everything;
// if the process dies without calling Stop, a watchdog kills the servers within seconds.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

const modulePath = "github.com/orbweaver-ipam/orbweaver"

// Env is a running API server with the CRDs installed.
type Env struct {
	// Config reaches the API server as a cluster admin, without client-side rate limits.
	Config *rest.Config
	// Client is a non-caching client whose scheme knows core kinds and orbweaver's kinds.
	Client client.Client
	// Scheme is the Client's scheme.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of an admin kubeconfig file for kubectl and other processes.
	Kubeconfig string
	// Root is the repository root; BinDir holds kubectl and the other tools.
	Root, BinDir string

	dir       string
	removeDir bool // whether Stop removes dir: only when Start created it
	env       *envtest.Environment
	watchdog  *exec.Cmd
}

// Options tune Start.
type Options struct {
	// ShowServerOutput sends the API server's and etcd's logs to stderr
	// (also KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT=true).
	ShowServerOutput bool
	// Dir is where state, certificates and the kubeconfig go; a new temporary folder
	// (removed by Stop) when empty.
	Dir string
}

// NewScheme returns a scheme with the core Kubernetes kinds and orbweaver's kinds.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v2beta1.AddToScheme(s))
	utilruntime.Must(ipamv1.AddToScheme(s))
	return s
}

// Start starts etcd and kube-apiserver and installs the CRDs from charts/orbweaver/crds.
func Start(opts Options) (_ *Env, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	binDir := filepath.Join(root, "bin")
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = binDir
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, name)); err != nil {
			return nil, fmt.Errorf("testenv: %s not found in %s: run `make tools` first: %w", name, assets, err)
		}
	}

	dir, removeDir := opts.Dir, false
	if dir == "" {
		if dir, err = os.MkdirTemp("", "orbweaver-testenv-"); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		removeDir = true
	}
	e := &Env{Root: root, BinDir: binDir, dir: dir, removeDir: removeDir, Scheme: NewScheme()}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Stop())
		}
	}()
	for _, sub := range []string{"etcd", "apiserver"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
	}

	e.env = &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDDirectoryPaths:        []string{filepath.Join(root, "charts", "orbweaver", "crds")},
		ErrorIfCRDPathMissing:    true,
		Scheme:                   e.Scheme,
		AttachControlPlaneOutput: opts.ShowServerOutput,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	// Our own folders, so the watchdog can find the servers by them.
	e.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(dir, "etcd")}
	e.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: filepath.Join(dir, "apiserver")}

	if err := e.startWatchdog(); err != nil {
		return nil, err
	}
	cfg, err := e.env.Start()
	if err != nil {
		return nil, fmt.Errorf("testenv: start kube-apiserver and etcd from %s: %w", assets, err)
	}
	// envtest's defaults throttle at 1000 QPS; tests and benchmarks must see the server's
	// own limits, not the client's.
	cfg.QPS, cfg.Burst = 100000, 100000
	e.Config = cfg
	if e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme}); err != nil {
		return nil, fmt.Errorf("testenv: client: %w", err)
	}
	e.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, e.env.KubeConfig, 0o600); err != nil {
		return nil, fmt.Errorf("testenv: write kubeconfig: %w", err)
	}
	return e, nil
}

// startWatchdog starts a shell that outlives this process only long enough to kill the
// servers (found by our folder in their command lines) if we die without Stop: go test's
// timeout, for one, exits without running deferred calls.
func (e *Env) startWatchdog() error {
	// The folder goes in through the environment, not argv, so pkill -f does not match
	// the watchdog itself.
	script := `while kill -0 "$1" 2>/dev/null; do sleep 1; done; pkill -KILL -f -- "$TESTENV_DIR"; sleep 1; if [ "$2" = remove ]; then rm -rf -- "$TESTENV_DIR"; fi`
	remove := "keep"
	if e.removeDir {
		remove = "remove"
	}
	e.watchdog = exec.Command("/bin/sh", "-c", script, "orbweaver-testenv-watchdog", strconv.Itoa(os.Getpid()), remove)
	e.watchdog.Env = append(os.Environ(), "TESTENV_DIR="+e.dir)
	e.watchdog.SysProcAttr = detached()
	if err := e.watchdog.Start(); err != nil {
		return fmt.Errorf("testenv: start watchdog: %w", err)
	}
	return nil
}

// Dir is the folder holding the servers' state and the kubeconfig.
func (e *Env) Dir() string { return e.dir }

// RestartAPIServer kills kube-apiserver (SIGKILL: a graceful stop drains every watch
// for tens of seconds) and starts it again on the same port, with the same certificates
// and etcd: clients keep their configuration, requests in flight fail, and watches break
// and are re-established. Tests that restart it must not run in parallel with others of
// the package.
func (e *Env) RestartAPIServer() error {
	s := e.env.ControlPlane.APIServer
	kill := exec.Command("pkill", "-KILL", "-f", "--", "kube-apiserver.*"+filepath.Join(e.dir, "apiserver"))
	if out, err := kill.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: kill kube-apiserver: %w: %s", err, out)
	}
	if err := s.Stop(); err != nil { // reaps the killed process
		return fmt.Errorf("testenv: stop kube-apiserver: %w", err)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("testenv: start kube-apiserver again: %w", err)
	}
	return nil
}

// Stop stops the servers and removes the folder Start created (not one given in Options).
func (e *Env) Stop() error {
	var errs []error
	if e.env != nil {
		if err := e.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("testenv: stop: %w", err))
		}
	}
	if e.watchdog != nil && e.watchdog.Process != nil {
		_ = e.watchdog.Process.Kill()
		_, _ = e.watchdog.Process.Wait()
	}
	if e.removeDir && e.dir != "" {
		if err := os.RemoveAll(e.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Kubectl runs the repository's kubectl against the API server and returns its stdout;
// the error carries stderr.
func (e *Env) Kubectl(ctx context.Context, args ...string) (string, error) {
	return e.KubectlWithInput(ctx, "", args...)
}

// KubectlWithInput is Kubectl with input on stdin, e.g. for `apply -f -`.
func (e *Env) KubectlWithInput(ctx context.Context, input string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "kubectl"), append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(input), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// RepoRoot finds the repository root: the nearest folder upwards from the working
// directory whose go.mod declares orbweaver's module.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testenv: no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// Main is a TestMain for packages with integration tests: it starts one Env for the
// package, stores it in *env, starts whatever else the package needs beside it (each
// `also` returns how to stop what it started), runs the tests and stops it all. With
// -short it starts nothing and leaves *env nil, so Require skips the integration tests
// (the `make unit` loop).
func Main(m *testing.M, env **Env, also ...func(*Env) (stop func() error, err error)) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	e, err := Start(Options{ShowServerOutput: os.Getenv("KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT") == "true"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var stops []func() error
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}()
	for _, start := range also {
		stop, err := start(e)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			_ = e.Stop()
			return 1
		}
		stops = append(stops, stop)
	}
	*env = e
	code := m.Run()
	for i := len(stops) - 1; i >= 0; i-- {
		if err := stops[i](); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	stops = nil
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Require returns env, or skips the test when integration tests are off (-short).
func Require(t testing.TB, env *Env) *Env {
	t.Helper()
	if env == nil {
		if testing.Short() {
			t.Skip("integration test: needs the API server, skipped with -short")
		}
		t.Fatal("testenv: no API server; call testenv.Main from TestMain")
	}
	return env
}

// WaitFor calls cond every 50ms until it holds, and fails the test after 30s, naming what
// it waited for and cond's last error. Integration tests wait on caches and watches
// with it; it never asserts how long anything took.
func WaitFor(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 30s waiting for %s (last error: %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
