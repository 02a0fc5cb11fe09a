package ipam

import (
	"context"
	"errors"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// ErrConflict means the pool changed since it was read: recompute from a fresh read,
// never resend the same write.
var ErrConflict = errors.New("pool changed since it was read")

// IsConflict reports whether err wraps ErrConflict (the lost races cas.Retry retries).
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// ErrPoolNotFound means the pool does not exist.
var ErrPoolNotFound = errors.New("pool not found")

// PoolStore reads pools and writes their status with optimistic concurrency. crdstore
// implements it over the API server, ipamtest in memory.
type PoolStore interface {
	// GetPool returns the current version of a pool, read from the source of truth (not
	// a cache), or an error wrapping ErrPoolNotFound.
	GetPool(ctx context.Context, name string) (*v2beta1.SpiderIPPool, error)
	// UpdatePoolStatus writes the pool's status if the stored pool still has the
	// resourceVersion of the given one, and updates the given object to the stored
	// version. A stale resourceVersion gives an error wrapping ErrConflict.
	UpdatePoolStatus(ctx context.Context, pool *v2beta1.SpiderIPPool) error
}
