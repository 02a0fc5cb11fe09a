// Package tencent emulates the Tencent Cloud VPC API 3.0 (version 2017-03-12) EIP
// actions over an eiptest.Cloud, on the wire the official SDK speaks: a POST of a JSON
// body to "/", the action in X-TC-Action, the version in X-TC-Version, the region in
// X-TC-Region, a TC3-HMAC-SHA256 Authorization header, and HTTP 200 answers of
// {"Response": {..., "RequestId": "..."}}, errors included as
// {"Response": {"Error": {"Code": "...", "Message": "..."}, "RequestId": "..."}}.
//
// Every rule is the Cloud's. Where the real API reports an error for what the eip
// contract treats as a no-op, the emulator reports it as the API does, so adapters
// are tested on their handling of it:
//   - AssociateAddress of an EIP that is not UNBIND, even to the target it is already
//     bound to: InvalidAddressIdStatus.NotPermit;
//   - DisassociateAddress of an unbound EIP: UnsupportedOperation.AddressStatusNotPermit;
//   - ReleaseAddresses of an unknown EIP: InvalidAddressId.NotFound.
//
// It does not import the SDK: it is an independent reading of the protocol. It is a
// plain http.Handler; tests and the local demo serve it on 127.0.0.1.
package tencent

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

// Version is the VPC API version the emulator speaks.
const Version = "2017-03-12"

// service is the product name in the credential scope and the signature.
const service = "vpc"

// maxBody bounds a request body (the API takes up to 10 MB with TC3 signing).
const maxBody = 10 << 20

// Server is the emulator. Its zero value is not usable; call New.
type Server struct {
	cloud *eiptest.Cloud
	opts  options

	mu   sync.Mutex
	last map[string]map[string]any // action -> last request body
	seq  uint64
}

type options struct {
	secretID, secretKey string
	region              string
	now                 func() time.Time
}

// Option configures New.
type Option func(*options)

// WithCredential sets the one SecretId the emulator accepts (AuthFailure.SecretIdNotFound
// for others) and, when secretKey is not empty, verifies each request's TC3 signature
// with it (AuthFailure.SignatureFailure on a mismatch). Without it any SecretId passes,
// but the signature must still be present and well formed.
func WithCredential(secretID, secretKey string) Option {
	return func(o *options) { o.secretID, o.secretKey = secretID, secretKey }
}

// WithRegion makes requests for any other region fail with UnsupportedRegion.
func WithRegion(region string) Option {
	return func(o *options) { o.region = region }
}

// WithClock sets the clock that signature timestamps are checked against.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// New returns the emulator over cloud.
func New(cloud *eiptest.Cloud, opts ...Option) *Server {
	s := &Server{cloud: cloud, opts: options{now: time.Now}, last: map[string]map[string]any{}}
	for _, o := range opts {
		o(&s.opts)
	}
	return s
}

// LastRequest returns the body of the last request for action (nil if none), decoded
// from JSON: for tests that check what an adapter sent.
func (s *Server) LastRequest(action string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.last[action])
}

// apiError is an error answer: the API's code and message.
type apiError struct{ code, msg string }

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func fail(code, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.requestID()
	body, aerr := s.admit(r)
	if aerr == nil {
		action := r.Header.Get("X-TC-Action")
		var out map[string]any
		out, aerr = s.dispatch(r.Context(), action, body)
		if aerr == nil {
			out["RequestId"] = reqID
			writeJSON(w, map[string]any{"Response": out})
			return
		}
	}
	writeJSON(w, map[string]any{"Response": map[string]any{
		"Error":     map[string]string{"Code": aerr.code, "Message": aerr.msg},
		"RequestId": reqID,
	}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	// The API answers 200 for errors too; the code is in the body.
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// requestID makes a UUID-shaped request ID, like the API's.
func (s *Server) requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s.mu.Lock()
	s.seq++
	seq := s.seq
	s.mu.Unlock()
	return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", uint32(seq), b[4:6], b[6:8], b[8:10], b[10:])
}

// admit checks the transport, the common headers and the signature, and reads the body.
func (s *Server) admit(r *http.Request) ([]byte, *apiError) {
	if r.Method != http.MethodPost {
		return nil, fail("UnsupportedProtocol", "the emulator accepts only POST with a JSON body, not %s", r.Method)
	}
	if r.URL.Path != "/" {
		return nil, fail("InvalidAction", "the API is served at /, not %q", r.URL.Path)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fail("InvalidParameter", "read body: %v", err)
	}
	if len(body) > maxBody {
		return nil, fail("RequestSizeLimitExceeded", "body over %d bytes", maxBody)
	}
	if err := s.checkSignature(r, body); err != nil {
		return nil, err
	}
	switch {
	case r.Header.Get("X-TC-Action") == "":
		return nil, fail("MissingParameter", "the X-TC-Action header is missing")
	case r.Header.Get("X-TC-Version") != Version:
		return nil, fail("NoSuchVersion", "version %q of the vpc API is not supported; want %s", r.Header.Get("X-TC-Version"), Version)
	case r.Header.Get("X-TC-Region") == "":
		return nil, fail("MissingParameter", "the X-TC-Region header is missing")
	case s.opts.region != "" && r.Header.Get("X-TC-Region") != s.opts.region:
		return nil, fail("UnsupportedRegion", "region %q is not served here", r.Header.Get("X-TC-Region"))
	case !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/json"):
		return nil, fail("InvalidParameter", "TC3-HMAC-SHA256 POST requests carry application/json, not %q", r.Header.Get("Content-Type"))
	}
	return body, nil
}

// checkSignature checks the Authorization header:
//
//	TC3-HMAC-SHA256 Credential=SECRETID/DATE/vpc/tc3_request, SignedHeaders=content-type;host, Signature=HEX
//
// and, with a secret key, the signature itself.
func (s *Server) checkSignature(r *http.Request, body []byte) *apiError {
	auth := r.Header.Get("Authorization")
	algo, rest, ok := strings.Cut(auth, " ")
	if !ok || algo != "TC3-HMAC-SHA256" {
		return fail("AuthFailure.InvalidAuthorization", "the Authorization header is missing or not TC3-HMAC-SHA256")
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 4 || scope[0] == "" || scope[2] != service || scope[3] != "tc3_request" || fields["SignedHeaders"] == "" || fields["Signature"] == "" {
		return fail("AuthFailure.InvalidAuthorization", "the Authorization header is malformed")
	}
	if s.opts.secretID != "" && scope[0] != s.opts.secretID {
		return fail("AuthFailure.SecretIdNotFound", "the SecretId is not found, please ensure that your SecretId is correct")
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil {
		return fail("AuthFailure.InvalidAuthorization", "the X-TC-Timestamp header is missing or not a number")
	}
	if d := s.opts.now().Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fail("AuthFailure.SignatureExpire", "the signature expired: the timestamp is %v off the server's time", d.Round(time.Second))
	}
	if date := time.Unix(ts, 0).UTC().Format("2006-01-02"); scope[1] != date {
		return fail("AuthFailure.InvalidAuthorization", "the credential date %q does not match the timestamp's %q", scope[1], date)
	}
	if s.opts.secretKey == "" {
		return nil
	}
	want := signature(s.opts.secretKey, r, body, ts, fields["SignedHeaders"])
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return fail("AuthFailure.SignatureFailure", "the provided credentials could not be validated, please check your signature is correct")
	}
	return nil
}

// signature computes the TC3-HMAC-SHA256 signature of a POST request to "/".
func signature(secretKey string, r *http.Request, body []byte, ts int64, signedHeaders string) string {
	var canonHeaders strings.Builder
	for h := range strings.SplitSeq(signedHeaders, ";") {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		canonHeaders.WriteString(h + ":" + strings.ToLower(strings.TrimSpace(v)) + "\n")
	}
	payload := sha256Hex(body)
	if r.Header.Get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD" {
		payload = sha256Hex([]byte("UNSIGNED-PAYLOAD"))
	}
	canonical := strings.Join([]string{r.Method, "/", r.URL.RawQuery, canonHeaders.String(), signedHeaders, payload}, "\n")
	date := time.Unix(ts, 0).UTC().Format("2006-01-02")
	toSign := strings.Join([]string{"TC3-HMAC-SHA256", strconv.FormatInt(ts, 10), date + "/" + service + "/tc3_request", sha256Hex([]byte(canonical))}, "\n")
	key := hmacSHA256([]byte("TC3"+secretKey), date)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "tc3_request")
	return hex.EncodeToString(hmacSHA256(key, toSign))
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// dispatch runs one action on its decoded parameters.
func (s *Server) dispatch(ctx context.Context, action string, body []byte) (map[string]any, *apiError) {
	var raw map[string]any
	if len(body) > 0 {
		if err := json.Unmarshal(body, &raw); err != nil {
			return nil, fail("InvalidParameter", "the body is not a JSON object: %v", err)
		}
	}
	s.mu.Lock()
	s.last[action] = raw
	s.mu.Unlock()
	switch action {
	case "AllocateAddresses":
		return decodeRun(ctx, body, s.allocate)
	case "AssociateAddress":
		return decodeRun(ctx, body, s.associate)
	case "DisassociateAddress":
		return decodeRun(ctx, body, s.disassociate)
	case "ReleaseAddresses":
		return decodeRun(ctx, body, s.release)
	case "DescribeAddresses":
		return decodeRun(ctx, body, s.describe)
	case "DescribeNetworkInterfaces":
		return decodeRun(ctx, body, s.describeNetworkInterfaces)
	}
	return nil, fail("InvalidAction", "the action %q does not exist (the emulator serves the EIP actions only)", action)
}

// decodeRun decodes the body strictly, as the API refuses unknown parameters.
func decodeRun[T any](ctx context.Context, body []byte, run func(context.Context, T) (map[string]any, *apiError)) (map[string]any, *apiError) {
	var in T
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return nil, fail("UnknownParameter", "%v", err)
		}
	}
	return run(ctx, in)
}

// Request bodies, field names as in the API reference.
type (
	tag struct {
		Key   *string
		Value *string
	}
	filter struct {
		Name   string
		Values []string
	}
	allocateIn struct {
		AddressCount            *int64
		InternetServiceProvider *string
		InternetChargeType      *string
		InternetMaxBandwidthOut *int64
		AddressType             *string
		Tags                    []tag
		BandwidthPackageId      *string
		AddressName             *string
		ClientToken             *string
		// Accepted, not modelled.
		AddressChargePrepaid   json.RawMessage
		AnycastZone            *string
		VipCluster             []string
		ApplicableForCLB       *bool
		DedicatedClusterId     *string
		IsDedicatedAddressPool *bool
		Egress                 *string
		AntiDDoSPackageId      *string
	}
	associateIn struct {
		AddressId           *string
		InstanceId          *string
		NetworkInterfaceId  *string
		PrivateIpAddress    *string
		EipDirectConnection *bool
		InstanceRegion      *string
	}
	disassociateIn struct {
		AddressId                *string
		ReallocateNormalPublicIp *bool
	}
	releaseIn struct {
		AddressIds []string
	}
	describeIn struct {
		AddressIds []string
		Filters    []filter
		Offset     *int64
		Limit      *int64
	}
	describeNICIn struct {
		NetworkInterfaceIds []string
		Filters             []filter
		Offset              *int64
		Limit               *int64
	}
)

// taskID returns an async task ID, as the mutating actions do.
func (s *Server) taskID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return strconv.FormatUint(s.seq, 10)
}

func (s *Server) allocate(ctx context.Context, in allocateIn) (map[string]any, *apiError) {
	if in.AddressCount != nil && *in.AddressCount != 1 {
		return nil, fail("InvalidParameterValue.Range", "the emulator allocates one EIP per call, not %d", *in.AddressCount)
	}
	if in.ClientToken != nil && len(*in.ClientToken) > 64 {
		return nil, fail("InvalidParameterValue", "ClientToken is longer than 64 characters")
	}
	req := eip.AllocateRequest{
		ClientToken:        deref(in.ClientToken),
		Bandwidth:          int(deref(in.InternetMaxBandwidthOut)),
		InternetChargeType: deref(in.InternetChargeType),
		ISP:                deref(in.InternetServiceProvider),
		BandwidthPackage:   deref(in.BandwidthPackageId),
		Name:               deref(in.AddressName),
	}
	for _, t := range in.Tags {
		if t.Key == nil || *t.Key == "" {
			return nil, fail("InvalidParameterValue.InvalidTag", "a tag has no key")
		}
		if req.Tags == nil {
			req.Tags = map[string]string{}
		}
		req.Tags[*t.Key] = deref(t.Value)
	}
	a, err := s.cloud.Allocate(ctx, req)
	if err != nil {
		return nil, translate("AllocateAddresses", err)
	}
	return map[string]any{"AddressSet": []string{a.ID}, "TaskId": s.taskID()}, nil
}

func (s *Server) associate(ctx context.Context, in associateIn) (map[string]any, *apiError) {
	id, nic, ip := deref(in.AddressId), deref(in.NetworkInterfaceId), deref(in.PrivateIpAddress)
	switch {
	case id == "":
		return nil, fail("MissingParameter", "AddressId is required")
	case in.InstanceId != nil && nic != "":
		return nil, fail("InvalidParameterConflict", "NetworkInterfaceId and InstanceId cannot be given together")
	case in.InstanceId != nil:
		return nil, fail("UnsupportedOperation", "the emulator binds EIPs to a network interface's private IP only")
	case nic == "":
		return nil, fail("InvalidParameterValue.MissingAssociateEntity", "give NetworkInterfaceId and PrivateIpAddress")
	case ip == "":
		return nil, fail("MissingParameter", "PrivateIpAddress is required with NetworkInterfaceId")
	}
	before, found := s.peek(id)
	err := s.cloud.Associate(ctx, id, nic, ip)
	if err == nil && found && before.State != eip.Available {
		// Bound to this very target already: the API still refuses (binds start from UNBIND).
		return nil, fail("InvalidAddressIdStatus.NotPermit", "the EIP %s is %s, only an UNBIND EIP can be bound", id, status(before.State))
	}
	if err != nil {
		if errors.Is(err, eip.ErrAssociated) {
			if after, ok := s.peek(id); ok && after.State == eip.Available {
				return nil, fail("InvalidPrivateIpAddress.AlreadyBindEip", "%v", err)
			}
			return nil, fail("InvalidAddressIdStatus.NotPermit", "%v", err)
		}
		return nil, translate("AssociateAddress", err)
	}
	return map[string]any{"TaskId": s.taskID()}, nil
}

func (s *Server) disassociate(ctx context.Context, in disassociateIn) (map[string]any, *apiError) {
	id := deref(in.AddressId)
	if id == "" {
		return nil, fail("MissingParameter", "AddressId is required")
	}
	before, found := s.peek(id)
	if err := s.cloud.Disassociate(ctx, id); err != nil {
		return nil, translate("DisassociateAddress", err)
	}
	if found && (before.State == eip.Available || before.State == eip.Unassociating) {
		return nil, fail("UnsupportedOperation.AddressStatusNotPermit", "the EIP %s is %s and cannot be unbound", id, status(before.State))
	}
	return map[string]any{"TaskId": s.taskID()}, nil
}

func (s *Server) release(ctx context.Context, in releaseIn) (map[string]any, *apiError) {
	if len(in.AddressIds) == 0 {
		return nil, fail("MissingParameter", "AddressIds is required")
	}
	for _, id := range in.AddressIds {
		_, found := s.peek(id)
		if err := s.cloud.Release(ctx, id); err != nil {
			if errors.Is(err, eip.ErrAssociated) {
				return nil, fail("UnsupportedOperation.AddressStatusNotPermit", "%v; only an UNBIND EIP can be released", err)
			}
			return nil, translate("ReleaseAddresses", err)
		}
		if !found {
			return nil, fail("InvalidAddressId.NotFound", "the EIP %s does not exist", id)
		}
	}
	return map[string]any{"TaskId": s.taskID()}, nil
}

// peek reads an EIP without counting a cloud call, to give the API's answer where
// it differs from the eip contract.
func (s *Server) peek(id string) (eip.Address, bool) {
	for _, a := range s.cloud.Snapshot() {
		if a.ID == id {
			return a, true
		}
	}
	return eip.Address{}, false
}

func (s *Server) describe(ctx context.Context, in describeIn) (map[string]any, *apiError) {
	if len(in.Filters) > 10 {
		return nil, fail("LimitExceeded.NumberOfFilters", "at most 10 filters, got %d", len(in.Filters))
	}
	offset, limit, aerr := page(in.Offset, in.Limit)
	if aerr != nil {
		return nil, aerr
	}
	// What the Cloud's Filter can express goes to it; the rest is applied here.
	f := eip.Filter{IDs: in.AddressIds}
	var rest []func(eip.Address) bool
	for _, fl := range in.Filters {
		if len(fl.Values) == 0 {
			return nil, fail("InvalidParameter.InvalidFilter", "the filter %q has no values", fl.Name)
		}
		one := len(fl.Values) == 1
		switch name := fl.Name; {
		case name == "address-id":
			if len(in.AddressIds) > 0 {
				return nil, fail("InvalidParameter", "AddressIds and the address-id filter cannot be given together")
			}
			f.IDs = fl.Values
		case name == "private-ip-address" && one:
			f.PrivateIP = fl.Values[0]
		case name == "network-interface-id" && one:
			f.NetworkInterface = fl.Values[0]
		case strings.HasPrefix(name, "tag:") && one:
			if f.Tags == nil {
				f.Tags = map[string]string{}
			}
			f.Tags[strings.TrimPrefix(name, "tag:")] = fl.Values[0]
		case name == "private-ip-address":
			rest = append(rest, func(a eip.Address) bool { return slices.Contains(fl.Values, a.PrivateIP) })
		case name == "network-interface-id":
			rest = append(rest, func(a eip.Address) bool { return slices.Contains(fl.Values, a.NetworkInterface) })
		case strings.HasPrefix(name, "tag:"):
			k := strings.TrimPrefix(name, "tag:")
			rest = append(rest, func(a eip.Address) bool { v, ok := a.Tags[k]; return ok && slices.Contains(fl.Values, v) })
		case name == "tag-key":
			rest = append(rest, func(a eip.Address) bool {
				return slices.ContainsFunc(fl.Values, func(k string) bool { _, ok := a.Tags[k]; return ok })
			})
		case name == "address-status":
			rest = append(rest, func(a eip.Address) bool { return slices.Contains(fl.Values, status(a.State)) })
		case name == "address-ip":
			rest = append(rest, func(a eip.Address) bool { return slices.Contains(fl.Values, a.PublicIP) })
		default:
			return nil, fail("InvalidParameter.InvalidFilter", "the filter %q is not supported", fl.Name)
		}
	}
	all, err := s.cloud.Describe(ctx, f)
	if err != nil {
		return nil, translate("DescribeAddresses", err)
	}
	var matched []map[string]any
	for _, a := range all {
		if !slices.ContainsFunc(rest, func(keep func(eip.Address) bool) bool { return !keep(a) }) {
			matched = append(matched, addressJSON(a))
		}
	}
	total := len(matched)
	matched = matched[min(offset, total):min(offset+limit, total)]
	if matched == nil {
		matched = []map[string]any{}
	}
	return map[string]any{"TotalCount": total, "AddressSet": matched}, nil
}

// page validates Offset and Limit: Limit defaults to 20, at most 100.
func page(off, lim *int64) (offset, limit int, aerr *apiError) {
	offset, limit = int(deref(off)), 20
	if lim != nil {
		limit = int(*lim)
	}
	if offset < 0 || limit < 0 || limit > 100 {
		return 0, 0, fail("InvalidParameterValue.Range", "Offset must be >= 0 and Limit within 0..100")
	}
	return offset, limit, nil
}

// addressJSON renders an Address object.
func addressJSON(a eip.Address) map[string]any {
	out := map[string]any{
		"AddressId":               a.ID,
		"AddressName":             "",
		"AddressIp":               a.PublicIP,
		"AddressStatus":           status(a.State),
		"AddressType":             "EIP",
		"InternetServiceProvider": "BGP",
		"IsArrears":               false,
		"IsBlocked":               false,
		"CascadeRelease":          false,
		"CreatedTime":             "2024-01-01T00:00:00Z",
		"TagSet":                  []map[string]string{},
	}
	if a.NetworkInterface != "" {
		out["NetworkInterfaceId"] = a.NetworkInterface
		out["PrivateAddressIp"] = a.PrivateIP
		out["InstanceType"] = "NetworkInterface"
	}
	var tags []map[string]string
	for _, k := range slices.Sorted(maps.Keys(a.Tags)) {
		tags = append(tags, map[string]string{"Key": k, "Value": a.Tags[k]})
	}
	if tags != nil {
		out["TagSet"] = tags
	}
	return out
}

// status is the API's AddressStatus of a state.
func status(s eip.State) string {
	switch s {
	case eip.Associating:
		return "BINDING"
	case eip.InUse:
		return "BIND"
	case eip.Unassociating:
		return "UNBINDING"
	}
	return "UNBIND"
}

func (s *Server) describeNetworkInterfaces(ctx context.Context, in describeNICIn) (map[string]any, *apiError) {
	if len(in.NetworkInterfaceIds) > 0 && len(in.Filters) > 0 {
		return nil, fail("InvalidParameter.Coexist", "NetworkInterfaceIds and Filters cannot be given together")
	}
	offset, limit, aerr := page(in.Offset, in.Limit)
	if aerr != nil {
		return nil, aerr
	}
	var ips []string
	for _, fl := range in.Filters {
		switch fl.Name {
		case "address-ip":
			ips = append(ips, fl.Values...)
		case "ip-exact-match":
			// The emulator always matches exactly.
		default:
			return nil, fail("InvalidParameter.FilterInvalidKey", "the emulator filters network interfaces by address-ip only, not %q", fl.Name)
		}
	}
	if len(ips) == 0 {
		return nil, fail("InvalidParameter.FilterInvalidKey", "the emulator needs the address-ip filter")
	}
	// One interface per carried IP; two IPs on one interface are listed once.
	byNIC := map[string][]string{}
	for _, ip := range ips {
		nic, err := s.cloud.InterfaceOf(ctx, ip)
		if errors.Is(err, eip.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, translate("DescribeNetworkInterfaces", err)
		}
		byNIC[nic] = append(byNIC[nic], ip)
	}
	set := []map[string]any{}
	for _, nic := range slices.Sorted(maps.Keys(byNIC)) {
		var addrs []map[string]any
		for _, ip := range byNIC[nic] {
			addrs = append(addrs, map[string]any{"PrivateIpAddress": ip, "Primary": false, "State": "AVAILABLE"})
		}
		set = append(set, map[string]any{
			"NetworkInterfaceId":    nic,
			"NetworkInterfaceState": "INUSE",
			"State":                 "AVAILABLE",
			"Primary":               false,
			"PrivateIpAddressSet":   addrs,
			"TagSet":                []any{},
		})
	}
	total := len(set)
	return map[string]any{"TotalCount": total, "NetworkInterfaceSet": set[min(offset, total):min(offset+limit, total)]}, nil
}

// translate maps the Cloud's error classes to the API's codes for an action.
func translate(action string, err error) *apiError {
	msg := err.Error()
	switch {
	case errors.Is(err, eip.ErrThrottled):
		return fail("RequestLimitExceeded", "%s", msg)
	case errors.Is(err, eip.ErrForbidden):
		return fail("UnauthorizedOperation", "%s", msg)
	case errors.Is(err, eip.ErrQuotaExceeded):
		return fail("AddressQuotaLimitExceeded", "%s", msg)
	case errors.Is(err, eip.ErrNotFound):
		return fail("InvalidAddressId.NotFound", "%s", msg)
	case errors.Is(err, eip.ErrAssociated):
		return fail("InvalidAddressIdStatus.NotPermit", "%s", msg)
	case errors.Is(err, eip.ErrInvalidTarget):
		return fail("InvalidNetworkInterfaceId.NotFound", "%s", msg)
	}
	return fail("InternalError", "%s: %s", action, msg)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
