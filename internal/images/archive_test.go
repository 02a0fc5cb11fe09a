package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// TestWrite reads a written image back as `ctr images import` would: the manifest names
// the config and the layer, the config's diff_id is the layer's digest, and the layer
// holds the files with their parent folders.
func TestWrite(t *testing.T) {
	img := Image{Ref: "localhost/x:dev", Entrypoint: []string{"/usr/bin/x"},
		Files: []File{{Path: "/usr/bin/x", Mode: 0o755, Data: []byte("binary")}, {Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/:/bin/false\n")}}}
	var a, b bytes.Buffer
	if err := Write(&a, img); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of one image differ: the build is not reproducible")
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&a)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest %s: %v", files["manifest.json"], err)
	}
	m := manifest[0]
	if len(m.RepoTags) != 1 || m.RepoTags[0] != img.Ref || len(m.Layers) != 1 {
		t.Fatalf("manifest %+v", m)
	}
	var cfg struct {
		Rootfs struct {
			DiffIDs []string `json:"diff_ids"`
		}
		Config struct{ Entrypoint []string }
	}
	if err := json.Unmarshal(files[m.Config], &cfg); err != nil {
		t.Fatal(err)
	}
	layerTar := files[m.Layers[0]]
	if cfg.Rootfs.DiffIDs[0] != "sha256:"+digest(layerTar) || cfg.Config.Entrypoint[0] != "/usr/bin/x" {
		t.Fatalf("config %+v does not match the layer %s", cfg, digest(layerTar))
	}
	inLayer := map[string]byte{}
	lr := tar.NewReader(bytes.NewReader(layerTar))
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		inLayer[h.Name] = h.Typeflag
	}
	for name, typ := range map[string]byte{"usr/": tar.TypeDir, "usr/bin/": tar.TypeDir, "usr/bin/x": tar.TypeReg, "etc/passwd": tar.TypeReg, "tmp/": tar.TypeDir} {
		if inLayer[name] != typ {
			t.Errorf("layer entry %s: type %q, want %q", name, inLayer[name], typ)
		}
	}
}
