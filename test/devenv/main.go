// Command devenv runs the local environment behind `make demo`: a real kube-apiserver and
// etcd on 127.0.0.1 with orbweaver's CRDs, kept running in the background until
// `make demo-down`.
//
//	devenv up     start (or reuse) the servers, apply docs/examples, print the pools
//	devenv down   stop the servers and remove their state
//	devenv serve  (internal) the background process that owns the servers
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/testenv"
)

const usage = "usage: devenv up|down"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		fail(err)
	}
	d := demo{root: root, dir: filepath.Join(root, ".demo")}
	switch os.Args[1] {
	case "up":
		err = d.up()
	case "down":
		err = d.down()
	case "serve":
		err = d.serve()
	default:
		err = errors.New(usage)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "demo:", err)
	os.Exit(1)
}

type demo struct{ root, dir string }

func (d demo) path(name string) string { return filepath.Join(d.dir, name) }

// running returns the PID of a live serve process, or 0.
func (d demo) running() int {
	data, err := os.ReadFile(d.path("devenv.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

func (d demo) up() error {
	if d.running() == 0 {
		if err := d.start(); err != nil {
			return err
		}
	} else {
		fmt.Println(">> the demo API server is already running; reusing it")
	}
	kubeconfig := d.path("kubeconfig")
	kubectl := func(args ...string) error {
		fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
		cmd := exec.Command(filepath.Join(d.root, "bin", "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	for _, args := range [][]string{
		{"apply", "-f", filepath.Join(d.root, "docs", "examples")},
		{"get", "ss,sp", "-o", "wide"},
		{"get", "sr"},
	} {
		if err := kubectl(args...); err != nil {
			return fmt.Errorf("kubectl %s: %w", strings.Join(args, " "), err)
		}
	}
	fmt.Printf(`
The API server keeps running on 127.0.0.1 with orbweaver's CRDs. Try:
  export KUBECONFIG=%s
  %s get spiderpool
  %s explain sp.spec.orbweaver
Allocation counts fill in once the node agent runs (a later milestone of the demo).
Stop it with:  make demo-down
`, kubeconfig, filepath.Join("bin", "kubectl"), filepath.Join("bin", "kubectl"))
	return nil
}

// start launches `devenv serve` in the background and waits until it is ready.
func (d demo) start() error {
	if err := os.RemoveAll(d.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logFile, err := os.Create(d.path("devenv.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(self, "serve")
	cmd.Dir = d.root
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the demo API server: %w", err)
	}
	if err := os.WriteFile(d.path("devenv.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Println(">> starting kube-apiserver and etcd on 127.0.0.1 with orbweaver's CRDs")
	deadline := time.After(2 * time.Minute)
	for {
		if _, err := os.Stat(d.path("ready")); err == nil {
			return nil
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(d.path("devenv.log"))
			return fmt.Errorf("the demo API server exited (%v):\n%s", err, log)
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the demo API server was not ready within 2 minutes; see %s", d.path("devenv.log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// serve owns the servers until SIGTERM or SIGINT.
func (d demo) serve() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	state := d.path("state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	env, err := testenv.Start(testenv.Options{Dir: state})
	if err != nil {
		return err
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	data, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(d.path("kubeconfig"), data, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(d.path("ready"), nil, 0o644); err != nil {
		return err
	}
	fmt.Println("ready; kubeconfig", d.path("kubeconfig"))
	<-ctx.Done()
	fmt.Println("stopping")
	return nil
}

func (d demo) down() error {
	pid := d.running()
	if pid == 0 {
		fmt.Println(">> the demo is not running")
		return os.RemoveAll(d.dir)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 150 && syscall.Kill(pid, 0) == nil; i++ {
		time.Sleep(200 * time.Millisecond)
	}
	if syscall.Kill(pid, 0) == nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	fmt.Println(">> demo stopped")
	return os.RemoveAll(d.dir)
}
