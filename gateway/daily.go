package gateway

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/store"
)

// Per-day counts (SPEC section 13): the author console charts new
// activations and the gate's decisions by code over 30 days, from
// counters the store keeps per day (store.Counters), never by scanning
// licences. Each instance counts in memory, with atomic adds into a slot
// per UTC day of the service's clock, so the gate takes no lock and
// allocates nothing for it; the daily_counts worker adds what was
// counted to the store every CountsInterval (default 1m), in one batch,
// as last seen is written. A batch the store refuses is kept for the
// next flush; counts of days past store.DailyRetention are dropped.

// DefaultCountsInterval is how often the per-day counts are written.
const DefaultCountsInterval = time.Minute

// SeriesActivations counts new installations answered 201.
const SeriesActivations = "activations"

// GateSeries is the series counting the gate's decisions with code:
// OutcomeAdmitted or a refusal's public code. Codes the gate does not
// give count as GateSeries("other").
func GateSeries(code string) string { return "gate:" + code }

// gateOutcomes are the codes the gate's decisions are counted by: a
// fixed set, so a client can never add a series.
var gateOutcomes = [...]string{
	OutcomeAdmitted, CodeInvalidToken, CodeInstallationInactive, CodeInstallationReleased,
	CodeTokenRevoked, CodeLicenseSuspended, CodeLicenseRevoked, CodeLicenseExpired,
	CodeRequirementNotMet, CodeQuotaExceeded, CodeStoreUnavailable, CodeClientClosed, CodeInternal,
}

// Series indexes: activations, one per gate outcome, then the gate's
// catch-all.
const (
	seriesActivations = 0
	seriesGateOther   = 1 + len(gateOutcomes)
	numSeries         = seriesGateOther + 1
)

// seriesNames are the store's names of the series, by index;
// gateSeriesIndex the index of each gate outcome. Both are read-only.
var (
	seriesNames     = makeSeriesNames()
	gateSeriesIndex = makeGateSeriesIndex()
)

func makeSeriesNames() [numSeries]string {
	var names [numSeries]string
	names[seriesActivations] = SeriesActivations
	for i, code := range gateOutcomes {
		names[1+i] = GateSeries(code)
	}
	names[seriesGateOther] = GateSeries("other")
	return names
}

func makeGateSeriesIndex() map[string]int {
	m := make(map[string]int, len(gateOutcomes))
	for i, code := range gateOutcomes {
		m[code] = 1 + i
	}
	return m
}

// DailySeries lists every series the service counts, for a reader of
// store.Counters.Daily (the console).
func DailySeries() []string { return slices.Clone(seriesNames[:]) }

const secondsPerDay = 24 * 60 * 60

// dailySlot counts one day: the slot of a day's parity, so today's and
// yesterday's counts are apart while yesterday's tail waits for a flush.
type dailySlot struct {
	day atomic.Int64 // days since the Unix epoch
	n   [numSeries]atomic.Int64
}

// dailyCounts is an instance's per-day counts.
type dailyCounts struct {
	slots [2]dailySlot

	mu sync.Mutex // moving counts out of the slots, and pending
	// pending holds counts taken from the slots and not yet stored, by day.
	pending map[int64]*[numSeries]int64
	flushMu sync.Mutex // one flush at a time
}

// add counts one event of series at now. It allocates nothing and takes
// no lock but once a day per slot.
func (c *dailyCounts) add(now time.Time, series int) {
	day := now.Unix() / secondsPerDay
	sl := &c.slots[day&1]
	if sl.day.Load() != day {
		c.rotate(sl, day)
	}
	sl.n[series].Add(1)
}

// seriesAdmitted is the series of admitted requests: gateOutcomes[0].
const seriesAdmitted = 1

// gate counts a gate decision by its code. An admission, nearly every
// decision, is counted without hashing its code.
func (c *dailyCounts) gate(now time.Time, code string) {
	if code == OutcomeAdmitted {
		c.add(now, seriesAdmitted)
		return
	}
	i, ok := gateSeriesIndex[code]
	if !ok {
		i = seriesGateOther
	}
	c.add(now, i)
}

// rotate gives sl to day, keeping what it counted for its earlier day
// in pending.
func (c *dailyCounts) rotate(sl *dailySlot, day int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sl.day.Load() != day {
		c.takeLocked(sl)
		sl.day.Store(day)
	}
}

// takeLocked moves sl's counts to pending.
func (c *dailyCounts) takeLocked(sl *dailySlot) {
	var p *[numSeries]int64
	for i := range sl.n {
		n := sl.n[i].Swap(0)
		if n == 0 {
			continue
		}
		if p == nil {
			if p = c.pending[sl.day.Load()]; p == nil {
				p = new([numSeries]int64)
				if c.pending == nil {
					c.pending = map[int64]*[numSeries]int64{}
				}
				c.pending[sl.day.Load()] = p
			}
		}
		p[i] += n
	}
}

// take moves every count to pending, drops the days the store would no
// longer keep, and returns pending as deltas.
func (c *dailyCounts) take(now time.Time) []store.DailyDelta {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		c.takeLocked(&c.slots[i])
	}
	oldest := now.Add(-store.DailyRetention).Unix() / secondsPerDay
	var out []store.DailyDelta
	for day, p := range c.pending {
		if day < oldest {
			delete(c.pending, day)
			continue
		}
		for i, n := range p {
			if n > 0 {
				out = append(out, store.DailyDelta{Day: time.Unix(day*secondsPerDay, 0).UTC(), Series: seriesNames[i], N: n})
			}
		}
	}
	return out
}

// stored takes a batch the store took out of pending.
func (c *dailyCounts) stored(batch []store.DailyDelta) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range batch {
		day := d.Day.Unix() / secondsPerDay
		p := c.pending[day]
		if p == nil {
			continue
		}
		i := slices.Index(seriesNames[:], d.Series)
		p[i] -= d.N
		if *p == ([numSeries]int64{}) {
			delete(c.pending, day)
		}
	}
}

// countsInterval is the configured interval, or the default.
func (s *Service) countsInterval() time.Duration {
	if s.cfg.CountsInterval > 0 {
		return s.cfg.CountsInterval
	}
	return DefaultCountsInterval
}

// FlushDaily adds the per-day counts not written yet to the store, as
// one batch. On failure they stay for the next flush.
func (s *Service) FlushDaily(ctx context.Context) error {
	s.daily.flushMu.Lock()
	defer s.daily.flushMu.Unlock()
	batch := s.daily.take(s.now())
	if len(batch) == 0 {
		return nil
	}
	if err := s.cfg.Store.AddDaily(ctx, batch); err != nil {
		return err
	}
	s.daily.stored(batch)
	return nil
}

// countDaily is the daily_counts worker: a flush every interval, and a
// last one when ctx ends (the app stopping), so a reload loses nothing.
func (s *Service) countDaily(ctx context.Context) error {
	flush := func(ctx context.Context) {
		fctx, cancel := context.WithTimeout(ctx, lastSeenTimeout)
		defer cancel()
		if err := s.FlushDaily(fctx); err != nil && ctx.Err() == nil {
			s.log.Warn("writing per-day counts; kept for the next try", zap.Error(err))
		}
	}
	err := every(ctx, s.countsInterval(), flush)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if ferr := s.FlushDaily(fctx); ferr != nil {
		s.log.Warn("writing per-day counts at stop", zap.Error(ferr))
	}
	return err
}

// DailyCounts returns every series the service counts (DailySeries),
// one count per UTC day for the days up to today by the service's
// clock, oldest first, from the store's counters (what every instance
// flushed): the console's charts. days is at most store.MaxDailyDays.
func (s *Service) DailyCounts(ctx context.Context, days int) (from time.Time, counts map[string][]int64, err error) {
	if days < 1 || days > store.MaxDailyDays {
		return time.Time{}, nil, Validation("days", "must be 1 to "+strconv.Itoa(store.MaxDailyDays))
	}
	today := store.Day(s.now())
	from = today.AddDate(0, 0, 1-days)
	counts, err = s.cfg.Store.Daily(ctx, DailySeries(), from, today)
	if err != nil {
		return time.Time{}, nil, storeUnavailable(err)
	}
	return from, counts, nil
}
