// Command release writes one orbweaver release into a folder (make release VERSION=x.y.z):
//
//	bin/         orbweaver (the CNI plugin), orbweaver-agent, orbweaver-controller and
//	             kubectl-orbweaver, static, linux/amd64, stamped with the version
//	images/      orbweaver-agent-<v>.oci.tar and orbweaver-controller-<v>.oci.tar: OCI image
//	             layouts named <registry>/<image>:<v>, labelled with the version and commit
//	orbweaver-<v>.tgz
//	             the chart, version and appVersion <v> (its images' tag), CRDs included
//	digests.txt  each image's manifest digest, for the chart's agent.image.digest and
//	             controller.image.digest once pushed
//	SHA256SUMS   of every file above
//
// The version is semantic (1.2.3, 1.2.3-rc.1; a leading v is dropped): it is the chart's
// version, the images' tag and what every binary says (--version).
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/orbweaver-ipam/orbweaver/internal/images"
)

// Options are what a release is made of.
type Options struct {
	// Root is the repository; Out the folder written (created, must not exist).
	Root, Out string
	// Version is semantic, without a leading v; Commit is what the binaries say beside it.
	Version, Commit string
	// Registry prefixes the images' names (ghcr.io/orbweaver-ipam, the chart's default).
	Registry string
	// Helm is the helm binary that packages the chart.
	Helm string
}

// semver is what helm accepts as a chart version.
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// binaries are the commands a release ships, by the name of their binary.
var binaries = map[string]string{
	"orbweaver":            "./cmd/orbweaver",
	"orbweaver-agent":      "./cmd/orbweaver-agent",
	"orbweaver-controller": "./cmd/orbweaver-controller",
	"kubectl-orbweaver":    "./cmd/kubectl-orbweaver",
}

func main() {
	var o Options
	flag.StringVar(&o.Version, "version", "", "the release's version, semantic (1.2.3; a leading v is dropped)")
	flag.StringVar(&o.Commit, "commit", "", "the commit the binaries name")
	flag.StringVar(&o.Registry, "registry", defaultRegistry, "the registry and path the images are named under")
	flag.StringVar(&o.Out, "out", "", "the folder to write (default dist/<version>)")
	flag.StringVar(&o.Helm, "helm", "bin/helm", "helm, to package the chart")
	flag.Parse()
	o.Root, _ = os.Getwd()
	o.Version = strings.TrimPrefix(o.Version, "v")
	if o.Out == "" {
		o.Out = filepath.Join("dist", o.Version)
	}
	if err := Release(o); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
	fmt.Println("release", o.Version, "written to", o.Out)
}

// Release writes the release o describes into o.Out.
func Release(o Options) error {
	if !semver.MatchString(o.Version) {
		return fmt.Errorf("version %q is not semantic (x.y.z, x.y.z-pre): make release VERSION=1.2.3", o.Version)
	}
	if _, err := os.Stat(o.Out); err == nil {
		return fmt.Errorf("%s exists: a release is written once; remove it first", o.Out)
	}
	bin := filepath.Join(o.Out, "bin")
	if err := os.MkdirAll(filepath.Join(o.Out, "images"), 0o755); err != nil {
		return err
	}
	ldflags := fmt.Sprintf("-s -w -X github.com/orbweaver-ipam/orbweaver/pkg/version.version=%s -X github.com/orbweaver-ipam/orbweaver/pkg/version.commit=%s", o.Version, o.Commit)
	pkgs := slices.Sorted(func(yield func(string) bool) {
		for _, p := range binaries {
			if !yield(p) {
				return
			}
		}
	})
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-ldflags", ldflags, "-o", bin + "/"}, pkgs...)...)
	cmd.Dir, cmd.Stderr = o.Root, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w", err)
	}

	labels := map[string]string{
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.revision": o.Commit,
		"org.opencontainers.image.source":   "https://github.com/orbweaver-ipam/orbweaver",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(bin, name)) }
	var digests bytes.Buffer
	for _, s := range images.Product {
		ref := fmt.Sprintf("%s/%s:%s", strings.TrimSuffix(o.Registry, "/"), s.Name, o.Version)
		img, err := images.Build(s, ref, read, labels)
		if err != nil {
			return err
		}
		path := filepath.Join(o.Out, "images", fmt.Sprintf("%s-%s.oci.tar", s.Name, o.Version))
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		d, err := images.WriteOCI(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		fmt.Fprintf(&digests, "%s@%s\n", ref, d)
	}
	if err := os.WriteFile(filepath.Join(o.Out, "digests.txt"), digests.Bytes(), 0o644); err != nil {
		return err
	}
	if err := packageChart(o); err != nil {
		return err
	}
	return checksums(o.Out)
}

// defaultRegistry is where the chart's image repositories point.
const defaultRegistry = "ghcr.io/orbweaver-ipam"

// packageChart packages charts/orbweaver with the version as version and appVersion (the
// images' tag); helm reads .helmignore, which leaves the Go file that embeds the CRDs
// out. With another registry than the chart's, the packaged values name it
// (imageRegistry), so the chart installs the release's images as it is.
func packageChart(o Options) error {
	src := filepath.Join(o.Root, "charts", "orbweaver")
	if reg := strings.TrimSuffix(o.Registry, "/"); reg != defaultRegistry {
		tmp, err := os.MkdirTemp("", "orbweaver-chart-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dst := filepath.Join(tmp, "orbweaver")
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			return err
		}
		values := filepath.Join(dst, "values.yaml")
		data, err := os.ReadFile(values)
		if err != nil {
			return err
		}
		const unset = "\nimageRegistry: \"\"\n"
		if !bytes.Contains(data, []byte(unset)) {
			return fmt.Errorf("the chart's values.yaml has no %q to set", strings.TrimSpace(unset))
		}
		data = bytes.Replace(data, []byte(unset), []byte(fmt.Sprintf("\nimageRegistry: %q\n", reg)), 1)
		if err := os.WriteFile(values, data, 0o644); err != nil {
			return err
		}
		src = dst
	}
	cmd := exec.Command(o.Helm, "package", src, "--version", o.Version, "--app-version", o.Version, "--destination", o.Out)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("helm package: %w: %s", err, out)
	}
	return nil
}

// checksums writes SHA256SUMS of every file under dir, by relative path.
func checksums(dir string) error {
	var sums bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), rel)
		return nil
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), sums.Bytes(), 0o644)
}
