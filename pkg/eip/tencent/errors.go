package tencent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	tcerr "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// Error codes and where they come from:
//   - common codes (every API 3.0 product): "Error Codes" of the VPC API,
//     https://www.tencentcloud.com/document/product/215/34795 and the VPC error code
//     classes at https://cloud.tencent.com/document/api/215/4924 (ServiceUnavailable,
//     ActionLocked);
//   - per-action codes: the "可能返回的错误码" lists above each method in the SDK's
//     vpc/v20170312/client.go (v1.0.1100) and their descriptions in errors.go, which
//     mirror the API pages, e.g. https://www.tencentcloud.com/document/api/215/16699
//     (AllocateAddresses), /16703 (DisassociateAddress), /16705 (ReleaseAddresses);
//   - ClientError.*: made up by the SDK itself (common/netretry.go, http/response.go)
//     for network failures and non-200 answers.
//
// Prefix rules apply to a code and its sub-codes ("AuthFailure" covers
// "AuthFailure.SignatureFailure").
var codeClasses = []struct {
	class    error
	exact    []string
	prefixes []string
}{
	{eip.ErrThrottled,
		[]string{"LimitExceeded.ActionLimited"}, // "接口请求次数超过限频" (DescribeNetworkInterfaces)
		[]string{"RequestLimitExceeded"}},       // common; .UinLimitExceeded, .IPLimitExceeded, .GlobalRegionUinLimitExceeded
	{eip.ErrForbidden, nil,
		[]string{"AuthFailure", "UnauthorizedOperation"}},
	{eip.ErrQuotaExceeded,
		[]string{
			"LimitExceeded.InstanceAddressQuota",          // EIPs per instance (AssociateAddress)
			"LimitExceeded.BandwidthPackageQuota",         // AllocateAddresses into a bandwidth package
			"LimitExceeded.BandwidthPackageResourceQuota", // ditto
		},
		[]string{"AddressQuotaLimitExceeded"}}, // EIPs per region, and .DailyAllocate
	{eip.ErrNotFound,
		[]string{"InvalidAddressId.NotFound", "InvalidParameterValue.AddressNotFound", "ResourceNotFound"}, nil},
	{eip.ErrAssociated,
		[]string{
			"InvalidAddressIdStatus.NotPermit",            // bind only from UNBIND
			"InvalidAddressState",                         // release: state does not allow it
			"UnsupportedOperation.AddressStatusNotPermit", // "该地址状态不支持此操作"
			"InvalidPrivateIpAddress.AlreadyBindEip",      // the ENI's private IP already has an EIP
			"InvalidInstanceId.AlreadyBindEip",
		}, nil},
	{eip.ErrInvalidTarget,
		[]string{
			"InvalidNetworkInterfaceId.NotFound",             // no such ENI, or the private IP is not on it
			"InvalidParameterValue.NetworkInterfaceNotFound", // ditto
			"InvalidParameterValue.InstanceNotMatchAssociateEni",
		}, nil},
	{eip.ErrTransient,
		[]string{
			"ServiceUnavailable", "ActionLocked", "ResourceUnavailable",
			"OperationDenied.MutexTaskRunning", // another task on the EIP is running
			"ClientError.IOError",              // the SDK could not read the answer
		},
		[]string{"InternalError"}},
}

var httpStatus = regexp.MustCompile(`http status code: (\d{3})`)

// classify wraps err from a call (what) with the eip error class of its code, keeping
// the SDK error (code, message, request ID) in the chain and the text. A cancelled or
// expired ctx wins: the SDK turns it into a ClientError.NetworkError string.
func classify(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("tencent: %s: %w (%v)", what, cerr, err)
	}
	var sdk *tcerr.TencentCloudSDKError
	if !errors.As(err, &sdk) {
		return fmt.Errorf("tencent: %s: %w", what, err)
	}
	if class := classOf(sdk); class != nil {
		return fmt.Errorf("tencent: %s: %w: %w", what, class, err)
	}
	return fmt.Errorf("tencent: %s: %w", what, err)
}

// classOf returns the eip sentinel for the SDK error's code, nil when it has none.
func classOf(e *tcerr.TencentCloudSDKError) error {
	if e.Code == "ClientError.HttpStatusCodeError" || e.Code == "ClientError.NetworkError" {
		// A non-200 answer that is not the API's (statusTransport; the API itself
		// answers 200 even for errors) names its status; other network errors do not.
		if m := httpStatus.FindStringSubmatch(e.Message); m != nil {
			switch code, _ := strconv.Atoi(m[1]); {
			case code == 429:
				return eip.ErrThrottled
			case code >= 500:
				return eip.ErrTransient
			case code == 401 || code == 403:
				return eip.ErrForbidden
			}
			return nil // e.g. a 404: the endpoint is wrong, retrying will not help
		}
		if e.Code == "ClientError.NetworkError" {
			return eip.ErrTransient
		}
		return nil
	}
	for _, c := range codeClasses {
		for _, x := range c.exact {
			if e.Code == x {
				return c.class
			}
		}
		for _, p := range c.prefixes {
			if e.Code == p || strings.HasPrefix(e.Code, p+".") {
				return c.class
			}
		}
	}
	return nil
}

// unwrapSDK returns the SDK error inside err, or err.
func unwrapSDK(err error) error {
	var sdk *tcerr.TencentCloudSDKError
	if errors.As(err, &sdk) {
		return sdk
	}
	return err
}
