package raft_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// TestReplicaRepair stops a replica's node in a 4-node cluster: the
// shard's leader re-creates the replica on the fourth node (as a learner
// that catches up from the log, then a voter) and takes the dead member
// out. With another original replica stopped too, the shard still serves
// every write, so the new replica holds them all.
func TestReplicaRepair(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{Nodes: 4, ReplicationFactor: 3})
	ctx := context.Background()
	members := func(i int) []uint64 {
		for _, s := range c.Node(i).Shards() {
			if s.ID == 1 {
				return s.Replicas
			}
		}
		return nil
	}
	index := map[uint64]int{}
	for i := 0; i < 4; i++ {
		index[c.Node(i).ID()] = i
	}
	var spare int = -1
	for i := 0; i < 4; i++ {
		if !slices.Contains(members(i%4), c.Node(i).ID()) && len(c.Node(i).Shards()) == 0 {
			spare = i
		}
	}
	if spare < 0 {
		t.Fatal("no node without a replica")
	}
	write := func(from, n int, via int) {
		t.Helper()
		for k := from; k < from+n; k++ {
			err := kvcluster.Update(ctx, c.KV(via), 5, func(txn kvcluster.Txn) error {
				return txn.Put(ctx, fmt.Appendf(nil, "repair/%04d", k), fmt.Appendf(nil, "v%d", k))
			})
			if err != nil {
				t.Fatalf("write %d: %v", k, err)
			}
		}
	}
	write(0, 200, spare)

	// Stop an original replica that is not the spare.
	first := (spare + 1) % 4
	firstID := c.Node(first).ID()
	c.StopNode(first)
	write(200, 100, spare)
	spareID := c.Node(spare).ID()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := members(spare)
		if slices.Contains(got, spareID) && !slices.Contains(got, firstID) && len(got) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shard's members are still %v (dead %d, spare %d)", got, firstID, spareID)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Stop a second original replica: the new one must carry the data.
	second := -1
	for i := 0; i < 4; i++ {
		if i != first && i != spare {
			second = i
			break
		}
	}
	c.StopNode(second)
	write(300, 50, spare)
	err := kvcluster.View(ctx, c.KV(spare), func(txn kvcluster.Txn) error {
		got, err := txn.Scan(ctx, []byte("repair/"), []byte("repair0"), kvcluster.ScanOptions{Limit: 1000})
		if err != nil {
			return err
		}
		if len(got) != 350 {
			return fmt.Errorf("%d keys, want 350", len(got))
		}
		for k, kv := range got {
			if string(kv.Key) != fmt.Sprintf("repair/%04d", k) || string(kv.Value) != fmt.Sprintf("v%d", k) {
				return fmt.Errorf("key %d: %s=%s", k, kv.Key, kv.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
