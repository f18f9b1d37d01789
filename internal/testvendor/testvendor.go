// Package testvendor is a licence source written as a third party would
// write one, outside licensegate's own packages: the Caddy guest module
// licensegate.sources.testvendor, with its own Caddyfile block and product
// mapping option (testvendor_sku). Its tests show that such a module plugs
// in, and is wrapped and pooled, without any edit to licensegate.
//
// The vendor's API it speaks:
//
//	POST {base}/verify   form key, sku; header X-Api-Key
//	200 {"valid": true|false}   404 unknown key   anything else: outage
package testvendor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/caddymodule"
	"github.com/licensegate/licensegate/upstreams"
)

func init() {
	caddy.RegisterModule(Module{})
}

// Module is the source's configuration:
//
//	source testvendor {
//		api_key <key>
//		base_url <url>       # and the other options every source has
//	}
type Module struct {
	caddymodule.SourceOptions
	// APIKey is the author's key at the vendor. Required.
	APIKey string `json:"api_key,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Module) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "licensegate.sources.testvendor", New: func() caddy.Module { return new(Module) }}
}

// UnmarshalCaddyfile reads the source's block.
func (m *Module) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the source's name
	for d.NextBlock(0) {
		if ok, err := m.UnmarshalOption(d, "testvendor"); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if d.Val() != "api_key" || !d.NextArg() {
			return d.Errf("source testvendor: unrecognized option %q", d.Val())
		}
		m.APIKey = d.Val()
	}
	return nil
}

// MappingOption implements caddymodule.SourceModule.
func (*Module) MappingOption() (string, bool) { return "testvendor_sku", true }

// Options implements caddymodule.SourceModule.
func (m *Module) Options() (caddymodule.SourceOptions, caddymodule.SourceDefaults) {
	return m.SourceOptions, caddymodule.SourceDefaults{RateLimit: "100/m"}
}

// BuildSource implements caddymodule.SourceModule.
func (m *Module) BuildSource(c caddymodule.SourceConfig) (upstreams.Source, error) {
	if m.APIKey == "" {
		return nil, errors.New("api_key is required")
	}
	base, err := upstreams.ParseBaseURL(c.BaseURL)
	if err != nil {
		return nil, err
	}
	return &source{name: c.Name, endpoint: base + "/verify", apiKey: m.APIKey, products: c.Products, client: c.Client}, nil
}

// source asks the vendor about a key within each mapped SKU.
type source struct {
	name, endpoint, apiKey string
	products               upstreams.ProductMap
	client                 upstreams.Client
}

func (s *source) Name() string                            { return s.name }
func (s *source) CanonicalKey(key string) (string, error) { return upstreams.CleanKey(key) }

func (s *source) Verify(ctx context.Context, req upstreams.Request) upstreams.Verdict {
	mappings, key, err := upstreams.Prepare(s, s.products, req, errors.New("no testvendor_sku for"))
	if err != nil {
		return upstreams.UnknownVerdict(err)
	}
	return upstreams.AskEach(ctx, mappings, func(ctx context.Context, m upstreams.ProductMapping) upstreams.Verdict {
		return s.ask(ctx, key, m)
	})
}

func (s *source) ask(ctx context.Context, key string, m upstreams.ProductMapping) upstreams.Verdict {
	form := url.Values{"key": {key}, "sku": {m.VendorID}}
	hreq, err := http.NewRequest(http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return upstreams.Unavailable(s.name, nil, err)
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("X-Api-Key", s.apiKey)
	resp, err := s.client.Do(ctx, hreq)
	if err != nil {
		return upstreams.Unavailable(s.name, nil, upstreams.Redact(err, key, "[key]"))
	}
	switch resp.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return upstreams.InvalidVerdict(upstreams.NotFound)
	default:
		return upstreams.Unavailable(s.name, resp, nil)
	}
	var answer struct {
		Valid *bool `json:"valid"`
	}
	if err := json.Unmarshal(resp.Body, &answer); err != nil || answer.Valid == nil {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: unreadable answer", s.name))
	}
	if !*answer.Valid {
		return upstreams.InvalidVerdict(upstreams.Revoked)
	}
	return upstreams.ValidVerdict(upstreams.Record{Product: m.Product, Type: "regular"})
}

// Interface guards
var (
	_ caddymodule.SourceModule = (*Module)(nil)
	_ caddyfile.Unmarshaler    = (*Module)(nil)
	_ upstreams.Source         = (*source)(nil)
)
