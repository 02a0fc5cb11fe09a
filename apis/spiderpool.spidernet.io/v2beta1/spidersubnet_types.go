package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SubnetSpec is SpiderPool's SpiderSubnet spec, field for field: the addresses that
// pools of this subnet, and the auto pools created per workload, are carved from.
// +kubebuilder:validation:XValidation:rule="!has(self.ipVersion) || !isCIDR(self.subnet) || cidr(self.subnet).ip().family() == self.ipVersion",message="subnet is not of the family given by ipVersion",fieldPath=".ipVersion"
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

	// Orbweaver holds orbweaver's own settings for this subnet (not part of SpiderPool).
	// +optional
	Orbweaver *SubnetOrbweaverSpec `json:"orbweaver,omitempty"`
}

// SubnetOrbweaverSpec holds a subnet's orbweaver-only settings.
type SubnetOrbweaverSpec struct {
	// EIP is the template of the EIP attribute of the subnet's auto pools: each auto
	// pool gets a copy (Auto mode only; a Static list cannot be shared by pools).
	// +optional
	EIP *EIPSpec `json:"eip,omitempty"`
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

	// Orbweaver holds orbweaver's observations of the subnet (not part of SpiderPool).
	// +optional
	Orbweaver *SubnetOrbweaverStatus `json:"orbweaver,omitempty"`

	// Conditions are the standard Kubernetes conditions of the subnet (not part of
	// SpiderPool): Ready, which the subnet controller sets, sums up the detailed
	// conditions of status.orbweaver.conditions (docs/reference/crds.md).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SubnetOrbweaverStatus holds a subnet's orbweaver-only status.
type SubnetOrbweaverStatus struct {
	// Conditions are the subnet controller's observations: Exhausted, PoolsOutside and,
	// while the subnet is being deleted, DeletionBlocked (docs/reference/crds.md).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Conditions of a SpiderSubnet (status.orbweaver.conditions) and their reasons.
const (
	// SubnetExhaustedCondition is True when no address is left for a new or growing
	// pool: every address of spec.ips minus spec.excludeIPs is in a pool's spec.ips or
	// reserved by a SpiderReservedIP.
	SubnetExhaustedCondition = "Exhausted"
	// SubnetNoFreeAddressReason (Exhausted True): no address is left for pools.
	SubnetNoFreeAddressReason = "NoFreeAddress"
	// SubnetFreeAddressesReason (Exhausted False): addresses are left for pools.
	SubnetFreeAddressesReason = "FreeAddresses"

	// SubnetPoolsOutsideCondition is True when a pool of the subnet has addresses (its
	// ips minus excludeIPs) outside the subnet's ips minus excludeIPs.
	SubnetPoolsOutsideCondition = "PoolsOutside"
	// SubnetAddressesOutsideSubnetReason (PoolsOutside True).
	SubnetAddressesOutsideSubnetReason = "AddressesOutsideSubnet"
	// SubnetPoolsInsideReason (PoolsOutside False): every pool is inside the subnet.
	SubnetPoolsInsideReason = "PoolsInside"

	// SubnetDeletionBlockedCondition is True while a deleted subnet keeps its finalizer
	// because pools still belong to it; never set on a subnet that is not being deleted.
	SubnetDeletionBlockedCondition = "DeletionBlocked"
	// SubnetPoolsRemainReason (DeletionBlocked True).
	SubnetPoolsRemainReason = "PoolsRemain"
)

// The standard condition of a SpiderSubnet (status.conditions) and its reasons.
const (
	// SubnetReadyCondition is True when pools, auto pools included, can be carved from
	// the subnet. A subnet with no address left is Ready: see the Exhausted condition.
	SubnetReadyCondition = "Ready"
	// SubnetServingReason (Ready True).
	SubnetServingReason = "Serving"
	// SubnetDeletingReason (Ready False): the subnet is being deleted.
	SubnetDeletingReason = "Deleting"
)

// SpiderSubnet is a subnet that pools, including per-workload auto pools, are carved from.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=ss,categories=spiderpool
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="VERSION",type=string,JSONPath=`.spec.ipVersion`,description="IP version"
// +kubebuilder:printcolumn:name="SUBNET",type=string,JSONPath=`.spec.subnet`,description="subnet"
// +kubebuilder:printcolumn:name="ALLOCATED-IP-COUNT",type=integer,JSONPath=`.status.allocatedIPCount`,description="IPs handed to pools"
// +kubebuilder:printcolumn:name="TOTAL-IP-COUNT",type=integer,JSONPath=`.status.totalIPCount`,description="IPs of the subnet"
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
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
