package kvcluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
)

// TestScanAll: every entry once, in order, for page sizes that divide the
// range evenly and that do not; deletes made behind the scan are not seen
// again; fn's error stops it.
func TestScanAll(t *testing.T) {
	ctx := context.Background()
	s, err := badgerkv.Open(badgerkv.Options{InMemory: true, MemTableBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := func(i int) []byte { return fmt.Appendf(nil, "k%02d", i) }
	if err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
		for i := range 10 {
			if err := txn.Put(ctx, key(i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	txn, err := s.Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Rollback()
	for _, pageRows := range []int{1, 3, 5, 10, 64} {
		var seen []string
		err := kvcluster.ScanAll(ctx, txn, key(0), key(99), pageRows, func(e kvcluster.KeyValue) error {
			seen = append(seen, string(e.Key))
			return nil
		})
		if err != nil || len(seen) != 10 || seen[0] != "k00" || seen[9] != "k09" {
			t.Fatalf("pages of %d: %v %v", pageRows, seen, err)
		}
	}
	n := 0
	if err := kvcluster.ScanAll(ctx, txn, key(0), key(99), 4, func(e kvcluster.KeyValue) error {
		n++
		return txn.Delete(ctx, e.Key)
	}); err != nil || n != 10 {
		t.Fatalf("deleting scan saw %d entries: %v", n, err)
	}
	if kvs, _ := txn.Scan(ctx, key(0), key(99), kvcluster.ScanOptions{Limit: 100}); len(kvs) != 0 {
		t.Fatalf("%d entries left", len(kvs))
	}
	stop := errors.New("stop")
	calls := 0
	err = kvcluster.View(ctx, s, func(ro kvcluster.Txn) error {
		return kvcluster.ScanAll(ctx, ro, key(0), key(99), 3, func(kvcluster.KeyValue) error {
			calls++
			if calls == 4 {
				return stop
			}
			return nil
		})
	})
	if !errors.Is(err, stop) || calls != 4 {
		t.Fatalf("after fn's error: %d calls, %v", calls, err)
	}
}
