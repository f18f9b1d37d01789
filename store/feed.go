package store

// Offer hands c to a subscriber's channel without blocking the writer. A
// subscriber that cannot keep up loses notices, so it must hear that it
// did: the channel's last free slot is kept for a Resync, sent in place of
// the first notice that does not fit. While that Resync waits unread, the
// channel is full and further notices are dropped, all of them covered by
// it (the subscriber drops its whole cache after reading it). Without this
// a suspension could go unenforced for twice the cache's TTL instead of
// under a second.
//
// Each channel must have one sender at a time (the backend's publisher
// holds a lock, or one goroutine forwards), so len is not racing another
// send; a channel without capacity for the reserve gets no Resync.
func Offer(ch chan<- Change, c Change) {
	switch free := cap(ch) - len(ch); {
	case free > 1:
		ch <- c
	case free == 1:
		ch <- Change{Resync: true}
	}
}
