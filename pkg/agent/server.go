package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-openapi/strfmt"
	"k8s.io/utils/ptr"

	"github.com/orbweaver-ipam/orbweaver/pkg/agent/api/models"
	"github.com/orbweaver-ipam/orbweaver/pkg/version"
)

// maxBody bounds a request body: the largest valid one (GC with every attachment of a
// node) is far below it.
const maxBody = 4 << 20

// validatable is every request model.
type validatable interface {
	Validate(strfmt.Registry) error
}

// Handler serves the agent API (pkg/agent/api/openapi.yaml) for a Service.
func Handler(s *Service) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ipam/add", func(w http.ResponseWriter, r *http.Request) {
		var args models.AddArgs
		if !decodeRequest(w, r, &args) {
			return
		}
		res, err := s.Add(r.Context(), &args)
		reply(w, res, err)
	})
	mux.HandleFunc("POST /v1/ipam/del", func(w http.ResponseWriter, r *http.Request) {
		var att models.Attachment
		if !decodeRequest(w, r, &att) {
			return
		}
		reply(w, nil, s.Del(r.Context(), &att))
	})
	mux.HandleFunc("POST /v1/ipam/check", func(w http.ResponseWriter, r *http.Request) {
		var args models.CheckArgs
		if !decodeRequest(w, r, &args) {
			return
		}
		reply(w, nil, s.Check(r.Context(), &args))
	})
	mux.HandleFunc("POST /v1/ipam/gc", func(w http.ResponseWriter, r *http.Request) {
		var args models.GCArgs
		if !decodeRequest(w, r, &args) {
			return
		}
		n, err := s.GC(r.Context(), &args)
		reply(w, &models.GCResult{Released: n}, err)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reasons := s.NotReady(r.Context())
		if len(reasons) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, &models.Error{
				Code: ptr.To(codePluginNotAvailable), Reason: ReasonNotReady,
				Message: ptr.To(fmt.Sprintf("orbweaver agent on node %s cannot allocate: %v", s.node, reasons)),
			})
			return
		}
		// The version lets the plugin warn when it and the agent come from different
		// releases (a node upgraded halfway).
		writeJSON(w, http.StatusOK, &models.Status{Ready: ptr.To(true), Version: version.Version(), Commit: version.Commit()})
	})
	return mux
}

// decodeRequest reads and validates a request body, answering 400 with a CNI code 7 error when
// it is malformed; it reports whether the handler should go on.
func decodeRequest(w http.ResponseWriter, r *http.Request, into validatable) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(body, into)
	}
	if err == nil {
		err = into.Validate(strfmt.Default)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, &models.Error{
			Code: ptr.To(codeInvalidConfig), Reason: ReasonBadRequest,
			Message: ptr.To(fmt.Sprintf("malformed request to %s (is the orbweaver plugin the same version as the agent?): %v", r.URL.Path, err)),
		})
		return false
	}
	return true
}

// reply writes the result, or the error with its CNI code.
func reply(w http.ResponseWriter, result any, err error) {
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError(err))
		return
	}
	if result == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, result)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeUnix serves h on a unix socket at path until ctx ends. A stale socket file from a
// previous run is removed first; the socket is readable and writable by root only,
// since whoever can reach it can take and free addresses.
func ServeUnix(ctx context.Context, path string, h http.Handler) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("create the socket's folder: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("restrict socket %s: %w", path, err)
	}
	return serve(ctx, l, h)
}

// serve runs an HTTP server on l until ctx ends, then shuts it down gracefully so that
// in-flight requests (whose pool writes may be landing) still get their answers.
func serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
