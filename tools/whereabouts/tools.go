//go:build tools

// Package tools pins whereabouts, the IPAM plugin the benchmark in test/bench compares
// orbweaver with. It needs a module of its own: whereabouts' go.mod carries a replace
// directive (so `go install pkg@version` refuses it) and its Kubernetes libraries differ
// from the other tools'.
package tools

import _ "github.com/k8snetworkplumbingwg/whereabouts/cmd"
