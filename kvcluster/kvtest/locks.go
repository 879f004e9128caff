package kvtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
)

// Tests of kvcluster.LockingTxn, run when the store's transactions offer it.

func (s *suite) locking(t *testing.T) kvcluster.LockingTxn {
	t.Helper()
	lt, ok := s.begin(t).(kvcluster.LockingTxn)
	if !ok {
		t.Skip("this store does not offer row locks")
	}
	return lt
}

func testLockWaitsAndSeesLatest(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("k")), "0")
	t1 := s.locking(t)
	t2 := s.locking(t) // its snapshot predates t1's commit
	v, found, err := t1.LockForUpdate(ctx, p.key("k"))
	if err != nil || !found || string(v) != "0" {
		t.Fatalf("t1 lock: %q %v %v", v, found, err)
	}
	mustPut(t, t1, p.key("k"), []byte("1"))
	got := make(chan string, 1)
	go func() {
		v, _, err := t2.LockForUpdate(ctx, p.key("k"))
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(v)
	}()
	select {
	case v := <-got:
		t.Fatalf("t2 took a lock t1 holds (got %q)", v)
	case <-time.After(50 * time.Millisecond):
	}
	if err := t1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "1" {
		t.Fatalf("t2 read %q after the lock, want t1's committed 1", v)
	}
	if v, _, _ := t2.Get(ctx, p.key("k")); string(v) != "1" {
		t.Fatalf("t2's Get after locking = %q, want the latest 1", v)
	}
	mustPut(t, t2, p.key("k"), []byte("2"))
	if err := t2.Commit(ctx); err != nil {
		t.Fatalf("t2's commit after waiting for the lock: %v; locking must prevent the conflict", err)
	}
	if v, _ := s.get(t, p.key("k")); v != "2" {
		t.Fatalf("k = %q, want 2", v)
	}
}

// testLockedIncrementsNeedNoRetry is TPC-B's shape: many transactions
// update one row; with locks, none fails and no update is lost.
func testLockedIncrementsNeedNoRetry(t *testing.T, s *suite, p prefix) {
	s.locking(t).Rollback()
	const workers, each = 8, 30
	var failures atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				txn, err := s.kv.Begin(ctx, kvcluster.TxnOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				lt := txn.(kvcluster.LockingTxn)
				v, _, err := lt.LockForUpdate(ctx, p.key("counter"))
				if err == nil {
					n, _ := strconv.Atoi(string(v))
					err = lt.Put(ctx, p.key("counter"), []byte(strconv.Itoa(n+1)))
				}
				if err == nil {
					err = lt.Commit(ctx)
				}
				if err != nil {
					failures.Add(1)
				}
				lt.Rollback()
			}
		}()
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d locked increments failed; locks must serialize them", failures.Load())
	}
	if v, _ := s.get(t, p.key("counter")); v != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s, want %d", v, workers*each)
	}
}

func testDeadlockDetected(t *testing.T, s *suite, p prefix) {
	t1, t2 := s.locking(t), s.locking(t)
	if _, _, err := t1.LockForUpdate(ctx, p.key("a")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := t2.LockForUpdate(ctx, p.key("b")); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() {
		_, _, err := t1.LockForUpdate(ctx, p.key("b"))
		waited <- err
	}()
	time.Sleep(20 * time.Millisecond) // let t1 wait for b
	_, _, err := t2.LockForUpdate(ctx, p.key("a"))
	if !errors.Is(err, kvcluster.ErrDeadlock) || !kvcluster.IsRetryable(err) {
		t.Fatalf("closing a wait cycle: got %v, want a retryable ErrDeadlock", err)
	}
	t2.Rollback()
	if err := <-waited; err != nil {
		t.Fatalf("t1 after t2 gave up: %v", err)
	}
}

func testLockWaitCancelled(t *testing.T, s *suite, p prefix) {
	t1, t2 := s.locking(t), s.locking(t)
	if _, _, err := t1.LockForUpdate(ctx, p.key("k")); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, _, err := t2.LockForUpdate(cctx, p.key("k")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past the context: got %v", err)
	}
	// A missing key can be locked; it reads as absent.
	if _, found, err := t2.LockForUpdate(ctx, p.key(fmt.Sprint("missing"))); err != nil || found {
		t.Fatalf("lock of a missing key: %v %v", found, err)
	}
}

// testGetAndLock checks kvcluster.GetAndLock (the store's own, or Get and
// LockForUpdate): it returns the snapshot's value and the latest, locks a
// key the snapshot has, and does not lock one it lacks.
func testGetAndLock(t *testing.T, s *suite, p prefix) {
	s.put(t, string(p.key("old")), "a", string(p.key("gone")), "x")
	reader := s.locking(t)
	// After reader's snapshot: old changes, new appears, gone goes.
	s.put(t, string(p.key("old")), "b", string(p.key("new")), "n")
	w := s.begin(t)
	if err := w.Delete(ctx, p.key("gone")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	snap, found, latest, latestFound, err := kvcluster.GetAndLock(ctx, reader, p.key("old"))
	if err != nil || !found || string(snap) != "a" || !latestFound || string(latest) != "b" {
		t.Fatalf("GetAndLock(old) = %q %v %q %v %v; want a, then b", snap, found, latest, latestFound, err)
	}
	if _, found, _, _, err := kvcluster.GetAndLock(ctx, reader, p.key("new")); err != nil || found {
		t.Fatalf("GetAndLock(new) found %v (%v): the snapshot predates it", found, err)
	}
	if _, found, _, latestFound, err := kvcluster.GetAndLock(ctx, reader, p.key("gone")); err != nil || !found || latestFound {
		t.Fatalf("GetAndLock(gone) = found %v, latest found %v (%v); want in the snapshot, deleted since", found, latestFound, err)
	}
	// old is locked: another transaction waits for it; new is not.
	other := s.locking(t)
	lctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := other.LockForUpdate(lctx, p.key("old")); err == nil {
		t.Fatal("another transaction took the lock GetAndLock holds")
	}
	if _, _, err := other.LockForUpdate(ctx, p.key("new")); err != nil {
		t.Fatalf("a key GetAndLock did not find is locked: %v", err)
	}
	other.Rollback()
	// The latest value is what the transaction reads and overwrites.
	if v, _, err := reader.Get(ctx, p.key("old")); err != nil || string(v) != "b" {
		t.Fatalf("Get after GetAndLock = %q (%v), want the latest b", v, err)
	}
	mustPut(t, reader, p.key("old"), []byte("c"))
	if err := reader.Commit(ctx); err != nil {
		t.Fatalf("commit after GetAndLock: %v", err)
	}
	if v, _ := s.get(t, p.key("old")); v != "c" {
		t.Fatalf("old = %q, want c", v)
	}
}
