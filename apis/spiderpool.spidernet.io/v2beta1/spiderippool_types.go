package v2beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPPoolSpec is SpiderPool's SpiderIPPool spec, field for field, plus the optional
// orbweaver block.
// +kubebuilder:validation:XValidation:rule="!has(self.ipVersion) || !isCIDR(self.subnet) || cidr(self.subnet).ip().family() == self.ipVersion",message="subnet is not of the family given by ipVersion",fieldPath=".ipVersion"
type IPPoolSpec struct {
	// IPVersion is 4 or 6. When unset it is derived from subnet.
	// +optional
	// +kubebuilder:validation:Enum=4;6
	IPVersion *int64 `json:"ipVersion,omitempty"`

	// Subnet is the pool's subnet in canonical CIDR form. Immutable.
	// +required
	Subnet CIDR `json:"subnet"`

	// IPs are the addresses the pool hands out: single IPs and "first-last" ranges,
	// all inside subnet.
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	IPs []IPOrRange `json:"ips,omitempty"`

	// ExcludeIPs are addresses of ips that are never handed out.
	// +optional
	// +kubebuilder:validation:MaxItems=4096
	ExcludeIPs []IPOrRange `json:"excludeIPs,omitempty"`

	// Gateway is returned to the pod as its default route's next hop.
	// +optional
	Gateway *IPAddress `json:"gateway,omitempty"`

	// Vlan is accepted for manifests written for older SpiderPool releases and ignored,
	// as SpiderPool ignores it since it deprecated the field.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4094
	Vlan *int64 `json:"vlan,omitempty"`

	// Routes are returned to the pod with its IP.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Routes []Route `json:"routes,omitempty"`

	// PodAffinity admits only pods whose labels match.
	// +optional
	PodAffinity *metav1.LabelSelector `json:"podAffinity,omitempty"`

	// NamespaceAffinity admits only pods of namespaces whose labels match.
	// +optional
	NamespaceAffinity *metav1.LabelSelector `json:"namespaceAffinity,omitempty"`

	// NamespaceName admits only pods of these namespaces; it wins over namespaceAffinity.
	// +optional
	NamespaceName []string `json:"namespaceName,omitempty"`

	// NodeAffinity admits only pods on nodes whose labels match.
	// +optional
	NodeAffinity *metav1.LabelSelector `json:"nodeAffinity,omitempty"`

	// NodeName admits only pods on these nodes; it wins over nodeAffinity.
	// +optional
	NodeName []string `json:"nodeName,omitempty"`

	// MultusName admits only pods attached through these Multus networks ("ns/name" or
	// "name").
	// +optional
	MultusName []string `json:"multusName,omitempty"`

	// Default marks a cluster default pool, used when nothing more specific names a pool.
	// +optional
	// +kubebuilder:default=false
	Default *bool `json:"default,omitempty"`

	// Disable stops the pool from handing out new IPs; existing ones stay.
	// +optional
	// +kubebuilder:default=false
	Disable *bool `json:"disable,omitempty"`

	// Orbweaver holds orbweaver's own settings for this pool (not part of SpiderPool).
	// +optional
	Orbweaver *IPPoolOrbweaverSpec `json:"orbweaver,omitempty"`
}

// IPPoolOrbweaverSpec holds a pool's orbweaver-only settings.
type IPPoolOrbweaverSpec struct {
	// ReclaimPolicy says when an IP kept for a StatefulSet pod returns to the pool after
	// the pod is gone: Follow, Never, or a duration such as 10m. When unset, the
	// controller's configured default applies.
	// +optional
	ReclaimPolicy *ReclaimPolicy `json:"reclaimPolicy,omitempty"`

	// EIP gives every IP of the pool its own elastic public IP (docs/design/eip.md).
	// +optional
	EIP *EIPSpec `json:"eip,omitempty"`
}

// IPPoolStatus is the pool's allocation state. In Records mode counts and records change
// together in one write, so allocatedIPCount plus status.orbweaver.spareIPCount always
// equals the number of records.
type IPPoolStatus struct {
	// AllocatedIPs is SpiderPool's record format (a JSON object in a string: address →
	// {"pod":"<ns>/<name>","podUid":"<uid>"}). orbweaver's agents never write it: the
	// pool controller imports it into status.orbweaver.records and removes it in one
	// compare-and-swap (condition SpiderPoolRecordsImported), and no agent allocates from
	// a pool while it is set. `orbweaver export-spiderpool` writes it back for a return
	// to SpiderPool.
	// +optional
	AllocatedIPs *string `json:"allocatedIPs,omitempty"`

	// AllocatedIPCount is the number of IPs held by pods, as in SpiderPool. Addresses a
	// node agent holds in its reserve, not yet handed to a pod, are not counted here but
	// in status.orbweaver.spareIPCount.
	// +optional
	// +kubebuilder:validation:Minimum=0
	AllocatedIPCount *int64 `json:"allocatedIPCount,omitempty"`

	// TotalIPCount is the number of IPs the pool can hand out (ips minus excludeIPs),
	// saturated at the int64 maximum for huge IPv6 pools.
	// +optional
	// +kubebuilder:validation:Minimum=0
	TotalIPCount *int64 `json:"totalIPCount,omitempty"`

	// Orbweaver holds orbweaver's allocation records and conditions (not part of
	// SpiderPool).
	// +optional
	Orbweaver *IPPoolOrbweaverStatus `json:"orbweaver,omitempty"`

	// Conditions are the standard Kubernetes conditions of the pool (not part of
	// SpiderPool): Ready, which the pool controller sets, sums up the detailed conditions
	// of status.orbweaver.conditions, so that `kubectl wait --for=condition=Ready sp/<name>`
	// works (docs/reference/crds.md).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// IPPoolOrbweaverStatus holds a pool's allocation records in orbweaver's compact form,
// and the pool controller's conditions.
type IPPoolOrbweaverStatus struct {
	// Allocation is how node agents allocate from the pool: Records (the default: every
	// allocation in records below, written by the agents) or Grants (node grants: the
	// controller grants addresses to nodes in IPBlocks, and each pod's SpiderEndpoint is
	// its record; docs/design/node-grants.md). The grant controller sets Grants once
	// every node's agent speaks it; it is never set back.
	// +optional
	// +kubebuilder:validation:Enum=Records;Grants
	Allocation AllocationMode `json:"allocation,omitempty"`

	// Records is every allocation of the pool in the compact binary form described in
	// docs/design/allocation-records.md (about 13 bytes per IP before base64), so that a
	// pool of 65,536 allocated IPs stays far below etcd's 1.5 MiB object limit. Read it
	// with pkg/ipam/records; `kubectl get se` shows the same allocations per pod.
	// +optional
	// +kubebuilder:validation:MaxLength=1400000
	Records []byte `json:"records,omitempty"`

	// SpareIPCount is the number of addresses node agents hold in their reserves, taken
	// ahead of their pods and not yet handed to one (Records mode; 0 in Grants mode, where
	// addresses granted to a node are not held). Written with allocatedIPCount.
	// +optional
	// +kubebuilder:validation:Minimum=0
	SpareIPCount *int64 `json:"spareIPCount,omitempty"`

	// FreeIPCount is the number of addresses a new allocation could take now: spec.ips
	// minus spec.excludeIPs minus SpiderReservedIPs, not held by a pod nor a node's
	// reserve; saturated at the int64 maximum. Written with allocatedIPCount.
	// +optional
	// +kubebuilder:validation:Minimum=0
	FreeIPCount *int64 `json:"freeIPCount,omitempty"`

	// Conditions are the pool controller's observations: Exhausted, RecordsValid and,
	// while the pool is being deleted, DeletionBlocked (docs/reference/crds.md). Node
	// agents keep them when they write records.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// EIPs are the pool IPs' elastic public IPs (spec.orbweaver.eip), one per IP, kept
	// by the EIP controller; docs/design/eip.md.
	// +optional
	// +listType=map
	// +listMapKey=ip
	// +kubebuilder:validation:MaxItems=4096
	EIPs []EIPBinding `json:"eips,omitempty"`
}

// AllocationMode is how node agents allocate from a pool (status.orbweaver.allocation).
type AllocationMode string

// Allocation modes.
const (
	// AllocationRecords: records in the pool's status, written by the agents.
	AllocationRecords AllocationMode = "Records"
	// AllocationGrants: node grants (IPBlocks), SpiderEndpoints as the records.
	AllocationGrants AllocationMode = "Grants"
)

// GrantsMode reports whether agents allocate from the pool by node grants.
func (sp *SpiderIPPool) GrantsMode() bool {
	return sp.Status.Orbweaver != nil && sp.Status.Orbweaver.Allocation == AllocationGrants
}

// Conditions of a SpiderIPPool (status.orbweaver.conditions) and their reasons.
const (
	// IPPoolExhaustedCondition is True when a new allocation finds no free address: every
	// address of spec.ips minus spec.excludeIPs minus SpiderReservedIPs is held, by a pod
	// or a node agent's reserve.
	IPPoolExhaustedCondition = "Exhausted"
	// IPPoolNoFreeAddressReason (Exhausted True): no address is free.
	IPPoolNoFreeAddressReason = "NoFreeAddress"
	// IPPoolFreeAddressesReason (Exhausted False): at least one address is free.
	IPPoolFreeAddressesReason = "FreeAddresses"

	// IPPoolRecordsValidCondition is True when status.orbweaver.records decode and every
	// record names an address of spec.ips minus spec.excludeIPs.
	IPPoolRecordsValidCondition = "RecordsValid"
	// IPPoolRecordsDecodedReason (RecordsValid True).
	IPPoolRecordsDecodedReason = "RecordsDecoded"
	// IPPoolRecordsCorruptReason (RecordsValid False): the records do not decode; the
	// counts are left as they were.
	IPPoolRecordsCorruptReason = "RecordsCorrupt"
	// IPPoolAddressesOutsidePoolReason (RecordsValid False): some records name addresses
	// that are not in spec.ips minus spec.excludeIPs.
	IPPoolAddressesOutsidePoolReason = "AddressesOutsidePool"

	// IPPoolImportedCondition is about SpiderPool's own records of the pool
	// (status.allocatedIPs), which the pool controller imports into status.orbweaver.records
	// when orbweaver takes over from SpiderPool (docs/guides/migrate-from-spiderpool.md):
	// True once they are imported, False while they cannot be. Agents allocate nothing
	// from a pool whose status.allocatedIPs is set. Absent on a pool SpiderPool never
	// allocated from.
	IPPoolImportedCondition = "SpiderPoolRecordsImported"
	// IPPoolImportedReason (SpiderPoolRecordsImported True).
	IPPoolImportedReason = "Imported"
	// IPPoolForeignRecordsInvalidReason (SpiderPoolRecordsImported False): a record is
	// malformed, names an address outside the pool or twice, or names an address
	// orbweaver records for another owner; the message names it.
	IPPoolForeignRecordsInvalidReason = "InvalidRecords"
	// IPPoolSpiderPoolRunningReason (SpiderPoolRecordsImported False): pods of
	// SpiderPool's agent or controller still run; the import waits until they are gone.
	IPPoolSpiderPoolRunningReason = "SpiderPoolRunning"

	// IPPoolDeletionBlockedCondition is True while a deleted pool keeps its finalizer
	// because records remain; it is never set on a pool that is not being deleted.
	IPPoolDeletionBlockedCondition = "DeletionBlocked"
	// IPPoolAddressesHeldReason (DeletionBlocked True): addresses are still held.
	IPPoolAddressesHeldReason = "AddressesHeld"
	// IPPoolRecordsUnreadableReason (DeletionBlocked True): the records do not decode,
	// so nobody can tell whether addresses are held.
	IPPoolRecordsUnreadableReason = "RecordsUnreadable"
)

// The standard condition of a SpiderIPPool (status.conditions) and its reasons. Ready is
// False with the first reason that applies, in this order: SpecInvalid, the reason of a
// SpiderPoolRecordsImported condition that is not True (or ImportPending), RecordsCorrupt,
// Deleting, Disabled.
const (
	// IPPoolReadyCondition is True when agents can allocate from the pool.
	IPPoolReadyCondition = "Ready"
	// IPPoolServingReason (Ready True): agents allocate from the pool. A full pool is
	// Ready: see the Exhausted condition.
	IPPoolServingReason = "Serving"
	// IPPoolSpecInvalidReason (Ready False): the spec does not parse (only a write around
	// the webhook and the schema makes one).
	IPPoolSpecInvalidReason = "SpecInvalid"
	// IPPoolImportPendingReason (Ready False): status.allocatedIPs (SpiderPool's records)
	// is set and not imported yet.
	IPPoolImportPendingReason = "ImportPending"
	// IPPoolDeletingReason (Ready False): the pool is being deleted; it hands out nothing.
	IPPoolDeletingReason = "Deleting"
	// IPPoolDisabledReason (Ready False): spec.disable is true.
	IPPoolDisabledReason = "Disabled"
)

// SpiderIPPool is a pool of IP addresses that pods get their IPs from.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=sp,categories=spiderpool
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="VERSION",type=string,JSONPath=`.spec.ipVersion`,description="IP version"
// +kubebuilder:printcolumn:name="SUBNET",type=string,JSONPath=`.spec.subnet`,description="subnet"
// +kubebuilder:printcolumn:name="ALLOCATED-IP-COUNT",type=integer,JSONPath=`.status.allocatedIPCount`,description="IPs held by pods"
// +kubebuilder:printcolumn:name="TOTAL-IP-COUNT",type=integer,JSONPath=`.status.totalIPCount`,description="IPs the pool can hand out"
// +kubebuilder:printcolumn:name="DEFAULT",type=boolean,JSONPath=`.spec.default`,description="cluster default pool"
// +kubebuilder:printcolumn:name="DISABLE",type=boolean,JSONPath=`.spec.disable`,description="hands out no new IPs",priority=10
// +kubebuilder:printcolumn:name="NodeName",type=string,JSONPath=`.spec.nodeName`,description="nodes admitted",priority=10
// +kubebuilder:printcolumn:name="MultusName",type=string,JSONPath=`.spec.multusName`,description="Multus networks admitted",priority=10
// +kubebuilder:printcolumn:name="APP-NAMESPACE",type=string,JSONPath=`.spec.podAffinity.matchLabels['ipam\.spidernet\.io/app-namespace']`,description="namespace of the workload an auto pool serves",priority=10
// +kubebuilder:printcolumn:name="FREE",type=integer,JSONPath=`.status.orbweaver.freeIPCount`,description="IPs a new allocation could take now"
// +kubebuilder:printcolumn:name="SPARE",type=integer,JSONPath=`.status.orbweaver.spareIPCount`,description="IPs in node agents' reserves, not yet handed to a pod",priority=1
// +kubebuilder:printcolumn:name="AGE",type=date,JSONPath=`.metadata.creationTimestamp`
type SpiderIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   IPPoolSpec   `json:"spec"`
	Status IPPoolStatus `json:"status,omitempty"`
}

// SpiderIPPoolList is a list of SpiderIPPool.
// +kubebuilder:object:root=true
type SpiderIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	Items []SpiderIPPool `json:"items"`
}
