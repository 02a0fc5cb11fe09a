package ipam

import (
	"fmt"
	"net/netip"
	"strings"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// AnnoIPByOrdinal, on a StatefulSet's pod template (or an added stateful kind's, see
// StatefulKinds), gives each pod the address of its ordinal on its first start: pod
// db-i takes the i-th address, counting from 0, of each of its pools' spec.ips minus
// spec.excludeIPs in ascending order (SpiderPool #3488). Once taken, the address is kept
// as any StatefulSet pod's (fixed IPs). It is read only for pods that keep their
// addresses; "true" or "false".
const AnnoIPByOrdinal = "orbweaver.io/ip-by-ordinal"

// IPByOrdinalWanted reads AnnoIPByOrdinal; a value other than "true" or "false" is an
// ErrBadAnnotation naming the key.
func IPByOrdinalWanted(annotations map[string]string) (bool, error) {
	v, ok := annotations[AnnoIPByOrdinal]
	if !ok {
		return false, nil
	}
	switch strings.TrimSpace(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s: %q is not \"true\" or \"false\"", ErrBadAnnotation, AnnoIPByOrdinal, v)
}

// OrdinalAddress returns the address of ordinal in the pool: the ordinal-th (from 0) of
// spec.ips minus spec.excludeIPs, in ascending order. The mapping depends on the pool's
// spec alone, so it does not move when SpiderReservedIPs or other pods change; an
// ordinal beyond the pool is an ErrOrdinalAddress saying how many addresses it has.
func OrdinalAddress(sp *v2beta1.SpiderIPPool, ordinal int) (netip.Addr, error) {
	_, set, err := PoolAddresses(sp)
	if err != nil {
		return netip.Addr{}, err
	}
	if ordinal < 0 {
		return netip.Addr{}, fmt.Errorf("%w: ordinal %d", ErrOrdinalAddress, ordinal)
	}
	a, ok := set.Nth(ip.CountFromUint64(uint64(ordinal)))
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: SpiderIPPool %q has %s addresses (spec.ips minus spec.excludeIPs), and ordinal %d needs %d: add addresses to the pool, or scale the StatefulSet down",
			ErrOrdinalAddress, sp.Name, set.Count(), ordinal, ordinal+1)
	}
	return a, nil
}
