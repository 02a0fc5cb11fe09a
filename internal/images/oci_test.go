package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// TestWriteOCI reads a written OCI layout back as a registry client would: index.json
// names the manifest by the digest WriteOCI returned, every blob is stored under its own
// digest, the config's diff_id is the layer's digest, the layer holds the files, the
// labels reach the config and the manifest's annotations, and two writes are identical.
func TestWriteOCI(t *testing.T) {
	img := Image{Ref: "registry.example/orbweaver-agent:1.2.3", Entrypoint: []string{"/usr/bin/x"},
		Files:  []File{{Path: "/usr/bin/x", Mode: 0o755, Data: []byte("binary")}},
		Labels: map[string]string{"org.opencontainers.image.version": "1.2.3"}}
	var a, b bytes.Buffer
	md, err := WriteOCI(&a, img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteOCI(&b, img); err != nil {
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
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout %q", files["oci-layout"])
	}
	for name, data := range files {
		if len(name) > len("blobs/sha256/") && name[:len("blobs/sha256/")] == "blobs/sha256/" && digest(data) != name[len("blobs/sha256/"):] {
			t.Errorf("blob %s holds content of digest %s", name, digest(data))
		}
	}
	var index struct {
		Manifests []Descriptor
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json %s: %v", files["index.json"], err)
	}
	if m := index.Manifests[0]; m.Digest != md || m.Annotations["org.opencontainers.image.ref.name"] != "1.2.3" {
		t.Errorf("index names %+v, want digest %s and ref name 1.2.3", m, md)
	}
	var manifest struct {
		Config      Descriptor
		Layers      []Descriptor
		Annotations map[string]string
	}
	if err := json.Unmarshal(files["blobs/sha256/"+md[len("sha256:"):]], &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v", err)
	}
	if manifest.Annotations["org.opencontainers.image.version"] != "1.2.3" {
		t.Errorf("manifest annotations %v", manifest.Annotations)
	}
	var cfg struct {
		Config struct {
			Entrypoint []string
			Labels     map[string]string
		}
		Rootfs struct {
			DiffIDs []string `json:"diff_ids"`
		}
	}
	if err := json.Unmarshal(files["blobs/sha256/"+manifest.Config.Digest[len("sha256:"):]], &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Rootfs.DiffIDs) != 1 || cfg.Rootfs.DiffIDs[0] != manifest.Layers[0].Digest || cfg.Config.Labels["org.opencontainers.image.version"] != "1.2.3" {
		t.Errorf("config %+v, layer %s", cfg, manifest.Layers[0].Digest)
	}
	layer := tar.NewReader(bytes.NewReader(files["blobs/sha256/"+manifest.Layers[0].Digest[len("sha256:"):]]))
	found := false
	for {
		h, err := layer.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "usr/bin/x" {
			data, _ := io.ReadAll(layer)
			found = string(data) == "binary" && h.Mode == 0o755
		}
	}
	if !found {
		t.Error("the layer lacks usr/bin/x as written")
	}
	if _, err := WriteOCI(io.Discard, Image{Ref: "registry.example/x"}); err == nil {
		t.Error("a reference without a tag was accepted")
	}
}
