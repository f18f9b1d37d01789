// Package envatotest plays Envato for tests of Sign in with Envato: its
// OAuth authorization and token endpoints and the buyer API the portal
// reads, for configurable test buyers, with switches for the outages the
// portal must survive. Handler, browser and end-to-end tests use it alike:
// the authorization endpoint redirects straight back to the redirect URI,
// so a headless browser following it signs in without a form.
//
//	GET  /authorization                         -> 302 redirect_uri?code=..&state=..
//	POST /token                                 authorization_code and refresh_token grants
//	GET  /v3/market/buyer/list-purchases?page=N {"count":..,"results":[..]}
//	GET  /v1/market/private/user/username.json  {"username":".."}
//
// Errors take Envato's shapes: RFC 6749 {"error","error_description"} from
// /token, {"error":<status>,"description":..} from the API.
package envatotest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// Outage is how the server misbehaves on /token and the API (never on
// /authorization, which a browser loads).
type Outage int

const (
	// Up answers normally.
	Up Outage = iota
	// ServerError answers 503 with Envato's error body.
	ServerError
	// Hang never answers: the caller's deadline must end the request.
	Hang
	// RateLimited answers 429 with Retry-After: RetryAfter seconds.
	RateLimited
	// Unauthorized answers 401 to the API, as for a revoked grant.
	Unauthorized
	// Garbage answers 200 with an HTML page.
	Garbage
	// Oversized answers 200 with a JSON body of 4 MiB.
	Oversized
)

// Purchase is one purchase of a test buyer.
type Purchase struct {
	Code           string // the purchase code (a UUID)
	ItemID         int64
	ItemName       string
	License        string // "Regular License", "Extended License"
	SupportedUntil string // RFC 3339, or "" for null
	SoldAt         string // RFC 3339
}

// Buyer is a test buyer's account.
type Buyer struct {
	Username  string
	Purchases []Purchase
}

// Server is the Envato counterpart. Its exported fields may be set before
// the first request; the switches (SetOutage, SignInAs) at any time.
type Server struct {
	*httptest.Server
	// ClientID, ClientSecret and RedirectURI are the registered app's; a
	// RedirectURI of "" accepts any.
	ClientID, ClientSecret, RedirectURI string
	// PageSize is list-purchases' page size (default 100).
	PageSize int
	// RetryAfter is the RateLimited outage's Retry-After, in seconds
	// (default 30).
	RetryAfter int

	mu       sync.Mutex
	buyers   map[string]*Buyer
	signedIn string
	outage   Outage
	codes    map[string]grant  // authorization code -> grant, single use
	access   map[string]string // access token -> username
	refresh  map[string]string // refresh token -> username
	hits     map[string]int
	release  chan struct{}
}

// grant is what an authorization code was issued for.
type grant struct {
	username, redirectURI, challenge string
}

// New starts the server for an app with clientID and clientSecret; it is
// closed when t's test ends.
func New(t testing.TB, clientID, clientSecret string) *Server {
	s := &Server{
		ClientID: clientID, ClientSecret: clientSecret, PageSize: 100, RetryAfter: 30,
		buyers: make(map[string]*Buyer), codes: make(map[string]grant),
		access: make(map[string]string), refresh: make(map[string]string),
		hits: make(map[string]int), release: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorization", s.authorize)
	mux.HandleFunc("POST /token", s.outaged(s.token))
	mux.HandleFunc("GET /v3/market/buyer/list-purchases", s.outaged(s.authed(s.listPurchases)))
	mux.HandleFunc("GET /v1/market/private/user/username.json", s.outaged(s.authed(s.username)))
	s.Server = httptest.NewServer(s.count(mux))
	t.Cleanup(func() {
		close(s.release) // let Hang's handlers go, so Close does not wait
		s.Close()
	})
	return s
}

// AddBuyer adds (or replaces) a buyer; the first one added is the one
// /authorization signs in until SignInAs says otherwise.
func (s *Server) AddBuyer(b Buyer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buyers[b.Username] = &b
	if s.signedIn == "" {
		s.signedIn = b.Username
	}
}

// Issued returns every access and refresh token the server has issued,
// for a test that checks none of them is kept or logged.
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for t := range s.access {
		out = append(out, t)
	}
	for t := range s.refresh {
		out = append(out, t)
	}
	return out
}

// SignInAs makes /authorization sign username in.
func (s *Server) SignInAs(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signedIn = username
}

// SetOutage switches the outage mode.
func (s *Server) SetOutage(o Outage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = o
}

// Hits is how many requests path received.
func (s *Server) Hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// Revoke forgets every access token, as if the buyer revoked the app.
func (s *Server) Revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.access)
}

func (s *Server) count(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// authorize signs the current buyer in at once and redirects back with a
// code and the state, or with error=invalid_request as Envato does for an
// unknown client or redirect URI (shown as a page there; here a 400).
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	if q.Get("response_type") != "code" || q.Get("client_id") != s.ClientID ||
		(s.RedirectURI != "" && redirect != s.RedirectURI) || redirect == "" {
		http.Error(w, "invalid_request: unknown client or redirect_uri", http.StatusBadRequest)
		return
	}
	challenge := q.Get("code_challenge")
	if challenge != "" && q.Get("code_challenge_method") != "S256" {
		http.Error(w, "invalid_request: only S256 challenges", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	code := randomToken()
	s.codes[code] = grant{username: s.signedIn, redirectURI: redirect, challenge: challenge}
	s.mu.Unlock()
	u, err := url.Parse(redirect)
	if err != nil {
		http.Error(w, "invalid_request: redirect_uri", http.StatusBadRequest)
		return
	}
	v := u.Query()
	v.Set("code", code)
	if st := q.Get("state"); st != "" {
		v.Set("state", st)
	}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// outaged applies the outage mode before h.
func (s *Server) outaged(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		o, ra := s.outage, s.RetryAfter
		s.mu.Unlock()
		switch o {
		case ServerError:
			apiError(w, http.StatusServiceUnavailable, "Service Unavailable")
		case Hang:
			select {
			case <-r.Context().Done():
			case <-s.release:
			}
		case RateLimited:
			w.Header().Set("Retry-After", strconv.Itoa(ra))
			apiError(w, http.StatusTooManyRequests, "Too Many Requests")
		case Unauthorized:
			if r.URL.Path == "/token" {
				h(w, r)
				return
			}
			apiError(w, http.StatusUnauthorized, "Unauthorized")
		case Garbage:
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>Down for maintenance</body></html>"))
		case Oversized:
			w.Header().Set("Content-Type", "application/json")
			pad := make([]byte, 4<<20)
			for i := range pad {
				pad[i] = 'x'
			}
			_, _ = w.Write([]byte(`{"count":1,"padding":"` + string(pad) + `"}`))
		default:
			h(w, r)
		}
	}
}

// token serves both grants; client credentials come in the form or as
// HTTP basic auth.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.ClientID || secret != s.ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		s.codeGrant(w, r.PostForm)
	case "refresh_token":
		s.refreshGrant(w, r.PostForm)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

func (s *Server) codeGrant(w http.ResponseWriter, form url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := form.Get("code")
	g, ok := s.codes[code]
	delete(s.codes, code) // single use, whatever comes next
	switch {
	case !ok:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	case form.Get("redirect_uri") != g.redirectURI:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	case g.challenge != "" && s256(form.Get("code_verifier")) != g.challenge:
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	access, refresh := randomToken(), randomToken()
	s.access[access] = g.username
	s.refresh[refresh] = g.username
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": 3600,
	})
}

// refreshGrant answers as Envato does: a new access token, no new refresh
// token.
func (s *Server) refreshGrant(w http.ResponseWriter, form url.Values) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user, ok := s.refresh[form.Get("refresh_token")]
	if !ok {
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	access := randomToken()
	s.access[access] = user
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "bearer", "expires_in": 3600})
}

// authed finds the bearer's buyer, or answers 401.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, *Buyer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		const prefix = "Bearer "
		auth := r.Header.Get("Authorization")
		s.mu.Lock()
		var b *Buyer
		if len(auth) > len(prefix) && auth[:len(prefix)] == prefix {
			if user, ok := s.access[auth[len(prefix):]]; ok {
				b = s.buyers[user]
			}
		}
		s.mu.Unlock()
		if b == nil {
			apiError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		h(w, r, b)
	}
}

func (s *Server) listPurchases(w http.ResponseWriter, r *http.Request, b *Buyer) {
	page, err := strconv.Atoi(r.URL.Query().Get("page"))
	if r.URL.Query().Get("page") == "" {
		page, err = 1, nil
	}
	if err != nil || page < 1 {
		apiError(w, http.StatusBadRequest, "page must be a positive number")
		return
	}
	size := s.PageSize
	results := []map[string]any{}
	for i := (page - 1) * size; i < page*size && i < len(b.Purchases); i++ {
		results = append(results, purchaseJSON(b.Purchases[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(b.Purchases), "results": results})
}

func purchaseJSON(p Purchase) map[string]any {
	var support any
	if p.SupportedUntil != "" {
		support = p.SupportedUntil
	}
	return map[string]any{
		"amount": "19.00", "sold_at": p.SoldAt, "license": p.License, "support_amount": "0.00",
		"supported_until": support, "code": p.Code,
		"item": map[string]any{"id": p.ItemID, "name": p.ItemName, "site": "codecanyon.net"},
	}
}

func (s *Server) username(w http.ResponseWriter, r *http.Request, b *Buyer) {
	writeJSON(w, http.StatusOK, map[string]string{"username": b.Username})
}

// apiError is the API's error shape, {"error":401,"description":"..."}.
func apiError(w http.ResponseWriter, status int, description string) {
	writeJSON(w, status, map[string]any{"error": status, "description": description})
}

// oauthError is the token endpoint's RFC 6749 error.
func oauthError(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
