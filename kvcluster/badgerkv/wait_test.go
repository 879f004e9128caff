package badgerkv

import (
	"context"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
)

// TestWaitForOlderSnapshots: the wait ends when the last transaction that
// began before a commit ends, not before, and a transaction that began
// after the call does not hold it.
func TestWaitForOlderSnapshots(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old, err := s.Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error { return txn.Put(ctx, []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.WaitForOlderSnapshots(ctx) }()
	time.Sleep(20 * time.Millisecond)
	later, err := s.Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer later.Rollback()
	select {
	case err := <-done:
		t.Fatalf("returned with an older snapshot open: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	old.Rollback()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting after the older transaction ended (a newer one is open)")
	}
	// Bounded by ctx.
	blocker, err := s.Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	if err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error { return txn.Put(ctx, []byte("k"), []byte("w")) }); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := s.WaitForOlderSnapshots(cctx); err != context.DeadlineExceeded {
		t.Fatalf("want the deadline, got %v", err)
	}
}
