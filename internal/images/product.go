package images

import "fmt"

// Spec is one image: which built binaries it holds, where, and what it runs.
type Spec struct {
	// Name is the image's name without registry or tag (orbweaver-agent).
	Name       string
	Entrypoint []string
	// Binaries maps a path in the image to the name of a built binary.
	Binaries map[string]string
}

// Product are orbweaver's images, as the chart runs them: the agent's holds the CNI
// plugin too, which its init container copies to the node.
var Product = []Spec{
	{Name: "orbweaver-agent", Entrypoint: []string{"/usr/bin/orbweaver-agent"},
		Binaries: map[string]string{"/usr/bin/orbweaver-agent": "orbweaver-agent", "/usr/bin/orbweaver": "orbweaver"}},
	{Name: "orbweaver-controller", Entrypoint: []string{"/usr/bin/orbweaver-controller"},
		Binaries: map[string]string{"/usr/bin/orbweaver-controller": "orbweaver-controller"}},
}

var (
	passwd = []byte("root:x:0:0:root:/:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n")
	group  = []byte("root:x:0:\nnobody:x:65534:\n")
)

// Build makes the image of s named ref, reading each binary by its name; /etc/passwd and
// /etc/group name root and nobody.
func Build(s Spec, ref string, read func(binary string) ([]byte, error), labels map[string]string) (Image, error) {
	files := []File{{Path: "/etc/passwd", Mode: 0o644, Data: passwd}, {Path: "/etc/group", Mode: 0o644, Data: group}}
	for path, bin := range s.Binaries {
		data, err := read(bin)
		if err != nil {
			return Image{}, fmt.Errorf("image %s: %w", ref, err)
		}
		files = append(files, File{Path: path, Mode: 0o755, Data: data})
	}
	return Image{Ref: ref, Files: files, Entrypoint: s.Entrypoint, Labels: labels}, nil
}
