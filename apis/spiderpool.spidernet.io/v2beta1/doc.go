// Package v2beta1 holds the spiderpool.spidernet.io/v2beta1 API as orbweaver serves it:
// SpiderPool's kinds, field names and JSON tags, so SpiderPool manifests apply unchanged,
// plus orbweaver's own optional settings, always under a field named "orbweaver".
//
// This package imports only k8s.io/api and k8s.io/apimachinery, so any binary may use
// the types as plain data.
//
// +kubebuilder:object:generate=true
// +groupName=spiderpool.spidernet.io
package v2beta1
