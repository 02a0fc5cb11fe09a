//go:build tools

// Package tools pins the Kubernetes components that orbweaver's tests and demo run.
// They live in a module of their own because k8s.io/kubernetes needs the staging
// replace lines below and its own dependency versions; see ../README.md.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
