package raft

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTsBatcher checks the shared timestamp requests against an oracle
// that is a counter: every caller gets a distinct timestamp allocated
// after it asked, and concurrent callers share requests.
func TestTsBatcher(t *testing.T) {
	var b tsBatcher
	var last atomic.Uint64 // the oracle: the highest timestamp allocated
	var requests atomic.Int64
	fetch := func(n uint64) (uint64, uint64, error) {
		requests.Add(1)
		time.Sleep(200 * time.Microsecond) // a round trip
		return last.Add(n) - n + 1, 1, nil
	}
	const callers, calls = 16, 200
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				before := last.Load()
				ts, _, err := b.get(context.Background(), fetch)
				if err != nil {
					t.Error(err)
					return
				}
				if ts <= before {
					t.Errorf("timestamp %d is not fresh: %d was allocated before it was asked for", ts, before)
					return
				}
				mu.Lock()
				dup := seen[ts]
				seen[ts] = true
				mu.Unlock()
				if dup {
					t.Errorf("timestamp %d handed out twice", ts)
					return
				}
			}
		}()
	}
	wg.Wait()
	if r := requests.Load(); r >= callers*calls/2 {
		t.Errorf("%d requests for %d timestamps: callers did not share them", r, callers*calls)
	}
	// A caller that stops waiting gets its context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := func(n uint64) (uint64, uint64, error) {
		time.Sleep(10 * time.Millisecond)
		return last.Add(n) - n + 1, 1, nil
	}
	if _, _, err := b.get(ctx, slow); err != context.Canceled {
		t.Fatalf("cancelled caller: %v", err)
	}
}
