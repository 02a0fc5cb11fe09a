//go:build tools

// Package tools pins SpiderPool v1.2.2, the IPAM orbweaver replaces, so that test/bench can
// run its own node agent and IPAM plugin beside orbweaver against the same API server. It
// needs a module of its own: SpiderPool's Kubernetes libraries differ from the other
// tools', and nothing of it may move their versions.
package tools

import (
	_ "github.com/spidernet-io/spiderpool/cmd/spiderpool"
	_ "github.com/spidernet-io/spiderpool/cmd/spiderpool-agent"
)
