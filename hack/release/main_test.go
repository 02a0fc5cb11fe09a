package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/internal/images"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// TestRelease writes release 0.0.0-test under another registry than the chart's and
// reads it back as an operator installs it: every binary says 0.0.0-test and the commit;
// each OCI image is named <registry>/<image>:0.0.0-test, labelled with the version,
// holds the very binaries of bin/, and digests.txt gives its manifest's digest; the
// packaged chart has version and appVersion 0.0.0-test, its CRDs and not the Go file,
// and renders the release's images (by tag, and by digest when given); SHA256SUMS holds.
// A version that is not semantic is refused before anything is built.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four binaries")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helm := filepath.Join(root, "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("helm: %v (run `make tools`)", err)
	}
	out := filepath.Join(t.TempDir(), "release")
	const version, commit, registry = "0.0.0-test", "abc123def456", "registry.example/mirror"
	if err := Release(Options{Root: root, Out: filepath.Join(t.TempDir(), "bad"), Version: "1.2", Helm: helm}); err == nil || !strings.Contains(err.Error(), "not semantic") {
		t.Errorf("version 1.2: %v, want a refusal", err)
	}
	if err := Release(Options{Root: root, Out: out, Version: version, Commit: commit, Registry: registry, Helm: helm}); err != nil {
		t.Fatal(err)
	}

	// The binaries.
	for _, b := range []string{"orbweaver-agent", "orbweaver-controller"} {
		got, err := exec.Command(filepath.Join(out, "bin", b), "--version").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(got), b+" "+version+" (commit "+commit+", ") {
			t.Errorf("%s --version: %q (%v)", b, got, err)
		}
	}
	if got, err := exec.Command(filepath.Join(out, "bin", "kubectl-orbweaver"), "version").CombinedOutput(); err != nil ||
		!strings.HasPrefix(string(got), "kubectl-orbweaver "+version+" (commit "+commit+", ") {
		t.Errorf("kubectl-orbweaver version: %q (%v)", got, err)
	}
	// The plugin says it when run without CNI_COMMAND (the CNI library's "about").
	if got, _ := exec.Command(filepath.Join(out, "bin", "orbweaver")).CombinedOutput(); !strings.Contains(string(got), "orbweaver "+version+" (commit "+commit+", ") {
		t.Errorf("the CNI plugin says %q", got)
	}

	// The images.
	digests := map[string]string{}
	data, err := os.ReadFile(filepath.Join(out, "digests.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Fields(string(data)) {
		ref, d, _ := strings.Cut(line, "@")
		digests[ref] = d
	}
	for _, s := range images.Product {
		ref := registry + "/" + s.Name + ":" + version
		files := untar(t, filepath.Join(out, "images", s.Name+"-"+version+".oci.tar"))
		var index struct{ Manifests []images.Descriptor }
		if err := json.Unmarshal(files["index.json"], &index); err != nil || len(index.Manifests) != 1 {
			t.Fatalf("%s: index.json %s (%v)", s.Name, files["index.json"], err)
		}
		m := index.Manifests[0]
		if m.Annotations["io.containerd.image.name"] != ref || m.Annotations["org.opencontainers.image.ref.name"] != version || digests[ref] != m.Digest {
			t.Errorf("%s: index %+v, digests.txt %q; want %s at the digest digests.txt gives", s.Name, m, digests[ref], ref)
		}
		var manifest struct {
			Config images.Descriptor
			Layers []images.Descriptor
		}
		if err := json.Unmarshal(blob(files, m.Digest), &manifest); err != nil || len(manifest.Layers) != 1 {
			t.Fatalf("%s: manifest: %v", s.Name, err)
		}
		var cfg struct {
			Config struct{ Labels map[string]string }
		}
		if err := json.Unmarshal(blob(files, manifest.Config.Digest), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Config.Labels["org.opencontainers.image.version"] != version || cfg.Config.Labels["org.opencontainers.image.revision"] != commit {
			t.Errorf("%s: labels %v", s.Name, cfg.Config.Labels)
		}
		layer := untarBytes(t, blob(files, manifest.Layers[0].Digest))
		for path, bin := range s.Binaries {
			want, _ := os.ReadFile(filepath.Join(out, "bin", bin))
			if got, ok := layer[strings.TrimPrefix(path, "/")]; !ok || !bytes.Equal(got, want) {
				t.Errorf("%s: %s is not bin/%s", s.Name, path, bin)
			}
		}
	}

	// The chart.
	chart := filepath.Join(out, "orbweaver-"+version+".tgz")
	show, err := exec.Command(helm, "show", "chart", chart).CombinedOutput()
	if err != nil || !strings.Contains(string(show), "\nversion: "+version+"\n") || !strings.Contains(string(show), "appVersion: "+version+"\n") {
		t.Errorf("helm show chart: %s (%v)", show, err)
	}
	list, err := exec.Command("tar", "-tzf", chart).CombinedOutput()
	if err != nil || !strings.Contains(string(list), "orbweaver/crds/spiderpool.spidernet.io_spiderippools.yaml") || strings.Contains(string(list), ".go\n") {
		t.Errorf("the chart holds:\n%s (%v); want its CRDs and no Go file", list, err)
	}
	rendered, err := exec.Command(helm, "template", "orbweaver", chart, "--namespace", "kube-system").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, rendered)
	}
	for _, s := range images.Product {
		if want := "image: " + registry + "/" + s.Name + ":" + version + "\n"; !strings.Contains(string(rendered), want) {
			t.Errorf("the chart does not render %q", strings.TrimSpace(want))
		}
	}
	agentRef := registry + "/orbweaver-agent:" + version
	pinned, err := exec.Command(helm, "template", "orbweaver", chart, "--set", "agent.image.digest="+digests[agentRef]).CombinedOutput()
	if want := "image: " + registry + "/orbweaver-agent@" + digests[agentRef] + "\n"; err != nil || !strings.Contains(string(pinned), want) {
		t.Errorf("with agent.image.digest the chart does not render %q (%v)", strings.TrimSpace(want), err)
	}

	// The checksums.
	f, err := os.Open(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		sum, name, _ := strings.Cut(sc.Text(), "  ")
		data, err := os.ReadFile(filepath.Join(out, name))
		h := sha256.Sum256(data)
		if err != nil || hex.EncodeToString(h[:]) != sum {
			t.Errorf("SHA256SUMS: %s does not match (%v)", name, err)
		}
	}
	if n != 4+len(images.Product)+2 {
		t.Errorf("SHA256SUMS has %d files, want %d", n, 4+len(images.Product)+2)
	}
}

func untar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return untarBytes(t, data)
}

func untarBytes(t *testing.T, data []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		files[h.Name] = b
	}
}

func blob(files map[string][]byte, digest string) []byte {
	return files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
}
