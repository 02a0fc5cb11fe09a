package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// InstallFile copies src into dir under its own name, atomically: a temporary file in
// dir, synced, then renamed over the old one, so that a container runtime never execs
// a half-written CNI plugin nor reads a half-written network config. The agent's init
// container installs the orbweaver plugin (and, when asked, a conflist) into the host's
// CNI folders this way.
func InstallFile(src, dir string, mode os.FileMode) error {
	return InstallFileAs(src, dir, filepath.Base(src), mode)
}

// InstallFileAs is InstallFile under another name: the plugin installed as
// "spiderpool" too serves SpiderPool's network configs ("ipam": {"type": "spiderpool"})
// unchanged.
func InstallFileAs(src, dir, name string, mode os.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("install %s: %w", src, err)
	}
	defer in.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("install %s into %s: %w", src, dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(src)+".tmp-*")
	if err != nil {
		return fmt.Errorf("install %s into %s: %w", src, dir, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("install %s into %s: %w", src, dir, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("install %s into %s: %w", src, dir, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("install %s into %s: %w", src, dir, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("install %s into %s: %w", src, dir, err)
	}
	dst := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("install %s as %s: %w", src, dst, err)
	}
	return nil
}
