package ipam

import (
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

var nginx = Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "nginx", UID: "0b7c1f9e-4a2d-4c55-9d1e-452e737e5e12"}

func TestAutoPoolName(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name   string
		family int64
		app    Application
		nic    string
		want   string
	}{
		{name: "SpiderPool's form", family: 4, app: nginx, nic: "eth0", want: "auto4-nginx-eth0-452e7"},
		{name: "IPv6, second NIC", family: 6, app: nginx, nic: "net1", want: "auto6-nginx-net1-452e7"},
		{name: "lower-cased", family: 4, app: Application{Name: "Web", UID: "ABCDEF"}, nic: "eth0", want: "auto4-web-eth0-abcde"},
		{name: "short UID kept whole", family: 4, app: Application{Name: "web", UID: "x-12"}, nic: "eth0", want: "auto4-web-eth0-12"},
		{name: "long name cut to a DNS subdomain", family: 4, app: Application{Name: long, UID: "u-12345"}, nic: "eth0",
			want: "auto4-" + strings.Repeat("a", 253-len("auto4-")-len("-eth0-12345")) + "-eth0-12345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AutoPoolName(tt.family, tt.app, tt.nic)
			if got != tt.want {
				t.Errorf("AutoPoolName = %q, want %q", got, tt.want)
			}
			if len(got) > 253 {
				t.Errorf("name has %d characters, more than a DNS subdomain", len(got))
			}
		})
	}
}

func TestAutoPoolLabelsAndAffinity(t *testing.T) {
	l := AutoPoolLabels(nginx, "nginx-subnet-v4", "eth0", 4, false)
	want := map[string]string{
		LabelOwnerSpiderSubnet: "nginx-subnet-v4", LabelOwnerAppGV: "apps_v1", LabelOwnerAppKind: "Deployment",
		LabelOwnerAppNamespace: "default", LabelOwnerAppName: "nginx", LabelOwnerAppUID: nginx.UID,
		LabelInterface: "eth0", LabelIPVersion: "IPv4", LabelIPPoolReclaim: "false",
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("label %s = %q, want %q", k, l[k], v)
		}
	}
	if len(l) != len(want) {
		t.Errorf("labels %v, want exactly %v", l, want)
	}
	if got := (Application{APIVersion: "v1", Kind: "ReplicationController"}).GVLabelValue(); got != "_v1" {
		t.Errorf("core group GV label = %q, want _v1", got)
	}

	// The affinity admits the application's pods and no other's, through SelectPools'
	// own matching.
	pool := mkPool("auto4-nginx-eth0-452e7", "10.244.0.0/16", ipVersion(4))
	pool.Spec.PodAffinity = AutoPoolAffinity(nginx)
	c := newCandidates(SelectionInput{Pod: baseInput().Pod, TopController: TopController{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "nginx"}})
	if reason := c.refusal(v2beta1.IPv4, &pool); reason != "" {
		t.Errorf("the application's pod is refused: %s", reason)
	}
	c = newCandidates(SelectionInput{Pod: baseInput().Pod, TopController: TopController{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "other"}})
	if reason := c.refusal(v2beta1.IPv4, &pool); reason == "" {
		t.Error("another application's pod is admitted")
	}
}

func TestDesiredIPNumber(t *testing.T) {
	tests := []struct {
		n        IPNumber
		replicas int64
		want     int64
	}{
		{IPNumber{N: 3, Flexible: true}, 2, 5},
		{IPNumber{N: 3, Flexible: true}, 3, 6},
		{IPNumber{N: 0, Flexible: true}, 0, 0},
		{IPNumber{N: 1, Flexible: true}, -4, 1},
		{IPNumber{N: 4}, 10, 4},
		{IPNumber{N: 0}, 2, 0},
	}
	for _, tt := range tests {
		if got := DesiredIPNumber(tt.n, tt.replicas); got != tt.want {
			t.Errorf("DesiredIPNumber(%s, %d) = %d, want %d", tt.n, tt.replicas, got, tt.want)
		}
	}
}

func TestAutoPoolRequestOf(t *testing.T) {
	tests := []struct {
		name    string
		anno    map[string]string
		want    AutoPoolRequest
		wantOK  bool
		wantErr bool
	}{
		{name: "no auto pool", anno: map[string]string{AnnoPodIPPool: `{"ipv4":["a"]}`}},
		{name: "seed 004", anno: map[string]string{AnnoPodSubnet: `{"ipv4":["nginx-subnet-v4"]}`, AnnoPodIPPoolIPNumber: "+3"}, wantOK: true,
			want: AutoPoolRequest{Subnets: []SubnetAnnotation{{Interface: "eth0", IPv4: []string{"nginx-subnet-v4"}}}, IPNumber: IPNumber{N: 3, Flexible: true}, Reclaim: true}},
		{name: "default +N and reclaim false", anno: map[string]string{AnnoPodSubnet: `{"ipv4":["s"]}`, AnnoPodIPPoolReclaim: "false"}, wantOK: true,
			want: AutoPoolRequest{Subnets: []SubnetAnnotation{{Interface: "eth0", IPv4: []string{"s"}}}, IPNumber: IPNumber{N: 1, Flexible: true}, Reclaim: false}},
		{name: "subnets beats subnet", anno: map[string]string{AnnoPodSubnet: `{"ipv4":["s"]}`, AnnoPodSubnets: `[{"interface":"eth0","ipv4":["a"]},{"interface":"net1","ipv6":["b"]}]`, AnnoPodIPPoolIPNumber: "4"}, wantOK: true,
			want: AutoPoolRequest{Subnets: []SubnetAnnotation{{Interface: "eth0", IPv4: []string{"a"}}, {Interface: "net1", IPv6: []string{"b"}}}, IPNumber: IPNumber{N: 4}, Reclaim: true}},
		{name: "bad reclaim", anno: map[string]string{AnnoPodSubnet: `{"ipv4":["s"]}`, AnnoPodIPPoolReclaim: "nope"}, wantErr: true},
		{name: "bad number", anno: map[string]string{AnnoPodSubnet: `{"ipv4":["s"]}`, AnnoPodIPPoolIPNumber: "++1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := AutoPoolRequestOf(tt.anno, 1)
			if tt.wantErr {
				if !errors.Is(err, ErrBadAnnotation) {
					t.Fatalf("error %v, want ErrBadAnnotation", err)
				}
				return
			}
			if err != nil || ok != tt.wantOK {
				t.Fatalf("ok %v err %v, want ok %v", ok, err, tt.wantOK)
			}
			if !ok {
				return
			}
			if got.IPNumber != tt.want.IPNumber || got.Reclaim != tt.want.Reclaim || len(got.Subnets) != len(tt.want.Subnets) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got.Subnets {
				if got.Subnets[i].Interface != tt.want.Subnets[i].Interface || strings.Join(got.Subnets[i].IPv4, ",") != strings.Join(tt.want.Subnets[i].IPv4, ",") ||
					strings.Join(got.Subnets[i].IPv6, ",") != strings.Join(tt.want.Subnets[i].IPv6, ",") {
					t.Errorf("subnet %d = %+v, want %+v", i, got.Subnets[i], tt.want.Subnets[i])
				}
			}
		})
	}
}

func autoPool(name, cidr string, app Application, subnet, nic string, family int64) v2beta1.SpiderIPPool {
	p := mkPool(name, cidr, ipVersion(family))
	p.Labels = AutoPoolLabels(app, subnet, nic, family, true)
	p.Spec.PodAffinity = AutoPoolAffinity(app)
	return p
}

func TestSelectAutoPools(t *testing.T) {
	top := TopController{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "team-a", Name: "web"}
	web := Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "team-a", Name: "web", UID: "u-11111"}
	other := Application{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "team-a", Name: "api", UID: "u-22222"}
	gone := autoPool("auto4-web-eth0-00000", "10.1.0.0/16", web, "s4", "eth0", 4)
	gone.DeletionTimestamp = &metav1.Time{}
	pools := []v2beta1.SpiderIPPool{
		autoPool("auto4-web-eth0-11111", "10.1.0.0/16", web, "s4", "eth0", 4),
		autoPool("auto6-web-eth0-11111", "fd00:1::/64", web, "s6", "eth0", 6),
		autoPool("auto4-web-net1-11111", "10.2.0.0/16", web, "s4b", "net1", 4),
		autoPool("auto4-api-eth0-22222", "10.1.0.0/16", other, "s4", "eth0", 4),
		gone,
	}
	tests := []struct {
		name    string
		anno    []string
		ifName  string
		pools   []v2beta1.SpiderIPPool
		want    Selection
		wantErr error
		msg     []string
	}{
		{name: "the application's pool, not another's nor a deleted one", anno: []string{AnnoPodSubnet, `{"ipv4":["s4"]}`}, ifName: "eth0", pools: pools,
			want: Selection{IPv4: []string{"auto4-web-eth0-11111"}, Source: "pod annotation " + AnnoPodSubnet}},
		{name: "dual stack", anno: []string{AnnoPodSubnet, `{"ipv4":["s4"],"ipv6":["s6"]}`}, ifName: "eth0", pools: pools,
			want: Selection{IPv4: []string{"auto4-web-eth0-11111"}, IPv6: []string{"auto6-web-eth0-11111"}, Source: "pod annotation " + AnnoPodSubnet}},
		{name: "second NIC from subnets", anno: []string{AnnoPodSubnets, `[{"interface":"eth0","ipv4":["s4"]},{"interface":"net1","ipv4":["s4b"]}]`}, ifName: "net1", pools: pools,
			want: Selection{IPv4: []string{"auto4-web-net1-11111"}, Source: "pod annotation " + AnnoPodSubnets}},
		{name: "pool of another subnet does not count", anno: []string{AnnoPodSubnet, `{"ipv4":["s-other"]}`}, ifName: "eth0", pools: pools,
			wantErr: ErrAutoPoolNotReady, msg: []string{`SpiderSubnet "s-other"`, "Deployment team-a/web", "does not exist yet"}},
		{name: "not created yet", anno: []string{AnnoPodSubnet, `{"ipv4":["s4"]}`}, ifName: "eth0", pools: nil,
			wantErr: ErrAutoPoolNotReady, msg: []string{"auto4-web-eth0-", "controller creates it"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInput()
			podAnno(tt.anno...)(&in)
			in.IfName, in.Pools, in.TopController = tt.ifName, tt.pools, top
			got, err := SelectPools(in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				for _, m := range tt.msg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("message %q lacks %q", err, m)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got.IPv4, ",") != strings.Join(tt.want.IPv4, ",") || strings.Join(got.IPv6, ",") != strings.Join(tt.want.IPv6, ",") || got.Source != tt.want.Source {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStatefulSetOrdinal(t *testing.T) {
	tests := []struct {
		pod, sts string
		want     int
		ok       bool
	}{
		{"web-0", "web", 0, true},
		{"web-12", "web", 12, true},
		{"web-db-3", "web-db", 3, true},
		{"web-db-3", "web", 0, false},
		{"web-", "web", 0, false},
		{"web-01", "web", 0, false},
		{"web--1", "web", 0, false},
		{"other-1", "web", 0, false},
	}
	for _, tt := range tests {
		got, ok := StatefulSetOrdinal(tt.pod, tt.sts)
		if got != tt.want || ok != tt.ok {
			t.Errorf("StatefulSetOrdinal(%q, %q) = %d, %v; want %d, %v", tt.pod, tt.sts, got, ok, tt.want, tt.ok)
		}
	}
	three := int32(3)
	for _, tt := range []struct {
		replicas *int32
		start    int32
		ordinal  int
		want     bool
	}{
		{&three, 0, 2, true}, {&three, 0, 3, false}, {nil, 0, 0, true}, {nil, 0, 1, false},
		{&three, 5, 4, false}, {&three, 5, 5, true}, {&three, 5, 7, true}, {&three, 5, 8, false},
	} {
		if got := StatefulSetWantsOrdinal(tt.replicas, tt.start, tt.ordinal); got != tt.want {
			t.Errorf("StatefulSetWantsOrdinal(%v, %d, %d) = %v, want %v", tt.replicas, tt.start, tt.ordinal, got, tt.want)
		}
	}
}
