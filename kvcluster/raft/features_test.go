package raft_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// TestDropPrefixAndWait checks the optional KvCluster interfaces across
// nodes: DropPrefix through one node removes the prefix's keys and
// nothing else for every node, and WaitForOlderSnapshots on one node
// waits for an older transaction open on another.
func TestDropPrefixAndWait(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{Nodes: 3})
	ctx := context.Background()
	for _, p := range []string{"a", "ab", "b"} {
		err := kvcluster.Update(ctx, c.KV(0), 1, func(txn kvcluster.Txn) error {
			for i := 0; i < 300; i++ {
				if err := txn.Put(ctx, fmt.Appendf(nil, "%s/%04d", p, i), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := c.KV(1).DropPrefix(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := c.KV(1).DropPrefix(ctx, nil); !errors.Is(err, kvcluster.ErrInvalidArgument) {
		t.Fatalf("empty prefix: %v", err)
	}
	for i := 0; i < 3; i++ {
		var got []kvcluster.KeyValue
		err := kvcluster.View(ctx, c.KV(i), func(txn kvcluster.Txn) error {
			var err error
			got, err = txn.Scan(ctx, []byte("a"), []byte("c"), kvcluster.ScanOptions{Limit: 1000})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 300 || string(got[0].Key) != "b/0000" {
			t.Fatalf("through node %d after the drop: %d keys", i, len(got))
		}
	}

	old, err := c.KV(2).Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kvcluster.Update(ctx, c.KV(0), 1, func(txn kvcluster.Txn) error { return txn.Put(ctx, []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.KV(0).WaitForOlderSnapshots(ctx) }()
	time.Sleep(50 * time.Millisecond)
	later, err := c.KV(1).Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer later.Rollback()
	select {
	case err := <-done:
		t.Fatalf("returned while an older snapshot was open on another node: %v", err)
	case <-time.After(100 * time.Millisecond):
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
}

// TestDeadNodesLocksAreReleased: a transaction holding a row lock through
// a node that then dies cannot end; the shard's leader releases its locks
// once the registry reports the node dead, and others take them.
func TestDeadNodesLocksAreReleased(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{Nodes: 3})
	ctx := context.Background()
	leader := leaderIndex(t, c, 3)
	gw, other := (leader+1)%3, (leader+2)%3
	if err := kvcluster.Update(ctx, c.KV(gw), 5, func(txn kvcluster.Txn) error {
		return txn.Put(ctx, []byte("locked"), []byte("0"))
	}); err != nil {
		t.Fatal(err)
	}
	txn, err := c.KV(gw).Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := txn.(kvcluster.LockingTxn).LockForUpdate(ctx, []byte("locked")); err != nil {
		t.Fatal(err)
	}
	// While its node lives, the lock holds.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	t2, err := c.KV(other).Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := t2.(kvcluster.LockingTxn).LockForUpdate(wctx, []byte("locked")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("took a lock held by a live node's transaction: %v", err)
	}
	cancel()
	t2.Rollback()
	c.StopNode(gw) // the holder's node dies; its transaction never ends
	wctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	t3, err := c.KV(other).Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer t3.Rollback()
	if _, _, err := t3.(kvcluster.LockingTxn).LockForUpdate(wctx, []byte("locked")); err != nil {
		t.Fatalf("the dead node's lock was not released: %v", err)
	}
}

// TestFollowerReads reads through every node with follower reads: a
// write acknowledged through one node is read at once through the others,
// the nodes that do not lead serve the reads from their own replicas, and
// a read that meets a cross-shard transaction's intent is left to the
// leader.
func TestFollowerReads(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{})
	ctx := context.Background()
	for round := range 20 {
		v := fmt.Appendf(nil, "v%d", round)
		if err := kvcluster.Update(ctx, c.KV(round%3), 5, func(txn kvcluster.Txn) error {
			return txn.Put(ctx, []byte("fr/k"), v)
		}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			txn, err := c.KV(i).Begin(ctx, kvcluster.TxnOptions{ReadOnly: true, FollowerReads: true})
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := txn.Get(ctx, []byte("fr/k"))
			if err != nil {
				t.Fatal(err)
			}
			kvs, err := txn.Scan(ctx, []byte("fr/"), []byte("fr0"), kvcluster.ScanOptions{Limit: 10})
			txn.Rollback()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, v) || len(kvs) != 1 || !bytes.Equal(kvs[0].Value, v) {
				t.Fatalf("round %d, through node %d: %q, %v", round, i, got, kvs)
			}
		}
	}
	served := 0
	for i := range 3 {
		for _, s := range c.Node(i).Shards() {
			if s.Leader != c.Node(i).ID() && c.Node(i).FollowerReads() > 0 {
				served++
				break
			}
		}
	}
	if served != 2 {
		t.Fatalf("%d of the two nodes that do not lead served follower reads", served)
	}
}
