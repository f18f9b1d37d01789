package gateway

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/licensegate/licensegate/policy"
	"github.com/licensegate/licensegate/store"
	"github.com/licensegate/licensegate/upstreams"
)

// Asking a licence's source again: pacing by the source's recheck budget,
// the side-effect-free Recheck call with what the licence recorded, and
// its answer in policy's terms.

// awaitRecheck waits up to recheckPace for src's recheck budget to have a
// call and returns 0, or returns the longer wait (see recheckWait) at
// once. Waiting the few milliseconds a call takes to refill keeps a batch
// of one source's licences flowing at the recheck share of its rate;
// deferring each would write it back for nothing and leave the batch to
// the bucket's handful of calls.
func awaitRecheck(ctx context.Context, src upstreams.Source) time.Duration {
	if p, ok := src.(interface{ Budget() *upstreams.Budget }); ok && p.Budget() != nil {
		return p.Budget().AwaitRecheck(ctx, recheckPace)
	}
	return recheckWait(src)
}

// recheckWait is how long until src's recheck budget has a call (0: now):
// the rate budget's recheck share and a Retry-After pause. An open breaker
// is not waited for: the recheck asks, is answered unknown at once, and
// backs off like any unknown answer, rather than coming back every
// cooldown.
func recheckWait(src upstreams.Source) time.Duration {
	if p, ok := src.(interface{ Budget() *upstreams.Budget }); ok && p.Budget() != nil {
		return p.Budget().RecheckWait()
	}
	if p, ok := src.(interface{ RecheckWait() time.Duration }); ok {
		return p.RecheckWait()
	}
	return 0
}

// deferUntil is when a licence deferred for wait is due again: after the
// wait, spread by up to a tenth more (at least a second), so deferred
// licences do not all come back in the same instant.
func (s *Service) deferUntil(wait time.Duration) time.Time {
	wait = max(wait, time.Second)
	return s.now().Add(wait + time.Duration(rand.Float64()*float64(wait/10+time.Second)))
}

// askSource unseals the licence's code and asks its source's
// side-effect-free recheck with what the licence recorded (the domain and
// IP of its installation, the vendor's id).
func (s *Service) askSource(ctx context.Context, src upstreams.Source, st *store.LicenseState) upstreams.Verdict {
	lic := st.License
	if src == nil {
		return upstreams.UnknownVerdict(errSourceGone)
	}
	rc, ok := src.(upstreams.Rechecker)
	if !ok {
		return upstreams.UnknownVerdict(fmt.Errorf("%s: %w", src.Name(), upstreams.ErrRecheckUnsupported))
	}
	if len(lic.KeyCiphertext) == 0 {
		return upstreams.UnknownVerdict(errNoSealedKey)
	}
	key, err := s.cfg.Master.Open(lic.KeyCiphertext, []byte(lic.ID))
	if err != nil {
		return upstreams.UnknownVerdict(errNoSealedKey)
	}
	domain, ip := recordedInstallation(st)
	cctx, cancel := context.WithTimeout(ctx, recheckCallTimeout)
	defer cancel()
	return rc.Recheck(cctx, upstreams.RecheckRequest{
		Key: string(key), Product: lic.Product, Domain: domain, IP: ip, VendorID: lic.VendorID,
	})
}

var (
	errSourceGone  = errors.New("the licence's source is no longer configured")
	errNoSealedKey = errors.New("the licence's sealed code cannot be opened (another master secret?)")
)

// recordedInstallation is the domain and IP a recheck names: the oldest
// active production installation's, else the oldest active one's, else
// the oldest one's; none for a licence without installations.
func recordedInstallation(st *store.LicenseState) (domain, ip string) {
	pick := func(ok func(*store.Installation) bool) *store.Installation {
		for i := range st.Installations {
			if ok(&st.Installations[i]) {
				return &st.Installations[i]
			}
		}
		return nil
	}
	in := pick(func(in *store.Installation) bool {
		return in.Active() && in.InstallClass == string(policy.ClassProduction)
	})
	if in == nil {
		in = pick((*store.Installation).Active)
	}
	if in == nil {
		in = pick(func(*store.Installation) bool { return true })
	}
	if in == nil {
		return "", ""
	}
	return in.Domain, in.IP
}

// checkResult is a verdict in policy's terms.
func checkResult(v upstreams.Verdict, at time.Time) policy.CheckResult {
	switch v.Outcome {
	case upstreams.Valid:
		if e := v.Record.ExpiresAt; e != nil && !e.After(at) {
			// The source's own record says the licence's term is over (the
			// author's key file, with a passed expires_at).
			return policy.CheckResult{Outcome: policy.CheckInvalid, Reason: policy.ReasonExpired, ExpiresAt: e, At: at}
		}
		return policy.CheckResult{Outcome: policy.CheckValid, ExpiresAt: v.Record.ExpiresAt, At: at}
	case upstreams.Invalid:
		return policy.CheckResult{Outcome: policy.CheckInvalid, Reason: string(v.Reason), At: at}
	}
	return policy.CheckResult{Outcome: policy.CheckUnknown, Reason: unknownReason(v.Cause), At: at}
}

// unknownReason names what made an answer unknown, for the licence view
// and the logs: a class, never the cause's text (which may quote a URL).
func unknownReason(err error) string {
	var (
		author *upstreams.AuthorCredentialError
		limit  *upstreams.RateLimitError
		status *upstreams.StatusError
	)
	switch {
	case err == nil:
		return "unknown"
	case errors.As(err, &author):
		return "author_credential"
	case errors.As(err, &limit):
		return "rate_limited"
	case errors.Is(err, upstreams.ErrRateBudget):
		return "budget"
	case errors.Is(err, upstreams.ErrCircuitOpen):
		return "circuit_open"
	case errors.Is(err, upstreams.ErrRecheckUnsupported):
		return "unsupported"
	case errors.Is(err, errSourceGone):
		return "source_not_configured"
	case errors.Is(err, errNoSealedKey):
		return "sealed_code_unreadable"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &status):
		return fmt.Sprintf("http_%d", status.Status)
	}
	return "unreadable_answer"
}
