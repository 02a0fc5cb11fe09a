package cni

import (
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// PodArgs are the Kubernetes keys of CNI_ARGS that the runtime (containerd, CRI-O)
// passes for a pod sandbox.
type PodArgs struct {
	Namespace        string // K8S_POD_NAMESPACE
	Name             string // K8S_POD_NAME
	UID              string // K8S_POD_UID, optional
	InfraContainerID string // K8S_POD_INFRA_CONTAINER_ID, optional
}

// ParseArgs parses CNI_ARGS ("K1=V1;K2=V2"). Unknown keys, IgnoreUnknown among them,
// are ignored. A pair without "=" is code 4 (invalid environment variables); a
// missing K8S_POD_NAMESPACE or K8S_POD_NAME is code 7, because orbweaver allocates
// per pod.
func ParseArgs(cniArgs string) (PodArgs, error) {
	a, err := parseArgs(cniArgs)
	if err != nil {
		return PodArgs{}, err
	}
	var missing []string
	if a.Namespace == "" {
		missing = append(missing, "K8S_POD_NAMESPACE")
	}
	if a.Name == "" {
		missing = append(missing, "K8S_POD_NAME")
	}
	if len(missing) > 0 {
		return PodArgs{}, types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("the container runtime did not pass the Kubernetes pod args (%s missing from CNI_ARGS); "+
				"orbweaver allocates IPs to Kubernetes pods and must be called by a Kubernetes runtime such as containerd or CRI-O",
				strings.Join(missing, " and ")),
			"CNI_ARGS="+truncate(cniArgs, 512))
	}
	return a, nil
}

// parseArgs is ParseArgs without the check for the pod's namespace and name.
func parseArgs(cniArgs string) (PodArgs, error) {
	var a PodArgs
	for pair := range strings.SplitSeq(cniArgs, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return PodArgs{}, types.NewError(types.ErrInvalidEnvironmentVariables,
				fmt.Sprintf("CNI_ARGS: %q is not KEY=VALUE", truncate(pair, 128)), "")
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			a.Namespace = v
		case "K8S_POD_NAME":
			a.Name = v
		case "K8S_POD_UID":
			a.UID = v
		case "K8S_POD_INFRA_CONTAINER_ID":
			a.InfraContainerID = v
		}
	}
	return a, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
