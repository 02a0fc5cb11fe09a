// Package v1alpha1 holds orbweaver's own API, ipam.orbweaver.io/v1alpha1: the objects of
// node grants (docs/design/node-grants.md), which SpiderPool has no counterpart for.
// IPBlock says which node each address of a 64-address slice of a pool is granted to;
// IPAMNode is what a node's agent asks of each pool.
//
// This package imports only k8s.io/apimachinery, so any binary may use the types as
// plain data.
//
// +kubebuilder:object:generate=true
// +groupName=ipam.orbweaver.io
package v1alpha1
