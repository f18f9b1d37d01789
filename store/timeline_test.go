package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

// TestTimelineRecord: a record gives back every field but the licence
// id, which the reader supplies; At to the microsecond, in UTC.
func TestTimelineRecord(t *testing.T) {
	at := time.Date(2026, 3, 14, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	full := store.AuditEvent{ID: "7", At: at, Actor: "console:alice", Action: store.AuditLicenseSuspended, LicenseID: "lic_1",
		InstallationID: "ins_1", Reason: "a \"reason\"\nover lines ]", Detail: "acme.com", ClientIP: "198.51.100.1",
		PreviousClientIP: "203.0.113.9", Source: "envato", Product: "p"}
	for _, ev := range []store.AuditEvent{
		full,
		{At: at, Action: "some.future_action", LicenseID: "lic_1"},
		{At: at, Action: store.AuditInstallationCreated, LicenseID: "lic_1", Product: "p"}, // a gap of empty fields
	} {
		raw := store.EncodeTimeline(ev)
		if strings.Contains(string(raw), "lic_1") || strings.Contains(string(raw), "\n") {
			t.Errorf("record %s holds the licence id or a newline", raw)
		}
		got, err := store.DecodeTimeline("lic_1", raw)
		if err != nil {
			t.Fatalf("DecodeTimeline(%s): %v", raw, err)
		}
		want := ev
		want.At = at.Truncate(time.Microsecond).UTC()
		if got != want {
			t.Errorf("round trip of %s:\n got %+v\nwant %+v", raw, got, want)
		}
	}
	if raw := string(store.EncodeTimeline(store.AuditEvent{At: at, Action: store.AuditInstallationCreated})); raw != `[1773486000123456,"","ic"]` {
		t.Errorf("a short event's record = %s", raw)
	}
	for _, bad := range []string{``, `[]`, `{}`, `["x"]`, `[1,2]`, `[1.5]`} {
		if _, err := store.DecodeTimeline("lic_1", []byte(bad)); err == nil {
			t.Errorf("DecodeTimeline(%s) succeeded", bad)
		}
	}
}

// TestTimelineCodes: every audited action has a short code of its own,
// which no action could be mistaken for.
func TestTimelineCodes(t *testing.T) {
	seen := map[string]string{}
	for _, action := range store.AuditActions {
		raw := string(store.EncodeTimeline(store.AuditEvent{Action: action}))
		code := strings.Split(raw, `"`)[3]
		if code == action || strings.Contains(code, ".") {
			t.Errorf("%s is recorded as %q, want a short code without a dot", action, code)
		}
		if other, ok := seen[code]; ok {
			t.Errorf("%s and %s share the code %q", action, other, code)
		}
		seen[code] = action
	}
}
