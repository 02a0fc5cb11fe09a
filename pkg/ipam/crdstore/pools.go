// Package crdstore implements the allocation core's stores over the Kubernetes API:
// SpiderIPPool status writes guarded by resourceVersion.
package crdstore

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Pools is an ipam.PoolStore over the API server. Reads go to the API server, not to a
// cache: they follow a conflict, when only the newest version helps.
type Pools struct {
	Client client.Client
}

var _ ipam.PoolStore = Pools{}

// GetPool reads a pool from the API server.
func (s Pools) GetPool(ctx context.Context, name string) (*v2beta1.SpiderIPPool, error) {
	pool := &v2beta1.SpiderIPPool{}
	if err := s.Client.Get(ctx, client.ObjectKey{Name: name}, pool); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("SpiderIPPool %q: %w", name, ipam.ErrPoolNotFound)
		}
		return nil, fmt.Errorf("get SpiderIPPool %q: %w", name, err)
	}
	return pool, nil
}

// UpdatePoolStatus writes the status subresource with the pool's resourceVersion as a
// precondition (HTTP 409 when another writer got there first).
func (s Pools) UpdatePoolStatus(ctx context.Context, pool *v2beta1.SpiderIPPool) error {
	if err := s.Client.Status().Update(ctx, pool); err != nil {
		switch {
		case apierrors.IsConflict(err):
			return fmt.Errorf("update SpiderIPPool %q status: %w", pool.Name, ipam.ErrConflict)
		case apierrors.IsNotFound(err):
			return fmt.Errorf("SpiderIPPool %q: %w", pool.Name, ipam.ErrPoolNotFound)
		}
		return fmt.Errorf("update SpiderIPPool %q status: %w", pool.Name, err)
	}
	return nil
}
