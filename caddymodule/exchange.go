package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/httpapi"
	"github.com/licensegate/licensegate/upstreams"
)

func init() {
	caddy.RegisterModule(Exchange{})
}

// Exchange is the installer API (SPEC section 4). Mounted under any
// prefix, it answers on the last path segment: POST activate, token,
// deactivate, move and status/refresh; GET status and jwks.json. It answers every request
// itself and never calls the next handler.
//
// Per client (as Caddy determines its address, honouring trusted_proxies;
// an IPv6 client counts by its /64) it limits requests to every endpoint
// and failed activations, and per source it bounds the activations of
// unknown keys that reach the marketplace, answering 429 rate_limited with
// Retry-After beyond them. The limits are kept in memory by each instance,
// and a config reload keeps them while the limit's settings stay the same
// (limitPool): a reload is no way to a fresh budget.
type Exchange struct {
	// RateLimit bounds requests per client IP, as "<calls>/<period>".
	// Default: 120/m (AppTrovo's documented installer limit).
	RateLimit string `json:"rate_limit,omitempty"`
	// FailedLimit bounds failed activations (any 4xx) per client IP, so a
	// key cannot be guessed by brute force. A call is reserved before the
	// activation and given back when it succeeds. Default: 20/10m.
	FailedLimit string `json:"failed_limit,omitempty"`
	// FailedSourceLimit bounds, per source and for all clients together,
	// the activations of keys the store does not know that the source
	// does not vindicate, so a flood of random well-formed keys from many
	// addresses cannot spend the marketplace's rate budget honest
	// installers need: past it, unknown keys are answered 429 before any
	// marketplace call (keys already stored are unaffected, valid keys
	// give their call back). Half of it is a reserve only client networks
	// without a recent failure may draw on, so a flood from many networks
	// leaves honest first activations their calls. Not applied to the
	// static source. Default: 30/m.
	FailedSourceLimit string `json:"failed_source_limit,omitempty"`
	// BodyTimeout bounds how long a request body may take to arrive: a
	// client trickling its 64 KiB a byte at a time does not hold a
	// connection and a handler for minutes. Past it: 408 request_timeout.
	// Default: 10s.
	BodyTimeout caddy.Duration `json:"body_timeout,omitempty"`

	api    httpapi.Exchange
	pooled []string // limitPool keys this handler holds
}

// CaddyModule returns the Caddy module information.
func (Exchange) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.license_exchange",
		New: func() caddy.Module { return new(Exchange) },
	}
}

// Provision gets the licensegate app's service and takes the pooled
// limiters its settings name (Cleanup lets go of them).
func (e *Exchange) Provision(ctx caddy.Context) error {
	app, err := licensegateApp(ctx, "license_exchange")
	if err != nil {
		return err
	}
	req, err := parseRateOr("rate_limit", e.RateLimit, "120/m")
	if err != nil {
		return err
	}
	fail, err := parseRateOr("failed_limit", e.FailedLimit, "20/10m")
	if err != nil {
		return err
	}
	src, err := parseRateOr("failed_source_limit", e.FailedSourceLimit, "30/m")
	if err != nil {
		return err
	}
	if e.BodyTimeout != 0 && time.Duration(e.BodyTimeout) < time.Second {
		return fmt.Errorf("license_exchange: body_timeout: %s is shorter than 1s", time.Duration(e.BodyTimeout))
	}
	e.api = httpapi.Exchange{
		Service: app.Service(), Logger: ctx.Logger(),
		Requests:    pooledLimit(e, "rate_limit", req, httpapi.NewLimiter),
		Failures:    pooledLimit(e, "failed_limit", fail, httpapi.NewLimiter),
		Budget:      pooledLimit(e, "failed_source_limit", src, newFailureBudget),
		BodyTimeout: time.Duration(e.BodyTimeout), ClientIP: clientIP,
	}
	return nil
}

// limitPool holds the exchanges' limiters across config reloads, as
// caddy-ratelimit keeps its zones: Caddy provisions the new config before
// it cleans up the old one, so a limiter whose option and rate are
// unchanged passes from one to the next with what each client has spent.
// Exchanges with the same settings share one limiter (as one zone).
var limitPool = caddy.NewUsagePool()

// pooledLimiter wraps a limiter for the pool: dropping it frees nothing.
type pooledLimiter[L any] struct{ limiter L }

func (pooledLimiter[L]) Destruct() error { return nil }

// pooledLimit returns the pooled limiter for option at r, making it with
// mk when no loaded config holds one, and records the key for Cleanup.
func pooledLimit[L any](e *Exchange, option string, r upstreams.Rate, mk func(upstreams.Rate) L) L {
	key := fmt.Sprintf("license_exchange %s %d/%s", option, r.Calls, r.Period)
	v, _, _ := limitPool.LoadOrNew(key, func() (caddy.Destructor, error) { return pooledLimiter[L]{mk(r)}, nil })
	e.pooled = append(e.pooled, key)
	return v.(pooledLimiter[L]).limiter
}

func newFailureBudget(r upstreams.Rate) *gateway.FailureBudget {
	return gateway.NewFailureBudget(r, nil)
}

// Cleanup lets go of the handler's limiters; the pool drops each when no
// config holds it any more.
func (e *Exchange) Cleanup() error {
	for _, key := range e.pooled {
		_, _ = limitPool.Delete(key)
	}
	e.pooled = nil
	return nil
}

// licensegateApp returns the configured licensegate app. The handlers
// never make one up: an app nobody configured would have no products and a
// secret nobody backs up.
func licensegateApp(ctx caddy.Context, directive string) (*App, error) {
	app, err := ctx.AppIfConfigured("licensegate")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil, fmt.Errorf("%s: the licensegate global option is not configured: %w", directive, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", directive, err)
	}
	return app.(*App), nil
}

func parseRateOr(option, v, def string) (upstreams.Rate, error) {
	if v == "" {
		v = def
	}
	r, err := upstreams.ParseRate(v)
	if err != nil {
		return upstreams.Rate{}, fmt.Errorf("license_exchange: %s: %w", option, err)
	}
	return r, nil
}

// ServeHTTP answers through httpapi.Exchange; it never calls next.
func (e *Exchange) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	e.api.ServeHTTP(w, r)
	return nil
}

// clientIP is the connection's address as Caddy determined it (honouring
// trusted_proxies).
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Exchange)(nil)
	_ caddy.CleanerUpper          = (*Exchange)(nil)
	_ caddyhttp.MiddlewareHandler = (*Exchange)(nil)
)

// parseExchange parses:
//
//	license_exchange {
//		rate_limit <calls>/<period>
//		failed_limit <calls>/<period>
//		failed_source_limit <calls>/<period>
//		body_timeout <duration>
//	}
func parseExchange(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // directive name
	if h.NextArg() {
		return nil, h.ArgErr()
	}
	e := new(Exchange)
	for h.NextBlock(0) {
		opt := h.Val()
		var dst *string
		switch opt {
		case "rate_limit":
			dst = &e.RateLimit
		case "failed_limit":
			dst = &e.FailedLimit
		case "failed_source_limit":
			dst = &e.FailedSourceLimit
		case "body_timeout":
			if err := durationArg(h.Dispenser, &e.BodyTimeout); err != nil {
				return nil, err
			}
			if e.BodyTimeout < caddy.Duration(time.Second) {
				return nil, h.Errf("license_exchange: body_timeout: %s is shorter than 1s", time.Duration(e.BodyTimeout))
			}
			continue
		default:
			return nil, h.Errf("license_exchange: unrecognized option %q", opt)
		}
		if err := singleArg(h.Dispenser, dst); err != nil {
			return nil, err
		}
		if _, err := upstreams.ParseRate(*dst); err != nil {
			return nil, h.Errf("license_exchange: %s: %v", opt, err)
		}
	}
	return e, nil
}
