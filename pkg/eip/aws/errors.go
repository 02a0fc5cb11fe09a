package aws

import (
	"context"
	"errors"
	"fmt"
	"net"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// op names the Provider call an error came from: a few EC2 codes mean different
// things to different calls.
type op int

const (
	opAllocate op = iota
	opAssociate
	opDisassociate
	opRelease
	opDescribe
	opInterfaceOf
)

// codeClass is the eip class of an EC2 error code from call o, nil when it has none.
// Sources:
//   - common client and server codes (AuthFailure, Blocked, OptInRequired,
//     PendingVerification, MissingAuthenticationToken, IncompleteSignature,
//     InvalidClientTokenId, UnauthorizedOperation, InternalError, Unavailable,
//     RequestLimitExceeded, InvalidParameterValue, AddressLimitExceeded,
//     InvalidAllocationID.NotFound, InvalidAssociationID.NotFound,
//     InvalidNetworkInterfaceID.NotFound, Resource.AlreadyAssociated; 4xx client, 5xx
//     server): https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
//   - InvalidParameterValue for a private IP the interface does not carry is our best
//     reading, not documented; hence it counts as ErrInvalidTarget for AssociateAddress only.
//   - throttling is RequestLimitExceeded with HTTP 503, UnauthorizedOperation is the
//     missing-permission answer:
//     https://docs.aws.amazon.com/AWSEC2/latest/APIReference/query-api-troubleshooting.html
//     (503 seen in the wild: github.com/cloudfoundry/bosh-aws-cpi-release/issues/61)
//   - ReleaseAddress of an associated EIP is InvalidIPAddress.InUse:
//     https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ReleaseAddress.html
//   - AddressLimitExceeded answers AllocateAddress over the EIP quota, HTTP 400, "The
//     maximum number of addresses has been reached." (a logged EC2 answer:
//     https://gist.github.com/rterbush/bc1855e4ad3c704b2d42)
func codeClass(code string, o op) error {
	switch code {
	case "RequestLimitExceeded", "Throttling", "ThrottlingException":
		return eip.ErrThrottled
	case "InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable":
		return eip.ErrTransient
	case "AddressLimitExceeded":
		return eip.ErrQuotaExceeded
	case "UnauthorizedOperation", "AuthFailure", "Blocked", "OptInRequired", "PendingVerification",
		"MissingAuthenticationToken", "IncompleteSignature", "InvalidClientTokenId", "SignatureDoesNotMatch":
		return eip.ErrForbidden
	case "InvalidAllocationID.NotFound", "InvalidAllocationID.Malformed", "InvalidAddress.NotFound":
		return eip.ErrNotFound
	case "Resource.AlreadyAssociated", "InvalidIPAddress.InUse":
		return eip.ErrAssociated
	case "InvalidNetworkInterfaceID.NotFound", "InvalidNetworkInterfaceID.Malformed", "InvalidParameterValue":
		// For AssociateAddress: an unknown interface, or a private IP it does not carry.
		if o == opAssociate {
			return eip.ErrInvalidTarget
		}
	}
	return nil
}

// apiCode is the EC2 error code of err, "" when err is not an API error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// classify wraps err, an SDK error from call o, with the eip error class it belongs
// to. The SDK's text is kept: it carries the operation, HTTP status, request ID, code
// and message (never credentials).
func classify(ctx context.Context, what string, o op, err error) error {
	code := apiCode(err)
	class := codeClass(code, o)
	switch {
	case class != nil:
	case code != "" && httpStatus(err) >= 500:
		class = eip.ErrTransient
	case code == "" && ctx.Err() == nil && isNetwork(err):
		class = eip.ErrTransient
	}
	if class == nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: %w", what, class, err)
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// isNetwork tells a failed send (refused, reset, timed out) from other local errors
// such as missing credentials, which a retry does not fix.
func isNetwork(err error) bool {
	var send *smithyhttp.RequestSendError
	var ne net.Error
	return errors.As(err, &send) || errors.As(err, &ne)
}
