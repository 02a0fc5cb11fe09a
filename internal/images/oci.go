package images

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// OCI media types of what WriteOCI writes.
const (
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// WriteOCI writes img to w as an OCI image layout in a tar (oci-layout, index.json,
// blobs/sha256/...), the manifest annotated with img.Ref's tag as its ref name and with
// img.Labels. It returns the manifest's digest: the image's digest once pushed with its
// layer as it is (skopeo copy --preserve-digests oci-archive:... docker://...).
func WriteOCI(w io.Writer, img Image) (string, error) {
	l, cfg, err := config(img)
	if err != nil {
		return "", err
	}
	annotations := map[string]string{}
	for k, v := range img.Labels {
		annotations[k] = v
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeManifest,
		"config":        Descriptor{MediaType: MediaTypeConfig, Digest: "sha256:" + digest(cfg), Size: int64(len(cfg))},
		"layers":        []Descriptor{{MediaType: MediaTypeLayer, Digest: "sha256:" + digest(l), Size: int64(len(l))}},
		"annotations":   annotations,
	})
	if err != nil {
		return "", err
	}
	tag := img.Ref
	if i := strings.LastIndex(tag, ":"); i > strings.LastIndex(tag, "/") {
		tag = tag[i+1:]
	} else {
		return "", fmt.Errorf("image %q: the reference has no tag", img.Ref)
	}
	md := "sha256:" + digest(manifest)
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []Descriptor{{MediaType: MediaTypeManifest, Digest: md, Size: int64(len(manifest)),
			Annotations: map[string]string{"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": img.Ref}}},
	})
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(w)
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Name: d, ModTime: epoch, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return "", err
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"blobs/sha256/" + digest(l), l},
		{"blobs/sha256/" + digest(cfg), cfg},
		{"blobs/sha256/" + digest(manifest), manifest},
		{"index.json", index},
	} {
		h := &tar.Header{Name: f.name, ModTime: epoch, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", err
		}
	}
	return md, tw.Close()
}
