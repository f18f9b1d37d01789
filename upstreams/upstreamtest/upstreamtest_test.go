package upstreamtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/licensegate/licensegate/upstreams"
)

// reference is the smallest adapter that answers every case as an adapter
// must: the helpers are checked against it.
type reference struct {
	endpoint string
	client   upstreams.Client
}

func (reference) Name() string                            { return "reference" }
func (reference) CanonicalKey(key string) (string, error) { return upstreams.CleanKey(key) }

func (s reference) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	hreq, err := http.NewRequest(http.MethodPost, s.endpoint, strings.NewReader(url.Values{"key": {req.Key}}.Encode()))
	if err != nil {
		return upstreams.Unavailable(s.Name(), nil, err)
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(ctx, hreq)
	if err != nil {
		return upstreams.Unavailable(s.Name(), nil, err)
	}
	switch resp.Status {
	case http.StatusOK:
	case http.StatusTooManyRequests:
		return upstreams.RateLimited(s.Name(), resp, s.client.Now())
	default:
		return upstreams.Unavailable(s.Name(), resp, nil)
	}
	var a struct {
		Valid *bool `json:"valid"`
	}
	if err := json.Unmarshal(resp.Body, &a); err != nil || a.Valid == nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable answer", s.Name()))
	}
	if !*a.Valid {
		return upstreams.InvalidVerdict(upstreams.NotFound)
	}
	return upstreams.ValidVerdict(upstreams.Record{Product: "p"})
}

func newReference(target Target) (upstreams.Source, error) {
	base, err := upstreams.ParseBaseURL(target.BaseURL)
	if err != nil {
		return nil, err
	}
	client, err := upstreams.NewClient(target.UpstreamClient())
	if err != nil {
		return nil, err
	}
	return reference{endpoint: base + "/verify", client: client}, nil
}

func TestRunOutageCases(t *testing.T) {
	RunOutageCases(t, func(t *testing.T, target Target) upstreams.Source {
		s, err := newReference(target)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		return s
	}, upstreams.Request{Key: "Reference-Key-1234"})
}

func TestRunBaseURLCases(t *testing.T) {
	RunBaseURLCases(t, func(baseURL string) error {
		_, err := newReference(Target{BaseURL: baseURL})
		return err
	})
}
