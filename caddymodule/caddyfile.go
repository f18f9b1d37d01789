package caddymodule

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/upstreams"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("licensegate", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("license_exchange", parseExchange)
	httpcaddyfile.RegisterHandlerDirective("license_gate", parseGate)
	// The gate is authentication: it runs before handle/route/respond, so a
	// site-level gate cannot be bypassed. The exchange answers requests
	// itself, like respond.
	httpcaddyfile.RegisterDirectiveOrder("license_gate", httpcaddyfile.After, "basic_auth")
	httpcaddyfile.RegisterDirectiveOrder("license_exchange", httpcaddyfile.Before, "respond")
}

// parseGlobalOption parses the licensegate global option block:
//
//	licensegate {
//		storage embedded [<path>] | redis [<url>] { ... }
//		secret <value>
//		issuer <iss>
//		access_token_ttl <duration>
//		refresh_token_ttl <duration>
//		status_cache_ttl <duration>
//		key_rotation <duration>
//		source static {
//			file <path>
//		}
//		product <slug> {
//			sources <name...>
//			activations <n>
//			local_domains free|slot|deny
//			staging_subdomains free|slot|deny
//			move_cooldown <duration>
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("licensegate: the global option may be given only once")
	}
	app := new(App)
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		if err := parseAppOption(d, app); err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: "licensegate", Value: caddyconfig.JSON(app, nil)}, nil
}

func parseAppOption(d *caddyfile.Dispenser, app *App) error {
	switch opt := d.Val(); opt {
	case "storage":
		raw, err := parseStorage(d)
		if err != nil {
			return err
		}
		app.StorageRaw = raw
	case "secret":
		return singleArg(d, &app.Secret)
	case "issuer":
		return singleArg(d, &app.Issuer)
	case "access_token_ttl":
		return durationArg(d, &app.AccessTokenTTL)
	case "refresh_token_ttl":
		return durationArg(d, &app.RefreshTokenTTL)
	case "status_cache_ttl":
		return durationArg(d, &app.StatusCacheTTL)
	case "source":
		return parseSource(d, app)
	case "product":
		return parseProduct(d, app)
	case "key_rotation":
		return durationArg(d, &app.KeyRotation)
	default:
		return d.Errf("licensegate: unrecognized option %q", opt)
	}
	return nil
}

func parseStorage(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	switch kind := d.Val(); kind {
	case "embedded":
		s := EmbeddedStorage{}
		if d.NextArg() {
			s.Path = d.Val()
		}
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		if d.NextBlock(1) {
			return nil, d.Errf("storage embedded: takes no block")
		}
		return caddyconfig.JSONModuleObject(s, "module", "embedded", nil), nil
	case "redis":
		return parseRedisStorage(d)
	default:
		return nil, d.Errf("storage: unknown kind %q (want embedded or redis)", kind)
	}
}

// parseRedisStorage parses:
//
//	storage redis [<url>] {
//		address <redis://host:port/db>
//		addresses <host:port...>
//		cluster
//		master_name <name>
//		username <user>
//		password <password>
//		tls
//		key_prefix <prefix>
//		timeout <duration>
//		dial_timeout <duration>
//	}
func parseRedisStorage(d *caddyfile.Dispenser) (json.RawMessage, error) {
	var s RedisStorage
	if d.NextArg() {
		s.Address = d.Val()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(1) {
		var err error
		switch opt := d.Val(); opt {
		case "address":
			err = singleArg(d, &s.Address)
		case "addresses":
			s.Addresses = d.RemainingArgs()
			if len(s.Addresses) == 0 {
				err = d.ArgErr()
			}
		case "cluster":
			s.Cluster = true
		case "master_name":
			err = singleArg(d, &s.MasterName)
		case "username":
			err = singleArg(d, &s.Username)
		case "password":
			err = singleArg(d, &s.Password)
		case "tls":
			s.TLS = true
		case "key_prefix":
			err = singleArg(d, &s.KeyPrefix)
		case "timeout":
			err = durationArg(d, &s.Timeout)
		case "dial_timeout":
			err = durationArg(d, &s.DialTimeout)
		default:
			err = d.Errf("storage redis: unrecognized option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return caddyconfig.JSONModuleObject(s, "module", "redis", nil), nil
}

func parseSource(d *caddyfile.Dispenser, app *App) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	if _, dup := app.SourcesRaw[name]; dup {
		return d.Errf("source %s: given twice", name)
	}
	var mod any
	switch name {
	case "static":
		s := StaticSource{}
		for d.NextBlock(1) {
			switch d.Val() {
			case "file":
				if err := singleArg(d, &s.File); err != nil {
					return err
				}
			default:
				return d.Errf("source static: unrecognized option %q", d.Val())
			}
		}
		mod = s
	case "envato", "apptrovo", "digitaldownloads", "cpstore", "lemonsqueezy", "gumroad", "keygen":
		m, err := parseMarketplace(d, name)
		if err != nil {
			return err
		}
		mod = m
	default:
		return d.Errf("source: unknown source %q", name)
	}
	if app.SourcesRaw == nil {
		app.SourcesRaw = caddy.ModuleMap{}
	}
	app.SourcesRaw[name] = caddyconfig.JSON(mod, nil)
	return nil
}

func parseProduct(d *caddyfile.Dispenser, app *App) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	if _, dup := app.Products[name]; dup {
		return d.Errf("product %s: given twice", name)
	}
	p := &Product{}
	for d.NextBlock(1) {
		if err := parseProductOption(d, name, p); err != nil {
			return err
		}
	}
	if app.Products == nil {
		app.Products = map[string]*Product{}
	}
	app.Products[name] = p
	return nil
}

// treatmentArg reads a product's free|slot|deny option.
func treatmentArg(d *caddyfile.Dispenser, product string, dst *string) error {
	opt := d.Val()
	if err := singleArg(d, dst); err != nil {
		return err
	}
	if _, err := policy.ParseTreatment(*dst); err != nil {
		return d.Errf("product %s: %s: %v", product, opt, err)
	}
	return nil
}

func parseProductOption(d *caddyfile.Dispenser, name string, p *Product) error {
	switch opt := d.Val(); opt {
	case "sources":
		p.Sources = d.RemainingArgs()
		if len(p.Sources) == 0 {
			return d.ArgErr()
		}
	case "activations":
		var s string
		if err := singleArg(d, &s); err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return d.Errf("product %s: activations: %q is not a positive number", name, s)
		}
		p.Activations = n
	case "local_domains":
		return treatmentArg(d, name, &p.LocalDomains)
	case "staging_subdomains":
		return treatmentArg(d, name, &p.StagingSubdomains)
	case "move_cooldown":
		var dur caddy.Duration
		if err := durationArg(d, &dur); err != nil {
			return err
		}
		p.MoveCooldown = &dur
	case "recheck", "leak_threshold", "release_idle":
		return d.Errf("product %s: %s: not supported yet", name, opt)
	default:
		dst, ok := mappingField(p, opt) // envato_item, apptrovo_slug, ...
		if !ok {
			return d.Errf("product %s: unrecognized option %q", name, opt)
		}
		ids := d.RemainingArgs()
		if len(ids) == 0 {
			return d.ArgErr()
		}
		*dst = append(*dst, ids...)
	}
	return nil
}

// parseMarketplace parses a marketplace source block:
//
//	source <name> {
//		base_url <url>
//		rate_limit <calls>/<period>
//		timeout <duration>
//		concurrency <n>
//		token <token>      # envato (required), keygen (optional)
//		account <account>  # keygen (required)
//	}
func parseMarketplace(d *caddyfile.Dispenser, name string) (any, error) {
	var opts SourceOptions
	var token, account string
	for d.NextBlock(1) {
		opt := d.Val()
		var err error
		switch {
		case opt == "base_url":
			err = singleArg(d, &opts.BaseURL)
		case opt == "rate_limit":
			err = singleArg(d, &opts.RateLimit)
			if err == nil {
				if _, perr := upstreams.ParseRate(opts.RateLimit); perr != nil {
					err = d.Errf("source %s: rate_limit: %v", name, perr)
				}
			}
		case opt == "timeout":
			err = durationArg(d, &opts.Timeout)
		case opt == "concurrency":
			var s string
			if err = singleArg(d, &s); err == nil {
				n, aerr := strconv.Atoi(s)
				if aerr != nil || n < 1 {
					err = d.Errf("source %s: concurrency: %q is not a positive number", name, s)
				}
				opts.Concurrency = n
			}
		case opt == "token" && (name == "envato" || name == "keygen"):
			err = singleArg(d, &token)
		case opt == "account" && name == "keygen":
			err = singleArg(d, &account)
		default:
			err = d.Errf("source %s: unrecognized option %q", name, opt)
		}
		if err != nil {
			return nil, err
		}
	}
	switch name {
	case "envato":
		return EnvatoSource{SourceOptions: opts, Token: token}, nil
	case "apptrovo":
		return AppTrovoSource{SourceOptions: opts}, nil
	case "digitaldownloads":
		return DigitalDownloadsSource{SourceOptions: opts}, nil
	case "cpstore":
		return CPStoreSource{SourceOptions: opts}, nil
	case "lemonsqueezy":
		return LemonSqueezySource{SourceOptions: opts}, nil
	case "gumroad":
		return GumroadSource{SourceOptions: opts}, nil
	default:
		return KeygenSource{SourceOptions: opts, Account: account, Token: token}, nil
	}
}

// parseExchange parses:
//
//	license_exchange {
//		rate_limit <calls>/<period>
//		failed_limit <calls>/<period>
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

// parseGate parses:
//
//	license_gate {
//		products <slug...>
//	}
func parseGate(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h.Next() // directive name
	g := new(Gate)
	g.Products = h.RemainingArgs()
	for h.NextBlock(0) {
		switch opt := h.Val(); opt {
		case "products":
			g.Products = append(g.Products, h.RemainingArgs()...)
		case "on_store_error":
			if err := parseOnStoreError(h, g); err != nil {
				return nil, err
			}
		case "require", "quota":
			return nil, h.Errf("license_gate: %s: not supported yet", opt)
		default:
			return nil, h.Errf("license_gate: unrecognized option %q", opt)
		}
	}
	return g, nil
}

// parseOnStoreError parses "on_store_error allow_stale [<duration>]" or
// "on_store_error deny".
func parseOnStoreError(h httpcaddyfile.Helper, g *Gate) error {
	args := h.RemainingArgs()
	switch {
	case len(args) == 1 && args[0] == "deny":
		g.OnStoreError = &StoreErrorPolicy{Mode: "deny"}
	case len(args) >= 1 && len(args) <= 2 && args[0] == "allow_stale":
		p := &StoreErrorPolicy{Mode: "allow_stale"}
		if len(args) == 2 {
			dur, err := caddy.ParseDuration(args[1])
			if err != nil || dur <= 0 {
				return h.Errf("license_gate: on_store_error: allow_stale %q is not a positive duration", args[1])
			}
			p.Stale = caddy.Duration(dur)
		}
		g.OnStoreError = p
	default:
		return h.Errf("license_gate: on_store_error: want allow_stale [<duration>] or deny")
	}
	return nil
}

func singleArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	var s string
	if err := singleArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: %v", opt, err)
	}
	if dur <= 0 {
		return d.Errf("%s: %q must be positive", opt, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}
