package crdcheck

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// ReadCRDs reads the CRDs in dir of fsys (the chart's crds/, embedded in the controller).
func ReadCRDs(fsys fs.FS, dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(fsys, dir+"/*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, crd)
	}
	return out, nil
}

// RBAC: a role of its own (orbweaver-controller-upgrade-crds; the chart grants it with
// crds.upgrade, the controller's --upgrade-crds): create, which cannot be limited to
// names (the API server checks it when an apply creates the CRD), and patch of
// orbweaver's CRDs only. It reads them as Ensure does.
//
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=create,roleName=orbweaver-controller-upgrade-crds
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=patch,roleName=orbweaver-controller-upgrade-crds,resourceNames=spiderippools.spiderpool.spidernet.io;spiderendpoints.spiderpool.spidernet.io;spidersubnets.spiderpool.spidernet.io;spiderreservedips.spiderpool.spidernet.io;ipamnodes.ipam.orbweaver.io;ipblocks.ipam.orbweaver.io

// Upgrade puts orbweaver's CRDs (want: the chart's, of this release) in place where the
// API server serves none of a kind, or one that lacks what orbweaver writes (Check): the
// CRDs of SpiderPool, or of an older orbweaver, which `helm install` and `helm upgrade`
// keep. It applies them server-side as p.Component, taking the fields over from whoever
// applied them before, as `kubectl apply --server-side --force-conflicts` would. A CRD
// that already serves everything orbweaver writes is left as it is, whoever wrote it
// (a newer orbweaver's, say). orbweaver's schema is SpiderPool's with orbweaver's fields
// added, so the objects SpiderPool wrote stay valid. It returns the CRDs it wrote, and a
// logged line for each. Run it before Ensure.
func Upgrade(ctx context.Context, p Params, want []*apiextensionsv1.CustomResourceDefinition) ([]string, error) {
	kinds := p.Kinds
	if kinds == nil {
		kinds = Kinds()
	}
	var wrote []string
	for _, k := range kinds {
		i := slices.IndexFunc(want, func(c *apiextensionsv1.CustomResourceDefinition) bool { return c.Name == k.CRD })
		if i < 0 {
			return wrote, fmt.Errorf("%s: the CRDs of this release lack %s", p.Component, k.CRD)
		}
		if gaps := Check(want[i], k); len(gaps) > 0 {
			return wrote, fmt.Errorf("%s: this release's CRD %s lacks %s (a build error)", p.Component, k.CRD, strings.Join(gaps, ", "))
		}
		served, err := get(ctx, p.Client, k.CRD)
		var why string
		switch {
		case apierrors.IsNotFound(err):
			why = "not installed"
		case err != nil:
			return wrote, fmt.Errorf("%s: read the CustomResourceDefinition %s, to check its schema: %w", p.Component, k.CRD, err)
		default:
			gaps := Check(served, k)
			if len(gaps) == 0 {
				continue
			}
			why = "it lacked " + strings.Join(gaps, ", ")
		}
		if err := apply(ctx, p.Client, want[i], p.Component); err != nil {
			if apierrors.IsForbidden(err) {
				return wrote, fmt.Errorf("%s: put orbweaver's CustomResourceDefinition %s in place (%s): %w (its ClusterRole needs create and patch on customresourcedefinitions.apiextensions.k8s.io, as the chart's has with crds.upgrade on; or apply them yourself: %s)", p.Component, k.CRD, why, err, Fix)
			}
			return wrote, fmt.Errorf("%s: put orbweaver's CustomResourceDefinition %s in place (%s): %w", p.Component, k.CRD, why, err)
		}
		p.Log.Info("put orbweaver's CustomResourceDefinition in place", "CustomResourceDefinition", klog.KRef("", k.CRD), "reason", why)
		wrote = append(wrote, k.CRD)
	}
	return wrote, nil
}

// apply applies crd server-side as owner, forcing conflicts.
func apply(ctx context.Context, c client.Client, crd *apiextensionsv1.CustomResourceDefinition, owner string) error {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(crd)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return c.Patch(ctx, u, client.Apply, client.FieldOwner(owner), client.ForceOwnership)
}

// Await is Ensure, tried every `every` until it passes or wait has passed: the agents
// start with the controller, which puts the CRDs in place (Upgrade) a moment later. It
// logs each refusal and returns the last one; other errors end it at once. wait 0
// checks once.
func Await(ctx context.Context, p Params, wait, every time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		err := Ensure(ctx, p)
		if err == nil || !errors.Is(err, ErrSchema) || !time.Now().Add(every).Before(deadline) {
			return err
		}
		p.Log.Info("waiting for orbweaver's CRDs: the controller puts them in place at start (--upgrade-crds)", "until", deadline.Format(time.RFC3339), "refusal", err.Error())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(every):
		}
	}
}
