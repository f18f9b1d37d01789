package embedded

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// Group commit: concurrent writes share one bbolt transaction, so one
// commit (and its fsyncs) serves them all, and none returns before the
// commit that holds it is on disk. A write that arrives while a commit is
// in flight waits for the next one, which takes every write queued by
// then: no timer, so a lone write costs what a plain db.Update does.
//
// A write whose fn fails cannot share a transaction: bbolt has no
// savepoints, so its half-done changes would go out with the others'. The
// transaction is rolled back and run again without it, and the failed
// write then runs alone (see commitBatch). So fn may run more than once,
// and each run must decide from what it reads in tx (see Store.update).

// maxBatch bounds the writes in one transaction (and so the work a failed
// one makes the others run again).
const maxBatch = 128

// committer queues writes for the goroutine that commits them; one runs
// while there is anything queued.
type committer struct {
	mu      sync.Mutex
	queue   []*write
	running bool
}

type write struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// panicked carries a panic in a write's fn back to its caller's goroutine.
type panicked struct{ value any }

func (p panicked) Error() string { return fmt.Sprintf("panic in a write: %v", p.value) }

// commit runs fn in a write transaction, possibly shared with concurrent
// writes, and returns once that transaction is committed (nil) or fn's
// error once it is rolled back.
func (s *Store) commit(fn func(*bolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan error, 1)}
	c := &s.commits
	c.mu.Lock()
	c.queue = append(c.queue, w)
	if !c.running {
		c.running = true
		go s.commitQueued()
	}
	c.mu.Unlock()
	err := <-w.done
	if p, ok := err.(panicked); ok {
		panic(p.value)
	}
	return err
}

// commitQueued commits the queued writes, a batch at a time, until none
// is left.
func (s *Store) commitQueued() {
	c := &s.commits
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxBatch)
		if n == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		if len(c.queue) == 0 {
			c.queue = nil
		}
		c.mu.Unlock()
		s.commitBatch(batch)
	}
}

// commitBatch runs batch in one transaction and answers each write. A
// write that fails first in the transaction, on the committed state, has
// its answer; one that fails after others leaves the batch, which is run
// again without it, and then runs alone (as bbolt's DB.Batch does): each
// failure takes one write out, so the batch ends.
func (s *Store) commitBatch(batch []*write) {
	var alone []*write
	for len(batch) > 0 {
		failed := -1
		var fnErr error
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, w := range batch {
				if err := w.run(tx); err != nil {
					failed, fnErr = i, err
					return err
				}
			}
			return nil
		})
		if failed < 0 { // committed, or the transaction itself failed
			for _, w := range batch {
				w.done <- err
			}
			break
		}
		if failed == 0 {
			batch[0].done <- fnErr
		} else {
			alone = append(alone, batch[failed])
		}
		batch = append(batch[:failed], batch[failed+1:]...)
	}
	for _, w := range alone {
		w.done <- s.db.Update(w.run)
	}
}

func (w *write) run(tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicked{p}
		}
	}()
	return w.fn(tx)
}
