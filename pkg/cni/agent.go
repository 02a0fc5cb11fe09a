package cni

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/client/operations"
	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
)

// agentHint tells an operator where to look when the agent cannot be reached.
const agentHint = "check that ipam_unix_socket_path in the CNI config names the agent's socket, " +
	"that the orbweaver-agent DaemonSet pod is running on this node, " +
	"and its logs: kubectl -n kube-system logs ds/orbweaver-agent"

// agent calls orbweaver-agent over its unix socket with the generated client. Every
// error it returns is a *types.Error with the code the runtime should see.
type agent struct {
	ops     operations.ClientService
	socket  string
	timeout time.Duration // for messages; the deadline itself comes with ctx
}

func newAgent(socket string, timeout time.Duration) *agent {
	return &agent{ops: api.NewUnixClient(socket), socket: socket, timeout: timeout}
}

// The generated params default to a 30s timeout of their own; 0 leaves the deadline
// to ctx, which carries ipam.timeout.
const noParamTimeout = 0

func (a *agent) add(ctx context.Context, args *models.AddArgs) (*models.AddResult, error) {
	ok, err := a.ops.AddContext(ctx, operations.NewAddParamsWithTimeout(noParamTimeout).WithArgs(args))
	if err != nil {
		return nil, a.classify(ctx, "add", err)
	}
	if ok.Payload == nil {
		return nil, types.NewError(types.ErrInternal, "orbweaver-agent answered add with an empty body", "")
	}
	return ok.Payload, nil
}

func (a *agent) del(ctx context.Context, att *models.Attachment) error {
	_, err := a.ops.DelContext(ctx, operations.NewDelParamsWithTimeout(noParamTimeout).WithArgs(att))
	return a.classify(ctx, "del", err)
}

func (a *agent) check(ctx context.Context, args *models.CheckArgs) error {
	_, err := a.ops.CheckContext(ctx, operations.NewCheckParamsWithTimeout(noParamTimeout).WithArgs(args))
	return a.classify(ctx, "check", err)
}

func (a *agent) gc(ctx context.Context, args *models.GCArgs) (*models.GCResult, error) {
	ok, err := a.ops.GcContext(ctx, operations.NewGcParamsWithTimeout(noParamTimeout).WithArgs(args))
	if err != nil {
		return nil, a.classify(ctx, "gc", err)
	}
	if ok.Payload == nil {
		return &models.GCResult{}, nil
	}
	return ok.Payload, nil
}

func (a *agent) status(ctx context.Context) (*models.Status, error) {
	ok, err := a.ops.StatusContext(ctx, operations.NewStatusParamsWithTimeout(noParamTimeout))
	if err != nil {
		return nil, a.classify(ctx, "status", err)
	}
	if ok.Payload == nil || ok.Payload.Ready == nil {
		return nil, types.NewError(types.ErrInternal, "orbweaver-agent answered status without \"ready\"", "")
	}
	return ok.Payload, nil
}

// agentError is what the generated client returns for a non-2xx answer: the
// operation's Default response carrying the Error model.
type agentError interface {
	error
	Code() int
	GetPayload() *models.Error
}

// classify turns an error of the generated client into the CNI error the runtime
// sees: code 11 (try again later) when the agent cannot be reached or does not
// answer in time, the agent's own code for an Error model, 999 for anything else.
func (a *agent) classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("orbweaver-agent did not answer %s within %s (ipam.timeout) on unix socket %s; %s",
				op, a.timeout, a.socket, agentHint), "")
	}
	var ae agentError
	if errors.As(err, &ae) {
		p := ae.GetPayload()
		if p == nil || p.Code == nil || p.Message == nil {
			return types.NewError(types.ErrInternal,
				fmt.Sprintf("orbweaver-agent answered %s with HTTP %d and no error message", op, ae.Code()), "")
		}
		code := uint(types.ErrInternal)
		if *p.Code > 0 {
			code = uint(*p.Code)
		}
		return types.NewError(code, *p.Message, p.Reason)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// The request never got an answer: no socket, nobody listening, or the agent
		// went away mid-call.
		where := " on unix socket " + a.socket + ": "
		if strings.Contains(ue.Err.Error(), a.socket) { // "dial unix <socket>: connect: ..."
			where = ": "
		}
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("cannot reach orbweaver-agent%s%v; %s", where, ue.Err, agentHint), "")
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("cannot read orbweaver-agent's answer to %s: %v", op, err), "")
}
