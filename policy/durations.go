package policy

import (
	"fmt"
	"time"
)

// Durations an author sets (SPEC section 3): each is at least 1s (0 where
// 0 means off or the default), and one below its sensible floor is
// accepted with one warning at provision that names the option, the floor
// and what the value will do. An author watching a recheck or an idle
// release happen in staging sets seconds on purpose; the rate budgets
// still bound what a short interval can ask of a marketplace.

// MinDuration is every duration's hard minimum.
const MinDuration = time.Second

// durationFloor is one option's sensible floor and what a value below it
// does, for the warning.
type durationFloor struct {
	floor  time.Duration
	effect string
}

// durationFloors are the options with a sensible floor, by option name.
var durationFloors = map[string]durationFloor{
	"access_token_ttl": {5 * time.Minute, "every installation will refresh its token that often"},
	"recheck every": {time.Hour, "each licence will be asked about at its source that often " +
		"(the source's recheck share of its rate limit still bounds the calls)"},
	"recheck confirm_window": {time.Hour, "auto mode may suspend on definitive answers spread over only that long"},
	"release_idle": {10 * time.Minute, "an installation unused that long loses its slot; with several " +
		"instances, each writes its uses to the store once a minute, so a busy installation may be taken for idle"},
	"move_cooldown": {time.Hour, "a licence may move to another domain that often, and a re-activation from " +
		"another network is contested (cannot deactivate or move the installation) only that long"},
	"refresh_cooldown": {time.Minute, "a buyer or product may have a licence rechecked at its source that often " +
		"(the source's recheck share of its rate limit still bounds the calls)"},
	"expiry_grace":        {time.Hour, "a source outage longer than that at a licence's expiry stops a buyer who renewed"},
	"refresh_reuse_grace": {5 * time.Second, "several workers sharing one refresh token may be taken for a cloned installation"},
	"key_rotation": {time.Hour, "a new signing key is made that often, and each stays in the JWKS until " +
		"its tokens expire (access_token_ttl)"},
	"link_ttl":    {5 * time.Minute, "a sign-in link expires that soon after it is sent"},
	"session_ttl": {5 * time.Minute, "a signed-in buyer or author must sign in again that often"},
}

// CheckDuration refuses a set duration below MinDuration, and describes a
// duration below its option's sensible floor (warning: what it will do),
// which is accepted. scope prefixes the option ("product p: "); zero is
// not checked (off, or the default).
func CheckDuration(scope, option string, d time.Duration) (warning string, floor time.Duration, err error) {
	if d == 0 {
		return "", 0, nil
	}
	if d < MinDuration {
		return "", 0, fmt.Errorf("%s%s: %s is shorter than %s", scope, option, d, MinDuration)
	}
	if f, ok := durationFloors[option]; ok && d < f.floor {
		return fmt.Sprintf("%s%s is below %s: %s", scope, option, f.floor, f.effect), f.floor, nil
	}
	return "", 0, nil
}
