package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	ec2emu "github.com/orbweaver-ipam/orbweaver/internal/eipemulator/aws"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

const (
	testRegion = "us-east-1"
	testKeyID  = "AKIAORBWEAVERTEST01"
	testSecret = "orbweaver-test-secret-do-not-print-0123456789"
)

// fakeCredentials points the SDK's default chain at fake environment keys only: no
// shared files, no IMDS (169.254.169.254), no endpoint or profile from the host.
func fakeCredentials(t *testing.T, keyID, secret string) {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION",
		"AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"} {
		t.Setenv(k, "") // restored after the test
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("AWS_ACCESS_KEY_ID", keyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
}

// serve starts h on 127.0.0.1 and returns an adapter pointed at it.
func serve(t *testing.T, h http.Handler) *Provider {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p, err := New(context.Background(), eip.Config{Endpoint: srv.URL, Region: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// strictEmulator is the emulator over cloud, checking key ID, region and signature.
func strictEmulator(cloud *eiptest.Cloud) *ec2emu.Server {
	return ec2emu.NewServer(cloud, ec2emu.Options{AccessKeyID: testKeyID, SecretAccessKey: testSecret, Region: testRegion})
}

func TestConformance(t *testing.T) {
	for _, delay := range []time.Duration{0, 50 * time.Millisecond} {
		t.Run(fmt.Sprintf("async delay %v", delay), func(t *testing.T) {
			fakeCredentials(t, testKeyID, testSecret)
			cloud := eiptest.NewCloud()
			cloud.AsyncDelay = delay
			p := serve(t, strictEmulator(cloud))
			eiptest.Conformance(t, p, cloud, delay)
		})
	}
}

// cannedEC2 answers action failAction with an EC2 error body and everything else with
// an empty success, so each code goes through the real SDK deserializer.
func cannedEC2(failAction string, status int, code string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		action := r.PostForm.Get("Action")
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		if action == failAction {
			w.WriteHeader(status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>canned %s message</Message></Error></Errors><RequestID>req-canned-42</RequestID></Response>`, code, code)
			return
		}
		const ns = `xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"`
		switch {
		case action == "DescribeAddresses" && failAction == "DisassociateAddress":
			fmt.Fprintf(w, `<DescribeAddressesResponse %s><requestId>r1</requestId><addressesSet><item><allocationId>eipalloc-1</allocationId><publicIp>203.0.113.9</publicIp><domain>vpc</domain><associationId>eipassoc-1</associationId><networkInterfaceId>eni-1</networkInterfaceId><privateIpAddress>10.0.0.5</privateIpAddress></item></addressesSet></DescribeAddressesResponse>`, ns)
		default:
			fmt.Fprintf(w, `<%sResponse %s><requestId>r1</requestId></%sResponse>`, action, ns, action)
		}
	}
}

func TestErrorCodesThroughTheWire(t *testing.T) {
	allocate := func(p *Provider) error { _, err := p.Allocate(context.Background(), eip.AllocateRequest{}); return err }
	associate := func(p *Provider) error {
		return p.Associate(context.Background(), "eipalloc-1", "eni-1", "10.0.0.5")
	}
	disassociate := func(p *Provider) error { return p.Disassociate(context.Background(), "eipalloc-1") }
	release := func(p *Provider) error { return p.Release(context.Background(), "eipalloc-1") }
	describe := func(p *Provider) error { _, err := p.Describe(context.Background(), eip.Filter{}); return err }
	interfaceOf := func(p *Provider) error { _, err := p.InterfaceOf(context.Background(), "10.0.0.5"); return err }
	classes := []error{eip.ErrThrottled, eip.ErrTransient, eip.ErrQuotaExceeded, eip.ErrForbidden,
		eip.ErrNotFound, eip.ErrAssociated, eip.ErrInvalidTarget}

	tests := []struct {
		name   string
		action string
		status int
		code   string
		call   func(*Provider) error
		want   error // nil with wantNil: success; nil without it: an unclassified error
		// wantNil: the adapter turns this error into success.
		wantNil bool
	}{
		{"throttled describe", "DescribeAddresses", 503, "RequestLimitExceeded", describe, eip.ErrThrottled, false},
		{"throttled allocate", "AllocateAddress", 503, "RequestLimitExceeded", allocate, eip.ErrThrottled, false},
		{"throttled interface lookup", "DescribeNetworkInterfaces", 503, "RequestLimitExceeded", interfaceOf, eip.ErrThrottled, false},
		{"internal error", "DescribeAddresses", 500, "InternalError", describe, eip.ErrTransient, false},
		{"unavailable", "ReleaseAddress", 503, "Unavailable", release, eip.ErrTransient, false},
		{"unknown 5xx code", "DescribeAddresses", 502, "SomethingNew", describe, eip.ErrTransient, false},
		{"quota", "AllocateAddress", 400, "AddressLimitExceeded", allocate, eip.ErrQuotaExceeded, false},
		{"missing permission", "AllocateAddress", 403, "UnauthorizedOperation", allocate, eip.ErrForbidden, false},
		{"bad credentials", "DescribeAddresses", 401, "AuthFailure", describe, eip.ErrForbidden, false},
		{"account blocked", "DescribeNetworkInterfaces", 400, "Blocked", interfaceOf, eip.ErrForbidden, false},
		{"disassociate forbidden", "DisassociateAddress", 403, "UnauthorizedOperation", disassociate, eip.ErrForbidden, false},
		{"associate a missing EIP", "AssociateAddress", 400, "InvalidAllocationID.NotFound", associate, eip.ErrNotFound, false},
		{"associate a malformed ID", "AssociateAddress", 400, "InvalidAllocationID.Malformed", associate, eip.ErrNotFound, false},
		{"disassociate a missing EIP", "DescribeAddresses", 400, "InvalidAllocationID.NotFound", disassociate, eip.ErrNotFound, false},
		{"EIP bound elsewhere", "AssociateAddress", 400, "Resource.AlreadyAssociated", associate, eip.ErrAssociated, false},
		{"release while bound", "ReleaseAddress", 400, "InvalidIPAddress.InUse", release, eip.ErrAssociated, false},
		{"unknown interface", "AssociateAddress", 400, "InvalidNetworkInterfaceID.NotFound", associate, eip.ErrInvalidTarget, false},
		{"IP not on the interface", "AssociateAddress", 400, "InvalidParameterValue", associate, eip.ErrInvalidTarget, false},
		{"bad allocate parameter is no target error", "AllocateAddress", 400, "InvalidParameterValue", allocate, nil, false},
		{"release of a released EIP", "ReleaseAddress", 400, "InvalidAllocationID.NotFound", release, nil, true},
		{"disassociate raced", "DisassociateAddress", 400, "InvalidAssociationID.NotFound", disassociate, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakeCredentials(t, testKeyID, testSecret)
			p := serve(t, cannedEC2(tt.action, tt.status, tt.code))
			err := tt.call(p)
			if tt.wantNil {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("got success, want an error")
			}
			for _, c := range classes {
				if errors.Is(err, c) != (c == tt.want) {
					t.Errorf("errors.Is(%v, %v) = %v", err, c, !(c == tt.want))
				}
			}
			for _, s := range []string{tt.code, "canned " + tt.code + " message", "req-canned-42"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Errorf("error %q contains the secret access key", err)
			}
		})
	}
}

func TestNetworkErrorIsTransient(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	p, err := New(context.Background(), eip.Config{Endpoint: srv.URL, Region: testRegion})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Describe(context.Background(), eip.Filter{})
	if !errors.Is(err, eip.ErrTransient) || !eip.Retryable(err) {
		t.Fatalf("connection refused: %v, want ErrTransient", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Describe(ctx, eip.Filter{}); err == nil || eip.Retryable(err) {
		t.Fatalf("cancelled call: %v, want a non-retryable error", err)
	}
}

func TestAllocateIsIdempotentByTag(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	cloud := eiptest.NewCloud()
	p := serve(t, strictEmulator(cloud))
	ctx := context.Background()

	a, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-a"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.PublicIP != b.PublicIP {
		t.Fatalf("retried Allocate: %+v then %+v, want the same EIP", a, b)
	}
	if n := cloud.CallCount("Allocate"); n != 1 {
		t.Fatalf("AllocateAddress reached the cloud %d times, want 1", n)
	}
	snap := cloud.Snapshot()
	if len(snap) != 1 || snap[0].Tags[ClientTokenTag] != "tok-a" {
		t.Fatalf("cloud holds %+v, want one EIP tagged %s=tok-a", snap, ClientTokenTag)
	}
	c, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "tok-c"})
	if err != nil || c.ID == a.ID {
		t.Fatalf("another token: %+v, %v; want a second EIP", c, err)
	}
	// Without a token every call allocates.
	d1, err1 := p.Allocate(ctx, eip.AllocateRequest{})
	d2, err2 := p.Allocate(ctx, eip.AllocateRequest{})
	if err := errors.Join(err1, err2); err != nil || d1.ID == d2.ID {
		t.Fatalf("two token-less allocations: %s, %s, %v", d1.ID, d2.ID, err)
	}
}

func TestRequestsOnTheWire(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	cloud := eiptest.NewCloud()
	emu := strictEmulator(cloud)
	p := serve(t, emu)
	ctx := context.Background()

	req := eip.AllocateRequest{
		ClientToken: "tok-wire", Bandwidth: 100, InternetChargeType: "PayByTraffic", InstanceChargeType: "PostPaid",
		ISP: "BGP", PublicIPPool: "ipv4pool-ec2-0123", BandwidthPackage: "bwp-1", ResourceGroup: "rg-1",
		Name: "pod-ip-10.0.0.5", Description: "ignored on EC2",
		Tags: map[string]string{"orbweaver.io/cluster": "c1", "orbweaver.io/pool": "p1"},
	}
	a, err := p.Allocate(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got := emu.LastRequest("AllocateAddress")
	want := url.Values{
		"Action": {"AllocateAddress"}, "Version": {"2016-11-15"}, "Domain": {"vpc"},
		"PublicIpv4Pool":                  {"ipv4pool-ec2-0123"},
		"TagSpecification.1.ResourceType": {"elastic-ip"},
		"TagSpecification.1.Tag.1.Key":    {"Name"},
		"TagSpecification.1.Tag.1.Value":  {"pod-ip-10.0.0.5"},
		"TagSpecification.1.Tag.2.Key":    {"orbweaver.io/client-token"},
		"TagSpecification.1.Tag.2.Value":  {"tok-wire"},
		"TagSpecification.1.Tag.3.Key":    {"orbweaver.io/cluster"},
		"TagSpecification.1.Tag.3.Value":  {"c1"},
		"TagSpecification.1.Tag.4.Key":    {"orbweaver.io/pool"},
		"TagSpecification.1.Tag.4.Value":  {"p1"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("AllocateAddress parameters:\n got %v\nwant %v", got, want)
	}
	wantTags := map[string]string{"Name": "pod-ip-10.0.0.5", ClientTokenTag: "tok-wire", "orbweaver.io/cluster": "c1", "orbweaver.io/pool": "p1"}
	if snap := cloud.Snapshot(); len(snap) != 1 || fmt.Sprint(snap[0].Tags) != fmt.Sprint(wantTags) {
		t.Fatalf("cloud holds %+v, want tags %v", snap, wantTags)
	}
	// The token lookup before it was a tag filter.
	if f := emu.LastRequest("DescribeAddresses"); f.Get("Filter.1.Name") != "tag:"+ClientTokenTag || f.Get("Filter.1.Value.1") != "tok-wire" {
		t.Fatalf("client-token lookup sent %v", f)
	}

	cloud.Place("eni-9", "10.0.0.5")
	if err := p.Associate(ctx, a.ID, "eni-9", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	as := emu.LastRequest("AssociateAddress")
	if as.Get("AllocationId") != a.ID || as.Get("NetworkInterfaceId") != "eni-9" || as.Get("PrivateIpAddress") != "10.0.0.5" || as.Get("AllowReassociation") != "false" {
		t.Fatalf("AssociateAddress parameters: %v", as)
	}
	ds, err := p.Describe(ctx, eip.Filter{IDs: []string{a.ID}, PrivateIP: "10.0.0.5", NetworkInterface: "eni-9", Tags: map[string]string{"orbweaver.io/pool": "p1"}})
	if err != nil || len(ds) != 1 || ds[0].State != eip.InUse || ds[0].NetworkInterface != "eni-9" || ds[0].Tags["orbweaver.io/cluster"] != "c1" {
		t.Fatalf("Describe with every filter: %+v, %v", ds, err)
	}
	f := emu.LastRequest("DescribeAddresses")
	for i, kv := range [][2]string{{"allocation-id", a.ID}, {"private-ip-address", "10.0.0.5"}, {"network-interface-id", "eni-9"}, {"tag:orbweaver.io/pool", "p1"}} {
		if f.Get(fmt.Sprintf("Filter.%d.Name", i+1)) != kv[0] || f.Get(fmt.Sprintf("Filter.%d.Value.1", i+1)) != kv[1] {
			t.Fatalf("DescribeAddresses filter %d: want %s=%s in %v", i+1, kv[0], kv[1], f)
		}
	}
	if nic, err := p.InterfaceOf(ctx, "10.0.0.5"); err != nil || nic != "eni-9" {
		t.Fatalf("InterfaceOf = %q, %v", nic, err)
	}
	if n := emu.LastRequest("DescribeNetworkInterfaces"); n.Get("Filter.1.Name") != "addresses.private-ip-address" || n.Get("Filter.1.Value.1") != "10.0.0.5" {
		t.Fatalf("DescribeNetworkInterfaces parameters: %v", n)
	}
	if err := p.Disassociate(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if d := emu.LastRequest("DisassociateAddress"); d.Get("AssociationId") == "" {
		t.Fatalf("DisassociateAddress parameters: %v", d)
	}
}

// TestCallsPerMethod pins how many EC2 calls each method makes, for the cost of a pod start.
func TestCallsPerMethod(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	cloud := eiptest.NewCloud()
	p := serve(t, strictEmulator(cloud))
	ctx := context.Background()
	cloud.Place("eni-1", "10.0.0.5")
	steps := []struct {
		name string
		run  func() error
		want int
	}{
		{"Allocate with a token", func() error { _, err := p.Allocate(ctx, eip.AllocateRequest{ClientToken: "t"}); return err }, 2},
		{"InterfaceOf", func() error { _, err := p.InterfaceOf(ctx, "10.0.0.5"); return err }, 1},
		{"Associate", func() error { return p.Associate(ctx, "eip-000001", "eni-1", "10.0.0.5") }, 2},
		{"Associate again", func() error { return p.Associate(ctx, "eip-000001", "eni-1", "10.0.0.5") }, 1},
		{"Describe", func() error { _, err := p.Describe(ctx, eip.Filter{}); return err }, 1},
		{"Disassociate", func() error { return p.Disassociate(ctx, "eip-000001") }, 2},
		{"Disassociate again", func() error { return p.Disassociate(ctx, "eip-000001") }, 1},
		{"Release", func() error { return p.Release(ctx, "eip-000001") }, 2},
	}
	for _, s := range steps {
		before := cloud.CallCount("")
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := cloud.CallCount("") - before; got != s.want {
			t.Errorf("%s made %d cloud calls, want %d", s.name, got, s.want)
		}
	}
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name          string
		keyID, secret string
		wantOK        bool
	}{
		{"right key and secret", testKeyID, testSecret, true},
		{"unknown access key ID", "AKIAOTHERKEY0000000", testSecret, false},
		{"wrong secret", testKeyID, "another-secret-0123456789", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fakeCredentials(t, tt.keyID, tt.secret)
			p := serve(t, strictEmulator(eiptest.NewCloud()))
			_, err := p.Describe(context.Background(), eip.Filter{})
			if tt.wantOK != (err == nil) {
				t.Fatalf("Describe: %v, want success %v", err, tt.wantOK)
			}
			if err != nil && (!errors.Is(err, eip.ErrForbidden) || eip.Retryable(err)) {
				t.Fatalf("Describe: %v, want ErrForbidden", err)
			}
			if err != nil && (strings.Contains(err.Error(), tt.secret) || strings.Contains(err.Error(), testSecret)) {
				t.Fatalf("error %q contains a secret access key", err)
			}
		})
	}

	t.Run("unsigned request", func(t *testing.T) {
		srv := httptest.NewServer(strictEmulator(eiptest.NewCloud()))
		defer srv.Close()
		resp, err := http.PostForm(srv.URL, url.Values{"Action": {"DescribeAddresses"}, "Version": {"2016-11-15"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "<Code>MissingAuthenticationToken</Code>") {
			t.Fatalf("unsigned request: %d %s", resp.StatusCode, body)
		}
	})
}

func TestSecretNeverInErrors(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	cloud := eiptest.NewCloud()
	p := serve(t, strictEmulator(cloud))
	ctx := context.Background()
	a, err := p.Allocate(ctx, eip.AllocateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	cloud.SetFaults(eiptest.Faults{ThrottleEvery: 1})
	_, err = p.Describe(ctx, eip.Filter{})
	errs = append(errs, err)
	cloud.SetFaults(eiptest.Faults{Deny: map[string]bool{"Allocate": true, "Release": true}})
	_, err = p.Allocate(ctx, eip.AllocateRequest{ClientToken: "x"})
	errs = append(errs, err, p.Release(ctx, a.ID))
	cloud.SetFaults(eiptest.Faults{Quota: 1})
	_, err = p.Allocate(ctx, eip.AllocateRequest{})
	errs = append(errs, err)
	cloud.SetFaults(eiptest.Faults{})
	errs = append(errs, p.Associate(ctx, "eip-missing", "eni-1", "10.0.0.1"))
	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d succeeded, want an error", i)
		}
		if strings.Contains(err.Error(), testSecret) {
			t.Fatalf("error %q contains the secret access key", err)
		}
	}
}

func TestNewNeedsARegion(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	if _, err := New(context.Background(), eip.Config{Endpoint: "http://127.0.0.1:1"}); err == nil {
		t.Fatal("New without a region succeeded")
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	p, err := New(context.Background(), eip.Config{Endpoint: "http://127.0.0.1:1"})
	if err != nil || p.Name() != "aws" {
		t.Fatalf("New with AWS_REGION: %v", err)
	}
}

func TestNewNeedsCredentials(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	_, err := New(context.Background(), eip.Config{Endpoint: "http://127.0.0.1:1", Region: testRegion})
	if !errors.Is(err, eip.ErrForbidden) {
		t.Fatalf("New without credentials: %v, want ErrForbidden", err)
	}
}

// TestNoSDKRetries: a throttled call reaches the API once, even with the SDK's retry
// settings in the environment; eip.Retrying owns backoff.
func TestNoSDKRetries(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	t.Setenv("AWS_MAX_ATTEMPTS", "5")
	t.Setenv("AWS_RETRY_MODE", "adaptive")
	var calls atomic.Int32
	canned := cannedEC2("DescribeAddresses", http.StatusServiceUnavailable, "RequestLimitExceeded")
	p := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		canned(w, r)
	}))
	if _, err := p.Describe(context.Background(), eip.Filter{}); !errors.Is(err, eip.ErrThrottled) {
		t.Fatalf("Describe: %v, want ErrThrottled", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the API saw %d requests for one throttled call, want 1", n)
	}
}

// TestReleaseChecksTheAssociationFirst: EC2 in a default VPC would disassociate and
// release a bound EIP; the adapter refuses before calling ReleaseAddress.
func TestReleaseChecksTheAssociationFirst(t *testing.T) {
	fakeCredentials(t, testKeyID, testSecret)
	cloud := eiptest.NewCloud()
	p := serve(t, strictEmulator(cloud))
	ctx := context.Background()
	a, err := p.Allocate(ctx, eip.AllocateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Associate(ctx, a.ID, "eni-1", "10.0.0.5"); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, a.ID); !errors.Is(err, eip.ErrAssociated) {
		t.Fatalf("Release of a bound EIP: %v, want ErrAssociated", err)
	}
	if n := cloud.CallCount("Release"); n != 0 {
		t.Fatalf("ReleaseAddress was called %d times for a bound EIP, want 0", n)
	}
}
