package crdstore

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
)

// ErrEndpointNotFound means the SpiderEndpoint does not exist.
var ErrEndpointNotFound = errors.New("SpiderEndpoint not found")

// ErrEndpointChanged means the SpiderEndpoint changed (or appeared) since it was read.
var ErrEndpointChanged = errors.New("SpiderEndpoint changed since it was read")

// Endpoints reads and writes SpiderEndpoints on the API server.
type Endpoints struct {
	Client client.Client
}

// Get reads an endpoint from the API server (not a cache).
func (s Endpoints) Get(ctx context.Context, namespace, name string) (*v2beta1.SpiderEndpoint, error) {
	se := &v2beta1.SpiderEndpoint{}
	if err := s.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, se); err != nil {
		return nil, endpointErr("get", namespace, name, err)
	}
	return se, nil
}

// Create creates an endpoint; one that already exists gives ErrEndpointChanged.
func (s Endpoints) Create(ctx context.Context, se *v2beta1.SpiderEndpoint) error {
	if err := s.Client.Create(ctx, se); err != nil {
		return endpointErr("create", se.Namespace, se.Name, err)
	}
	return nil
}

// Update writes an endpoint if it still has the given resourceVersion.
func (s Endpoints) Update(ctx context.Context, se *v2beta1.SpiderEndpoint) error {
	if err := s.Client.Update(ctx, se); err != nil {
		return endpointErr("update", se.Namespace, se.Name, err)
	}
	return nil
}

// Delete deletes an endpoint if it still has the given UID and resourceVersion; one
// already gone is not an error.
func (s Endpoints) Delete(ctx context.Context, se *v2beta1.SpiderEndpoint) error {
	pre := client.Preconditions{UID: &se.UID, ResourceVersion: &se.ResourceVersion}
	if err := s.Client.Delete(ctx, se, pre); err != nil && !apierrors.IsNotFound(err) {
		return endpointErr("delete", se.Namespace, se.Name, err)
	}
	return nil
}

func endpointErr(op, namespace, name string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s SpiderEndpoint %s/%s: %w", op, namespace, name, ErrEndpointNotFound)
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s SpiderEndpoint %s/%s: %w", op, namespace, name, ErrEndpointChanged)
	}
	return fmt.Errorf("%s SpiderEndpoint %s/%s: %w", op, namespace, name, err)
}
