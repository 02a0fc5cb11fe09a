package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// CNI error codes the agent asks the plugin to report.
const (
	codeInvalidConfig int32 = 7  // the user must change something: annotation, pool, CNI config
	codeTryAgainLater int32 = 11 // transient: the runtime retries
	// codeCheckFailed is the plugin-specific code of a CHECK whose record does not match.
	codeCheckFailed int32 = 999
	// codePluginNotAvailable is CNI STATUS's "the plugin cannot serve ADD now".
	codePluginNotAvailable int32 = 50
)

// Reasons: short machine-readable classes, also used as pod Event reasons and metric labels.
const (
	ReasonPoolExhausted     = "PoolExhausted"
	ReasonNoPool            = "NoPool"
	ReasonPoolRefused       = "PoolRefused"
	ReasonUnknownPool       = "UnknownPool"
	ReasonInvalidPool       = "InvalidPool"
	ReasonBadAnnotation     = "BadAnnotation"
	ReasonBadCNIConfig      = "BadCNIConfig"
	ReasonAutoPoolNotReady  = "AutoPoolNotReady"
	ReasonConflict          = "Conflict"
	ReasonNotReady          = "NotReady"
	ReasonInternal          = "Internal"
	ReasonBadRequest        = "BadRequest"
	ReasonCheckFailed       = "CheckFailed"
	ReasonSpiderPoolRunning = "SpiderPoolRunning"
	ReasonKeptIPNotServed   = "KeptIPNotServed"
	ReasonOrdinalAddress    = "OrdinalAddressUnavailable"
)

// errGrantsMode: a pool's records writer found the pool switched to node grants; the
// allocation is asked again of the pool's grants (transient: code 11 if it escapes).
var errGrantsMode = errors.New("the pool is allocated by node grants now")

// userError is a failure the user fixes (a bad annotation, a pool that refuses the pod);
// its reason names the class.
type userError struct {
	reason string
	err    error
}

func (e *userError) Error() string { return e.err.Error() }
func (e *userError) Unwrap() error { return e.err }

func userErr(reason string, err error) error { return &userError{reason: reason, err: err} }

// classify maps an error to what the plugin reports and what the pod's event says.
func classify(err error) (code int32, reason string) {
	var ue *userError
	switch {
	case errors.As(err, &ue):
		return codeInvalidConfig, ue.reason
	case errors.Is(err, ipam.ErrBadAnnotation):
		return codeInvalidConfig, ReasonBadAnnotation
	case errors.Is(err, errCheckFailed):
		return codeCheckFailed, ReasonCheckFailed
	case errors.Is(err, ipam.ErrBadCNIConfig):
		return codeInvalidConfig, ReasonBadCNIConfig
	case errors.Is(err, ipam.ErrUnknownPool):
		return codeInvalidConfig, ReasonUnknownPool
	case errors.Is(err, ipam.ErrPoolRefused):
		return codeInvalidConfig, ReasonPoolRefused
	case errors.Is(err, ipam.ErrNoPool):
		return codeInvalidConfig, ReasonNoPool
	case errors.Is(err, ipam.ErrSpiderPoolRunning):
		return codeTryAgainLater, ReasonSpiderPoolRunning
	case errors.Is(err, ipam.ErrAutoPoolNotReady):
		return codeTryAgainLater, ReasonAutoPoolNotReady
	case errors.Is(err, ipam.ErrKeptIPNotServed):
		// Retried: the pool may come to serve the node, or the endpoint be deleted.
		return codeTryAgainLater, ReasonKeptIPNotServed
	case errors.Is(err, ipam.ErrOrdinalAddress):
		return codeTryAgainLater, ReasonOrdinalAddress
	case errors.Is(err, ipam.ErrPoolExhausted):
		return codeTryAgainLater, ReasonPoolExhausted
	case errors.Is(err, ipam.ErrConflict):
		return codeTryAgainLater, ReasonConflict
	case errors.Is(err, errNotReady), errors.Is(err, errStopping), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return codeTryAgainLater, ReasonNotReady
	case errors.Is(err, ipam.ErrInvalidPool):
		return codeInvalidConfig, ReasonInvalidPool
	case errors.Is(err, ipam.ErrPoolNotFound):
		return codeInvalidConfig, ReasonUnknownPool
	}
	return codeTryAgainLater, ReasonInternal
}

// errNotReady means the agent cannot serve yet (caches not synced).
var errNotReady = errors.New("orbweaver agent is not ready: its caches have not synced yet")

// errStopping means the agent is shutting down; the runtime retries against the next one.
var errStopping = errors.New("orbweaver agent is shutting down")

// apiError turns an error into the API's Error model.
func apiError(err error) *models.Error {
	code, reason := classify(err)
	msg := err.Error()
	return &models.Error{Code: &code, Reason: reason, Message: &msg}
}

func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}
