// Package e2e holds the tests that run orbweaver's API, and later its binaries, against
// real servers: tier 2 (a real kube-apiserver + etcd) for now.
package e2e

import (
	"os"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }
