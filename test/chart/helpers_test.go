package chart

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

const (
	release   = "orbweaver"
	namespace = "kube-system"
	// kubeVersion is what the chart is rendered for: the Kubernetes of the tests (the
	// Makefile's CHART_KUBE_VERSION).
	kubeVersion = "1.33.1"
)

// repoRoot is the repository root.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "orbweaver") }

// valueSet is one way to install the chart.
type valueSet struct {
	name string
	args []string // helm arguments: -f FILE, --set ...
}

// valueSets are the default values and ci/all-on-values.yaml, which sets every option.
func valueSets(t testing.TB) []valueSet {
	return []valueSet{
		{name: "default values"},
		{name: "every option on", args: []string{"-f", filepath.Join(chartDir(t), "ci", "all-on-values.yaml")}},
	}
}

// runHelm runs bin/helm with its state folders in a temporary folder; it returns stdout
// and an error that carries stderr.
func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	helm := filepath.Join(repoRoot(t), "bin", "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("bin/helm: %v; run `make tools`", err)
	}
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// templateRaw renders the chart as release "orbweaver" in kube-system.
func templateRaw(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return runHelm(t, append([]string{"template", release, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
}

// objects are the rendered documents.
type objects []*unstructured.Unstructured

// render renders the chart and decodes every document; it fails the test on any error.
func render(t testing.TB, args ...string) objects {
	t.Helper()
	out, err := templateRaw(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatalf("helm template %v: %v", args, err)
	}
	return objs
}

// decode reads every YAML document into an unstructured object; an empty document is
// skipped, one without apiVersion, kind or name is an error.
func decode(manifest string) (objects, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	var out objects
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w\n%s", i, err, doc)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document %d has no apiVersion, kind or name:\n%s", i, doc)
		}
		out = append(out, u)
	}
}

// ofKind returns the objects of a kind.
func (o objects) ofKind(kind string) objects {
	var out objects
	for _, u := range o {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// get returns the object of that kind and name, or nil.
func (o objects) get(kind, name string) *unstructured.Unstructured {
	for _, u := range o {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	return nil
}

// into converts an object to its typed form, refusing fields the type does not have.
func into[T any](t testing.TB, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

// rendered is what the tests look at most: the two workloads and their main containers.
type rendered struct {
	objs                 objects
	daemonSet            *appsv1.DaemonSet
	deployment           *appsv1.Deployment
	agent, controller    corev1.Container
	agentFlags, ctlFlags map[string]string
	// install is the agent's init container, `orbweaver-agent install-cni` with
	// installFlags.
	install      corev1.Container
	installFlags map[string]string
}

func parse(t testing.TB, objs objects) rendered {
	t.Helper()
	r := rendered{objs: objs}
	ds, deps := objs.ofKind("DaemonSet"), objs.ofKind("Deployment")
	if len(ds) != 1 || len(deps) != 1 {
		t.Fatalf("want one DaemonSet and one Deployment, got %d and %d", len(ds), len(deps))
	}
	r.daemonSet = into[appsv1.DaemonSet](t, ds[0])
	r.deployment = into[appsv1.Deployment](t, deps[0])
	r.agent = container(t, r.daemonSet.Spec.Template.Spec.Containers, "agent")
	r.controller = container(t, r.deployment.Spec.Template.Spec.Containers, "controller")
	r.agentFlags, r.ctlFlags = flagsOf(t, r.agent.Name, r.agent.Args), flagsOf(t, r.controller.Name, r.controller.Args)
	r.install = container(t, r.daemonSet.Spec.Template.Spec.InitContainers, "install-cni")
	if len(r.install.Args) == 0 || r.install.Args[0] != "install-cni" {
		t.Fatalf("the init container runs %v %v; want orbweaver-agent install-cni", r.install.Command, r.install.Args)
	}
	r.installFlags = flagsOf(t, r.install.Name, r.install.Args[1:])
	return r
}

func container(t testing.TB, cs []corev1.Container, name string) corev1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// flagsOf reads a container's args, each --name=value (or --name), into a map.
func flagsOf(t testing.TB, container string, args []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			t.Fatalf("container %s: argument %q is not a --flag", container, a)
		}
		name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if _, dup := out[name]; dup {
			t.Fatalf("container %s: --%s given twice", container, name)
		}
		out[name] = value
	}
	return out
}

// envFieldPath returns the field path a container's env var is read from ("" if not a fieldRef).
func envFieldPath(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

// volumeAt returns the pod volume mounted by c at path, or nil.
func volumeAt(spec corev1.PodSpec, c corev1.Container, path string) *corev1.Volume {
	for _, m := range c.VolumeMounts {
		if m.MountPath != path {
			continue
		}
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == m.Name {
				return &spec.Volumes[i]
			}
		}
	}
	return nil
}

// under reports whether path is inside one of c's volume mounts.
func under(c corev1.Container, path string) bool {
	return slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
	})
}

// rbac

// need is one permission: a verb on a resource of a group, on an object of that name
// ("" for any object, or for create, which has no name yet).
type need struct{ group, resource, verb, name string }

func (n need) String() string {
	s := fmt.Sprintf("%s %s.%s", n.verb, n.resource, n.group)
	if n.name != "" {
		s += "/" + n.name
	}
	return s
}

func has(list []string, s string) bool { return slices.Contains(list, s) || slices.Contains(list, "*") }

// allows reports whether a rule grants n. A rule limited to resourceNames grants only
// those names, never a need for any object.
func allows(rules []rbacv1.PolicyRule, n need) bool {
	return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
		return has(r.APIGroups, n.group) && has(r.Resources, n.resource) && has(r.Verbs, n.verb) &&
			(len(r.ResourceNames) == 0 || n.name != "" && slices.Contains(r.ResourceNames, n.name))
	})
}

// grants are the rules bound to a ServiceAccount: cluster-wide, and per namespace.
type grants struct {
	cluster    []rbacv1.PolicyRule
	namespaced map[string][]rbacv1.PolicyRule
}

// grantsOf collects what the rendered bindings give the ServiceAccount ns/name. A binding
// to a role the chart does not render fails the test.
func grantsOf(t testing.TB, objs objects, ns, name string) grants {
	t.Helper()
	g := grants{namespaced: map[string][]rbacv1.PolicyRule{}}
	bound := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Namespace == ns && s.Name == name
		})
	}
	rulesOf := func(ref rbacv1.RoleRef, bindingNS string) []rbacv1.PolicyRule {
		if ref.Kind == "ClusterRole" {
			if u := objs.get("ClusterRole", ref.Name); u != nil {
				return into[rbacv1.ClusterRole](t, u).Rules
			}
		} else if u := objs.get("Role", ref.Name); u != nil && u.GetNamespace() == bindingNS {
			return into[rbacv1.Role](t, u).Rules
		}
		t.Fatalf("a binding of %s/%s refers to %s %s, which the chart does not render", ns, name, ref.Kind, ref.Name)
		return nil
	}
	for _, u := range objs.ofKind("ClusterRoleBinding") {
		b := into[rbacv1.ClusterRoleBinding](t, u)
		if bound(b.Subjects) {
			g.cluster = append(g.cluster, rulesOf(b.RoleRef, "")...)
		}
	}
	for _, u := range objs.ofKind("RoleBinding") {
		b := into[rbacv1.RoleBinding](t, u)
		if bound(b.Subjects) {
			g.namespaced[b.Namespace] = append(g.namespaced[b.Namespace], rulesOf(b.RoleRef, b.Namespace)...)
		}
	}
	return g
}

// all is every rule, wherever it applies.
func (g grants) all() []rbacv1.PolicyRule {
	out := slices.Clone(g.cluster)
	for _, rules := range g.namespaced {
		out = append(out, rules...)
	}
	return out
}

// binaries

// builtBinaries holds cmd/orbweaver-agent and cmd/orbweaver-controller, built once for
// every test that needs them into a folder TestMain removes (cleanupBinaries).
type builtBinaries struct {
	once     sync.Once
	dir, err string
}

var built builtBinaries

// binary returns the path of a freshly built cmd/<name>.
func binary(t testing.TB, name string) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "orbweaver-chart-test-")
		if err != nil {
			built.err = err.Error()
			return
		}
		built.dir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/orbweaver-agent", "./cmd/orbweaver-controller")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Sprintf("go build: %v: %s", err, out)
		}
	})
	if built.err != "" {
		t.Fatal(built.err)
	}
	return filepath.Join(built.dir, name)
}

func cleanupBinaries() {
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

var flagLine = regexp.MustCompile(`(?m)^\s+-([a-zA-Z0-9][a-zA-Z0-9._-]*)`)

// flagNames runs a binary (with a subcommand, if given) with -h and returns the flags its
// usage lists. A subcommand may exit non-zero after "help requested".
func flagNames(t testing.TB, bin string, subcommand ...string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append(subcommand, "-h")...).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("help requested")) {
		t.Fatalf("%s %v -h: %v: %s", bin, subcommand, err, out)
	}
	names := map[string]bool{}
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	if len(names) < 2 {
		t.Fatalf("%s -h lists %d flags; cannot read its usage:\n%s", bin, len(names), out)
	}
	return names
}
