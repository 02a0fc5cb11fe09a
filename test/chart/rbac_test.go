package chart

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/orbweaver-ipam/orbweaver/pkg/crdcheck"
)

// generatedRoles reads charts/orbweaver/files/rbac/<file>, which `make generate` writes
// from the +kubebuilder:rbac markers, by "ClusterRole <name>" or "Role <name>". Its Roles
// are in the namespace "system", which stands for the release's.
func generatedRoles(t testing.TB, file string) map[string][]rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(t), "files", "rbac", file))
	if err != nil {
		t.Fatalf("%v; run make generate", err)
	}
	out := map[string][]rbacv1.PolicyRule{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("files/rbac/%s: %v", file, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue // the header
		}
		var role rbacv1.Role // a ClusterRole has the same fields, and no namespace
		if err := yaml.UnmarshalStrict(doc, &role); err != nil {
			t.Fatalf("files/rbac/%s: %v", file, err)
		}
		switch {
		case role.Kind == "ClusterRole" && role.Namespace == "", role.Kind == "Role" && role.Namespace == "system":
		default:
			t.Fatalf("files/rbac/%s: %s %s/%s; want ClusterRoles, and Roles in the namespace system", file, role.Kind, role.Namespace, role.Name)
		}
		out[role.Kind+" "+role.Name] = role.Rules
	}
	if len(out) == 0 {
		t.Fatalf("files/rbac/%s has no role", file)
	}
	return out
}

// stripComments drops the YAML comment lines of a document.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// TestAgentRBAC: the agent may not write pods nor touch Secrets, anywhere; its
// permissions are exactly the ClusterRole generated from its markers
// (files/rbac/agent.yaml).
func TestAgentRBAC(t *testing.T) {
	roles := generatedRoles(t, "agent.yaml")
	generated, ok := roles["ClusterRole orbweaver-agent"]
	if !ok || len(roles) != 1 {
		t.Fatalf("files/rbac/agent.yaml has %v; want only ClusterRole orbweaver-agent", slices.Sorted(maps.Keys(roles)))
	}
	for _, vs := range valueSets(t) {
		t.Run(vs.name, func(t *testing.T) {
			r := parse(t, render(t, vs.args...))
			sa := r.daemonSet.Spec.Template.Spec.ServiceAccountName
			g := grantsOf(t, r.objs, namespace, sa)
			if len(g.cluster) == 0 {
				t.Fatalf("no ClusterRole is bound to the agent's ServiceAccount %s", sa)
			}
			if len(g.namespaced) != 0 {
				t.Errorf("the agent has namespaced roles too: %v", g.namespaced)
			}
			for _, rule := range g.all() {
				onPods := has(rule.APIGroups, "") && slices.ContainsFunc(rule.Resources, func(res string) bool {
					return res == "*" || res == "pods" || strings.HasPrefix(res, "pods/")
				})
				for _, verb := range []string{"create", "update", "patch", "delete", "deletecollection"} {
					if onPods && has(rule.Verbs, verb) {
						t.Errorf("the agent may %s pods: %+v", verb, rule)
					}
				}
				if has(rule.APIGroups, "") && has(rule.Resources, "secrets") {
					t.Errorf("the agent may touch Secrets: %+v", rule)
				}
				if len(rule.ResourceNames) != 0 || len(rule.NonResourceURLs) != 0 {
					t.Errorf("unexpected rule shape: %+v", rule)
				}
			}
			if got, want := expand(g.all()), expand(generated); !reflect.DeepEqual(got, want) {
				t.Errorf("the agent's permissions differ from files/rbac/agent.yaml (make generate):\nonly in the chart: %v\nonly generated: %v",
					minus(got, want), minus(want, got))
			}
		})
	}
}

// controllerRoles says, for each role of files/rbac/controller.yaml, whether the
// controller run with these flags needs it: the chart must grant exactly those.
func controllerRoles(flags map[string]string) map[string]bool {
	certs := boolFlag(flags, "manage-webhook-certs", true)
	return map[string]bool{
		"ClusterRole orbweaver-controller":                true,
		"Role orbweaver-controller":                       true,
		"ClusterRole orbweaver-controller-upgrade-crds":   boolFlag(flags, "upgrade-crds", true),
		"ClusterRole orbweaver-controller-webhook-certs":  certs,
		"Role orbweaver-controller-webhook-certs":         certs,
		"ClusterRole orbweaver-controller-metrics-secure": boolFlag(flags, "metrics-secure", false),
	}
}

// boolFlag is a boolean flag's value: --name or --name=true, --name=false, or def.
func boolFlag(flags map[string]string, name string, def bool) bool {
	v, set := flags[name]
	if !set {
		return def
	}
	return v == "" || v == "true"
}

// TestControllerRBAC: the controller's bindings grant exactly the roles generated from
// its markers (files/rbac/controller.yaml) that its flags need, the namespaced ones
// (Secret, Leases) through a Role in the release namespace, with the chart's names in
// place of the binary's defaults, and the third-party kinds' reads; the objects it names
// (its flags, its Leases, orbweaver's CRDs) are granted; no Secret outside its namespace.
func TestControllerRBAC(t *testing.T) {
	roles := controllerRoles(nil)
	generated := generatedRoles(t, "controller.yaml")
	for name := range generated {
		if _, ok := roles[name]; !ok {
			t.Errorf("files/rbac/controller.yaml has %s, which the chart does not grant: add it to templates/rbac-controller.yaml and to controllerRoles", name)
		}
	}
	for name := range roles {
		if _, ok := generated[name]; !ok {
			t.Errorf("files/rbac/controller.yaml has no %s; run make generate", name)
		}
	}
	tests := []struct {
		valueSet
		thirdParty []need
	}{
		{valueSet: valueSets(t)[0]},
		{valueSet: valueSets(t)[1], thirdParty: []need{
			{group: "apps.kruise.io", resource: "clonesets"}, {group: "apps.kruise.io", resource: "statefulsets"},
		}},
		{valueSet: valueSet{name: "certManager, no CRD upgrade", args: []string{"--set", "tls.method=certManager,crds.upgrade=false"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := parse(t, render(t, tt.args...))
			g := grantsOf(t, r.objs, namespace, r.deployment.Spec.Template.Spec.ServiceAccountName)

			// What the flags need, the binary's default names replaced by the flags'.
			var wantCluster, wantNamespaced []rbacv1.PolicyRule
			for name, needed := range controllerRoles(r.ctlFlags) {
				if !needed {
					continue
				}
				for _, rule := range generated[name] {
					rule = *rule.DeepCopy()
					if len(rule.ResourceNames) > 0 && strings.HasSuffix(name, "-webhook-certs") {
						switch {
						case slices.Equal(rule.Resources, []string{"secrets"}):
							rule.ResourceNames = []string{r.ctlFlags["webhook-cert-secret"]}
						case slices.ContainsFunc(rule.Resources, func(res string) bool { return strings.HasSuffix(res, "webhookconfigurations") }):
							rule.ResourceNames = []string{r.ctlFlags["webhook-configuration"]}
						default:
							t.Fatalf("%s: a named rule the test does not know: %+v", name, rule)
						}
					}
					if strings.HasPrefix(name, "Role ") {
						wantNamespaced = append(wantNamespaced, rule)
					} else {
						wantCluster = append(wantCluster, rule)
					}
				}
			}
			for _, n := range tt.thirdParty {
				wantCluster = append(wantCluster, rbacv1.PolicyRule{APIGroups: []string{n.group}, Resources: []string{n.resource}, Verbs: []string{"get", "list", "watch"}})
			}
			if len(g.namespaced) != 1 {
				t.Errorf("the controller has namespaced roles in %d namespaces; want only %s", len(g.namespaced), namespace)
			}
			for _, c := range []struct {
				where     string
				got, want []rbacv1.PolicyRule
			}{
				{"cluster-wide", g.cluster, wantCluster},
				{"in " + namespace, g.namespaced[namespace], wantNamespaced},
			} {
				if got, want := expandNamed(c.got), expandNamed(c.want); !reflect.DeepEqual(got, want) {
					t.Errorf("the controller's permissions %s differ from files/rbac/controller.yaml (make generate) for its flags:\nonly in the chart: %v\nonly generated: %v",
						c.where, minus(got, want), minus(want, got))
				}
			}

			// The names the controller reads and writes: its flags, the two Leases it
			// names itself (cmd/orbweaver-controller: LeaderElectionID, admissionlock),
			// orbweaver's CRDs (crdcheck.Upgrade).
			var crds []string
			for _, k := range crdcheck.Kinds() {
				crds = append(crds, k.CRD)
			}
			names := map[string][]string{
				"secrets":                         {r.ctlFlags["webhook-cert-secret"]},
				"leases":                          {"orbweaver-controller", "orbweaver-admission"},
				"namespaces":                      {"kube-system"}, // the default --cluster-id
				"mutatingwebhookconfigurations":   {r.ctlFlags["webhook-configuration"]},
				"validatingwebhookconfigurations": {r.ctlFlags["webhook-configuration"]},
				"customresourcedefinitions":       crds,
			}
			for _, c := range []struct {
				rules, from []rbacv1.PolicyRule
			}{{g.cluster, wantCluster}, {g.namespaced[namespace], wantNamespaced}} {
				for _, rule := range c.from {
					if slices.Equal(rule.ResourceNames, []string{"spiderpool-controller"}) {
						continue // SpiderPool's webhook configurations, not the controller's own
					}
					for _, group := range rule.APIGroups {
						for _, res := range rule.Resources {
							for _, verb := range rule.Verbs {
								objNames := names[res]
								if verb == "create" || len(objNames) == 0 {
									objNames = []string{""}
								}
								for _, name := range objNames {
									if n := (need{group: group, resource: res, verb: verb, name: name}); !allows(c.rules, n) {
										t.Errorf("the controller may not %s", n)
									}
								}
							}
						}
					}
				}
			}
			for _, rule := range g.cluster {
				if has(rule.APIGroups, "") && has(rule.Resources, "secrets") {
					t.Errorf("the controller may touch Secrets cluster-wide: %+v", rule)
				}
			}
			if allows(g.namespaced[namespace], need{resource: "secrets", verb: "get", name: "someone-elses"}) {
				t.Error("the controller may read every Secret of its namespace, not only its certificate's")
			}
		})
	}
}

// expand lists every group/resource/verb a set of rules grants, sorted.
func expand(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, need{group: g, resource: res, verb: v}.String())
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// expandNamed is expand with each resource name (a rule limited to names grants each of
// them, not any object).
func expandNamed(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					for _, n := range names {
						out = append(out, need{group: g, resource: res, verb: v, name: n}.String())
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestRBACDocs: the reference docs name every generated role (the rules themselves are
// only in files/rbac/, not copied into the docs).
func TestRBACDocs(t *testing.T) {
	for _, c := range []struct{ file, doc, section string }{
		{"controller.yaml", "controller.md", "## RBAC it needs\n"},
		{"agent.yaml", "agent.md", "## RBAC\n"},
	} {
		data, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "reference", c.doc))
		if err != nil {
			t.Fatal(err)
		}
		_, section, ok := strings.Cut(string(data), "\n"+c.section)
		if !ok {
			t.Fatalf("docs/reference/%s has no %q section", c.doc, strings.TrimSpace(c.section))
		}
		section, _, _ = strings.Cut(section, "\n## ")
		if !strings.Contains(section, "files/rbac/"+c.file) {
			t.Errorf("docs/reference/%s's %s does not point at files/rbac/%s", c.doc, strings.TrimSpace(c.section), c.file)
		}
		for name := range generatedRoles(t, c.file) {
			_, role, _ := strings.Cut(name, " ")
			if !strings.Contains(section, "`"+role+"`") {
				t.Errorf("docs/reference/%s's %s does not name %s of files/rbac/%s", c.doc, strings.TrimSpace(c.section), name, c.file)
			}
		}
	}
}
