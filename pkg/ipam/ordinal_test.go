package ipam

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

func TestOrdinalAddress(t *testing.T) {
	pool := func(subnet string, ips, exclude []v2beta1.IPOrRange) *v2beta1.SpiderIPPool {
		return &v2beta1.SpiderIPPool{ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Spec: v2beta1.IPPoolSpec{Subnet: v2beta1.CIDR(subnet), IPs: ips, ExcludeIPs: exclude}}
	}
	v4 := pool("10.0.0.0/24", []v2beta1.IPOrRange{"10.0.0.20-10.0.0.22", "10.0.0.10", "10.0.0.30-10.0.0.31"}, []v2beta1.IPOrRange{"10.0.0.21"})
	for _, tt := range []struct {
		name    string
		pool    *v2beta1.SpiderIPPool
		ordinal int
		want    string
		wantErr string
	}{
		{"0 is the lowest address, whatever the order of spec.ips", v4, 0, "10.0.0.10", ""},
		{"1", v4, 1, "10.0.0.20", ""},
		{"an excluded address is skipped", v4, 2, "10.0.0.22", ""},
		{"across ranges", v4, 4, "10.0.0.31", ""},
		{"beyond the pool", v4, 5, "", "has 5 addresses (spec.ips minus spec.excludeIPs), and ordinal 5 needs 6"},
		{"IPv6", pool("fd00::/64", []v2beta1.IPOrRange{"fd00::100-fd00::1ff"}, nil), 255, "fd00::1ff", ""},
		{"a pool that does not parse", pool("10.0.0.0/33", nil, nil), 0, "", "spec.subnet"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := OrdinalAddress(tt.pool, tt.ordinal)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("OrdinalAddress(%d) = %v, %v; want %s", tt.ordinal, got, err, tt.want)
			}
		})
	}
	if _, err := OrdinalAddress(v4, 9); !errors.Is(err, ErrOrdinalAddress) {
		t.Errorf("beyond the pool: %v, want ErrOrdinalAddress", err)
	}
}

func TestIPByOrdinalWanted(t *testing.T) {
	for _, tt := range []struct {
		anno    map[string]string
		want    bool
		wantErr bool
	}{
		{nil, false, false},
		{map[string]string{AnnoIPByOrdinal: "true"}, true, false},
		{map[string]string{AnnoIPByOrdinal: " false "}, false, false},
		{map[string]string{AnnoIPByOrdinal: "yes"}, false, true},
	} {
		got, err := IPByOrdinalWanted(tt.anno)
		if got != tt.want || (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrBadAnnotation)) {
			t.Errorf("IPByOrdinalWanted(%v) = %v, %v", tt.anno, got, err)
		}
	}
}
