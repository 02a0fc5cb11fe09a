package crdcheck

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// orbweaverCRDs is the folder `make generate` writes orbweaver's CRDs to.
const orbweaverCRDs = "../../charts/orbweaver/crds"

// spiderPoolCRDs holds SpiderPool v1.2.2's CRDs as a cluster that runs SpiderPool serves
// them (descriptions left out).
const spiderPoolCRDs = "testdata/spiderpool-v1.2.2"

// readCRD reads the CRD named name (<plural>.<group>) from dir, where it is
// <group>_<plural>.yaml as controller-gen names it.
func readCRD(t *testing.T, dir, name string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	plural, group, _ := strings.Cut(name, ".")
	data, err := os.ReadFile(filepath.Join(dir, group+"_"+plural+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if crd.Name != name {
		t.Fatalf("%s holds the CRD %q", dir, crd.Name)
	}
	return crd
}

func kind(t *testing.T, crd string) Kind {
	t.Helper()
	for _, k := range Kinds() {
		if k.CRD == crd {
			return k
		}
	}
	t.Fatalf("no Kind for %s", crd)
	return Kind{}
}

// editSchema calls edit with the schema at path ("status.orbweaver", "spec.routes[]") of
// crd's first version, and keeps what it changes.
func editSchema(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, path string, edit func(*apiextensionsv1.JSONSchemaProps)) {
	t.Helper()
	var at func(s *apiextensionsv1.JSONSchemaProps, names []string)
	at = func(s *apiextensionsv1.JSONSchemaProps, names []string) {
		if len(names) == 0 {
			edit(s)
			return
		}
		name, items := strings.CutSuffix(names[0], "[]")
		p, ok := s.Properties[name]
		if !ok {
			t.Fatalf("%s: no %s in the schema", crd.Name, path)
		}
		child := &p
		if items {
			child = p.Items.Schema
		}
		at(child, names[1:])
		s.Properties[name] = p // Properties holds values
	}
	at(crd.Spec.Versions[0].Schema.OpenAPIV3Schema, strings.Split(path, "."))
}

// TestCheck: orbweaver's generated CRDs lack nothing; SpiderPool's lack exactly orbweaver's
// additions (and spec.vlan, which SpiderPool has dropped and orbweaver still accepts); and
// each kind of gap an older or foreign CRD can have is named, at the shallowest field that
// is missing.
func TestCheck(t *testing.T) {
	pools, endpoints := "spiderippools.spiderpool.spidernet.io", "spiderendpoints.spiderpool.spidernet.io"
	tests := []struct {
		name string
		crd  string // the CRD, also the Kind it is checked for
		dir  string
		edit func(*testing.T, *apiextensionsv1.CustomResourceDefinition)
		want []string
	}{
		{name: "orbweaver's pools", crd: pools, dir: orbweaverCRDs},
		{name: "orbweaver's endpoints", crd: endpoints, dir: orbweaverCRDs},
		{name: "SpiderPool's pools", crd: pools, dir: spiderPoolCRDs,
			want: []string{"spec.vlan", "spec.orbweaver", "status.orbweaver", "status.conditions"}},
		{name: "SpiderPool's endpoints", crd: endpoints, dir: spiderPoolCRDs,
			want: []string{"status.current.orbweaver", "the selectable field .status.current.node"}},
		{name: "SpiderPool's subnets", crd: "spidersubnets.spiderpool.spidernet.io", dir: spiderPoolCRDs,
			want: []string{"spec.vlan", "spec.orbweaver", "status.orbweaver", "status.conditions"}},
		{name: "SpiderPool's reserved IPs", crd: "spiderreservedips.spiderpool.spidernet.io", dir: spiderPoolCRDs},
		{name: "an older orbweaver's pools without a newer field", crd: pools, dir: orbweaverCRDs,
			edit: func(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
				editSchema(t, crd, "status.orbweaver", func(s *apiextensionsv1.JSONSchemaProps) { delete(s.Properties, "eips") })
			},
			want: []string{"status.orbweaver.eips"}},
		{name: "a field of a list's items", crd: pools, dir: orbweaverCRDs,
			edit: func(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
				editSchema(t, crd, "spec.routes[]", func(s *apiextensionsv1.JSONSchemaProps) { delete(s.Properties, "gw") })
			},
			want: []string{"spec.routes[].gw"}},
		{name: "a map whose entries would be pruned", crd: endpoints, dir: orbweaverCRDs,
			edit: func(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
				editSchema(t, crd, "status.current.orbweaver.networks", func(s *apiextensionsv1.JSONSchemaProps) { s.AdditionalProperties = nil })
			},
			want: []string{"status.current.orbweaver.networks[*]"}},
		{name: "status kept whatever it holds", crd: pools, dir: spiderPoolCRDs,
			edit: func(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
				editSchema(t, crd, "status", func(s *apiextensionsv1.JSONSchemaProps) {
					s.Properties, s.XPreserveUnknownFields = nil, ptrTo(true)
				})
			},
			want: []string{"spec.vlan", "spec.orbweaver"}},
		{name: "version not served", crd: pools, dir: orbweaverCRDs,
			edit: func(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) { crd.Spec.Versions[0].Served = false },
			want: []string{"version v2beta1 (it is not served)"}},
		{name: "another version only", crd: pools, dir: orbweaverCRDs,
			edit: func(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
				crd.Spec.Versions[0].Name = "v2beta2"
			},
			want: []string{"version v2beta1"}},
		{name: "no status subresource", crd: pools, dir: orbweaverCRDs,
			edit: func(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
				crd.Spec.Versions[0].Subresources = nil
			},
			want: []string{"the status subresource"}},
		{name: "a status subresource where orbweaver writes status with the object", crd: endpoints, dir: orbweaverCRDs,
			edit: func(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition) {
				crd.Spec.Versions[0].Subresources = &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}
			},
			want: []string{"status written with the object (it has a status subresource, which drops status from updates of the object)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			crd := readCRD(t, tt.dir, tt.crd)
			if tt.edit != nil {
				tt.edit(t, crd)
			}
			if got := Check(crd, kind(t, tt.crd)); !slices.Equal(got, tt.want) {
				t.Errorf("Check = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestOrbweaverCRDs: every kind orbweaver writes is served by its generated CRD with
// nothing missing, so Ensure never refuses orbweaver's own CRDs.
func TestOrbweaverCRDs(t *testing.T) {
	for _, k := range Kinds() {
		if gaps := Check(readCRD(t, orbweaverCRDs, k.CRD), k); gaps != nil {
			t.Errorf("%s: orbweaver's own CRD lacks %q", k.CRD, gaps)
		}
	}
}

// TestSpiderPoolFixture: the fixture finds what SpiderPool's original CRDs (which
// tools/ensure.sh copies to bin/spiderpool-crds/) find. Without them it is skipped,
// except in CI.
func TestSpiderPoolFixture(t *testing.T) {
	original := "../../bin/spiderpool-crds"
	if _, err := os.Stat(original); errors.Is(err, fs.ErrNotExist) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: run `tools/ensure.sh spiderpool` (make tools)", original)
		}
		t.Skipf("%s is missing: run `tools/ensure.sh spiderpool` (make tools)", original)
	}
	for _, k := range Kinds()[:4] {
		want := Check(readCRD(t, spiderPoolCRDs, k.CRD), k)
		if got := Check(readCRD(t, original, k.CRD), k); !slices.Equal(got, want) {
			t.Errorf("%s: SpiderPool's original lacks %q, the fixture %q", k.CRD, got, want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
