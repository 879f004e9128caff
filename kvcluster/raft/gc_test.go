package raft_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// TestVersionGC: every node's discard timestamp stays at or below the
// snapshot of a transaction open on any node, which keeps reading the
// versions it saw while newer ones are written; once it ends, the
// timestamps move past it. A read below a leader's discard timestamp
// (a transaction of a node the cluster holds dead) is refused, retryably.
func TestVersionGC(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{Nodes: 3, GCInterval: 20 * time.Millisecond})
	ctx := context.Background()
	put := func(v string) {
		t.Helper()
		if err := kvcluster.Update(ctx, c.KV(0), 10, func(txn kvcluster.Txn) error {
			return txn.Put(ctx, []byte("gc/k"), []byte(v))
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("v0")
	old, err := c.KV(1).Begin(ctx, kvcluster.TxnOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback()
	oldTs := raft.StartTs(old)
	for i := 1; i <= 20; i++ {
		put(fmt.Sprint("v", i))
	}
	discards := func() []uint64 {
		var ds []uint64
		for i := range 3 {
			ds = append(ds, c.Node(i).DiscardTs())
		}
		return ds
	}
	// Rounds go by with the transaction open.
	deadline := time.Now().Add(10 * time.Second)
	for ds := discards(); ds[0] == 0 || ds[1] == 0 || ds[2] == 0; ds = discards() {
		if time.Now().After(deadline) {
			t.Fatalf("no discard timestamp set: %v", ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	for i, d := range discards() {
		if d > oldTs {
			t.Fatalf("node %d discards below %d, past the open snapshot %d", i, d, oldTs)
		}
	}
	if v, _, err := old.Get(ctx, []byte("gc/k")); err != nil || string(v) != "v0" {
		t.Fatalf("the old snapshot reads %q (%v), want v0", v, err)
	}
	old.Rollback()
	for ds := discards(); ds[0] <= oldTs || ds[1] <= oldTs || ds[2] <= oldTs; ds = discards() {
		if time.Now().After(deadline) {
			t.Fatalf("discard timestamps %v stayed at or below the ended snapshot %d", ds, oldTs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	late, err := c.KV(2).Begin(ctx, kvcluster.TxnOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback()
	ownTs := raft.StartTs(late)
	defer raft.SetStartTs(late, ownTs) // before Rollback: it ends that snapshot
	raft.SetStartTs(late, oldTs)
	if _, _, err := late.Get(ctx, []byte("gc/k")); !errors.Is(err, kvcluster.ErrWriteConflict) || !kvcluster.IsRetryable(err) {
		t.Fatalf("a read below the discard timestamp: %v, want a retryable conflict", err)
	}
	if _, err := late.Scan(ctx, []byte("gc/"), []byte("gc0"), kvcluster.ScanOptions{Limit: 10}); !errors.Is(err, kvcluster.ErrWriteConflict) {
		t.Fatalf("a scan below the discard timestamp: %v, want a conflict", err)
	}
}
