// Package crdcheck tells whether the API server serves orbweaver's kinds with a schema
// that keeps every field orbweaver writes.
//
// orbweaver serves SpiderPool's group and kinds (spiderpool.spidernet.io/v2beta1). Helm
// installs a chart's crds/ only when the CRDs do not exist yet, so `helm install` over a
// SpiderPool cluster, or `helm upgrade` of an older orbweaver, leaves the old CRDs in place.
// The API server then prunes every field their schema does not declare, on every write
// and without an error: orbweaver's allocation records (status.orbweaver) would vanish.
// Check finds that in a CRD object (pure); Ensure reads the CRDs and refuses to start.
package crdcheck

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ipamv1 "github.com/orbweaver-ipam/orbweaver/apis/ipam.orbweaver.io/v1alpha1"
	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// Kind is what orbweaver needs of one CustomResourceDefinition.
type Kind struct {
	// CRD is the CustomResourceDefinition's name, <plural>.<group>.
	CRD string
	// Version is the version orbweaver reads and writes; it must be served.
	Version string
	// Object is a value of the Go type orbweaver writes: every field it has (by its json
	// names) must be in the version's schema.
	Object any
	// StatusSubresource is whether orbweaver writes status through the status
	// subresource (true) or with the object (false). A CRD that differs makes status
	// writes fail, or, worse, be dropped silently.
	StatusSubresource bool
	// SelectableFields are the JSON paths orbweaver's watches select on.
	SelectableFields []string
}

// Kinds are orbweaver's kinds, each as its generated CRD declares it.
func Kinds() []Kind {
	sp, ipam := v2beta1.SchemeGroupVersion, ipamv1.SchemeGroupVersion
	return []Kind{
		{CRD: "spiderippools." + sp.Group, Version: sp.Version, Object: v2beta1.SpiderIPPool{}, StatusSubresource: true},
		{CRD: "spiderendpoints." + sp.Group, Version: sp.Version, Object: v2beta1.SpiderEndpoint{},
			SelectableFields: []string{".status.current.node"}}, // the agent watches its node's
		{CRD: "spidersubnets." + sp.Group, Version: sp.Version, Object: v2beta1.SpiderSubnet{}, StatusSubresource: true},
		{CRD: "spiderreservedips." + sp.Group, Version: sp.Version, Object: v2beta1.SpiderReservedIP{}},
		{CRD: "ipamnodes." + ipam.Group, Version: ipam.Version, Object: ipamv1.IPAMNode{}, StatusSubresource: true},
		{CRD: "ipblocks." + ipam.Group, Version: ipam.Version, Object: ipamv1.IPBlock{}},
	}
}

// Check returns what crd lacks for orbweaver to use it as k says, each entry one gap: a
// field path the schema does not declare ("status.orbweaver", "spec.routes[].gw"; a
// field is named once, not with the fields below it), or a missing version, subresource
// or selectable field. Nil means the CRD serves everything orbweaver writes.
func Check(crd *apiextensionsv1.CustomResourceDefinition, k Kind) []string {
	i := slices.IndexFunc(crd.Spec.Versions, func(v apiextensionsv1.CustomResourceDefinitionVersion) bool { return v.Name == k.Version })
	if i < 0 {
		return []string{fmt.Sprintf("version %s", k.Version)}
	}
	v := crd.Spec.Versions[i]
	if !v.Served {
		return []string{fmt.Sprintf("version %s (it is not served)", k.Version)}
	}
	var gaps []string
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		gaps = append(gaps, "a schema")
	} else {
		gaps = missingFields(reflect.TypeOf(k.Object), v.Schema.OpenAPIV3Schema, "", gaps)
	}
	status := v.Subresources != nil && v.Subresources.Status != nil
	switch {
	case k.StatusSubresource && !status:
		gaps = append(gaps, "the status subresource")
	case !k.StatusSubresource && status:
		gaps = append(gaps, "status written with the object (it has a status subresource, which drops status from updates of the object)")
	}
	for _, f := range k.SelectableFields {
		if !slices.ContainsFunc(v.SelectableFields, func(s apiextensionsv1.SelectableField) bool { return s.JSONPath == f }) {
			gaps = append(gaps, fmt.Sprintf("the selectable field %s", f))
		}
	}
	return gaps
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	// objectMeta is metadata, which the API server keeps whatever the schema says.
	objectMeta = reflect.TypeFor[metav1.ObjectMeta]()
)

// missingFields appends to gaps the paths of t's fields (by their json names) that s, the
// schema of a value of t at path, would prune.
func missingFields(t reflect.Type, s *apiextensionsv1.JSONSchemaProps, path string, gaps []string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields {
		return gaps // kept whatever it holds
	}
	if t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler) ||
		t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler) {
		return gaps // its own JSON form, a scalar (metav1.Time, resource.Quantity)
	}
	switch t.Kind() {
	case reflect.Struct:
		for _, f := range fields(t) {
			if f.typ == objectMeta {
				continue
			}
			p, ok := s.Properties[f.name]
			if !ok {
				gaps = append(gaps, join(path, f.name))
				continue
			}
			gaps = missingFields(f.typ, &p, join(path, f.name), gaps)
		}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return gaps // []byte: a base64 string
		}
		if s.Items != nil && s.Items.Schema != nil {
			gaps = missingFields(t.Elem(), s.Items.Schema, path+"[]", gaps)
		}
	case reflect.Map:
		switch ap := s.AdditionalProperties; {
		case ap != nil && ap.Schema != nil:
			gaps = missingFields(t.Elem(), ap.Schema, path+"[*]", gaps)
		case ap == nil || !ap.Allows:
			gaps = append(gaps, path+"[*]") // an object without properties: every entry pruned
		}
	}
	return gaps
}

// field is a struct field as encoding/json names it.
type field struct {
	name string
	typ  reflect.Type
}

// fields lists t's fields as encoding/json writes them, embedded structs without a name
// flattened into t.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			out = append(out, fields(ft)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, field{name: name, typ: f.Type})
	}
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
