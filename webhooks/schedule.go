package webhooks

import (
	"time"
)

// retryDelays is the wait before each retry of a delivery (after the first
// attempt fails, then after each retry): over 27 hours in all, so a
// receiver down for a day still gets every event.
var retryDelays = []time.Duration{
	5 * time.Second,
	5 * time.Minute,
	30 * time.Minute,
	2 * time.Hour,
	5 * time.Hour,
	10 * time.Hour,
	10 * time.Hour,
}

// MaxAttempts is the number of tries before a delivery is marked failed.
var MaxAttempts = len(retryDelays) + 1

// NextAttempt returns when to try a delivery again after its attempts-th
// failed attempt (1 for the first), or ok=false when it has failed for
// good. jitter in [0, 1) adds up to a fifth of the delay, so deliveries
// that failed together are not retried in one burst; a Retry-After the
// receiver asked for is honoured when it is longer.
func NextAttempt(failedAt time.Time, attempts int, retryAfter time.Duration, jitter float64) (time.Time, bool) {
	if attempts < 1 || attempts > len(retryDelays) {
		return time.Time{}, false
	}
	d := retryDelays[attempts-1]
	if jitter > 0 && jitter < 1 {
		d += time.Duration(float64(d/5) * jitter)
	}
	if retryAfter > d {
		d = min(retryAfter, 24*time.Hour)
	}
	return failedAt.Add(d), true
}
