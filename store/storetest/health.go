package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/licensegate/licensegate/store"
)

func testPing(t *testing.T, h *harness) {
	s := h.open(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// testUnavailable: a store cut off its backend reports ErrUnavailable from
// every method, never ErrNotFound or an empty answer.
func testUnavailable(t *testing.T, h *harness) {
	if h.cfg.brk == nil {
		t.Skip("the backend offers no way to cut a store off (WithBreak)")
	}
	ctx := context.Background()
	s := h.open(t)
	put(t, s, sampleState())
	h.cfg.brk(t, s)

	issued := now()
	tok := family("fam", issued)
	next := rotated(tok, 1, issued)
	calls := map[string]func() error{
		"LicenseState": func() error { _, err := s.LicenseState(ctx, "lic_1"); return err },
		"UpdateLicense": func() error {
			_, err := s.UpdateLicense(ctx, "lic_1", func(st *store.LicenseState) (*store.LicenseState, error) { return st, nil })
			return err
		},
		"InstallationLicense": func() error { _, err := s.InstallationLicense(ctx, "ins_1"); return err },
		"PutRefreshFamily":    func() error { return s.PutRefreshFamily(ctx, tok) },
		"RefreshFamily":       func() error { _, err := s.RefreshFamily(ctx, tok.ID); return err },
		"RotateRefreshFamily": func() error { _, err := s.RotateRefreshFamily(ctx, tok.Current, next); return err },
		"DeleteRefreshFamily": func() error { return s.DeleteRefreshFamily(ctx, tok.ID) },
		"SigningKeys":         func() error { _, err := s.SigningKeys(ctx); return err },
		"AddSigningKey": func() error {
			_, err := s.AddSigningKey(ctx, signingKey("k1", t0), t0)
			return err
		},
		"Idempotent":    func() error { _, err := s.Idempotent(ctx, "k"); return err },
		"PutIdempotent": func() error { _, err := s.PutIdempotent(ctx, "k", []byte("v"), time.Hour); return err },
		"ClaimDue":      func() error { _, err := s.ClaimDue(ctx, t0.Add(1000*time.Hour), 10, time.Minute); return err },
		"DueStats":      func() error { _, err := s.DueStats(ctx, t0); return err },
		"NextDue":       func() error { _, err := s.NextDue(ctx); return err },
		"AcquireLease":  func() error { _, err := s.AcquireLease(ctx, "l", "a", t0, time.Minute); return err },
		"RenewLease": func() error {
			_, err := s.RenewLease(ctx, store.Lease{Name: "l", Holder: "a", Token: 1}, t0, time.Minute)
			return err
		},
		"ReleaseLease": func() error { return s.ReleaseLease(ctx, store.Lease{Name: "l", Holder: "a", Token: 1}) },
		"Ping":         func() error { return s.Ping(ctx) },
		"OutboxEntries(pending)": func() error {
			_, _, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxPending, Limit: 10})
			return err
		},
		"OutboxEntries(failed)": func() error {
			_, _, err := s.OutboxEntries(ctx, store.OutboxQuery{Status: store.OutboxFailed, Limit: 10})
			return err
		},
		"Lookup":   func() error { _, err := s.Lookup(ctx, store.RefTerm("s", "order", "1")); return err },
		"AskCheck": func() error { return s.AskCheck(ctx, "lic_1", t0) },
		"Asked":    func() error { _, err := s.Asked(ctx, 10); return err },
		"DoneAsk":  func() error { return s.DoneAsk(ctx, "lic_1", t0) },
		"RecordSeen": func() error {
			return s.RecordSeen(ctx, []store.Seen{{LicenseID: "lic_1", InstallationID: "ins_1", At: t0}})
		},
		"AddDaily": func() error {
			return s.AddDaily(ctx, []store.DailyDelta{{Day: t0, Series: "activations", N: 1}})
		},
		"Daily":    func() error { _, err := s.Daily(ctx, []string{"activations"}, t0, t0); return err },
		"Versions": func() error { _, err := s.Versions(ctx, "p"); return err },
		"AddQuota": func() error {
			_, err := s.AddQuota(ctx, []store.QuotaDelta{{LicenseID: "lic_1", InstallationID: "ins_1", Window: t0, Period: time.Minute, N: 1}})
			return err
		},
	}
	for name, call := range optionalCalls(s) {
		calls[name] = func() error { return call(ctx) }
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s on a broken store = %v, want ErrUnavailable", name, err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s took %s to fail", name, took)
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, err := s.Subscribe(sctx); err != nil && !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Subscribe on a broken store = %v, want ErrUnavailable (or a feed)", err)
	}
}
