package agent

import (
	"os"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	// controller-runtime's caches log through its process-wide logger; the agent's own
	// logs go to the logger each test passes in.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(testenv.Main(m, &env))
}
