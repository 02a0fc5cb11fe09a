package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
)

// Annotation keys orbweaver reads, SpiderPool's names (see docs/reference/annotations.md).
const (
	// AnnoPodIPPool names the pools of the interface of the current CNI call:
	// {"ipv4":["a"],"ipv6":["b"]}.
	AnnoPodIPPool = "ipam.spidernet.io/ippool"
	// AnnoPodIPPools names the pools of several interfaces:
	// [{"interface":"eth0","ipv4":["a"]},{"interface":"net1","ipv4":["b"]}]. It beats
	// AnnoPodIPPool.
	AnnoPodIPPools = "ipam.spidernet.io/ippools"
	// AnnoPodSubnet asks for an auto-created pool from a SpiderSubnet:
	// {"interface":"eth0","ipv4":["subnet-a"]}.
	AnnoPodSubnet = "ipam.spidernet.io/subnet"
	// AnnoPodSubnets is AnnoPodSubnet for several interfaces; it beats AnnoPodSubnet.
	AnnoPodSubnets = "ipam.spidernet.io/subnets"
	// AnnoPodIPPoolIPNumber sizes an auto-created pool: "N" IPs, or "+N" for the
	// application's replicas plus N.
	AnnoPodIPPoolIPNumber = "ipam.spidernet.io/ippool-ip-number"
	// AnnoPodRoutes adds routes: [{"dst":"10.0.0.0/16","gw":"192.168.1.1"}].
	AnnoPodRoutes = "ipam.spidernet.io/routes"
	// AnnoNamespaceDefaultIPv4Pool is a namespace's default IPv4 pools: ["a","b"].
	AnnoNamespaceDefaultIPv4Pool = "ipam.spidernet.io/default-ipv4-ippool"
	// AnnoNamespaceDefaultIPv6Pool is a namespace's default IPv6 pools: ["a","b"].
	AnnoNamespaceDefaultIPv6Pool = "ipam.spidernet.io/default-ipv6-ippool"
)

// DefaultInterface is the pod's first interface, the one the cluster network attaches.
const DefaultInterface = "eth0"

// Examples of well-formed values, used in error messages as "what to write instead".
const (
	fixIPPool   = `write {"ipv4":["pool-a"],"ipv6":["pool-b"]}`
	fixIPPools  = `write [{"interface":"eth0","ipv4":["pool-a"]},{"interface":"net1","ipv4":["pool-b"]}]`
	fixSubnet   = `write {"interface":"eth0","ipv4":["subnet-a"],"ipv6":["subnet-b"]}`
	fixSubnets  = `write [{"interface":"eth0","ipv4":["subnet-a"]},{"interface":"net1","ipv4":["subnet-b"]}]`
	fixRoutes   = `write [{"dst":"10.0.0.0/16","gw":"192.168.1.1"}]`
	fixNSPools  = `write ["pool-a","pool-b"]`
	fixIPNumber = `write "2" for exactly 2 IPs or "+1" for the application's replicas plus 1`
)

// IPPoolAnnotation is the value of ipam.spidernet.io/ippool, or one item of
// ipam.spidernet.io/ippools: the pools of one interface, in the order to try. Names may
// be shell-style wildcards (*, ?, [...]).
type IPPoolAnnotation struct {
	// Interface is the interface the pools are for. ParseIPPools always fills it;
	// ParseIPPool leaves it empty when the annotation does not name one.
	Interface string `json:"interface,omitempty"`
	// IPv4 and IPv6 are the pool names of each family, ordered fallbacks.
	IPv4 []string `json:"ipv4,omitempty"`
	IPv6 []string `json:"ipv6,omitempty"`
	// CleanGateway asks for no default route through the pools' gateway.
	CleanGateway bool `json:"cleangateway,omitempty"`
}

// SubnetAnnotation is the value of ipam.spidernet.io/subnet, or one item of
// ipam.spidernet.io/subnets: the SpiderSubnets an auto-created pool of one interface
// comes from. As in SpiderPool, only the first name of each list is used.
type SubnetAnnotation struct {
	// Interface is always filled by the parsers (eth0 when the annotation names none).
	Interface string   `json:"interface,omitempty"`
	IPv4      []string `json:"ipv4,omitempty"`
	IPv6      []string `json:"ipv6,omitempty"`
}

// IPNumber is the value of ipam.spidernet.io/ippool-ip-number: the size of an
// auto-created pool.
type IPNumber struct {
	// N is the number of IPs (fixed), or the number added to the replicas (flexible).
	N int
	// Flexible is true for "+N": the pool holds the application's replicas plus N.
	Flexible bool
}

// String is the annotation value: "N" or "+N".
func (n IPNumber) String() string {
	if n.Flexible {
		return "+" + strconv.Itoa(n.N)
	}
	return strconv.Itoa(n.N)
}

// ParseIPPool parses the pod annotation ipam.spidernet.io/ippool,
// {"ipv4":["a"],"ipv6":["b"]}. The keys "interface" and "cleangateway" are accepted as
// in ipam.spidernet.io/ippools. At least one pool must be named.
func ParseIPPool(value string) (IPPoolAnnotation, error) {
	var v IPPoolAnnotation
	if err := decodeStrict(AnnoPodIPPool, value, fixIPPool, &v); err != nil {
		return IPPoolAnnotation{}, err
	}
	if v.Interface != "" {
		if problem := checkIfName(v.Interface); problem != "" {
			return IPPoolAnnotation{}, badAnnotation(AnnoPodIPPool, fixIPPool, "interface %s %s", quote(v.Interface), problem)
		}
	}
	if err := checkPoolLists(AnnoPodIPPool, fixIPPool, "", v.IPv4, v.IPv6); err != nil {
		return IPPoolAnnotation{}, err
	}
	v.IPv4, v.IPv6 = nilIfEmpty(v.IPv4), nilIfEmpty(v.IPv6)
	return v, nil
}

// ParseIPPools parses the pod annotation ipam.spidernet.io/ippools, a JSON array of
// {"interface":"eth0","ipv4":[...],"ipv6":[...],"cleangateway":bool}, one item per
// interface. Every item must name at least one pool.
//
// "interface" must be set on every item or on none. When it is set on none, the items
// follow Multus's interface naming: item 0 is for "eth0" and item i (i >= 1) for
// "net<i>", so ["a"],["b"],["c"] mean eth0, net1, net2. The result always has Interface
// filled. Two items for the same interface are an error.
func ParseIPPools(value string) ([]IPPoolAnnotation, error) {
	var items []IPPoolAnnotation
	if err := decodeStrict(AnnoPodIPPools, value, fixIPPools, &items); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, badAnnotation(AnnoPodIPPools, fixIPPools, "%s names no interface", quote(value))
	}
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Interface
	}
	names, err := interfaceNames(AnnoPodIPPools, fixIPPools, names)
	if err != nil {
		return nil, err
	}
	for i := range items {
		items[i].Interface = names[i]
		where := fmt.Sprintf("item %d (interface %s): ", i, names[i])
		if err := checkPoolLists(AnnoPodIPPools, fixIPPools, where, items[i].IPv4, items[i].IPv6); err != nil {
			return nil, err
		}
		items[i].IPv4, items[i].IPv6 = nilIfEmpty(items[i].IPv4), nilIfEmpty(items[i].IPv6)
	}
	return items, nil
}

// ParseSubnet parses the pod annotation ipam.spidernet.io/subnet,
// {"interface":"eth0","ipv4":["subnet-a"],"ipv6":["subnet-b"]}. Interface defaults to
// eth0. At least one SpiderSubnet must be named; names are not wildcards.
func ParseSubnet(value string) (SubnetAnnotation, error) {
	var v SubnetAnnotation
	if err := decodeStrict(AnnoPodSubnet, value, fixSubnet, &v); err != nil {
		return SubnetAnnotation{}, err
	}
	if v.Interface == "" {
		v.Interface = DefaultInterface
	} else if problem := checkIfName(v.Interface); problem != "" {
		return SubnetAnnotation{}, badAnnotation(AnnoPodSubnet, fixSubnet, "interface %s %s", quote(v.Interface), problem)
	}
	if err := checkSubnetLists(AnnoPodSubnet, fixSubnet, "", v); err != nil {
		return SubnetAnnotation{}, err
	}
	v.IPv4, v.IPv6 = nilIfEmpty(v.IPv4), nilIfEmpty(v.IPv6)
	return v, nil
}

// ParseSubnets parses the pod annotation ipam.spidernet.io/subnets, a JSON array of
// ipam.spidernet.io/subnet items. Interfaces are named as in ParseIPPools (all or none;
// eth0, net1, net2, ... when none). The same interface twice, or the same SpiderSubnet
// for two interfaces, is an error.
func ParseSubnets(value string) ([]SubnetAnnotation, error) {
	var items []SubnetAnnotation
	if err := decodeStrict(AnnoPodSubnets, value, fixSubnets, &items); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, badAnnotation(AnnoPodSubnets, fixSubnets, "%s names no interface", quote(value))
	}
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Interface
	}
	names, err := interfaceNames(AnnoPodSubnets, fixSubnets, names)
	if err != nil {
		return nil, err
	}
	usedBy := map[string]string{} // subnet name -> interface
	for i := range items {
		items[i].Interface = names[i]
		where := fmt.Sprintf("item %d (interface %s): ", i, names[i])
		if err := checkSubnetLists(AnnoPodSubnets, fixSubnets, where, items[i]); err != nil {
			return nil, err
		}
		items[i].IPv4, items[i].IPv6 = nilIfEmpty(items[i].IPv4), nilIfEmpty(items[i].IPv6)
		for _, s := range append(append([]string(nil), items[i].IPv4...), items[i].IPv6...) {
			if other, ok := usedBy[s]; ok {
				return nil, badAnnotation(AnnoPodSubnets, "give each interface its own SpiderSubnet",
					"SpiderSubnet %s is named for both interface %s and interface %s", quote(s), other, names[i])
			}
			usedBy[s] = names[i]
		}
	}
	return items, nil
}

// ParseRoutes parses the pod annotation ipam.spidernet.io/routes,
// [{"dst":"10.0.0.0/16","gw":"192.168.1.1"}]. dst must be a CIDR other than a default
// route (the default route comes from the pool's gateway), gw an IP address of dst's
// family. The result is in canonical form: a dst with host bits set, which SpiderPool
// accepts, is the network it is in ("10.0.0.1/16" is 10.0.0.0/16), since the kernel
// refuses an IPv4 route written with host bits. The same route twice, after that, is
// an error.
func ParseRoutes(value string) ([]v2beta1.Route, error) {
	type route struct {
		Dst *string `json:"dst"`
		Gw  *string `json:"gw"`
	}
	var in []route
	if err := decodeStrict(AnnoPodRoutes, value, fixRoutes, &in); err != nil {
		return nil, err
	}
	var out []v2beta1.Route
	seen := map[v2beta1.Route]bool{}
	for i, r := range in {
		if r.Dst == nil || r.Gw == nil {
			return nil, badAnnotation(AnnoPodRoutes, fixRoutes, "route %d lacks \"dst\" or \"gw\"", i)
		}
		dst, err := ip.ParseCIDR(*r.Dst)
		if err != nil {
			return nil, badAnnotation(AnnoPodRoutes, fixRoutes, "route %d: dst: %v", i, err)
		}
		dst = dst.Masked()
		if dst.Bits() == 0 {
			return nil, badAnnotation(AnnoPodRoutes, "remove it: the default route goes through the pool's gateway (spec.gateway)",
				"route %d: dst %s is a default route", i, quote(*r.Dst))
		}
		gw, err := ip.ParseAddr(*r.Gw)
		if err != nil {
			return nil, badAnnotation(AnnoPodRoutes, fixRoutes, "route %d: gw: %v", i, err)
		}
		if gw.Is4() != dst.Addr().Is4() {
			return nil, badAnnotation(AnnoPodRoutes, "give each route a gateway of its destination's IP family",
				"route %d: gw %s is %s but dst %s is %s", i, quote(*r.Gw), familyName(gw.Is4()), quote(*r.Dst), familyName(dst.Addr().Is4()))
		}
		rt := v2beta1.Route{Dst: dst.String(), Gw: v2beta1.IPAddress(gw.String())}
		if seen[rt] {
			return nil, badAnnotation(AnnoPodRoutes, "list each route once", "route %d (dst %s via %s) appears twice", i, rt.Dst, rt.Gw)
		}
		seen[rt] = true
		out = append(out, rt)
	}
	return out, nil
}

// ParseNamespaceDefaultPools parses a namespace annotation
// ipam.spidernet.io/default-ipv4-ippool or default-ipv6-ippool (key, used in messages):
// a JSON array of pool names, wildcards allowed, e.g. ["ns-v4-a","ns-v4-b"]. An empty
// array names no pool and is not an error.
func ParseNamespaceDefaultPools(key, value string) ([]string, error) {
	var names []string
	if err := decodeStrict(key, value, fixNSPools, &names); err != nil {
		return nil, err
	}
	if problem := checkPoolNames(names); problem != "" {
		return nil, badAnnotation(key, fixNSPools, "%s", problem)
	}
	return nilIfEmpty(names), nil
}

// ParseIPNumber parses the pod annotation ipam.spidernet.io/ippool-ip-number: "N" (a
// fixed number of IPs) or "+N" (the application's replicas plus N), N a decimal number
// >= 0. Nothing is trimmed and no other sign is accepted.
func ParseIPNumber(value string) (IPNumber, error) {
	digits, flexible := strings.CutPrefix(value, "+")
	if digits == "" {
		return IPNumber{}, badAnnotation(AnnoPodIPPoolIPNumber, fixIPNumber, "%s has no number", quote(value))
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return IPNumber{}, badAnnotation(AnnoPodIPPoolIPNumber, fixIPNumber,
				"%s is not a number: %s is not a decimal digit (only one leading '+' is allowed)", quote(value), quote(string(c)))
		}
	}
	n, err := strconv.Atoi(digits)
	if err != nil {
		return IPNumber{}, badAnnotation(AnnoPodIPPoolIPNumber, fixIPNumber, "%s is too large", quote(value))
	}
	return IPNumber{N: n, Flexible: flexible}, nil
}

// badAnnotation builds an error wrapping ErrBadAnnotation: which annotation, what is
// wrong (the format names the offending part) and what to write instead.
func badAnnotation(key, fix, format string, args ...any) error {
	return fmt.Errorf("%w %s: %s; %s", ErrBadAnnotation, key, fmt.Sprintf(format, args...), fix)
}

// quote quotes a fragment of a value for a message, cut to a readable length.
func quote(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// decodeStrict decodes one JSON value; trailing data is an error, explained in terms of
// the annotation. Unknown keys are ignored, as SpiderPool ignores them, so a manifest
// written for it applies unchanged; the exception is the key names of older SpiderPool
// releases, which would otherwise leave the pool list silently empty.
func decodeStrict(key, value, fix string, v any) error {
	dec := json.NewDecoder(strings.NewReader(value))
	if err := dec.Decode(v); err != nil {
		return badJSON(key, value, fix, err)
	}
	off := int(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		return badAnnotation(key, fix, "%s has more after the JSON value: %s", quote(value), quote(value[min(off, len(value)):]))
	}
	strict := json.NewDecoder(strings.NewReader(value))
	strict.DisallowUnknownFields()
	err := strict.Decode(reflect.New(reflect.TypeOf(v).Elem()).Interface())
	if field, ok := strings.CutPrefix(fmt.Sprint(err), "json: unknown field "); ok {
		name, _ := strconv.Unquote(field)
		if current, ok := legacyKey(name); ok {
			return badAnnotation(key, fix, "unknown key %s (an older SpiderPool release's name); use %q", field, current)
		}
	}
	return nil
}

// legacyKey returns the current name of a key of an older SpiderPool release.
func legacyKey(name string) (string, bool) {
	switch strings.ToLower(name) {
	case "ipv4pools", "ipv4pool":
		return "ipv4", true
	case "ipv6pools", "ipv6pool":
		return "ipv6", true
	}
	return "", false
}

func badJSON(key, value, fix string, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return badAnnotation(key, fix, "the value is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badAnnotation(key, fix, "%s is cut short", quote(value))
	case errors.As(err, &syn):
		off := int(min(max(syn.Offset, 1), int64(len(value))))
		return badAnnotation(key, fix, "%s is not valid JSON (%s at %s)", quote(value), strings.TrimPrefix(syn.Error(), "json: "), quote(value[off-1:]))
	case errors.As(err, &typ):
		where := "the value " + quote(value)
		if typ.Field != "" {
			where = "field " + strconv.Quote(typ.Field) + " of " + quote(value)
		}
		return badAnnotation(key, fix, "%s holds a JSON %s where %s is expected", where, typ.Value, jsonKind(typ.Type))
	}
	return badAnnotation(key, fix, "%s: %v", quote(value), err)
}

// jsonKind describes the JSON a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "a list of names"
		}
		return "a list"
	case reflect.Struct:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
}

// interfaceNames checks that the items' interface names are all set or all unset and
// distinct, and fills unset ones with Multus's names: eth0, net1, net2, ...
func interfaceNames(key, fix string, names []string) ([]string, error) {
	set := 0
	for _, n := range names {
		if n != "" {
			set++
		}
	}
	out := make([]string, len(names))
	if set == 0 {
		for i := range names {
			out[i] = multusIfName(i)
		}
		return out, nil
	}
	if set != len(names) {
		var unset []string
		for i, n := range names {
			if n == "" {
				unset = append(unset, strconv.Itoa(i))
			}
		}
		return nil, badAnnotation(key, fix, "\"interface\" is set on some items but not on item(s) %s; set it on every item or on none",
			strings.Join(unset, ", "))
	}
	seen := map[string]int{}
	for i, n := range names {
		if problem := checkIfName(n); problem != "" {
			return nil, badAnnotation(key, fix, "item %d: interface %s %s", i, quote(n), problem)
		}
		if j, ok := seen[n]; ok {
			return nil, badAnnotation(key, fix, "items %d and %d are both for interface %s; give each interface one item", j, i, quote(n))
		}
		seen[n] = i
		out[i] = n
	}
	return out, nil
}

// multusIfName is the name Multus gives the i-th interface of a pod: eth0 for the
// cluster network, net1, net2, ... for the attachments.
func multusIfName(i int) string {
	if i == 0 {
		return DefaultInterface
	}
	return "net" + strconv.Itoa(i)
}

// checkIfName returns why name is not a valid Linux interface name, or "".
func checkIfName(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > 15:
		return "is longer than 15 bytes"
	case name == "." || name == "..":
		return "is not an interface name"
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) }):
		return "contains '/', ':' or whitespace"
	}
	return ""
}

// checkPoolLists checks the IPv4 and IPv6 pool lists of one interface: at least one pool
// in all, each list well formed.
func checkPoolLists(key, fix, where string, v4, v6 []string) error {
	if len(v4) == 0 && len(v6) == 0 {
		return badAnnotation(key, fix, "%snames no pool", where)
	}
	if problem := checkPoolNames(v4); problem != "" {
		return badAnnotation(key, fix, "%s\"ipv4\": %s", where, problem)
	}
	if problem := checkPoolNames(v6); problem != "" {
		return badAnnotation(key, fix, "%s\"ipv6\": %s", where, problem)
	}
	return nil
}

// checkPoolNames returns what is wrong with a list of pool names (wildcards allowed), or
// "": no empty names, no whitespace (nothing is trimmed), no name twice, no malformed
// pattern.
func checkPoolNames(names []string) string { return checkNames(names, "pool") }

// checkNames is checkPoolNames for names of the kind noun ("pool", "SpiderSubnet").
func checkNames(names []string, noun string) string {
	seen := map[string]bool{}
	for i, n := range names {
		if n == "" {
			return fmt.Sprintf("name %d is empty", i)
		}
		if strings.ContainsFunc(n, unicode.IsSpace) {
			return fmt.Sprintf("name %s contains whitespace (nothing is trimmed)", quote(n))
		}
		if seen[n] {
			return fmt.Sprintf("%s %s is named twice", noun, quote(n))
		}
		seen[n] = true
		if isWildcard(n) {
			if _, err := path.Match(n, ""); err != nil {
				return fmt.Sprintf("wildcard %s is malformed (%v)", quote(n), err)
			}
		}
	}
	return ""
}

// checkSubnetLists checks one subnet item: at least one SpiderSubnet, no empty,
// repeated or wildcard names.
func checkSubnetLists(key, fix, where string, v SubnetAnnotation) error {
	if len(v.IPv4) == 0 && len(v.IPv6) == 0 {
		return badAnnotation(key, fix, "%snames no SpiderSubnet", where)
	}
	for _, l := range []struct {
		family string
		names  []string
	}{{"ipv4", v.IPv4}, {"ipv6", v.IPv6}} {
		if problem := checkNames(l.names, "SpiderSubnet"); problem != "" {
			return badAnnotation(key, fix, "%s%q: %s", where, l.family, problem)
		}
		for _, n := range l.names {
			if isWildcard(n) {
				return badAnnotation(key, fix, "%s%q: SpiderSubnet names are not wildcards: %s", where, l.family, quote(n))
			}
		}
	}
	return nil
}

// isWildcard tells whether a pool name is a shell-style pattern.
func isWildcard(name string) bool { return strings.ContainsAny(name, `*?[\`) }

// nilIfEmpty makes an empty list nil, so that "[]" and an absent key parse alike.
func nilIfEmpty(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	return names
}

func familyName(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}
