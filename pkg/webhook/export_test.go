package webhook

import (
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// InvalidCreate is an invalid create of the rules' tests, for the API-server test in
// package webhook_test: the object and the field paths admission must name.
type InvalidCreate struct {
	Name   string
	Object client.Object
	Paths  []string
}

// InvalidCreates returns the invalid creates of TestValidateIPPoolCreate and
// TestValidateSubnetCreate that need no other stored object and the default
// configuration, leaving out those the mutating webhook repairs (a route destination
// with host bits): the API server stores them.
func InvalidCreates() []InvalidCreate {
	var out []InvalidCreate
	add := func(name string, obj client.Object, config *Config, existing Existing, want []want) {
		if len(want) == 0 || config != nil || len(existing.IPPools) > 0 || len(existing.Subnets) > 0 || repairedByDefault(obj) {
			return
		}
		ic := InvalidCreate{Name: name, Object: obj}
		for _, w := range want {
			ic.Paths = append(ic.Paths, w.path)
		}
		out = append(out, ic)
	}
	for _, c := range ipPoolCreateCases() {
		add("SpiderIPPool "+c.name, c.pool.DeepCopy(), c.config, c.existing, c.want)
	}
	for _, c := range subnetCreateCases() {
		add("SpiderSubnet "+c.name, c.subnet.DeepCopy(), c.config, c.existing, c.want)
	}
	return out
}

// repairedByDefault reports whether an object that validation refuses as it is passes
// once defaulted, as the API server runs the mutating webhook first.
func repairedByDefault(obj client.Object) bool {
	switch o := obj.(type) {
	case *v2beta1.SpiderIPPool:
		p := o.DeepCopy()
		DefaultIPPool(p, nil, Existing{})
		return len(both.ValidateIPPoolCreate(p, Existing{})) == 0
	case *v2beta1.SpiderSubnet:
		s := o.DeepCopy()
		DefaultSubnet(s)
		return len(both.ValidateSubnetCreate(s, Existing{})) == 0
	}
	return false
}
