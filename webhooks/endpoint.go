package webhooks

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"
)

// NewEndpoint checks an endpoint as an author configured it and builds
// it: an http(s) URL, one secret (two during a rotation, already resolved
// from {env.X} and the like), event types among known (none: all), and a
// timeout per attempt.
func NewEndpoint(rawURL string, secrets, events, known []string, timeout time.Duration) (Endpoint, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Endpoint{}, fmt.Errorf("url: %q is not an http(s) URL", rawURL)
	}
	if len(secrets) == 0 || len(secrets) > 2 {
		return Endpoint{}, errors.New("secret: give one, or two during a rotation")
	}
	ep := Endpoint{URL: rawURL, Events: events}
	for _, v := range secrets {
		sec, err := ParseSecret(v)
		if err != nil {
			return Endpoint{}, fmt.Errorf("secret: %w", err)
		}
		ep.Secrets = append(ep.Secrets, sec)
	}
	for _, ev := range events {
		if !slices.Contains(known, ev) {
			return Endpoint{}, fmt.Errorf("events: unknown event type %q", ev)
		}
	}
	if timeout <= 0 {
		return Endpoint{}, errors.New("timeout: must be positive")
	}
	ep.Client = NewClient(timeout)
	return ep, nil
}

// RoundLease is how long a delivery worker's claim must last: one round
// sends to each endpoint in turn, so the claim outlasts them all (at
// least a minute).
func RoundLease(eps []Endpoint) time.Duration {
	var round time.Duration
	for _, ep := range eps {
		round += ep.Client.Timeout
	}
	return max(time.Minute, 2*round)
}
