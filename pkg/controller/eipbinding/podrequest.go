package eipbinding

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// podRequest is what a pod's annotations ask of its EIPs.
type podRequest struct {
	// withEIP: the pod's IPs get EIPs even in pools without the EIP attribute.
	withEIP bool
	// provider is the cloud for pools without the attribute.
	provider string
	// id is an existing EIP to bind, never released (orbweaver.io/eip-id, or the pod's
	// entry of orbweaver.io/eip-id-list).
	id string
	// listShort says why the pod gets no EIP: its ordinal is past orbweaver.io/eip-id-list.
	listShort string
	// attrs are the Auto attributes the pod sets; zero fields keep the pool's.
	attrs v2beta1.EIPSpec
}

// any tells whether the pod asks anything of EIPs.
func (r podRequest) any() bool {
	return r.withEIP || r.id != "" || r.listShort != "" || r.attrs.Bandwidth != nil || r.attrs.ISP != "" || r.attrs.InternetChargeType != "" ||
		r.attrs.InstanceChargeType != "" || r.attrs.PublicIPPool != "" || r.attrs.BandwidthPackage != "" ||
		r.attrs.ResourceGroup != "" || r.attrs.Name != "" || r.attrs.Description != "" || r.attrs.ReleaseStrategy != nil
}

// aliyunAnnotations are Alibaba Cloud ACK's pod annotations (seed 001) and the
// orbweaver annotations they are read as, first wins when two name the same one: ACK's
// own, then Terway's network.alibabacloud.com ones, then the aliases seed 001 marks
// "兼容" (compatible): ECI's eci-with-eip and eci-eip-instanceid, and eip-charge-type.
var aliyunAnnotations = []struct{ key, ours string }{
	{"k8s.aliyun.com/pod-with-eip", v2beta1.AnnoWithEIP},
	{"k8s.aliyun.com/pod-eip-instanceid", v2beta1.AnnoEIPID},
	{"k8s.aliyun.com/eip-bandwidth", v2beta1.AnnoEIPBandwidth},
	{"k8s.aliyun.com/eip-isp", v2beta1.AnnoEIPISP},
	{"k8s.aliyun.com/eip-internet-charge-type", v2beta1.AnnoEIPInternetChargeType},
	{"k8s.aliyun.com/eip-instance-charge-type", v2beta1.AnnoEIPInstanceChargeType},
	{"k8s.aliyun.com/eip-public-ip-address-pool-id", v2beta1.AnnoEIPPublicIPPool},
	{"k8s.aliyun.com/eip-common-bandwidth-package-id", v2beta1.AnnoEIPBandwidthPackage},
	{"k8s.aliyun.com/eip-resource-group-id", v2beta1.AnnoEIPResourceGroup},
	{"k8s.aliyun.com/eip-name", v2beta1.AnnoEIPName},
	{"k8s.aliyun.com/eip-description", v2beta1.AnnoEIPDescription},
	{"k8s.aliyun.com/pod-eip-release-strategy", v2beta1.AnnoEIPReleaseStrategy},
	{"network.alibabacloud.com/pod-with-eip", v2beta1.AnnoWithEIP},
	{"network.alibabacloud.com/pod-eip-instanceid", v2beta1.AnnoEIPID},
	{"network.alibabacloud.com/eip-bandwidth", v2beta1.AnnoEIPBandwidth},
	{"network.alibabacloud.com/pod-eip-release-strategy", v2beta1.AnnoEIPReleaseStrategy},
	{"k8s.aliyun.com/eci-with-eip", v2beta1.AnnoWithEIP},
	{"k8s.aliyun.com/eci-eip-instanceid", v2beta1.AnnoEIPID},
	{"k8s.aliyun.com/eip-charge-type", v2beta1.AnnoEIPInternetChargeType},
}

// vendorAliyun maps each of aliyunAnnotations to orbweaver's annotation.
var vendorAliyun = func() map[string]string {
	m := make(map[string]string, len(aliyunAnnotations))
	for _, a := range aliyunAnnotations {
		m[a.key] = a.ours
	}
	return m
}()

// ACK's readiness gate and the pod annotation it sets to the bound public IP (seed 000,
// seed 001), both honoured with VendorAnnotations.
const (
	ackEIPConditionType = "k8s.aliyun.com/eip"
	ackAllocatedEIP     = "k8s.aliyun.com/allocated-eipAddress"
)

// Tencent Cloud TKE's pod annotations (seed 003).
const (
	tkeEIPAttributes   = "tke.cloud.tencent.com/eip-attributes"
	tkeEIPDeletePolicy = "tke.cloud.tencent.com/eip-claim-delete-policy"
	tkeEIPIDList       = "tke.cloud.tencent.com/eip-id-list"
)

// parsePodRequest reads a pod's EIP annotations: orbweaver's, and with vendor also
// Alibaba ACK's and Tencent TKE's, translated (orbweaver's win when both are set). name
// is the pod's name, whose ordinal picks its EIP from TKE's eip-id-list.
func parsePodRequest(pod *corev1.Pod, vendor bool) (podRequest, error) {
	a, from := pod.Annotations, map[string]string(nil)
	if vendor {
		a, from = translateVendor(pod.Annotations)
	}
	// key names an annotation in an error: the vendor's a value was read from, if it was.
	key := func(k string) string {
		if src, ok := from[k]; ok {
			return fmt.Sprintf("%s (read as %s)", src, k)
		}
		return k
	}
	var r podRequest
	var errs []string
	if v, ok := a[v2beta1.AnnoWithEIP]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s %q: want true or false", key(v2beta1.AnnoWithEIP), v))
		}
		r.withEIP = b
	}
	r.provider = a[v2beta1.AnnoEIPProvider]
	switch r.provider {
	case "", "alibaba", "aws", "tencent":
	default:
		errs = append(errs, fmt.Sprintf("%s %q: want alibaba, aws or tencent", key(v2beta1.AnnoEIPProvider), r.provider))
	}
	r.id = strings.TrimSpace(a[v2beta1.AnnoEIPID])
	if v, ok := a[v2beta1.AnnoEIPIDList]; ok {
		id, short, err := idOfOrdinal(pod, v, key(v2beta1.AnnoEIPIDList))
		switch {
		case err != nil:
			errs = append(errs, err.Error())
		case r.id != "":
			errs = append(errs, fmt.Sprintf("%s and %s: set one of them", key(v2beta1.AnnoEIPID), key(v2beta1.AnnoEIPIDList)))
		default:
			r.id, r.listShort = id, short
		}
	}
	if v, ok := a[v2beta1.AnnoEIPBandwidth]; ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if err != nil || n < 1 || n > 100000 {
			errs = append(errs, fmt.Sprintf("%s %q: want Mbit/s from 1 to 100000", key(v2beta1.AnnoEIPBandwidth), v))
		} else {
			bw := int32(n)
			r.attrs.Bandwidth = &bw
		}
	}
	r.attrs.ISP = a[v2beta1.AnnoEIPISP]
	r.attrs.InternetChargeType = a[v2beta1.AnnoEIPInternetChargeType]
	r.attrs.InstanceChargeType = a[v2beta1.AnnoEIPInstanceChargeType]
	r.attrs.PublicIPPool = a[v2beta1.AnnoEIPPublicIPPool]
	r.attrs.BandwidthPackage = a[v2beta1.AnnoEIPBandwidthPackage]
	r.attrs.ResourceGroup = a[v2beta1.AnnoEIPResourceGroup]
	r.attrs.Name = a[v2beta1.AnnoEIPName]
	r.attrs.Description = a[v2beta1.AnnoEIPDescription]
	if v, ok := a[v2beta1.AnnoEIPReleaseStrategy]; ok {
		p := v2beta1.ReclaimPolicy(strings.TrimSpace(v))
		if _, _, err := p.ReclaimAfter(); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", key(v2beta1.AnnoEIPReleaseStrategy), err))
		} else {
			r.attrs.ReleaseStrategy = &p
		}
	}
	if r.id != "" && r.attrs.ReleaseStrategy != nil && *r.attrs.ReleaseStrategy != v2beta1.ReclaimNever {
		errs = append(errs, fmt.Sprintf("%s: an EIP given by %s is never released", key(v2beta1.AnnoEIPReleaseStrategy), key(v2beta1.AnnoEIPID)))
	}
	if len(errs) > 0 {
		return podRequest{}, fmt.Errorf("pod annotations: %s", strings.Join(errs, "; "))
	}
	return r, nil
}

// translateVendor returns the annotations with the vendors' EIP annotations added under
// orbweaver's names, where orbweaver's own are not set, and the vendor annotation each
// added one was read from.
func translateVendor(in map[string]string) (out, from map[string]string) {
	out, from = make(map[string]string, len(in)), map[string]string{}
	set := func(k, v, src string) {
		if _, ok := in[k]; !ok {
			out[k], from[k] = v, src
		}
	}
	for k, v := range in {
		out[k] = v
	}
	byVendor := map[string]bool{} // orbweaver's annotations an ACK one has set
	for _, a := range aliyunAnnotations {
		v, has := in[a.key]
		if !has || byVendor[a.ours] {
			continue
		}
		byVendor[a.ours] = true
		set(a.ours, v, a.key)
		// Any of ACK's annotations is about an Alibaba Cloud EIP: seed 000's final
		// manifest names one by k8s.aliyun.com/pod-eip-instanceid alone.
		set(v2beta1.AnnoEIPProvider, "alibaba", a.key)
	}
	if v, ok := in[tkeEIPAttributes]; ok {
		set(v2beta1.AnnoWithEIP, "true", tkeEIPAttributes)
		set(v2beta1.AnnoEIPProvider, "tencent", tkeEIPAttributes)
		var attrs struct {
			Bandwidth json.RawMessage
			ISP       string
		}
		if err := json.Unmarshal([]byte(v), &attrs); err == nil {
			if bw := strings.Trim(string(attrs.Bandwidth), `"`); bw != "" {
				set(v2beta1.AnnoEIPBandwidth, bw, tkeEIPAttributes)
			}
			if attrs.ISP != "" {
				set(v2beta1.AnnoEIPISP, attrs.ISP, tkeEIPAttributes)
			}
		}
	}
	if v, ok := in[tkeEIPDeletePolicy]; ok && strings.EqualFold(v, "Never") {
		set(v2beta1.AnnoEIPReleaseStrategy, string(v2beta1.ReclaimNever), tkeEIPDeletePolicy)
	}
	if v, ok := in[tkeEIPIDList]; ok {
		set(v2beta1.AnnoEIPProvider, "tencent", tkeEIPIDList)
		set(v2beta1.AnnoEIPIDList, v, tkeEIPIDList)
	}
	return out, from
}

// idOfOrdinal picks the pod's EIP from an EIP ID list (key names the annotation): for
// a StatefulSet's pod the entry of the ordinal that ends its name, for any other pod
// the first. A pod past the list gets short, what to do; a malformed list is an error.
func idOfOrdinal(pod *corev1.Pod, list, key string) (id, short string, err error) {
	name := pod.Name
	ids := strings.Split(list, ",")
	for i := range ids {
		ids[i] = strings.TrimSpace(ids[i])
		if ids[i] == "" {
			return "", "", fmt.Errorf("%s %q: entry %d is empty; want EIP IDs separated by commas", key, list, i)
		}
	}
	ordinal := 0 // a Deployment's pod name may end in digits too: no ordinal there
	if c := metav1.GetControllerOf(pod); c != nil && c.Kind == "StatefulSet" {
		if k := strings.LastIndexByte(name, '-'); k >= 0 {
			if n, err := strconv.Atoi(name[k+1:]); err == nil && n >= 0 {
				ordinal = n
			}
		}
	}
	if ordinal >= len(ids) {
		return "", fmt.Sprintf("pod %s has ordinal %d, and %s names %d EIPs (%s): add one for it, or scale the StatefulSet down to %d",
			name, ordinal, key, len(ids), strings.Join(ids, ", "), len(ids)), nil
	}
	return ids[ordinal], "", nil
}

// effectiveSpec is the EIP spec for an IP held by a pod that asks r: the pool's, with
// the pod's attributes over it; a pool without one gets an Auto (or, with an EIP ID,
// Static) spec from the pod alone. nil when neither asks for an EIP.
func effectiveSpec(pool *v2beta1.EIPSpec, r podRequest, defaultProvider string) *v2beta1.EIPSpec {
	if !r.any() {
		return pool
	}
	if pool == nil && !r.withEIP && r.id == "" {
		return nil // attributes alone do not ask for an EIP
	}
	var s *v2beta1.EIPSpec
	if pool != nil {
		s = pool.DeepCopy()
	} else {
		s = &v2beta1.EIPSpec{Provider: r.provider, Mode: v2beta1.EIPAuto}
		if s.Provider == "" {
			s.Provider = defaultProvider
		}
	}
	if r.id != "" {
		return &v2beta1.EIPSpec{Provider: s.Provider, Mode: v2beta1.EIPStatic, Static: []string{r.id}}
	}
	if s.Mode == v2beta1.EIPStatic {
		return s // a pool's Static EIPs exist already: attributes do not apply
	}
	a := r.attrs
	if a.Bandwidth != nil {
		s.Bandwidth = a.Bandwidth
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&s.ISP, a.ISP}, {&s.InternetChargeType, a.InternetChargeType}, {&s.InstanceChargeType, a.InstanceChargeType},
		{&s.PublicIPPool, a.PublicIPPool}, {&s.BandwidthPackage, a.BandwidthPackage}, {&s.ResourceGroup, a.ResourceGroup},
		{&s.Name, a.Name}, {&s.Description, a.Description},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	if a.ReleaseStrategy != nil {
		s.ReleaseStrategy = a.ReleaseStrategy
	}
	return s
}

// bindingSpec is the spec an unheld IP's pod-requested binding is judged by: its own
// cloud, kind and release strategy, since no pod asks for it any more.
func bindingSpec(b *v2beta1.EIPBinding) *v2beta1.EIPSpec {
	s := &v2beta1.EIPSpec{Provider: b.Provider, Mode: v2beta1.EIPAuto, ReleaseStrategy: b.ReleaseStrategy}
	if b.Static {
		s.Mode = v2beta1.EIPStatic
	}
	return s
}
