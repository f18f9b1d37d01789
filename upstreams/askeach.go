package upstreams

import (
	"context"
	"errors"
)

// AskEach asks about a key within each mapping in turn (one per mapped
// product, list or slug), for sources whose API answers per product: "not
// found" in one may be found in the next, and any other definitive answer
// is final. An Unknown answer is remembered and the rest still asked,
// unless it says to wait (a rate limit, a spent budget, a Retry-After, an
// ended ctx): asking the next one now would only spend the quota. After a
// not found everywhere that was asked, the first Unknown wins over "not
// found", since the key may be in the mapping that could not be asked.
func AskEach(ctx context.Context, mappings ProductMap, ask func(context.Context, ProductMapping) Verdict) Verdict {
	var unknown *Verdict
	for _, m := range mappings {
		if err := ctx.Err(); err != nil {
			return UnknownVerdict(err)
		}
		v := ask(ctx, m)
		switch {
		case v.Outcome == Invalid && v.Reason == NotFound:
			continue
		case v.Outcome != Unknown:
			return v
		case v.saysWait() || ctx.Err() != nil:
			return v
		case unknown == nil:
			unknown = &v
		}
	}
	if unknown != nil {
		return *unknown
	}
	return InvalidVerdict(NotFound)
}

// saysWait reports whether an Unknown verdict asks for quiet: the vendor's
// rate limit or Retry-After, or the source's own budget.
func (v Verdict) saysWait() bool {
	var rl *RateLimitError
	return v.RetryAfter > 0 || errors.As(v.Cause, &rl) || errors.Is(v.Cause, ErrRateBudget)
}
