package caddymodule

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
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
//		source <name> {       # the module licensegate.sources.<name> reads it
//			...
//		}
//		product <slug> {
//			sources <name...>
//			<mapping option> <id...>   # a source's, e.g. envato_item
//			activations <n>
//			local_domains free [<cap>]|slot|deny
//			staging_subdomains free [<cap>]|slot|deny
//			move_cooldown <duration>
//			refresh_cooldown <duration>
//			leak_threshold <n>/<period>
//			recheck every <duration> mode manual|auto|off [confirm <n>] [confirm_window <duration>] [auto_suspend_not_found]
//			expiry_grace <duration>
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
	case "refresh_reuse_grace":
		return reuseGraceArg(d, app)
	case "status_cache_ttl":
		return durationArg(d, &app.StatusCacheTTL)
	case "source":
		return parseSource(d, app)
	case "product":
		return parseProduct(d, app)
	case "key_rotation":
		return durationArg(d, &app.KeyRotation)
	case "audit_retention":
		return durationArg(d, &app.AuditRetention)
	case "webhook":
		return parseWebhook(d, app)
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

// parseSource parses "source <name> ...": the block is the module
// licensegate.sources.<name>'s to read (caddyfile.Unmarshaler), so a
// third-party source needs no change here.
func parseSource(d *caddyfile.Dispenser, app *App) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if _, dup := app.SourcesRaw[name]; dup {
		return d.Errf("source %s: given twice", name)
	}
	mod, err := sourceModule(name)
	if err != nil {
		return d.Errf("source: %v", err)
	}
	unm, ok := mod.(caddyfile.Unmarshaler)
	if !ok {
		return d.Errf("source %s: the module has no Caddyfile syntax; configure it in JSON", name)
	}
	if err := unm.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
		return err
	}
	if app.SourcesRaw == nil {
		app.SourcesRaw = caddy.ModuleMap{}
	}
	app.SourcesRaw[name] = caddyconfig.JSON(mod, nil)
	return nil
}

// parseWebhook parses one endpoint:
//
//	webhook <url> {
//		secret <whsec_…>     # twice during a rotation
//		events <type>...     # default: all
//		timeout <duration>   # default: 10s
//	}
//
// Secrets stay as written ({env.X}, {file./path}): they are resolved at
// provision, so they never show in the adapted JSON.
func parseWebhook(d *caddyfile.Dispenser, app *App) error {
	wh := &Webhook{}
	if err := singleArg(d, &wh.URL); err != nil {
		return err
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "secret":
			var v string
			if err := singleArg(d, &v); err != nil {
				return err
			}
			if len(wh.Secrets) == 2 {
				return d.Errf("webhook %s: secret: at most two (during a rotation)", wh.URL)
			}
			wh.Secrets = append(wh.Secrets, v)
		case "events":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			wh.Events = append(wh.Events, args...)
		case "timeout":
			if err := durationArg(d, &wh.Timeout); err != nil {
				return err
			}
		default:
			return d.Errf("webhook: unrecognized option %q", opt)
		}
	}
	if len(wh.Secrets) == 0 {
		return d.Errf("webhook %s: secret is required", wh.URL)
	}
	app.Webhooks = append(app.Webhooks, wh)
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

// reuseGraceArg parses refresh_reuse_grace: a duration of at most 1m, or
// 0 to disable the grace.
func reuseGraceArg(d *caddyfile.Dispenser, app *App) error {
	var s string
	if err := singleArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("refresh_reuse_grace: %v", err)
	}
	if dur < 0 || dur > maxReuseGrace {
		return d.Errf("refresh_reuse_grace: %q is not between 0 (off) and %s", s, maxReuseGrace)
	}
	g := caddy.Duration(dur)
	app.RefreshReuseGrace = &g
	return nil
}

// positiveArg reads the current option's one argument, a positive whole
// number; scope names the block in the error ("product p").
func positiveArg(d *caddyfile.Dispenser, scope string, dst *int) error {
	opt := d.Val()
	var s string
	if err := singleArg(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return d.Errf("%s: %s: %q is not a positive number", scope, opt, s)
	}
	*dst = n
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
