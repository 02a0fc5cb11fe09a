package cni

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLogRotation(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const mb = 1 << 20
	tests := []struct {
		name     string
		size     int64 // of the current file before opening
		backups  map[int]time.Duration
		maxCount int
		want     []string // files after opening, besides the lock file
	}{
		{name: "below the limit", size: mb - 1, want: []string{"o.log"}},
		{name: "at the limit", size: mb, want: []string{"o.log", "o.log.1"}},
		{name: "no file yet", size: -1, want: []string{"o.log"}},
		{
			name: "shifts backups and drops the oldest", size: 2 * mb, maxCount: 2,
			backups: map[int]time.Duration{1: time.Hour, 2: 2 * time.Hour},
			want:    []string{"o.log", "o.log.1", "o.log.2"},
		},
		{
			name: "removes backups older than max age", size: mb, maxCount: 4,
			backups: map[int]time.Duration{1: time.Hour, 2: 31 * 24 * time.Hour},
			want:    []string{"o.log", "o.log.1", "o.log.2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			c := LogConfig{Level: LogLevelInfo, FilePath: filepath.Join(dir, "o.log"), MaxSizeMB: 1, MaxAgeDays: 30, MaxCount: 10}
			if tt.maxCount != 0 {
				c.MaxCount = tt.maxCount
			}
			if tt.size >= 0 {
				writeSized(t, c.FilePath, tt.size, now)
			}
			for i, age := range tt.backups {
				writeSized(t, backupName(c.FilePath, i), int64(i), now.Add(-age))
			}
			log, closeLog, err := openLog(c, now)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("line")
			closeLog()

			var got []string
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "o.log.lock" {
					got = append(got, e.Name())
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("files %q, want %q", got, tt.want)
			}
			if fresh := tt.size < 0 || len(tt.want) > 1; fresh {
				if msgs := readLog(t, c.FilePath); !slices.Equal(msgs, []string{"line"}) {
					t.Errorf("the new log file has %q, want only \"line\"", msgs)
				}
			}
			if tt.backups != nil {
				// o.log.<i> had size i before the shift; it is o.log.<i+1> now.
				st, err := os.Stat(backupName(c.FilePath, 2))
				if err != nil || st.Size() != 1 {
					t.Errorf("o.log.2 is not the old o.log.1: %v %v", st, err)
				}
			}
		})
	}
}

func backupName(path string, i int) string {
	return fmt.Sprintf("%s.%d", path, i)
}

func writeSized(t *testing.T, path string, size int64, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestLogOff(t *testing.T) {
	log, closeLog, err := openLog(LogConfig{FilePath: ""}, time.Now())
	if err != nil || log.Enabled() {
		t.Errorf("logging off: enabled %v, err %v", log.Enabled(), err)
	}
	closeLog()
}

// A log file that cannot be opened does not fail the command; stderr says so.
func TestLogFileCannotBeOpened(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startAgent(t, nil)
	var out, stderr bytes.Buffer
	p := Plugin{Stdout: &out, Stderr: &stderr}
	// The log's directory would have to be created below a regular file.
	conf := netConf(t, "1.1.0", agent.socket, map[string]any{"log_file_path": filepath.Join(blocker, "sub", "o.log")})
	if err := p.Add(cmdArgs(conf)); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out.Bytes()) {
		t.Errorf("stdout is not the result: %q", out.String())
	}
	if !strings.Contains(stderr.String(), "cannot open log file") {
		t.Errorf("stderr %q", stderr.String())
	}
}
