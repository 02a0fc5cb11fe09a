package autopool

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/orbweaver-ipam/orbweaver/pkg/ipam"
)

// workload is what auto pools need of an application, read from one object of a kind.
type workload struct {
	obj client.Object
	app ipam.Application
	// annotations are the pod template's.
	annotations map[string]string
	// replicas is how many pods the application runs, for a "+N" size.
	replicas int64
	// managedBy names the application that owns this one's pods' pools instead (the
	// Deployment of a ReplicaSet, the CronJob of a Job); empty when none.
	managedBy string
}

// gone tells whether the application is being deleted: its pools go as if it were gone.
func (w workload) gone() bool { return w.obj.GetDeletionTimestamp() != nil }

// kind adapts one workload kind to the generic reconciler.
type kind struct {
	gvk schema.GroupVersionKind
	// thirdParty kinds are read as unstructured and must give a fixed "N".
	thirdParty bool
	newObject  func() client.Object
	newList    func() client.ObjectList
	// read fills annotations, replicas and managedBy from an object of the kind.
	read func(client.Object) (workload, error)
}

// workload reads an object of the kind.
func (k kind) workload(obj client.Object) (workload, error) {
	w, err := k.read(obj)
	if err != nil {
		return workload{}, fmt.Errorf("read %s %s/%s: %w", k.gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	w.obj = obj
	w.app = ipam.Application{APIVersion: k.gvk.GroupVersion().String(), Kind: k.gvk.Kind,
		Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: string(obj.GetUID())}
	return w, nil
}

// controllerName names the kind's controller; unique per kind and group.
func (k kind) controllerName() string {
	name := "autopool-" + strings.ToLower(k.gvk.Kind)
	if k.thirdParty {
		name += "." + k.gvk.Group
	}
	return name
}

// owns tells whether a pool's labels name an application of this kind: its kind and API
// group (any version, so a pool outlives a CRD's version bump).
func (k kind) owns(labels map[string]string) bool {
	group, _, _ := strings.Cut(labels[ipam.LabelOwnerAppGV], "_")
	return labels[ipam.LabelOwnerAppKind] == k.gvk.Kind && group == k.gvk.Group
}

// builtinKinds are the workload kinds SpiderPool makes auto pools for.
func builtinKinds() []kind {
	return []kind{
		{
			gvk:       appsv1.SchemeGroupVersion.WithKind("Deployment"),
			newObject: func() client.Object { return &appsv1.Deployment{} },
			newList:   func() client.ObjectList { return &appsv1.DeploymentList{} },
			read: func(o client.Object) (workload, error) {
				d := o.(*appsv1.Deployment)
				return workload{annotations: d.Spec.Template.Annotations, replicas: replicasOf(d.Spec.Replicas)}, nil
			},
		},
		{
			gvk:       appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
			newObject: func() client.Object { return &appsv1.ReplicaSet{} },
			newList:   func() client.ObjectList { return &appsv1.ReplicaSetList{} },
			read: func(o client.Object) (workload, error) {
				rs := o.(*appsv1.ReplicaSet)
				return workload{annotations: rs.Spec.Template.Annotations, replicas: replicasOf(rs.Spec.Replicas),
					managedBy: controlledBy(rs, appsv1.GroupName, "Deployment")}, nil
			},
		},
		{
			gvk:       appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
			newObject: func() client.Object { return &appsv1.StatefulSet{} },
			newList:   func() client.ObjectList { return &appsv1.StatefulSetList{} },
			read: func(o client.Object) (workload, error) {
				s := o.(*appsv1.StatefulSet)
				return workload{annotations: s.Spec.Template.Annotations, replicas: replicasOf(s.Spec.Replicas)}, nil
			},
		},
		{
			gvk:       appsv1.SchemeGroupVersion.WithKind("DaemonSet"),
			newObject: func() client.Object { return &appsv1.DaemonSet{} },
			newList:   func() client.ObjectList { return &appsv1.DaemonSetList{} },
			read: func(o client.Object) (workload, error) {
				d := o.(*appsv1.DaemonSet)
				return workload{annotations: d.Spec.Template.Annotations, replicas: int64(d.Status.DesiredNumberScheduled)}, nil
			},
		},
		{
			gvk:       batchv1.SchemeGroupVersion.WithKind("Job"),
			newObject: func() client.Object { return &batchv1.Job{} },
			newList:   func() client.ObjectList { return &batchv1.JobList{} },
			read: func(o client.Object) (workload, error) {
				j := o.(*batchv1.Job)
				return workload{annotations: j.Spec.Template.Annotations, replicas: jobPods(j.Spec.Parallelism, j.Spec.Completions),
					managedBy: controlledBy(j, batchv1.GroupName, "CronJob")}, nil
			},
		},
		{
			gvk:       batchv1.SchemeGroupVersion.WithKind("CronJob"),
			newObject: func() client.Object { return &batchv1.CronJob{} },
			newList:   func() client.ObjectList { return &batchv1.CronJobList{} },
			read: func(o client.Object) (workload, error) {
				c := o.(*batchv1.CronJob)
				js := c.Spec.JobTemplate.Spec
				return workload{annotations: js.Template.Annotations, replicas: jobPods(js.Parallelism, js.Completions)}, nil
			},
		},
	}
}

// thirdPartyKind reads a kind of another controller (OpenKruise's CloneSet, say) as
// unstructured: the pod template's annotations at spec.template.metadata.annotations,
// replicas at spec.replicas. Its size must be a fixed "N" (see Params.ThirdPartyKinds).
func thirdPartyKind(gvk schema.GroupVersionKind) kind {
	return kind{
		gvk:        gvk,
		thirdParty: true,
		newObject: func() client.Object {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gvk)
			return u
		},
		newList: func() client.ObjectList {
			u := &unstructured.UnstructuredList{}
			u.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
			return u
		},
		read: func(o client.Object) (workload, error) {
			u := o.(*unstructured.Unstructured)
			annotations, _, err := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "annotations")
			if err != nil {
				return workload{}, fmt.Errorf("spec.template.metadata.annotations: %w", err)
			}
			replicas := int64(1)
			if n, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas"); err == nil && found {
				replicas = n
			}
			return workload{annotations: annotations, replicas: replicas}, nil
		},
	}
}

// replicasOf is spec.replicas, 1 when unset (the API server's default).
func replicasOf(r *int32) int64 {
	if r == nil {
		return 1
	}
	return int64(*r)
}

// jobPods is a Job's pod count as SpiderPool computes it: completions when set, else
// parallelism when set, else 1; and 1 instead of 0.
func jobPods(parallelism, completions *int32) int64 {
	n := int32(1)
	switch {
	case completions != nil:
		n = *completions
	case parallelism != nil:
		n = *parallelism
	}
	return int64(max(n, 1))
}

// controlledBy returns "Kind name" of the object's controller when it is of the given
// group and kind, else "".
func controlledBy(obj metav1.Object, group, kind string) string {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.Kind != kind {
		return ""
	}
	if gv, err := schema.ParseGroupVersion(ref.APIVersion); err != nil || gv.Group != group {
		return ""
	}
	return kind + " " + ref.Name
}
