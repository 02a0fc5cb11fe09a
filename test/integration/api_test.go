package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// row returns the row whose first cell is name.
func row(t *testing.T, rows [][]string, name string) []string {
	t.Helper()
	for _, r := range rows[1:] {
		if len(r) > 0 && r[0] == name {
			return r
		}
	}
	t.Fatalf("no row %q in %v", name, rows)
	return nil
}

// TestExamplesApplyAndPrint applies every manifest of docs/examples with the real
// kubectl and checks what `kubectl get` prints for each kind, as SpiderPool prints it.
func TestExamplesApplyAndPrint(t *testing.T) {
	ctx := ctxFor(t)
	examples := filepath.Join(env.Root, "docs", "examples")
	if out, err := env.Kubectl(ctx, "apply", "-f", examples); err != nil {
		t.Fatalf("apply docs/examples: %v\n%s", err, out)
	}

	// The pool's counts come from its status; write them as the agent will, records and
	// counts in one status update, so the columns show real values.
	pool := &v2beta1.SpiderIPPool{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "nginx-v4-ippool"}, pool); err != nil {
		t.Fatal(err)
	}
	pool.Status.AllocatedIPCount, pool.Status.TotalIPCount = ptr.To[int64](2), ptr.To[int64](11)
	pool.Status.Orbweaver = &v2beta1.IPPoolOrbweaverStatus{SpareIPCount: ptr.To[int64](0), FreeIPCount: ptr.To[int64](9)}
	if err := env.Client.Status().Update(ctx, pool); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		args   []string
		header []string
		rows   map[string][]string // name -> whole row, without AGE (which changes)
	}{
		{
			name:   "sp",
			args:   []string{"get", "sp"},
			header: []string{"NAME", "VERSION", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT", "DEFAULT", "FREE", "AGE"},
			rows: map[string][]string{
				"nginx-v4-ippool": {"nginx-v4-ippool", "4", "10.244.0.0/16", "2", "11", "false", "9"},
				"v6-ippool":       {"v6-ippool", "6", "fd00:10:244::/64", "", "", "false", ""},
				"dual-v4":         {"dual-v4", "4", "10.245.0.0/24", "", "", "false", ""},
				"dual-v6":         {"dual-v6", "6", "fd00:10:245::/120", "", "", "false", ""},
			},
		},
		{
			name:   "sp wide",
			args:   []string{"get", "sp", "-o", "wide"},
			header: []string{"NAME", "VERSION", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT", "DEFAULT", "DISABLE", "NODENAME", "MULTUSNAME", "APP-NAMESPACE", "FREE", "SPARE", "AGE"},
			rows: map[string][]string{
				"nginx-v4-ippool": {"nginx-v4-ippool", "4", "10.244.0.0/16", "2", "11", "false", "false", "", "", "", "9", "0"},
			},
		},
		{
			name:   "ss",
			args:   []string{"get", "ss"},
			header: []string{"NAME", "VERSION", "SUBNET", "ALLOCATED-IP-COUNT", "TOTAL-IP-COUNT", "AGE"},
			rows: map[string][]string{
				"nginx-subnet-v4": {"nginx-subnet-v4", "4", "10.244.0.0/16", "", ""},
			},
		},
		{
			name:   "sr",
			args:   []string{"get", "sr"},
			header: []string{"NAME", "VERSION"},
			rows:   map[string][]string{"nginx-vip": {"nginx-vip", "4"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := env.Kubectl(ctx, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			rows := testenv.SplitTable(out)
			if !slices.Equal(rows[0], tt.header) {
				t.Fatalf("header = %v, want %v\n%s", rows[0], tt.header, out)
			}
			for name, want := range tt.rows {
				got := row(t, rows, name)
				if tt.header[len(tt.header)-1] == "AGE" {
					if age := got[len(got)-1]; age == "" {
						t.Errorf("row %s: no AGE", name)
					}
					got = got[:len(got)-1]
				}
				if !slices.Equal(got, want) {
					t.Errorf("row %s = %v, want %v", name, got, want)
				}
			}
		})
	}

	// The category `spiderpool` lists every kind, as in SpiderPool.
	out, err := env.Kubectl(ctx, "get", "spiderpool", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"spiderippool.spiderpool.spidernet.io/nginx-v4-ippool",
		"spidersubnet.spiderpool.spidernet.io/nginx-subnet-v4",
		"spiderreservedip.spiderpool.spidernet.io/nginx-vip",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("kubectl get spiderpool lacks %s:\n%s", want, out)
		}
	}
}

// TestEndpointColumns checks `kubectl get se` on a dual-stack endpoint.
func TestEndpointColumns(t *testing.T) {
	ctx := ctxFor(t)
	se := &v2beta1.SpiderEndpoint{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "nginx-0"},
		Status: v2beta1.WorkloadEndpointStatus{
			Current: v2beta1.PodIPAllocation{
				UID:  "0d9d0a4e-5f0c-4b8e-9a59-31b1c4a7e001",
				Node: "node-1",
				IPs: []v2beta1.IPAllocationDetail{{
					NIC:      "eth0",
					IPv4:     ptr.To("10.245.0.10/24"),
					IPv4Pool: ptr.To("dual-v4"),
					IPv6:     ptr.To("fd00:10:245::10/120"),
					IPv6Pool: ptr.To("dual-v6"),
				}},
			},
			OwnerControllerType: "StatefulSet",
			OwnerControllerName: "nginx",
		},
	}
	if err := env.Client.Create(ctx, se); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), se) })
	out, err := env.Kubectl(ctx, "get", "se", "-n", "default")
	if err != nil {
		t.Fatal(err)
	}
	rows := testenv.SplitTable(out)
	// SpiderPool's columns, then orbweaver's EIP (EIP-STATE only with -o wide).
	wantHeader := []string{"NAME", "INTERFACE", "IPV4POOL", "IPV4", "IPV6POOL", "IPV6", "NODE", "EIP"}
	if !slices.Equal(rows[0], wantHeader) {
		t.Fatalf("header = %v, want %v", rows[0], wantHeader)
	}
	want := []string{"nginx-0", "eth0", "dual-v4", "10.245.0.10/24", "dual-v6", "fd00:10:245::10/120", "node-1", ""}
	if got := row(t, rows, "nginx-0"); !slices.Equal(got, want) {
		t.Fatalf("row = %v, want %v", got, want)
	}
	// The vlan default SpiderPool's schema sets is applied.
	got := &v2beta1.SpiderEndpoint{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(se), got); err != nil {
		t.Fatal(err)
	}
	if v := got.Status.Current.IPs[0].Vlan; v == nil || *v != 0 {
		t.Fatalf("vlan = %v, want the schema default 0", v)
	}
}

// TestSchemaRefusesInvalidSpecs sends invalid manifests through the real kubectl and
// expects the API server to refuse each with a message naming the field, writing nothing.
func TestSchemaRefusesInvalidSpecs(t *testing.T) {
	ctx := ctxFor(t)
	pool := func(name, spec string) string {
		return fmt.Sprintf("apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: %s\nspec:\n%s", name, spec)
	}
	tests := []struct {
		name     string
		kind     string // resource to look up afterwards
		manifest string
		want     []string // substrings of the error
	}{
		{"ipVersion 5", "sp", pool("bad-version", "  ipVersion: 5\n  subnet: 10.0.0.0/24\n"), []string{"spec.ipVersion", "Unsupported value: 5"}},
		{"missing subnet", "sp", pool("no-subnet", "  ipVersion: 4\n  ips: [10.0.0.1]\n"), []string{"spec.subnet", "Required value"}},
		{"missing spec", "sp", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderIPPool\nmetadata:\n  name: no-spec\n", []string{"spec", "Required value"}},
		{"subnet not a CIDR", "sp", pool("bad-subnet", "  subnet: 10.0.0.0\n"), []string{"spec.subnet", "must be a CIDR"}},
		{"subnet with host bits", "sp", pool("host-bits", "  subnet: 10.0.0.1/24\n"), []string{"spec.subnet", "must be canonical"}},
		{"subnet family differs from ipVersion", "sp", pool("family", "  ipVersion: 6\n  subnet: 10.0.0.0/24\n"), []string{"spec", "not of the family given by ipVersion"}},
		{"range with three parts", "sp", pool("three-parts", "  subnet: 10.0.0.0/24\n  ips: [10.0.0.1-10.0.0.2-10.0.0.3]\n"), []string{"spec.ips[0]", "must be an IP address or a range"}},
		{"range end not an IP", "sp", pool("bad-end", "  subnet: 10.0.0.0/24\n  ips: [10.0.0.1-10.0.0.256]\n"), []string{"spec.ips[0]", "must be an IP address or a range"}},
		{"range of mixed families", "sp", pool("mixed", "  subnet: 10.0.0.0/24\n  ips: [10.0.0.1-fd00::1]\n"), []string{"spec.ips[0]", "same IP family"}},
		{"range with spaces", "sp", pool("spaces", "  subnet: 10.0.0.0/24\n  ips: ['10.0.0.1 - 10.0.0.9']\n"), []string{"spec.ips[0]", "must be an IP address or a range"}},
		{"exclude not an IP", "sp", pool("bad-exclude", "  subnet: 10.0.0.0/24\n  excludeIPs: [abc]\n"), []string{"spec.excludeIPs[0]", "must be an IP address or a range"}},
		{"gateway not an IP", "sp", pool("bad-gateway", "  subnet: 10.0.0.0/24\n  gateway: 10.0.0.0/24\n"), []string{"spec.gateway", "must be an IP address"}},
		{"route without gw", "sp", pool("route-no-gw", "  subnet: 10.0.0.0/24\n  routes: [{dst: 10.1.0.0/16}]\n"), []string{"spec.routes[0].gw", "Required value"}},
		{"route dst not a CIDR", "sp", pool("route-dst", "  subnet: 10.0.0.0/24\n  routes: [{dst: 10.1.0.0, gw: 10.0.0.1}]\n"), []string{"spec.routes[0].dst", "must be a CIDR"}},
		{"vlan 4095", "sp", pool("vlan", "  subnet: 10.0.0.0/24\n  vlan: 4095\n"), []string{"spec.vlan", "less than or equal to 4094"}},
		{"reclaim policy not a duration", "sp", pool("reclaim", "  subnet: 10.0.0.0/24\n  orbweaver:\n    reclaimPolicy: sometimes\n"), []string{"spec.orbweaver.reclaimPolicy", "should match"}},
		{"subnet of a SpiderSubnet", "ss", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderSubnet\nmetadata:\n  name: bad-ss\nspec:\n  subnet: 10.0.0.0/33\n", []string{"spec.subnet", "must be a CIDR"}},
		{"reserved IP range", "sr", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderReservedIP\nmetadata:\n  name: bad-sr\nspec:\n  ips: [10.0.0.9-]\n", []string{"spec.ips[0]", "must be an IP address or a range"}},
		{"endpoint vlan", "se", "apiVersion: spiderpool.spidernet.io/v2beta1\nkind: SpiderEndpoint\nmetadata:\n  name: bad-se\n  namespace: default\nstatus:\n  current:\n    uid: u\n    ips: [{interface: eth0, vlan: 5000}]\n", []string{"status.current.ips[0].vlan", "less than or equal to 4094"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := env.KubectlWithInput(ctx, tt.manifest, "create", "-f", "-")
			if err == nil {
				t.Fatalf("accepted:\n%s\n%s", tt.manifest, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			name := strings.Fields(strings.SplitN(strings.SplitN(tt.manifest, "name:", 2)[1], "\n", 2)[0])[0]
			args := []string{"get", tt.kind, name}
			if tt.kind == "se" {
				args = append(args, "-n", "default")
			}
			if _, err := env.Kubectl(ctx, args...); err == nil || !strings.Contains(err.Error(), "NotFound") {
				t.Errorf("refused object exists or lookup failed: %v", err)
			}
		})
	}

	// And the valid forms the patterns must not refuse.
	valid := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "valid-forms"},
		Spec: v2beta1.IPPoolSpec{
			Subnet:     "fd00:77::/64",
			IPs:        []v2beta1.IPOrRange{"fd00:77::10-fd00:77::ff", "fd00:77::1:0", "::-::1"},
			ExcludeIPs: []v2beta1.IPOrRange{"fd00:77::20"},
			Gateway:    ptr.To[v2beta1.IPAddress]("fd00:77::1"),
			Orbweaver:  &v2beta1.IPPoolOrbweaverSpec{ReclaimPolicy: ptr.To[v2beta1.ReclaimPolicy]("1h30m")},
		},
	}
	if err := env.Client.Create(ctx, valid); err != nil {
		t.Fatalf("valid pool refused: %v", err)
	}
	if err := env.Client.Delete(ctx, valid); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
}
