package webhooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Message is one event as sent: its stable id (the webhook-id of every
// attempt), the event time and the JSON body.
type Message struct {
	ID        string
	Timestamp time.Time
	Body      []byte
}

// Result is what one attempt achieved.
type Result struct {
	Delivered bool
	Status    int // the receiver's HTTP status, 0 without an answer
	// RetryAfter is the receiver's Retry-After on a 429 or 503.
	RetryAfter time.Duration
	Err        error // why it was not delivered
}

// maxAnswer bounds how much of a receiver's answer is read (it is only
// drained so the connection can be reused).
const maxAnswer = 64 << 10

// Send makes one delivery attempt to url. Any 2xx is delivered; anything
// else, a redirect included (a webhook must not follow one with its
// signature), is a failure to retry.
func Send(ctx context.Context, client *http.Client, url string, m Message, secrets []Secret) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(m.Body))
	if err != nil {
		return Result{Err: fmt.Errorf("building the request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "licensegate-webhooks/1")
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(m.Timestamp.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(m.ID, m.Timestamp, m.Body, secrets))
	resp, err := client.Do(req)
	if err != nil {
		return Result{Err: withoutURL(err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Result{Delivered: true, Status: resp.StatusCode}
	}
	r := Result{Status: resp.StatusCode, Err: fmt.Errorf("receiver answered %d", resp.StatusCode)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		r.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return r
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// NewClient returns the HTTP client deliveries use: a per-attempt timeout
// and no redirects.
func NewClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// withoutURL drops the endpoint's URL from a transport error (*url.Error
// spells it out, query included): an author's URL may carry a token of the
// receiver's, and this error is stored as the delivery's last error, shown
// by the admin API and logged.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
