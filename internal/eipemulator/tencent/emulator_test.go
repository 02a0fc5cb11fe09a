package tencent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

const (
	id     = "AKIDemulatorTest"
	key    = "emulator-test-key"
	region = "ap-guangzhou"
)

// call is one raw request: the test plays the SDK. The adapter's tests drive the
// emulator through the real SDK; these pin the wire details on their own.
type call struct {
	action, version, region string
	body                    string
	secretID, secretKey     string // the key signs; "" sends no Authorization
	ts                      time.Time
	method                  string
}

type answer struct {
	Response map[string]json.RawMessage
}

func (c call) do(t *testing.T, url string) (int, answer) {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	if c.version == "" {
		c.version = Version
	}
	if c.region == "" {
		c.region = region
	}
	if c.ts.IsZero() {
		c.ts = time.Now()
	}
	req := httptest.NewRequest(c.method, url+"/", strings.NewReader(c.body))
	req.RequestURI = ""
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-TC-Action", c.action)
	req.Header.Set("X-TC-Version", c.version)
	req.Header.Set("X-TC-Region", c.region)
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(c.ts.Unix(), 10))
	if c.secretKey != "" {
		date := c.ts.UTC().Format("2006-01-02")
		sig := signature(c.secretKey, req, []byte(c.body), c.ts.Unix(), "content-type;host")
		req.Header.Set("Authorization", fmt.Sprintf("TC3-HMAC-SHA256 Credential=%s/%s/vpc/tc3_request, SignedHeaders=content-type;host, Signature=%s", c.secretID, date, sig))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	return resp.StatusCode, a
}

func (a answer) code() string {
	var e struct{ Code, Message string }
	_ = json.Unmarshal(a.Response["Error"], &e)
	return e.Code
}

func start(t *testing.T) (*eiptest.Cloud, *Server, string) {
	t.Helper()
	cloud := eiptest.NewCloud()
	emu := New(cloud, WithCredential(id, key), WithRegion(region))
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return cloud, emu, srv.URL
}

func TestWire(t *testing.T) {
	cloud, emu, url := start(t)
	signed := call{secretID: id, secretKey: key}
	with := func(c call, f func(*call)) call { f(&c); return c }
	for _, tc := range []struct {
		name string
		c    call
		code string // "" for success
	}{
		{"allocate", with(signed, func(c *call) {
			c.action, c.body = "AllocateAddresses", `{"AddressCount":1,"ClientToken":"t1","Tags":[{"Key":"k","Value":"v"}]}`
		}), ""},
		{"unsigned", call{action: "DescribeAddresses", body: `{}`}, "AuthFailure.InvalidAuthorization"},
		{"unknown secret ID", with(signed, func(c *call) { c.action, c.secretID = "DescribeAddresses", "AKIDother" }), "AuthFailure.SecretIdNotFound"},
		{"wrong key", with(signed, func(c *call) { c.action, c.secretKey = "DescribeAddresses", "other-key" }), "AuthFailure.SignatureFailure"},
		{"stale timestamp", with(signed, func(c *call) { c.action, c.ts = "DescribeAddresses", time.Now().Add(-10*time.Minute) }), "AuthFailure.SignatureExpire"},
		{"GET", with(signed, func(c *call) { c.action, c.method = "DescribeAddresses", http.MethodGet }), "UnsupportedProtocol"},
		{"unknown action", with(signed, func(c *call) { c.action = "RunInstances" }), "InvalidAction"},
		{"other version", with(signed, func(c *call) { c.action, c.version = "DescribeAddresses", "2019-07-19" }), "NoSuchVersion"},
		{"other region", with(signed, func(c *call) { c.action, c.region = "DescribeAddresses", "ap-beijing" }), "UnsupportedRegion"},
		{"unknown parameter", with(signed, func(c *call) { c.action, c.body = "DescribeAddresses", `{"Bogus":1}` }), "UnknownParameter"},
		{"unknown filter", with(signed, func(c *call) {
			c.action, c.body = "DescribeAddresses", `{"Filters":[{"Name":"color","Values":["red"]}]}`
		}), "InvalidParameter.InvalidFilter"},
		{"limit over 100", with(signed, func(c *call) { c.action, c.body = "DescribeAddresses", `{"Limit":101}` }), "InvalidParameterValue.Range"},
		{"associate to an instance", with(signed, func(c *call) {
			c.action, c.body = "AssociateAddress", `{"AddressId":"eip-000001","InstanceId":"ins-1"}`
		}), "UnsupportedOperation"},
		{"associate a missing EIP", with(signed, func(c *call) {
			c.action, c.body = "AssociateAddress", `{"AddressId":"eip-x","NetworkInterfaceId":"eni-1","PrivateIpAddress":"10.0.0.1"}`
		}), "InvalidAddressId.NotFound"},
		{"release a missing EIP", with(signed, func(c *call) { c.action, c.body = "ReleaseAddresses", `{"AddressIds":["eip-x"]}` }), "InvalidAddressId.NotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, a := tc.c.do(t, url)
			if status != http.StatusOK {
				t.Fatalf("HTTP %d; the API answers 200, errors included", status)
			}
			if got := a.code(); got != tc.code {
				t.Fatalf("code %q, want %q (%s)", got, tc.code, a.Response["Error"])
			}
			var rid string
			if err := json.Unmarshal(a.Response["RequestId"], &rid); err != nil || len(rid) != 36 {
				t.Fatalf("RequestId %s", a.Response["RequestId"])
			}
		})
	}
	if got := emu.LastRequest("AllocateAddresses")["ClientToken"]; got != "t1" {
		t.Fatalf("last AllocateAddresses token %v", got)
	}
	if snap := cloud.Snapshot(); len(snap) != 1 || snap[0].Tags["k"] != "v" {
		t.Fatalf("cloud after the calls: %+v", snap)
	}
}

func TestDescribeShapeAndPaging(t *testing.T) {
	cloud, _, url := start(t)
	ctx := context.Background()
	for i := range 3 {
		if _, err := cloud.Allocate(ctx, eip.AllocateRequest{Tags: map[string]string{"n": strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	cloud.Place("eni-1", "10.0.0.1")
	if err := cloud.Associate(ctx, "eip-000002", "eni-1", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	_, a := call{action: "DescribeAddresses", body: `{"Offset":1,"Limit":1}`, secretID: id, secretKey: key}.do(t, url)
	var out struct {
		TotalCount int
		AddressSet []struct {
			AddressId, AddressIp, AddressStatus, NetworkInterfaceId, PrivateAddressIp string
			TagSet                                                                    []struct{ Key, Value string }
		}
	}
	raw, _ := json.Marshal(a.Response)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	if out.TotalCount != 3 || len(out.AddressSet) != 1 {
		t.Fatalf("page: %s", raw)
	}
	got := out.AddressSet[0]
	if got.AddressId != "eip-000002" || got.AddressStatus != "BIND" || got.NetworkInterfaceId != "eni-1" ||
		got.PrivateAddressIp != "10.0.0.1" || got.AddressIp == "" || len(got.TagSet) != 1 || got.TagSet[0].Key != "n" {
		t.Fatalf("address: %s", raw)
	}
	_, a = call{action: "DescribeAddresses", body: `{"Filters":[{"Name":"address-status","Values":["UNBIND"]},{"Name":"tag:n","Values":["0","2"]}]}`, secretID: id, secretKey: key}.do(t, url)
	raw, _ = json.Marshal(a.Response)
	if err := json.Unmarshal(raw, &out); err != nil || out.TotalCount != 2 {
		t.Fatalf("filtered: %s, %v", raw, err)
	}
}

func TestDescribeNetworkInterfaces(t *testing.T) {
	cloud, _, url := start(t)
	cloud.Place("eni-7", "10.0.7.7")
	_, a := call{action: "DescribeNetworkInterfaces", secretID: id, secretKey: key,
		body: `{"Filters":[{"Name":"address-ip","Values":["10.0.7.7"]},{"Name":"ip-exact-match","Values":["TRUE"]}]}`}.do(t, url)
	raw, _ := json.Marshal(a.Response)
	if !strings.Contains(string(raw), `"NetworkInterfaceId":"eni-7"`) || !strings.Contains(string(raw), `"PrivateIpAddress":"10.0.7.7"`) || !strings.Contains(string(raw), `"TotalCount":1`) {
		t.Fatalf("answer %s", raw)
	}
	_, a = call{action: "DescribeNetworkInterfaces", secretID: id, secretKey: key,
		body: `{"Filters":[{"Name":"address-ip","Values":["10.0.7.8"]}]}`}.do(t, url)
	raw, _ = json.Marshal(a.Response)
	if !strings.Contains(string(raw), `"TotalCount":0`) || a.code() != "" {
		t.Fatalf("answer for an IP nobody carries %s", raw)
	}
}

func TestTranslate(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{eip.ErrThrottled, "RequestLimitExceeded"},
		{eip.ErrForbidden, "UnauthorizedOperation"},
		{eip.ErrQuotaExceeded, "AddressQuotaLimitExceeded"},
		{eip.ErrNotFound, "InvalidAddressId.NotFound"},
		{eip.ErrAssociated, "InvalidAddressIdStatus.NotPermit"},
		{eip.ErrInvalidTarget, "InvalidNetworkInterfaceId.NotFound"},
		{eip.ErrTransient, "InternalError"},
		{errors.New("boom"), "InternalError"},
	} {
		if got := translate("Op", fmt.Errorf("op: %w", tc.err)); got.code != tc.code {
			t.Errorf("translate(%v) = %s, want %s", tc.err, got.code, tc.code)
		}
	}
}
