package crdcheck

import (
	"os"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

// env is this package's own API server: TestEnsure replaces orbweaver's CRDs with
// SpiderPool's in it, which no other package's tests may see.
var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}
