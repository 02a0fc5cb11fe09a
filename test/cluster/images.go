package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/orbweaver-ipam/orbweaver/internal/images"
)

// Image references the chart's values and the tests use.
const (
	AgentImage      = "localhost/orbweaver-agent:dev"
	ControllerImage = "localhost/orbweaver-controller:dev"
	PauseImage      = "localhost/pause:local"
	WorkloadImage   = "localhost/workload:local"
	// BusyboxImage stands in for busybox:1.28, which seed 001's manifests run: Debian's
	// busybox-static for sh, grep, echo, sleep and cat, and BusyBox 1.28's timeout
	// (test/images/timeout), whose -t newer BusyBox took away.
	BusyboxImage = "localhost/busybox:1.28-local"
)

// busyboxStatic is where Debian's busybox-static puts its binary (packages installs it).
const busyboxStatic = "/bin/busybox"

// buildImages builds the static binaries and writes one docker-archive per image into
// .cluster/images; it returns the tar files. The cloud emulator is built with them: it
// runs on the host, not in an image.
func (c *cluster) buildImages() ([]string, error) {
	bins := filepath.Join(c.dir, "images", "bin")
	if err := os.MkdirAll(bins, 0o755); err != nil {
		return nil, err
	}
	fmt.Println("building static binaries for the images")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bins+"/",
		"./cmd/orbweaver", "./cmd/orbweaver-agent", "./cmd/orbweaver-controller", "./test/images/pause", "./test/images/workload", "./test/images/timeout",
		"./test/cloudemu")
	cmd.Dir, cmd.Stdout, cmd.Stderr = c.root, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	read := func(name string) ([]byte, error) {
		if name == "busybox" {
			return os.ReadFile(busyboxStatic)
		}
		return os.ReadFile(filepath.Join(bins, name))
	}
	refs := map[string]string{"orbweaver-agent": AgentImage, "orbweaver-controller": ControllerImage}
	type build struct {
		spec images.Spec
		ref  string
	}
	specs := []build{
		{images.Spec{Name: "pause", Entrypoint: []string{"/pause"}, Binaries: map[string]string{"/pause": "pause"}}, PauseImage},
		{images.Spec{Name: "workload", Entrypoint: []string{"/workload"}, Binaries: map[string]string{"/workload": "workload"}}, WorkloadImage},
		{images.Spec{Name: "busybox", Entrypoint: []string{"/bin/sh"}, Binaries: map[string]string{
			"/bin/sh": "busybox", "/bin/grep": "busybox", "/bin/echo": "busybox", "/bin/sleep": "busybox", "/bin/cat": "busybox",
			"/bin/timeout": "timeout"}}, BusyboxImage},
	}
	for _, p := range images.Product {
		specs = append(specs, build{p, refs[p.Name]})
	}
	var out []string
	for _, s := range specs {
		img, err := images.Build(s.spec, s.ref, read, nil)
		if err != nil {
			return nil, err
		}
		tarPath := filepath.Join(c.dir, "images", s.spec.Name+".tar")
		f, err := os.Create(tarPath)
		if err != nil {
			return nil, err
		}
		err = images.Write(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.ref, err)
		}
		fmt.Printf("  %s -> %s\n", s.ref, tarPath)
		out = append(out, tarPath)
	}
	return out, nil
}
