package cni

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// NodeDefaults are the default pools of the network config on a node that uses this
// plugin: what a pod that names no pool gets, known before its first ADD.
type NodeDefaults struct {
	// File is the config file they come from ("" when none names this plugin).
	File       string
	IPv4, IPv6 []string
}

// DefaultsInConfDir reads the default pools of the first network config in dir (in the
// order the container runtime reads them: by file name) whose ipam section is this
// plugin's: at the top level, in a conflist's plugins, or in a Multus config's delegates.
// Files that are not JSON configs are skipped; only a missing or unreadable dir is an
// error.
func DefaultsInConfDir(dir string) (NodeDefaults, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return NodeDefaults{}, err
	}
	var names []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
			if !e.IsDir() {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		if v4, v6, ok := defaultsIn(data); ok {
			return NodeDefaults{File: filepath.Join(dir, name), IPv4: v4, IPv6: v6}, nil
		}
	}
	return NodeDefaults{}, nil
}

// confNode is the part of a network config, conflist or Multus config that can hold an
// ipam section.
type confNode struct {
	IPAM      *ipamJSON  `json:"ipam"`
	Plugins   []confNode `json:"plugins"`
	Delegates []confNode `json:"delegates"`
}

// defaultsIn finds the first ipam section of this plugin in one config file.
func defaultsIn(data []byte) (v4, v6 []string, ok bool) {
	var n confNode
	if json.Unmarshal(data, &n) != nil {
		return nil, nil, false
	}
	return n.defaults()
}

func (n *confNode) defaults() (v4, v6 []string, ok bool) {
	if n.IPAM != nil && (n.IPAM.Type == IPAMType || n.IPAM.Type == spiderpoolIPAMType) {
		return trimmed(n.IPAM.DefaultIPv4IPPool), trimmed(n.IPAM.DefaultIPv6IPPool), true
	}
	for _, list := range [][]confNode{n.Plugins, n.Delegates} {
		for i := range list {
			if v4, v6, ok := list[i].defaults(); ok {
				return v4, v6, true
			}
		}
	}
	return nil, nil, false
}

func trimmed(pools []string) []string {
	var out []string
	for _, p := range pools {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
