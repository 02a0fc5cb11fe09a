// Package eip is orbweaver's cloud-neutral view of elastic public IPs (EIPs): one
// Provider interface over the clouds' EIP APIs (Alibaba Cloud VPC, AWS EC2, Tencent
// Cloud VPC), whose adapters live in sub-packages and are the only code that imports a
// cloud SDK. The controller binds a pool IP's EIP through it. eiptest holds an in-memory
// cloud with the clouds' rules and the conformance suite every adapter must pass.
package eip

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// State is an EIP's state as the clouds report it, normalised.
type State string

// The states. Association and disassociation are asynchronous on some clouds: an EIP is
// Associating before it is InUse, Unassociating before it is Available again.
const (
	Available     State = "Available"
	Associating   State = "Associating"
	InUse         State = "InUse"
	Unassociating State = "Unassociating"
)

// Address is one EIP.
type Address struct {
	// ID is the cloud's allocation ID (eip-..., eipalloc-..., eip-...).
	ID       string
	PublicIP string
	State    State
	// NetworkInterface and PrivateIP are the association target when there is one.
	NetworkInterface string
	PrivateIP        string
	// BandwidthPackage is the shared bandwidth package the EIP is in, on clouds that
	// have them (Alibaba's Internet Shared Bandwidth, cbwp-...); empty when none.
	BandwidthPackage string
	Tags             map[string]string
}

// AllocateRequest is what Allocate asks for. Fields a cloud does not have are ignored by
// its adapter (documented per adapter), which says which in Unhonoured.
type AllocateRequest struct {
	// ClientToken makes the call idempotent: a retried Allocate with the same token
	// returns the same EIP instead of a second one.
	ClientToken string
	// Bandwidth in Mbit/s; 0 means the cloud's default.
	Bandwidth          int
	InternetChargeType string
	InstanceChargeType string
	// ISP is the line, e.g. BGP, BGP_PRO.
	ISP              string
	PublicIPPool     string
	BandwidthPackage string
	ResourceGroup    string
	Name             string
	Description      string
	// Tags are set at allocation: orbweaver tags every EIP it allocates with the
	// cluster, the pool and the private IP, so a restarted controller finds its own.
	Tags map[string]string
}

// Filter selects EIPs for Describe; empty fields do not filter.
type Filter struct {
	IDs              []string
	PrivateIP        string
	NetworkInterface string
	// Tags must all match.
	Tags map[string]string
}

// Config is what every adapter is built from (New in pkg/eip/<cloud>). Credentials are
// never part of it: each adapter takes them from its SDK's standard chain (environment,
// shared credential files, the instance's role) and never logs them.
type Config struct {
	// Region is the cloud region, e.g. cn-hangzhou, us-east-1, ap-guangzhou.
	Region string
	// Endpoint overrides every API endpoint the adapter calls with one base URL: a
	// private VPC endpoint, or http://127.0.0.1:port for a local emulator.
	Endpoint string
}

// Provider is one cloud's EIP API. Adapters do not retry: Retrying wraps any Provider
// with the one backoff policy for throttled and transient errors.
type Provider interface {
	// Name is the provider's name in pool specs: alibaba, aws, tencent.
	Name() string
	// Allocate allocates an EIP, or returns the one an earlier call with the same
	// ClientToken allocated.
	Allocate(ctx context.Context, req AllocateRequest) (Address, error)
	// Associate binds an Available EIP to a private IP of a network interface. On a
	// cloud where this is asynchronous the EIP is Associating until Describe shows it
	// InUse (see WaitFor). Associating an EIP already bound to that target is not an
	// error; bound elsewhere it is ErrAssociated.
	Associate(ctx context.Context, id, networkInterface, privateIP string) error
	// Disassociate unbinds an EIP; an unbound one is not an error.
	Disassociate(ctx context.Context, id string) error
	// Release gives the EIP back to the cloud: ErrAssociated while it is bound, nil
	// when it is already gone.
	Release(ctx context.Context, id string) error
	// Describe lists the EIPs that match f.
	Describe(ctx context.Context, f Filter) ([]Address, error)
	// InterfaceOf returns the ID of the network interface (ENI) that carries privateIP
	// as its primary or a secondary private IP, ErrNotFound when none does. It is how
	// the controller finds where to associate a pod's EIP, and where it moved to.
	InterfaceOf(ctx context.Context, privateIP string) (string, error)
}

// Errors adapters return (wrapped, with the cloud's own code and message).
var (
	// ErrNotFound: no EIP with that ID.
	ErrNotFound = errors.New("EIP not found")
	// ErrAssociated: the EIP is bound (to another target, for Associate).
	ErrAssociated = errors.New("EIP is associated")
	// ErrThrottled: the cloud throttled the call; retry with backoff.
	ErrThrottled = errors.New("throttled by the cloud API")
	// ErrQuotaExceeded: the account may not allocate more EIPs (or bandwidth); a user
	// must raise the quota. Surfaced as a pod event and a pool condition.
	ErrQuotaExceeded = errors.New("EIP quota exceeded")
	// ErrForbidden: the credentials lack a permission; docs/guides/eip.md lists them.
	ErrForbidden = errors.New("permission denied by the cloud")
	// ErrInvalidTarget: the network interface does not carry the private IP (the pod's
	// IP is not on that ENI), or either does not exist.
	ErrInvalidTarget = errors.New("invalid association target")
	// ErrTransient: a network error or a 5xx; retry with backoff.
	ErrTransient = errors.New("transient cloud error")
	// ErrUnsupported: the request asks for something orbweaver does not do on this
	// cloud (a subscription EIP that could never be released with its pod); the error
	// says what to ask for instead. Retrying does not help.
	ErrUnsupported = errors.New("not supported for a pod's EIP")
)

// Retryable tells whether a call that failed with err may succeed if retried as is.
func Retryable(err error) bool {
	return errors.Is(err, ErrThrottled) || errors.Is(err, ErrTransient)
}

// WaitFor polls Describe until the EIP is in state want, every poll (doubling up to 5 s),
// until ctx ends. A retryable Describe error is retried.
func WaitFor(ctx context.Context, p Provider, id string, want State, poll time.Duration) (Address, error) {
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	for {
		got, err := p.Describe(ctx, Filter{IDs: []string{id}})
		switch {
		case err != nil && !Retryable(err):
			return Address{}, fmt.Errorf("wait for EIP %s to be %s: %w", id, want, err)
		case err == nil && len(got) == 0:
			return Address{}, fmt.Errorf("wait for EIP %s to be %s: %w", id, want, ErrNotFound)
		case err == nil && got[0].State == want:
			return got[0], nil
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return Address{}, fmt.Errorf("wait for EIP %s to be %s: %w", id, want, ctx.Err())
		case <-t.C:
		}
		poll = min(2*poll, 5*time.Second)
	}
}
