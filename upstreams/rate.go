package upstreams

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a number of calls per period (Caddyfile "60/m"). It is the one
// rate type of licensegate: a source's call budget and the exchange's
// per-client limits are both token buckets built by Rate.Bucket.
type Rate struct {
	Calls  int
	Period time.Duration
}

// Every is how long one spent call takes to come back.
func (r Rate) Every() time.Duration { return r.Period / time.Duration(r.Calls) }

// Bucket returns a token bucket refilling at r and holding at most burst
// calls, full. Callers pass their own clock's time to its *At and *N
// methods, so tests need not sleep.
func (r Rate) Bucket(burst int) *rate.Limiter {
	return rate.NewLimiter(rate.Every(r.Every()), burst)
}

// TokenWait is how long until b, refilling at r, holds one call at now
// (0: one is there). It takes nothing.
func (r Rate) TokenWait(b *rate.Limiter, now time.Time) time.Duration {
	return r.TokensWait(b, now, 1)
}

// TokensWait is how long until b, refilling at r, holds n calls at now
// (0: they are there). It takes nothing. A bucket whose burst is below n
// never holds them: the wait is then r's period, a pause that ends when
// someone looks again.
func (r Rate) TokensWait(b *rate.Limiter, now time.Time, n float64) time.Duration {
	if float64(b.Burst()) < n {
		return r.Period
	}
	missing := n - b.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(math.Ceil(missing * float64(r.Every())))
}

// ParseRate reads "<calls>/<period>": the period is s, m, h or d, or a Go
// duration ("60/m", "5/10s", "1000/24h").
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not <calls>/<period>, e.g. 60/m", s)
	}
	calls, err := strconv.Atoi(n)
	if err != nil || calls <= 0 {
		return Rate{}, fmt.Errorf("%q: calls must be a positive whole number", s)
	}
	var period time.Duration
	switch per {
	case "s":
		period = time.Second
	case "m":
		period = time.Minute
	case "h":
		period = time.Hour
	case "d":
		period = 24 * time.Hour
	default:
		if period, err = time.ParseDuration(per); err != nil || period <= 0 {
			return Rate{}, fmt.Errorf("%q: period must be s, m, h, d or a positive duration", s)
		}
	}
	return Rate{Calls: calls, Period: period}, nil
}
