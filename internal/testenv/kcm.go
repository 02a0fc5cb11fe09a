package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// WorkloadControllers are the kube-controller-manager controllers that turn workloads
// into Pod objects, and delete what they own: what auto pools and StatefulSet fixed IPs
// need to see real pods come and go. No scheduler or kubelet runs: tests bind and run
// pods themselves.
var WorkloadControllers = []string{
	"deployment", "replicaset", "statefulset", "daemonset", "job", "cronjob",
	"garbagecollector", "serviceaccount",
}

// ControllerManager is a kube-controller-manager process (built by tools/ into bin/)
// running against the Env's API server.
type ControllerManager struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

// StartControllerManager runs kube-controller-manager with the given controllers
// (WorkloadControllers when none) until Stop. Its command line names the Env's folder, so
// the Env's watchdog kills it too if the test process dies.
func (e *Env) StartControllerManager(controllers ...string) (*ControllerManager, error) {
	bin := filepath.Join(e.BinDir, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("testenv: kube-controller-manager not found in %s: run `make tools` first: %w", e.BinDir, err)
	}
	if len(controllers) == 0 {
		controllers = WorkloadControllers
	}
	logPath := filepath.Join(e.dir, "kube-controller-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--kubeconfig="+e.Kubeconfig,
		"--controllers="+strings.Join(controllers, ","),
		"--leader-elect=false",
		"--secure-port=0", // serves nothing: loopback or not, no port is needed
		"--use-service-account-credentials=false",
		// Pods of deleted owners go promptly; tests wait on them.
		"--concurrent-gc-syncs=5",
		"--v=1",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Killed with this process even without Stop (the watchdog is the second net).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testenv: start kube-controller-manager: %w", err)
	}
	cm := &ControllerManager{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { cm.done <- cmd.Wait() }()
	return cm, nil
}

// Stop stops the process and waits for it (at most 10 s before it is killed).
func (cm *ControllerManager) Stop() error {
	_ = cm.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-cm.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = cm.cmd.Process.Kill()
		<-cm.done
		return errors.New("testenv: kube-controller-manager did not stop within 10s; killed")
	}
}

// Exited reports whether the process ended, and how; a test checks it when a workload
// makes no pods, and shows LogTail.
func (cm *ControllerManager) Exited() (bool, error) {
	select {
	case err := <-cm.done:
		cm.done <- err
		return true, err
	default:
		return false, nil
	}
}

// LogTail returns the last n bytes of the process's log, for failure messages.
func (cm *ControllerManager) LogTail(n int) string {
	data, err := os.ReadFile(cm.log)
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}
