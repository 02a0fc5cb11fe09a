package version

import (
	"runtime"
	"strings"
	"testing"
)

// TestStamped: what make build stamps is what --version says; an unstamped build says dev.
func TestStamped(t *testing.T) {
	if got := String("orbweaver-agent"); !strings.HasPrefix(got, "orbweaver-agent dev (commit ") || !strings.HasSuffix(got, runtime.Version()+")") {
		t.Errorf("unstamped: %q", got)
	}
	version, commit = "v1.2.3", "abc1234"
	t.Cleanup(func() { version, commit = "dev", "" })
	if got, want := String("orbweaver-controller"), "orbweaver-controller v1.2.3 (commit abc1234, "+runtime.Version()+")"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
