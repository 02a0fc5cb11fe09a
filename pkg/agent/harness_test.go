package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v2beta1 "github.com/orbweaver-ipam/orbweaver/apis/spiderpool.spidernet.io/v2beta1"
	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
)

// testAgent is a real agent serving one simulated node on a unix socket, reached through
// the generated client exactly as the CNI plugin reaches it.
type testAgent struct {
	node   string
	socket string
	api    operations.ClientService
}

var nodeSeq atomic.Int64

// startAgent creates a Node and runs an agent for it until the test ends.
func startAgent(t *testing.T, e *testenv.Env, opts ...func(*Config)) *testAgent {
	t.Helper()
	node := fmt.Sprintf("node-%d", nodeSeq.Add(1))
	ctx := context.Background()
	if err := e.Client.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"kubernetes.io/hostname": node}}}); err != nil {
		t.Fatal(err)
	}
	// unix socket paths are limited to 108 bytes; t.TempDir() can be longer.
	socket := filepath.Join(shortTempDir(t), "agent.sock")
	cfg := Config{NodeName: node, RESTConfig: e.Config, SocketPath: socket, Log: quietLog(t)}
	for _, o := range opts {
		o(&cfg)
	}
	ready := make(chan struct{})
	cfg.Ready = func() { close(ready) }
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent %s: %v", node, err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("agent %s stopped before it was ready: %v", node, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("agent %s not ready after 60s", node)
	}
	return &testAgent{node: node, socket: socket, api: api.NewUnixClient(socket)}
}

func quietLog(t *testing.T) logr.Logger {
	if testing.Verbose() {
		return testr.NewWithOptions(t, testr.Options{Verbosity: 1})
	}
	return logr.Discard()
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ow")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// agentError is what the agent answered instead of a result.
type agentError struct {
	status int
	model  *models.Error
}

func (e *agentError) Error() string {
	return fmt.Sprintf("HTTP %d: code %d %s: %s", e.status, ptr.Deref(e.model.Code, 0), e.model.Reason, ptr.Deref(e.model.Message, ""))
}

// asAgentError unwraps the generated client's error types.
func asAgentError(err error) error {
	var (
		add    *operations.AddDefault
		del    *operations.DelDefault
		check  *operations.CheckDefault
		gc     *operations.GcDefault
		status *operations.StatusDefault
	)
	switch {
	case errors.As(err, &add):
		return &agentError{add.Code(), add.Payload}
	case errors.As(err, &del):
		return &agentError{del.Code(), del.Payload}
	case errors.As(err, &check):
		return &agentError{check.Code(), check.Payload}
	case errors.As(err, &gc):
		return &agentError{gc.Code(), gc.Payload}
	case errors.As(err, &status):
		return &agentError{status.Code(), status.Payload}
	}
	return err
}

type attachment struct {
	pod         *corev1.Pod
	containerID string
	ifName      string
	network     string
}

func (a attachment) model() *models.Attachment {
	return &models.Attachment{
		ContainerID: ptr.To(a.containerID), IfName: ptr.To(a.ifName),
		PodNamespace: ptr.To(a.pod.Namespace), PodName: ptr.To(a.pod.Name), PodUID: string(a.pod.UID),
		NetworkName: a.network, NetNamespace: "/var/run/netns/test",
	}
}

func (ta *testAgent) add(ctx context.Context, a attachment, mutate ...func(*models.AddArgs)) (*models.AddResult, error) {
	args := &models.AddArgs{Attachment: a.model()}
	for _, m := range mutate {
		m(args)
	}
	ok, err := ta.api.AddContext(ctx, operations.NewAddParams().WithArgs(args))
	if err != nil {
		return nil, asAgentError(err)
	}
	return ok.Payload, nil
}

func (ta *testAgent) del(ctx context.Context, a attachment) error {
	_, err := ta.api.DelContext(ctx, operations.NewDelParams().WithArgs(a.model()))
	return asAgentError(err)
}

func (ta *testAgent) check(ctx context.Context, a attachment, ips ...string) error {
	_, err := ta.api.CheckContext(ctx, operations.NewCheckParams().WithArgs(&models.CheckArgs{Attachment: a.model(), Ips: ips}))
	return asAgentError(err)
}

// newNamespace creates a namespace (and its default ServiceAccount, which pods need and
// no controller-manager creates here).
func newNamespace(t *testing.T, e *testenv.Env, annotations map[string]string) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("ns-%d", nodeSeq.Add(1))
	if err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// newPod creates a pod bound to node (no kubelet runs it).
func newPod(t *testing.T, e *testenv.Env, ns, name, node string, annotations map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: annotations, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			NodeName:                     node,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "c", Image: "registry.invalid/pause:1"}},
		},
	}
	if err := e.Client.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// newPool creates a pool.
func newPool(t *testing.T, e *testenv.Env, name, subnet string, mutate func(*v2beta1.SpiderIPPool), ips ...string) *v2beta1.SpiderIPPool {
	t.Helper()
	sp := testPool(name, subnet, ips...)
	if mutate != nil {
		mutate(sp)
	}
	if err := e.Client.Create(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	return sp
}

// waitForPools waits until the agent answers STATUS, which it does once its caches have
// synced and hold some pool. The test's own pool may still be on its way through the
// watch; that is enough, since the agent asks the API server before it calls a pool
// unknown.
func waitForPools(t *testing.T, ta *testAgent) {
	t.Helper()
	testenv.WaitFor(t, "agent status", func() (bool, error) {
		_, err := ta.api.StatusContext(context.Background(), operations.NewStatusParams())
		return err == nil, err
	})
}

// events returns the messages of the Warning events of a pod.
func podWarnings(ctx context.Context, e *testenv.Env, pod *corev1.Pod) ([]string, error) {
	var list corev1.EventList
	if err := e.Client.List(ctx, &list, client.InNamespace(pod.Namespace)); err != nil {
		return nil, err
	}
	var out []string
	for _, ev := range list.Items {
		if ev.InvolvedObject.UID == pod.UID && ev.Type == corev1.EventTypeWarning {
			out = append(out, ev.Reason+": "+ev.Message)
		}
	}
	return out, nil
}

func getEndpoint(ctx context.Context, e *testenv.Env, pod *corev1.Pod) (*v2beta1.SpiderEndpoint, error) {
	se := &v2beta1.SpiderEndpoint{}
	err := e.Client.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}, se)
	return se, err
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
