package ipam

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseStatefulKinds(t *testing.T) {
	for _, tt := range []struct {
		name    string
		specs   []string
		want    []StatefulKind
		wantErr string
	}{
		{name: "none"},
		{name: "OpenKruise's Advanced StatefulSet", specs: []string{"apps.kruise.io/v1beta1/StatefulSet"},
			want: []StatefulKind{{"apps.kruise.io", "v1beta1", "StatefulSet"}}},
		{name: "apps' StatefulSet is always one", specs: []string{"apps/v1/StatefulSet", " ", "example.com/v1/Shard"},
			want: []StatefulKind{{"example.com", "v1", "Shard"}}},
		{name: "a resource, not a kind", specs: []string{"apps.kruise.io/v1beta1/statefulsets"}, wantErr: "a Kind (StatefulSet), not a resource"},
		{name: "no version", specs: []string{"apps.kruise.io/StatefulSet"}, wantErr: "want <group>/<version>/<Kind>"},
		{name: "a core group", specs: []string{"v1/Pod/x"}, wantErr: "Kubernetes' own"},
		{name: "apps' Deployment", specs: []string{"apps/v1/Deployment"}, wantErr: "Kubernetes' own"},
		{name: "twice, in two versions", specs: []string{"apps.kruise.io/v1beta1/StatefulSet", "apps.kruise.io/v1alpha1/StatefulSet"}, wantErr: "listed twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatefulKinds(tt.specs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Extra(), tt.want) {
				t.Fatalf("got %v, want %v", got.Extra(), tt.want)
			}
		})
	}
}

func TestStatefulKindsMatch(t *testing.T) {
	kruise, err := ParseStatefulKinds([]string{"apps.kruise.io/v1beta1/StatefulSet"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name             string
		kinds            StatefulKinds
		apiVersion, kind string
		want             bool
	}{
		{"apps' StatefulSet, nothing added", StatefulKinds{}, "apps/v1", "StatefulSet", true},
		{"OpenKruise's, not added", StatefulKinds{}, "apps.kruise.io/v1beta1", "StatefulSet", false},
		{"OpenKruise's, added", kruise, "apps.kruise.io/v1beta1", "StatefulSet", true},
		{"OpenKruise's, added, another version", kruise, "apps.kruise.io/v1alpha1", "StatefulSet", true},
		{"OpenKruise's CloneSet, not added", kruise, "apps.kruise.io/v1alpha1", "CloneSet", false},
		{"a Deployment", kruise, "apps/v1", "Deployment", false},
		{"a core kind of the same name", kruise, "v1", "StatefulSet", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kinds.Match(tt.apiVersion, tt.kind); got != tt.want {
				t.Fatalf("Match(%q, %q) = %v, want %v", tt.apiVersion, tt.kind, got, tt.want)
			}
		})
	}
}

func TestOwnerAPIVersionOf(t *testing.T) {
	if got := OwnerAPIVersionOf(nil); got != "apps/v1" {
		t.Errorf("an endpoint without the annotation: %q, want apps/v1", got)
	}
	if got := OwnerAPIVersionOf(map[string]string{AnnoOwnerAPIVersion: "apps.kruise.io/v1beta1"}); got != "apps.kruise.io/v1beta1" {
		t.Errorf("got %q", got)
	}
}
