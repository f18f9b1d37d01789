package scaleload

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/store"
)

// ProgressKey is the hash a load records its progress in, under the
// store's key prefix (no key of the gateway's starts so):
//
//	done        licences 0..done-1 are all stored
//	elapsed_ms  the time every run of the load took, added up
//	written     licences written by those runs (a resumed run skips the
//	            ones already stored)
//	fp          the master secret's fingerprint (Fixture.Fingerprint)
//	events      1 when each licence was written with its audit and outbox
//	            entry (Options.Events)
//	rate        licences per second of the last run that wrote any
func ProgressKey(prefix string) string { return prefix + "scaleload:progress" }

// Options configure a Load.
type Options struct {
	// N is how many licences the store is to hold: 0..N-1.
	N int
	// Workers write licences concurrently, each one UpdateLicense at a
	// time. Default 64.
	Workers int
	// Chunk is how many consecutive licences a worker takes at once; the
	// progress moves by whole chunks. Default 500.
	Chunk int
	// Events writes each licence's installation.created event with it, as
	// an activation does (an audit entry and an outbox entry).
	Events bool
	// Report, when set, is called about once a second and at the end.
	Report func(Progress)
}

// Progress is where a load stands.
type Progress struct {
	Done    int           // licences 0..Done-1 are stored
	N       int           // the target
	Written int           // written by this run
	Elapsed time.Duration // this run's time
	Total   time.Duration // every run's time, this one's included
}

// Rate is this run's licences written per second.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Written) / p.Elapsed.Seconds()
}

// ReadProgress returns a store's recorded load progress: done, the total
// time of its runs and its last run's rate (zeros when none was loaded).
func ReadProgress(ctx context.Context, client redis.UniversalClient, prefix string) (done int, total time.Duration, rate float64, err error) {
	h, err := client.HGetAll(ctx, ProgressKey(prefix)).Result()
	if err != nil {
		return 0, 0, 0, err
	}
	done, _ = strconv.Atoi(h["done"])
	ms, _ := strconv.ParseInt(h["elapsed_ms"], 10, 64)
	rate, _ = strconv.ParseFloat(h["rate"], 64)
	return done, time.Duration(ms) * time.Millisecond, rate, nil
}

// Load writes licences 0..N-1 into st (a Redis store on client with
// prefix), each through st.UpdateLicense, resuming where the progress
// key says an earlier run stopped. A licence stored already is left as it
// is, so a chunk a killed run had half written is finished, not doubled.
func Load(ctx context.Context, client redis.UniversalClient, prefix string, st store.Store, f *Fixture, opts Options) (Progress, error) {
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	if opts.Chunk <= 0 {
		opts.Chunk = 500
	}
	pk := ProgressKey(prefix)
	h, err := client.HGetAll(ctx, pk).Result()
	if err != nil {
		return Progress{}, fmt.Errorf("reading the load's progress: %w", err)
	}
	if fp := h["fp"]; fp != "" && fp != f.Fingerprint() {
		return Progress{}, errors.New("this Redis was loaded under another master secret: use that one, or another key prefix")
	}
	events := "0"
	if opts.Events {
		events = "1"
	}
	if ev := h["events"]; ev != "" && ev != events {
		return Progress{}, fmt.Errorf("this Redis was loaded with events=%s: load it the same way, or use another key prefix", ev)
	}
	start, _ := strconv.Atoi(h["done"])
	start -= start % opts.Chunk // chunks stay aligned however the last run ended
	before, _ := strconv.ParseInt(h["elapsed_ms"], 10, 64)
	beforeWritten, _ := strconv.Atoi(h["written"])
	if err := client.HSet(ctx, pk, "fp", f.Fingerprint(), "events", events).Err(); err != nil {
		return Progress{}, fmt.Errorf("recording the load: %w", err)
	}

	began := time.Now()
	var written atomic.Int64
	progress := func(done int) Progress {
		el := time.Since(began)
		return Progress{Done: done, N: opts.N, Written: int(written.Load()), Elapsed: el,
			Total: time.Duration(before)*time.Millisecond + el}
	}
	save := func(p Progress) error {
		vals := []any{"done", p.Done, "elapsed_ms", p.Total.Milliseconds(), "written", beforeWritten + p.Written}
		if p.Written > 0 {
			vals = append(vals, "rate", strconv.FormatFloat(p.Rate(), 'f', 0, 64))
		}
		return client.HSet(context.WithoutCancel(ctx), pk, vals...).Err()
	}
	if start >= opts.N {
		return progress(max(start, opts.N)), nil
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	chunks := make(chan int)
	finished := make(chan int, opts.Workers)
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range chunks {
				for i := a; i < min(a+opts.Chunk, opts.N); i++ {
					ok, err := writeRetrying(ctx, st, f, i, opts.Events)
					if err != nil {
						cancel(fmt.Errorf("writing licence %d: %w", i, err))
						return
					}
					if ok {
						written.Add(1)
					}
				}
				finished <- a
			}
		}()
	}
	go func() {
		defer close(chunks)
		for a := start; a < opts.N; a += opts.Chunk {
			select {
			case chunks <- a:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(finished) }()

	// The done mark moves over chunks finished in order; later ones wait
	// in pending.
	done, pending := start, map[int]bool{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for loop := true; loop; {
		select {
		case a, ok := <-finished:
			if !ok {
				loop = false
				break
			}
			pending[a] = true
			for pending[done] {
				delete(pending, done)
				done = min(done+opts.Chunk, opts.N)
			}
		case <-tick.C:
			p := progress(done)
			if err := save(p); err != nil {
				cancel(fmt.Errorf("recording the load's progress: %w", err))
			}
			if opts.Report != nil {
				opts.Report(p)
			}
		}
	}
	p := progress(done)
	if err := save(p); err != nil && context.Cause(ctx) == nil {
		return p, fmt.Errorf("recording the load's progress: %w", err)
	}
	if opts.Report != nil {
		opts.Report(p)
	}
	if err := context.Cause(ctx); err != nil {
		return p, err
	}
	return p, nil
}

// writeRetrying is Fixture.Write, tried again a few times after a
// conflict or an outage (a loaded Redis rewriting its AOF may pause).
func writeRetrying(ctx context.Context, st store.Store, f *Fixture, i int, events bool) (bool, error) {
	for attempt := 1; ; attempt++ {
		ok, err := f.Write(ctx, st, i, events)
		if err == nil || attempt == 5 || ctx.Err() != nil ||
			!errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrConflict) {
			return ok, err
		}
		time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
	}
}
