package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procs starts the cluster's processes detached (their own session, so they outlive
// `up`), each with its log file and its pid file; stop finds them by pid only.
type procs struct{ dir string }

func (p procs) pidFile(name string) string { return filepath.Join(p.dir, "run", name+".pid") }
func (p procs) logFile(name string) string { return filepath.Join(p.dir, "logs", name+".log") }

// start runs bin with args unless a live process is recorded for name.
func (p procs) start(name, bin string, args ...string) error {
	if pid, alive := p.alive(name); alive {
		fmt.Printf("  %s already running (pid %d)\n", name, pid)
		return nil
	}
	for _, d := range []string{"run", "logs"} {
		if err := os.MkdirAll(filepath.Join(p.dir, d), 0o755); err != nil {
			return err
		}
	}
	logf, err := os.OpenFile(p.logFile(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	if err := os.WriteFile(p.pidFile(name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap it if it dies while up runs
	fmt.Printf("  %s started (pid %d, log %s)\n", name, cmd.Process.Pid, p.logFile(name))
	return nil
}

// alive returns the recorded pid of name and whether it runs (a zombie does not).
func (p procs) alive(name string) (int, bool) {
	data, err := os.ReadFile(p.pidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pid, false
	}
	// The state follows the command name in parentheses.
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return pid, false
	}
	return pid, true
}

// stop sends SIGTERM to name's recorded process, SIGKILL after grace, and removes the
// pid file.
func (p procs) stop(name string, grace time.Duration) error {
	pid, alive := p.alive(name)
	defer os.Remove(p.pidFile(name))
	if !alive {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if _, alive := p.alive(name); !alive {
			fmt.Printf("  %s stopped\n", name)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", name, pid, err)
	}
	fmt.Printf("  %s killed after %v\n", name, grace)
	return nil
}

// waitFor calls cond every 200ms until it holds or timeout passes.
func waitFor(what string, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s: not ready after %v: %w", what, timeout, err)
}

// run runs a command and returns its combined output, with the output in the error.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
