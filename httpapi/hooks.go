package httpapi

import (
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/upstreams"
)

// Hooks receives store webhooks (SPEC section 7) as a net/http handler.
// Mounted under any prefix, it answers on the path's end: .../<source>,
// or .../<source>/<path token> for a source whose URL carries a secret
// (Gumroad). Only POST; the raw body, at most upstreams.MaxHookBody, is
// what every signature is checked over.
type Hooks struct {
	Service *gateway.Service
	Logger  *zap.Logger
	// Target is the request-target the vendor addressed, which Keygen
	// signs (nil: r.RequestURI). Caddy passes its original request's,
	// since a rewrite changes r.RequestURI.
	Target func(*http.Request) string
	// BodyTimeout bounds how long a body may take to arrive (0:
	// DefaultBodyTimeout).
	BodyTimeout time.Duration
}

// hookAnswer is the body of a 200: what the hook did, for the vendor's
// delivery log.
type hookAnswer struct {
	Outcome string `json:"outcome"`
	Queued  int    `json:"queued,omitempty"`
}

// ServeHTTP implements http.Handler.
func (h *Hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	source, token, ok := h.route(r.URL.Path)
	if !ok {
		WriteProblem(w, h.Logger, &gateway.Error{Code: gateway.CodeNotFound, Detail: "No store webhooks are received here."})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		WriteProblem(w, h.Logger, &gateway.Error{Code: gateway.CodeMethodNotAllowed, Detail: "Use POST for store webhooks."})
		return
	}
	timeout := h.BodyTimeout
	if timeout <= 0 {
		timeout = DefaultBodyTimeout
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	body, err := readHookBody(r)
	if err != nil {
		WriteProblem(w, h.Logger, err)
		return
	}
	req := upstreams.HookRequest{
		Method: r.Method, Target: h.target(r), Host: r.Host, PathToken: token,
		Header: r.Header, Body: body,
	}
	res, err := h.Service.ReceiveHook(r.Context(), source, req)
	if err != nil {
		WriteProblem(w, h.Logger, err)
		return
	}
	WriteJSON(w, http.StatusOK, hookAnswer{Outcome: res.Outcome, Queued: res.Queued})
}

// route reads the source (and path token) from the path's end: the last
// segment when it names a source that receives webhooks here, else the
// one before it, with the last as the token.
func (h *Hooks) route(p string) (source, token string, ok bool) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	sources := h.Service.HookSources()
	n := len(segs)
	switch {
	case slices.Contains(sources, segs[n-1]):
		return segs[n-1], "", true
	case n >= 2 && slices.Contains(sources, segs[n-2]):
		return segs[n-2], segs[n-1], true
	default:
		return "", "", false
	}
}

// HasPathToken says whether a path ends in a path token (a secret): the
// segment after a source's name.
func (h *Hooks) HasPathToken(p string) bool {
	_, token, ok := h.route(p)
	return ok && token != ""
}

func (h *Hooks) target(r *http.Request) string {
	if h.Target != nil {
		return h.Target(r)
	}
	return r.RequestURI
}

// readHookBody reads the raw body, refusing one past the bound (413) or
// one that does not arrive in time (408).
func readHookBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > upstreams.MaxHookBody {
		return nil, &gateway.Error{Code: gateway.CodeRequestTooLarge, Detail: "The webhook's body is larger than licensegate accepts."}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, upstreams.MaxHookBody+1))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, &gateway.Error{Code: gateway.CodeRequestTimeout, Detail: "The webhook's body did not arrive in time.", Cause: err}
	case err != nil:
		return nil, &gateway.Error{Code: gateway.CodeMalformedRequest, Detail: "The webhook's body could not be read.", Cause: err}
	case len(body) > upstreams.MaxHookBody:
		return nil, &gateway.Error{Code: gateway.CodeRequestTooLarge, Detail: "The webhook's body is larger than licensegate accepts."}
	}
	return body, nil
}
