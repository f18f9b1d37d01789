// Package supervise keeps background workers running: each in its own
// goroutine under its own cancel, run again after a backoff when it panics
// (logged with its stack) or fails, until Stop cancels them all and waits.
package supervise

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/upstreams"
)

// Restart backoff: the first restart after minRestartBackoff, each
// consecutive one twice as late up to maxRestartBackoff. A run that lasted
// healthyRun forgets the failures before it.
const (
	minRestartBackoff = time.Second
	maxRestartBackoff = 30 * time.Second
	healthyRun        = time.Minute
)

// Supervisor keeps the app's background workers running: each in its own
// goroutine under its own cancel, run again after a backoff when it panics
// (logged with its stack) or returns an error, until Stop cancels them all
// and waits for them.
type Supervisor struct {
	logger *zap.Logger
	// Backoff is the wait before a worker's n-th consecutive restart
	// (n >= 1). Default: RestartBackoff.
	Backoff func(n int) time.Duration
	// Clock judges how long a run lasted and waits out the backoff.
	// Default: upstreams.SystemClock.
	Clock upstreams.Clock

	wg      sync.WaitGroup
	mu      sync.Mutex
	cancels []context.CancelFunc
}

// New returns a supervisor that logs to logger.
func New(logger *zap.Logger) *Supervisor {
	return &Supervisor{logger: logger, Backoff: RestartBackoff, Clock: upstreams.SystemClock}
}

// RestartBackoff doubles from minRestartBackoff up to maxRestartBackoff.
func RestartBackoff(n int) time.Duration {
	d := minRestartBackoff
	for i := 1; i < n && d < maxRestartBackoff; i++ {
		d *= 2
	}
	return min(d, maxRestartBackoff)
}

// Start runs the worker named name, run, in the background until Stop.
func (s *Supervisor) Start(name string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.cancels = append(s.cancels, cancel)
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.keep(ctx, name, run)
	}()
}

// Stop cancels every worker, then waits for them to return.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	cancels := s.cancels
	s.cancels = nil
	s.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
	s.wg.Wait()
}

// keep runs run until ctx ends or it returns nil, restarting it after each
// failure.
func (s *Supervisor) keep(ctx context.Context, name string, run func(context.Context) error) {
	log := s.logger.With(zap.String("worker", name))
	failures := 0
	for {
		began := s.Clock.Now()
		err := runRecovered(ctx, run)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			log.Debug("background worker finished")
			return
		}
		if s.Clock.Now().Sub(began) >= healthyRun {
			failures = 0
		}
		failures++
		wait := s.Backoff(failures)
		if p, ok := err.(*workerPanic); ok {
			log.Error("background worker panicked; restarting it",
				zap.Any("panic", p.value), zap.ByteString("stack", p.stack), zap.Duration("backoff", wait))
		} else {
			log.Warn("background worker failed; restarting it", zap.Error(err), zap.Duration("backoff", wait))
		}
		if s.Clock.Sleep(ctx, wait) != nil || ctx.Err() != nil {
			return // stopped while waiting
		}
	}
}

// workerPanic is a worker's panic, with the stack it was raised on.
type workerPanic struct {
	value any
	stack []byte
}

func (p *workerPanic) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// runRecovered calls run, turning a panic into a *workerPanic.
func runRecovered(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &workerPanic{value: r, stack: debug.Stack()}
		}
	}()
	return run(ctx)
}
