// Package ipamtest holds in-memory stores for unit tests of code built on package ipam.
package ipamtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Pools is an in-memory ipam.PoolStore with the API server's resourceVersion semantics.
// ConflictEvery, when positive, makes every n-th status update fail with ErrConflict
// after bumping the stored version, as if another writer had won the race.
// LostAnswerEvery, when positive, makes every n-th status update land and still fail
// with ErrLostAnswer, as a timeout after the API server applied it would.
type Pools struct {
	mu              sync.Mutex
	pools           map[string]*v2beta1.SpiderIPPool
	version         int
	writes          int
	ConflictEvery   int
	LostAnswerEvery int
	// Latency, when set, is how long every read and write takes, as a busy API server's.
	Latency time.Duration
}

// ErrLostAnswer is the error of an update that landed but whose answer was lost.
var ErrLostAnswer = errors.New("the answer to a write that landed was lost (injected)")

var _ ipam.PoolStore = (*Pools)(nil)

// NewPools returns a store holding copies of the given pools.
func NewPools(pools ...*v2beta1.SpiderIPPool) *Pools {
	s := &Pools{pools: map[string]*v2beta1.SpiderIPPool{}}
	for _, p := range pools {
		s.Put(p)
	}
	return s
}

// Put stores a copy of a pool under a new resourceVersion, as a spec change would.
func (s *Pools) Put(p *v2beta1.SpiderIPPool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	c := p.DeepCopy()
	c.ResourceVersion = strconv.Itoa(s.version)
	s.pools[c.Name] = c
}

// GetPool returns a copy of the stored pool.
func (s *Pools) GetPool(_ context.Context, name string) (*v2beta1.SpiderIPPool, error) {
	time.Sleep(s.Latency)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pools[name]
	if !ok {
		return nil, fmt.Errorf("SpiderIPPool %q: %w", name, ipam.ErrPoolNotFound)
	}
	return p.DeepCopy(), nil
}

// UpdatePoolStatus stores the pool's status if its resourceVersion is current.
func (s *Pools) UpdatePoolStatus(_ context.Context, pool *v2beta1.SpiderIPPool) error {
	time.Sleep(s.Latency)
	s.mu.Lock()
	defer s.mu.Unlock()
	stored, ok := s.pools[pool.Name]
	if !ok {
		return fmt.Errorf("SpiderIPPool %q: %w", pool.Name, ipam.ErrPoolNotFound)
	}
	s.writes++
	if s.ConflictEvery > 0 && s.writes%s.ConflictEvery == 0 {
		s.version++
		stored.ResourceVersion = strconv.Itoa(s.version)
	}
	if stored.ResourceVersion != pool.ResourceVersion {
		return fmt.Errorf("update SpiderIPPool %q status: %w", pool.Name, ipam.ErrConflict)
	}
	s.version++
	stored.Status = *pool.Status.DeepCopy()
	stored.ResourceVersion = strconv.Itoa(s.version)
	if s.LostAnswerEvery > 0 && s.writes%s.LostAnswerEvery == 0 {
		return fmt.Errorf("update SpiderIPPool %q status: %w", pool.Name, ErrLostAnswer)
	}
	pool.ResourceVersion = stored.ResourceVersion
	return nil
}

// Writes is the number of status updates attempted, conflicts included.
func (s *Pools) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}
