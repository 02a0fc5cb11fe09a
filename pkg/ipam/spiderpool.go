package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ip"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// This file reads and writes SpiderPool's own allocation records, a pool's
// status.allocatedIPs (docs/design/spiderpool-import.md): the controller imports them
// into orbweaver's records when it takes over a pool SpiderPool allocated from, and
// `orbweaver export-spiderpool` writes them back for a return to SpiderPool.

// ErrForeignRecords: a pool's status.allocatedIPs cannot be imported as it is; nothing
// is allocated from the pool until an admin fixes or removes the named record.
var ErrForeignRecords = errors.New("unusable SpiderPool records")

// ForeignRecord is one entry of status.allocatedIPs: an address and the pod SpiderPool
// gave it to.
type ForeignRecord struct {
	IP netip.Addr
	// Namespace and Name are the pod's ("pod": "<namespace>/<name>").
	Namespace, Name string
	// UID is the pod's ("podUid").
	UID string
	// Interface is the pod's interface, which only SpiderPool's older records carry
	// ("interface"); "" otherwise.
	Interface string
}

// foreignEntry is one value of status.allocatedIPs, in both shapes SpiderPool wrote:
// {"pod":"ns/name","podUid":"..."} and the older one with "interface" too.
type foreignEntry struct {
	Pod       string `json:"pod"`
	PodUID    string `json:"podUid"`
	Interface string `json:"interface,omitempty"`
}

// ParseAllocatedIPs reads status.allocatedIPs, strictly: every key is an address of
// subnet within the pool's spec.ips (ips), named once; every value names the pod as
// "namespace/name" and its UID. SpiderPool never writes anything else, so anything else
// is an edit or a corruption: the error names the first bad record and wraps
// ErrForeignRecords. An empty string, "null" and "{}" hold no record.
func ParseAllocatedIPs(raw string, subnet netip.Prefix, ips ip.Set) ([]ForeignRecord, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: status.allocatedIPs: %s", ErrForeignRecords, fmt.Sprintf(format, a...))
	}
	if s := strings.TrimSpace(raw); s == "" || s == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad("not a JSON object")
	}
	seen := map[netip.Addr]bool{}
	var out []ForeignRecord
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad("%v", err)
		}
		key, _ := t.(string)
		var e foreignEntry
		if err := dec.Decode(&e); err != nil {
			return nil, bad("record %q: %v", key, err)
		}
		a, err := netip.ParseAddr(key)
		switch {
		case err != nil || a.Zone() != "":
			return nil, bad("record %q: the key is not an IP address", key)
		case seen[a]:
			return nil, bad("record %q: the address is named twice", key)
		case !subnet.Contains(a):
			return nil, bad("record %q: the address is outside the pool's subnet %s", key, subnet)
		case !ips.Contains(a):
			return nil, bad("record %q: the address is outside the pool's spec.ips", key)
		}
		seen[a] = true
		ns, name, ok := strings.Cut(e.Pod, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, bad("record %q: pod %q is not namespace/name", key, e.Pod)
		}
		if e.PodUID == "" {
			return nil, bad("record %q: podUid is empty", key)
		}
		out = append(out, ForeignRecord{IP: a, Namespace: ns, Name: name, UID: e.PodUID, Interface: e.Interface})
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad("%v", err)
	}
	if dec.More() {
		return nil, bad("text after the JSON object")
	}
	slices.SortFunc(out, func(x, y ForeignRecord) int { return x.IP.Compare(y.IP) })
	return out, nil
}

// ForeignOwner is the owner an imported record gets: the pod's UID and interface, with
// the sandbox its endpoint records ("" when none does: SpiderPool records none). An
// endpoint SpiderPool wrote relates to that owner like the record (RelateEndpoint): the
// first ADD of a new sandbox of the pod moves the address to that sandbox, and a DEL
// releases it.
func ForeignOwner(r ForeignRecord, containerID, ifName string) records.Owner {
	return records.OwnerOf(r.UID, containerID, ifName)
}

// ImportForeign merges a pool's foreign records into its orbweaver records. owner
// returns each record's owner (ForeignOwner with what the pod's endpoint says). An
// address recorded with the same owner already is skipped (an import repeated after
// it landed); one recorded for another owner is an error wrapping ErrForeignRecords:
// two owners of one address. It returns the merged records, in address order, and how
// many it added.
func ImportForeign(existing []records.Record, foreign []ForeignRecord, owner func(ForeignRecord) records.Owner) ([]records.Record, int, error) {
	have := make(map[netip.Addr]records.Owner, len(existing))
	for _, r := range existing {
		have[r.IP] = r.Owner
	}
	out := slices.Clone(existing)
	added := 0
	for _, f := range foreign {
		o := owner(f)
		if cur, ok := have[f.IP]; ok {
			if cur != o {
				return nil, 0, fmt.Errorf("%w: status.allocatedIPs: record %q of pod %s/%s: orbweaver records the address for another owner",
					ErrForeignRecords, f.IP, f.Namespace, f.Name)
			}
			continue
		}
		have[f.IP] = o
		out = append(out, records.Record{IP: f.IP, Owner: o})
		added++
	}
	slices.SortFunc(out, func(x, y records.Record) int { return x.IP.Compare(y.IP) })
	return out, added, nil
}

// EndpointInterface returns the interface of the endpoint that holds a in pool: the
// NIC whose IPv4 or IPv6 address (with its pool) is a. "" when none does.
func EndpointInterface(se *v2beta1.SpiderEndpoint, pool string, a netip.Addr) string {
	for _, nic := range se.Status.Current.IPs {
		one := v2beta1.SpiderEndpoint{Status: v2beta1.WorkloadEndpointStatus{Current: v2beta1.PodIPAllocation{IPs: []v2beta1.IPAllocationDetail{nic}}}}
		if slices.Contains(EndpointAddrs(&one, pool), a) {
			return nic.NIC
		}
	}
	return ""
}

// ForeignRecordsOf turns endpoints' holds (EndpointHolds) into SpiderPool's records.
func ForeignRecordsOf(holds []EndpointHold) []ForeignRecord {
	out := make([]ForeignRecord, len(holds))
	for i, h := range holds {
		out[i] = ForeignRecord{IP: h.Addr, Namespace: h.Namespace, Name: h.Name, UID: h.PodUID}
	}
	return out
}

// FormatAllocatedIPs writes status.allocatedIPs as SpiderPool does:
// {"<ip>":{"pod":"<ns>/<name>","podUid":"<uid>"}}, in address order. nil for no record
// (SpiderPool omits the field then).
func FormatAllocatedIPs(recs []ForeignRecord) (*string, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	m := make(map[string]foreignEntry, len(recs))
	for _, r := range recs {
		m[r.IP.String()] = foreignEntry{Pod: r.Namespace + "/" + r.Name, PodUID: r.UID}
	}
	data, err := json.Marshal(m) // keys sorted
	if err != nil {
		return nil, err
	}
	s := string(data)
	return &s, nil
}

// ErrSpiderPoolRunning: SpiderPool's agent or controller still runs. orbweaver neither
// allocates beside SpiderPool's agent (both would hand out the same free addresses) nor
// imports a pool SpiderPool's agents still write; the message says which pod runs.
var ErrSpiderPoolRunning = errors.New("SpiderPool is still running")

// SpiderPool's components, by the app.kubernetes.io/component label its chart gives
// their pods (with app.kubernetes.io/name: spiderpool).
const (
	SpiderPoolAgentComponent      = "spiderpool-agent"
	SpiderPoolControllerComponent = "spiderpool-controller"
	spiderPoolComponentLabel      = "app.kubernetes.io/component"
)

// SpiderPoolPodSelector selects the pods of SpiderPool's agent and controller.
func SpiderPoolPodSelector() labels.Selector {
	req, _ := labels.NewRequirement(spiderPoolComponentLabel, selection.In, []string{SpiderPoolAgentComponent, SpiderPoolControllerComponent})
	return labels.NewSelector().Add(*req)
}

// SpiderPoolRunning returns the component of SpiderPool a pod runs ("" when it is not
// one, or has finished). A terminating pod still counts: its process may still serve.
func SpiderPoolRunning(pod *corev1.Pod) string {
	c := pod.Labels[spiderPoolComponentLabel]
	if c != SpiderPoolAgentComponent && c != SpiderPoolControllerComponent {
		return ""
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return ""
	}
	return c
}
