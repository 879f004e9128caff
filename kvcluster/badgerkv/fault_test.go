package badgerkv

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/shaledb/shaledb/kvcluster"
)

// TestWriteFailureStopsCommits: after a group's write fails, no later
// commit succeeds (it could expose the failed group's partial entries);
// reads go on; a reopened store has none of the failed group.
func TestWriteFailureStopsCommits(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, MemTableBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(s *Store, k string) error {
		return kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error { return txn.Put(ctx, []byte(k), []byte(k)) })
	}
	if err := put(s, "before"); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("injected disk error")
	s.committer.writeFault = func() error { return boom }
	// Several committers at once, so a group has a second transaction.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- put(s, "during"+string(rune('a'+i))) }()
	}
	wg.Wait()
	close(errs)
	failures := 0
	for err := range errs {
		if err != nil {
			failures++
			if !errors.Is(err, ErrStoreFailed) {
				t.Errorf("commit during the fault: got %v, want ErrStoreFailed", err)
			}
		}
	}
	s.committer.writeFault = nil
	if err := put(s, "after"); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("commit after a failed write: got %v, want ErrStoreFailed", err)
	}
	if failures == 0 {
		// All eight landed in one-transaction groups; the fault never
		// fired, and "after" would have committed. Unlikely but possible.
		t.Skip("no group held two transactions; fault not exercised")
	}
	_ = kvcluster.View(ctx, s, func(txn kvcluster.Txn) error {
		if _, found, err := txn.Get(ctx, []byte("before")); err != nil || !found {
			t.Fatalf("read after failure: %v %v", found, err)
		}
		return nil
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: dir, MemTableBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := put(s, "reopened"); err != nil {
		t.Fatalf("commit after reopen: %v", err)
	}
	_ = kvcluster.View(ctx, s, func(txn kvcluster.Txn) error {
		kvs, _ := txn.Scan(ctx, []byte("during"), []byte("durinh"), kvcluster.ScanOptions{Limit: 100})
		if len(kvs)+failures != 8 {
			t.Fatalf("%d failed commits, but %d of 8 are present after reopen", failures, len(kvs))
		}
		return nil
	})
}
