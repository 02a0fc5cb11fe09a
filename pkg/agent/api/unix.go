// Package api holds the agent's OpenAPI spec (openapi.yaml), the models and client that
// `make generate` produces from it (models/, client/), and how to reach the agent.
package api

import (
	"context"
	"net"
	"net/http"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"

	apiclient "github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
)

// NewUnixClient returns the generated client speaking to the agent over its unix socket.
// Each call opens its own connection: the CNI plugin makes one or two requests and exits.
func NewUnixClient(socket string) operations.ClientService {
	rt := httptransport.New(apiclient.DefaultHost, apiclient.DefaultBasePath, apiclient.DefaultSchemes)
	rt.Transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives:  true,
		DisableCompression: true,
	}
	// The go-openapi runtime turns debug dumps on from $DEBUG; they would go to stderr,
	// which the plugin keeps for its own messages.
	rt.Debug = false
	return apiclient.New(rt, strfmt.Default).Operations
}
