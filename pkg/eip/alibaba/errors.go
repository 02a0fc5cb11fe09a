package alibaba

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/alibabacloud-go/tea/tea"

	"github.com/orbweaver-ipam/orbweaver/pkg/eip"
)

// APIError is an error the Alibaba Cloud API returned: its code, message, HTTP status and
// request ID (quote the request ID to Alibaba support).
type APIError struct {
	Code       string
	Message    string
	RequestID  string
	StatusCode int
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s (request ID %s)", e.Code, e.StatusCode, e.Message, e.RequestID)
}

// The cloud's error codes by class. Sources: the error tables of the VPC API reference
// for AllocateEipAddress (QuotaExceeded.Eip), AssociateEipAddress
// (InvalidAssociation.Duplicated, IncorrectEipStatus, InvalidInstanId.NotFound,
// InvalidParams.NotFound, InvalidBindingStatus, Forbbiden, ServiceUnavailable),
// UnassociateEipAddress (InvalidInstanceId.NotFound) and ReleaseEipAddress
// (InvalidAllocationId.NotFound, IncorrectEipStatus, Forbidden, InternalError):
// https://alibabacloud.com/help/en/vpc/developer-reference/api-vpc-2016-04-28-associateeipaddress
// and its siblings, mirrored in github.com/lyyvli/vpc (intl.zh-CN/API参考/弹性公网IP/*.md);
// the common OpenAPI error codes (InvalidAccessKeyId.NotFound, SignatureDoesNotMatch,
// Forbidden.RAM, Throttling.User, InternalFailure, SerivceUnavailableTemporary, sic):
// https://www.alibabacloud.com/help/doc-detail/69008.htm; the SDK itself treats
// Throttling, Throttling.User and Throttling.Api as throttling (darabonba-openapi
// ThrottlingError); AliyunContainerService/terway's pkg/aliyun/client/errors/errors.go
// (InvalidAllocationId.NotFound, Forbidden.RAM, Throttling; earlier revisions also
// IncorrectEipStatus for Unassociate/Release, InvalidAssociation.Duplicated, TaskConflict)
// confirms the EIP ones in use, and reads them from *tea.SDKError as here.
var (
	throttledCodes = set("Throttling", "Throttling.User", "Throttling.Api", "Throttling.System",
		"Throttling.Resource", "TaskConflict", "TaskConflict.AssociateGlobalAccelerationInstance")
	transientCodes = set("ServiceUnavailable", "InternalError", "InternalFailure", "UnknownError",
		"SerivceUnavailableTemporary", "ServiceUnavailableTemporary", "SystemBusy", "OperationConflict",
		"LastTokenProcessing", "OperationFailed.LastTokenProcessing")
	quotaCodes     = set("QuotaExceeded.Eip", "QuotaExceeded", "QuotaExceeded.Bandwidth", "QuotaExceed.Eip")
	forbiddenCodes = set("Forbidden.RAM", "Forbidden", "Forbbiden", "Forbidden.AccessDenied", "Forbidden.NoPermission",
		"NoPermission", "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive", "InvalidAccessKeyId",
		"SignatureDoesNotMatch", "IncompleteSignature", "InvalidSecurityToken.Expired",
		"InvalidSecurityToken.Malformed", "InvalidSecurityToken.MismatchWithAccessKey", "InvalidCredentials")
	notFoundCodes = set("InvalidAllocationId.NotFound")
	// ReleaseEipAddress's refusal of a subscription EIP, which orbweaver never
	// allocates (Allocate refuses PrePaid) but a user may bind by ID.
	unsupportedCodes = set("Forbidden.ChargeTypeIsPrepaid")
	associatedCodes  = set("IncorrectEipStatus", "InvalidAssociation.Duplicated", "InvalidBindingStatus",
		"BIND_INSTANCE_HAVE_PORTMAP_OR_BIND_EIP")
	targetCodes = set("InvalidInstanceId.NotFound", "InvalidInstanId.NotFound", "InvalidParams.NotFound",
		"InvalidEniId.NotFound", "InvalidPrivateIpAddress", "InvalidPrivateIpAddress.NotFound",
		"InvalidPrivateIpAddress.Malformed", "InvalidInstanceType.ValueNotSupported")
)

func set(codes ...string) map[string]bool {
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[c] = true
	}
	return m
}

// classOf returns the eip sentinel for an API error, nil when it has none.
func classOf(e *APIError) error {
	switch c := e.Code; {
	case unsupportedCodes[c]:
		return eip.ErrUnsupported
	case throttledCodes[c]:
		return eip.ErrThrottled
	case quotaCodes[c]:
		return eip.ErrQuotaExceeded
	case forbiddenCodes[c]:
		return eip.ErrForbidden
	case notFoundCodes[c]:
		return eip.ErrNotFound
	case associatedCodes[c]:
		return eip.ErrAssociated
	case targetCodes[c]:
		return eip.ErrInvalidTarget
	case transientCodes[c] || e.StatusCode >= 500:
		return eip.ErrTransient
	case e.StatusCode == 401 || e.StatusCode == 403:
		return eip.ErrForbidden
	}
	return nil
}

// wrap turns an SDK error into one that names the operation, keeps the cloud's code,
// message and request ID, and wraps the eip sentinel of its class.
func wrap(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ae := apiErrorOf(err); ae != nil {
		if class := classOf(ae); class != nil {
			return fmt.Errorf("%s: %w: %w", op, class, ae)
		}
		return fmt.Errorf("%s: %w", op, ae)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w (%v)", op, ctx.Err(), err)
	}
	// The credential chain's failure is a plain error; its text is credentials-go's
	// (providers/default.go).
	if strings.Contains(err.Error(), "unable to get credentials") {
		return fmt.Errorf("%s: %w: no usable credentials: %v", op, eip.ErrForbidden, err)
	}
	if isNetwork(err) {
		return fmt.Errorf("%s: %w: %v", op, eip.ErrTransient, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// apiErrorOf extracts the cloud's error from what the SDK returns: a *tea.SDKError whose
// Data is the JSON error body (Code, Message, RequestId), or nil for a non-API error.
func apiErrorOf(err error) *APIError {
	var se *tea.SDKError
	if !errors.As(err, &se) {
		return nil
	}
	ae := &APIError{Code: tea.StringValue(se.Code), Message: tea.StringValue(se.Message), StatusCode: tea.IntValue(se.StatusCode)}
	var body struct {
		Code, Message, RequestId string
	}
	if data := tea.StringValue(se.Data); data != "" && json.Unmarshal([]byte(data), &body) == nil {
		if body.Message != "" {
			ae.Message = body.Message
		}
		ae.RequestID = body.RequestId
	}
	if ae.StatusCode == 0 && ae.Code == "" {
		return nil // not from a response: a local SDK failure
	}
	return ae
}

func isNetwork(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "connection refused")
}
