package caddymodule

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

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

// recheckArgs reads recheck every <d> mode <m> [confirm <n>]
// [confirm_window <d>] [auto_suspend_not_found], its words in any order.
func recheckArgs(d *caddyfile.Dispenser, product string, p *Product) error {
	if p.Recheck != nil {
		return d.Errf("product %s: recheck: given twice", product)
	}
	rc := &RecheckConfig{}
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	value := func(i int, word string) (string, error) {
		if i+1 >= len(args) {
			return "", d.Errf("product %s: recheck %s: a value is required", product, word)
		}
		return args[i+1], nil
	}
	duration := func(word, v string) (caddy.Duration, error) {
		dur, err := caddy.ParseDuration(v)
		if err != nil || dur < 0 {
			return 0, d.Errf("product %s: recheck %s: %q is not a duration", product, word, v)
		}
		return caddy.Duration(dur), nil
	}
	for i := 0; i < len(args); i++ {
		word := args[i]
		switch word {
		case "auto_suspend_not_found":
			rc.AutoSuspendNotFound = true
			continue
		case "every", "mode", "confirm", "confirm_window":
		default:
			return d.Errf("product %s: recheck: unrecognized word %q (every, mode, confirm, confirm_window, auto_suspend_not_found)", product, word)
		}
		v, err := value(i, word)
		if err != nil {
			return err
		}
		i++
		switch word {
		case "every":
			if rc.Every, err = duration(word, v); err != nil {
				return err
			}
		case "confirm_window":
			if rc.ConfirmWindow, err = duration(word, v); err != nil {
				return err
			}
		case "mode":
			if _, err := policy.ParseRecheckMode(v); err != nil {
				return d.Errf("product %s: recheck mode: %v", product, err)
			}
			rc.Mode = v
		case "confirm":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("product %s: recheck confirm: %q is not a positive number", product, v)
			}
			rc.Confirm = n
		}
	}
	p.Recheck = rc
	return nil
}

// treatmentArg reads a product's "free [<cap>]|slot|deny" option.
func treatmentArg(d *caddyfile.Dispenser, product string, dst *string, capacity *int) error {
	opt := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 2 {
		return d.ArgErr()
	}
	t, err := policy.ParseTreatment(args[0])
	if err != nil {
		return d.Errf("product %s: %s: %v", product, opt, err)
	}
	*dst = args[0]
	if len(args) == 2 {
		n, err := strconv.Atoi(args[1])
		if t != policy.Free || err != nil || n < 1 {
			return d.Errf("product %s: %s: only free takes a cap, a positive number (got %q)", product, opt, strings.Join(args, " "))
		}
		*capacity = n
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
		return treatmentArg(d, name, &p.LocalDomains, &p.LocalCap)
	case "staging_subdomains":
		return treatmentArg(d, name, &p.StagingSubdomains, &p.StagingCap)
	case "leak_threshold":
		if err := singleArg(d, &p.LeakThreshold); err != nil {
			return err
		}
		if _, err := upstreams.ParseRate(p.LeakThreshold); err != nil {
			return d.Errf("product %s: leak_threshold: %v", name, err)
		}
	case "move_cooldown":
		var dur caddy.Duration
		if err := durationArg(d, &dur); err != nil {
			return err
		}
		p.MoveCooldown = &dur
	case "recheck":
		return recheckArgs(d, name, p)
	case "expiry_grace":
		var s string
		if err := singleArg(d, &s); err != nil {
			return err
		}
		dur, err := caddy.ParseDuration(s)
		if err != nil || dur < 0 {
			return d.Errf("product %s: expiry_grace: %q is not a duration of 0 or more", name, s)
		}
		g := caddy.Duration(dur)
		p.ExpiryGrace = &g
	case "release_idle":
		if err := durationArg(d, &p.ReleaseIdle); err != nil {
			return err
		}
	case "free_quota":
		if err := singleArg(d, &p.FreeQuota); err != nil {
			return err
		}
		if _, err := freeQuota(p.FreeQuota); err != nil {
			return d.Errf("product %s: free_quota: %v", name, err)
		}
	default:
		source, ok := mappingSource(opt) // envato_item, apptrovo_slug, ...
		if !ok {
			return d.Errf("product %s: unrecognized option %q", name, opt)
		}
		ids := d.RemainingArgs()
		if len(ids) == 0 {
			return d.ArgErr()
		}
		if p.Mappings == nil {
			p.Mappings = map[string][]string{}
		}
		p.Mappings[source] = append(p.Mappings[source], ids...)
	}
	return nil
}

// UnmarshalOption reads one of the options every source has, at d's
// current token, for source: base_url, rate_limit, timeout, concurrency.
// It reports whether the option was one of them. A source module's
// UnmarshalCaddyfile calls it for each option of its block.
func (o *SourceOptions) UnmarshalOption(d *caddyfile.Dispenser, source string) (bool, error) {
	switch d.Val() {
	case "base_url":
		return true, singleArg(d, &o.BaseURL)
	case "rate_limit":
		if err := singleArg(d, &o.RateLimit); err != nil {
			return true, err
		}
		if _, err := upstreams.ParseRate(o.RateLimit); err != nil {
			return true, d.Errf("source %s: rate_limit: %v", source, err)
		}
	case "timeout":
		return true, durationArg(d, &o.Timeout)
	case "concurrency":
		var s string
		if err := singleArg(d, &s); err != nil {
			return true, err
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return true, d.Errf("source %s: concurrency: %q is not a positive number", source, s)
		}
		o.Concurrency = n
	default:
		return false, nil
	}
	return true, nil
}

// unmarshalSource parses a source block:
//
//	<name> {
//		base_url <url>
//		rate_limit <calls>/<period>
//		timeout <duration>
//		concurrency <n>
//		<option> <value>   # the source's own, e.g. token (envato, keygen)
//	}
//
// opts may be nil for a source without the common options; own maps the
// source's single-value options to their fields.
func unmarshalSource(d *caddyfile.Dispenser, opts *SourceOptions, own map[string]*string) error {
	d.Next() // the source's name
	name := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if opts != nil {
			if ok, err := opts.UnmarshalOption(d, name); ok || err != nil {
				if err != nil {
					return err
				}
				continue
			}
		}
		dst, ok := own[d.Val()]
		if !ok {
			return d.Errf("source %s: unrecognized option %q", name, d.Val())
		}
		if err := singleArg(d, dst); err != nil {
			return err
		}
	}
	return nil
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	envato { token <token>; base_url, rate_limit, timeout, concurrency }
func (s *EnvatoSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalSource(d, &s.SourceOptions, map[string]*string{"token": &s.Token})
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	keygen { account <account>; token <token>; environment <id>; base_url, rate_limit, ... }
func (s *KeygenSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalSource(d, &s.SourceOptions, map[string]*string{"token": &s.Token, "account": &s.Account, "environment": &s.Environment})
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *AppTrovoSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalSource(d, &s.SourceOptions, nil)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *DigitalDownloadsSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalSource(d, &s.SourceOptions, nil)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *CPStoreSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalSource(d, &s.SourceOptions, nil)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	lemonsqueezy { allow_test_mode; base_url, rate_limit, timeout, concurrency }
func (s *LemonSqueezySource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the source's name
	name := d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if ok, err := s.UnmarshalOption(d, name); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if d.Val() != "allow_test_mode" {
			return d.Errf("source %s: unrecognized option %q", name, d.Val())
		}
		if d.NextArg() {
			return d.ArgErr()
		}
		s.AllowTestMode = true
	}
	return nil
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens.
func (s *GumroadSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalSource(d, &s.SourceOptions, nil)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	static {
//		file <path>
//	}
func (s *StaticSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalSource(d, nil, map[string]*string{"file": &s.File})
}

// parseExchange parses:
//
//	license_exchange {
//		rate_limit <calls>/<period>
//		failed_limit <calls>/<period>
//		failed_source_limit <calls>/<period>
//		body_timeout <duration>
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
		case "failed_source_limit":
			dst = &e.FailedSourceLimit
		case "body_timeout":
			if err := durationArg(h.Dispenser, &e.BodyTimeout); err != nil {
				return nil, err
			}
			if e.BodyTimeout < caddy.Duration(time.Second) {
				return nil, h.Errf("license_exchange: body_timeout: %s is shorter than 1s", time.Duration(e.BodyTimeout))
			}
			continue
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
//	license_gate [<slug...>] {
//		products <slug...>
//		on_store_error allow_stale [<duration>] | deny
//		forward <installation|product|domain|type|support_active|class...>
//		require support_active | type <type...> | class <class...>   # may repeat: all apply
//		quota <n>/<s|m|h|d>
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
		case "forward":
			g.Forward = append(g.Forward, h.RemainingArgs()...)
			if len(g.Forward) == 0 {
				return nil, h.ArgErr()
			}
			if _, err := parseForward(g.Forward); err != nil {
				return nil, h.Errf("license_gate: forward: %v", err)
			}
		case "require":
			r, err := parseRequire(h)
			if err != nil {
				return nil, err
			}
			g.Require = append(g.Require, r)
		case "quota":
			if err := singleArg(h.Dispenser, &g.Quota); err != nil {
				return nil, err
			}
			if _, err := ParseQuota(g.Quota); err != nil {
				return nil, h.Errf("license_gate: quota: %v", err)
			}
		default:
			return nil, h.Errf("license_gate: unrecognized option %q", opt)
		}
	}
	return g, nil
}

// parseRequire parses "require support_active", "require type <t...>" or
// "require class <c...>".
func parseRequire(h httpcaddyfile.Helper) (GateRequirement, error) {
	args := h.RemainingArgs()
	var r GateRequirement
	switch {
	case len(args) == 1 && args[0] == "support_active":
		r.SupportActive = true
	case len(args) >= 2 && args[0] == "type":
		r.Type = args[1:]
	case len(args) >= 2 && args[0] == "class":
		r.Class = args[1:]
	default:
		return r, h.Errf("license_gate: require: want support_active, type <type...> or class <class...>")
	}
	if _, err := requirements([]GateRequirement{r}); err != nil {
		return r, h.Errf("%v", err)
	}
	return r, nil
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

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*EnvatoSource)(nil)
	_ caddyfile.Unmarshaler = (*AppTrovoSource)(nil)
	_ caddyfile.Unmarshaler = (*DigitalDownloadsSource)(nil)
	_ caddyfile.Unmarshaler = (*CPStoreSource)(nil)
	_ caddyfile.Unmarshaler = (*LemonSqueezySource)(nil)
	_ caddyfile.Unmarshaler = (*GumroadSource)(nil)
	_ caddyfile.Unmarshaler = (*KeygenSource)(nil)
	_ caddyfile.Unmarshaler = (*StaticSource)(nil)
)
