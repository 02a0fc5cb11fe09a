package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInstallFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "orbweaver")
	if err := os.WriteFile(src, []byte("new plugin"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "opt", "cni", "bin")
	// An older plugin is replaced, not appended to.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "orbweaver"), []byte("old plugin, longer than the new one"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := InstallFile(src, dir, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "orbweaver"))
	if err != nil || string(got) != "new plugin" {
		t.Fatalf("installed %q, %v; want the new plugin", got, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "orbweaver"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v, %v; want 0755", fi.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if err := InstallFileAs(src, dir, "spiderpool", 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "spiderpool")); err != nil || string(got) != "new plugin" {
		t.Fatalf("installed as spiderpool: %q, %v", got, err)
	}
	if err := InstallFile(filepath.Join(t.TempDir(), "missing"), dir, 0o755); err == nil {
		t.Fatal("installing a missing file succeeded")
	}
}
