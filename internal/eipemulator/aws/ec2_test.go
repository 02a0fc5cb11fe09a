package aws

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

// A well-formed SigV4 header; without a secret in Options the emulator does not
// recompute the signature.
const (
	testAuth = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261123/us-east-1/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=00"
	testDate = "20261123T080000Z"
)

// call posts form to h with the given Authorization header and returns status and body.
func call(t *testing.T, h http.Handler, auth string, form url.Values) (int, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		r.Header.Set("Authorization", auth)
		r.Header.Set("X-Amz-Date", testDate)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body, err := io.ReadAll(w.Result().Body)
	if err != nil {
		t.Fatal(err)
	}
	if w.Header().Get("X-Amzn-Requestid") == "" {
		t.Errorf("answer without X-Amzn-Requestid")
	}
	return w.Code, string(body)
}

func form(action string, kv ...string) url.Values {
	v := url.Values{"Action": {action}, "Version": {APIVersion}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestErrorsOnTheWire(t *testing.T) {
	strict := NewServer(eiptest.NewCloud(), Options{AccessKeyID: "AKIDTEST", Region: "us-east-1"})
	tests := []struct {
		name       string
		auth       string
		form       url.Values
		wantStatus int
		wantCode   string
	}{
		{"unsigned", "", form("DescribeAddresses"), 401, "MissingAuthenticationToken"},
		{"not SigV4", "AWS AKIDTEST:abc", form("DescribeAddresses"), 400, "IncompleteSignature"},
		{"other service", strings.Replace(testAuth, "/ec2/", "/s3/", 1), form("DescribeAddresses"), 401, "AuthFailure"},
		{"other region", strings.Replace(testAuth, "us-east-1", "eu-west-1", 1), form("DescribeAddresses"), 401, "AuthFailure"},
		{"other key", strings.Replace(testAuth, "AKIDTEST", "AKIDOTHER", 1), form("DescribeAddresses"), 401, "AuthFailure"},
		{"no action", testAuth, url.Values{"Version": {APIVersion}}, 400, "MissingAction"},
		{"old version", testAuth, url.Values{"Action": {"DescribeAddresses"}, "Version": {"2014-10-01"}}, 400, "NoSuchVersion"},
		{"unknown action", testAuth, form("RunInstances"), 400, "InvalidAction"},
		{"associate without an interface", testAuth, form("AssociateAddress", "AllocationId", "eip-1"), 400, "MissingParameter"},
		{"associate a missing EIP", testAuth, form("AssociateAddress", "AllocationId", "eip-1", "NetworkInterfaceId", "eni-1", "PrivateIpAddress", "10.0.0.1"), 400, "InvalidAllocationID.NotFound"},
		{"release a missing EIP", testAuth, form("ReleaseAddress", "AllocationId", "eip-1"), 400, "InvalidAllocationID.NotFound"},
		{"describe a missing EIP by ID", testAuth, form("DescribeAddresses", "AllocationId.1", "eip-1"), 400, "InvalidAllocationID.NotFound"},
		{"disassociate an unknown association", testAuth, form("DisassociateAddress", "AssociationId", "eipassoc-eip-1"), 400, "InvalidAssociationID.NotFound"},
		{"standard domain", testAuth, form("AllocateAddress", "Domain", "standard"), 400, "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, strict, tt.auth, tt.form)
			if status != tt.wantStatus || !strings.Contains(body, "<Code>"+tt.wantCode+"</Code>") {
				t.Fatalf("got %d %s, want %d %s", status, body, tt.wantStatus, tt.wantCode)
			}
			if !strings.Contains(body, "<Response><Errors><Error>") || !strings.Contains(body, "<RequestID>") {
				t.Fatalf("error body is not EC2's shape: %s", body)
			}
		})
	}
}

func TestRulesMapToEC2Codes(t *testing.T) {
	cloud := eiptest.NewCloud()
	h := New(cloud)
	status, body := call(t, h, testAuth, form("AllocateAddress", "Domain", "vpc",
		"TagSpecification.1.ResourceType", "elastic-ip", "TagSpecification.1.Tag.1.Key", "k", "TagSpecification.1.Tag.1.Value", "v"))
	if status != 200 || !strings.Contains(body, "<allocationId>eip-000001</allocationId>") || !strings.Contains(body, `xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"`) {
		t.Fatalf("AllocateAddress: %d %s", status, body)
	}
	cloud.Place("eni-1", "10.0.0.1")
	if status, body := call(t, h, testAuth, form("AssociateAddress", "AllocationId", "eip-000001", "NetworkInterfaceId", "eni-1", "PrivateIpAddress", "10.0.0.1")); status != 200 || !strings.Contains(body, "<associationId>eipassoc-eip-000001</associationId>") {
		t.Fatalf("AssociateAddress: %d %s", status, body)
	}
	status, body = call(t, h, testAuth, form("DescribeAddresses", "Filter.1.Name", "tag:k", "Filter.1.Value.1", "v"))
	for _, want := range []string{"<addressesSet><item>", "<associationId>eipassoc-eip-000001</associationId>", "<networkInterfaceId>eni-1</networkInterfaceId>",
		"<privateIpAddress>10.0.0.1</privateIpAddress>", "<tagSet><item><key>k</key><value>v</value></item></tagSet>"} {
		if status != 200 || !strings.Contains(body, want) {
			t.Fatalf("DescribeAddresses lacks %s: %d %s", want, status, body)
		}
	}
	if _, body := call(t, h, testAuth, form("DescribeAddresses", "Filter.1.Name", "tag:k", "Filter.1.Value.1", "other")); strings.Contains(body, "<item>") {
		t.Fatalf("a non-matching tag filter matched: %s", body)
	}

	tests := []struct {
		name       string
		faults     eiptest.Faults
		form       url.Values
		wantStatus int
		wantCode   string
	}{
		{"release while associated", eiptest.Faults{}, form("ReleaseAddress", "AllocationId", "eip-000001"), 400, "InvalidIPAddress.InUse"},
		{"allocate a second EIP", eiptest.Faults{}, form("AllocateAddress"), 200, ""},
		{"bound elsewhere", eiptest.Faults{}, form("AssociateAddress", "AllocationId", "eip-000002", "NetworkInterfaceId", "eni-1", "PrivateIpAddress", "10.0.0.1"), 400, "Resource.AlreadyAssociated"},
		{"IP not on the interface", eiptest.Faults{}, form("AssociateAddress", "AllocationId", "eip-000002", "NetworkInterfaceId", "eni-2", "PrivateIpAddress", "10.0.0.1"), 400, "InvalidParameterValue"},
		{"quota", eiptest.Faults{Quota: 1}, form("AllocateAddress"), 400, "AddressLimitExceeded"},
		{"throttled", eiptest.Faults{ThrottleEvery: 1}, form("DescribeAddresses"), 503, "RequestLimitExceeded"},
		{"denied", eiptest.Faults{Deny: map[string]bool{"InterfaceOf": true}}, form("DescribeNetworkInterfaces", "Filter.1.Name", "addresses.private-ip-address", "Filter.1.Value.1", "10.0.0.1"), 403, "UnauthorizedOperation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cloud.SetFaults(tt.faults)
			defer cloud.SetFaults(eiptest.Faults{})
			status, body := call(t, h, testAuth, tt.form)
			if status != tt.wantStatus || tt.wantCode != "" && !strings.Contains(body, "<Code>"+tt.wantCode+"</Code>") {
				t.Fatalf("got %d %s, want %d %s", status, body, tt.wantStatus, tt.wantCode)
			}
		})
	}

	status, body = call(t, h, testAuth, form("DescribeNetworkInterfaces", "Filter.1.Name", "addresses.private-ip-address", "Filter.1.Value.1", "10.0.0.1"))
	if status != 200 || !strings.Contains(body, "<networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId>") {
		t.Fatalf("DescribeNetworkInterfaces: %d %s", status, body)
	}
	status, body = call(t, h, testAuth, form("DescribeNetworkInterfaces", "Filter.1.Name", "addresses.private-ip-address", "Filter.1.Value.1", "10.9.9.9"))
	if status != 200 || strings.Contains(body, "<item>") {
		t.Fatalf("DescribeNetworkInterfaces of an IP nobody carries: %d %s", status, body)
	}
	if last := New(cloud).(*Server).LastRequest("AllocateAddress"); last != nil {
		t.Fatalf("a fresh emulator remembers %v", last)
	}
}

func TestIndexedLists(t *testing.T) {
	p := url.Values{"Filter.10.Name": {"b"}, "Filter.2.Name": {"a"}, "Filter.2.Value.1": {"x"}, "Filters.1.Name": {"no"}, "Filter.x.Name": {"no"}}
	if got, want := indexed(p, "Filter"), []string{"Filter.2", "Filter.10"}; !slices.Equal(got, want) {
		t.Fatalf("indexed = %v, want %v", got, want)
	}
}

// TestSigV4Vector checks the verifier against the get-vanilla case of AWS's published
// Signature Version 4 test suite.
func TestSigV4Vector(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://example.amazonaws.com/", nil)
	r.Header.Set("X-Amz-Date", "20150830T123600Z")
	auth := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	sig, ok := parseAuthorization(auth)
	if !ok {
		t.Fatal("the test-suite header does not parse")
	}
	if !sig.verify(r, nil, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY") {
		t.Fatal("the test-suite signature does not verify")
	}
	if sig.verify(r, nil, "another secret") {
		t.Fatal("a wrong secret verifies")
	}
}
