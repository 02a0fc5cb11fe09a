//go:build tools

// Package tools pins the build and test tools that are plain `go build`s:
// code generators, helm and the reference CNI plugins. Kubernetes components need
// staging replace lines and live in ./kubernetes; etcd comes from Debian.
package tools

import (
	_ "github.com/containernetworking/cni/cnitool"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/main/macvlan"
	_ "github.com/go-swagger/go-swagger/cmd/swagger"
	_ "helm.sh/helm/v3/cmd/helm"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
