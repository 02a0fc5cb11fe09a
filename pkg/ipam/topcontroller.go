package ipam

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TopControllerOf names the pod's top controller as auto pools match it: a ReplicaSet's
// pod belongs to its Deployment when the ReplicaSet's name is the Deployment's plus the
// pod-template-hash (how the Deployment controller names them), so no ReplicaSet needs
// to be read. A Job's pod belongs to the Job here; see NeedsJobController.
func TopControllerOf(pod *corev1.Pod) TopController {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return TopController{}
	}
	top := TopController{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: pod.Namespace, Name: ref.Name}
	if ref.Kind == "ReplicaSet" && strings.HasPrefix(ref.APIVersion, "apps/") {
		if hash := pod.Labels["pod-template-hash"]; hash != "" {
			if name, ok := strings.CutSuffix(ref.Name, "-"+hash); ok && name != "" {
				top.Kind, top.Name = "Deployment", name
			}
		}
	}
	return top
}

// NeedsJobController tells whether the pod's auto pool depends on its Job's controller:
// the pod is a Job's (top is TopControllerOf the pod) and asks for an auto pool. Only
// then need the caller read the Job, and pass its controller to AutoPoolTopController.
func NeedsJobController(pod *corev1.Pod, top TopController) bool {
	if top.Kind != "Job" || !strings.HasPrefix(top.APIVersion, "batch/") {
		return false
	}
	_, asks, _ := AutoPoolRequestOf(pod.Annotations, 0)
	return asks
}

// AutoPoolTopController is the top controller as auto pools know it, for a pod whose
// NeedsJobController is true: the Job's CronJob when jobController (the controller of
// the Job, nil when it has none) is one, since the CronJob's pool serves all its Jobs;
// else top.
func AutoPoolTopController(top TopController, jobController *metav1.OwnerReference) TopController {
	if ref := jobController; ref != nil && ref.Kind == "CronJob" && strings.HasPrefix(ref.APIVersion, "batch/") {
		return TopController{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: top.Namespace, Name: ref.Name}
	}
	return top
}
