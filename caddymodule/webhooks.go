package caddymodule

import (
	"context"
	"errors"
	"fmt"
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
	for _, wh := range a.Webhooks {
		secrets := make([]string, len(wh.Secrets))
		for i, raw := range wh.Secrets {
			v, err := repl.ReplaceOrErr(raw, true, true)
			if err != nil {
				return fmt.Errorf("webhook %s: secret: %w", wh.URL, err)
			}
			secrets[i] = v
		}
		ep, err := webhooks.NewEndpoint(wh.URL, secrets, wh.Events, store.AuditActions, durationOr(wh.Timeout, defaultWebhookTimeout))
		if err != nil {
			return fmt.Errorf("webhook %s: %w", wh.URL, err)
		}
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
	a.deliveries = webhooks.NewWorker(webhooks.Config{
		Outbox: a.store, Endpoints: eps, Emit: emit, Lease: webhooks.RoundLease(eps),
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
