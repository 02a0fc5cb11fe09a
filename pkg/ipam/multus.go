package ipam

import (
	"encoding/json"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Multus annotations on a pod.
const (
	// AnnoMultusDefaultNetwork replaces the cluster network of the pod's first
	// interface: "ns/name" or "name".
	AnnoMultusDefaultNetwork = "v1.multus-cni.io/default-network"
	// AnnoMultusNetworks lists the pod's additional interfaces: a JSON list of
	// {"name","namespace","interface"} or the text form "ns/name@if, name2".
	AnnoMultusNetworks = "k8s.v1.cni.cncf.io/networks"
)

// multusNamespace is Multus's default multusNamespace, where it looks up the
// default network when no namespace is given.
const multusNamespace = "kube-system"

// MultusNetworkOf returns the Multus network ("ns/name") that attached interface ifName
// of the pod, or "" when it cannot be told. It is what spec.multusName of a pool is
// matched against.
//
// For eth0 it is the pod's v1.multus-cni.io/default-network, else clusterDefault (Multus's
// clusterNetwork). Multus looks a default network without a namespace up in its own
// namespace; we take that to be clusterDefault's namespace, or kube-system (Multus's
// default) when clusterDefault has none.
//
// For any other interface it is the entry of k8s.v1.cni.cncf.io/networks whose
// interface is ifName; an entry without an interface gets Multus's name for it, net<i>
// for the i-th entry (net1 for the first). An entry without a namespace is in the
// pod's namespace, as in Multus.
func MultusNetworkOf(pod *corev1.Pod, ifName, clusterDefault string) string {
	if pod == nil || ifName == "" {
		return ""
	}
	if ifName == DefaultInterface {
		defaultNS := multusNamespace
		if nets, ok := parseMultusNetworks(clusterDefault, ""); ok && len(nets) == 1 && nets[0].Namespace != "" {
			defaultNS = nets[0].Namespace
		}
		value := clusterDefault
		if v, ok := pod.Annotations[AnnoMultusDefaultNetwork]; ok && v != "" {
			value = v
		}
		nets, ok := parseMultusNetworks(value, defaultNS)
		if !ok || len(nets) != 1 {
			return ""
		}
		return nets[0].Namespace + "/" + nets[0].Name
	}
	nets, ok := parseMultusNetworks(pod.Annotations[AnnoMultusNetworks], pod.Namespace)
	if !ok {
		return ""
	}
	for i, n := range nets {
		name := n.Interface
		if name == "" {
			name = multusIfName(i + 1)
		}
		if name == ifName {
			return n.Namespace + "/" + n.Name
		}
	}
	return ""
}

// multusNetwork is one entry of a Multus network annotation.
type multusNetwork struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Interface string `json:"interface"`
}

// parseMultusNetworks reads a Multus network annotation in its JSON or text form, as
// Multus does; an entry without a namespace gets defaultNS. ok is false when the value
// is malformed or empty.
func parseMultusNetworks(value, defaultNS string) ([]multusNetwork, bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return nil, false
	}
	var nets []multusNetwork
	if strings.HasPrefix(value, "[") {
		if err := json.Unmarshal([]byte(value), &nets); err != nil {
			return nil, false
		}
	} else {
		for _, item := range strings.Split(value, ",") {
			n, ok := parseMultusNetworkText(strings.TrimSpace(item))
			if !ok {
				return nil, false
			}
			nets = append(nets, n)
		}
	}
	for i := range nets {
		if nets[i].Namespace == "" {
			nets[i].Namespace = defaultNS
		}
		if !validNetworkRef(nets[i]) {
			return nil, false
		}
	}
	return nets, len(nets) > 0
}

// parseMultusNetworkText reads "name", "ns/name", "name@if" or "ns/name@if".
func parseMultusNetworkText(s string) (multusNetwork, bool) {
	var n multusNetwork
	rest := s
	if ns, name, found := strings.Cut(s, "/"); found {
		n.Namespace, rest = strings.TrimSpace(ns), name
	}
	name, ifName, found := strings.Cut(rest, "@")
	n.Name = strings.TrimSpace(name)
	if found {
		n.Interface = strings.TrimSpace(ifName)
		if n.Interface == "" || strings.Contains(n.Interface, "@") {
			return multusNetwork{}, false
		}
	}
	if strings.Contains(n.Name, "/") {
		return multusNetwork{}, false
	}
	return n, true
}

// validNetworkRef: namespace a DNS label, name a DNS subdomain (a
// NetworkAttachmentDefinition's name), interface empty or a valid interface name.
func validNetworkRef(n multusNetwork) bool {
	if len(validation.IsDNS1123Label(n.Namespace)) > 0 || len(validation.IsDNS1123Subdomain(n.Name)) > 0 {
		return false
	}
	return n.Interface == "" || checkIfName(n.Interface) == ""
}

// normaliseNetwork writes a Multus network reference as "ns/name"; "name" is taken to be
// in defaultNS. "" stays "".
func normaliseNetwork(s, defaultNS string) string {
	if s == "" || strings.Contains(s, "/") {
		return s
	}
	return defaultNS + "/" + s
}

// PodInterfaces lists the interfaces a pod's IPAM calls are made for, as far as its
// annotations tell: eth0, then those that ipam.spidernet.io/ippools,
// ipam.spidernet.io/subnets, ipam.spidernet.io/ippool (its "interface" key),
// ipam.spidernet.io/subnet and the Multus networks (k8s.v1.cni.cncf.io/networks, an
// entry without an interface being net<i>) name, each once, in that order. A malformed
// annotation adds nothing; SelectPools reports it.
func PodInterfaces(pod *corev1.Pod) []string {
	out := []string{DefaultInterface}
	add := func(name string) {
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if pod == nil {
		return out
	}
	a := pod.Annotations
	if items, err := ParseIPPools(a[AnnoPodIPPools]); err == nil {
		for _, it := range items {
			add(it.Interface)
		}
	}
	if items, err := ParseSubnets(a[AnnoPodSubnets]); err == nil {
		for _, it := range items {
			add(it.Interface)
		}
	}
	if v, ok := a[AnnoPodIPPool]; ok {
		if it, err := ParseIPPool(v); err == nil {
			add(it.Interface)
		}
	}
	if v, ok := a[AnnoPodSubnet]; ok {
		if it, err := ParseSubnet(v); err == nil {
			add(it.Interface)
		}
	}
	if nets, ok := parseMultusNetworks(a[AnnoMultusNetworks], pod.Namespace); ok {
		for i, n := range nets {
			name := n.Interface
			if name == "" {
				name = multusIfName(i + 1)
			}
			add(name)
		}
	}
	return out
}
