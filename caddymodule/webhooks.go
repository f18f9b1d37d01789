package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/gateway"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/webhooks"
)

// defaultWebhookTimeout bounds one delivery attempt.
const defaultWebhookTimeout = 10 * time.Second

// Webhook is one endpoint every event (or the events named) is POSTed to,
// signed by the Standard Webhooks convention (SPEC section 10). Each
// endpoint gets its own delivery of each event.
type Webhook struct {
	// URL receives the events (http or https).
	URL string `json:"url"`
	// Secrets sign the messages: "whsec_<base64>", usually
	// "{env.X}" or "{file./path}" (resolved at provision, never logged,
	// kept as given in the config). Two during a rotation: both
	// signatures are sent.
	Secrets []string `json:"secrets"`
	// Events are the event types sent (installation.created, ...).
	// Default: all.
	Events []string `json:"events,omitempty"`
	// Timeout bounds one delivery attempt. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// provisionWebhooks resolves the endpoints' secrets and builds the
// delivery worker, which also emits each event as a Caddy event
// licensegate.<type> (dots replaced by underscores).
func (a *App) provisionWebhooks(ctx caddy.Context) error {
	var eps []webhooks.Endpoint
	repl := caddy.NewReplacer()
	for i, wh := range a.Webhooks {
		u, err := url.Parse(wh.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhook %d: url: %q is not an http(s) URL", i, wh.URL)
		}
		if len(wh.Secrets) == 0 || len(wh.Secrets) > 2 {
			return fmt.Errorf("webhook %s: secret: give one, or two during a rotation", wh.URL)
		}
		ep := webhooks.Endpoint{URL: wh.URL, Events: wh.Events}
		for _, raw := range wh.Secrets {
			v, err := repl.ReplaceOrErr(raw, true, true)
			if err != nil {
				return fmt.Errorf("webhook %s: secret: %w", wh.URL, err)
			}
			sec, err := webhooks.ParseSecret(v)
			if err != nil {
				return fmt.Errorf("webhook %s: secret: %w", wh.URL, err)
			}
			ep.Secrets = append(ep.Secrets, sec)
		}
		for _, ev := range wh.Events {
			if !slices.Contains(store.AuditActions, ev) {
				return fmt.Errorf("webhook %s: events: unknown event type %q", wh.URL, ev)
			}
		}
		if wh.Timeout < 0 {
			return fmt.Errorf("webhook %s: timeout: must not be negative", wh.URL)
		}
		ep.Client = webhooks.NewClient(durationOr(wh.Timeout, defaultWebhookTimeout))
		eps = append(eps, ep)
	}
	// Handlers subscribe in the events app's config: without one, nobody
	// listens, and none is instantiated for nothing.
	var emit func(context.Context, string, webhooks.Body)
	app, err := ctx.AppIfConfigured("events")
	if err != nil && !errors.Is(err, caddy.ErrNotConfigured) {
		return fmt.Errorf("loading the events app: %w", err)
	}
	if events, ok := app.(*caddyevents.App); ok {
		emit = func(_ context.Context, typ string, body webhooks.Body) {
			events.Emit(ctx, CaddyEventName(typ), body.Map())
		}
	}
	// One round sends to each endpoint in turn: the claim outlasts them all.
	var round time.Duration
	for _, ep := range eps {
		round += ep.Client.Timeout
	}
	lease := max(time.Minute, 2*round)
	a.deliveries = webhooks.NewWorker(webhooks.Config{
		Outbox: a.store, Endpoints: eps, Emit: emit, Lease: lease,
		Logger: a.logger.Named("webhooks"), Observe: a.observer().WebhookDelivery,
	})
	if len(eps) > 0 {
		a.logger.Info("webhooks configured", zap.Int("endpoints", len(eps)))
	}
	return nil
}

// CaddyEventName is the Caddy event an event type is emitted as:
// license.suspended -> licensegate.license_suspended.
func CaddyEventName(eventType string) string {
	return "licensegate." + strings.ReplaceAll(eventType, ".", "_")
}

// deliveryWorker is the webhook delivery worker as a service worker.
func (a *App) deliveryWorker() gateway.Worker {
	return gateway.Worker{Name: "webhooks", Run: a.deliveries.Run}
}
