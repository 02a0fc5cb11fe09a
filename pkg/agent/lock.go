package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// lockNode takes an exclusive lock on path, waiting while another agent of the node
// holds it. The kernel drops the lock when its holder exits, however it exits, so a
// crashed agent never keeps its successor out. Two agents that handed out one node's
// reserve at once could give one address to two pods; the lock makes that impossible on
// one host (the DaemonSet mounts the socket's directory from the host).
func lockNode(ctx context.Context, path string, log logr.Logger) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("orbweaver agent: lock file directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("orbweaver agent: lock file: %w", err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing drops the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("orbweaver agent: lock %s: %w", path, err)
		}
		if !logged {
			log.Info("another agent of this node holds the node lock; waiting for it to exit", "lock", path)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("orbweaver agent: waiting for the node lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
