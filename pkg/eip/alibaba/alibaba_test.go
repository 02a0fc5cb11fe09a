package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	vpc "github.com/alibabacloud-go/vpc-20160428/v7/client"

	alibabaemu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/alibaba"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

const (
	testKeyID  = "LTAI5tOrbweaverTestKey"
	testSecret = "orbweaver-test-secret-must-never-leak"
	testRegion = "cn-hangzhou"
)

// env is a running emulator and an adapter pointed at it through the SDK.
type env struct {
	p     *Provider
	cloud *eiptest.Cloud
	emu   *alibabaemu.Server
	url   string
	calls *actionCounter
}

// actionCounter counts HTTP requests per action, as the cloud would bill them.
type actionCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *actionCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n[r.Header.Get("x-acs-action")]++
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *actionCounter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}

// setCredentials puts fake credentials where the SDK's default chain finds them first,
// and keeps the chain away from the real home directory and the metadata service.
func setCredentials(t *testing.T, id, secret string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", id)
	t.Setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
	t.Setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "")
	t.Setenv("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true")
	t.Setenv("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true")
}

func start(t *testing.T, delay time.Duration) *env {
	t.Helper()
	setCredentials(t, testKeyID, testSecret)
	cloud := eiptest.NewCloud()
	cloud.AsyncDelay = delay
	emu := alibabaemu.NewServer(cloud, alibabaemu.Options{AccessKeyID: testKeyID, AccessKeySecret: testSecret, Region: testRegion})
	calls := &actionCounter{n: map[string]int{}}
	srv := httptest.NewServer(calls.wrap(emu))
	t.Cleanup(srv.Close)
	p, err := New(context.Background(), eip.Config{Endpoint: srv.URL, Region: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, cloud: cloud, emu: emu, url: srv.URL, calls: calls}
}

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{
		{"synchronous", 0},
		{"async 50ms", 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, tc.delay)
			if e.p.Name() != "alibaba" {
				t.Fatalf("Name() = %q", e.p.Name())
			}
			eiptest.Conformance(t, e.p, e.cloud, tc.delay)
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	setCredentials(t, testKeyID, testSecret)
	for _, cfg := range []eip.Config{
		{Endpoint: "http://127.0.0.1:1"},                  // no region
		{Region: testRegion, Endpoint: "127.0.0.1:8080"},  // no scheme
		{Region: testRegion, Endpoint: "ftp://127.0.0.1"}, // not http(s)
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", cfg)
		}
	}
}

// TestErrorMapping sends the cloud's error codes through the wire and the SDK and checks
// the class each one gets, that the code and request ID stay in the text, and that the
// adapter did not retry.
func TestErrorMapping(t *testing.T) {
	e := start(t, 0)
	ctx := context.Background()
	e.cloud.Place("eni-1", "10.0.0.5")
	a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-errors"})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"AllocateEipAddress": func() error {
			_, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-errors-2"})
			return err
		},
		"AssociateEipAddress":  func() error { return e.p.Associate(ctx, a.ID, "eni-1", "10.0.0.5") },
		"ReleaseEipAddress":    func() error { return e.p.Release(ctx, a.ID) },
		"DescribeEipAddresses": func() error { _, err := e.p.Describe(ctx, eip.Filter{}); return err },
		"DescribeNetworkInterfaces": func() error {
			_, err := e.p.InterfaceOf(ctx, "10.0.0.5")
			return err
		},
	}
	for _, tc := range []struct {
		name   string
		action string
		fault  alibabaemu.Fault
		want   error // nil: no class
	}{
		{"user throttling", "DescribeEipAddresses", alibabaemu.Fault{Status: 400, Code: "Throttling.User", Message: "Request was denied due to user flow control."}, eip.ErrThrottled},
		{"api throttling", "AllocateEipAddress", alibabaemu.Fault{Status: 400, Code: "Throttling.Api", Message: "Request was denied due to api flow control."}, eip.ErrThrottled},
		{"task conflict", "ReleaseEipAddress", alibabaemu.Fault{Status: 400, Code: "TaskConflict", Message: "Operate too frequent."}, eip.ErrThrottled},
		{"service unavailable", "AssociateEipAddress", alibabaemu.Fault{Status: 503, Code: "ServiceUnavailable", Message: "The request has failed due to a temporary failure of the server."}, eip.ErrTransient},
		{"internal error", "ReleaseEipAddress", alibabaemu.Fault{Status: 500, Code: "InternalError", Message: "The request processing has failed due to some unknown error."}, eip.ErrTransient},
		{"unknown 5xx", "DescribeNetworkInterfaces", alibabaemu.Fault{Status: 502, Code: "BadGateway", Message: "upstream"}, eip.ErrTransient},
		{"connection dropped", "DescribeEipAddresses", alibabaemu.Fault{}, eip.ErrTransient},
		{"EIP quota", "AllocateEipAddress", alibabaemu.Fault{Status: 400, Code: "QuotaExceeded.Eip", Message: "Elastic IP address quota exceeded."}, eip.ErrQuotaExceeded},
		{"RAM denies", "AssociateEipAddress", alibabaemu.Fault{Status: 403, Code: "Forbidden.RAM", Message: "User not authorized to operate on the specified resource."}, eip.ErrForbidden},
		{"unknown access key", "DescribeEipAddresses", alibabaemu.Fault{Status: 404, Code: "InvalidAccessKeyId.NotFound", Message: "Specified access key is not found."}, eip.ErrForbidden},
		{"bad signature", "DescribeNetworkInterfaces", alibabaemu.Fault{Status: 400, Code: "SignatureDoesNotMatch", Message: "Specified signature is not matched with our calculation."}, eip.ErrForbidden},
		{"not the owner", "ReleaseEipAddress", alibabaemu.Fault{Status: 400, Code: "Forbidden", Message: "The eip instance owner error"}, eip.ErrForbidden},
		{"missing EIP", "AssociateEipAddress", alibabaemu.Fault{Status: 404, Code: "InvalidAllocationId.NotFound", Message: "Specified allocation ID is not found"}, eip.ErrNotFound},
		{"release while bound", "ReleaseEipAddress", alibabaemu.Fault{Status: 400, Code: "IncorrectEipStatus", Message: "Current elastic IP status does not support this operation."}, eip.ErrAssociated},
		{"target already has an EIP", "AssociateEipAddress", alibabaemu.Fault{Status: 400, Code: "InvalidAssociation.Duplicated", Message: "Specified instance already is associated."}, eip.ErrAssociated},
		{"unknown ENI", "AssociateEipAddress", alibabaemu.Fault{Status: 400, Code: "InvalidInstanceId.NotFound", Message: "Specified instance does not exist."}, eip.ErrInvalidTarget},
		{"IP not on the ENI", "AssociateEipAddress", alibabaemu.Fault{Status: 400, Code: "InvalidParams.NotFound", Message: "instance not found"}, eip.ErrInvalidTarget},
		{"unclassified", "AllocateEipAddress", alibabaemu.Fault{Status: 400, Code: "InvalidParameter", Message: "The specified parameter is not valid."}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.emu.FailNext(tc.action, tc.fault)
			e.calls.reset()
			err := calls[tc.action]()
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if n := e.calls.reset()[tc.action]; n != 1 {
				t.Errorf("%s was sent %d times, want once (no retries)", tc.action, n)
			}
			classes := []error{eip.ErrThrottled, eip.ErrTransient, eip.ErrQuotaExceeded, eip.ErrForbidden, eip.ErrNotFound, eip.ErrAssociated, eip.ErrInvalidTarget}
			for _, c := range classes {
				if errors.Is(err, c) != (c == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, c, !(c == tc.want))
				}
			}
			if tc.fault.Status == 0 {
				return
			}
			var ae *APIError
			if !errors.As(err, &ae) || ae.Code != tc.fault.Code || ae.StatusCode != tc.fault.Status {
				t.Fatalf("error %v does not carry the API error %s/%d", err, tc.fault.Code, tc.fault.Status)
			}
			for _, want := range []string{tc.fault.Code, tc.fault.Message, "request ID A1BABA00-"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

func TestAllocateIsIdempotentByClientToken(t *testing.T) {
	e := start(t, 0)
	ctx := context.Background()
	a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-a"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-b"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.PublicIP != b.PublicIP || a.ID == c.ID {
		t.Fatalf("tok-a gave %s and %s, tok-b gave %s", a.ID, b.ID, c.ID)
	}
	if n := len(e.cloud.Snapshot()); n != 2 {
		t.Fatalf("the cloud holds %d EIPs, want 2", n)
	}
	if got := e.emu.LastRequest("AllocateEipAddress").Get("ClientToken"); got != "tok-b" {
		t.Fatalf("ClientToken on the wire = %q, want tok-b", got)
	}
}

func TestAllocateRequestReachesTheWire(t *testing.T) {
	e := start(t, 0)
	e.cloud.AddBandwidthPackage("cbwp-1")
	ctx := context.Background()
	req := eip.AllocateRequest{
		ClientToken:        "tok-attrs",
		Bandwidth:          20,
		InternetChargeType: "PayByTraffic",
		InstanceChargeType: "PostPaid",
		ISP:                "BGP_PRO",
		PublicIPPool:       "pippool-1",
		BandwidthPackage:   "cbwp-1",
		ResourceGroup:      "rg-1",
		Name:               "pod-eip",
		Description:        "orbweaver pool p1",
		Tags:               map[string]string{"orbweaver.io/cluster": "c1", "orbweaver.io/pool": "p1", "orbweaver.io/ip": "10.0.0.9"},
	}
	a, err := e.p.Allocate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got := e.emu.LastRequest("AllocateEipAddress")
	for param, want := range map[string]string{
		"RegionId":              testRegion,
		"ClientToken":           "tok-attrs",
		"Bandwidth":             "20",
		"InternetChargeType":    "PayByTraffic",
		"InstanceChargeType":    "PostPaid",
		"ISP":                   "BGP_PRO",
		"PublicIpAddressPoolId": "pippool-1",
		"ResourceGroupId":       "rg-1",
		"Name":                  "pod-eip",
		"Description":           "orbweaver pool p1",
		// Tags are sent sorted by key.
		"Tag.1.Key": "orbweaver.io/cluster", "Tag.1.Value": "c1",
		"Tag.2.Key": "orbweaver.io/ip", "Tag.2.Value": "10.0.0.9",
		"Tag.3.Key": "orbweaver.io/pool", "Tag.3.Value": "p1",
	} {
		if got.Get(param) != want {
			t.Errorf("%s = %q on the wire, want %q", param, got.Get(param), want)
		}
	}
	for param := range got {
		if strings.Contains(strings.ToLower(param), "bandwidthpackage") || strings.Contains(strings.ToLower(param), "secret") {
			t.Errorf("unexpected parameter %s on the wire", param)
		}
	}
	// The shared bandwidth package is a call of its own.
	join := e.emu.LastRequest("AddCommonBandwidthPackageIp")
	for param, want := range map[string]string{"RegionId": testRegion, "BandwidthPackageId": "cbwp-1", "IpInstanceId": a.ID, "IpType": "EIP"} {
		if join.Get(param) != want {
			t.Errorf("AddCommonBandwidthPackageIp: %s = %q on the wire, want %q", param, join.Get(param), want)
		}
	}
	// Zero values are left out, so the cloud's defaults apply.
	if _, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-defaults"}); err != nil {
		t.Fatal(err)
	}
	for _, param := range []string{"Bandwidth", "ISP", "Name", "Tag.1.Key", "InternetChargeType"} {
		if v, ok := e.emu.LastRequest("AllocateEipAddress")[param]; ok {
			t.Errorf("%s = %q sent for a zero value", param, v)
		}
	}
	// Describe filters by tags on the wire and returns them.
	list, err := e.p.Describe(ctx, eip.Filter{Tags: map[string]string{"orbweaver.io/pool": "p1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != a.ID || list[0].Tags["orbweaver.io/ip"] != "10.0.0.9" || list[0].State != eip.Available {
		t.Fatalf("describe by tag: %+v", list)
	}
	if d := e.emu.LastRequest("DescribeEipAddresses"); d.Get("Tag.1.Key") != "orbweaver.io/pool" || d.Get("Tag.1.Value") != "p1" {
		t.Fatalf("describe sent %v, want the tag filter", d)
	}
}

// TestBandwidthPackage: an EIP allocated into a shared bandwidth package is in it (a
// retried Allocate too), leaves it on release, and is released; an unknown package is
// an error naming it; a bound EIP's release is refused and it stays in its package.
func TestBandwidthPackage(t *testing.T) {
	e := start(t, 0)
	e.cloud.AddBandwidthPackage("cbwp-1")
	e.cloud.Place("eni-1", "10.0.0.5")
	ctx := context.Background()
	req := eip.AllocateRequest{ClientToken: "tok-pkg", BandwidthPackage: "cbwp-1"}
	a, err := e.p.Allocate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.p.Allocate(ctx, req)
	if err != nil || again.ID != a.ID || again.BandwidthPackage != "cbwp-1" {
		t.Fatalf("retried Allocate: %+v, %v; want %s in cbwp-1", again, err, a.ID)
	}
	got, err := e.p.Describe(ctx, eip.Filter{IDs: []string{a.ID}})
	if err != nil || len(got) != 1 || got[0].BandwidthPackage != "cbwp-1" {
		t.Fatalf("Describe: %+v, %v; want the EIP in cbwp-1", got, err)
	}

	// Bound: the release is refused and the EIP keeps its package.
	if err := e.p.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Release(ctx, a.ID); !errors.Is(err, eip.ErrAssociated) {
		t.Fatalf("Release of a bound EIP: %v, want ErrAssociated", err)
	}
	if s := snapshot(e.cloud, a.ID); s.BandwidthPackage != "cbwp-1" {
		t.Fatalf("after a refused release the EIP is in %q, want cbwp-1", s.BandwidthPackage)
	}
	if err := e.p.Disassociate(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Release(ctx, a.ID); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if s := snapshot(e.cloud, a.ID); s.ID != "" {
		t.Fatalf("EIP %s still exists after Release: %+v", a.ID, s)
	}
	if got := e.emu.LastRequest("RemoveCommonBandwidthPackageIp"); got.Get("BandwidthPackageId") != "cbwp-1" || got.Get("IpInstanceId") != a.ID {
		t.Fatalf("RemoveCommonBandwidthPackageIp sent %v", got)
	}

	// An unknown package: the error names it and the cloud's code; not retryable.
	_, err = e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-nopkg", BandwidthPackage: "cbwp-none"})
	if err == nil || eip.Retryable(err) || !strings.Contains(err.Error(), "cbwp-none") || !strings.Contains(err.Error(), "InvalidBandwidthPackageId.NotFound") {
		t.Fatalf("Allocate into an unknown package: %v", err)
	}
}

// TestPrePaidRefused: a subscription EIP is refused before any call, with what to do.
func TestPrePaidRefused(t *testing.T) {
	e := start(t, 0)
	e.calls.reset()
	for _, ct := range []string{"PrePaid", "prepaid"} {
		_, err := e.p.Allocate(context.Background(), eip.AllocateRequest{ClientToken: "tok-prepaid", InstanceChargeType: ct})
		if !errors.Is(err, eip.ErrUnsupported) || eip.Retryable(err) || !strings.Contains(err.Error(), "PostPaid") {
			t.Fatalf("Allocate %s: %v, want ErrUnsupported saying to use PostPaid", ct, err)
		}
	}
	if got := e.calls.reset(); len(got) != 0 {
		t.Fatalf("a refused PrePaid allocation called the cloud: %v", got)
	}
}

func snapshot(c *eiptest.Cloud, id string) eip.Address {
	for _, a := range c.Snapshot() {
		if a.ID == id {
			return a
		}
	}
	return eip.Address{}
}

func TestAssociateSendsTheENITarget(t *testing.T) {
	e := start(t, 0)
	ctx := context.Background()
	e.cloud.Place("eni-9", "10.0.0.9")
	a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-assoc"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Associate(ctx, a.ID, "eni-9", "10.0.0.9"); err != nil {
		t.Fatal(err)
	}
	got := e.emu.LastRequest("AssociateEipAddress")
	for param, want := range map[string]string{"AllocationId": a.ID, "InstanceId": "eni-9", "InstanceType": "NetworkInterface", "PrivateIpAddress": "10.0.0.9", "RegionId": testRegion} {
		if got.Get(param) != want {
			t.Errorf("%s = %q, want %q", param, got.Get(param), want)
		}
	}
	list, err := e.p.Describe(ctx, eip.Filter{NetworkInterface: "eni-9", PrivateIP: "10.0.0.9"})
	if err != nil || len(list) != 1 || list[0].State != eip.InUse {
		t.Fatalf("describe by ENI and IP: %+v, %v", list, err)
	}
	if list, err := e.p.Describe(ctx, eip.Filter{NetworkInterface: "eni-9", PrivateIP: "10.0.0.10"}); err != nil || len(list) != 0 {
		t.Fatalf("describe by another private IP: %+v, %v", list, err)
	}
	if err := e.p.Disassociate(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	un := e.emu.LastRequest("UnassociateEipAddress")
	if un.Get("InstanceId") != "eni-9" || un.Get("InstanceType") != "NetworkInterface" || un.Get("PrivateIpAddress") != "10.0.0.9" {
		t.Fatalf("unassociate sent %v", un)
	}
}

func TestDescribePagesAndChunks(t *testing.T) {
	e := start(t, 0)
	ctx := context.Background()
	tags := map[string]string{"orbweaver.io/pool": "big"}
	var ids []string
	for i := range 130 {
		a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: fmt.Sprintf("tok-%d", i), Tags: tags})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	e.calls.reset()
	all, err := e.p.Describe(ctx, eip.Filter{Tags: tags})
	if err != nil || len(all) != 130 {
		t.Fatalf("describe 130 by tag: %d, %v", len(all), err)
	}
	if n := e.calls.reset()["DescribeEipAddresses"]; n != 2 {
		t.Errorf("130 EIPs took %d pages, want 2", n)
	}
	some, err := e.p.Describe(ctx, eip.Filter{IDs: ids[:120]})
	if err != nil || len(some) != 120 {
		t.Fatalf("describe 120 by ID: %d, %v", len(some), err)
	}
	if n := e.calls.reset()["DescribeEipAddresses"]; n != 3 {
		t.Errorf("120 IDs took %d calls, want 3 (50 IDs per call)", n)
	}
}

// TestCallsPerMethod counts the API calls each Provider method makes (the report and
// docs/reference/eip-alibaba.md quote these).
func TestCallsPerMethod(t *testing.T) {
	e := start(t, 0)
	ctx := context.Background()
	e.cloud.Place("eni-1", "10.0.0.5")
	e.cloud.AddBandwidthPackage("cbwp-count")
	e.calls.reset()
	var id string
	for _, tc := range []struct {
		name string
		call func() error
		want map[string]int
	}{
		{"Allocate", func() error {
			a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-count", Tags: map[string]string{"k": "v"}})
			id = a.ID
			return err
		}, map[string]int{"AllocateEipAddress": 1}},
		{"InterfaceOf", func() error { _, err := e.p.InterfaceOf(ctx, "10.0.0.5"); return err }, map[string]int{"DescribeNetworkInterfaces": 1}},
		{"InterfaceOf an IP no ENI carries", func() error {
			if _, err := e.p.InterfaceOf(ctx, "10.0.0.77"); !errors.Is(err, eip.ErrNotFound) {
				return fmt.Errorf("want ErrNotFound, got %v", err)
			}
			return nil
		}, map[string]int{"DescribeNetworkInterfaces": 2}},
		{"Associate", func() error { return e.p.Associate(ctx, id, "eni-1", "10.0.0.5") }, map[string]int{"AssociateEipAddress": 1}},
		{"Describe", func() error { _, err := e.p.Describe(ctx, eip.Filter{IDs: []string{id}}); return err }, map[string]int{"DescribeEipAddresses": 1}},
		{"Disassociate", func() error { return e.p.Disassociate(ctx, id) }, map[string]int{"DescribeEipAddresses": 1, "UnassociateEipAddress": 1}},
		{"Disassociate when unbound", func() error { return e.p.Disassociate(ctx, id) }, map[string]int{"DescribeEipAddresses": 1}},
		{"Release", func() error { return e.p.Release(ctx, id) }, map[string]int{"ReleaseEipAddress": 1}},
		{"Release when gone", func() error { return e.p.Release(ctx, id) }, map[string]int{"ReleaseEipAddress": 1}},
		{"Allocate into a bandwidth package", func() error {
			a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-count-pkg", BandwidthPackage: "cbwp-count"})
			id = a.ID
			return err
		}, map[string]int{"AllocateEipAddress": 1, "AddCommonBandwidthPackageIp": 1}},
		{"Allocate again, the join refused: the EIP is in the package already", func() error {
			e.emu.FailNext("AddCommonBandwidthPackageIp", alibabaemu.Fault{Status: 400, Code: "IncorrectEipStatus", Message: "Current elastic IP status does not support this operation."})
			a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-count-pkg", BandwidthPackage: "cbwp-count"})
			if err == nil && (a.ID != id || a.BandwidthPackage != "cbwp-count") {
				return fmt.Errorf("retried Allocate: %+v, want %s in cbwp-count", a, id)
			}
			return err
		}, map[string]int{"AllocateEipAddress": 1, "AddCommonBandwidthPackageIp": 1, "DescribeEipAddresses": 1}},
		{"Release from a bandwidth package", func() error { return e.p.Release(ctx, id) },
			map[string]int{"DescribeEipAddresses": 1, "ReleaseEipAddress": 2, "RemoveCommonBandwidthPackageIp": 1}},
	} {
		if err := tc.call(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := e.calls.reset()
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s made %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestUnsignedRequestsAreRefused(t *testing.T) {
	e := start(t, 0)
	q := url.Values{"Action": {"DescribeEipAddresses"}, "Version": {"2016-04-28"}, "RegionId": {testRegion}}
	resp, err := http.Post(e.url+"/?"+q.Encode(), "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Code, Message, RequestId string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || body.Code != "IncompleteSignature" || body.RequestId == "" {
		t.Fatalf("unsigned request: HTTP %d %+v", resp.StatusCode, body)
	}
	if e.emu.LastRequest("DescribeEipAddresses") != nil {
		t.Fatal("an unsigned request was served")
	}
}

func TestWrongCredentialsAreForbidden(t *testing.T) {
	for _, tc := range []struct{ name, id, secret, code string }{
		{"unknown key ID", "LTAI5tSomeoneElse", testSecret, "InvalidAccessKeyId.NotFound"},
		{"wrong secret", testKeyID, "not-the-secret-either", "SignatureDoesNotMatch"},
		{"no credentials anywhere", "", "", "unable to get credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := start(t, 0)
			setCredentials(t, tc.id, tc.secret)
			p, err := New(context.Background(), eip.Config{Endpoint: e.url, Region: testRegion})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Describe(context.Background(), eip.Filter{})
			if !errors.Is(err, eip.ErrForbidden) || !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("describe = %v, want ErrForbidden with %s", err, tc.code)
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Fatal("the secret is in the error")
			}
		})
	}
}

// TestSecretNeverInErrors runs every failing path and checks no error text carries the
// access key secret.
func TestSecretNeverInErrors(t *testing.T) {
	e := start(t, 0)
	ctx := context.Background()
	var errs []error
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range []alibabaemu.Fault{{Status: 400, Code: "Throttling.User"}, {Status: 403, Code: "Forbidden.RAM"}, {Status: 500, Code: "InternalError"}, {}} {
		for _, action := range []string{"AllocateEipAddress", "AssociateEipAddress", "ReleaseEipAddress", "DescribeEipAddresses", "DescribeNetworkInterfaces"} {
			e.emu.FailNext(action, f)
		}
		_, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-s"})
		collect(err)
		collect(e.p.Associate(ctx, "eip-x", "eni-x", "10.9.9.9"))
		collect(e.p.Release(ctx, "eip-x"))
		_, err = e.p.Describe(ctx, eip.Filter{})
		collect(err)
		_, err = e.p.InterfaceOf(ctx, "10.9.9.9")
		collect(err)
	}
	collect(e.p.Disassociate(ctx, "eip-missing"))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := e.p.Describe(cctx, eip.Filter{})
	collect(err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled describe: %v, want context.Canceled", err)
	}
	if len(errs) < 20 {
		t.Fatalf("only %d errors collected", len(errs))
	}
	for _, err := range errs {
		if strings.Contains(err.Error(), testSecret) || strings.Contains(fmt.Sprintf("%+v", err), testSecret) {
			t.Fatalf("the secret leaked: %v", err)
		}
	}
}

// TestDisassociateWhileTransitioning covers IncorrectEipStatus from
// UnassociateEipAddress: done when the EIP is unbound meanwhile, retryable while it is
// still Associating, ErrAssociated otherwise.
func TestDisassociateWhileTransitioning(t *testing.T) {
	e := start(t, time.Hour) // transitions never finish on their own
	ctx := context.Background()
	e.cloud.Place("eni-1", "10.0.0.5")
	a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-race"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	refused := alibabaemu.Fault{Status: 400, Code: "IncorrectEipStatus", Message: "Current elastic IP status does not support this operation."}
	e.emu.FailNext("UnassociateEipAddress", refused)
	if err := e.p.Disassociate(ctx, a.ID); !errors.Is(err, eip.ErrTransient) || !strings.Contains(err.Error(), "IncorrectEipStatus") {
		t.Fatalf("disassociating an Associating EIP the cloud refuses: %v, want ErrTransient", err)
	}
	if err := e.p.Disassociate(ctx, a.ID); err != nil { // now Unassociating
		t.Fatal(err)
	}
	e = start(t, 0) // InUse at once
	e.cloud.Place("eni-1", "10.0.0.5")
	if a, err = e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-race"}); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	e.emu.FailNext("UnassociateEipAddress", refused)
	if err := e.p.Disassociate(ctx, a.ID); !errors.Is(err, eip.ErrAssociated) {
		t.Fatalf("a refused disassociation of an InUse EIP: %v, want ErrAssociated", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.p.InterfaceOf(cctx, "10.0.0.5"); !errors.Is(err, context.Canceled) {
		t.Fatalf("InterfaceOf with a cancelled context: %v", err)
	}
}

// TestConcurrentCalls: the controller calls one Provider from many goroutines.
func TestConcurrentCalls(t *testing.T) {
	e := start(t, 0)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			if _, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: fmt.Sprintf("tok-c%d", i)}); err != nil {
				errs <- err
			}
			if _, err := e.p.Describe(ctx, eip.Filter{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(e.cloud.Snapshot()); n != 16 {
		t.Fatalf("%d EIPs, want 16", n)
	}
}

// TestEmulatorVerifiesTheSDKsRPCSignature drives the emulator with the SDK's other
// signature, the classic RPC one (SignatureAlgorithm "v2"), which the adapter does not
// use, to check the emulator's verification of it against the SDK's own signer.
func TestEmulatorVerifiesTheSDKsRPCSignature(t *testing.T) {
	e := start(t, 0)
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		secret string
		code   string // "" for success
	}{
		{testSecret, ""},
		{"a-wrong-secret", "SignatureDoesNotMatch"},
	} {
		c, err := vpc.NewClient(&openapi.Config{
			AccessKeyId:        dara.String(testKeyID),
			AccessKeySecret:    dara.String(tc.secret),
			Endpoint:           dara.String(u.Host),
			Protocol:           dara.String("http"),
			RegionId:           dara.String(testRegion),
			SignatureAlgorithm: dara.String("v2"),
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.DescribeEipAddressesWithContext(context.Background(), &vpc.DescribeEipAddressesRequest{RegionId: dara.String(testRegion)}, callOptions())
		if got := e.emu.LastRequest("DescribeEipAddresses"); tc.code == "" && (err != nil || got.Get("SignatureMethod") != "HMAC-SHA1" || got.Get("AccessKeyId") != testKeyID) {
			t.Fatalf("an RPC-signed call: %v, parameters %v", err, got)
		}
		if tc.code != "" && (err == nil || !strings.Contains(err.Error(), tc.code)) {
			t.Fatalf("an RPC-signed call with the wrong secret: %v, want %s", err, tc.code)
		}
	}
}
