package cni

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/wire"
)

// agentHint tells an operator where to look when the agent cannot be reached.
const agentHint = "check that ipam_unix_socket_path in the CNI config names the agent's socket, " +
	"that the orbweaver-agent DaemonSet pod is running on this node, " +
	"and its logs: kubectl -n kube-system logs ds/orbweaver-agent"

// agent calls orbweaver-agent over its unix socket (pkg/agent/api/wire: the plugin's
// imports are paid on every exec). Every error it returns is a *types.Error with the
// code the runtime should see.
type agent struct {
	c       *wire.Client
	socket  string
	timeout time.Duration // for messages; the deadline itself comes with ctx
}

func newAgent(socket string, timeout time.Duration) *agent {
	return &agent{c: wire.NewClient(socket), socket: socket, timeout: timeout}
}

func (a *agent) add(ctx context.Context, args *wire.AddArgs) (*wire.AddResult, error) {
	res, err := a.c.Add(ctx, args)
	if err != nil {
		return nil, a.classify(ctx, "add", err)
	}
	if res == nil {
		return nil, types.NewError(types.ErrInternal, "orbweaver-agent answered add with an empty body", "")
	}
	return res, nil
}

func (a *agent) del(ctx context.Context, att *wire.Attachment) error {
	return a.classify(ctx, "del", a.c.Del(ctx, att))
}

func (a *agent) check(ctx context.Context, args *wire.CheckArgs) error {
	return a.classify(ctx, "check", a.c.Check(ctx, args))
}

func (a *agent) gc(ctx context.Context, args *wire.GCArgs) (*wire.GCResult, error) {
	res, err := a.c.GC(ctx, args)
	if err != nil {
		return nil, a.classify(ctx, "gc", err)
	}
	return res, nil
}

func (a *agent) status(ctx context.Context) (*wire.Status, error) {
	st, err := a.c.Status(ctx)
	if err != nil {
		return nil, a.classify(ctx, "status", err)
	}
	if st == nil || st.Ready == nil {
		return nil, types.NewError(types.ErrInternal, "orbweaver-agent answered status without \"ready\"", "")
	}
	return st, nil
}

// classify turns an error of the client into the CNI error the runtime
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
	var ae *wire.APIError
	if errors.As(err, &ae) {
		p := ae.Payload
		if p == nil || p.Code == nil || p.Message == nil {
			return types.NewError(types.ErrInternal,
				fmt.Sprintf("orbweaver-agent answered %s with HTTP %d and no error message", op, ae.Status), "")
		}
		code := uint(types.ErrInternal)
		if *p.Code > 0 {
			code = uint(*p.Code)
		}
		return types.NewError(code, *p.Message, p.Reason)
	}
	var ce *wire.ConnError
	if errors.As(err, &ce) {
		// The request never got an answer: no socket, nobody listening, or the agent
		// went away mid-call.
		what := ce.Err.Error()
		if ce.Op != "dial" {
			what = "the connection failed before an answer (" + ce.Op + "): " + what
		}
		where := " on unix socket " + a.socket + ": "
		if strings.Contains(what, a.socket) { // "dial unix <socket>: connect: ..."
			where = ": "
		}
		return types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("cannot reach orbweaver-agent%s%s; %s", where, what, agentHint), "")
	}
	return types.NewError(types.ErrInternal, fmt.Sprintf("cannot read orbweaver-agent's answer to %s: %v", op, err), "")
}
