package main

import (
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	std := map[string]bool{"fmt": true, "net/netip": true, "net/http": true, "os/exec": true}
	m := module + "/"
	tests := []struct {
		name string
		pkg  pkg
		want []string // substrings, one per expected violation; none means clean
	}{
		{"pure ip", pkg{m + "pkg/ip", nil, []string{"fmt", "net/netip", "go4.org/netipx"}}, nil},
		{"ip with a third party", pkg{m + "pkg/ip", nil, []string{"github.com/mikioh/ipaddr"}}, []string{"third-party package not allowed"}},
		{"ip importing the project", pkg{m + "pkg/ip", nil, []string{m + "apis/spiderpool.spidernet.io/v2beta1"}}, []string{"project package not allowed"}},
		{"apis with controller-runtime", pkg{m + "apis/spiderpool.spidernet.io/v2beta1", nil, []string{"sigs.k8s.io/controller-runtime/pkg/client"}}, []string{"forbidden"}},
		{"ipam core importing http", pkg{m + "pkg/ipam", []string{"net/http"}, []string{"net/http"}}, []string{"imports net/http: forbidden"}},
		{"ipam core importing exec", pkg{m + "pkg/ipam/records", []string{"os/exec"}, []string{"os/exec"}}, []string{"imports os/exec: forbidden"}},
		{"ipam core reaching http through apimachinery", pkg{m + "pkg/ipam", []string{m + "apis/spiderpool.spidernet.io/v2beta1"}, []string{"net/http", m + "apis/spiderpool.spidernet.io/v2beta1"}}, nil},
		{"crdstore may use client-go", pkg{m + "pkg/ipam/crdstore", nil, []string{"k8s.io/client-go/rest"}}, nil},
		{"cni with client-go", pkg{m + "pkg/cni", nil, []string{"k8s.io/client-go/rest"}}, []string{"forbidden"}},
		{"cni with the agent api's wire types", pkg{m + "pkg/cni", nil, []string{m + "pkg/agent/api/wire"}}, nil},
		{"cni with the generated agent client", pkg{m + "pkg/cni", nil, []string{m + "pkg/agent/api/client"}}, []string{"project package not allowed"}},
		{"cni with the go-openapi runtime", pkg{m + "pkg/cni", nil, []string{"github.com/go-openapi/runtime"}}, []string{"forbidden"}},
		{"cni with net/http through the wire client", pkg{m + "pkg/cni", nil, []string{m + "pkg/agent/api/wire", "net/http", "crypto/tls"}}, []string{"net/http", "crypto/tls"}},
		{"cni with the agent", pkg{m + "pkg/cni", nil, []string{m + "pkg/agent"}}, []string{"project package not allowed"}},
		{"agent with a controller", pkg{m + "pkg/agent", nil, []string{m + "pkg/controller/gc"}}, []string{"forbidden"}},
		{"controller with the agent", pkg{m + "pkg/controller/gc", nil, []string{m + "pkg/agent"}}, []string{"forbidden"}},
		{"product importing test", pkg{m + "pkg/agent", nil, []string{m + "test/integration"}}, []string{"forbidden"}},
		{"product importing a test harness", pkg{m + "pkg/agent", nil, []string{m + "internal/testenv"}}, []string{"forbidden"}},
		{"product importing the test process runner", pkg{m + "cmd/orbweaver-agent", nil, []string{m + "internal/testproc"}}, []string{"forbidden"}},
		{"a command importing an emulator", pkg{m + "cmd/orbweaver-controller", nil, []string{m + "internal/eipemulator/aws"}}, []string{"forbidden"}},
		{"a test program importing a harness", pkg{m + "test/cloudemu", nil, []string{m + "internal/eipemulator/aws"}}, nil},
		{"tests may import test", pkg{m + "test/integration", nil, []string{m + "test/helpers"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := check([]pkg{tt.pkg}, std)
			if len(got) != len(tt.want) {
				t.Fatalf("violations = %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("violation %q lacks %q", got[i], w)
				}
			}
		})
	}
}

func TestUndocumented(t *testing.T) {
	doc := "| `pkg/ipam/` | core |\n| `pkg/agent/api/` | spec and generated code |\n| `cmd/orbweaver/`, `cmd/orbweaver-agent/` | binaries |\n"
	pkgs := []string{module + "/pkg/ipam", module + "/pkg/agent/api", module + "/pkg/agent/api/client/operations",
		module + "/cmd/orbweaver", module + "/cmd/orbweaver-agent", module + "/pkg/ipam/records", module + "/pkg/cas"}
	got := undocumented(pkgs, doc)
	if want := []string{"pkg/ipam/records", "pkg/cas"}; !slices.Equal(got, want) {
		t.Fatalf("undocumented = %v, want %v", got, want)
	}
}
