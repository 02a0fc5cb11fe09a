package api_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strings"
	"testing"

	"github.com/go-openapi/strfmt"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/wire"
)

// The plugin's wire types and the generated models, by name. A definition added to the
// spec needs a row here and a type in package wire.
var wirePairs = []struct{ wire, model any }{
	{wire.Attachment{}, models.Attachment{}},
	{wire.AddArgs{}, models.AddArgs{}},
	{wire.AddResult{}, models.AddResult{}},
	{wire.IPConfig{}, models.IPConfig{}},
	{wire.Route{}, models.Route{}},
	{wire.CheckArgs{}, models.CheckArgs{}},
	{wire.GCArgs{}, models.GCArgs{}},
	{wire.GCAttachment{}, models.GCAttachment{}},
	{wire.GCResult{}, models.GCResult{}},
	{wire.Status{}, models.Status{}},
	{wire.Error{}, models.Error{}},
}

// TestWireMatchesModels fails when a type of package wire and its generated model differ
// in a field's name, JSON tag or type (a nested model standing for the wire type of the
// same name), so a spec change that `make generate` brings to the models cannot leave
// the plugin's bodies behind.
func TestWireMatchesModels(t *testing.T) {
	for _, p := range wirePairs {
		w, m := reflect.TypeOf(p.wire), reflect.TypeOf(p.model)
		if w.Name() != m.Name() {
			t.Errorf("pair %s / %s: the names differ", w.Name(), m.Name())
			continue
		}
		if w.NumField() != m.NumField() {
			t.Errorf("%s: %d fields in package wire, %d in the model", w.Name(), w.NumField(), m.NumField())
			continue
		}
		for i := range w.NumField() {
			wf, mf := w.Field(i), m.Field(i)
			if wf.Name != mf.Name || wf.Tag.Get("json") != mf.Tag.Get("json") || shape(wf.Type) != shape(mf.Type) {
				t.Errorf("%s field %d: wire %s %s `json:%q`, model %s %s `json:%q`", w.Name(), i,
					wf.Name, shape(wf.Type), wf.Tag.Get("json"), mf.Name, shape(mf.Type), mf.Tag.Get("json"))
			}
		}
	}
	// Every generated model has its pair.
	paired := map[string]bool{}
	for _, p := range wirePairs {
		paired[reflect.TypeOf(p.model).Name()] = true
	}
	for _, name := range modelNames(t) {
		if !paired[name] {
			t.Errorf("the model %s has no type in package wire (and no row in wirePairs)", name)
		}
	}
}

// shape names a type with the package left out: *string, []*IPConfig.
func shape(t reflect.Type) string {
	s := t.String()
	if i := strings.LastIndex(s, "."); i >= 0 {
		j := strings.LastIndexAny(s[:i], "*]") + 1
		s = s[:j] + s[i+1:]
	}
	return s
}

// modelNames lists the struct types `make generate` wrote into models/.
func modelNames(t *testing.T) []string {
	pkgs, err := parser.ParseDir(token.NewFileSet(), "models", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, spec := range gd.Specs {
					if ts := spec.(*ast.TypeSpec); ts.Name.IsExported() {
						if _, isStruct := ts.Type.(*ast.StructType); isStruct {
							names = append(names, ts.Name.Name)
						}
					}
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("no struct type found in models/")
	}
	return names
}

// TestWireBodiesValidate sends the plugin's bodies, with every field set, through the
// models the agent decodes them with: each decodes, validates and encodes back to the
// same JSON.
func TestWireBodiesValidate(t *testing.T) {
	s := func(v string) *string { return &v }
	att := &wire.Attachment{ContainerID: s("c1"), IfName: s("eth0"), NetNamespace: "/var/run/netns/x", NetworkName: "net",
		PodName: s("p"), PodNamespace: s("ns"), PodUID: "u"}
	v4, ready, code := int64(4), true, int32(11)
	bodies := []struct {
		wire  any
		model interface{ Validate(strfmt.Registry) error }
	}{
		{&wire.AddArgs{Attachment: att, CleanGateway: true, DefaultIPv4IPPool: []string{"a"}, DefaultIPv6IPPool: []string{"b"}}, &models.AddArgs{}},
		{&wire.AddResult{Ips: []*wire.IPConfig{{Address: s("10.0.0.5/24"), Gateway: "10.0.0.1", Nic: "eth0", Pool: s("p"), Version: &v4}},
			Routes: []*wire.Route{{Dst: s("0.0.0.0/0"), Gw: "10.0.0.1", IfName: "eth0"}}}, &models.AddResult{}},
		{&wire.CheckArgs{Attachment: att, Ips: []string{"10.0.0.5/24"}}, &models.CheckArgs{}},
		{&wire.GCArgs{NetworkName: s("net"), ValidAttachments: []*wire.GCAttachment{{ContainerID: s("c1"), IfName: s("eth0")}}}, &models.GCArgs{}},
		{&wire.GCResult{Released: 3}, &models.GCResult{}},
		{&wire.Status{Commit: "abc", Ready: &ready, Reasons: []string{"r"}, Version: "v1"}, &models.Status{}},
		{&wire.Error{Code: &code, Message: s("m"), Reason: "PoolExhausted"}, &models.Error{}},
	}
	for _, b := range bodies {
		name := reflect.TypeOf(b.wire).Elem().Name()
		sent, err := json.Marshal(b.wire)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(sent, b.model); err != nil {
			t.Errorf("%s: the model does not decode %s: %v", name, sent, err)
			continue
		}
		if err := b.model.Validate(strfmt.Default); err != nil {
			t.Errorf("%s: %s does not validate: %v", name, sent, err)
		}
		back, err := json.Marshal(b.model)
		if err != nil {
			t.Fatal(err)
		}
		if string(back) != string(sent) {
			t.Errorf("%s: sent %s, the model encodes %s", name, sent, back)
		}
	}
}
