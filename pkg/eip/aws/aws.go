// Package aws is the eip.Provider for Amazon EC2 Elastic IP addresses, built on the
// official SDK (github.com/aws/aws-sdk-go-v2/service/ec2). docs/reference/eip-aws.md is
// the user's view: configuration, IAM actions, calls per method, error mapping.
//
// EC2 association is synchronous: an address with an AssociationId is InUse, one
// without is Available; this adapter never reports Associating or Unassociating.
package aws

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// ClientTokenTag is the tag that carries AllocateRequest.ClientToken: AllocateAddress
// has no ClientToken parameter, so Allocate looks the token up by this tag first.
const ClientTokenTag = "orbweaver.io/client-token"

// nameTag is EC2's display-name convention; AllocateRequest.Name goes there.
const nameTag = "Name"

var _ eip.Provider = (*Provider)(nil)

// Provider is the EC2 eip.Provider. It does not retry (see eip.Retrying).
type Provider struct {
	client *ec2.Client
}

// New builds a Provider. Credentials come from the SDK's default chain only
// (environment, shared config and credentials files, web identity, the instance's
// role) and must resolve now, else ErrForbidden; cfg.Region (else AWS_REGION or the
// shared config) is the region; cfg.Endpoint, when set, replaces the EC2 endpoint.
func New(ctx context.Context, cfg eip.Config) (*Provider, error) {
	opts := []func(*config.LoadOptions) error{
		// One attempt per call: eip.Retrying owns backoff, and two retry layers would
		// multiply the calls made against a throttled API.
		config.WithRetryer(func() sdkaws.Retryer { return sdkaws.NopRetryer{} }),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("load AWS configuration: no region: set the pool's region or AWS_REGION")
	}
	// Resolve the credentials once now, so a missing or broken chain fails here and not
	// on the first pod; the SDK caches them and refreshes temporary ones itself.
	if awsCfg.Credentials == nil {
		return nil, fmt.Errorf("load AWS credentials: no credential provider: %w", eip.ErrForbidden)
	}
	if _, err := awsCfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("load AWS credentials: %w: %w", eip.ErrForbidden, err)
	}
	client := ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		// AWS_MAX_ATTEMPTS would otherwise wrap the retryer again.
		o.Retryer, o.RetryMaxAttempts = sdkaws.NopRetryer{}, 0
		if cfg.Endpoint != "" {
			o.BaseEndpoint = sdkaws.String(cfg.Endpoint)
		}
	})
	return &Provider{client: client}, nil
}

// Name implements eip.Provider.
func (p *Provider) Name() string { return "aws" }

var _ eip.Unhonoured = (*Provider)(nil)

// Unhonoured implements eip.Unhonoured: the attributes EC2's AllocateAddress has no
// parameter for (see Allocate).
func (p *Provider) Unhonoured(req eip.AllocateRequest) []string {
	return eip.SetAmong(req, eip.AttrBandwidth, eip.AttrInternetChargeType, eip.AttrInstanceChargeType, eip.AttrISP,
		eip.AttrBandwidthPackage, eip.AttrResourceGroup, eip.AttrDescription)
}

// Allocate implements eip.Provider: DescribeAddresses by the client-token tag, then
// AllocateAddress (Domain=vpc) with the tags in TagSpecifications.
//
// Mapped: PublicIPPool -> PublicIpv4Pool, Name -> the Name tag, Tags -> tags,
// ClientToken -> the orbweaver.io/client-token tag. EC2 has no parameter for
// Bandwidth, InternetChargeType, InstanceChargeType, ISP, BandwidthPackage,
// ResourceGroup or Description; they are ignored.
func (p *Provider) Allocate(ctx context.Context, req eip.AllocateRequest) (eip.Address, error) {
	if req.ClientToken != "" {
		got, err := p.Describe(ctx, eip.Filter{Tags: map[string]string{ClientTokenTag: req.ClientToken}})
		if err != nil {
			return eip.Address{}, fmt.Errorf("allocate EIP: look up client token %q: %w", req.ClientToken, err)
		}
		if len(got) > 0 {
			return got[0], nil
		}
	}
	tags := maps.Clone(req.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	if req.Name != "" {
		tags[nameTag] = req.Name
	}
	if req.ClientToken != "" {
		tags[ClientTokenTag] = req.ClientToken
	}
	in := &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc}
	if req.PublicIPPool != "" {
		in.PublicIpv4Pool = sdkaws.String(req.PublicIPPool)
	}
	if len(tags) > 0 {
		spec := types.TagSpecification{ResourceType: types.ResourceTypeElasticIp}
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			spec.Tags = append(spec.Tags, types.Tag{Key: sdkaws.String(k), Value: sdkaws.String(tags[k])})
		}
		in.TagSpecifications = []types.TagSpecification{spec}
	}
	out, err := p.client.AllocateAddress(ctx, in)
	if err != nil {
		return eip.Address{}, classify(ctx, "allocate EIP", opAllocate, err)
	}
	return eip.Address{
		ID:       sdkaws.ToString(out.AllocationId),
		PublicIP: sdkaws.ToString(out.PublicIp),
		State:    eip.Available,
		Tags:     tags,
	}, nil
}

// Associate implements eip.Provider: DescribeAddresses on the target, then
// AssociateAddress with AllowReassociation=false.
//
// EC2 would silently move a private IP's existing EIP aside, so the target is checked
// first: its own EIP there means done, another EIP means ErrAssociated.
func (p *Provider) Associate(ctx context.Context, id, networkInterface, privateIP string) error {
	what := fmt.Sprintf("associate EIP %s with %s/%s", id, networkInterface, privateIP)
	onTarget, err := p.Describe(ctx, eip.Filter{NetworkInterface: networkInterface, PrivateIP: privateIP})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for _, a := range onTarget {
		if a.ID == id {
			return nil
		}
		return fmt.Errorf("%s: the private IP already has EIP %s: %w", what, a.ID, eip.ErrAssociated)
	}
	_, err = p.client.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		AllocationId:       sdkaws.String(id),
		NetworkInterfaceId: sdkaws.String(networkInterface),
		PrivateIpAddress:   sdkaws.String(privateIP),
		AllowReassociation: sdkaws.Bool(false),
	})
	if err == nil {
		return nil
	}
	err = classify(ctx, what, opAssociate, err)
	if errors.Is(err, eip.ErrAssociated) {
		// A concurrent Associate to this very target also answers AlreadyAssociated.
		if got, derr := p.Describe(ctx, eip.Filter{IDs: []string{id}}); derr == nil && len(got) == 1 &&
			got[0].NetworkInterface == networkInterface && got[0].PrivateIP == privateIP {
			return nil
		}
	}
	return err
}

// Disassociate implements eip.Provider: DescribeAddresses for the association ID,
// then DisassociateAddress when there is one.
func (p *Provider) Disassociate(ctx context.Context, id string) error {
	what := fmt.Sprintf("disassociate EIP %s", id)
	out, err := p.client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{id}})
	if err != nil {
		return classify(ctx, what, opDescribe, err)
	}
	var assoc string
	for _, a := range out.Addresses {
		if sdkaws.ToString(a.AllocationId) == id {
			assoc = sdkaws.ToString(a.AssociationId)
		}
	}
	if assoc == "" {
		return nil
	}
	_, err = p.client.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: sdkaws.String(assoc)})
	if err != nil {
		if apiCode(err) == "InvalidAssociationID.NotFound" {
			return nil // disassociated in the meantime
		}
		return classify(ctx, what, opDisassociate, err)
	}
	return nil
}

// Release implements eip.Provider: DescribeAddresses, then ReleaseAddress. An EIP that
// is already gone (InvalidAllocationID.NotFound) counts as released.
//
// In a default VPC, EC2 releases an associated EIP after disassociating it silently;
// the look-up first keeps the Provider's rule (ErrAssociated while bound) everywhere.
func (p *Provider) Release(ctx context.Context, id string) error {
	what := "release EIP " + id
	got, err := p.Describe(ctx, eip.Filter{IDs: []string{id}})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(got) == 1 && got[0].State != eip.Available {
		return fmt.Errorf("%s: bound to %s/%s: %w", what, got[0].NetworkInterface, got[0].PrivateIP, eip.ErrAssociated)
	}
	_, err = p.client.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: sdkaws.String(id)})
	if err == nil {
		return nil
	}
	err = classify(ctx, what, opRelease, err)
	if errors.Is(err, eip.ErrNotFound) {
		return nil
	}
	return err
}

// Describe implements eip.Provider: one DescribeAddresses with the filters
// allocation-id, private-ip-address, network-interface-id and tag:KEY. Filters
// (unlike AllocationIds) make a missing EIP an empty answer, not an error.
func (p *Provider) Describe(ctx context.Context, f eip.Filter) ([]eip.Address, error) {
	var fs []types.Filter
	add := func(name string, values ...string) {
		fs = append(fs, types.Filter{Name: sdkaws.String(name), Values: values})
	}
	if len(f.IDs) > 0 {
		add("allocation-id", f.IDs...)
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
	// DescribeAddresses is not paginated: it answers every match at once.
	out, err := p.client.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: fs})
	if err != nil {
		return nil, classify(ctx, "describe EIPs", opDescribe, err)
	}
	res := make([]eip.Address, 0, len(out.Addresses))
	for _, a := range out.Addresses {
		res = append(res, toAddress(a))
	}
	slices.SortFunc(res, func(a, b eip.Address) int { return cmp.Compare(a.ID, b.ID) })
	return res, nil
}

func toAddress(a types.Address) eip.Address {
	out := eip.Address{
		ID:       sdkaws.ToString(a.AllocationId),
		PublicIP: sdkaws.ToString(a.PublicIp),
		State:    eip.Available,
	}
	if sdkaws.ToString(a.AssociationId) != "" {
		out.State = eip.InUse
		out.NetworkInterface = sdkaws.ToString(a.NetworkInterfaceId)
		out.PrivateIP = sdkaws.ToString(a.PrivateIpAddress)
	}
	if len(a.Tags) > 0 {
		out.Tags = make(map[string]string, len(a.Tags))
		for _, t := range a.Tags {
			out.Tags[sdkaws.ToString(t.Key)] = sdkaws.ToString(t.Value)
		}
	}
	return out
}

// InterfaceOf implements eip.Provider: DescribeNetworkInterfaces with the filter
// addresses.private-ip-address, which matches primary and secondary private IPs.
func (p *Provider) InterfaceOf(ctx context.Context, privateIP string) (string, error) {
	what := "find the network interface of " + privateIP
	out, err := p.client.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{
		Filters: []types.Filter{{Name: sdkaws.String("addresses.private-ip-address"), Values: []string{privateIP}}},
	})
	if err != nil {
		return "", classify(ctx, what, opInterfaceOf, err)
	}
	// A private IP is on one interface per VPC; with several VPCs in the region the
	// lowest ID is taken, so the answer is stable.
	var ids []string
	for _, n := range out.NetworkInterfaces {
		if id := sdkaws.ToString(n.NetworkInterfaceId); id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return "", fmt.Errorf("%s: no network interface carries it: %w", what, eip.ErrNotFound)
	}
	return slices.Min(ids), nil
}
