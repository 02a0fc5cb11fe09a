package cni

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// openLog returns the logger of one plugin invocation, writing JSON lines to
// c.FilePath, and the func that closes the file. It never writes to stdout, which
// carries the CNI result. With no file configured it returns a logger that
// discards everything.
func openLog(c LogConfig, now time.Time) (logr.Logger, func(), error) {
	if c.FilePath == "" {
		return logr.Discard(), func() {}, nil
	}
	f, err := openLogFile(c, now)
	if err != nil {
		return logr.Discard(), func() {}, err
	}
	log := funcr.NewJSON(func(obj string) {
		// One write per line: O_APPEND keeps lines of concurrent plugin
		// invocations apart. A failed write is not worth failing the call.
		_, _ = f.WriteString(obj + "\n")
	}, funcr.Options{
		LogTimestamp:    true,
		TimestampFormat: time.RFC3339Nano,
		Verbosity:       verbosity(c.Level),
	})
	return log.WithName("orbweaver"), func() { _ = f.Close() }, nil
}

// verbosity maps log_level to funcr's verbosity: debug lines are V(1), info V(0).
// logr has no warning level, so warn and error (-1) keep only errors.
func verbosity(level string) int {
	switch level {
	case LogLevelDebug:
		return 1
	case LogLevelInfo:
		return 0
	default:
		return -1
	}
}

func openLogFile(c LogConfig, now time.Time) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(c.FilePath), 0o755); err != nil {
		return nil, fmt.Errorf("create the log directory: %w", err)
	}
	rotateErr := rotate(c, now)
	f, err := os.OpenFile(c.FilePath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, errors.Join(err, rotateErr)
	}
	if rotateErr != nil {
		_, _ = fmt.Fprintf(f, "{\"logger\":\"orbweaver\",\"msg\":\"cannot rotate the log file\",\"error\":%q}\n", rotateErr.Error())
	}
	return f, nil
}

// rotate renames the log file to <file>.1 once it has reached c.MaxSizeMB, shifting
// older files up to <file>.<MaxCount> and removing any beyond, and removes rotated
// files older than c.MaxAgeDays. Each invocation writes a few lines, so checking once
// when the file is opened is enough. A lock file serialises the concurrent plugin
// invocations that find the file full at the same time.
func rotate(c LogConfig, now time.Time) error {
	limit := int64(c.MaxSizeMB) << 20
	if !atLimit(c.FilePath, limit) {
		return nil
	}
	lock, err := os.OpenFile(c.FilePath+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close() // also releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if !atLimit(c.FilePath, limit) { // another invocation rotated it meanwhile
		return nil
	}

	backup := func(i int) string { return fmt.Sprintf("%s.%d", c.FilePath, i) }
	var errs []error
	keep := func(err error) {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	keep(os.Remove(backup(c.MaxCount)))
	for i := c.MaxCount - 1; i >= 1; i-- {
		keep(os.Rename(backup(i), backup(i+1)))
	}
	if c.MaxCount > 0 {
		keep(os.Rename(c.FilePath, backup(1)))
	} else {
		keep(os.Remove(c.FilePath))
	}
	maxAge := time.Duration(c.MaxAgeDays) * 24 * time.Hour
	for i := 1; i <= c.MaxCount; i++ {
		if st, err := os.Stat(backup(i)); err == nil && now.Sub(st.ModTime()) > maxAge {
			keep(os.Remove(backup(i)))
		}
	}
	return errors.Join(errs...)
}

func atLimit(path string, limit int64) bool {
	st, err := os.Stat(path)
	return err == nil && st.Size() >= limit
}
