package agent

import (
	"os"
	"testing"

	"github.com/orbweaver-ipam/orbweaver/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }
