package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam/records"
)

// etcdRequestLimit is etcd's default --max-request-bytes, the ceiling of one object write.
const etcdRequestLimit = 1536 * 1024

// TestPoolOf65536Records stores a fully allocated pool of 65,536 IPs through the real API
// server and etcd: records and counts in one status write, read back intact, counts
// shown by kubectl. It logs the sizes that docs/design/allocation-records.md reports.
func TestPoolOf65536Records(t *testing.T) {
	ctx := ctxFor(t)
	const n = 65536
	subnet := netip.MustParsePrefix("10.96.0.0/16")
	pool := &v2beta1.SpiderIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: "full-slash16"},
		Spec: v2beta1.IPPoolSpec{
			IPVersion: ptr.To(v2beta1.IPv4),
			Subnet:    v2beta1.CIDR(subnet.String()),
			IPs:       []v2beta1.IPOrRange{"10.96.0.0-10.96.255.255"},
		},
	}
	if err := env.Client.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pool) })

	recs := records.Fill(subnet, n)
	data, err := records.Encode(subnet, recs)
	if err != nil {
		t.Fatal(err)
	}
	pool.Status = v2beta1.IPPoolStatus{
		AllocatedIPCount: ptr.To[int64](n),
		TotalIPCount:     ptr.To[int64](n),
		Orbweaver:        &v2beta1.IPPoolOrbweaverStatus{Records: data},
	}
	if err := env.Client.Status().Update(ctx, pool); err != nil {
		t.Fatalf("status update with %d records (%d bytes): %v", n, len(data), err)
	}

	got := &v2beta1.SpiderIPPool{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pool), got); err != nil {
		t.Fatal(err)
	}
	back, err := records.Decode(subnet, got.Status.Orbweaver.Records)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back, recs) {
		t.Fatalf("read back %d records, not the %d written", len(back), n)
	}

	raw, err := env.Kubectl(ctx, "get", "sp", pool.Name, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) >= etcdRequestLimit {
		t.Fatalf("pool object is %d bytes, over etcd's %d", len(raw), etcdRequestLimit)
	}
	t.Logf("65,536 records: %d bytes binary (%.2f a record), %d bytes base64 (%.2f a record); whole object as JSON %d bytes, %.0f%% of etcd's 1.5 MiB",
		len(data), float64(len(data))/n, base64Len(len(data)), float64(base64Len(len(data)))/n, len(raw), 100*float64(len(raw))/etcdRequestLimit)

	t.Logf("the same records in SpiderPool's status.allocatedIPs JSON: %d bytes", spiderPoolJSONLen(recs))

	out, err := env.Kubectl(ctx, "get", "sp", pool.Name)
	if err != nil {
		t.Fatal(err)
	}
	// SpiderPool's columns, first and in its order (orbweaver's FREE and AGE follow).
	want := []string{pool.Name, "4", subnet.String(), strconv.Itoa(n), strconv.Itoa(n), "false"}
	if r := row(t, testenv.SplitTable(out), pool.Name); len(r) < len(want) || !slices.Equal(r[:len(want)], want) {
		t.Fatalf("kubectl get sp = %v, want %v first", r, want)
	}
}

func base64Len(n int) int { return (n + 2) / 3 * 4 }

// spiderPoolJSONLen is the size of SpiderPool's record format for the same allocations,
// {"<ip>":{"pod":"<ns>/<name>","podUid":"<uid>"},...}, with Deployment-style pod names.
func spiderPoolJSONLen(recs []records.Record) int {
	m := make(map[string]map[string]string, len(recs))
	for i, r := range recs {
		m[r.IP.String()] = map[string]string{
			"pod":    fmt.Sprintf("default/nginx-644659db67-%05x", i),
			"podUid": fmt.Sprintf("0d9d0a4e-5f0c-4b8e-9a59-%012x", i),
		}
	}
	b, _ := json.Marshal(m)
	return len(b)
}
