package policy

import (
	"sort"
	"time"
)

// Bounds on a licence's installation records (SPEC section 4): ended
// installations are dropped from the licence record 30 days after they
// ended (the audit log keeps their history), and at most MaxEnded are kept
// whatever their age, so churn cannot grow the record without end.
const (
	EndedRetention = 30 * 24 * time.Hour
	MaxEnded       = 50
)

// Prunable returns the ids of ended installations the licence record may
// forget at now: those ended over EndedRetention ago, then the oldest past
// MaxEnded.
func Prunable(installations []Installation, now time.Time) []string {
	var ended []Installation
	var out []string
	for _, in := range installations {
		switch {
		case in.Active:
		case !in.EndedAt.IsZero() && now.Sub(in.EndedAt) > EndedRetention:
			out = append(out, in.ID)
		default:
			ended = append(ended, in)
		}
	}
	if len(ended) <= MaxEnded {
		return out
	}
	sort.SliceStable(ended, func(i, j int) bool { return ended[i].EndedAt.Before(ended[j].EndedAt) })
	for _, in := range ended[:len(ended)-MaxEnded] {
		out = append(out, in.ID)
	}
	return out
}
