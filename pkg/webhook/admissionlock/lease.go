// Package admissionlock makes the admission webhooks' decisions about pools and subnets
// one at a time, across every webhook replica, with compare-and-swap writes of one Lease
// (webhook.Serializer).
package admissionlock

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/pkg/cas"
	"github.com/orbweaver-ipam/orbweaver/pkg/webhook"
)

// claimsAnnotation holds the Lease's pending claims, as JSON.
const claimsAnnotation = "orbweaver.io/admitted-claims"

// RBAC, in the controller's namespace ("system" stands for it): create of Leases (create
// cannot be limited to a name), get and update of orbweaver-admission, the Lease
// cmd/orbweaver-controller names.
//
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=create
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=system,resources=leases,verbs=get;update,resourceNames=orbweaver-admission

// Lease is a webhook.Serializer over a coordination.k8s.io Lease: a decision reads the
// Lease, decides against its pending claims and the stored objects, and records its own
// claim with an update that carries the Lease's resourceVersion. Two racing decisions
// cannot both land; the loser decides again and sees the winner's claim.
type Lease struct {
	// Client must read the API server directly (not a cache) and may write Leases.
	Client    client.Client
	Namespace string
	Name      string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// MaxTries bounds the decisions of one Admit (default 50); its context bounds it in time.
	MaxTries int
}

var _ webhook.Serializer = (*Lease)(nil)

// Admit implements webhook.Serializer.
func (l *Lease) Admit(ctx context.Context, claim webhook.Claim, decide func(pending []webhook.Claim) (field.ErrorList, error)) (field.ErrorList, error) {
	now := l.Now
	if now == nil {
		now = time.Now
	}
	tries := l.MaxTries
	if tries <= 0 {
		tries = 50
	}
	var refused field.ErrorList
	// A decision that lost (another landed first) is made again, against its claim too.
	err := cas.Retry(ctx, wait.Backoff{Steps: tries}, cas.LostToAnotherWriter, func() error {
		lease, pending, err := l.read(ctx)
		if err != nil {
			return err
		}
		t := now()
		pending = slices.DeleteFunc(pending, func(c webhook.Claim) bool {
			return !c.Until.After(t) || c.Kind == claim.Kind && c.Name == claim.Name
		})
		if errs, err := decide(pending); err != nil || len(errs) > 0 {
			refused = errs
			return err
		}
		data, err := json.Marshal(append(pending, claim))
		if err != nil {
			return err
		}
		if lease.Annotations == nil {
			lease.Annotations = map[string]string{}
		}
		lease.Annotations[claimsAnnotation] = string(data)
		lease.Spec.RenewTime = &metav1.MicroTime{Time: t}
		if lease.ResourceVersion == "" {
			err = l.Client.Create(ctx, lease)
		} else {
			err = l.Client.Update(ctx, lease) // carries the resourceVersion read above
		}
		if err != nil {
			return fmt.Errorf("record the admission in Lease %s/%s: %w", l.Namespace, l.Name, err)
		}
		return nil
	})
	if cas.LostToAnotherWriter(err) {
		return nil, fmt.Errorf("Lease %s/%s: %d admission decisions in a row lost a race; try again", l.Namespace, l.Name, tries)
	}
	return refused, err
}

// read returns the Lease (a new one, not yet stored, when there is none) and its claims.
func (l *Lease) read(ctx context.Context) (*coordinationv1.Lease, []webhook.Claim, error) {
	lease := &coordinationv1.Lease{}
	err := l.Client.Get(ctx, client.ObjectKey{Namespace: l.Namespace, Name: l.Name}, lease)
	if apierrors.IsNotFound(err) {
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name}}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read Lease %s/%s: %w", l.Namespace, l.Name, err)
	}
	var claims []webhook.Claim
	if raw := lease.Annotations[claimsAnnotation]; raw != "" {
		if json.Unmarshal([]byte(raw), &claims) != nil {
			// A damaged record (edited by hand) must not block every pool create: it
			// only ever holds claims that lapse within webhook.ClaimTTL. It is
			// rewritten by this decision.
			claims = nil
		}
	}
	return lease, claims, nil
}
