// Package tencent is the eip.Provider for Tencent Cloud VPC (API 3.0, version
// 2017-03-12), built on the official tencentcloud-sdk-go vpc/v20170312 client.
//
// Calls per method (each is one HTTP request; the adapter never retries):
//
//	Allocate      AllocateAddresses + DescribeAddresses (for the public IP)
//	Associate     AssociateAddress (+ DescribeAddresses when the API refuses on state,
//	              to tell "already bound there" from "bound elsewhere")
//	Disassociate  DisassociateAddress (+ DescribeAddresses when refused on state)
//	Release       ReleaseAddresses
//	Describe      DescribeAddresses, one per page of 100
//	InterfaceOf   DescribeNetworkInterfaces, one per page of 100
//
// docs/reference/eip-tencent.md is the user-facing description.
package tencent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	"github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	vpc "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc/v20170312"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// Name is the provider's name in pool specs.
const Name = "tencent"

// API limits: DescribeAddresses and DescribeNetworkInterfaces return at most 100 items
// per page and take at most 10 filters; ClientToken is at most 64 ASCII characters
// (vpc/v20170312 models.go, DescribeAddressesRequestParams and
// AllocateAddressesRequestParams).
const (
	maxPage        = 100
	maxFilters     = 10
	maxTokenLength = 64
	// maxPages bounds pagination so a misbehaving endpoint cannot loop us forever.
	maxPages = 1000
)

// Provider is the Tencent Cloud eip.Provider.
type Provider struct {
	client *vpc.Client
	// pageSize is the Limit of Describe* calls; tests lower it to exercise paging.
	pageSize int
}

var _ eip.Provider = (*Provider)(nil)

// New builds the provider for cfg.Region. Credentials come from the SDK's default
// chain only: TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY, then the profile file
// (TENCENTCLOUD_CREDENTIALS_FILE or ~/.tencentcloud/credentials), then the CVM
// instance role. cfg.Endpoint ("http://127.0.0.1:8080", "https://vpc.internal", or a
// bare host, taken as HTTPS) replaces vpc.tencentcloudapi.com.
//
// The SDK resolves the credential chain here, without a context: on a machine with
// neither variables nor a file, the CVM role lookup asks the metadata service.
func New(ctx context.Context, cfg eip.Config) (*Provider, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tencent: new provider: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("tencent: new provider: a region is required (e.g. ap-guangzhou)")
	}
	cpf := profile.NewClientProfile()
	// No retries in the adapter: eip.Retrying owns backoff. These are the SDK's
	// defaults today; set them so a changed default cannot double the retries.
	cpf.NetworkFailureMaxRetries = 0
	cpf.RateLimitExceededMaxRetries = 0
	cpf.UnsafeRetryOnConnectionFailure = false
	// The region breaker would redirect calls to a backup endpoint on a real cloud
	// after failures, bypassing cfg.Endpoint; keep it off.
	cpf.DisableRegionBreaker = true
	cpf.Language = "en-US"
	if cfg.Endpoint != "" {
		scheme, host, err := parseEndpoint(cfg.Endpoint)
		if err != nil {
			return nil, fmt.Errorf("tencent: new provider: %w", err)
		}
		cpf.HttpProfile.Scheme, cpf.HttpProfile.Endpoint = scheme, host
	}
	cred, err := common.DefaultProviderChain().GetCredential()
	if err != nil {
		// The chain's errors name the source (env, file, role), never the secret.
		return nil, fmt.Errorf("tencent: new provider: no credentials from the SDK chain (TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY, profile file, CVM role): %w: %w", eip.ErrForbidden, err)
	}
	client, err := vpc.NewClient(cred, cfg.Region, cpf)
	if err != nil {
		return nil, fmt.Errorf("tencent: new provider: %w", err)
	}
	// A transport of our own, not one shared through the SDK's package-level
	// DefaultHttpClient.
	var next http.RoundTripper = http.DefaultTransport
	if t, ok := next.(*http.Transport); ok {
		next = t.Clone()
	}
	client.WithHttpTransport(statusTransport{next: next})
	return &Provider{client: client, pageSize: maxPage}, nil
}

// parseEndpoint splits an endpoint into the SDK's HttpProfile.Scheme and .Endpoint:
// the SDK builds each URL as scheme + "://" + Endpoint + "/", so Endpoint must be a
// bare host[:port] and the path must be the root.
func parseEndpoint(endpoint string) (scheme, host string, err error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", "", fmt.Errorf("endpoint %q: scheme must be http or https", endpoint)
	case u.Host == "":
		return "", "", fmt.Errorf("endpoint %q: no host", endpoint)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.User != nil:
		return "", "", fmt.Errorf("endpoint %q: only scheme://host[:port] is supported (the API is served at /)", endpoint)
	}
	return strings.ToUpper(u.Scheme), u.Host, nil
}

// Name is "tencent".
func (p *Provider) Name() string { return Name }

// Allocate implements eip.Provider. Idempotency uses AllocateAddresses' own
// ClientToken parameter; a token longer than the API's 64 characters is replaced by its
// SHA-256 in hex (64 characters), so it stays stable across retries.
func (p *Provider) Allocate(ctx context.Context, req eip.AllocateRequest) (eip.Address, error) {
	in := allocateRequest(req)
	out, err := p.client.AllocateAddressesWithContext(ctx, in)
	if err != nil {
		return eip.Address{}, classify(ctx, fmt.Sprintf("AllocateAddresses (client token %q)", req.ClientToken), err)
	}
	if out.Response == nil || len(out.Response.AddressSet) != 1 || out.Response.AddressSet[0] == nil || *out.Response.AddressSet[0] == "" {
		return eip.Address{}, fmt.Errorf("tencent: AllocateAddresses (client token %q): want one address ID in the response, got %s", req.ClientToken, out.ToJsonString())
	}
	id := *out.Response.AddressSet[0]
	got, err := p.Describe(ctx, eip.Filter{IDs: []string{id}})
	if err != nil {
		return eip.Address{}, fmt.Errorf("tencent: allocated EIP %s, then: %w", id, err)
	}
	if len(got) == 0 {
		// Eventual consistency: a retry with the same token returns this EIP again.
		return eip.Address{}, fmt.Errorf("tencent: allocated EIP %s but DescribeAddresses does not show it yet: %w", id, eip.ErrTransient)
	}
	return got[0], nil
}

var _ eip.Unhonoured = (*Provider)(nil)

// Unhonoured implements eip.Unhonoured: the attributes AllocateAddresses has no
// parameter for (see allocateRequest).
func (p *Provider) Unhonoured(req eip.AllocateRequest) []string {
	return eip.SetAmong(req, eip.AttrInstanceChargeType, eip.AttrPublicIPPool, eip.AttrResourceGroup, eip.AttrDescription)
}

// allocateRequest maps the cloud-neutral request onto AllocateAddresses. Ignored, as
// the API has no such parameter: InstanceChargeType (Tencent folds prepaid billing into
// InternetChargeType), PublicIPPool, ResourceGroup and Description.
func allocateRequest(req eip.AllocateRequest) *vpc.AllocateAddressesRequest {
	in := vpc.NewAllocateAddressesRequest()
	in.AddressCount = ptr(int64(1))
	if req.ClientToken != "" {
		in.ClientToken = ptr(clientToken(req.ClientToken))
	}
	if req.Bandwidth > 0 {
		in.InternetMaxBandwidthOut = ptr(int64(req.Bandwidth))
	}
	if req.InternetChargeType != "" {
		in.InternetChargeType = ptr(req.InternetChargeType)
	}
	if req.ISP != "" {
		in.InternetServiceProvider = ptr(req.ISP)
	}
	if req.BandwidthPackage != "" {
		in.BandwidthPackageId = ptr(req.BandwidthPackage)
	}
	if req.Name != "" {
		in.AddressName = ptr(req.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(req.Tags)) {
		in.Tags = append(in.Tags, &vpc.Tag{Key: ptr(k), Value: ptr(req.Tags[k])})
	}
	return in
}

// clientToken fits a token into the API's 64 ASCII characters.
func clientToken(tok string) string {
	ascii := !strings.ContainsFunc(tok, func(r rune) bool { return r < 0x21 || r > 0x7e })
	if ascii && len(tok) <= maxTokenLength {
		return tok
	}
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Associate implements eip.Provider. The API refuses to bind an EIP that is not
// UNBIND, so on such a refusal the EIP is described to tell "already bound to this
// target" (success) from "bound elsewhere" (eip.ErrAssociated).
func (p *Provider) Associate(ctx context.Context, id, networkInterface, privateIP string) error {
	in := vpc.NewAssociateAddressRequest()
	in.AddressId, in.NetworkInterfaceId, in.PrivateIpAddress = ptr(id), ptr(networkInterface), ptr(privateIP)
	_, err := p.client.AssociateAddressWithContext(ctx, in)
	if err == nil {
		return nil
	}
	cerr := classify(ctx, fmt.Sprintf("AssociateAddress %s with %s/%s", id, networkInterface, privateIP), err)
	if !errors.Is(cerr, eip.ErrAssociated) {
		return cerr
	}
	got, status, derr := p.one(ctx, id)
	switch {
	case derr != nil:
		return errors.Join(cerr, derr)
	case status == "":
		return fmt.Errorf("%v; DescribeAddresses no longer shows it: %w", cerr, eip.ErrNotFound)
	case status == "CREATING":
		return fmt.Errorf("tencent: AssociateAddress %s: the EIP is still being created: %w: %w", id, eip.ErrTransient, unwrapSDK(err))
	case (got.State == eip.Associating || got.State == eip.InUse) &&
		got.NetworkInterface == networkInterface && got.PrivateIP == privateIP:
		return nil // already bound there
	}
	return cerr
}

// Disassociate implements eip.Provider. The API refuses to unbind an EIP that is not
// bound; that is success here, told apart by describing the EIP.
func (p *Provider) Disassociate(ctx context.Context, id string) error {
	in := vpc.NewDisassociateAddressRequest()
	in.AddressId = ptr(id)
	_, err := p.client.DisassociateAddressWithContext(ctx, in)
	if err == nil {
		return nil
	}
	cerr := classify(ctx, "DisassociateAddress "+id, err)
	if !errors.Is(cerr, eip.ErrAssociated) {
		return cerr
	}
	got, status, derr := p.one(ctx, id)
	switch {
	case derr != nil:
		return errors.Join(cerr, derr)
	case status == "":
		return fmt.Errorf("tencent: DisassociateAddress %s: DescribeAddresses no longer shows it: %w", id, eip.ErrNotFound)
	case got.State == eip.Available || got.State == eip.Unassociating:
		return nil // not bound, or already being unbound
	case got.State == eip.Associating:
		// The API refuses until the bind has finished: retry later.
		return fmt.Errorf("tencent: DisassociateAddress %s: refused while it is %s: %w: %w", id, status, eip.ErrTransient, unwrapSDK(err))
	}
	return cerr
}

// one describes a single EIP, also returning its raw AddressStatus ("" when the API
// does not show it).
func (p *Provider) one(ctx context.Context, id string) (eip.Address, string, error) {
	in := vpc.NewDescribeAddressesRequest()
	in.Filters = apiFilters(eip.Filter{IDs: []string{id}})
	resp, err := p.client.DescribeAddressesWithContext(ctx, in)
	if err != nil {
		return eip.Address{}, "", classify(ctx, "DescribeAddresses "+id, err)
	}
	if resp.Response != nil {
		for _, a := range resp.Response.AddressSet {
			if a != nil && deref(a.AddressId) == id {
				return address(a), deref(a.AddressStatus), nil
			}
		}
	}
	return eip.Address{}, "", nil
}

// Release implements eip.Provider. ReleaseAddresses reports a missing EIP as an
// error; the contract makes that success.
func (p *Provider) Release(ctx context.Context, id string) error {
	in := vpc.NewReleaseAddressesRequest()
	in.AddressIds = []*string{ptr(id)}
	_, err := p.client.ReleaseAddressesWithContext(ctx, in)
	if err == nil {
		return nil
	}
	cerr := classify(ctx, "ReleaseAddresses "+id, err)
	if errors.Is(cerr, eip.ErrNotFound) {
		return nil
	}
	return cerr
}

// Describe implements eip.Provider. Filters go to the API (address-id,
// private-ip-address, network-interface-id, tag:KEY) and are applied again here, so
// filters past the API's 10 are still honoured. EIPs being released (OFFLINING) are
// left out: to the caller they are gone.
func (p *Provider) Describe(ctx context.Context, f eip.Filter) ([]eip.Address, error) {
	filters := apiFilters(f)
	var out []eip.Address
	offset := int64(0)
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("tencent: DescribeAddresses: more than %d pages", maxPages)
		}
		in := vpc.NewDescribeAddressesRequest()
		in.Filters, in.Offset, in.Limit = filters, ptr(offset), ptr(int64(p.pageSize))
		resp, err := p.client.DescribeAddressesWithContext(ctx, in)
		if err != nil {
			return nil, classify(ctx, "DescribeAddresses", err)
		}
		if resp.Response == nil {
			return nil, errors.New("tencent: DescribeAddresses: empty response")
		}
		for _, a := range resp.Response.AddressSet {
			if a == nil || deref(a.AddressStatus) == "OFFLINING" {
				continue
			}
			if addr := address(a); matches(addr, f) {
				out = append(out, addr)
			}
		}
		offset += int64(len(resp.Response.AddressSet))
		if len(resp.Response.AddressSet) == 0 || resp.Response.TotalCount == nil || offset >= *resp.Response.TotalCount {
			break
		}
	}
	slices.SortFunc(out, func(a, b eip.Address) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// apiFilters builds DescribeAddresses filters, at most maxFilters of them; tags are
// sorted so the request is deterministic. IDs use the address-id filter rather than
// AddressIds, which fails the whole call when one ID is unknown.
func apiFilters(f eip.Filter) []*vpc.Filter {
	var out []*vpc.Filter
	add := func(name string, values ...string) {
		if len(out) < maxFilters {
			out = append(out, &vpc.Filter{Name: ptr(name), Values: ptrs(values)})
		}
	}
	if len(f.IDs) > 0 {
		add("address-id", f.IDs...)
	}
	if f.PrivateIP != "" {
		add("private-ip-address", f.PrivateIP)
	}
	if f.NetworkInterface != "" {
		add("network-interface-id", f.NetworkInterface)
	}
	for _, k := range slices.Sorted(maps.Keys(f.Tags)) {
		add("tag:"+k, f.Tags[k])
	}
	return out
}

func matches(a eip.Address, f eip.Filter) bool {
	if len(f.IDs) > 0 && !slices.Contains(f.IDs, a.ID) ||
		f.PrivateIP != "" && a.PrivateIP != f.PrivateIP ||
		f.NetworkInterface != "" && a.NetworkInterface != f.NetworkInterface {
		return false
	}
	for k, v := range f.Tags {
		if got, ok := a.Tags[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// address converts the API's Address.
func address(a *vpc.Address) eip.Address {
	out := eip.Address{
		ID:               deref(a.AddressId),
		PublicIP:         deref(a.AddressIp),
		State:            state(deref(a.AddressStatus)),
		NetworkInterface: deref(a.NetworkInterfaceId),
		PrivateIP:        deref(a.PrivateAddressIp),
	}
	for _, t := range a.TagSet {
		if t != nil && t.Key != nil {
			if out.Tags == nil {
				out.Tags = map[string]string{}
			}
			out.Tags[*t.Key] = deref(t.Value)
		}
	}
	return out
}

// state normalises AddressStatus (vpc/v20170312 models.go, Address.AddressStatus:
// CREATING, BINDING, BIND, UNBINDING, UNBIND, OFFLINING, BIND_ENI). CREATING is
// reported as Available: nothing else fits, and an Associate that comes too early is
// refused on state, which Associate reports with the API's code.
func state(s string) eip.State {
	switch s {
	case "BINDING":
		return eip.Associating
	case "BIND", "BIND_ENI":
		return eip.InUse
	case "UNBINDING":
		return eip.Unassociating
	default: // UNBIND, CREATING
		return eip.Available
	}
}

// InterfaceOf implements eip.Provider with DescribeNetworkInterfaces' address-ip
// filter. That filter matches a single IP by suffix, so ip-exact-match is set and the
// private IP sets are checked here too.
func (p *Provider) InterfaceOf(ctx context.Context, privateIP string) (string, error) {
	var offset uint64
	for page := 0; page < maxPages; page++ {
		in := vpc.NewDescribeNetworkInterfacesRequest()
		in.Filters = []*vpc.Filter{
			{Name: ptr("address-ip"), Values: ptrs([]string{privateIP})},
			// Boolean filter values are the strings TRUE/FALSE (models.go, Filter.Values).
			{Name: ptr("ip-exact-match"), Values: ptrs([]string{"TRUE"})},
		}
		in.Offset, in.Limit = ptr(offset), ptr(uint64(p.pageSize))
		resp, err := p.client.DescribeNetworkInterfacesWithContext(ctx, in)
		if err != nil {
			cerr := classify(ctx, "DescribeNetworkInterfaces address-ip="+privateIP, err)
			if errors.Is(cerr, eip.ErrNotFound) {
				return "", fmt.Errorf("tencent: no network interface carries %s: %w", privateIP, cerr)
			}
			return "", cerr
		}
		if resp.Response == nil {
			return "", errors.New("tencent: DescribeNetworkInterfaces: empty response")
		}
		for _, nic := range resp.Response.NetworkInterfaceSet {
			if nic == nil {
				continue
			}
			for _, ip := range nic.PrivateIpAddressSet {
				if ip != nil && deref(ip.PrivateIpAddress) == privateIP && deref(nic.NetworkInterfaceId) != "" {
					return *nic.NetworkInterfaceId, nil
				}
			}
		}
		offset += uint64(len(resp.Response.NetworkInterfaceSet))
		if len(resp.Response.NetworkInterfaceSet) == 0 || resp.Response.TotalCount == nil || offset >= *resp.Response.TotalCount {
			return "", fmt.Errorf("tencent: no network interface carries %s: %w", privateIP, eip.ErrNotFound)
		}
	}
	return "", fmt.Errorf("tencent: DescribeNetworkInterfaces address-ip=%s: more than %d pages", privateIP, maxPages)
}

func ptr[T any](v T) *T { return &v }

func ptrs(vs []string) []*string {
	out := make([]*string, len(vs))
	for i := range vs {
		out[i] = &vs[i]
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
