// Package testproc runs programs for tests: a process that stops when its test ends, with
// its output kept for the test to read; a wait for an HTTP endpoint (a /readyz) to
// answer; free ports on 127.0.0.1 to give them.
package testproc

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// stopGrace is how long Stop waits after SIGINT before it kills the process.
const stopGrace = 30 * time.Second

// logTail is how much of a process's output a failed test logs.
const logTail = 8 << 10

// Buffer collects a process's output; the test may read it while the process writes.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Process is a program a test started with Start.
type Process struct {
	Name string
	cmd  *exec.Cmd
	out  *Buffer
	done chan struct{} // closed once the process has ended and err is set
	err  error
}

// Start runs bin with args, env added to the test process's environment, stdout and
// stderr both into Output. When the test ends the process is stopped (Stop), and if the
// test failed the end of its output is logged.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, cmd: exec.Command(bin, args...), out: &Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			t.Logf("%s output (the last %d KiB):\n%s", name, logTail>>10, Tail(p.Output(), logTail))
		}
	})
	return p
}

// Output is what the process has written to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has ended, and with what error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGINT and waits up to 30s for the process to end, then kills it; the error
// says when it had to. A process that has ended already is left as it is.
func (p *Process) Stop() error {
	if ended, _ := p.Exited(); ended {
		return nil
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGINT; killed it", p.Name, stopGrace)
	}
}

// WaitHTTP is WaitHTTP for an endpoint of the process: it gives up at once, with the end
// of the process's output, if the process exits first.
func (p *Process) WaitHTTP(url string, within time.Duration) error {
	err := WaitHTTP(url, within, func() (bool, error) {
		if ended, err := p.Exited(); ended {
			return true, fmt.Errorf("%s exited: %v\n%s", p.Name, err, Tail(p.Output(), logTail))
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	return nil
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
