package agent

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
	"github.com/orbweaver-ipam/orbweaver/pkg/crdcheck"
)

// TestRunRefusesSpiderPoolSchema: against an API server of its own that serves
// SpiderPool's CRDs (as after `helm install` over SpiderPool, which keeps them), the agent
// returns at once with the refusal and the command to run, before it takes the node lock
// or the socket; a Warning event on the endpoint CRD says the same. (Every other test of
// the package runs the agent against orbweaver's CRDs, where the check passes.)
func TestRunRefusesSpiderPoolSchema(t *testing.T) {
	testenv.Require(t, env)
	own, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := own.Stop(); err != nil {
			t.Error(err)
		}
	}()
	spiderPool := filepath.Join(own.Root, "pkg", "crdcheck", "testdata", "spiderpool-v1.2.2")
	if _, err := envtest.InstallCRDs(own.Config, envtest.CRDInstallOptions{Paths: []string{spiderPool}, ErrorIfPathMissing: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := shortTempDir(t)
	cfg := Config{NodeName: "refused", RESTConfig: own.Config, SocketPath: filepath.Join(dir, "agent.sock"), Log: quietLog(t),
		Ready: func() { t.Error("the agent got ready") }}
	err = Run(ctx, cfg)
	if !errors.Is(err, crdcheck.ErrSchema) || !strings.Contains(err.Error(), "orbweaver-agent refuses to start") ||
		!strings.Contains(err.Error(), "spiderendpoints.spiderpool.spidernet.io lacks status.current.orbweaver") ||
		!strings.Contains(err.Error(), crdcheck.Fix) {
		t.Fatalf("Run = %v; want the refusal with what to run", err)
	}
	for _, name := range []string{"agent.sock", "node-refused.lock"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after the refusal: %v; want none", name, err)
		}
	}
	var events corev1.EventList
	if err := own.Client.List(ctx, &events, client.InNamespace(metav1.NamespaceDefault)); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range events.Items {
		if ev.InvolvedObject.Name == "spiderendpoints.spiderpool.spidernet.io" && ev.Type == corev1.EventTypeWarning &&
			ev.Source.Component == "orbweaver-agent" && ev.Source.Host == "refused" && strings.Contains(ev.Message, crdcheck.Fix) {
			found = true
		}
	}
	if !found {
		t.Errorf("no Warning event from orbweaver-agent on the SpiderEndpoint CRD: %+v", events.Items)
	}
}
