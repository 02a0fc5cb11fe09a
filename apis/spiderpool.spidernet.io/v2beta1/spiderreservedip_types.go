package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ReservedIPSpec lists addresses that no pool hands out.
type ReservedIPSpec struct {
	// IPVersion is 4 or 6. When unset it is derived from the first entry of ips.
	// +optional
	// +kubebuilder:validation:Enum=4;6
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// IPs are single IPs and "first-last" ranges. IPs already allocated when they are
	// reserved stay with their pods; they are not handed out again once released.
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	IPs []IPOrRange `json:"ips,omitempty"`
}

// SpiderReservedIP reserves addresses across every pool and subnet.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=sr,categories=spiderpool
// +kubebuilder:printcolumn:name="VERSION",type=string,JSONPath=`.spec.ipVersion`,description="IP version"
type SpiderReservedIP struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ReservedIPSpec `json:"spec"`
}

// SpiderReservedIPList is a list of SpiderReservedIP.
// +kubebuilder:object:root=true
type SpiderReservedIPList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderReservedIP `json:"items"`
}
