package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	authenticationv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// Params are what the webhooks need besides the manager.
type Params struct {
	// Config says which families are served.
	Config Config
	// Reader must read the API server directly, not a cache: an overlap check against a
	// cache that has not seen a pool created a moment ago would admit an overlap, and a
	// shrink of a pool in Grants mode checked against a cache that has not seen an
	// endpoint written a moment ago would take an address from its pod. It lists
	// SpiderIPPools and SpiderSubnets, and SpiderEndpoints for such a shrink.
	Reader client.Reader
	// Serializer, when not nil, makes the decisions about pools and subnets one at a
	// time (see Serializer): without it, two overlapping pools created at the same moment
	// can both be admitted.
	Serializer Serializer
}

// SetupWithManager adds the mutating and validating webhooks of SpiderIPPool,
// SpiderSubnet and SpiderReservedIP to the manager's webhook server, at
// controller-runtime's paths (/mutate-spiderpool-spidernet-io-v2beta1-spiderippool,
// /validate-..., and so on; see Paths). The webhook server runs on every replica, not
// only the leader.
//
// The webhooks take the manager's credentials (mgr.GetConfig()) to be the auto-pool
// controller's, which runs in the same process: edits of auto pools made as that user
// are the controller's (see ValidateAutoPoolEdit).
func SetupWithManager(_ context.Context, mgr ctrl.Manager, p Params) error {
	reviews, err := authenticationv1client.NewForConfig(rest.CopyConfig(mgr.GetConfig()))
	if err != nil {
		return fmt.Errorf("webhooks: authentication client: %w", err)
	}
	a := &admitter{cfg: p.Config, reader: p.Reader, serializer: p.Serializer, decoder: admission.NewDecoder(mgr.GetScheme()), now: time.Now,
		self: &identity{review: func(ctx context.Context) (string, error) {
			r, err := reviews.SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			return r.Status.UserInfo.Username, nil
		}}}
	for _, k := range []struct {
		obj    runtime.Object
		plural string
	}{{&v2beta1.SpiderIPPool{}, "spiderippools"}, {&v2beta1.SpiderSubnet{}, "spidersubnets"}, {&v2beta1.SpiderReservedIP{}, "spiderreservedips"}} {
		// The defaulting webhook is registered by hand, not with WithDefaulter, to carry
		// Default's warnings (see withWarnings).
		mutate := admission.WithCustomDefaulter(mgr.GetScheme(), k.obj, a)
		mutate.Handler = withWarnings{mutate.Handler}
		mgr.GetWebhookServer().Register(Paths[k.plural][0], mutate)
		if err := ctrl.NewWebhookManagedBy(mgr).For(k.obj).WithValidator(a).Complete(); err != nil {
			return fmt.Errorf("register the webhooks of %T: %w", k.obj, err)
		}
	}
	return nil
}

// withWarnings serves a defaulting webhook with the warnings Default gave: the
// defaulter's interface (admission.CustomDefaulter) returns none, so the handler hands
// Default a place for them in the request's context and adds them to the response.
type withWarnings struct{ admission.Handler }

type warningsKey struct{}

func (h withWarnings) Handle(ctx context.Context, req admission.Request) admission.Response {
	var warnings []string
	resp := h.Handler.Handle(context.WithValue(ctx, warningsKey{}, &warnings), req)
	if !resp.Allowed {
		return resp
	}
	return resp.WithWarnings(warnings...)
}

// warn passes warnings of Default to withWarnings.
func warn(ctx context.Context, warnings []string) {
	if to, ok := ctx.Value(warningsKey{}).(*[]string); ok {
		*to = append(*to, warnings...)
	}
}

// identity is the user the webhooks authenticate to the API server as. It is asked of
// the API server (a SelfSubjectReview, which stores nothing and which every
// authenticated user may make) the first time a rule needs it, and kept: a process's
// credentials name one user for its life. A failed review is tried again next time.
type identity struct {
	review func(context.Context) (string, error)
	mu     sync.Mutex
	name   string
}

func (i *identity) user(ctx context.Context) (string, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.name != "" {
		return i.name, nil
	}
	name, err := i.review(ctx)
	switch {
	case err != nil:
		return "", fmt.Errorf("ask the API server which user the webhook runs as (SelfSubjectReview): %w", err)
	case name == "":
		return "", errors.New("the API server's SelfSubjectReview names no user for the webhook")
	}
	i.name = name
	return name, nil
}

// Paths are the URL paths SetupWithManager serves, mutating then validating, per kind (plural).
var Paths = map[string][2]string{
	"spiderippools":     {"/mutate-spiderpool-spidernet-io-v2beta1-spiderippool", "/validate-spiderpool-spidernet-io-v2beta1-spiderippool"},
	"spidersubnets":     {"/mutate-spiderpool-spidernet-io-v2beta1-spidersubnet", "/validate-spiderpool-spidernet-io-v2beta1-spidersubnet"},
	"spiderreservedips": {"/mutate-spiderpool-spidernet-io-v2beta1-spiderreservedip", "/validate-spiderpool-spidernet-io-v2beta1-spiderreservedip"},
}

// Configurations returns the mutating and validating webhook configurations, both named
// name, that send CREATE and UPDATE of the three kinds to SetupWithManager's paths.
// clientConfig gives the client configuration of a path: a Service and the CA bundle in
// a cluster, a URL in tests. Failure policy Fail: an object the webhooks could not check
// is not stored.
func Configurations(name string, clientConfig func(path string) admissionregistrationv1.WebhookClientConfig) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	for _, plural := range slices.Sorted(maps.Keys(Paths)) {
		paths := Paths[plural]
		rules := []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{v2beta1.GroupName}, APIVersions: []string{"v2beta1"}, Resources: []string{plural}},
		}}
		mwc.Webhooks = append(mwc.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name: "mutate-" + plural + ".orbweaver.io", ClientConfig: clientConfig(paths[0]), Rules: rules,
			SideEffects: &none, FailurePolicy: &fail, AdmissionReviewVersions: []string{"v1"},
		})
		vwc.Webhooks = append(vwc.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name: "validate-" + plural + ".orbweaver.io", ClientConfig: clientConfig(paths[1]), Rules: rules,
			SideEffects: &none, FailurePolicy: &fail, AdmissionReviewVersions: []string{"v1"},
		})
	}
	return mwc, vwc
}

// admitter adapts the pure rules of this package to controller-runtime's admission
// interfaces, for all three kinds: it reads what the rules compare against and turns
// their field.ErrorList into the API's Invalid status, every problem at once.
type admitter struct {
	cfg        Config
	reader     client.Reader
	serializer Serializer // nil: decisions are not serialized
	decoder    admission.Decoder
	now        func() time.Time
	// self is the user the webhooks, and so the auto-pool controller, run as.
	self *identity
}

var (
	_ admission.CustomDefaulter = (*admitter)(nil)
	_ admission.CustomValidator = (*admitter)(nil)
)

// RBAC of the rules' reads, from the API server (not a cache): the pools and subnets
// (existing), a pool's endpoints (endpointsOf). The SelfSubjectReview of identity needs
// none: every authenticated user may make one.
//
// +kubebuilder:rbac:groups=spiderpool.spidernet.io,resources=spiderippools;spidersubnets;spiderendpoints,verbs=list

// existing lists the pools and subnets the rules compare against.
func (a *admitter) existing(ctx context.Context) (Existing, error) {
	var pools v2beta1.SpiderIPPoolList
	if err := a.reader.List(ctx, &pools); err != nil {
		return Existing{}, fmt.Errorf("list SpiderIPPools: %w", err)
	}
	var subnets v2beta1.SpiderSubnetList
	if err := a.reader.List(ctx, &subnets); err != nil {
		return Existing{}, fmt.Errorf("list SpiderSubnets: %w", err)
	}
	return Existing{IPPools: pools.Items, Subnets: subnets.Items}, nil
}

func (a *admitter) Default(ctx context.Context, obj runtime.Object) error {
	switch o := obj.(type) {
	case *v2beta1.SpiderIPPool:
		var old *v2beta1.SpiderIPPool
		if req, err := admission.RequestFromContext(ctx); err == nil && len(req.OldObject.Raw) > 0 {
			old = &v2beta1.SpiderIPPool{}
			if err := a.decoder.DecodeRaw(req.OldObject, old); err != nil {
				return fmt.Errorf("decode the stored SpiderIPPool %s: %w", o.Name, err)
			}
		}
		var existing Existing
		if len(o.Spec.Subnet) > 0 {
			var subnets v2beta1.SpiderSubnetList
			if err := a.reader.List(ctx, &subnets); err != nil {
				return fmt.Errorf("list SpiderSubnets: %w", err)
			}
			existing.Subnets = subnets.Items
		}
		warn(ctx, DefaultIPPool(o, old, existing))
	case *v2beta1.SpiderSubnet:
		warn(ctx, DefaultSubnet(o))
	case *v2beta1.SpiderReservedIP:
		DefaultReservedIP(o)
	default:
		return fmt.Errorf("orbweaver webhook: unexpected %T", obj)
	}
	return nil
}

func (a *admitter) ValidateCreate(ctx context.Context, obj runtime.Object) (admission.Warnings, error) {
	return a.validate(ctx, nil, obj)
}

func (a *admitter) ValidateUpdate(ctx context.Context, old, obj runtime.Object) (admission.Warnings, error) {
	return a.validate(ctx, old, obj)
}

// ValidateDelete admits every delete: the pool's finalizer keeps it while addresses are
// allocated.
func (a *admitter) ValidateDelete(context.Context, runtime.Object) (admission.Warnings, error) {
	return nil, nil
}

func (a *admitter) validate(ctx context.Context, old, obj runtime.Object) (admission.Warnings, error) {
	var errs field.ErrorList
	var kind, name string
	switch o := obj.(type) {
	case *v2beta1.SpiderIPPool:
		kind, name = "SpiderIPPool", o.Name
		var eps []v2beta1.SpiderEndpoint
		if prev, ok := old.(*v2beta1.SpiderIPPool); ok && prev.GrantsMode() && addressesChanged(prev, o) {
			var err error
			if eps, err = a.endpointsOf(ctx, o.Name); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
		}
		// Part of the decision, so that a refused hand edit records no claim.
		var handEdit field.ErrorList
		if prev, ok := old.(*v2beta1.SpiderIPPool); ok {
			var err error
			if handEdit, err = a.handEdit(ctx, ValidateAutoPoolEdit(prev, o)); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
		}
		var err error
		errs, err = a.decide(ctx, claimOfPool(o, a.now(), old != nil), func(existing Existing) field.ErrorList {
			if old == nil {
				return a.cfg.ValidateIPPoolCreate(o, existing)
			}
			existing.Endpoints = eps
			return append(a.cfg.ValidateIPPoolUpdate(old.(*v2beta1.SpiderIPPool), o, existing), handEdit...)
		})
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	case *v2beta1.SpiderSubnet:
		kind, name = "SpiderSubnet", o.Name
		var err error
		errs, err = a.decide(ctx, claimOfSubnet(o, a.now(), old != nil), func(existing Existing) field.ErrorList {
			if old == nil {
				return a.cfg.ValidateSubnetCreate(o, existing)
			}
			return a.cfg.ValidateSubnetUpdate(old.(*v2beta1.SpiderSubnet), o, existing)
		})
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
	case *v2beta1.SpiderReservedIP:
		kind, name = "SpiderReservedIP", o.Name
		if old == nil {
			errs = a.cfg.ValidateReservedIPCreate(o)
		} else {
			errs = a.cfg.ValidateReservedIPUpdate(old.(*v2beta1.SpiderReservedIP), o)
		}
	default:
		return nil, fmt.Errorf("orbweaver webhook: unexpected %T", obj)
	}
	if len(errs) == 0 {
		return nil, nil
	}
	return nil, apierrors.NewInvalid(v2beta1.SchemeGroupVersion.WithKind(kind).GroupKind(), name, errs)
}

// handEdit returns refusals that hold for hand edits only: none when the request comes
// from the user the webhooks run as, the auto-pool controller's (see
// ValidateAutoPoolEdit). The user is looked up only when there is something to refuse.
func (a *admitter) handEdit(ctx context.Context, errs field.ErrorList) (field.ErrorList, error) {
	if len(errs) == 0 {
		return nil, nil
	}
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("who made the request: %w", err)
	}
	self, err := a.self.user(ctx)
	if err != nil {
		return nil, err
	}
	if req.UserInfo.Username == self {
		return nil, nil
	}
	return errs, nil
}

// addressesChanged reports whether an update may change a pool's addresses: its
// spec.ips or spec.excludeIPs differ.
func addressesChanged(old, pool *v2beta1.SpiderIPPool) bool {
	return !slices.Equal(old.Spec.IPs, pool.Spec.IPs) || !slices.Equal(old.Spec.ExcludeIPs, pool.Spec.ExcludeIPs)
}

// endpointPage is how many SpiderEndpoints endpointsOf reads per request.
const endpointPage = 500

// endpointsOf returns the SpiderEndpoints that name the pool, read from the API server a
// page at a time (it cannot select them by pool), keeping only those.
func (a *admitter) endpointsOf(ctx context.Context, pool string) ([]v2beta1.SpiderEndpoint, error) {
	var out []v2beta1.SpiderEndpoint
	opts := []client.ListOption{client.Limit(endpointPage)}
	for {
		var list v2beta1.SpiderEndpointList
		if err := a.reader.List(ctx, &list, opts...); err != nil {
			return nil, fmt.Errorf("list SpiderEndpoints to find the addresses pods hold in SpiderIPPool %q: %w", pool, err)
		}
		for i := range list.Items {
			if slices.Contains(ipam.EndpointPools(&list.Items[i]), pool) {
				out = append(out, list.Items[i])
			}
		}
		if list.Continue == "" {
			return out, nil
		}
		opts = []client.ListOption{client.Limit(endpointPage), client.Continue(list.Continue)}
	}
}

// decide runs a pool or subnet rule against the stored objects and, through the
// serializer, the ones admitted a moment ago and not listed yet.
func (a *admitter) decide(ctx context.Context, claim Claim, rule func(Existing) field.ErrorList) (field.ErrorList, error) {
	check := func(pending []Claim) (field.ErrorList, error) {
		existing, err := a.existing(ctx)
		if err != nil {
			return nil, err
		}
		return rule(withPending(existing, pending, claim.Kind, claim.Name)), nil
	}
	if a.serializer == nil {
		return check(nil)
	}
	return a.serializer.Admit(ctx, claim, check)
}
