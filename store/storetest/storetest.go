// Package storetest is the conformance suite every store.Store backend must
// pass, so the embedded and Redis stores behave the same (SPEC section 10).
//
// A backend's test calls Run with an opener that returns a fresh, empty
// store for each subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openEmpty(t) })
//	}
//
// Options add what only some backends can do: WithPeer opens a second
// handle on the same data (a second instance), so the change feed is tested
// across instances; WithBreak cuts a store off its backend, so every method
// is checked to report store.ErrUnavailable; WithStall holds a call waiting
// on the backend, so a caller going away mid-read is checked to be told
// apart from an outage; WithRecordCount counts a refresh family's records,
// so they are checked to stay one; WithCorruptOutbox spoils outbox
// entries, so listing by status is checked to read only that status's.
package storetest

import (
	"slices"
	"testing"

	"github.com/licensegate/licensegate/store"
)

// Option adjusts what Run exercises.
type Option func(*config)

type config struct {
	peer  func(t *testing.T, s store.Store) store.Store
	brk   func(t *testing.T, s store.Store)
	stall func(t *testing.T, s store.Store) Stall
	count func(t *testing.T, s store.Store, family string) int
	// corrupt spoils an outbox entry's record (WithCorruptOutbox).
	corrupt func(t *testing.T, s store.Store, id string)
	known   map[string]string // subtest -> why it is skipped
}

// WithPeer gives Run a way to open another handle on the same data as s,
// the way a second gateway instance sees it. The change feed is then also
// tested across handles.
func WithPeer(peer func(t *testing.T, s store.Store) store.Store) Option {
	return func(c *config) { c.peer = peer }
}

// WithBreak gives Run a way to cut s off its backend for good (close the
// file, close the client). Every method must then fail with an error that
// wraps store.ErrUnavailable.
func WithBreak(brk func(t *testing.T, s store.Store)) Option {
	return func(c *config) { c.brk = brk }
}

// WithRecordCount gives Run a way to count the records (bbolt entries,
// Redis keys) s holds whose name holds a refresh family's id, so storage per
// family is checked to stay one record whatever the number of rotations.
func WithRecordCount(count func(t *testing.T, s store.Store, family string) int) Option {
	return func(c *config) { c.count = count }
}

// WithKnownFailure skips one subtest (by name, e.g. "DueReindex")
// with the reason given, so a backend bug the suite found stays visible in
// the test output until it is fixed instead of turning the run red or
// being deleted from the suite.
func WithKnownFailure(name, reason string) Option {
	return func(c *config) {
		if c.known == nil {
			c.known = map[string]string{}
		}
		c.known[name] = reason
	}
}

type test struct {
	name string
	run  func(t *testing.T, h *harness)
}

var tests = []test{
	{"LicenseStateRoundTrip", testLicenseStateRoundTrip},
	{"UpdateLicenseFnOutcomes", testUpdateLicenseFnOutcomes},
	{"UpdateLicenseReturnsStoredState", testUpdateLicenseReturnsStoredState},
	{"UpdateLicenseRefusesStateWithoutLicence", testUpdateLicenseRefusesStateWithoutLicence},
	{"VersionIncrements", testVersionIncrements},
	{"ConcurrentActivationsRespectLimit", testConcurrentActivationsRespectLimit},
	{"ConcurrentAppends", testConcurrentAppends},
	{"InstallationLicense", testInstallationLicense},
	{"RefreshFamilies", testRefreshFamilies},
	{"RefreshFamiliesWithState", testRefreshFamiliesWithState},
	{"ConcurrentRotationOnlyOneWins", testConcurrentRotationOnlyOneWins},
	{"RefreshFamilyStaysOneRecord", testRefreshFamilyStaysOneRecord},
	{"SigningKeys", testSigningKeys},
	{"Idempotency", testIdempotency},
	{"IdempotencyExpiry", testIdempotencyExpiry},
	{"Subscribe", testSubscribe},
	{"SlowSubscriberDoesNotBlockWriters", testSlowSubscriberDoesNotBlockWriters},
	{"OverflowSendsResync", testOverflowSendsResync},
	{"KeyRotationNotice", testKeyRotationNotice},
	{"DueOrder", testDueOrder},
	{"DueReindex", testDueReindex},
	{"ClaimDue", testClaimDue},
	{"ConcurrentClaimsNeverShare", testConcurrentClaimsNeverShare},
	{"DueStats", testDueStats},
	{"Leases", testLeases},
	{"ConcurrentLeaseHasOneHolder", testConcurrentLeaseHasOneHolder},
	{"FencedWrites", testFencedWrites},
	{"AuditWithUpdate", testAuditWithUpdate},
	{"ListLicenses", testListLicenses},
	{"AuditLog", testAuditLog},
	{"OutboxWithChange", testOutboxWithChange},
	{"OutboxClaims", testOutboxClaims},
	{"OutboxTrim", testOutboxTrim},
	{"OutboxPending", testOutboxPending},
	{"OutboxPaging", testOutboxPaging},
	{"OutboxByStatus", testOutboxByStatus},
	{"Lookup", testLookup},
	{"LookupBound", testLookupBound},
	{"LookupSearchTerms", testLookupSearchTerms},
	{"ReviewQueues", testReviewQueues},
	{"ReviewQueuePaging", testReviewQueuePaging},
	{"LicenseTimeline", testLicenseTimeline},
	{"LicenseTimelineBound", testLicenseTimelineBound},
	{"LicenseTimelineTrim", testLicenseTimelineTrim},
	{"StatusCounts", testStatusCounts},
	{"ConcurrentStatusCounts", testConcurrentStatusCounts},
	{"Asks", testAsks},
	{"AskNotice", testAskNotice},
	{"RecordSeen", testRecordSeen},
	{"AddQuota", testAddQuota},
	{"DailyCounters", testDailyCounters},
	{"DailySeriesBound", testDailySeriesBound},
	{"VersionCounts", testVersionCounts},
	{"VersionBound", testVersionBound},
	{"ConcurrentVersionCounts", testConcurrentVersionCounts},
	{"Ping", testPing},
	{"Unavailable", testUnavailable},
	{"CallerGone", testCallerGone},
	{"CallerGoneWhileDeciding", testCallerGoneWhileDeciding},
	{"CallerGoneMidRead", testCallerGoneMidRead},
}

// harness is what one subtest works with.
type harness struct {
	cfg  config
	open func(t *testing.T) store.Store
}

// Run runs the suite. open must return a fresh, empty store each time it is
// called (once per subtest, sometimes more); it registers its own cleanup.
func Run(t *testing.T, open func(t *testing.T) store.Store, opts ...Option) {
	h := &harness{open: open}
	for _, o := range opts {
		o(&h.cfg)
	}
	for name := range h.cfg.known {
		if !slices.ContainsFunc(tests, func(tt test) bool { return tt.name == name }) {
			t.Errorf("WithKnownFailure(%q): no such subtest", name)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if reason, ok := h.cfg.known[tt.name]; ok {
				t.Skipf("KNOWN FAILURE: %s", reason)
			}
			tt.run(t, h)
		})
	}
}
