package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/store"
)

// AdminBase prefixes every route of the admin API.
const AdminBase = "/licensegate/"

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 64 << 10

// Admin is the author's levers (SPEC section 8): look up, suspend,
// reinstate, lock and unlock licences, deactivate installations, rotate
// signing keys, read the audit log, webhook deliveries and statistics.
// It trusts whoever reaches it: it is mounted on Caddy's admin endpoint,
// whose protections (localhost by default, origin checks, remote admin
// with mTLS) it inherits.
type Admin struct {
	Service *gateway.Service // nil: no licensegate app is configured
	Logger  *zap.Logger
}

// Serve answers /licensegate/<resource>[/<id>[/<action>]]. An error it
// returns is a *StatusError (the status and the message for the author)
// for the admin listener to write, or nil when it has answered.
func (a *Admin) Serve(w http.ResponseWriter, r *http.Request) error {
	if a.Service == nil {
		return apiError(http.StatusServiceUnavailable, errors.New("the licensegate app is not configured"))
	}
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, AdminBase), "/"), "/")
	switch {
	case parts[0] == "licenses" && len(parts) == 1:
		return a.methods(w, r, map[string]handler{http.MethodGet: a.listLicenses})
	case parts[0] == "licenses" && len(parts) == 2 && parts[1] == "lookup":
		return a.methods(w, r, map[string]handler{http.MethodPost: a.lookup})
	case parts[0] == "licenses" && len(parts) == 2:
		return a.methods(w, r, map[string]handler{http.MethodGet: a.withID(parts[1], a.showLicense)})
	case parts[0] == "licenses" && len(parts) == 3 && parts[2] == "recheck":
		return a.methods(w, r, map[string]handler{http.MethodPost: a.withID(parts[1], a.recheckLicense)})
	case parts[0] == "licenses" && len(parts) == 3:
		return a.methods(w, r, map[string]handler{http.MethodPost: a.withID(parts[1], a.licenseAction(parts[2]))})
	case parts[0] == "installations" && len(parts) == 2:
		return a.methods(w, r, map[string]handler{
			http.MethodGet:    a.withID(parts[1], a.showInstallation),
			http.MethodDelete: a.withID(parts[1], a.deactivateInstallation),
		})
	case parts[0] == "keys" && len(parts) == 2 && parts[1] == "rotate":
		return a.methods(w, r, map[string]handler{http.MethodPost: a.rotateKeys})
	case parts[0] == "audit" && len(parts) == 1:
		return a.methods(w, r, map[string]handler{http.MethodGet: a.audit})
	case parts[0] == "webhooks" && len(parts) == 2 && parts[1] == "deliveries":
		return a.methods(w, r, map[string]handler{http.MethodGet: a.deliveries})
	case parts[0] == "webhooks" && len(parts) == 4 && parts[1] == "deliveries" && parts[3] == "retry":
		return a.methods(w, r, map[string]handler{http.MethodPost: a.withID(parts[2], a.retryDelivery)})
	case parts[0] == "stats" && len(parts) == 1:
		return a.methods(w, r, map[string]handler{http.MethodGet: a.stats})
	case parts[0] == "health" && len(parts) == 1:
		return a.methods(w, r, map[string]handler{http.MethodGet: a.health})
	}
	return apiError(http.StatusNotFound, fmt.Errorf("no such licensegate resource: %s", r.URL.Path))
}

type handler func(w http.ResponseWriter, r *http.Request) error

func (a *Admin) methods(w http.ResponseWriter, r *http.Request, hs map[string]handler) error {
	h, ok := hs[r.Method]
	if !ok {
		allowed := make([]string, 0, len(hs))
		for m := range hs {
			allowed = append(allowed, m)
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed", r.Method))
	}
	err := h(w, r)
	var se *StatusError
	if gateway.ClientClosed(r.Context(), err) || errors.As(err, &se) && se.Status == StatusClientClosed {
		// Not a failure: nothing to answer, nothing for Caddy to log as one.
		WriteClientClosed(w, a.Logger, err)
		return nil
	}
	return err
}

// withID checks an id's shape before any store access.
func (a *Admin) withID(id string, h func(http.ResponseWriter, *http.Request, string) error) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		if id == "" || len(id) > 128 || strings.ContainsAny(id, " \t\r\n") {
			return apiError(http.StatusNotFound, errors.New("not found"))
		}
		return h(w, r, id)
	}
}

func (a *Admin) svc() *gateway.Service { return a.Service }

// health answers the readiness check: 200 when serving, 503 naming the
// failing parts when not (SPEC section 8).
func (a *Admin) health(w http.ResponseWriter, r *http.Request) error {
	h := a.svc().Health(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !h.Serving {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	return json.NewEncoder(w).Encode(h)
}

func (a *Admin) showLicense(w http.ResponseWriter, r *http.Request, id string) error {
	d, err := a.svc().License(r.Context(), id)
	if err != nil {
		return a.fail(err, "licence")
	}
	return writeAdminJSON(w, d)
}

func (a *Admin) lookup(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		LicenseKey   string `json:"license_key"`
		PurchaseCode string `json:"purchase_code"`
	}
	if err := decodeAdminBody(r, &body); err != nil {
		return err
	}
	key := body.LicenseKey
	if key == "" {
		key = body.PurchaseCode
	}
	if key == "" {
		return apiError(http.StatusBadRequest, errors.New("license_key is required"))
	}
	d, err := a.svc().LookupKey(r.Context(), key)
	if err != nil {
		return a.fail(err, "licence")
	}
	return writeAdminJSON(w, d)
}

func (a *Admin) licenseAction(action string) func(http.ResponseWriter, *http.Request, string) error {
	return func(w http.ResponseWriter, r *http.Request, id string) error {
		var body struct {
			Reason string `json:"reason"`
		}
		if err := decodeAdminBody(r, &body); err != nil {
			return err
		}
		d, err := a.svc().ChangeLicense(r.Context(), id, action, body.Reason)
		if errors.Is(err, gateway.ErrUnknownAction) {
			return apiError(http.StatusNotFound, fmt.Errorf("unknown licence action %q (suspend, reinstate, lock, unlock, recheck)", action))
		}
		if err != nil {
			return a.fail(err, "licence")
		}
		a.Logger.Info("licence changed", zap.String("license_id", id), zap.String("action", action))
		return writeAdminJSON(w, d)
	}
}

// recheckLicense asks the licence's source now (SPEC section 7) and
// answers the outcome with the licence as it stands after it.
func (a *Admin) recheckLicense(w http.ResponseWriter, r *http.Request, id string) error {
	if err := decodeAdminBody(r, &struct {
		Reason string `json:"reason"`
	}{}); err != nil {
		return err
	}
	out, err := a.svc().RecheckLicense(r.Context(), id)
	if err != nil {
		return a.fail(err, "licence")
	}
	d, err := a.svc().License(r.Context(), id)
	if err != nil {
		return a.fail(err, "licence")
	}
	a.Logger.Info("licence rechecked", zap.String("license_id", id), zap.String("outcome", out.Outcome),
		zap.String("reason", out.Reason), zap.String("event", out.Event))
	return writeAdminJSON(w, map[string]any{"outcome": out, "license": d.License, "installations": d.Installations})
}

func (a *Admin) showInstallation(w http.ResponseWriter, r *http.Request, id string) error {
	in, d, err := a.svc().Installation(r.Context(), id)
	if err != nil {
		return a.fail(err, "installation")
	}
	return writeAdminJSON(w, map[string]any{"installation": in, "license": d.License})
}

func (a *Admin) deactivateInstallation(w http.ResponseWriter, r *http.Request, id string) error {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeAdminBody(r, &body); err != nil {
		return err
	}
	in, d, err := a.svc().DeactivateInstallation(r.Context(), id, body.Reason)
	if err != nil {
		return a.fail(err, "installation")
	}
	a.Logger.Info("installation deactivated", zap.String("installation_id", id))
	return writeAdminJSON(w, map[string]any{"installation": in, "license": d.License})
}

func (a *Admin) rotateKeys(w http.ResponseWriter, r *http.Request) error {
	kid, keys, err := a.svc().RotateKeys(r.Context())
	if err != nil {
		return a.fail(err, "key")
	}
	a.Logger.Info("signing key rotated", zap.String("kid", kid))
	return writeAdminJSON(w, map[string]any{"kid": kid, "keys": keys})
}

func (a *Admin) listLicenses(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := optionalInt(q.Get("limit"))
	if err != nil {
		return err
	}
	list, next, err := a.svc().ListLicenses(r.Context(), gateway.LicenseFilter{
		Query: q.Get("q"), Status: q.Get("status"), Product: q.Get("product"), Cursor: q.Get("cursor"), Limit: limit,
	})
	if err != nil {
		return a.fail(err, "licence")
	}
	return writeAdminJSON(w, map[string]any{"licenses": list, "next_cursor": next})
}

func (a *Admin) audit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := optionalInt(q.Get("limit"))
	if err != nil {
		return err
	}
	var since time.Time
	if s := q.Get("since"); s != "" {
		if since, err = time.Parse(time.RFC3339, s); err != nil {
			return apiError(http.StatusBadRequest, fmt.Errorf("since: %q is not an RFC 3339 time", s))
		}
	}
	evs, next, err := a.svc().Audit(r.Context(), store.AuditQuery{After: q.Get("cursor"), Since: since, Limit: limit})
	if err != nil {
		return a.fail(err, "audit event")
	}
	return writeAdminJSON(w, map[string]any{"events": evs, "next_cursor": next})
}

// deliveries answers GET webhooks/deliveries?status=&cursor=&limit=.
func (a *Admin) deliveries(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := optionalInt(q.Get("limit"))
	if err != nil {
		return err
	}
	es, next, err := a.svc().Deliveries(r.Context(), store.OutboxQuery{Status: q.Get("status"), After: q.Get("cursor"), Limit: limit})
	if err != nil {
		return a.fail(err, "delivery")
	}
	return writeAdminJSON(w, map[string]any{"deliveries": es, "next_cursor": next})
}

// retryDelivery answers POST webhooks/deliveries/{id}/retry.
func (a *Admin) retryDelivery(w http.ResponseWriter, r *http.Request, id string) error {
	if err := a.svc().RetryDelivery(r.Context(), id); err != nil {
		return a.fail(err, "failed delivery")
	}
	return writeAdminJSON(w, map[string]any{"id": id, "status": store.OutboxPending})
}

func (a *Admin) stats(w http.ResponseWriter, r *http.Request) error {
	st, err := a.svc().Stats(r.Context())
	if err != nil {
		return a.fail(err, "stats")
	}
	return writeAdminJSON(w, st)
}

// fail turns a service error into an admin API error.
func (a *Admin) fail(err error, what string) error {
	if errors.Is(err, gateway.ErrNotFound) {
		return apiError(http.StatusNotFound, fmt.Errorf("%s not found", what))
	}
	var ge *gateway.Error
	if errors.As(err, &ge) {
		if ge.Code == gateway.CodeClientClosed {
			return apiError(StatusClientClosed, err) // methods ends the request quietly
		}
		if ge.Code == gateway.CodeValidationFailed {
			// Bad input, like a bad limit or since: 400, naming the field.
			return apiError(http.StatusBadRequest, errors.New(fieldsMessage(ge)))
		}
		status := statusFor[ge.Code]
		if status == 0 {
			status = http.StatusInternalServerError
		}
		if status >= 500 {
			a.Logger.Error("admin request failed", zap.String("code", ge.Code), zap.Error(ge.Cause))
		}
		return apiError(status, errors.New(ge.Detail))
	}
	a.Logger.Error("admin request failed", zap.Error(err))
	return apiError(http.StatusInternalServerError, err)
}

// fieldsMessage spells out a validation error's fields, in name order:
// "cursor: is not a cursor this gateway issued".
func fieldsMessage(ge *gateway.Error) string {
	if len(ge.Fields) == 0 {
		return ge.Detail
	}
	parts := make([]string, 0, len(ge.Fields))
	for _, name := range slices.Sorted(maps.Keys(ge.Fields)) {
		parts = append(parts, name+": "+strings.Join(ge.Fields[name], ", "))
	}
	return strings.Join(parts, "; ")
}

// StatusError is an admin API refusal: the status to answer and what to
// tell the author.
type StatusError struct {
	Status int
	Err    error
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

func apiError(status int, err error) error {
	return &StatusError{Status: status, Err: err}
}

// decodeAdminBody reads an optional JSON object body.
func decodeAdminBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("reading body: %w", err))
	}
	if len(body) > maxAdminBody {
		return apiError(http.StatusRequestEntityTooLarge, errors.New("body larger than 64 KiB"))
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("decoding JSON body: %w", err))
	}
	return nil
}

func optionalInt(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, apiError(http.StatusBadRequest, fmt.Errorf("limit: %q is not a non-negative number", s))
	}
	return n, nil
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}
