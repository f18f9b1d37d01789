package policy

import "strings"

// Hosting platforms give every site preview or staging hosts under their
// own domains (SPEC section 14): an installation there is the buyer's
// staging copy, not another production site. PlatformStagingSuffixes are
// those suffixes, each with where the platform documents it; a product's
// staging_hosts adds the author's own. A suffix matches a host below it,
// never the suffix itself.
var PlatformStagingSuffixes = []string{
	".wpengine.com",        // WP Engine environments, <env>.wpengine.com (wpengine.com/support/environments)
	".wpenginepowered.com", // WP Engine environment domains (wpengine.com/support/wp-engine-domains)
	".kinsta.cloud",        // Kinsta staging, staging-<site>.kinsta.cloud (kinsta.com/docs/wordpress-hosting/staging-environment)
	".cloudwaysapps.com",   // Cloudways temporary application URLs (support.cloudways.com, "application URL")
	".pantheonsite.io",     // Pantheon dev/test/multidev, <env>-<site>.pantheonsite.io (docs.pantheon.io/guides/domains/platform-domains)
	".flywheelsites.com",   // Flywheel staging and temporary domains (getflywheel.com/wordpress-support/temporary-domains)
	".sg-host.com",         // SiteGround temporary domains (siteground.com/kb/temporary-domain)
	".instawp.xyz",         // InstaWP sandboxes (instawp.com/docs)
	".tastewp.com",         // TasteWP test sites (tastewp.com)
	".vercel.app",          // Vercel preview deployments (vercel.com/docs/deployments/generated-urls)
	".netlify.app",         // Netlify deploy previews (docs.netlify.com/site-deploys/deploy-previews)
	".ngrok-free.app",      // ngrok tunnels, free plan (ngrok.com/docs/universal-gateway/domains)
	".ngrok.app",           // ngrok tunnels
	".ngrok.io",            // ngrok tunnels, legacy domains
	".trycloudflare.com",   // Cloudflare quick tunnels (developers.cloudflare.com/cloudflare-one/connections/connect-networks/do-more-with-tunnels/trycloudflare)
	".loca.lt",             // localtunnel (theboroer.github.io/localtunnel-www)
}

// StagingHost reports whether a normalised domain is a hosting platform's
// staging or preview host: one of PlatformStagingSuffixes or of extra
// (a product's staging_hosts, normalised by NormalizeSuffix).
func StagingHost(domain string, extra []string) bool {
	for _, lists := range [2][]string{PlatformStagingSuffixes, extra} {
		for _, s := range lists {
			if len(domain) > len(s) && strings.HasSuffix(domain, s) {
				return true
			}
		}
	}
	return false
}

// NormalizeSuffix turns an author's staging_hosts entry (example.dev,
// .example.dev or *.example.dev) into the form StagingHost compares:
// lower-case, with one leading dot. ok is false for one that names no
// domain (empty, a bare TLD, spaces).
func NormalizeSuffix(s string) (string, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(strings.TrimPrefix(s, "*"), ".")
	if s == "" || !strings.Contains(s, ".") || strings.ContainsAny(s, " /:*") {
		return "", false
	}
	return "." + s, true
}
