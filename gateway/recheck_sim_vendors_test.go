package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The fake vendors' answers for the simulated month (recheck_sim_test.go):
// each speaks its marketplace's real API, in the formats of its adapter's
// unit tests (upstreams/<name>/), from the truth the sim gives it.

// envatoAnswer is GET /v3/market/author/sale?code=: a sale, or Envato's
// 404 (a refund reads as one).
func envatoAnswer(v *fakeVendor, w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	tr, ok := v.lookup(code)
	if v.mode.Load() == vendorNotFoundAll || !ok || tr.status != "active" {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": 404, "description": "No sale belonging to the current user found with that code"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"license": "Regular License", "supported_until": rfc(tr.support),
		"item": map[string]any{"id": 123}, "buyer": "buyer"})
}

// ddpAnswer is POST /v1/licenses/verify with increment_uses_count=false.
func ddpAnswer(v *fakeVendor, w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	key := r.PostForm.Get("license_key")
	if r.PostForm.Get("increment_uses_count") != "false" {
		v.mu.Lock()
		v.charged++
		v.mu.Unlock()
	}
	tr, ok := v.lookup(key)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	status := "delivered"
	if tr.status == "refunded" {
		status = "refunded"
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": tr.status == "active", "license_key": key,
		"license_key_list_token": "tok", "assigned_at": "2026-01-01T00:00:00Z", "disabled_at": nil,
		"order": map[string]any{"status": status, "email": "buyer@example.com"}})
}

// lsAnswer is POST /v1/licenses/validate (never activate).
func lsAnswer(v *fakeVendor, w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/validate") {
		v.mu.Lock()
		v.charged++
		v.mu.Unlock()
	}
	_ = r.ParseForm()
	tr, ok := v.lookup(r.PostForm.Get("license_key"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"valid": false, "error": "license_key not found."})
		return
	}
	key := map[string]any{"status": tr.status, "test_mode": false, "activation_limit": 1, "expires_at": rfc(tr.expires)}
	meta := map[string]any{"product_id": 77, "variant_name": "Default", "customer_name": "Buyer"}
	if tr.id != "" {
		key["id"] = json.Number(tr.id)
	}
	if tr.order != "" {
		meta["order_id"] = json.Number(tr.order)
	}
	writeJSON(w, http.StatusOK, map[string]any{"valid": tr.status == "active", "license_key": key, "meta": meta})
}

// installation is the domain and IP a call named.
type installation struct{ domain, ip string }

// charge counts a call that would have spent a use, a slot or a term.
func (v *fakeVendor) charge() {
	v.mu.Lock()
	v.charged++
	v.mu.Unlock()
}

// saw records the domain and IP a call named for key: the CP store and
// AppTrovo bind a key to them.
func (v *fakeVendor) saw(key string, in installation) {
	v.mu.Lock()
	v.sent[key] = append(v.sent[key], in)
	v.mu.Unlock()
}

// bind binds the key to the first installation that names it (the
// activation) and reports whether in is that one; any other would take
// another of the buyer's slots at the vendor, so it is charged, and with
// the sim's one slot per licence it is refused.
func (v *fakeVendor) bind(key string, in installation) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	first, ok := v.bound[key]
	if !ok {
		v.bound[key] = in
		return true
	}
	if first != in {
		v.charged++
		return false
	}
	return true
}

// expired reports whether the key's term has passed on the sim's clock.
func (v *fakeVendor) expired(tr truth) bool {
	return tr.expires != nil && !v.clock.Now().Before(*tr.expires)
}

// AppTrovo (upstreams/apptrovo): GET /api/v1/licenses/verify?
// license_key=&product_slug=&domain=, public; failures are HTTP 200 with a
// failure_reason sentence.
const apptrovoSlug = "licensegate-theme"

func apptrovoFailure(w http.ResponseWriter, reason string) {
	writeJSON(w, http.StatusOK, map[string]any{"valid": false, "failure_reason": reason})
}

func apptrovoAnswer(v *fakeVendor, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	key, domain := q.Get("license_key"), q.Get("domain")
	v.saw(key, installation{domain: domain})
	tr, ok := v.lookup(key)
	switch {
	case !ok:
		apptrovoFailure(w, "Invalid license key.")
	case q.Get("product_slug") != "" && q.Get("product_slug") != apptrovoSlug:
		apptrovoFailure(w, "Invalid license key for this product.")
	case domain != "" && !v.bind(key, installation{domain: domain}):
		apptrovoFailure(w, "License is registered to a different domain.")
	case tr.status == "deactivated":
		apptrovoFailure(w, "License has been deactivated.")
	case v.expired(tr):
		apptrovoFailure(w, "License has expired.")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"valid": true, "license_id": 142, "product_id": 28,
			"product":      map[string]any{"id": 28, "slug": apptrovoSlug, "name": "LicenseGate Theme", "retired": false},
			"license_type": "standard", "licensed_to": "Acme Corp", "domain": domain,
			"expires_at": rfc(tr.expires), "support_expires_at": "2027-04-08T00:00:00Z", "support_active": true,
			"activations_used": 1, "activations_limit": 1, "failure_reason": nil})
	}
}

// CP store (upstreams/cpstore): POST /api/v1/licenses/verify with JSON
// license_key, domain, ip; a new domain or IP is an activation of the key;
// refusals are 403/404 with a reason, a malformed request Laravel's 422.
const cpstoreProduct = "Acme Theme Pro"

func cpKey(i int) string { return fmt.Sprintf("CP-AB12CD-34EF56-GH78IJ-90KLMN-%06X", i) }

func cpRefusal(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, map[string]any{"valid": false, "reason": reason})
}

// cpExpiry is the store's expiry: a date, the licence valid through it.
func cpExpiry(t *time.Time) (date any, endOfDay *time.Time) {
	if t == nil {
		return nil, nil
	}
	d := t.UTC().Truncate(24 * time.Hour)
	end := d.Add(24*time.Hour - time.Second)
	return d.Format(time.DateOnly), &end
}

func cpstoreAnswer(v *fakeVendor, w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key    string `json:"license_key"`
		Domain string `json:"domain"`
		IP     string `json:"ip"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Domain == "" || req.IP == "" {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "The domain field is required.",
			"errors": map[string]any{"domain": []string{"The domain field is required."}}})
		return
	}
	in := installation{domain: req.Domain, ip: req.IP}
	v.saw(req.Key, in)
	tr, ok := v.lookup(req.Key)
	date, end := cpExpiry(tr.expires)
	switch {
	case !ok:
		cpRefusal(w, http.StatusNotFound, "License not found.")
	case tr.status == "revoked":
		cpRefusal(w, http.StatusForbidden, "License has been revoked.")
	case end != nil && v.clock.Now().After(*end):
		cpRefusal(w, http.StatusForbidden, "License expired.")
	case !v.bind(req.Key, in):
		cpRefusal(w, http.StatusForbidden, "Max activations exceeded or unrecognized environment.")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"valid": true, "product": cpstoreProduct, "expiry": date, "lifetime": date == nil})
	}
}

// Gumroad (upstreams/gumroad): POST /v2/licenses/verify with product_id,
// license_key and increment_uses_count (true by default: each such call
// counts a use); the three kinds of 404 differ only in their message. A
// membership whose cancellation has passed has ended.
const gumroadProduct = "32-nPAicqbLj8B_WswVlMw=="

func gumroadKey(i int) string { return fmt.Sprintf("85DB262A-C19D4B06-A5335A6B-%08X", i) }

func gumroadNotFound(w http.ResponseWriter, message string) {
	writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "message": message})
}

// use counts one use of the key, as Gumroad does unless told not to.
func (v *fakeVendor) use(key string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.charged++
	if tr := v.keys[key]; tr != nil {
		tr.uses++
	}
}

func gumroadAnswer(v *fakeVendor, w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	key := r.PostForm.Get("license_key")
	if r.PostForm.Get("increment_uses_count") != "false" {
		v.use(key)
	}
	tr, ok := v.lookup(key)
	switch {
	case !ok || r.PostForm.Get("product_id") != gumroadProduct:
		gumroadNotFound(w, "That license does not exist for the provided product.")
	case tr.status == "disabled": // every full refund disables the key
		gumroadNotFound(w, "This license key has been disabled.")
	default:
		var ended any
		if v.expired(tr) {
			ended = rfc(tr.expires)
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "uses": tr.uses, "purchase": map[string]any{
			"seller_id": "kL0psVL2admJSYRNs-OCMg==", "product_id": gumroadProduct, "product_name": "licenses demo membership",
			"email": "member@example.com", "full_name": "Maxwell Elliott", "quantity": 1, "variants": "", "license_key": key,
			"is_multiseat_license": false, "refunded": false, "disputed": false, "dispute_won": false, "chargebacked": false,
			"created_at": "2026-01-05T19:38:56Z", "recurrence": "monthly",
			"subscription_ended_at": ended, "subscription_cancelled_at": rfc(tr.expires), "subscription_failed_at": nil}})
	}
}

// Keygen (upstreams/keygen): validate-key (the activation's call: it
// touches the licence, sends the author a webhook and may start its term,
// so every one is charged), and, with the token, GET licenses/{id} (the
// recheck's read; Keygen also takes the key in place of the id) and GET
// policies/{id}. JSON:API documents throughout.
const (
	keygenAccount = "licensegate-demo"
	keygenToken   = "prod-sim-0123456789abcdef"
	keygenProduct = "4c6b1e7a-2f0e-4b5f-9e4b-1f3b7a4c9d21"
	keygenPolicy  = "8b2e1c4d-5f6a-4b7c-9d8e-0f1a2b3c4d5e"
	keygenMedia   = "application/vnd.api+json"
)

func keygenKey(i int) string { return fmt.Sprintf("C1B6DE-39A6E3-DE1529-8559A0-%06X-V3", i) }
func keygenID(i int) string  { return fmt.Sprintf("b18e3f3a-330c-4d8d-ae2e-%012x", i) }

func writeJSONAPI(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", keygenMedia)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func keygenError(w http.ResponseWriter, status int, title, code string) {
	writeJSONAPI(w, status, map[string]any{"errors": []any{map[string]any{"title": title, "detail": title, "code": code}}})
}

// keygenLicence is the licence object, as a read and validate-key give it.
func (v *fakeVendor) keygenLicence(key string, tr truth) map[string]any {
	status, expiry := "ACTIVE", any(nil)
	if tr.expires != nil {
		expiry = tr.expires.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	switch {
	case tr.status == "suspended":
		status = "SUSPENDED"
	case v.expired(tr):
		status = "EXPIRED"
	}
	return map[string]any{"id": tr.id, "type": "licenses",
		"attributes": map[string]any{"name": "Pro licence", "key": key, "expiry": expiry, "status": status,
			"uses": 0, "suspended": tr.status == "suspended", "maxMachines": nil, "requireCheckIn": false},
		"relationships": map[string]any{
			"product": map[string]any{"data": map[string]any{"type": "products", "id": keygenProduct}},
			"policy":  map[string]any{"data": map[string]any{"type": "policies", "id": keygenPolicy}}}}
}

func keygenAnswer(v *fakeVendor, w http.ResponseWriter, r *http.Request) {
	account := "/v1/accounts/" + keygenAccount
	if r.Header.Get("Authorization") != "Bearer "+keygenToken {
		keygenError(w, http.StatusUnauthorized, "Unauthorized", "TOKEN_INVALID")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == account+"/licenses/actions/validate-key":
		keygenValidate(v, w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, account+"/licenses/"):
		keygenRead(v, w, strings.TrimPrefix(r.URL.Path, account+"/licenses/"))
	case r.Method == http.MethodGet && r.URL.Path == account+"/policies/"+keygenPolicy:
		// RESTRICT_ACCESS: an expired licence is refused, so its expiry is
		// the licence's end
		writeJSONAPI(w, http.StatusOK, map[string]any{"data": map[string]any{"id": keygenPolicy, "type": "policies",
			"attributes": map[string]any{"name": "Pro", "expirationStrategy": "RESTRICT_ACCESS", "expirationBasis": "FROM_CREATION"}}})
	default:
		keygenError(w, http.StatusNotFound, "Not found", "NOT_FOUND")
	}
}

func keygenValidate(v *fakeVendor, w http.ResponseWriter, r *http.Request) {
	v.charge()
	var body struct {
		Meta struct {
			Key string `json:"key"`
		} `json:"meta"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	tr, ok := v.lookup(body.Meta.Key)
	meta := map[string]any{"valid": false, "code": "NOT_FOUND", "detail": "does not exist", "scope": map[string]any{"product": keygenProduct}}
	var data any
	if ok {
		data = v.keygenLicence(body.Meta.Key, tr)
		switch {
		case tr.status == "suspended":
			meta["code"], meta["detail"] = "SUSPENDED", "is suspended"
		case v.expired(tr):
			meta["code"], meta["detail"] = "EXPIRED", "is expired"
		default:
			meta["valid"], meta["code"], meta["detail"] = true, "VALID", "is valid"
		}
	}
	writeJSONAPI(w, http.StatusOK, map[string]any{"meta": meta, "data": data})
}

// keygenRead is GET licenses/{id}: by the licence id, or by its key,
// which real Keygen also accepts and the fake counts (the recheck must
// use the id recorded at activation).
func keygenRead(v *fakeVendor, w http.ResponseWriter, id string) {
	v.mu.Lock()
	key, byID := v.byID[id]
	if !byID && v.keys[id] != nil {
		key = id
		v.readByKey++
	}
	v.mu.Unlock()
	tr, ok := truth{}, false
	if key != "" {
		tr, ok = v.lookup(key)
	}
	if !ok {
		keygenError(w, http.StatusNotFound, "The requested license was not found", "NOT_FOUND")
		return
	}
	writeJSONAPI(w, http.StatusOK, map[string]any{"data": v.keygenLicence(key, tr)})
}

// monthVendor is one of the vendors the month runs five licences on
// besides Envato, Digital Downloads, Lemon Squeezy and the static file:
// how its keys look, what a refund does to the key at the vendor, and what
// a renewal does to its term (and the expiry the gateway then records).
type monthVendor struct {
	source, prefix string
	key            func(i int) string
	truth          func(i int, tr *truth) // what else the vendor knows of a sale
	refund         func(tr *truth)
	renew          func(tr *truth)
	renewed        func() *time.Time
}

// renewedTerm is a year's term from the sim's start.
func renewedTerm() *time.Time { return tp(simStart.AddDate(1, 0, 0)) }

var monthVendors = []monthVendor{
	{source: "apptrovo", prefix: "a", key: func(i int) string { return uuidKey('b', i) },
		refund: func(tr *truth) { tr.status = "deactivated" },
		renew:  func(tr *truth) { tr.expires = renewedTerm() }, renewed: renewedTerm},
	{source: "cpstore", prefix: "c", key: cpKey,
		refund: func(tr *truth) { tr.status = "revoked" },
		renew:  func(tr *truth) { tr.expires = renewedTerm() },
		// the store's date is valid through its last second
		renewed: func() *time.Time { _, end := cpExpiry(renewedTerm()); return end }},
	{source: "gumroad", prefix: "g", key: gumroadKey,
		// the buyer used the key thrice elsewhere: a month of rechecks
		// leaves the counter there
		truth:  func(_ int, tr *truth) { tr.uses = 3 },
		refund: func(tr *truth) { tr.status = "disabled" },
		// the buyer takes back the membership's cancellation: no end
		renew: func(tr *truth) { tr.expires = nil }, renewed: func() *time.Time { return nil }},
	{source: "keygen", prefix: "k", key: keygenKey,
		truth: func(i int, tr *truth) { tr.id = keygenID(i) },
		// Keygen knows no refunds: the author suspends the licence
		refund: func(tr *truth) { tr.status = "suspended" },
		renew:  func(tr *truth) { tr.expires = renewedTerm() }, renewed: renewedTerm},
}

// monthLicences is how many licences the month buys at each month vendor.
const monthLicences = 5

func monthName(mv monthVendor, i int) string { return mv.prefix + strconv.Itoa(i) }

// buyMonthVendors buys the month vendors' licences: 0 is refunded during
// the first outage, 2 and 3 expire during the second (2's buyer renews the
// day before), 1 and 4 stay honest.
func (s *sim) buyMonthVendors() {
	s.t.Helper()
	for _, mv := range monthVendors {
		for i := range monthLicences {
			tr := truth{status: "active"}
			if i == 2 || i == 3 {
				tr.expires = tp(day(20.5))
			}
			if mv.truth != nil {
				mv.truth(i, &tr)
			}
			s.buy(monthName(mv, i), mv.source, mv.key(i), tr)
		}
	}
	// Keygen's activation is validate-key, one charged call per licence
	// the buyer activates: the buyer's own. The count starts over so that
	// only the month's calls are judged.
	kg := s.vendors["keygen"]
	kg.mu.Lock()
	defer kg.mu.Unlock()
	if kg.charged != monthLicences {
		s.t.Errorf("%d Keygen activations made %d validate-key calls, want one each", monthLicences, kg.charged)
	}
	kg.charged = 0
}

// expiring names the licences whose term ends during the second outage
// and whose buyer renews (2) or does not (3).
func (s *sim) expiring() []string {
	names := []string{"l2", "l3"}
	for _, mv := range monthVendors {
		names = append(names, monthName(mv, 2), monthName(mv, 3))
	}
	return names
}

// checkMonthVendorTerms: each month vendor's renewal is seen, and the
// licence not renewed no longer serves.
func (s *sim) checkMonthVendorTerms() {
	s.t.Helper()
	for _, mv := range monthVendors {
		renewed, lapsed := monthName(mv, 2), monthName(mv, 3)
		got, want := s.license(renewed).ExpiresAt, mv.renewed()
		if (got == nil) != (want == nil) || got != nil && !got.Equal(*want) || !s.serves(renewed) {
			s.t.Errorf("%s's renewal not seen: expires %v, want %v (serves %v)", renewed, got, want, s.serves(renewed))
		}
		if s.serves(lapsed) {
			s.t.Errorf("%s expired at its vendor still serves", lapsed)
		}
	}
}

// minRecheckCalls is the fewest calls a vendor must have had about each
// licence in the month: proof the rechecks reached it.
const minRecheckCalls = 30

// checkRecordedInstallations is acceptance 3 for the vendors that bind a
// key to an installation: every call the CP store and AppTrovo had about a
// key, the activation's and every recheck's, named the installation
// recorded at activation (AppTrovo is sent no IP), never another.
func (s *sim) checkRecordedInstallations() {
	s.t.Helper()
	for _, mv := range monthVendors {
		if mv.source != "cpstore" && mv.source != "apptrovo" {
			continue
		}
		v := s.vendors[mv.source]
		v.mu.Lock()
		for i := range monthLicences {
			name := monthName(mv, i)
			want := installation{domain: simDomain(name)}
			if mv.source == "cpstore" {
				want.ip = simIP
			}
			calls := v.sent[s.keys[name]]
			if len(calls) < minRecheckCalls {
				s.t.Errorf("%s: %d calls about %s in a month", v.name, len(calls), name)
			}
			for _, got := range calls {
				if got != want {
					s.t.Errorf("%s: a call about %s named %+v, want the recorded %+v", v.name, name, got, want)
					break
				}
			}
		}
		v.mu.Unlock()
	}
}

// checkMonthVendorsUntouched: Gumroad's uses counters are where the buyers
// left them, and Keygen's licences were read by the id recorded at
// activation (which the licence still holds), never by key.
func (s *sim) checkMonthVendorsUntouched() {
	s.t.Helper()
	gr, kg := s.vendors["gumroad"], s.vendors["keygen"]
	for i := range monthLicences {
		gr.mu.Lock()
		uses := gr.keys[gumroadKey(i)].uses
		gr.mu.Unlock()
		if uses != 3 {
			s.t.Errorf("gumroad: g%d's uses counter went from 3 to %d", i, uses)
		}
		if id := s.license("k" + strconv.Itoa(i)).VendorID; id != keygenID(i) {
			s.t.Errorf("k%d recorded Keygen licence id %q, want %q", i, id, keygenID(i))
		}
	}
	kg.mu.Lock()
	defer kg.mu.Unlock()
	if kg.readByKey != 0 {
		s.t.Errorf("keygen: %d licence reads by key, not by the recorded id", kg.readByKey)
	}
	for i := range monthLicences {
		if n := kg.asked[keygenKey(i)]; n < minRecheckCalls {
			s.t.Errorf("keygen: k%d read %d times in a month", i, n)
		}
	}
}
