package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/orbweaver-ipam/orbweaver/test/images"
)

// Image references the chart's values and the tests use.
const (
	AgentImage      = "localhost/orbweaver-agent:dev"
	ControllerImage = "localhost/orbweaver-controller:dev"
	PauseImage      = "localhost/pause:local"
	WorkloadImage   = "localhost/workload:local"
)

var passwd = []byte("root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n")
var group = []byte("root:x:0:\nnobody:x:65534:\n")

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
		"./cmd/orbweaver", "./cmd/orbweaver-agent", "./cmd/orbweaver-controller", "./test/images/pause", "./test/images/workload",
		"./test/cloudemu")
	cmd.Dir, cmd.Stdout, cmd.Stderr = c.root, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build: %w", err)
	}
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(bins, name)) }
	base := []images.File{{Path: "/etc/passwd", Mode: 0o644, Data: passwd}, {Path: "/etc/group", Mode: 0o644, Data: group}}
	specs := []struct {
		file, ref  string
		entrypoint []string
		binaries   map[string]string // image path -> built binary
	}{
		{"orbweaver-agent.tar", AgentImage, []string{"/usr/bin/orbweaver-agent"}, map[string]string{"/usr/bin/orbweaver-agent": "orbweaver-agent", "/usr/bin/orbweaver": "orbweaver"}},
		{"orbweaver-controller.tar", ControllerImage, []string{"/usr/bin/orbweaver-controller"}, map[string]string{"/usr/bin/orbweaver-controller": "orbweaver-controller"}},
		{"pause.tar", PauseImage, []string{"/pause"}, map[string]string{"/pause": "pause"}},
		{"workload.tar", WorkloadImage, []string{"/workload"}, map[string]string{"/workload": "workload"}},
	}
	var out []string
	for _, s := range specs {
		files := append([]images.File(nil), base...)
		for path, bin := range s.binaries {
			data, err := read(bin)
			if err != nil {
				return nil, err
			}
			files = append(files, images.File{Path: path, Mode: 0o755, Data: data})
		}
		tarPath := filepath.Join(c.dir, "images", s.file)
		f, err := os.Create(tarPath)
		if err != nil {
			return nil, err
		}
		err = images.Write(f, images.Image{Ref: s.ref, Files: files, Entrypoint: s.entrypoint})
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
