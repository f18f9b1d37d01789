package gateway

import (
	"context"
	"errors"

	"github.com/licensegate/licensegate/store"
)

// QueueKinds lists the review queue's kinds (store.Queues: flagged,
// locked, cloned) in the order the console shows them.
var QueueKinds = store.Queues

// MaxQueuePage bounds one page of the review queue.
const MaxQueuePage = 50

// ErrNoQueueIndex means the store keeps no review-queue index.
var ErrNoQueueIndex = errors.New("the store keeps no review-queue index")

// QueueSizes counts each kind of the review queue.
func (s *Service) QueueSizes(ctx context.Context) (map[string]int64, error) {
	qi, ok := s.cfg.Store.(store.TermPager)
	if !ok {
		return nil, ErrNoQueueIndex
	}
	sizes := make(map[string]int64, len(QueueKinds))
	for _, kind := range QueueKinds {
		n, err := qi.CountTerm(ctx, store.QueueTerm(kind))
		if err != nil {
			return nil, storeUnavailable(err)
		}
		sizes[kind] = n
	}
	return sizes, nil
}

// ReviewQueue pages through one kind of the review queue, in licence id
// order after the cursor; the cursor returned is empty at the end.
func (s *Service) ReviewQueue(ctx context.Context, kind, after string) ([]*LicenseReview, string, error) {
	qi, ok := s.cfg.Store.(store.TermPager)
	if !ok {
		return nil, "", ErrNoQueueIndex
	}
	ids, err := qi.LookupAfter(ctx, store.QueueTerm(kind), after, MaxQueuePage)
	if err != nil {
		return nil, "", storeUnavailable(err)
	}
	out := make([]*LicenseReview, 0, len(ids))
	for _, id := range ids {
		rv, err := s.Review(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, rv)
	}
	next := ""
	if len(ids) == MaxQueuePage {
		next = ids[len(ids)-1]
	}
	return out, next, nil
}
