package supervise

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// waitLimit bounds how long a test waits for a worker to get somewhere;
// reaching it is a failure, never the expected path.
const waitLimit = 10 * time.Second

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// testSupervisor restarts at once, so tests never wait on a backoff.
func testSupervisor(logger *zap.Logger) *Supervisor {
	s := New(logger)
	s.Backoff = func(int) time.Duration { return 0 }
	return s
}

func TestRestartBackoff(t *testing.T) {
	for n, want := range map[int]time.Duration{
		1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second,
		6: 30 * time.Second, 100: 30 * time.Second,
	} {
		if got := RestartBackoff(n); got != want {
			t.Errorf("RestartBackoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// A worker that panics or fails is run again, after the backoff its
// consecutive failures call for; the panic is logged with its stack.
func TestSupervisorRestartsFailedWorker(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	sup := testSupervisor(zap.New(core))
	var waits []int
	var mu sync.Mutex
	sup.Backoff = func(n int) time.Duration {
		mu.Lock()
		waits = append(waits, n)
		mu.Unlock()
		return 0
	}
	runs := 0
	third := make(chan struct{})
	sup.Start("test", func(ctx context.Context) error {
		runs++ // one goroutine runs the worker at a time
		switch runs {
		case 1:
			panic("injected")
		case 2:
			return errors.New("injected failure")
		}
		close(third)
		<-ctx.Done()
		return nil
	})
	receive(t, third, "the third run")
	sup.Stop()

	if runs != 3 {
		t.Fatalf("worker ran %d times, want 3", runs)
	}
	if len(waits) != 2 || waits[0] != 1 || waits[1] != 2 {
		t.Errorf("backoff asked for %v, want [1 2]", waits)
	}
	panics := logs.FilterMessage("background worker panicked; restarting it").All()
	if len(panics) != 1 {
		t.Fatalf("logged %d panics, want 1: %v", len(panics), logs.All())
	}
	fields := panics[0].ContextMap()
	if fields["worker"] != "test" || fields["panic"] != "injected" {
		t.Errorf("panic logged as %v", fields)
	}
	if stack, _ := fields["stack"].(string); !strings.Contains(stack, "TestSupervisorRestartsFailedWorker") {
		t.Errorf("logged stack does not show where the panic came from:\n%s", stack)
	}
	if n := logs.FilterMessage("background worker failed; restarting it").Len(); n != 1 {
		t.Errorf("logged %d failures, want 1", n)
	}
}

// A worker that returns nil before it is stopped has nothing more to do:
// it is not run again.
func TestSupervisorLetsFinishedWorkerEnd(t *testing.T) {
	sup := testSupervisor(zap.NewNop())
	var runs atomic.Int32
	done := make(chan struct{})
	sup.Start("once", func(context.Context) error {
		runs.Add(1)
		close(done)
		return nil
	})
	receive(t, done, "the run")
	sup.Stop() // waits for the worker's goroutine, which must not run it again
	if n := runs.Load(); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
}
