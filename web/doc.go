// Package web is the small kit the people-facing surfaces (the buyer
// portal, the author console) share, with no Caddy and no business logic in
// it:
//
//   - SecurityHeaders / SetSecurityHeaders: the headers every page carries
//     (CSP, framing, referrer, caching, sniffing).
//   - Sessions: state in sealed cookies (secret.Master's AES-GCM, the cookie
//     name as associated data), so no server-side session store is needed
//     and a reload or a second instance reads the same session. Besides the
//     session it keeps two short-lived companions: a one-shot flash message
//     and a pre-session sign-in state (OAuth state, PKCE verifier, where to
//     go back to, and the binding for the sign-in form's CSRF token).
//   - CSRF: a synchronizer token that is a keyed hash of the session (or
//     sign-in) id, checked in constant time, behind net/http's
//     CrossOriginProtection (Sec-Fetch-Site / Origin) as a second line.
//   - Renderer: html/template pages in one layout, templates and CSS
//     embedded, English strings in one table, the CSS served under the
//     surface's base path with its content hash in the URL.
//
// Nothing here logs: a surface logs through its own zap logger, and never a
// cookie's contents or a CSRF key.
package web
