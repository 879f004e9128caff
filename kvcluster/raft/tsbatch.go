package raft

import (
	"context"
	"sync"
)

// tsBatcher shares requests to a remote timestamp oracle among concurrent
// callers. While one request is in flight, callers gather into the next;
// it asks for as many timestamps as it has callers, and each takes one.
// Every timestamp of a request is allocated after all its callers asked,
// so each is as fresh as one asked for alone. The zero value is ready.
type tsBatcher struct {
	mu       sync.Mutex
	next     *tsRequest // gathering callers, not yet sent
	inflight bool
}

// tsRequest is one request to the oracle: n callers, answered with the
// first of n consecutive timestamps and their schema epoch, or an error
// for all.
type tsRequest struct {
	n     uint64
	done  chan struct{}
	first uint64
	epoch uint64
	err   error
}

// get returns a timestamp and its epoch from one of the requests fetch
// makes; fetch is given how many timestamps to allocate and returns the
// first and their epoch. A caller whose ctx ends stops waiting (its
// timestamp goes unused).
func (b *tsBatcher) get(ctx context.Context, fetch func(n uint64) (uint64, uint64, error)) (uint64, uint64, error) {
	b.mu.Lock()
	r := b.next
	if r == nil {
		r = &tsRequest{done: make(chan struct{})}
		b.next = r
	}
	slot := r.n
	r.n++
	if !b.inflight {
		b.inflight = true
		go b.send(fetch)
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		if r.err != nil {
			return 0, 0, r.err
		}
		return r.first + slot, r.epoch, nil
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// send makes requests until no caller is waiting for one.
func (b *tsBatcher) send(fetch func(n uint64) (uint64, uint64, error)) {
	for {
		b.mu.Lock()
		r := b.next
		b.next = nil
		if r == nil {
			b.inflight = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		r.first, r.epoch, r.err = fetch(r.n)
		close(r.done)
	}
}
