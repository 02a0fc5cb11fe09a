package ipam

import "errors"

// Errors a caller classifies with errors.Is; messages wrapping them name the pool.
var (
	// ErrPoolExhausted: the pool has no free address left for a request. The caller
	// tries the next candidate pool.
	ErrPoolExhausted = errors.New("pool exhausted")
	// ErrInvalidPool: the pool's spec or records cannot be used; an admin must fix it.
	ErrInvalidPool = errors.New("invalid pool")
)
