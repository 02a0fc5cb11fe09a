// Command orbweaver is the CNI IPAM plugin. The runtime executes it for each pod
// interface; it asks orbweaver-agent on the node for the IPs (see pkg/cni).
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	cniversion "github.com/containernetworking/cni/pkg/version"

	"github.com/orbweaver-ipam/orbweaver/pkg/cni"
	"github.com/orbweaver-ipam/orbweaver/pkg/version"
)

func main() {
	p := cni.Plugin{Stdout: os.Stdout, Stderr: os.Stderr, Version: version.Version()}
	skel.PluginMainFuncs(skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, GC: p.GC, Status: p.Status},
		cniversion.PluginSupports(cni.SupportedVersions()...), version.String("orbweaver"))
}
