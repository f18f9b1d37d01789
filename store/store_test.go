package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestZeroTimesLeftOut: a stored record holds no zero time, and a record
// written before (every zero time spelt out) reads back the same.
func TestZeroTimesLeftOut(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	support := at.AddDate(0, 6, 0)
	cases := []any{
		&License{ID: "lic_1", Product: "p", Source: "envato", Status: LicenseActive, SupportUntil: &support,
			VerifiedAt: at, NextCheckAt: at.Add(time.Hour), CreatedAt: at, UpdatedAt: at, Version: 1,
			Sightings: []Sighting{{Kind: "domain", Value: "a.example", At: at}}},
		&Installation{ID: "ins_1", LicenseID: "lic_1", Product: "p", Domain: "a.example", InstallClass: "production",
			Status: InstallationActive, Generation: 1, CreatedAt: at, UpdatedAt: at},
		&RefreshFamily{ID: "f", InstallationID: "ins_1", LicenseID: "lic_1", Generation: 1, Current: "h", IssuedAt: at, ExpiresAt: at},
		&SigningKey{ID: "k", Algorithm: "EdDSA", PublicKey: []byte{1}, SealedPrivateKey: []byte{2}, CreatedAt: at},
	}
	// What the same records were stored as before: every zero time
	// present, as omitempty left them.
	old := []string{
		`{"id":"lic_1","product":"p","source":"envato","support_until":"2026-09-01T12:00:00Z","status":"active",` +
			`"verified_at":"2026-03-01T12:00:00Z","next_check_at":"2026-03-01T13:00:00Z","last_move_at":"0001-01-01T00:00:00Z",` +
			`"refresh_asked_at":"0001-01-01T00:00:00Z","recheck":{"last_check_at":"0001-01-01T00:00:00Z","first_definitive_at":"0001-01-01T00:00:00Z"},` +
			`"sightings":[{"kind":"domain","value":"a.example","at":"2026-03-01T12:00:00Z"}],` +
			`"created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z","version":1}`,
		`{"id":"ins_1","license_id":"lic_1","product":"p","domain":"a.example","install_class":"production","status":"active",` +
			`"foreign_until":"0001-01-01T00:00:00Z","reclaimed_at":"0001-01-01T00:00:00Z","reactivations_since":"0001-01-01T00:00:00Z",` +
			`"generation":1,"created_at":"2026-03-01T12:00:00Z","updated_at":"2026-03-01T12:00:00Z",` +
			`"last_seen_at":"0001-01-01T00:00:00Z","deactivated_at":"0001-01-01T00:00:00Z"}`,
		`{"id":"f","installation_id":"ins_1","license_id":"lic_1","generation":1,"current":"h","counter":0,` +
			`"issued_at":"2026-03-01T12:00:00Z","expires_at":"2026-03-01T12:00:00Z","previous_spent_at":"0001-01-01T00:00:00Z"}`,
		`{"kid":"k","alg":"EdDSA","public_key":"AQ==","sealed_private_key":"Ag==","created_at":"2026-03-01T12:00:00Z",` +
			`"retired_at":"0001-01-01T00:00:00Z"}`,
	}
	for i, rec := range cases {
		raw, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), "0001-01-01") || strings.Contains(string(raw), `"recheck"`) {
			t.Errorf("%T stored with its zero times: %s", rec, raw)
		}
		for _, in := range []string{string(raw), old[i]} {
			got := reflect.New(reflect.TypeOf(rec).Elem()).Interface()
			if err := json.Unmarshal([]byte(in), got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Errorf("%T read back from %s:\n got %+v\nwant %+v", rec, in, got, rec)
			}
		}
	}
}
