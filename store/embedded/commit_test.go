package embedded

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openInternal(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "lg.db"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// holdCommitter starts a write that blocks inside its transaction until
// release is called, so writes queued meanwhile wait for the next commit.
func holdCommitter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	entered, hold := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.update(context.Background(), "holding", func(tx *bolt.Tx) error {
			select {
			case <-entered:
			default:
				close(entered)
			}
			<-hold
			return nil
		})
	}()
	<-entered
	return func() {
		close(hold)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// awaitQueued waits until n writes wait for the committer.
func awaitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.commits.mu.Lock()
		q := len(s.commits.queue)
		s.commits.mu.Unlock()
		if q >= n {
			return
		}
	}
	t.Fatalf("fewer than %d writes queued", n)
}

// Writes that arrive while a commit is in flight share the next one, and
// each is on disk when it returns.
func TestConcurrentWritesShareACommit(t *testing.T) {
	s := openInternal(t)
	release := holdCommitter(t, s)
	const n = 20
	var wg sync.WaitGroup
	txIDs := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.update(context.Background(), "writing", func(tx *bolt.Tx) error {
				txIDs[i] = tx.ID()
				return tx.Bucket(bucketIdempotency).Put(fmt.Appendf(nil, "k%02d", i), []byte("v"))
			})
		}()
	}
	awaitQueued(t, s, n)
	release()
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("write %d: %v", i, errs[i])
		}
		if txIDs[i] != txIDs[0] {
			t.Fatalf("writes ran in transactions %v, want one", txIDs)
		}
	}
	// Durable: a fresh handle on the file sees every write.
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		for i := range n {
			if tx.Bucket(bucketIdempotency).Get(fmt.Appendf(nil, "k%02d", i)) == nil {
				t.Errorf("write %d is not in the file", i)
			}
		}
		return nil
	})
}

// A write that fails in a shared transaction gets its own error and
// leaves nothing behind; the others are committed, each exactly once in
// the file even though their fn ran again.
func TestFailedWriteInABatchLeavesTheOthers(t *testing.T) {
	s := openInternal(t)
	release := holdCommitter(t, s)
	errBoom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, key := range []string{"a", "fail", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.update(context.Background(), "writing", func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketAudit)
				seq, _ := b.NextSequence() // a rolled-back run must not leave a gap
				if err := b.Put([]byte(key), fmt.Append(nil, seq)); err != nil {
					return err
				}
				if key == "fail" {
					return errAbort{errBoom}
				}
				return nil
			})
		}()
		awaitQueued(t, s, i+1) // queued in this order
	}
	release()
	wg.Wait()
	if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], errBoom) {
		t.Fatalf("errors %v, want nil, boom, nil", errs)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b.Get([]byte("fail")) != nil {
			t.Error("the failed write's change was committed")
		}
		if b.Get([]byte("a")) == nil || b.Get([]byte("c")) == nil {
			t.Error("a write that succeeded was not committed")
		}
		if seq := b.Sequence(); seq != 2 {
			t.Errorf("sequence %d after two committed writes, want 2", seq)
		}
		return nil
	})
}

// A caller that went away before its write's commit gets its context's
// error and nothing of its write is stored, while the others commit.
func TestCanceledWriteInABatch(t *testing.T) {
	s := openInternal(t)
	release := holdCommitter(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var gone, kept error
	wg.Add(2)
	go func() {
		defer wg.Done()
		gone = s.update(ctx, "writing", func(tx *bolt.Tx) error {
			cancel() // the caller leaves while its fn runs
			return tx.Bucket(bucketIdempotency).Put([]byte("gone"), []byte("v"))
		})
	}()
	awaitQueued(t, s, 1)
	go func() {
		defer wg.Done()
		kept = s.update(context.Background(), "writing", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketIdempotency).Put([]byte("kept"), []byte("v"))
		})
	}()
	awaitQueued(t, s, 2)
	release()
	wg.Wait()
	if !errors.Is(gone, context.Canceled) || kept != nil {
		t.Fatalf("errors %v, %v; want context.Canceled, nil", gone, kept)
	}
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIdempotency)
		if b.Get([]byte("gone")) != nil || b.Get([]byte("kept")) == nil {
			t.Error("want only the kept write stored")
		}
		return nil
	})
}

// A panic in fn reaches its caller, not the committer's goroutine.
func TestPanicInWriteReachesCaller(t *testing.T) {
	s := openInternal(t)
	defer func() {
		if p := recover(); p != "boom" {
			t.Fatalf("recovered %v, want boom", p)
		}
		if err := s.update(context.Background(), "writing", func(*bolt.Tx) error { return nil }); err != nil {
			t.Fatalf("a write after the panic: %v", err)
		}
	}()
	_ = s.update(context.Background(), "writing", func(*bolt.Tx) error { panic("boom") })
}

// After Close, a write fails as unavailable instead of hanging.
func TestWriteAfterClose(t *testing.T) {
	s := openInternal(t)
	s.Close()
	err := s.update(context.Background(), "writing", func(*bolt.Tx) error { return nil })
	if err == nil {
		t.Fatal("a write after Close succeeded")
	}
}
