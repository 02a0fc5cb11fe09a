package alibaba

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

const (
	keyID  = "LTAI5tEmulatorTest"
	secret = "emulator-test-secret"
)

// signRPC signs params with the classic RPC signature, written here from the
// documented algorithm rather than with the emulator's own code.
func signRPC(method string, params url.Values, id, key string) url.Values {
	p := url.Values{}
	for k, v := range params {
		p[k] = v
	}
	p.Set("AccessKeyId", id)
	p.Set("SignatureMethod", "HMAC-SHA1")
	p.Set("SignatureVersion", "1.0")
	p.Set("SignatureNonce", "n-"+time.Now().Format(time.RFC3339Nano))
	p.Set("Timestamp", time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	p.Set("Format", "JSON")
	enc := strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(p.Encode())
	mac := hmac.New(sha1.New, []byte(key+"&"))
	mac.Write([]byte(method + "&%2F&" + url.QueryEscape(enc)))
	p.Set("Signature", base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return p
}

type reply struct {
	status int
	body   map[string]any
}

func call(t *testing.T, srv *httptest.Server, q url.Values) reply {
	t.Helper()
	resp, err := http.Post(srv.URL+"/?"+q.Encode(), "application/x-www-form-urlencoded", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body["RequestId"] == "" || resp.Header.Get("x-acs-request-id") != body["RequestId"] {
		t.Fatalf("request ID %v in the body, %q in the header", body["RequestId"], resp.Header.Get("x-acs-request-id"))
	}
	return reply{resp.StatusCode, body}
}

func vpcAction(action string, kv ...string) url.Values {
	q := url.Values{"Action": {action}, "Version": {vpcVersion}, "RegionId": {"cn-hangzhou"}}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

func TestWireProtocol(t *testing.T) {
	cloud := eiptest.NewCloud()
	srv := httptest.NewServer(NewServer(cloud, Options{AccessKeyID: keyID, AccessKeySecret: secret}))
	defer srv.Close()
	signed := func(q url.Values) url.Values { return signRPC(http.MethodPost, q, keyID, secret) }

	alloc := call(t, srv, signed(vpcAction("AllocateEipAddress", "ClientToken", "t1", "Bandwidth", "10", "Tag.1.Key", "k", "Tag.1.Value", "v")))
	id, _ := alloc.body["AllocationId"].(string)
	if alloc.status != http.StatusOK || id == "" || alloc.body["EipAddress"] == "" {
		t.Fatalf("allocate: %+v", alloc)
	}
	cloud.Place("eni-1", "10.0.0.5")

	for _, tc := range []struct {
		name     string
		q        url.Values
		status   int
		code     string         // error code, "" for success
		contains map[string]any // top-level fields of a success
	}{
		{"unsigned", vpcAction("DescribeEipAddresses"), 400, "IncompleteSignature", nil},
		{"another key", signRPC(http.MethodPost, vpcAction("DescribeEipAddresses"), "LTAI5tOther", secret), 404, "InvalidAccessKeyId.NotFound", nil},
		{"wrong secret", signRPC(http.MethodPost, vpcAction("DescribeEipAddresses"), keyID, "nope"), 400, "SignatureDoesNotMatch", nil},
		{"unknown action", signed(vpcAction("CreateVpc")), 404, "InvalidAction.NotFound", nil},
		{"describe", signed(vpcAction("DescribeEipAddresses", "AllocationId", id)), 200, "", map[string]any{"TotalCount": 1.0, "PageNumber": 1.0}},
		{"describe by tag", signed(vpcAction("DescribeEipAddresses", "Tag.1.Key", "k", "Tag.1.Value", "other")), 200, "", map[string]any{"TotalCount": 0.0}},
		{"bad page size", signed(vpcAction("DescribeEipAddresses", "PageSize", "500")), 400, "InvalidParameter", nil},
		{"unassociate an unbound EIP", signed(vpcAction("UnassociateEipAddress", "AllocationId", id)), 400, "IncorrectEipStatus", nil},
		{"associate with an ECS instance", signed(vpcAction("AssociateEipAddress", "AllocationId", id, "InstanceId", "i-1")), 400, "InvalidInstanceType.ValueNotSupported", nil},
		{"associate with an IP the ENI lacks", signed(vpcAction("AssociateEipAddress", "AllocationId", id, "InstanceId", "eni-1", "InstanceType", "NetworkInterface", "PrivateIpAddress", "10.0.0.6")), 400, "InvalidParams.NotFound", nil},
		{"associate a missing EIP", signed(vpcAction("AssociateEipAddress", "AllocationId", "eip-none", "InstanceId", "eni-1", "InstanceType", "NetworkInterface", "PrivateIpAddress", "10.0.0.5")), 404, "InvalidAllocationId.NotFound", nil},
		{"associate", signed(vpcAction("AssociateEipAddress", "AllocationId", id, "InstanceId", "eni-1", "InstanceType", "NetworkInterface", "PrivateIpAddress", "10.0.0.5")), 200, "", nil},
		{"release while bound", signed(vpcAction("ReleaseEipAddress", "AllocationId", id)), 400, "IncorrectEipStatus", nil},
		{"release a missing EIP", signed(vpcAction("ReleaseEipAddress", "AllocationId", "eip-none")), 404, "InvalidAllocationId.NotFound", nil},
		{"find the ENI", signed(url.Values{"Action": {"DescribeNetworkInterfaces"}, "Version": {ecsVersion}, "PrivateIpAddress.1": {"10.0.0.5"}}), 200, "", map[string]any{"TotalCount": 1.0}},
		{"no ENI carries it", signed(url.Values{"Action": {"DescribeNetworkInterfaces"}, "Version": {ecsVersion}, "PrivateIpAddress.1": {"10.0.0.99"}}), 200, "", map[string]any{"TotalCount": 0.0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := call(t, srv, tc.q)
			if got.status != tc.status || (tc.code != "" && got.body["Code"] != tc.code) {
				t.Fatalf("HTTP %d %v, want %d %s", got.status, got.body, tc.status, tc.code)
			}
			if tc.code != "" && (got.body["Message"] == "" || got.body["HostId"] == nil) {
				t.Fatalf("error body %v lacks Message or HostId", got.body)
			}
			for k, v := range tc.contains {
				if got.body[k] != v {
					t.Errorf("%s = %v, want %v", k, got.body[k], v)
				}
			}
		})
	}

	// Faults the Cloud injects come back as the cloud's codes.
	for _, tc := range []struct {
		name   string
		faults eiptest.Faults
		q      url.Values
		status int
		code   string
	}{
		{"quota", eiptest.Faults{Quota: 1}, vpcAction("AllocateEipAddress", "ClientToken", "t2"), 400, "QuotaExceeded.Eip"},
		{"throttled", eiptest.Faults{ThrottleEvery: 1}, vpcAction("DescribeEipAddresses"), 400, "Throttling.User"},
		{"denied", eiptest.Faults{Deny: map[string]bool{"Describe": true}}, vpcAction("DescribeEipAddresses"), 403, "Forbidden.RAM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cloud.SetFaults(tc.faults)
			defer cloud.SetFaults(eiptest.Faults{})
			if got := call(t, srv, signed(tc.q)); got.status != tc.status || got.body["Code"] != tc.code {
				t.Fatalf("HTTP %d %v, want %d %s", got.status, got.body, tc.status, tc.code)
			}
		})
	}
}

func TestNewExpectsTheDemoKey(t *testing.T) {
	srv := httptest.NewServer(New(eiptest.NewCloud()))
	defer srv.Close()
	if got := call(t, srv, signRPC(http.MethodPost, vpcAction("DescribeEipAddresses"), AccessKeyID, "any secret")); got.status != http.StatusOK {
		t.Fatalf("the demo key: HTTP %d %v", got.status, got.body)
	}
	if got := call(t, srv, signRPC(http.MethodPost, vpcAction("DescribeEipAddresses"), "LTAI5tOther", "any")); got.body["Code"] != "InvalidAccessKeyId.NotFound" {
		t.Fatalf("another key: HTTP %d %v", got.status, got.body)
	}
}

func TestFormBody(t *testing.T) {
	srv := httptest.NewServer(NewServer(eiptest.NewCloud(), Options{AccessKeyID: keyID, AccessKeySecret: secret}))
	defer srv.Close()
	form := signRPC(http.MethodPost, vpcAction("AllocateEipAddress", "ClientToken", "form"), keyID, secret)
	resp, err := http.PostForm(srv.URL+"/", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a form-encoded call: HTTP %d", resp.StatusCode)
	}
}
