// Package images builds container images without Docker: a single-layer image, from
// files given in memory, in the docker-archive format (what `docker save` writes and
// `ctr images import` reads; the local cluster imports them into containerd) or as an
// OCI image layout archive (what `make release` ships; skopeo, crane, podman and
// `ctr images import` read it).
package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
)

// File is one file of an image's only layer.
type File struct {
	// Path is absolute inside the image, e.g. /usr/bin/orbweaver-agent.
	Path string
	Mode int64
	Data []byte
}

// Image is what Write builds.
type Image struct {
	// Ref is the image's name, e.g. localhost/orbweaver-agent:dev.
	Ref        string
	Files      []File
	Entrypoint []string
	Cmd        []string
	Env        []string
	// Labels go into the image configuration (org.opencontainers.image.version, ...).
	Labels map[string]string
}

// epoch is every entry's modification time: equal inputs give equal images.
var epoch = time.Unix(0, 0)

// layer returns the layer tar: the files and their parent folders, by name.
func layer(files []File) ([]byte, error) {
	dirs := map[string]bool{}
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "/") {
			return nil, fmt.Errorf("image file %q: the path must be absolute", f.Path)
		}
		for d := path.Dir(f.Path); d != "/"; d = path.Dir(d) {
			dirs[strings.TrimPrefix(d, "/")+"/"] = true
		}
	}
	for _, d := range []string{"tmp/", "proc/", "sys/", "dev/", "etc/"} {
		dirs[d] = true
	}
	type entry struct {
		name string
		file *File
	}
	var entries []entry
	for d := range dirs {
		entries = append(entries, entry{name: d})
	}
	for i := range files {
		entries = append(entries, entry{name: strings.TrimPrefix(files[i].Path, "/"), file: &files[i]})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, ModTime: epoch, Format: tar.FormatPAX}
		if e.file == nil {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
			if e.name == "tmp/" {
				h.Mode = 0o1777
			}
		} else {
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, e.file.Mode, int64(len(e.file.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.file != nil {
			if _, err := tw.Write(e.file.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// config returns img's only layer and its image configuration.
func config(img Image) (layerTar, cfg []byte, err error) {
	l, err := layer(img.Files)
	if err != nil {
		return nil, nil, err
	}
	env := img.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	}
	c := map[string]any{"Env": env, "Entrypoint": img.Entrypoint, "Cmd": img.Cmd, "WorkingDir": "/"}
	if len(img.Labels) > 0 {
		c["Labels"] = img.Labels
	}
	cfg, err = json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      epoch.UTC().Format(time.RFC3339),
		"config":       c,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + digest(l)}},
		"history":      []map[string]any{{"created": epoch.UTC().Format(time.RFC3339), "created_by": "orbweaver internal/images"}},
	})
	return l, cfg, err
}

// Write writes img to w as a docker-archive tar.
func Write(w io.Writer, img Image) error {
	l, cfg, err := config(img)
	if err != nil {
		return err
	}
	diffID := digest(l)
	cfgName := digest(cfg) + ".json"
	manifest, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{img.Ref}, "Layers": []string{diffID + "/layer.tar"}}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, f := range []struct {
		name string
		data []byte
		dir  bool
	}{{name: diffID + "/", dir: true}, {name: diffID + "/layer.tar", data: l}, {name: cfgName, data: cfg}, {name: "manifest.json", data: manifest}} {
		h := &tar.Header{Name: f.name, ModTime: epoch, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !f.dir {
			if _, err := tw.Write(f.data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}
