package webhook

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation/field"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

var eipPath = field.NewPath("spec", "orbweaver", "eip")

// checkEIP checks a pool's EIP attribute: Static lists EIPs and nothing of Auto's, Auto
// lists none; no EIP is listed twice, here or by another pool (one EIP, one pool IP);
// the release strategy parses.
func checkEIP(name string, e *v2beta1.EIPSpec, existing Existing) field.ErrorList {
	if e == nil {
		return nil
	}
	var errs field.ErrorList
	switch e.Mode {
	case v2beta1.EIPStatic:
		if len(e.Static) == 0 {
			errs = append(errs, field.Required(eipPath.Child("static"), "mode Static binds the EIPs listed here; list their allocation IDs, or use mode Auto"))
		}
		for _, f := range []struct {
			name string
			set  bool
		}{{"bandwidth", e.Bandwidth != nil}, {"isp", e.ISP != ""}, {"internetChargeType", e.InternetChargeType != ""},
			{"instanceChargeType", e.InstanceChargeType != ""}, {"publicIPPool", e.PublicIPPool != ""},
			{"bandwidthPackage", e.BandwidthPackage != ""}, {"resourceGroup", e.ResourceGroup != ""}, {"name", e.Name != ""},
			{"description", e.Description != ""}, {"tags", len(e.Tags) > 0}, {"releaseStrategy", e.ReleaseStrategy != nil}} {
			if f.set {
				errs = append(errs, field.Forbidden(eipPath.Child(f.name), "applies to mode Auto only: Static EIPs exist already and are never released"))
			}
		}
	case v2beta1.EIPAuto:
		if len(e.Static) > 0 {
			errs = append(errs, field.Forbidden(eipPath.Child("static"), "mode Auto allocates its EIPs; list EIPs with mode Static"))
		}
	}
	if e.ReleaseStrategy != nil {
		if _, _, err := e.ReleaseStrategy.ReclaimAfter(); err != nil {
			errs = append(errs, field.Invalid(eipPath.Child("releaseStrategy"), string(*e.ReleaseStrategy), err.Error()))
		}
	}
	owner := map[string]string{}
	for i := range existing.IPPools {
		p := &existing.IPPools[i]
		if p.Name == name || p.Spec.Orbweaver == nil || p.Spec.Orbweaver.EIP == nil {
			continue
		}
		for _, id := range p.Spec.Orbweaver.EIP.Static {
			owner[id] = p.Name
		}
	}
	seen := map[string]bool{}
	for i, id := range e.Static {
		path := eipPath.Child("static").Index(i)
		if seen[id] {
			errs = append(errs, field.Duplicate(path, id))
			continue
		}
		seen[id] = true
		if other, ok := owner[id]; ok {
			errs = append(errs, field.Forbidden(path, fmt.Sprintf("EIP %s is listed by SpiderIPPool %q already; an EIP belongs to one pool IP", id, other)))
		}
	}
	return errs
}

// checkEIPTemplate checks a subnet's EIP template: Auto only, since every auto pool of
// the subnet gets a copy and a Static list cannot belong to several pools.
func checkEIPTemplate(s *v2beta1.SpiderSubnet) field.ErrorList {
	if s.Spec.Orbweaver == nil || s.Spec.Orbweaver.EIP == nil {
		return nil
	}
	e := s.Spec.Orbweaver.EIP
	if e.Mode == v2beta1.EIPStatic {
		return field.ErrorList{field.Forbidden(eipPath.Child("mode"), "a subnet's EIP template is copied to each of its auto pools, so it must be mode Auto; give Static EIPs to one SpiderIPPool instead")}
	}
	return checkEIP(s.Name, e, Existing{})
}

// eipOf returns a pool's EIP attribute, nil when it has none.
func eipOf(p *v2beta1.SpiderIPPool) *v2beta1.EIPSpec {
	if p.Spec.Orbweaver == nil {
		return nil
	}
	return p.Spec.Orbweaver.EIP
}
