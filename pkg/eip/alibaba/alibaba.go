// Package alibaba is the eip.Provider for Alibaba Cloud, built on the official SDK: the
// VPC API 2016-04-28 (github.com/alibabacloud-go/vpc-20160428/v7) for EIPs and the ECS
// API 2014-05-26 (github.com/alibabacloud-go/ecs-20140526/v4) to find the network
// interface (ENI) that carries a pod's IP. docs/reference/eip-alibaba.md is the user's
// guide: configuration, RAM permissions, calls per method, error mapping.
package alibaba

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	openapiutil "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	ecs "github.com/alibabacloud-go/ecs-20140526/v4/client"
	"github.com/alibabacloud-go/tea/dara"
	vpc "github.com/alibabacloud-go/vpc-20160428/v7/client"
	"github.com/aliyun/credentials-go/credentials"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// Name is the provider's name in pool specs.
const Name = "alibaba"

// Limits of DescribeEipAddresses: at most 50 IDs per AllocationId filter, 100 per page.
const (
	idsPerCall  = 50
	pageSize    = 100
	maxPages    = 1000 // 100k EIPs: a bound on the paging loop, far above any quota
	networkType = "NetworkInterface"
	// maxIdleClients bounds the SDK clients kept between calls (one per concurrent call).
	maxIdleClients = 16
)

// Provider is the Alibaba Cloud eip.Provider. It does not retry: eip.Retrying does.
type Provider struct {
	vpcs   *clients[*vpc.Client]
	ecss   *clients[*ecs.Client]
	region string
}

var _ eip.Provider = (*Provider)(nil)

// New builds a Provider for cfg.Region. Credentials come from the SDK's default chain
// (credentials-go): the ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET
// (and ALIBABA_CLOUD_SECURITY_TOKEN) environment variables, OIDC (RRSA), the CLI's
// ~/.aliyun/config.json, ~/.alibabacloud/credentials, then the ECS instance's RAM role.
// cfg.Endpoint, when set, replaces both the VPC and the ECS endpoint.
func New(ctx context.Context, cfg eip.Config) (*Provider, error) {
	if cfg.Region == "" {
		return nil, fmt.Errorf("alibaba EIP provider: a region is required")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("alibaba EIP provider: %w", err)
	}
	chain, err := credentials.NewCredential(nil) // nil: the default chain
	if err != nil {
		return nil, fmt.Errorf("alibaba EIP provider: credentials: %w", err)
	}
	var host, scheme string
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("alibaba EIP provider: endpoint %q is not an http(s) base URL", cfg.Endpoint)
		}
		host, scheme = u.Host, u.Scheme
	}
	cred := &lockedCredential{inner: chain}
	hc := newHTTPClient()
	conf := func() *openapi.Config {
		c := &openapi.Config{
			Credential: cred,
			HttpClient: hc,
			RegionId:   dara.String(cfg.Region),
			// No retries here: eip.Retrying owns the backoff policy.
			RetryOptions: &dara.RetryOptions{Retryable: false, MaxAttempts: 1},
		}
		if host != "" {
			// The SDK takes a host and a protocol; with them set it skips its
			// region-to-endpoint map.
			c.Endpoint, c.Protocol = dara.String(host), dara.String(scheme)
		}
		return c
	}
	p := &Provider{
		region: cfg.Region,
		vpcs:   &clients[*vpc.Client]{maxIdle: maxIdleClients, build: func() (*vpc.Client, error) { return vpc.NewClient(conf()) }},
		ecss:   &clients[*ecs.Client]{maxIdle: maxIdleClients, build: func() (*ecs.Client, error) { return ecs.NewClient(conf()) }},
	}
	// Build one of each now, so a bad configuration fails here rather than on first use.
	v, err := p.vpcs.get()
	if err != nil {
		return nil, fmt.Errorf("alibaba EIP provider: VPC client for %s: %w", cfg.Region, err)
	}
	p.vpcs.put(v)
	e, err := p.ecss.get()
	if err != nil {
		return nil, fmt.Errorf("alibaba EIP provider: ECS client for %s: %w", cfg.Region, err)
	}
	p.ecss.put(e)
	return p, nil
}

// withVPC runs fn with a VPC client no other call is using.
func (p *Provider) withVPC(fn func(*vpc.Client) error) error {
	c, err := p.vpcs.get()
	if err != nil {
		return fmt.Errorf("VPC client for %s: %w", p.region, err)
	}
	defer p.vpcs.put(c)
	return fn(c)
}

// Name is "alibaba".
func (p *Provider) Name() string { return Name }

// callOptions are the per-call options: retries off for the runtimes that read
// Autoretry/MaxAttempts (older darabonba-openapi; v2.1.14 reads Config.RetryOptions,
// also off). Deadlines come from each call's context.
func callOptions() *dara.RuntimeOptions {
	return &dara.RuntimeOptions{Autoretry: dara.Bool(false), MaxAttempts: dara.Int(1)}
}

// Allocate allocates an EIP with AllocateEipAddress. Idempotency is the API's own:
// ClientToken makes a retried call return the EIP of the first one. Tags are set in the
// same call (Tag.N.Key/Value). A BandwidthPackage is joined with
// AddCommonBandwidthPackageIp once the EIP exists; a retried Allocate gets the same
// EIP and joins again, which is a no-op for an EIP already in that package.
// InstanceChargeType PrePaid is refused before any call (ErrUnsupported): a
// subscription EIP cannot be released (ReleaseEipAddress answers
// Forbidden.ChargeTypeIsPrepaid) nor join a shared bandwidth package, so it would
// outlive its pod.
func (p *Provider) Allocate(ctx context.Context, req eip.AllocateRequest) (eip.Address, error) {
	if strings.EqualFold(req.InstanceChargeType, prePaid) {
		return eip.Address{}, fmt.Errorf("allocate EIP (client token %q) in %s: instanceChargeType %s: %w: a subscription EIP cannot be released when its pod goes; use PostPaid, or buy the EIP yourself and bind it by ID",
			req.ClientToken, p.region, req.InstanceChargeType, eip.ErrUnsupported)
	}
	in := &vpc.AllocateEipAddressRequest{RegionId: dara.String(p.region)}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return dara.String(s)
	}
	in.ClientToken = opt(req.ClientToken)
	if req.Bandwidth > 0 {
		in.Bandwidth = dara.String(strconv.Itoa(req.Bandwidth))
	}
	in.InternetChargeType = opt(req.InternetChargeType)
	in.InstanceChargeType = opt(req.InstanceChargeType)
	in.ISP = opt(req.ISP)
	in.PublicIpAddressPoolId = opt(req.PublicIPPool)
	in.ResourceGroupId = opt(req.ResourceGroup)
	in.Name = opt(req.Name)
	in.Description = opt(req.Description)
	for _, k := range slices.Sorted(maps.Keys(req.Tags)) {
		in.Tag = append(in.Tag, &vpc.AllocateEipAddressRequestTag{Key: dara.String(k), Value: dara.String(req.Tags[k])})
	}
	var out *vpc.AllocateEipAddressResponse
	err := p.withVPC(func(c *vpc.Client) (err error) {
		out, err = c.AllocateEipAddressWithContext(ctx, in, callOptions())
		return err
	})
	if err != nil {
		return eip.Address{}, wrap(ctx, fmt.Sprintf("allocate EIP (client token %q) in %s", req.ClientToken, p.region), err)
	}
	if out.Body == nil || dara.StringValue(out.Body.AllocationId) == "" {
		return eip.Address{}, fmt.Errorf("allocate EIP (client token %q) in %s: %w: no AllocationId in the response", req.ClientToken, p.region, eip.ErrTransient)
	}
	// A fresh EIP is Available; one returned for a reused token may have moved on since,
	// which Describe tells.
	a := eip.Address{
		ID:       dara.StringValue(out.Body.AllocationId),
		PublicIP: dara.StringValue(out.Body.EipAddress),
		State:    eip.Available,
		Tags:     maps.Clone(req.Tags),
	}
	if req.BandwidthPackage != "" {
		if err := p.joinPackage(ctx, req.BandwidthPackage, a.ID); err != nil {
			// The EIP stays: it carries the request's tags, so the retry (same token)
			// finds it, and so does the sweep of orphans if the pod goes meanwhile.
			return eip.Address{}, err
		}
		a.BandwidthPackage = req.BandwidthPackage
	}
	return a, nil
}

// prePaid is the InstanceChargeType of subscription EIPs.
const prePaid = "PrePaid"

// joinPackage adds EIP id to the shared bandwidth package pkg with
// AddCommonBandwidthPackageIp. On a refusal, one DescribeEipAddresses tells whether the
// EIP is in pkg already (a retried Allocate), which is success.
func (p *Provider) joinPackage(ctx context.Context, pkg, id string) error {
	in := &vpc.AddCommonBandwidthPackageIpRequest{
		RegionId: dara.String(p.region), BandwidthPackageId: dara.String(pkg),
		IpInstanceId: dara.String(id), IpType: dara.String("EIP"),
	}
	err := p.withVPC(func(c *vpc.Client) error {
		_, err := c.AddCommonBandwidthPackageIpWithContext(ctx, in, callOptions())
		return err
	})
	if err == nil {
		return nil
	}
	err = wrap(ctx, fmt.Sprintf("add EIP %s to shared bandwidth package %s", id, pkg), err)
	if eip.Retryable(err) {
		return err
	}
	if a, gerr := p.get(ctx, id); gerr == nil && a.BandwidthPackage == pkg {
		return nil
	}
	return err
}

// leavePackage takes EIP id out of the shared bandwidth package pkg with
// RemoveCommonBandwidthPackageIp.
func (p *Provider) leavePackage(ctx context.Context, pkg, id string) error {
	in := &vpc.RemoveCommonBandwidthPackageIpRequest{
		RegionId: dara.String(p.region), BandwidthPackageId: dara.String(pkg), IpInstanceId: dara.String(id),
	}
	err := p.withVPC(func(c *vpc.Client) error {
		_, err := c.RemoveCommonBandwidthPackageIpWithContext(ctx, in, callOptions())
		return err
	})
	return wrap(ctx, fmt.Sprintf("remove EIP %s from shared bandwidth package %s", id, pkg), err)
}

// Associate binds the EIP to privateIP on the ENI with AssociateEipAddress
// (InstanceType NetworkInterface). The API refuses to re-associate a bound EIP, so on
// that refusal one DescribeEipAddresses tells whether it is already bound to this very
// target, which is success.
func (p *Provider) Associate(ctx context.Context, id, networkInterface, privateIP string) error {
	op := fmt.Sprintf("associate EIP %s with %s/%s", id, networkInterface, privateIP)
	in := &vpc.AssociateEipAddressRequest{
		RegionId:         dara.String(p.region),
		AllocationId:     dara.String(id),
		InstanceId:       dara.String(networkInterface),
		InstanceType:     dara.String(networkType),
		PrivateIpAddress: dara.String(privateIP),
	}
	err := p.withVPC(func(c *vpc.Client) error {
		_, err := c.AssociateEipAddressWithContext(ctx, in, callOptions())
		return err
	})
	if err == nil {
		return nil
	}
	err = wrap(ctx, op, err)
	if errors.Is(err, eip.ErrAssociated) {
		a, derr := p.get(ctx, id)
		if derr == nil && a.NetworkInterface == networkInterface && a.PrivateIP == privateIP &&
			(a.State == eip.InUse || a.State == eip.Associating) {
			return nil
		}
	}
	return err
}

// Disassociate unbinds the EIP: DescribeEipAddresses to find its target (nothing to do
// when it is not bound), then UnassociateEipAddress with that target.
func (p *Provider) Disassociate(ctx context.Context, id string) error {
	a, err := p.get(ctx, id)
	if err != nil {
		return fmt.Errorf("disassociate EIP %s: %w", id, err)
	}
	if a.State == eip.Available || a.State == eip.Unassociating {
		return nil
	}
	in := &vpc.UnassociateEipAddressRequest{RegionId: dara.String(p.region), AllocationId: dara.String(id)}
	if a.NetworkInterface != "" {
		in.InstanceId, in.InstanceType = dara.String(a.NetworkInterface), dara.String(networkType)
		if a.PrivateIP != "" {
			in.PrivateIpAddress = dara.String(a.PrivateIP)
		}
	}
	err = p.withVPC(func(c *vpc.Client) error {
		_, err := c.UnassociateEipAddressWithContext(ctx, in, callOptions())
		return err
	})
	if err == nil {
		return nil
	}
	err = wrap(ctx, fmt.Sprintf("disassociate EIP %s from %s/%s", id, a.NetworkInterface, a.PrivateIP), err)
	if !errors.Is(err, eip.ErrAssociated) {
		return err
	}
	// IncorrectEipStatus: a transition ran meanwhile, or is still running (an Associating
	// EIP can only be queried). Look again.
	now, gerr := p.get(ctx, id)
	switch {
	case gerr != nil:
		return err
	case now.State == eip.Available || now.State == eip.Unassociating:
		return nil
	case now.State == eip.Associating:
		return fmt.Errorf("disassociate EIP %s: it is still associating, retry later: %w (%v)", id, eip.ErrTransient, err)
	}
	return err
}

// Release releases the EIP with ReleaseEipAddress; one that is already gone
// (InvalidAllocationId.NotFound) is not an error, a bound one (IncorrectEipStatus) is
// ErrAssociated. When the release is refused, one DescribeEipAddresses tells whether
// the EIP is in a shared bandwidth package; if so, RemoveCommonBandwidthPackageIp takes
// it out and the release is tried once more. An EIP in no package costs one call.
func (p *Provider) Release(ctx context.Context, id string) error {
	err := p.release(ctx, id)
	if err == nil || eip.Retryable(err) || errors.Is(err, eip.ErrForbidden) {
		return err
	}
	a, gerr := p.get(ctx, id)
	switch {
	case errors.Is(gerr, eip.ErrNotFound):
		return nil // gone meanwhile
	case gerr != nil || a.BandwidthPackage == "" || a.State != eip.Available:
		return err // a bound EIP stays in its package
	}
	if lerr := p.leavePackage(ctx, a.BandwidthPackage, id); lerr != nil {
		return fmt.Errorf("release EIP %s: %w", id, lerr)
	}
	return p.release(ctx, id)
}

func (p *Provider) release(ctx context.Context, id string) error {
	in := &vpc.ReleaseEipAddressRequest{RegionId: dara.String(p.region), AllocationId: dara.String(id)}
	err := p.withVPC(func(c *vpc.Client) error {
		_, err := c.ReleaseEipAddressWithContext(ctx, in, callOptions())
		return err
	})
	if err == nil {
		return nil
	}
	err = wrap(ctx, "release EIP "+id, err)
	if errors.Is(err, eip.ErrNotFound) {
		return nil
	}
	return err
}

// Describe lists EIPs with DescribeEipAddresses: IDs (50 per call), the ENI
// (AssociatedInstanceType/Id) and tags (Tag.N) are filtered by the API, the private IP
// here. Results are paged 100 at a time.
func (p *Provider) Describe(ctx context.Context, f eip.Filter) ([]eip.Address, error) {
	var out []eip.Address
	if len(f.IDs) == 0 {
		got, err := p.describe(ctx, f, "")
		if err != nil {
			return nil, err
		}
		out = got
	}
	for chunk := range slices.Chunk(f.IDs, idsPerCall) {
		got, err := p.describe(ctx, f, strings.Join(chunk, ","))
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	if f.PrivateIP != "" {
		out = slices.DeleteFunc(out, func(a eip.Address) bool { return a.PrivateIP != f.PrivateIP })
	}
	slices.SortFunc(out, func(a, b eip.Address) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (p *Provider) describe(ctx context.Context, f eip.Filter, ids string) ([]eip.Address, error) {
	in := &vpc.DescribeEipAddressesRequest{RegionId: dara.String(p.region), PageSize: dara.Int32(pageSize)}
	if ids != "" {
		in.AllocationId = dara.String(ids)
	}
	if f.NetworkInterface != "" {
		in.AssociatedInstanceType, in.AssociatedInstanceId = dara.String(networkType), dara.String(f.NetworkInterface)
	}
	for _, k := range slices.Sorted(maps.Keys(f.Tags)) {
		in.Tag = append(in.Tag, &vpc.DescribeEipAddressesRequestTag{Key: dara.String(k), Value: dara.String(f.Tags[k])})
	}
	var out []eip.Address
	for page := int32(1); page <= maxPages; page++ {
		in.PageNumber = dara.Int32(page)
		var resp *vpc.DescribeEipAddressesResponse
		err := p.withVPC(func(c *vpc.Client) (err error) {
			resp, err = c.DescribeEipAddressesWithContext(ctx, in, callOptions())
			return err
		})
		if err != nil {
			return nil, wrap(ctx, fmt.Sprintf("describe EIPs in %s (page %d)", p.region, page), err)
		}
		var list []*vpc.DescribeEipAddressesResponseBodyEipAddressesEipAddress
		var total int
		if b := resp.Body; b != nil {
			total = int(dara.Int32Value(b.TotalCount))
			if b.EipAddresses != nil {
				list = b.EipAddresses.EipAddress
			}
		}
		for _, e := range list {
			out = append(out, address(e))
		}
		if len(list) == 0 || len(out) >= total {
			return out, nil
		}
	}
	return nil, fmt.Errorf("describe EIPs in %s: more than %d pages", p.region, maxPages)
}

// get describes one EIP: ErrNotFound when it does not exist.
func (p *Provider) get(ctx context.Context, id string) (eip.Address, error) {
	got, err := p.describe(ctx, eip.Filter{}, id)
	if err != nil {
		return eip.Address{}, err
	}
	for _, a := range got {
		if a.ID == id {
			return a, nil
		}
	}
	return eip.Address{}, fmt.Errorf("describe EIP %s in %s: %w", id, p.region, eip.ErrNotFound)
}

// address converts one DescribeEipAddresses entry. The API's states are the eip ones
// (Associating, InUse, Unassociating, Available); others (Releasing) pass through.
func address(e *vpc.DescribeEipAddressesResponseBodyEipAddressesEipAddress) eip.Address {
	a := eip.Address{
		ID:               dara.StringValue(e.AllocationId),
		PublicIP:         dara.StringValue(e.IpAddress),
		State:            eip.State(dara.StringValue(e.Status)),
		BandwidthPackage: dara.StringValue(e.BandwidthPackageId),
	}
	if dara.StringValue(e.InstanceType) == networkType {
		a.NetworkInterface, a.PrivateIP = dara.StringValue(e.InstanceId), dara.StringValue(e.PrivateIpAddress)
	}
	if e.Tags != nil {
		for _, t := range e.Tags.Tag {
			if t == nil {
				continue
			}
			if a.Tags == nil {
				a.Tags = map[string]string{}
			}
			a.Tags[dara.StringValue(t.Key)] = dara.StringValue(t.Value)
		}
	}
	return a
}

// InterfaceOf finds the ENI that carries privateIP with ECS DescribeNetworkInterfaces:
// first by its secondary private IPs (PrivateIpAddress.1, where pod IPs live), then, if
// none matched, by its primary one (PrimaryIpAddress).
func (p *Provider) InterfaceOf(ctx context.Context, privateIP string) (string, error) {
	op := fmt.Sprintf("find the network interface of %s in %s", privateIP, p.region)
	for _, in := range []*ecs.DescribeNetworkInterfacesRequest{
		{RegionId: dara.String(p.region), PrivateIpAddress: []*string{dara.String(privateIP)}},
		{RegionId: dara.String(p.region), PrimaryIpAddress: dara.String(privateIP)},
	} {
		resp, err := p.describeNetworkInterfaces(ctx, in)
		if err != nil {
			return "", wrap(ctx, op, err)
		}
		if nic := carrier(resp, privateIP); nic != "" {
			return nic, nil
		}
	}
	return "", fmt.Errorf("%s: no network interface carries it: %w", op, eip.ErrNotFound)
}

// carrier picks the ENI that lists ip from a filtered DescribeNetworkInterfaces answer.
func carrier(resp *ecs.DescribeNetworkInterfacesResponse, ip string) string {
	if resp == nil || resp.Body == nil || resp.Body.NetworkInterfaceSets == nil {
		return ""
	}
	set := slices.DeleteFunc(slices.Clone(resp.Body.NetworkInterfaceSets.NetworkInterfaceSet), func(n *ecs.DescribeNetworkInterfacesResponseBodyNetworkInterfaceSetsNetworkInterfaceSet) bool {
		return n == nil || dara.StringValue(n.NetworkInterfaceId) == ""
	})
	for _, n := range set {
		if dara.StringValue(n.PrivateIpAddress) == ip {
			return dara.StringValue(n.NetworkInterfaceId)
		}
		if n.PrivateIpSets != nil {
			for _, s := range n.PrivateIpSets.PrivateIpSet {
				if s != nil && dara.StringValue(s.PrivateIpAddress) == ip {
					return dara.StringValue(n.NetworkInterfaceId)
				}
			}
		}
	}
	if len(set) > 0 {
		// The API filtered by the IP, though the answer listed none of the ENI's IPs:
		// trust the filter.
		return dara.StringValue(set[0].NetworkInterfaceId)
	}
	return ""
}

// describeNetworkInterfaces is ecs.Client.DescribeNetworkInterfacesWithOptions with a
// context: the ECS module (v4.2.0) has no context-taking methods, so this makes the same
// call (action, version, RPC style, the request's fields as query parameters) through
// the client's darabonba-openapi CallApiWithCtx, and decodes into the ECS response model.
func (p *Provider) describeNetworkInterfaces(ctx context.Context, in *ecs.DescribeNetworkInterfacesRequest) (*ecs.DescribeNetworkInterfacesResponse, error) {
	c, err := p.ecss.get()
	if err != nil {
		return nil, fmt.Errorf("ECS client for %s: %w", p.region, err)
	}
	defer p.ecss.put(c)
	params := &openapi.Params{
		Action:      dara.String("DescribeNetworkInterfaces"),
		Version:     dara.String("2014-05-26"),
		Protocol:    dara.String("HTTPS"),
		Pathname:    dara.String("/"),
		Method:      dara.String("POST"),
		AuthType:    dara.String("AK"),
		Style:       dara.String("RPC"),
		ReqBodyType: dara.String("formData"),
		BodyType:    dara.String("json"),
	}
	body, err := c.CallApiWithCtx(ctx, params, &openapi.OpenApiRequest{Query: openapiutil.Query(in)}, callOptions())
	if err != nil {
		return nil, err
	}
	out := &ecs.DescribeNetworkInterfacesResponse{}
	if err := dara.Convert(body, out); err != nil {
		return nil, fmt.Errorf("decode the DescribeNetworkInterfaces response: %w", err)
	}
	return out, nil
}
