// Package alibaba is a local emulator of the Alibaba Cloud EIP API on the wire: the RPC
// style of VPC 2016-04-28 (AllocateEipAddress, AssociateEipAddress,
// UnassociateEipAddress, ReleaseEipAddress, DescribeEipAddresses,
// AddCommonBandwidthPackageIp, RemoveCommonBandwidthPackageIp) and of ECS 2014-05-26
// (DescribeNetworkInterfaces), with JSON responses and JSON error bodies. Every rule is
// delegated to an eiptest.Cloud; this package only speaks the protocol, so the unmodified
// Alibaba SDK, pointed at it through its endpoint setting, exercises the same rules as
// every other adapter.
//
// It deliberately does not import the Alibaba SDK: it is an independent implementation
// of the wire format, written from the API reference, so a test through the SDK proves
// that the SDK and the emulator agree.
//
// Requests must be signed, with either the V3 signature the current SDK uses by default
// (Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=...,Signature=...)
// or the classic RPC signature (AccessKeyId, Signature, SignatureMethod,
// SignatureVersion, SignatureNonce, Timestamp query parameters). The access key ID must
// be the expected one; the signature itself is verified when Options.AccessKeySecret is
// set.
package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

// AccessKeyID is the access key ID New expects, for the local demo: set
// ALIBABA_CLOUD_ACCESS_KEY_ID to it (and any secret) before starting the controller.
const AccessKeyID = "LTAI5tOrbweaverEmulator"

// API versions of the two products the emulator serves.
const (
	vpcVersion = "2016-04-28"
	ecsVersion = "2014-05-26"
)

// Options configure a Server.
type Options struct {
	// AccessKeyID is the key requests must name; empty accepts any non-empty key ID.
	AccessKeyID string
	// AccessKeySecret, when set, makes the emulator verify signatures in full.
	AccessKeySecret string
	// Region is reported in responses (RegionId); cn-hangzhou when empty.
	Region string
}

// Fault is an error the emulator returns instead of serving a request, for tests of
// how an adapter classifies the cloud's error codes. A zero Status closes the
// connection without a response (a network failure).
type Fault struct {
	Status  int
	Code    string
	Message string
}

// Server is the emulator; it implements http.Handler.
type Server struct {
	cloud *eiptest.Cloud
	opts  Options

	mu     sync.Mutex
	seq    int
	last   map[string]url.Values // action -> parameters of its last request
	attrs  map[string]url.Values // allocation ID -> AllocateEipAddress parameters, echoed by Describe
	faults map[string][]Fault    // action -> faults to return, in order, one per request
}

// New returns the emulator over cloud, expecting requests signed with AccessKeyID.
func New(cloud *eiptest.Cloud) http.Handler {
	return NewServer(cloud, Options{AccessKeyID: AccessKeyID})
}

// NewServer returns the emulator over cloud with opts.
func NewServer(cloud *eiptest.Cloud, opts Options) *Server {
	if opts.Region == "" {
		opts.Region = "cn-hangzhou"
	}
	return &Server{cloud: cloud, opts: opts, last: map[string]url.Values{}, attrs: map[string]url.Values{}, faults: map[string][]Fault{}}
}

// FailNext makes the next request of action (e.g. "ReleaseEipAddress") fail with f.
// Several calls queue several faults.
func (s *Server) FailNext(action string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[action] = append(s.faults[action], f)
}

// LastRequest returns the parameters of the last request of action that passed the
// signature check (nil if there was none): for tests that check what an adapter sent.
func (s *Server) LastRequest(action string) url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.last[action])
}

// apiError is an error response: the HTTP status and the cloud's code and message.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// copy returns a fresh *apiError, so the templates below are never shared.
func (e apiError) copy() *apiError { return &e }

// The cloud's error codes the emulator returns, as documented in the VPC API reference
// (error tables of AllocateEipAddress, AssociateEipAddress, UnassociateEipAddress,
// ReleaseEipAddress) and the common OpenAPI error codes.
var (
	errNotFound    = apiError{http.StatusNotFound, "InvalidAllocationId.NotFound", "Specified allocation ID is not found."}
	errEipStatus   = apiError{http.StatusBadRequest, "IncorrectEipStatus", "Current elastic IP status does not support this operation."}
	errDuplicated  = apiError{http.StatusBadRequest, "InvalidAssociation.Duplicated", "Specified instance already is associated."}
	errQuota       = apiError{http.StatusBadRequest, "QuotaExceeded.Eip", "Elastic IP address quota exceeded."}
	errThrottled   = apiError{http.StatusBadRequest, "Throttling.User", "Request was denied due to user flow control."}
	errForbidden   = apiError{http.StatusForbidden, "Forbidden.RAM", "User not authorized to operate on the specified resource, or this API doesn't support RAM."}
	errTarget      = apiError{http.StatusBadRequest, "InvalidParams.NotFound", "instance not found"}
	errInternal    = apiError{http.StatusInternalServerError, "InternalError", "The request processing has failed due to some unknown error."}
	errUnsigned    = apiError{http.StatusBadRequest, "IncompleteSignature", "The request signature does not conform to Aliyun standards."}
	errBadKey      = apiError{http.StatusNotFound, "InvalidAccessKeyId.NotFound", "Specified access key is not found."}
	errSignature   = apiError{http.StatusBadRequest, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."}
	errNoAction    = apiError{http.StatusNotFound, "InvalidAction.NotFound", "Specified api is not found, please check your url and method."}
	errMissingArgs = apiError{http.StatusBadRequest, "MissingParameter", "A required parameter is missing."}
	errNoPackage   = apiError{http.StatusNotFound, "InvalidBandwidthPackageId.NotFound", "The specified bandwidthPackageId does not exist in our records."}
)

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	// The cloud's request IDs are upper-case UUIDs.
	return fmt.Sprintf("A1BABA00-0000-4000-8000-%012X", s.seq)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.requestID()
	params, err := requestParams(r)
	if err != nil {
		s.writeError(w, r, reqID, &apiError{http.StatusBadRequest, "InvalidParameter", err.Error()})
		return
	}
	action := firstNonEmpty(r.Header.Get("x-acs-action"), params.Get("Action"))
	version := firstNonEmpty(r.Header.Get("x-acs-version"), params.Get("Version"))
	if err := s.checkSignature(r, params); err != nil {
		s.writeError(w, r, reqID, err)
		return
	}
	s.mu.Lock()
	s.last[action] = maps.Clone(params)
	var fault *Fault
	if q := s.faults[action]; len(q) > 0 {
		fault, s.faults[action] = &q[0], q[1:]
	}
	s.mu.Unlock()
	if fault != nil {
		if fault.Status == 0 {
			hangUp(w)
			return
		}
		s.writeError(w, r, reqID, &apiError{fault.Status, fault.Code, fault.Message})
		return
	}

	var body map[string]any
	switch version + "/" + action {
	case vpcVersion + "/AllocateEipAddress":
		body, err = s.allocate(r.Context(), params)
	case vpcVersion + "/AssociateEipAddress":
		body, err = s.associate(r.Context(), params)
	case vpcVersion + "/UnassociateEipAddress":
		body, err = s.unassociate(r.Context(), params)
	case vpcVersion + "/ReleaseEipAddress":
		body, err = s.release(r.Context(), params)
	case vpcVersion + "/DescribeEipAddresses":
		body, err = s.describe(r.Context(), params)
	case vpcVersion + "/AddCommonBandwidthPackageIp":
		body, err = s.packageIP(r.Context(), params, s.cloud.JoinPackage)
	case vpcVersion + "/RemoveCommonBandwidthPackageIp":
		body, err = s.packageIP(r.Context(), params, s.cloud.LeavePackage)
	case ecsVersion + "/DescribeNetworkInterfaces":
		body, err = s.describeNetworkInterfaces(r.Context(), params)
	default:
		err = errNoAction.copy()
	}
	if err != nil {
		s.writeError(w, r, reqID, err)
		return
	}
	body["RequestId"] = reqID
	writeJSON(w, reqID, http.StatusOK, body)
}

// requestParams merges the query string and a form body: the SDK sends RPC parameters
// in the query, other clients may POST them as a form.
func requestParams(r *http.Request) (url.Values, error) {
	params := r.URL.Query()
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("parse the form body: %w", err)
		}
		for k, vs := range r.PostForm {
			params[k] = append(params[k], vs...)
		}
	}
	return params, nil
}

func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	w.WriteHeader(http.StatusBadGateway)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, reqID string, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = toAPIError(err)
	}
	writeJSON(w, reqID, ae.status, map[string]any{
		"RequestId": reqID,
		"HostId":    r.Host,
		"Code":      ae.code,
		"Message":   ae.message,
		"Recommend": "https://api.aliyun.com/troubleshoot?q=" + url.QueryEscape(ae.code) + "&product=Vpc",
	})
}

func writeJSON(w http.ResponseWriter, reqID string, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("x-acs-request-id", reqID)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// toAPIError translates the cloud's error classes to Alibaba's codes, keeping the
// cloud's own text as the message.
func toAPIError(err error) *apiError {
	pick := func(base apiError) *apiError {
		base.message = base.message + " (" + err.Error() + ")"
		return &base
	}
	switch {
	case errors.Is(err, eip.ErrThrottled):
		return pick(errThrottled)
	case errors.Is(err, eip.ErrForbidden):
		return pick(errForbidden)
	case errors.Is(err, eip.ErrQuotaExceeded):
		return pick(errQuota)
	case errors.Is(err, eiptest.ErrNoSuchPackage):
		return pick(errNoPackage)
	case errors.Is(err, eip.ErrNotFound):
		return pick(errNotFound)
	case errors.Is(err, eip.ErrInvalidTarget):
		return pick(errTarget)
	case errors.Is(err, eip.ErrAssociated):
		return pick(errEipStatus)
	default:
		return pick(errInternal)
	}
}

func (s *Server) allocate(ctx context.Context, p url.Values) (map[string]any, error) {
	req := eip.AllocateRequest{
		ClientToken:        p.Get("ClientToken"),
		InternetChargeType: p.Get("InternetChargeType"),
		InstanceChargeType: p.Get("InstanceChargeType"),
		ISP:                p.Get("ISP"),
		PublicIPPool:       p.Get("PublicIpAddressPoolId"),
		ResourceGroup:      p.Get("ResourceGroupId"),
		Name:               p.Get("Name"),
		Description:        p.Get("Description"),
		Tags:               indexedPairs(p, "Tag"),
	}
	if b := p.Get("Bandwidth"); b != "" {
		n, err := strconv.Atoi(b)
		if err != nil || n <= 0 {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameter", `Specified value of "Bandwidth" is not valid.`}
		}
		req.Bandwidth = n
	}
	a, err := s.cloud.Allocate(ctx, req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if _, ok := s.attrs[a.ID]; !ok {
		s.attrs[a.ID] = maps.Clone(p)
	}
	s.mu.Unlock()
	return map[string]any{
		"AllocationId":    a.ID,
		"EipAddress":      a.PublicIP,
		"ResourceGroupId": p.Get("ResourceGroupId"),
	}, nil
}

func (s *Server) associate(ctx context.Context, p url.Values) (map[string]any, error) {
	id, nic, ip := p.Get("AllocationId"), p.Get("InstanceId"), p.Get("PrivateIpAddress")
	if id == "" || nic == "" {
		return nil, errMissingArgs.copy()
	}
	// Only ENI targets are modelled: an EIP on a pod IP is bound to the ENI's
	// secondary private IP.
	if t := p.Get("InstanceType"); t != "NetworkInterface" {
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceType.ValueNotSupported", "The specified value of InstanceType is not supported: " + t}
	}
	if err := s.cloud.Associate(ctx, id, nic, ip); err != nil {
		// The cloud's text tells the two refusals apart: the target already has an
		// EIP (InvalidAssociation.Duplicated) or this EIP is bound (IncorrectEipStatus).
		if errors.Is(err, eip.ErrAssociated) && strings.Contains(err.Error(), "already has EIP") {
			e := errDuplicated
			e.message += " (" + err.Error() + ")"
			return nil, &e
		}
		return nil, err
	}
	return map[string]any{}, nil
}

func (s *Server) unassociate(ctx context.Context, p url.Values) (map[string]any, error) {
	id := p.Get("AllocationId")
	if id == "" {
		return nil, errMissingArgs.copy()
	}
	// The real API refuses to unassociate an EIP that is not bound, where the
	// eip.Provider contract (and so the Cloud) treats it as done. Snapshot looks without
	// counting a call, so call counts stay those of the adapter.
	a, ok := s.lookup(id)
	if !ok {
		return nil, errNotFound.copy()
	}
	if a.State != eip.InUse && a.State != eip.Associating {
		return nil, errEipStatus.copy()
	}
	if nic := p.Get("InstanceId"); nic != "" && nic != a.NetworkInterface {
		return nil, &apiError{http.StatusBadRequest, "InvalidInstanceId.NotFound", "Specified instance does not exist."}
	}
	if err := s.cloud.Disassociate(ctx, id); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

// lookup finds an EIP through Snapshot, which neither counts a call nor throttles.
func (s *Server) lookup(id string) (eip.Address, bool) {
	all := s.cloud.Snapshot()
	i := slices.IndexFunc(all, func(a eip.Address) bool { return a.ID == id })
	if i < 0 {
		return eip.Address{}, false
	}
	return all[i], true
}

func (s *Server) release(ctx context.Context, p url.Values) (map[string]any, error) {
	id := p.Get("AllocationId")
	if id == "" {
		return nil, errMissingArgs.copy()
	}
	// Releasing an unknown ID is an error on the real API, unlike eip.Provider's Release.
	if _, ok := s.lookup(id); !ok {
		return nil, errNotFound.copy()
	}
	if err := s.cloud.Release(ctx, id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.attrs, id)
	s.mu.Unlock()
	return map[string]any{}, nil
}

// packageIP is AddCommonBandwidthPackageIp or RemoveCommonBandwidthPackageIp: op is
// the cloud's JoinPackage or LeavePackage. The real calls are asynchronous (the
// package is BINDING for a while); here they take effect at once.
func (s *Server) packageIP(ctx context.Context, p url.Values, op func(ctx context.Context, pkg, id string) error) (map[string]any, error) {
	pkg, id := p.Get("BandwidthPackageId"), p.Get("IpInstanceId")
	if pkg == "" || id == "" {
		return nil, errMissingArgs.copy()
	}
	if t := p.Get("IpType"); t != "" && t != "EIP" {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameter", "The specified value of IpType is not supported: " + t}
	}
	if err := op(ctx, pkg, id); err != nil {
		if !errors.Is(err, eiptest.ErrNoSuchPackage) && !errors.Is(err, eip.ErrNotFound) && !eip.Retryable(err) && !errors.Is(err, eip.ErrForbidden) {
			// In another package, or not in this one: the EIP's state forbids it.
			e := errEipStatus
			e.message += " (" + err.Error() + ")"
			return nil, &e
		}
		return nil, err
	}
	return map[string]any{}, nil
}

func (s *Server) describe(ctx context.Context, p url.Values) (map[string]any, error) {
	f := eip.Filter{Tags: indexedPairs(p, "Tag")}
	if ids := p.Get("AllocationId"); ids != "" {
		f.IDs = strings.Split(ids, ",")
	}
	switch t, id := p.Get("AssociatedInstanceType"), p.Get("AssociatedInstanceId"); {
	case t == "NetworkInterface" && id != "":
		f.NetworkInterface = id
	case t != "" || id != "":
		f.IDs = []string{} // other instance types are never associated here
	}
	var all []eip.Address
	if f.IDs == nil || len(f.IDs) > 0 {
		var err error
		if all, err = s.cloud.Describe(ctx, f); err != nil {
			return nil, err
		}
	}
	all = slices.DeleteFunc(all, func(a eip.Address) bool {
		return p.Get("Status") != "" && string(a.State) != p.Get("Status") ||
			p.Get("EipAddress") != "" && a.PublicIP != p.Get("EipAddress")
	})
	page, size := atoiOr(p.Get("PageNumber"), 1), atoiOr(p.Get("PageSize"), 10)
	if page < 1 || size < 1 || size > 100 {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameter", "PageNumber must be at least 1 and PageSize 1 to 100."}
	}
	lo := min((page-1)*size, len(all))
	hi := min(lo+size, len(all))
	list := make([]map[string]any, 0, hi-lo)
	for _, a := range all[lo:hi] {
		list = append(list, s.eipJSON(a))
	}
	return map[string]any{
		"TotalCount":   len(all),
		"PageNumber":   page,
		"PageSize":     size,
		"EipAddresses": map[string]any{"EipAddress": list},
	}, nil
}

// eipJSON is one EipAddress of DescribeEipAddresses, field names as the API reference
// gives them.
func (s *Server) eipJSON(a eip.Address) map[string]any {
	s.mu.Lock()
	at := s.attrs[a.ID]
	s.mu.Unlock()
	tags := make([]map[string]string, 0, len(a.Tags))
	for _, k := range slices.Sorted(maps.Keys(a.Tags)) {
		tags = append(tags, map[string]string{"Key": k, "Value": a.Tags[k]})
	}
	m := map[string]any{
		"AllocationId":          a.ID,
		"IpAddress":             a.PublicIP,
		"Status":                string(a.State),
		"RegionId":              s.opts.Region,
		"Bandwidth":             firstNonEmpty(at.Get("Bandwidth"), "5"),
		"InternetChargeType":    firstNonEmpty(at.Get("InternetChargeType"), "PayByBandwidth"),
		"ChargeType":            firstNonEmpty(at.Get("InstanceChargeType"), "PostPaid"),
		"ISP":                   firstNonEmpty(at.Get("ISP"), "BGP"),
		"Name":                  at.Get("Name"),
		"Description":           at.Get("Description"),
		"ResourceGroupId":       at.Get("ResourceGroupId"),
		"PublicIpAddressPoolId": at.Get("PublicIpAddressPoolId"),
		"InstanceId":            "",
		"InstanceType":          "",
		"PrivateIpAddress":      "",
		"Tags":                  map[string]any{"Tag": tags},
	}
	if a.NetworkInterface != "" {
		m["InstanceId"], m["InstanceType"], m["PrivateIpAddress"] = a.NetworkInterface, "NetworkInterface", a.PrivateIP
		m["Mode"] = "NAT"
	}
	if a.BandwidthPackage != "" {
		m["BandwidthPackageId"], m["BandwidthPackageType"] = a.BandwidthPackage, "CommonBandwidthPackage"
	}
	return m
}

func (s *Server) describeNetworkInterfaces(ctx context.Context, p url.Values) (map[string]any, error) {
	// Only the secondary-IP filter (PrivateIpAddress.N) is modelled: the cloud knows
	// which interface carries an IP, not a list of interfaces, and the IPs it places
	// are pod IPs, i.e. secondary ones. Other queries (PrimaryIpAddress alone, no
	// filter) get an empty answer.
	byNIC := map[string][]string{}
	for _, ip := range indexedValues(p, "PrivateIpAddress") {
		nic, err := s.cloud.InterfaceOf(ctx, ip)
		if errors.Is(err, eip.ErrNotFound) {
			continue // no such ENI: the cloud answers with an empty set
		}
		if err != nil {
			return nil, err
		}
		byNIC[nic] = append(byNIC[nic], ip)
	}
	if want := indexedValues(p, "NetworkInterfaceId"); len(want) > 0 {
		maps.DeleteFunc(byNIC, func(nic string, _ []string) bool { return !slices.Contains(want, nic) })
	}
	set := make([]map[string]any, 0, len(byNIC))
	for _, nic := range slices.Sorted(maps.Keys(byNIC)) {
		ips := make([]map[string]any, 0, len(byNIC[nic]))
		for _, ip := range byNIC[nic] {
			ips = append(ips, map[string]any{"PrivateIpAddress": ip, "Primary": false})
		}
		set = append(set, map[string]any{
			"NetworkInterfaceId": nic,
			"Status":             "InUse",
			"Type":               "Secondary",
			"PrivateIpSets":      map[string]any{"PrivateIpSet": ips},
		})
	}
	return map[string]any{
		"TotalCount":           len(set),
		"PageNumber":           1,
		"PageSize":             max(len(set), 10),
		"NetworkInterfaceSets": map[string]any{"NetworkInterfaceSet": set},
	}, nil
}

// indexedPairs reads the RPC encoding of a list of key/value structs:
// Tag.1.Key=k&Tag.1.Value=v&Tag.2.Key=...
func indexedPairs(p url.Values, name string) map[string]string {
	var out map[string]string
	for i := 1; i <= 50; i++ {
		k := p.Get(fmt.Sprintf("%s.%d.Key", name, i))
		if k == "" {
			break
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = p.Get(fmt.Sprintf("%s.%d.Value", name, i))
	}
	return out
}

// indexedValues reads the RPC encoding of a list of strings: Name.1=a&Name.2=b.
func indexedValues(p url.Values, name string) []string {
	var out []string
	for i := 1; i <= 100; i++ {
		v := p.Get(fmt.Sprintf("%s.%d", name, i))
		if v == "" {
			break
		}
		out = append(out, v)
	}
	return out
}

func atoiOr(s string, def int) int {
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
