package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SubnetSpec is SpiderPool's SpiderSubnet spec, field for field: the addresses that
// pools of this subnet, and the auto pools created per workload, are carved from.
// +kubebuilder:validation:XValidation:rule="!has(self.ipVersion) || !isCIDR(self.subnet) || cidr(self.subnet).ip().family() == self.ipVersion",message="subnet is not of the family given by ipVersion"
type SubnetSpec struct {
	// IPVersion is 4 or 6. When unset it is derived from subnet.
	// +optional
	// +kubebuilder:validation:Enum=4;6
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// Subnet is the subnet in canonical CIDR form. Immutable.
	// +required
	Subnet CIDR `json:"subnet"`

	// IPs are the addresses pools may take from this subnet.
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	IPs []IPOrRange `json:"ips,omitempty"`

	// ExcludeIPs are addresses of ips that no pool may take.
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	ExcludeIPs []IPOrRange `json:"excludeIPs,omitempty"`

	// Gateway is inherited by pools of this subnet that set none.
	// +optional
	Gateway *IPAddress `json:"gateway,omitempty"`

	// Vlan is accepted for manifests written for older SpiderPool releases and ignored.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	Vlan *int64 `json:"vlan,omitempty"`

	// Routes are inherited by pools of this subnet that set none.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Routes []Route `json:"routes,omitempty"`
}

// SubnetStatus is what the subnet has handed to pools.
type SubnetStatus struct {
	// ControlledIPPools is, as in SpiderPool, a JSON object in a string: pool name to
	// {"ips": [...ranges], "application": "<group>_<version>_<Kind>_<ns>_<name>"}.
	// +optional
	ControlledIPPools *string `json:"controlledIPPools,omitempty"`

	// TotalIPCount is the number of addresses of ips minus excludeIPs.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TotalIPCount *int64 `json:"totalIPCount,omitempty"`

	// AllocatedIPCount is the number of addresses handed to pools (not to pods).
	// +optional
	// +kubebuilder:validation:Minimum=0
	AllocatedIPCount *int64 `json:"allocatedIPCount,omitempty"`
}

// SpiderSubnet is a subnet that pools, including per-workload auto pools, are carved from.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ss,categories=spiderpool
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="VERSION",type=string,JSONPath=`.spec.ipVersion`,description="IP version"
// +kubebuilder:printcolumn:name="SUBNET",type=string,JSONPath=`.spec.subnet`,description="subnet"
// +kubebuilder:printcolumn:name="ALLOCATED-IP-COUNT",type=integer,JSONPath=`.status.allocatedIPCount`,description="IPs handed to pools"
// +kubebuilder:printcolumn:name="TOTAL-IP-COUNT",type=integer,JSONPath=`.status.totalIPCount`,description="IPs of the subnet"
type SpiderSubnet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   SubnetSpec   `json:"spec"`
	Status SubnetStatus `json:"status,omitempty"`
}

// SpiderSubnetList is a list of SpiderSubnet.
// +kubebuilder:object:root=true
type SpiderSubnetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderSubnet `json:"items"`
}
