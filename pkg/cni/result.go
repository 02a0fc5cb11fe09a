package cni

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/wire"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// buildResult turns the agent's answer to ADD into the CNI result for interface
// ifName. Like other IPAM plugins it lists IPs without interfaces; the main plugin
// fills those in. Routes are the agent's routes for ifName plus, unless
// cleanGateway, a default route through the gateway of the first IP of each family
// that has one (SpiderPool's behaviour; a second default route of the same family
// would make the main plugin's route add fail).
func buildResult(ifName string, ans *wire.AddResult, cleanGateway bool) (*current.Result, error) {
	res := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	hasDefault := map[bool]bool{} // by is-IPv4
	for i, r := range ans.Routes {
		if r == nil || (r.IfName != "" && r.IfName != ifName) {
			continue
		}
		route, err := toRoute(r)
		if err != nil {
			return nil, fmt.Errorf("route %d of the agent's answer: %w", i, err)
		}
		if ones, _ := route.Dst.Mask.Size(); ones == 0 {
			hasDefault[route.Dst.IP.To4() != nil] = true
		}
		res.Routes = append(res.Routes, route)
	}

	for i, c := range ans.Ips {
		if c == nil || (c.Nic != "" && c.Nic != ifName) {
			continue
		}
		if c.Address == nil {
			return nil, fmt.Errorf("IP %d of the agent's answer has no address", i)
		}
		addr, err := ip.ParseCIDR(*c.Address)
		if err != nil {
			return nil, fmt.Errorf("IP %d of the agent's answer: %w", i, err)
		}
		cfg := &current.IPConfig{Address: ipNet(addr)}
		if c.Gateway != "" {
			gw, err := ip.ParseAddr(c.Gateway)
			if err != nil {
				return nil, fmt.Errorf("gateway of IP %s in the agent's answer: %w", addr, err)
			}
			if gw.Is4() != addr.Addr().Is4() {
				return nil, fmt.Errorf("gateway %s of IP %s in the agent's answer is of the other IP family", gw, addr)
			}
			cfg.Gateway = net.IP(gw.AsSlice())
			v4 := gw.Is4()
			if !cleanGateway && !hasDefault[v4] {
				res.Routes = append(res.Routes, &types.Route{Dst: defaultDst(v4), GW: cfg.Gateway})
				hasDefault[v4] = true
			}
		}
		res.IPs = append(res.IPs, cfg)
	}
	if len(res.IPs) == 0 {
		return nil, fmt.Errorf("the agent's answer has no IP for interface %s", ifName)
	}
	return res, nil
}

func toRoute(r *wire.Route) (*types.Route, error) {
	if r.Dst == nil {
		return nil, fmt.Errorf("no dst")
	}
	dst, err := ip.ParseCIDR(*r.Dst)
	if err != nil {
		return nil, err
	}
	route := &types.Route{Dst: ipNet(dst.Masked())}
	if r.Gw != "" {
		gw, err := ip.ParseAddr(r.Gw)
		if err != nil {
			return nil, fmt.Errorf("gw: %w", err)
		}
		if gw.Is4() != dst.Addr().Is4() {
			return nil, fmt.Errorf("gw %s and dst %s are of different IP families", gw, dst)
		}
		route.GW = net.IP(gw.AsSlice())
	}
	return route, nil
}

func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func defaultDst(v4 bool) net.IPNet {
	if v4 {
		return net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}

// printResult writes res converted to the config's CNI version, as
// types.PrintResult does for os.Stdout.
func printResult(w io.Writer, res types.Result, cniVersion string) error {
	r, err := res.GetAsVersion(cniVersion)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, fmt.Sprintf("converting the result to cniVersion %s: %v", cniVersion, err), "")
	}
	if err := r.PrintTo(w); err != nil {
		return types.NewError(types.ErrIOFailure, fmt.Sprintf("writing the result: %v", err), "")
	}
	return nil
}

// prevResultAddrs returns the addresses of interface ifName in a CHECK's prevResult:
// those of IPs that name no interface or name one called ifName.
func prevResultAddrs(cniVersion string, raw map[string]any, ifName string) ([]string, error) {
	if raw == nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig,
			"invalid orbweaver network config: prevResult: missing; CHECK needs the result of ADD", "")
	}
	// Before 1.0.0 a result may lack cniVersion; it is the config's (see
	// version.ParsePrevResult).
	raw = maps.Clone(raw)
	if v, ok := raw["cniVersion"].(string); !ok || v == "" {
		raw["cniVersion"] = cniVersion
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid orbweaver network config: prevResult: "+err.Error(), "")
	}
	prev, err := create.Create(cniVersion, b)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid orbweaver network config: prevResult: "+err.Error(), "")
	}
	res, err := current.NewResultFromResult(prev)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid orbweaver network config: prevResult: "+err.Error(), "")
	}
	addrs := []string{}
	for _, c := range res.IPs {
		if c.Interface != nil && *c.Interface >= 0 && *c.Interface < len(res.Interfaces) &&
			res.Interfaces[*c.Interface].Name != ifName {
			continue
		}
		addrs = append(addrs, c.Address.String())
	}
	return addrs, nil
}
