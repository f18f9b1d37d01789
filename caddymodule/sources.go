package caddymodule

import (
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"

	"github.com/licensegate/licensegate/upstreams"
	"github.com/licensegate/licensegate/upstreams/static"
)

func init() {
	caddy.RegisterModule(StaticSource{})
}

// StaticSource is the author's own key list, a CSV file with the header
// key,product,type,licensed_to,expires_at,support_until,activations,status.
// The file is re-read when it changes.
type StaticSource struct {
	// File is the CSV file's path (relative paths are from the working
	// directory).
	File string `json:"file,omitempty"`

	*static.Source
}

// CaddyModule returns the Caddy module information.
func (StaticSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "licensegate.sources.static",
		New: func() caddy.Module { return new(StaticSource) },
	}
}

// Provision reads the file.
func (s *StaticSource) Provision(caddy.Context) error {
	if s.File == "" {
		return errors.New("source static: file is required")
	}
	src, err := static.New("static", s.File)
	if err != nil {
		return fmt.Errorf("source static: %w", err)
	}
	s.Source = src
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner = (*StaticSource)(nil)
	_ upstreams.Source  = (*StaticSource)(nil)
)
