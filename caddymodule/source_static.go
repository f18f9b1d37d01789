package caddymodule

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/static"
)

func init() {
	caddy.RegisterModule(StaticSource{})
}

// StaticSource is the author's own key list, a CSV file with the header
// key,product,type,licensed_to,expires_at,support_until,activations,status.
// The file is re-read when it changes. It is a local source: asking it
// costs nothing, so the app neither wraps it in the resilience layer nor
// keeps it across reloads (a reload reads the file afresh, and fails on a
// broken one).
type StaticSource struct {
	// File is the CSV file's path (relative paths are from the working
	// directory). Required.
	File string `json:"file,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (StaticSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "licensegate.sources.static",
		New: func() caddy.Module { return new(StaticSource) },
	}
}

// MappingOption implements SourceModule: the file names each key's
// product itself.
func (*StaticSource) MappingOption() (string, bool) { return "", false }

// Options implements SourceModule; a local source has none of them.
func (*StaticSource) Options() (SourceOptions, SourceDefaults) {
	return SourceOptions{}, SourceDefaults{}
}

// Local implements upstreams.Local: the source it builds does no network
// I/O.
func (*StaticSource) Local() bool { return true }

// BuildSource implements SourceModule: it reads the file.
func (s *StaticSource) BuildSource(c SourceConfig) (upstreams.Source, error) {
	if s.File == "" {
		return nil, errors.New("file is required")
	}
	return static.New(c.Name, s.File)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	static {
//		file <path>
//	}
func (s *StaticSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return sourceBlock{values: map[string]*string{"file": &s.File}}.unmarshal(d)
}

// Interface guards
var (
	_ SourceModule          = (*StaticSource)(nil)
	_ upstreams.Local       = (*StaticSource)(nil)
	_ caddyfile.Unmarshaler = (*StaticSource)(nil)
)
