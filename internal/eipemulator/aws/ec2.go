// Package aws is a local emulator of the Amazon EC2 Query API, as much of it as
// orbweaver's EIP adapter uses: AllocateAddress, AssociateAddress, DisassociateAddress,
// ReleaseAddress, DescribeAddresses and DescribeNetworkInterfaces. It is an independent
// implementation of the wire format (form-encoded POST with Action and Version,
// SigV4-signed; XML answers and EC2's <Response><Errors> error bodies), so the
// unmodified AWS SDK can be pointed at it. Every rule is the eiptest.Cloud's; the
// emulator only translates requests, answers and errors.
//
// EC2 has no Associating or Unassociating state: an address with an associationId is
// associated. The emulator shows an EIP the cloud holds as Associating, InUse or
// Unassociating with its association, and an Available one without.
//
// Wire references: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/Query-Requests.html,
// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html.
package aws

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
	"github.com/orbweaver-ipam/orbweaver/pkg/eip/eiptest"
)

// APIVersion is the only EC2 API version the emulator (and the SDK) speaks.
const APIVersion = "2016-11-15"

const xmlns = "http://ec2.amazonaws.com/doc/" + APIVersion + "/"

// associationPrefix turns an allocation ID into its association ID and back: the
// cloud keeps one association per EIP, so the ID can be derived instead of stored.
const associationPrefix = "eipassoc-"

// maxBody caps a request body; EC2 Query requests are small.
const maxBody = 1 << 20

// Options tune the emulator's checks.
type Options struct {
	// AccessKeyID, when set, is the only access key ID accepted in the SigV4 credential.
	AccessKeyID string
	// SecretAccessKey, when set, makes the emulator verify the SigV4 signature too.
	SecretAccessKey string
	// Region, when set, is the only region accepted in the credential scope; it is also
	// the networkBorderGroup reported for EIPs.
	Region string
}

// Server is the emulator; it implements http.Handler.
type Server struct {
	cloud *eiptest.Cloud
	opts  Options

	mu   sync.Mutex
	seq  int
	last map[string]url.Values
	pool map[string]string // allocation ID -> requested PublicIpv4Pool
}

// New returns an emulator over cloud that accepts any SigV4-signed request.
func New(cloud *eiptest.Cloud) http.Handler { return NewServer(cloud, Options{}) }

// NewServer returns an emulator over cloud with opts.
func NewServer(cloud *eiptest.Cloud, opts Options) *Server {
	return &Server{cloud: cloud, opts: opts, last: map[string]url.Values{}, pool: map[string]string{}}
}

// LastRequest returns the parameters of the last request for action (nil if none),
// for tests that check what the SDK sent.
func (s *Server) LastRequest(action string) url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.last[action]
	if v == nil {
		return nil
	}
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// apiError is an EC2 error answer.
type apiError struct {
	status  int
	code    string
	message string
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", s.seq)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.requestID()
	w.Header().Set("X-Amzn-Requestid", reqID)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeError(w, reqID, apiError{http.StatusBadRequest, "MalformedQueryString", "cannot read the request body"})
		return
	}
	if aerr := s.authenticate(r, body); aerr != nil {
		writeError(w, reqID, *aerr)
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			writeError(w, reqID, apiError{http.StatusBadRequest, "MalformedQueryString", err.Error()})
			return
		}
		for k, vs := range form {
			params[k] = append(params[k], vs...)
		}
	}
	action := params.Get("Action")
	if action == "" {
		writeError(w, reqID, apiError{http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action"})
		return
	}
	if v := params.Get("Version"); v != APIVersion {
		writeError(w, reqID, apiError{http.StatusBadRequest, "NoSuchVersion", fmt.Sprintf("The requested version (%s) of service AmazonEC2 does not exist", v)})
		return
	}
	s.mu.Lock()
	s.last[action] = params
	s.mu.Unlock()

	var resp any
	var aerr *apiError
	switch action {
	case "AllocateAddress":
		resp, aerr = s.allocate(r, params, reqID)
	case "AssociateAddress":
		resp, aerr = s.associate(r, params, reqID)
	case "DisassociateAddress":
		resp, aerr = s.disassociate(r, params, reqID)
	case "ReleaseAddress":
		resp, aerr = s.release(r, params, reqID)
	case "DescribeAddresses":
		resp, aerr = s.describeAddresses(r, params, reqID)
	case "DescribeNetworkInterfaces":
		resp, aerr = s.describeNetworkInterfaces(r, params, reqID)
	default:
		aerr = &apiError{http.StatusBadRequest, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service.", action)}
	}
	if aerr != nil {
		writeError(w, reqID, *aerr)
		return
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(resp); err != nil {
		writeError(w, reqID, apiError{http.StatusInternalServerError, "InternalError", "encode response: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// authenticate checks the SigV4 Authorization header: present, well formed, for the
// ec2 service, with the expected access key ID and region, and (with a secret) a
// correct signature.
func (s *Server) authenticate(r *http.Request, body []byte) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return &apiError{http.StatusUnauthorized, "MissingAuthenticationToken", "The request must contain a valid (registered) AWS access key ID or X.509 certificate."}
	}
	sig, ok := parseAuthorization(h)
	if !ok || r.Header.Get("X-Amz-Date") == "" {
		return &apiError{http.StatusBadRequest, "IncompleteSignature", "The request signature does not conform to AWS standards."}
	}
	if sig.cred.service != "ec2" || s.opts.Region != "" && sig.cred.region != s.opts.Region {
		return &apiError{http.StatusUnauthorized, "AuthFailure", fmt.Sprintf("Credential should be scoped to a valid region and the ec2 service, not %s/%s.", sig.cred.region, sig.cred.service)}
	}
	if s.opts.AccessKeyID != "" && sig.cred.accessKeyID != s.opts.AccessKeyID {
		return &apiError{http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials"}
	}
	if s.opts.SecretAccessKey != "" && !sig.verify(r, body, s.opts.SecretAccessKey) {
		return &apiError{http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."}
	}
	return nil
}

func writeError(w http.ResponseWriter, reqID string, e apiError) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	_ = xml.NewEncoder(&buf).Encode(errorResponse{
		Errors:    []errorItem{{Code: e.code, Message: e.message}},
		RequestID: reqID,
	})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	_, _ = w.Write(buf.Bytes())
}

// toAPIError translates the cloud's error classes into EC2's codes and statuses for
// action. Codes: https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
// (RequestLimitExceeded answers 503, as EC2 does).
func toAPIError(action, id string, err error) *apiError {
	msg := err.Error()
	switch {
	case errors.Is(err, eip.ErrThrottled):
		return &apiError{http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded. " + msg}
	case errors.Is(err, eip.ErrForbidden):
		return &apiError{http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation. " + msg}
	case errors.Is(err, eip.ErrQuotaExceeded):
		return &apiError{http.StatusBadRequest, "AddressLimitExceeded", "The maximum number of addresses has been reached. " + msg}
	case errors.Is(err, eip.ErrNotFound) && action == "DisassociateAddress":
		return &apiError{http.StatusBadRequest, "InvalidAssociationID.NotFound", fmt.Sprintf("The association ID '%s%s' does not exist", associationPrefix, id)}
	case errors.Is(err, eip.ErrNotFound):
		return &apiError{http.StatusBadRequest, "InvalidAllocationID.NotFound", fmt.Sprintf("The allocation ID '%s' does not exist", id)}
	case errors.Is(err, eip.ErrAssociated) && action == "ReleaseAddress":
		return &apiError{http.StatusBadRequest, "InvalidIPAddress.InUse", "Address is in use. " + msg}
	case errors.Is(err, eip.ErrAssociated):
		return &apiError{http.StatusBadRequest, "Resource.AlreadyAssociated", "resource " + id + " is already associated. " + msg}
	case errors.Is(err, eip.ErrInvalidTarget):
		return &apiError{http.StatusBadRequest, "InvalidParameterValue", msg}
	default:
		return &apiError{http.StatusInternalServerError, "InternalError", "An internal error has occurred. " + msg}
	}
}

func missing(name string) *apiError {
	return &apiError{http.StatusBadRequest, "MissingParameter", fmt.Sprintf("The request must contain the parameter %s", name)}
}

func (s *Server) allocate(r *http.Request, p url.Values, reqID string) (any, *apiError) {
	if d := p.Get("Domain"); d != "" && d != "vpc" {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("Value (%s) for parameter domain is invalid.", d)}
	}
	tags := map[string]string{}
	for _, spec := range indexed(p, "TagSpecification") {
		if rt := p.Get(spec + ".ResourceType"); rt != "elastic-ip" {
			return nil, &apiError{http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("'%s' is not a valid taggable resource type for this operation.", rt)}
		}
		for _, tag := range indexed(p, spec+".Tag") {
			tags[p.Get(tag+".Key")] = p.Get(tag + ".Value")
		}
	}
	pool := p.Get("PublicIpv4Pool")
	a, err := s.cloud.Allocate(r.Context(), eip.AllocateRequest{PublicIPPool: pool, Tags: tags})
	if err != nil {
		return nil, toAPIError("AllocateAddress", "", err)
	}
	if pool == "" {
		pool = "amazon"
	}
	s.mu.Lock()
	s.pool[a.ID] = pool
	s.mu.Unlock()
	return allocateResponse{Xmlns: xmlns, RequestID: reqID, PublicIP: a.PublicIP, Domain: "vpc", AllocationID: a.ID,
		PublicIPv4Pool: pool, NetworkBorderGroup: s.opts.Region}, nil
}

func (s *Server) associate(r *http.Request, p url.Values, reqID string) (any, *apiError) {
	id, nic, ip := p.Get("AllocationId"), p.Get("NetworkInterfaceId"), p.Get("PrivateIpAddress")
	switch {
	case id == "":
		return nil, missing("AllocationId")
	case p.Get("InstanceId") != "":
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterCombination", "the emulator associates with a network interface and private IP only"}
	case nic == "":
		return nil, missing("NetworkInterfaceId")
	case ip == "":
		// EC2 would take the interface's primary IP; the cloud has no notion of one.
		return nil, missing("PrivateIpAddress")
	}
	if err := s.cloud.Associate(r.Context(), id, nic, ip); err != nil {
		return nil, toAPIError("AssociateAddress", id, err)
	}
	return associateResponse{Xmlns: xmlns, RequestID: reqID, AssociationID: associationPrefix + id}, nil
}

func (s *Server) disassociate(r *http.Request, p url.Values, reqID string) (any, *apiError) {
	assoc := p.Get("AssociationId")
	if assoc == "" {
		return nil, missing("AssociationId")
	}
	id, ok := strings.CutPrefix(assoc, associationPrefix)
	if !ok {
		return nil, &apiError{http.StatusBadRequest, "InvalidAssociationID.NotFound", fmt.Sprintf("The association ID '%s' does not exist", assoc)}
	}
	if err := s.cloud.Disassociate(r.Context(), id); err != nil {
		return nil, toAPIError("DisassociateAddress", id, err)
	}
	return returnResponse{XMLName: xml.Name{Local: "DisassociateAddressResponse"}, Xmlns: xmlns, RequestID: reqID, Return: true}, nil
}

func (s *Server) release(r *http.Request, p url.Values, reqID string) (any, *apiError) {
	id := p.Get("AllocationId")
	if id == "" {
		return nil, missing("AllocationId")
	}
	// The cloud treats a gone EIP as released; EC2 answers InvalidAllocationID.NotFound.
	if !slices.ContainsFunc(s.cloud.Snapshot(), func(a eip.Address) bool { return a.ID == id }) {
		return nil, toAPIError("ReleaseAddress", id, eip.ErrNotFound)
	}
	if err := s.cloud.Release(r.Context(), id); err != nil {
		return nil, toAPIError("ReleaseAddress", id, err)
	}
	s.mu.Lock()
	delete(s.pool, id)
	s.mu.Unlock()
	return returnResponse{XMLName: xml.Name{Local: "ReleaseAddressResponse"}, Xmlns: xmlns, RequestID: reqID, Return: true}, nil
}

// filters parses Filter.N.Name / Filter.N.Value.M: filters AND, values OR.
func filters(p url.Values) map[string][]string {
	out := map[string][]string{}
	for _, f := range indexed(p, "Filter") {
		name := p.Get(f + ".Name")
		for _, v := range indexed(p, f+".Value") {
			out[name] = append(out[name], p.Get(v))
		}
	}
	return out
}

func (s *Server) describeAddresses(r *http.Request, p url.Values, reqID string) (any, *apiError) {
	var ids []string
	for _, k := range indexed(p, "AllocationId") {
		ids = append(ids, p.Get(k))
	}
	all, err := s.cloud.Describe(r.Context(), eip.Filter{IDs: ids})
	if err != nil {
		return nil, toAPIError("DescribeAddresses", "", err)
	}
	// Listing IDs that do not exist is an error on EC2; a filter that matches nothing is not.
	for _, id := range ids {
		if !slices.ContainsFunc(all, func(a eip.Address) bool { return a.ID == id }) {
			return nil, &apiError{http.StatusBadRequest, "InvalidAllocationID.NotFound", fmt.Sprintf("The allocation ID '%s' does not exist", id)}
		}
	}
	fs := filters(p)
	resp := describeAddressesResponse{Xmlns: xmlns, RequestID: reqID}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range all {
		it := addressItem{PublicIP: a.PublicIP, AllocationID: a.ID, Domain: "vpc", PublicIPv4Pool: s.pool[a.ID], NetworkBorderGroup: s.opts.Region}
		if it.PublicIPv4Pool == "" {
			it.PublicIPv4Pool = "amazon"
		}
		if a.State != eip.Available {
			it.AssociationID, it.NetworkInterfaceID, it.PrivateIPAddress = associationPrefix+a.ID, a.NetworkInterface, a.PrivateIP
		}
		if !matches(it, a.Tags, fs) {
			continue
		}
		keys := slices.Sorted(maps.Keys(a.Tags))
		for _, k := range keys {
			it.Tags = append(it.Tags, tagItem{Key: k, Value: a.Tags[k]})
		}
		resp.Addresses = append(resp.Addresses, it)
	}
	return resp, nil
}

// matches applies DescribeAddresses filters (the names EC2 documents for it).
func matches(it addressItem, tags map[string]string, fs map[string][]string) bool {
	for name, vals := range fs {
		var got []string
		switch {
		case name == "allocation-id":
			got = []string{it.AllocationID}
		case name == "association-id":
			got = []string{it.AssociationID}
		case name == "domain":
			got = []string{it.Domain}
		case name == "network-interface-id":
			got = []string{it.NetworkInterfaceID}
		case name == "private-ip-address":
			got = []string{it.PrivateIPAddress}
		case name == "public-ip":
			got = []string{it.PublicIP}
		case name == "tag-key":
			got = slices.Collect(maps.Keys(tags))
		case strings.HasPrefix(name, "tag:"):
			v, ok := tags[strings.TrimPrefix(name, "tag:")]
			if !ok {
				return false
			}
			got = []string{v}
		default:
			return false // an unknown filter matches nothing here; EC2 would refuse it
		}
		if !slices.ContainsFunc(got, func(g string) bool { return g != "" && slices.Contains(vals, g) }) {
			return false
		}
	}
	return true
}

func (s *Server) describeNetworkInterfaces(r *http.Request, p url.Values, reqID string) (any, *apiError) {
	fs := filters(p)
	ips := append(fs["addresses.private-ip-address"], fs["private-ip-address"]...)
	if len(ips) == 0 {
		return nil, &apiError{http.StatusBadRequest, "InvalidParameterCombination", "the emulator lists network interfaces only by the addresses.private-ip-address filter"}
	}
	byNIC := map[string][]string{}
	for _, ip := range ips {
		nic, err := s.cloud.InterfaceOf(r.Context(), ip)
		if errors.Is(err, eip.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, toAPIError("DescribeNetworkInterfaces", "", err)
		}
		byNIC[nic] = append(byNIC[nic], ip)
	}
	resp := describeNetworkInterfacesResponse{Xmlns: xmlns, RequestID: reqID}
	for _, nic := range slices.Sorted(maps.Keys(byNIC)) {
		it := networkInterfaceItem{ID: nic, Status: "in-use", InterfaceType: "interface"}
		for _, ip := range byNIC[nic] {
			it.PrivateIPs = append(it.PrivateIPs, privateIPItem{Address: ip, Primary: false})
		}
		resp.Interfaces = append(resp.Interfaces, it)
	}
	return resp, nil
}

// indexed returns the prefixes "name.1", "name.2", ... present in p, in index order.
// EC2 Query lists are 1-based and need not be dense.
func indexed(p url.Values, name string) []string {
	seen := map[int]bool{}
	for k := range p {
		rest, ok := strings.CutPrefix(k, name+".")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(num); err == nil && n > 0 {
			seen[n] = true
		}
	}
	ns := slices.Collect(maps.Keys(seen))
	sort.Ints(ns)
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = name + "." + strconv.Itoa(n)
	}
	return out
}
