package eipbinding

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

func TestParsePodRequest(t *testing.T) {
	never := v2beta1.ReclaimNever
	for _, tt := range []struct {
		name   string
		pod    string
		anno   map[string]string
		vendor bool
		// notInSet: the pod has no StatefulSet controller (the others have one).
		notInSet bool
		want     podRequest
		wantErr  string
	}{
		{name: "none", pod: "p", anno: map[string]string{"app": "x"}},
		{name: "orbweaver's", pod: "p", anno: map[string]string{
			v2beta1.AnnoWithEIP: "true", v2beta1.AnnoEIPProvider: "aws", v2beta1.AnnoEIPBandwidth: "50",
			v2beta1.AnnoEIPISP: "BGP", v2beta1.AnnoEIPReleaseStrategy: "10m"},
			want: podRequest{withEIP: true, provider: "aws", attrs: v2beta1.EIPSpec{Bandwidth: ptr.To[int32](50), ISP: "BGP", ReleaseStrategy: ptr.To(v2beta1.ReclaimPolicy("10m"))}}},
		{name: "an EIP by ID", pod: "p", anno: map[string]string{v2beta1.AnnoEIPID: " eip-1 "}, want: podRequest{id: "eip-1"}},
		{name: "ACK's, ignored without the vendor switch", pod: "p", anno: map[string]string{"k8s.aliyun.com/pod-with-eip": "true"}},
		{name: "ACK's, with it", pod: "p", vendor: true, anno: map[string]string{
			"k8s.aliyun.com/pod-with-eip": "true", "k8s.aliyun.com/eip-bandwidth": "5",
			"k8s.aliyun.com/eip-internet-charge-type": "PayByBandwidth", "k8s.aliyun.com/pod-eip-release-strategy": "Never"},
			want: podRequest{withEIP: true, provider: "alibaba", attrs: v2beta1.EIPSpec{Bandwidth: ptr.To[int32](5), InternetChargeType: "PayByBandwidth", ReleaseStrategy: &never}}},
		{name: "orbweaver's win over ACK's", pod: "p", vendor: true, anno: map[string]string{
			"k8s.aliyun.com/pod-with-eip": "true", "k8s.aliyun.com/eip-bandwidth": "5", v2beta1.AnnoEIPBandwidth: "7"},
			want: podRequest{withEIP: true, provider: "alibaba", attrs: v2beta1.EIPSpec{Bandwidth: ptr.To[int32](7)}}},
		{name: "ACK's compatible aliases (seed 001): eci-with-eip, eip-charge-type", pod: "p", vendor: true, anno: map[string]string{
			"k8s.aliyun.com/eci-with-eip": "true", "k8s.aliyun.com/eip-charge-type": "PayByBandwidth"},
			want: podRequest{withEIP: true, provider: "alibaba", attrs: v2beta1.EIPSpec{InternetChargeType: "PayByBandwidth"}}},
		{name: "ACK's compatible alias eci-eip-instanceid", pod: "p", vendor: true, anno: map[string]string{"k8s.aliyun.com/eci-eip-instanceid": "eip-2ze1"},
			want: podRequest{provider: "alibaba", id: "eip-2ze1"}},
		{name: "seed 000's final manifest: an EIP by ACK's ID alone is Alibaba's", pod: "p", vendor: true, anno: map[string]string{"k8s.aliyun.com/pod-eip-instanceid": "eip-2zeX"},
			want: podRequest{provider: "alibaba", id: "eip-2zeX"}},
		{name: "orbweaver's cloud wins over the one ACK's annotations imply", pod: "p", vendor: true, anno: map[string]string{
			"k8s.aliyun.com/pod-eip-instanceid": "eip-2zeX", v2beta1.AnnoEIPProvider: "aws"},
			want: podRequest{provider: "aws", id: "eip-2zeX"}},
		{name: "ACK's own names win over their aliases", pod: "p", vendor: true, anno: map[string]string{
			"k8s.aliyun.com/pod-eip-instanceid": "eip-own", "k8s.aliyun.com/eci-eip-instanceid": "eip-alias",
			"k8s.aliyun.com/eip-internet-charge-type": "PayByTraffic", "k8s.aliyun.com/eip-charge-type": "PayByBandwidth"},
			want: podRequest{provider: "alibaba", id: "eip-own", attrs: v2beta1.EIPSpec{InternetChargeType: "PayByTraffic"}}},
		{name: "the aliases, ignored without the vendor switch", pod: "p", anno: map[string]string{
			"k8s.aliyun.com/eci-with-eip": "true", "k8s.aliyun.com/eip-charge-type": "PayByBandwidth"}},
		{name: "TKE's attributes and delete policy", pod: "p", vendor: true, anno: map[string]string{
			"tke.cloud.tencent.com/eip-attributes": `{"Bandwidth":"100","ISP":"BGP"}`, "tke.cloud.tencent.com/eip-claim-delete-policy": "Never"},
			want: podRequest{withEIP: true, provider: "tencent", attrs: v2beta1.EIPSpec{Bandwidth: ptr.To[int32](100), ISP: "BGP", ReleaseStrategy: &never}}},
		{name: "TKE's ID list by ordinal", pod: "web-1", vendor: true, anno: map[string]string{"tke.cloud.tencent.com/eip-id-list": "eip-a, eip-b"},
			want: podRequest{provider: "tencent", id: "eip-b"}},
		{name: "TKE's ID list past the ordinal: the pod waits, told why", pod: "web-2", vendor: true, anno: map[string]string{"tke.cloud.tencent.com/eip-id-list": "eip-a,eip-b"},
			want: podRequest{provider: "tencent", listShort: "pod web-2 has ordinal 2, and tke.cloud.tencent.com/eip-id-list (read as orbweaver.io/eip-id-list) names 2 EIPs (eip-a, eip-b): add one for it, or scale the StatefulSet down to 2"}},
		{name: "orbweaver's ID list by ordinal", pod: "db-2", anno: map[string]string{v2beta1.AnnoEIPIDList: "eip-a,eip-b, eip-c "},
			want: podRequest{id: "eip-c"}},
		{name: "orbweaver's ID list, a name without an ordinal takes the first", pod: "web-7d9f8-x2kq9", anno: map[string]string{v2beta1.AnnoEIPIDList: "eip-a,eip-b"},
			want: podRequest{id: "eip-a"}},
		{name: "orbweaver's ID list, a pod of no StatefulSet takes the first whatever its name", pod: "web-7d9f8-24567", notInSet: true,
			anno: map[string]string{v2beta1.AnnoEIPIDList: "eip-a,eip-b"}, want: podRequest{id: "eip-a"}},
		{name: "orbweaver's ID list past the ordinal", pod: "db-3", anno: map[string]string{v2beta1.AnnoEIPIDList: "eip-a,eip-b,eip-c"},
			want: podRequest{listShort: "pod db-3 has ordinal 3, and orbweaver.io/eip-id-list names 3 EIPs (eip-a, eip-b, eip-c): add one for it, or scale the StatefulSet down to 3"}},
		{name: "an ID list with an empty entry", pod: "db-0", anno: map[string]string{v2beta1.AnnoEIPIDList: "eip-a,,eip-c"},
			wantErr: `orbweaver.io/eip-id-list "eip-a,,eip-c": entry 1 is empty`},
		{name: "an ID and an ID list", pod: "db-0", anno: map[string]string{v2beta1.AnnoEIPIDList: "eip-a", v2beta1.AnnoEIPID: "eip-b"},
			wantErr: "orbweaver.io/eip-id and orbweaver.io/eip-id-list: set one of them"},
		{name: "bad values, all named", pod: "p", anno: map[string]string{
			v2beta1.AnnoWithEIP: "yes please", v2beta1.AnnoEIPBandwidth: "0", v2beta1.AnnoEIPProvider: "gcp", v2beta1.AnnoEIPReleaseStrategy: "soon"},
			wantErr: `orbweaver.io/with-eip "yes please": want true or false; orbweaver.io/eip-provider "gcp": want alibaba, aws or tencent; orbweaver.io/eip-bandwidth "0": want Mbit/s from 1 to 100000; orbweaver.io/eip-release-strategy: reclaim policy "soon"`},
		{name: "a bad vendor value names the vendor's annotation", pod: "p", vendor: true, anno: map[string]string{
			"k8s.aliyun.com/eci-with-eip": "yes", "k8s.aliyun.com/eip-bandwidth": "lots"},
			wantErr: `k8s.aliyun.com/eci-with-eip (read as orbweaver.io/with-eip) "yes": want true or false; k8s.aliyun.com/eip-bandwidth (read as orbweaver.io/eip-bandwidth) "lots"`},
		{name: "an EIP by ID is never released", pod: "p", anno: map[string]string{v2beta1.AnnoEIPID: "eip-1", v2beta1.AnnoEIPReleaseStrategy: "Follow"},
			wantErr: "never released"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tt.pod, Annotations: tt.anno}}
			if !tt.notInSet {
				pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "set", Controller: ptr.To(true)}}
			}
			got, err := parsePodRequest(pod, tt.vendor)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEffectiveSpec(t *testing.T) {
	pool := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto, Bandwidth: ptr.To[int32](10), ISP: "BGP", Tags: map[string]string{"t": "1"}}
	static := &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-s"}}
	for _, tt := range []struct {
		name string
		pool *v2beta1.EIPSpec
		req  podRequest
		want *v2beta1.EIPSpec
	}{
		{"nothing asked: the pool's", pool, podRequest{}, pool},
		{"nothing asked, no pool attribute: none", nil, podRequest{}, nil},
		{"attributes alone in a pool without EIPs: none", nil, podRequest{attrs: v2beta1.EIPSpec{ISP: "X"}}, nil},
		{"the pod's attributes over the pool's", pool, podRequest{attrs: v2beta1.EIPSpec{Bandwidth: ptr.To[int32](50)}},
			&v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPAuto, Bandwidth: ptr.To[int32](50), ISP: "BGP", Tags: map[string]string{"t": "1"}}},
		{"with-eip in a pool without EIPs, the default cloud", nil, podRequest{withEIP: true, attrs: v2beta1.EIPSpec{ISP: "BGP_PRO"}},
			&v2beta1.EIPSpec{Provider: "tencent", Mode: v2beta1.EIPAuto, ISP: "BGP_PRO"}},
		{"with-eip and a cloud", nil, podRequest{withEIP: true, provider: "alibaba"}, &v2beta1.EIPSpec{Provider: "alibaba", Mode: v2beta1.EIPAuto}},
		{"an EIP by ID, whatever the pool", pool, podRequest{id: "eip-1"}, &v2beta1.EIPSpec{Provider: "aws", Mode: v2beta1.EIPStatic, Static: []string{"eip-1"}}},
		{"a Static pool ignores attributes", static, podRequest{attrs: v2beta1.EIPSpec{ISP: "X"}}, static},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := effectiveSpec(tt.pool, tt.req, "tencent"); !equality.Semantic.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
