package tencent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	emulator "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/tencent"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

const (
	testRegion    = "ap-guangzhou"
	testSecretID  = "AKIDorbweaverTest0001"
	testSecretKey = "orbweaver-test-secret-key-do-not-print"
)

// env is one adapter talking to one emulator over 127.0.0.1.
type env struct {
	p     *Provider
	cloud *eiptest.Cloud
	emu   *emulator.Server
	srv   *httptest.Server
	inj   *injector
}

// setup starts the emulator (behind a fault injector) and builds the adapter against
// it with credentials from the SDK's environment variables.
func setup(t *testing.T, delay time.Duration) *env {
	t.Helper()
	cloud := eiptest.NewCloud()
	cloud.AsyncDelay = delay
	emu := emulator.New(cloud, emulator.WithCredential(testSecretID, testSecretKey), emulator.WithRegion(testRegion))
	inj := &injector{next: emu, faults: map[string]fault{}}
	srv := httptest.NewServer(inj)
	t.Cleanup(srv.Close)
	t.Setenv("TENCENTCLOUD_SECRET_ID", testSecretID)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", testSecretKey)
	p, err := New(context.Background(), eip.Config{Region: testRegion, Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, cloud: cloud, emu: emu, srv: srv, inj: inj}
}

// injector answers chosen actions itself, to reach codes and failures the Cloud
// cannot produce; everything else goes to the emulator.
type injector struct {
	next   http.Handler
	mu     sync.Mutex
	faults map[string]fault // by X-TC-Action
	hits   map[string]int
}

type fault struct {
	code, msg string         // an API error answer
	status    int            // or a bare HTTP status with a text body
	body      map[string]any // or a success answer
	hangUp    bool           // or a dropped connection
}

func (in *injector) set(action string, f fault) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults[action] = f
}

func (in *injector) clear() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.faults = map[string]fault{}
}

func (in *injector) count(action string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hits[action]
}

func (in *injector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	action := r.Header.Get("X-TC-Action")
	in.mu.Lock()
	if in.hits == nil {
		in.hits = map[string]int{}
	}
	in.hits[action]++
	f, ok := in.faults[action]
	in.mu.Unlock()
	if !ok {
		in.next.ServeHTTP(w, r)
		return
	}
	reqID := "injected-" + strings.ReplaceAll(f.code, ".", "-")
	switch {
	case f.hangUp:
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	case f.status != 0:
		http.Error(w, "bad gateway from a proxy", f.status)
	case f.body != nil:
		body := map[string]any{"RequestId": reqID}
		for k, v := range f.body {
			body[k] = v
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"Response": body})
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{"Response": map[string]any{
			"Error": map[string]string{"Code": f.code, "Message": f.msg}, "RequestId": reqID,
		}})
	}
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
			e := setup(t, tc.delay)
			eiptest.Conformance(t, e.p, e.cloud, tc.delay)
		})
	}
}

func TestName(t *testing.T) {
	e := setup(t, 0)
	if got := e.p.Name(); got != "tencent" {
		t.Fatalf("Name() = %q", got)
	}
}

// TestErrorMapping sends each API error code through the wire and checks its class,
// that the text keeps the code and the request ID, and whether it is retryable.
func TestErrorMapping(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	free, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "mapping"})
	if err != nil {
		t.Fatal(err)
	}
	e.cloud.Place("eni-1", "10.0.0.5")
	calls := map[string]func() error{
		"AllocateAddresses": func() error { _, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "x"}); return err },
		"AssociateAddress":  func() error { return e.p.Associate(ctx, free.ID, "eni-1", "10.0.0.5") },
		"ReleaseAddresses":  func() error { return e.p.Release(ctx, free.ID) },
		"DescribeAddresses": func() error { _, err := e.p.Describe(ctx, eip.Filter{}); return err },
		"DescribeNetworkInterfaces": func() error {
			_, err := e.p.InterfaceOf(ctx, "10.0.0.5")
			return err
		},
		"DisassociateAddress": func() error { return e.p.Disassociate(ctx, free.ID) },
	}
	for _, tc := range []struct {
		action string
		f      fault
		want   error // nil: no eip class
	}{
		{"DescribeAddresses", fault{code: "RequestLimitExceeded"}, eip.ErrThrottled},
		{"DescribeAddresses", fault{code: "RequestLimitExceeded.UinLimitExceeded"}, eip.ErrThrottled},
		{"DescribeNetworkInterfaces", fault{code: "LimitExceeded.ActionLimited"}, eip.ErrThrottled},
		{"DescribeAddresses", fault{status: http.StatusTooManyRequests}, eip.ErrThrottled},
		{"DescribeAddresses", fault{code: "InternalError"}, eip.ErrTransient},
		{"DescribeNetworkInterfaces", fault{code: "InternalError.ModuleError"}, eip.ErrTransient},
		{"DescribeAddresses", fault{code: "ServiceUnavailable"}, eip.ErrTransient},
		{"AssociateAddress", fault{code: "OperationDenied.MutexTaskRunning"}, eip.ErrTransient},
		{"DescribeAddresses", fault{status: http.StatusBadGateway}, eip.ErrTransient},
		{"DescribeAddresses", fault{hangUp: true}, eip.ErrTransient},
		{"DescribeAddresses", fault{status: http.StatusNotFound}, nil}, // a wrong endpoint: retrying will not help
		{"AllocateAddresses", fault{code: "AddressQuotaLimitExceeded"}, eip.ErrQuotaExceeded},
		{"AllocateAddresses", fault{code: "AddressQuotaLimitExceeded.DailyAllocate"}, eip.ErrQuotaExceeded},
		{"AssociateAddress", fault{code: "LimitExceeded.InstanceAddressQuota"}, eip.ErrQuotaExceeded},
		{"DescribeAddresses", fault{code: "AuthFailure.SignatureFailure"}, eip.ErrForbidden},
		{"DescribeAddresses", fault{code: "AuthFailure.SecretIdNotFound"}, eip.ErrForbidden},
		{"ReleaseAddresses", fault{code: "UnauthorizedOperation"}, eip.ErrForbidden},
		{"AllocateAddresses", fault{code: "UnauthorizedOperation.InvalidAccount"}, eip.ErrForbidden},
		{"AssociateAddress", fault{code: "InvalidAddressId.NotFound"}, eip.ErrNotFound},
		{"AssociateAddress", fault{code: "InvalidParameterValue.AddressNotFound"}, eip.ErrNotFound},
		{"DisassociateAddress", fault{code: "InvalidAddressId.NotFound"}, eip.ErrNotFound},
		{"AssociateAddress", fault{code: "InvalidNetworkInterfaceId.NotFound"}, eip.ErrInvalidTarget},
		{"AssociateAddress", fault{code: "InvalidParameterValue.NetworkInterfaceNotFound"}, eip.ErrInvalidTarget},
		// The EIP is free, so a refusal on state means the private IP is taken.
		{"AssociateAddress", fault{code: "InvalidPrivateIpAddress.AlreadyBindEip"}, eip.ErrAssociated},
		{"AssociateAddress", fault{code: "InvalidAddressIdStatus.NotPermit"}, eip.ErrAssociated},
		{"ReleaseAddresses", fault{code: "InvalidAddressState"}, eip.ErrAssociated},
		{"ReleaseAddresses", fault{code: "UnsupportedOperation.AddressStatusNotPermit"}, eip.ErrAssociated},
		{"DescribeAddresses", fault{code: "InvalidParameter.InvalidFilter"}, nil},
		{"AllocateAddresses", fault{code: "FailedOperation.BalanceInsufficient"}, nil},
	} {
		name := tc.action + "/" + tc.f.code
		if tc.f.status != 0 {
			name = fmt.Sprintf("%s/HTTP %d", tc.action, tc.f.status)
		}
		if tc.f.hangUp {
			name = tc.action + "/connection dropped"
		}
		t.Run(name, func(t *testing.T) {
			tc.f.msg = "injected message for " + tc.f.code
			e.inj.set(tc.action, tc.f)
			defer e.inj.clear()
			err := calls[tc.action]()
			if err == nil {
				t.Fatal("no error")
			}
			for _, class := range []error{eip.ErrThrottled, eip.ErrTransient, eip.ErrQuotaExceeded, eip.ErrForbidden, eip.ErrNotFound, eip.ErrAssociated, eip.ErrInvalidTarget} {
				if got := errors.Is(err, class); got != (class == tc.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, class, got)
				}
			}
			if eip.Retryable(err) != (tc.want == eip.ErrThrottled || tc.want == eip.ErrTransient) {
				t.Errorf("Retryable(%v) = %v", err, eip.Retryable(err))
			}
			if tc.f.code != "" && (!strings.Contains(err.Error(), tc.f.code) || !strings.Contains(err.Error(), "injected-") || !strings.Contains(err.Error(), tc.f.msg)) {
				t.Errorf("%v: want the code, message and request ID in the text", err)
			}
		})
	}
}

// TestNoopErrorsAreSuccess: the API's refusals of no-ops are success in the contract.
func TestNoopErrorsAreSuccess(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	if err := e.p.Release(ctx, "eip-never-was"); err != nil {
		t.Fatalf("releasing an unknown EIP: %v", err)
	}
	a, err := e.p.Allocate(ctx, eip.AllocateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Disassociate(ctx, a.ID); err != nil {
		t.Fatalf("disassociating an unbound EIP: %v", err)
	}
	if err := e.p.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
		t.Fatalf("re-associating with the same target: %v", err)
	}
	// The emulator answered the API's refusals, which the adapter turned into success.
	if n := e.inj.count("DescribeAddresses"); n < 3 {
		t.Fatalf("%d DescribeAddresses calls; want the refusals resolved by describing", n)
	}
}

func TestStillCreatingIsTransient(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	e.inj.set("AssociateAddress", fault{code: "InvalidAddressIdStatus.NotPermit", msg: "creating"})
	e.inj.set("DescribeAddresses", fault{body: map[string]any{"TotalCount": 1, "AddressSet": []map[string]any{
		{"AddressId": "eip-new", "AddressIp": "203.0.113.9", "AddressStatus": "CREATING"},
	}}})
	err := e.p.Associate(ctx, "eip-new", "eni-1", "10.0.0.5")
	if !errors.Is(err, eip.ErrTransient) || errors.Is(err, eip.ErrAssociated) {
		t.Fatalf("associating an EIP still being created: %v, want only ErrTransient", err)
	}
}

// TestNoRetries: one adapter call is one request, whatever the failure.
func TestNoRetries(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	e.cloud.SetFaults(eiptest.Faults{ThrottleEvery: 1})
	if _, err := e.p.Describe(ctx, eip.Filter{}); !errors.Is(err, eip.ErrThrottled) {
		t.Fatalf("throttled Describe: %v", err)
	}
	if n := e.cloud.CallCount("Describe"); n != 1 {
		t.Fatalf("a throttled Describe reached the cloud %d times, want 1", n)
	}
	e.cloud.SetFaults(eiptest.Faults{})
	for _, f := range []fault{{status: http.StatusServiceUnavailable}, {hangUp: true}, {code: "RequestLimitExceeded"}} {
		e.inj.set("AllocateAddresses", f)
		before := e.inj.count("AllocateAddresses")
		if _, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "t"}); !eip.Retryable(err) {
			t.Fatalf("%+v: %v, want a retryable error", f, err)
		}
		if n := e.inj.count("AllocateAddresses") - before; n != 1 {
			t.Fatalf("%+v: %d requests for one Allocate, want 1", f, n)
		}
	}
}

func TestAllocateIdempotentWithLongToken(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	long := strings.Repeat("pool-uid/10.0.0.5/generation-", 5) // over the API's 64 characters
	a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: long})
	if err != nil {
		t.Fatal(err)
	}
	sent := e.emu.LastRequest("AllocateAddresses")["ClientToken"].(string)
	b, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: long})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || len(e.cloud.Snapshot()) != 1 {
		t.Fatalf("two EIPs for one token: %s and %s", a.ID, b.ID)
	}
	if len(sent) != 64 || e.emu.LastRequest("AllocateAddresses")["ClientToken"] != sent {
		t.Fatalf("sent token %q; want a stable 64-character digest", sent)
	}
	if got := clientToken("tok-1"); got != "tok-1" {
		t.Fatalf("a short ASCII token was changed to %q", got)
	}
	if got := clientToken("jeton-é"); len(got) != 64 {
		t.Fatalf("a non-ASCII token was sent as %q", got)
	}
}

// TestAllocateAttributes checks what reaches the API and what comes back.
func TestAllocateAttributes(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	req := eip.AllocateRequest{
		ClientToken:        "attrs",
		Bandwidth:          50,
		InternetChargeType: "TRAFFIC_POSTPAID_BY_HOUR",
		InstanceChargeType: "PrePaid",
		ISP:                "BGP",
		PublicIPPool:       "pool-1",
		BandwidthPackage:   "bwp-12345678",
		ResourceGroup:      "rg-1",
		Name:               "pod-eip",
		Description:        "ignored",
		Tags:               map[string]string{"orbweaver.io/pool": "p1", "orbweaver.io/cluster": "c1"},
	}
	a, err := e.p.Allocate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got := e.emu.LastRequest("AllocateAddresses")
	want := map[string]any{
		"AddressCount":            float64(1),
		"ClientToken":             "attrs",
		"InternetMaxBandwidthOut": float64(50),
		"InternetChargeType":      "TRAFFIC_POSTPAID_BY_HOUR",
		"InternetServiceProvider": "BGP",
		"BandwidthPackageId":      "bwp-12345678",
		"AddressName":             "pod-eip",
		"Tags": []any{
			map[string]any{"Key": "orbweaver.io/cluster", "Value": "c1"},
			map[string]any{"Key": "orbweaver.io/pool", "Value": "p1"},
		},
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("AllocateAddresses parameters:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if a.PublicIP == "" || a.State != eip.Available || a.Tags["orbweaver.io/pool"] != "p1" || len(a.Tags) != 2 {
		t.Fatalf("allocated %+v", a)
	}
	// Describe filters by tags on the wire and returns them.
	list, err := e.p.Describe(ctx, eip.Filter{Tags: map[string]string{"orbweaver.io/pool": "p1"}})
	if err != nil || len(list) != 1 || list[0].ID != a.ID || list[0].Tags["orbweaver.io/cluster"] != "c1" {
		t.Fatalf("describe by tag: %+v, %v", list, err)
	}
	filters, _ := json.Marshal(e.emu.LastRequest("DescribeAddresses")["Filters"])
	if want := `[{"Name":"tag:orbweaver.io/pool","Values":["p1"]}]`; string(filters) != want {
		t.Fatalf("DescribeAddresses filters %s, want %s", filters, want)
	}
	if list, err := e.p.Describe(ctx, eip.Filter{Tags: map[string]string{"orbweaver.io/pool": "p2"}}); err != nil || len(list) != 0 {
		t.Fatalf("describe by another tag: %+v, %v", list, err)
	}
}

func TestDescribeFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	e.p.pageSize = 2
	var ids []string
	for i := range 5 {
		a, err := e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: fmt.Sprint("page-", i), Tags: map[string]string{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	e.cloud.Place("eni-9", "10.0.9.9")
	if err := e.p.Associate(ctx, ids[3], "eni-9", "10.0.9.9"); err != nil {
		t.Fatal(err)
	}
	before := e.cloud.CallCount("Describe")
	all, err := e.p.Describe(ctx, eip.Filter{Tags: map[string]string{"k": "v"}})
	if err != nil || len(all) != 5 {
		t.Fatalf("describe all: %d, %v", len(all), err)
	}
	if n := e.cloud.CallCount("Describe") - before; n != 3 {
		t.Fatalf("5 EIPs in pages of 2 took %d calls, want 3", n)
	}
	for _, tc := range []struct {
		name string
		f    eip.Filter
		want []string
	}{
		{"ids", eip.Filter{IDs: []string{ids[1], ids[2], "eip-unknown"}}, ids[1:3]},
		{"private IP", eip.Filter{PrivateIP: "10.0.9.9"}, ids[3:4]},
		{"interface", eip.Filter{NetworkInterface: "eni-9"}, ids[3:4]},
		{"interface and tag", eip.Filter{NetworkInterface: "eni-9", Tags: map[string]string{"k": "other"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.p.Describe(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs []string
			for _, a := range got {
				gotIDs = append(gotIDs, a.ID)
			}
			if !slices.Equal(gotIDs, tc.want) {
				t.Fatalf("got %v, want %v", gotIDs, tc.want)
			}
		})
	}
	got, err := e.p.Describe(ctx, eip.Filter{IDs: []string{ids[3]}})
	if err != nil || len(got) != 1 || got[0].State != eip.InUse || got[0].NetworkInterface != "eni-9" || got[0].PrivateIP != "10.0.9.9" {
		t.Fatalf("bound EIP described as %+v, %v", got, err)
	}
}

func TestInterfaceOfExactMatch(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	e.cloud.Place("eni-7", "10.0.7.7")
	if nic, err := e.p.InterfaceOf(ctx, "10.0.7.7"); err != nil || nic != "eni-7" {
		t.Fatalf("InterfaceOf = %q, %v", nic, err)
	}
	filters, _ := json.Marshal(e.emu.LastRequest("DescribeNetworkInterfaces")["Filters"])
	if want := `[{"Name":"address-ip","Values":["10.0.7.7"]},{"Name":"ip-exact-match","Values":["TRUE"]}]`; string(filters) != want {
		t.Fatalf("filters %s, want %s", filters, want)
	}
	// address-ip alone matches by suffix: an interface carrying 110.0.7.7 is not it.
	e.inj.set("DescribeNetworkInterfaces", fault{body: map[string]any{"TotalCount": 1, "NetworkInterfaceSet": []map[string]any{
		{"NetworkInterfaceId": "eni-other", "PrivateIpAddressSet": []map[string]any{{"PrivateIpAddress": "110.0.7.7"}}},
	}}})
	if nic, err := e.p.InterfaceOf(ctx, "10.0.7.7"); !errors.Is(err, eip.ErrNotFound) {
		t.Fatalf("InterfaceOf with only a suffix match = %q, %v; want ErrNotFound", nic, err)
	}
}

// TestSigning: the emulator refuses unsigned and wrongly signed requests, and the
// adapter reports them as forbidden without ever printing the secret key.
func TestSigning(t *testing.T) {
	ctx := context.Background()
	e := setup(t, 0)
	var errs []error

	// Unsigned, straight on the wire.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-TC-Action", "DescribeAddresses")
	req.Header.Set("X-TC-Version", "2017-03-12")
	req.Header.Set("X-TC-Region", testRegion)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Response struct {
			Error     struct{ Code, Message string }
			RequestId string
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || body.Response.Error.Code != "AuthFailure.InvalidAuthorization" || body.Response.RequestId == "" {
		t.Fatalf("unsigned request: HTTP %d, %+v, %v", resp.StatusCode, body, err)
	}
	if n := e.cloud.CallCount(""); n != 0 {
		t.Fatalf("an unsigned request reached the cloud (%d calls)", n)
	}

	for _, tc := range []struct {
		name, id, key, code string
	}{
		{"unknown secret ID", "AKIDsomeoneElse", testSecretKey, "AuthFailure.SecretIdNotFound"},
		{"wrong secret key", testSecretID, "not-the-key-" + testSecretKey[:4], "AuthFailure.SignatureFailure"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("TENCENTCLOUD_SECRET_ID", tc.id)
			t.Setenv("TENCENTCLOUD_SECRET_KEY", tc.key)
			p, err := New(ctx, eip.Config{Region: testRegion, Endpoint: e.srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Describe(ctx, eip.Filter{})
			if !errors.Is(err, eip.ErrForbidden) || !strings.Contains(err.Error(), tc.code) {
				t.Fatalf("Describe: %v, want ErrForbidden with %s", err, tc.code)
			}
			errs = append(errs, err)
		})
	}

	// Other failures that carry messages from the far end.
	e.cloud.SetFaults(eiptest.Faults{ThrottleEvery: 1})
	_, err = e.p.Allocate(ctx, eip.AllocateRequest{ClientToken: "s"})
	errs = append(errs, err)
	e.cloud.SetFaults(eiptest.Faults{})
	e.inj.set("ReleaseAddresses", fault{status: http.StatusBadGateway})
	errs = append(errs, e.p.Release(ctx, "eip-1"))
	e.inj.set("DescribeAddresses", fault{hangUp: true})
	_, err = e.p.Describe(ctx, eip.Filter{})
	errs = append(errs, err)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", "")
	_, err = New(ctx, eip.Config{Region: testRegion, Endpoint: e.srv.URL})
	errs = append(errs, err)

	for _, err := range errs {
		if err == nil {
			t.Fatal("a failure returned no error")
		}
		if strings.Contains(err.Error(), testSecretKey) || strings.Contains(fmt.Sprintf("%+v", err), testSecretKey) {
			t.Fatalf("the secret key leaked into %q", err)
		}
	}
}

func TestContextCancelled(t *testing.T) {
	e := setup(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.p.Describe(ctx, eip.Filter{}); !errors.Is(err, context.Canceled) || eip.Retryable(err) {
		t.Fatalf("Describe with a cancelled context: %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Setenv("TENCENTCLOUD_SECRET_ID", testSecretID)
	t.Setenv("TENCENTCLOUD_SECRET_KEY", testSecretKey)
	for _, tc := range []struct {
		name string
		cfg  eip.Config
		ok   bool
	}{
		{"default endpoint", eip.Config{Region: testRegion}, true},
		{"no region", eip.Config{Endpoint: "http://127.0.0.1:1"}, false},
		{"path in endpoint", eip.Config{Region: testRegion, Endpoint: "http://127.0.0.1:1/api"}, false},
		{"bad scheme", eip.Config{Region: testRegion, Endpoint: "ftp://127.0.0.1:1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New(%+v) = %v", tc.cfg, err)
			}
		})
	}
}

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in, scheme, host string
		ok               bool
	}{
		{"http://127.0.0.1:8080", "HTTP", "127.0.0.1:8080", true},
		{"http://127.0.0.1:8080/", "HTTP", "127.0.0.1:8080", true},
		{"https://vpc.internal.example", "HTTPS", "vpc.internal.example", true},
		{"vpc.ap-guangzhou.tencentcloudapi.com", "HTTPS", "vpc.ap-guangzhou.tencentcloudapi.com", true},
		{"http://127.0.0.1:8080/v3", "", "", false},
		{"http://", "", "", false},
		{"http://127.0.0.1:8080/?a=b", "", "", false},
	} {
		scheme, host, err := parseEndpoint(tc.in)
		if (err == nil) != tc.ok || scheme != tc.scheme || host != tc.host {
			t.Errorf("parseEndpoint(%q) = %q, %q, %v", tc.in, scheme, host, err)
		}
	}
}

func TestState(t *testing.T) {
	for in, want := range map[string]eip.State{
		"UNBIND": eip.Available, "CREATING": eip.Available, "BINDING": eip.Associating,
		"BIND": eip.InUse, "BIND_ENI": eip.InUse, "UNBINDING": eip.Unassociating,
	} {
		if got := state(in); got != want {
			t.Errorf("state(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestDescribeHidesReleasing(t *testing.T) {
	e := setup(t, 0)
	e.inj.set("DescribeAddresses", fault{body: map[string]any{"TotalCount": 2, "AddressSet": []map[string]any{
		{"AddressId": "eip-going", "AddressIp": "203.0.113.1", "AddressStatus": "OFFLINING"},
		{"AddressId": "eip-staying", "AddressIp": "203.0.113.2", "AddressStatus": "BIND_ENI", "NetworkInterfaceId": "eni-1", "PrivateAddressIp": "10.0.0.1"},
	}}})
	got, err := e.p.Describe(context.Background(), eip.Filter{})
	if err != nil || len(got) != 1 || got[0].ID != "eip-staying" || got[0].State != eip.InUse {
		t.Fatalf("Describe = %+v, %v", got, err)
	}
}
