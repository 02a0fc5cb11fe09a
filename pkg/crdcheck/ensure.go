package crdcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Fix is what to run when Ensure refuses: orbweaver's CRDs applied over the ones the API
// server has, taking their fields over from whoever applied them before.
const Fix = "kubectl apply --server-side --force-conflicts -f charts/orbweaver/crds/ " +
	"(the chart of this orbweaver release; from a packaged chart: " +
	"helm show crds <chart> | kubectl apply --server-side --force-conflicts -f -)"

// ErrSchema is what Ensure's refusal wraps: a CRD of orbweaver's kinds is missing, or
// lacks what orbweaver writes.
var ErrSchema = errors.New("the API server does not serve orbweaver's schema")

// EventReason is the reason of the Warning event Ensure puts on a CRD it refuses.
const EventReason = "OrbweaverSchemaMissing"

// Params are what Ensure needs.
type Params struct {
	// Client reads the CRDs (as unstructured objects: its scheme needs no apiextensions
	// types) and writes the events (core/v1).
	Client client.Client
	// Component is the process that checks, "orbweaver-controller" or "orbweaver-agent":
	// it names the events (one per CRD and component, however many agents refuse) and
	// their source.
	Component string
	// Host is the node the process runs on, for the events' source; may be empty.
	Host string
	// Kinds are the kinds to check; Kinds() when nil.
	Kinds []Kind
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log gets the failures to record an event.
	Log logr.Logger
}

// RBAC of Ensure, for the controller (the agent's own markers repeat it for its call):
// the CRDs read, a Warning event on each it refuses.
//
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=get
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Ensure reads the CRD of every kind and returns an error wrapping ErrSchema when one
// is missing or lacks what orbweaver writes (Check); it then also records a Warning event
// on each such CRD. The error names the CRDs and their gaps and says what to run (Fix).
// Other errors (the API server unreachable, no permission to read CRDs) are returned
// wrapped as they are. Nothing is written to orbweaver's kinds.
func Ensure(ctx context.Context, p Params) error {
	kinds := p.Kinds
	if kinds == nil {
		kinds = Kinds()
	}
	now := p.Now
	if now == nil {
		now = time.Now
	}
	var problems []string
	for _, k := range kinds {
		crd, err := get(ctx, p.Client, k.CRD)
		switch {
		case apierrors.IsNotFound(err):
			problems = append(problems, k.CRD+" is not installed")
			continue
		case apierrors.IsForbidden(err):
			return fmt.Errorf("%s: read the CustomResourceDefinition %s, to check its schema: %w (its ClusterRole needs get on customresourcedefinitions.apiextensions.k8s.io, as the chart's has)", p.Component, k.CRD, err)
		case err != nil:
			return fmt.Errorf("%s: read the CustomResourceDefinition %s, to check its schema: %w", p.Component, k.CRD, err)
		}
		gaps := Check(crd, k)
		if len(gaps) == 0 {
			continue
		}
		problem := k.CRD + " lacks " + strings.Join(gaps, ", ")
		problems = append(problems, problem)
		msg := fmt.Sprintf("%s refuses to start: the API server serves this CRD without %s, which orbweaver writes or needs; it drops fields its schema lacks on every write. Apply orbweaver's CRDs: %s",
			p.Component, strings.Join(gaps, ", "), Fix)
		if err := warn(ctx, p, crd, msg, now()); err != nil {
			p.Log.Error(err, "record the refusal on the CRD", "CustomResourceDefinition", klog.KRef("", k.CRD))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s refuses to start: %w: %s. The API server drops the fields a CRD's schema lacks, orbweaver's allocation records among them, on every write, without an error (helm install and upgrade keep the CRDs of SpiderPool or of an older orbweaver). Apply orbweaver's CRDs; it starts at its next restart: %s",
		p.Component, ErrSchema, strings.Join(problems, "; "), Fix)
}

// get reads a CRD without needing its type in the client's scheme.
func get(ctx context.Context, c client.Client, name string) (*apiextensionsv1.CustomResourceDefinition, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	if err := c.Get(ctx, client.ObjectKey{Name: name}, u); err != nil {
		return nil, err
	}
	data, err := u.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("CustomResourceDefinition %s: %w", name, err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := json.Unmarshal(data, crd); err != nil {
		return nil, fmt.Errorf("CustomResourceDefinition %s: %w", name, err)
	}
	return crd, nil
}

// warn records msg as a Warning event on crd: one event per CRD and component, created
// the first time and patched (message, last time) by later refusals, so a crash-looping
// DaemonSet makes one event, not one per node and restart. Events of a cluster-scoped
// object live in the default namespace, as client-go's recorder puts them.
func warn(ctx context.Context, p Params, crd *apiextensionsv1.CustomResourceDefinition, msg string, now time.Time) error {
	t := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: crd.Name + "." + p.Component},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: apiextensionsv1.SchemeGroupVersion.String(), Kind: "CustomResourceDefinition",
			Name: crd.Name, UID: crd.UID, ResourceVersion: crd.ResourceVersion,
		},
		Reason: EventReason, Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: p.Component, Host: p.Host},
		FirstTimestamp: t, LastTimestamp: t, Count: 1,
		ReportingController: p.Component, ReportingInstance: p.Host,
	}
	err := p.Client.Create(ctx, ev)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	patch, err := json.Marshal(map[string]any{"message": msg, "lastTimestamp": t})
	if err != nil {
		return err
	}
	return p.Client.Patch(ctx, ev, client.RawPatch(types.MergePatchType, patch))
}
