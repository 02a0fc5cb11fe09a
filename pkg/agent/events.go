package agent

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
)

// recorderEvents posts pod events through a client-go event recorder, which aggregates
// repeats so a pod retried every few seconds does not flood the API server.
type recorderEvents struct {
	recorder record.EventRecorder
}

var _ Events = recorderEvents{}

func (e recorderEvents) Warning(pod *corev1.Pod, reason, message string) {
	e.recorder.Event(pod, corev1.EventTypeWarning, reason, message)
}

// Event reasons on pods.
const (
	EventAllocationFailed = "IPAllocationFailed"
)
