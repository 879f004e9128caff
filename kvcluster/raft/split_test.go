package raft_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// groupKey splits at a "group" boundary: keys are "g<4 digits>/…", and a
// split point is the start of a group, as the server splits at tenants.
func groupKey(start, end, mid []byte) []byte {
	i := bytes.IndexByte(mid, '/')
	if i < 0 || mid[0] != 'g' {
		return nil
	}
	k := bytes.Clone(mid[:i+1])
	if bytes.Compare(k, start) <= 0 {
		// The middle is in the span's first group: split after it.
		k = append(k[:i], '0')
	}
	if bytes.Compare(k, start) <= 0 || end != nil && bytes.Compare(k, end) >= 0 {
		return nil
	}
	return k
}

// spansCovered returns the shards the given nodes (by index; all of the
// first n if none) hold replicas of, by start key.
func spansCovered(t *testing.T, c *rafttest.Cluster, n int, only ...int) []raft.ShardStatus {
	t.Helper()
	if only == nil {
		for i := 0; i < n; i++ {
			only = append(only, i)
		}
	}
	byID := map[uint64]raft.ShardStatus{}
	for _, i := range only {
		for _, s := range c.Node(i).Shards() {
			byID[s.ID] = s
		}
	}
	var all []raft.ShardStatus
	for _, s := range byID {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b raft.ShardStatus) int { return bytes.Compare(a.Start, b.Start) })
	return all
}

// TestSplitUnderLoad writes to 40 key groups from 4 writers in a 3-node
// cluster whose shards split past 24 KiB, with logs compacted every 100
// entries. The shard splits at group boundaries while the writes go on;
// every acknowledged write is then read back through every node in one
// snapshot scan across the shards, the shards tile the key space, and
// every node holds a replica of every shard.
func TestSplitUnderLoad(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{ShardMaxBytes: 24 << 10, SplitKey: groupKey, LogKeep: 100})
	ctx := context.Background()
	var mu sync.Mutex
	acked := map[string]string{}
	deadline := time.Now().Add(90 * time.Second)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				g := (i*7 + w*13) % 40
				k := fmt.Sprintf("g%04d/w%d/%06d", g, w, i)
				v := fmt.Sprintf("%0200d", i)
				// Two keys of one group: a multi-key commit to one shard.
				err := kvcluster.Update(ctx, c.KV(w%3), 20, func(txn kvcluster.Txn) error {
					if err := txn.Put(ctx, []byte(k), []byte(v)); err != nil {
						return err
					}
					return txn.Put(ctx, []byte(k+"/b"), []byte(v))
				})
				if err != nil {
					t.Errorf("write %s: %v", k, err)
					return
				}
				mu.Lock()
				acked[k], acked[k+"/b"] = v, v
				mu.Unlock()
			}
		}()
	}
	for {
		shards := spansCovered(t, c, 3)
		if len(shards) >= 5 {
			break
		}
		if time.Now().After(deadline) || t.Failed() {
			close(stop)
			wg.Wait()
			t.Fatalf("only %d shards after the deadline", len(shards))
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Wait for every node to hold every shard, then check the tiling.
	var shards []raft.ShardStatus
	for wait := time.Now().Add(30 * time.Second); ; {
		shards = spansCovered(t, c, 3)
		ok := true
		for i := 0; i < 3; i++ {
			ok = ok && len(c.Node(i).Shards()) == len(shards)
		}
		if ok {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("nodes do not hold every shard: %d shards", len(shards))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(shards[0].Start) != 0 || shards[len(shards)-1].End != nil {
		t.Fatalf("the shards do not cover the key space: first starts at %q, last ends at %q", shards[0].Start, shards[len(shards)-1].End)
	}
	for i, s := range shards {
		if i > 0 {
			if !bytes.Equal(shards[i-1].End, s.Start) {
				t.Fatalf("shard %d ends at %q, the next starts at %q", shards[i-1].ID, shards[i-1].End, s.Start)
			}
			if !bytes.HasSuffix(s.Start, []byte("/")) && !bytes.HasSuffix(s.Start, []byte("0")) {
				t.Errorf("shard %d starts at %q, not at a group boundary", s.ID, s.Start)
			}
		}
	}
	t.Logf("%d shards, %d keys acknowledged", len(shards), len(acked))

	for i := 0; i < 3; i++ {
		got := map[string]string{}
		err := kvcluster.View(ctx, c.KV(i), func(txn kvcluster.Txn) error {
			return kvcluster.ScanAll(ctx, txn, []byte("g"), []byte("h"), 500, func(e kvcluster.KeyValue) error {
				got[string(e.Key)] = string(e.Value)
				return nil
			})
		})
		if err != nil {
			t.Fatalf("scan through node %d: %v", i, err)
		}
		for k, v := range acked {
			if got[k] != v {
				t.Fatalf("through node %d: acknowledged %q is %q", i, k, got[k])
			}
		}
		if len(got) != len(acked) {
			t.Fatalf("through node %d: %d keys, %d acknowledged", i, len(got), len(acked))
		}
	}

	// A transaction across two shards commits whole, and every node
	// reads both of its writes.
	err := kvcluster.Update(ctx, c.KV(0), 1, func(txn kvcluster.Txn) error {
		if err := txn.Put(ctx, []byte("g0000/x"), []byte("both")); err != nil {
			return err
		}
		return txn.Put(ctx, []byte("g0039/x"), []byte("both"))
	})
	if err != nil {
		t.Fatalf("a commit across shards: %v", err)
	}
	for i := range 3 {
		err := kvcluster.View(ctx, c.KV(i), func(txn kvcluster.Txn) error {
			for _, k := range []string{"g0000/x", "g0039/x"} {
				v, ok, err := txn.Get(ctx, []byte(k))
				if err != nil {
					return err
				}
				if !ok || string(v) != "both" {
					return fmt.Errorf("%s is %q (found %v)", k, v, ok)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("through node %d: %v", i, err)
		}
	}
}

// TestSnapshotCatchUp stops a node, writes far past the log's compaction
// point, and restarts it: it can only catch up through a snapshot. With
// another node stopped it is made the leader, and its reads see every
// write.
func TestSnapshotCatchUp(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{LogKeep: 50})
	ctx := context.Background()
	write := func(from, n int) {
		t.Helper()
		for k := from; k < from+n; k++ {
			err := kvcluster.Update(ctx, c.KV(0), 5, func(txn kvcluster.Txn) error {
				return txn.Put(ctx, fmt.Appendf(nil, "snap/%04d", k), fmt.Appendf(nil, "v%d", k))
			})
			if err != nil {
				t.Fatalf("write %d: %v", k, err)
			}
		}
	}
	write(0, 50)
	c.StopNode(2)
	write(50, 400)
	if err := c.StartNode(2); err != nil {
		t.Fatal(err)
	}
	var st raft.ShardStatus
	for wait := time.Now().Add(30 * time.Second); ; {
		for _, s := range c.Node(2).Shards() {
			if s.ID == 1 {
				st = s
			}
		}
		if st.Snapshots > 0 {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("the restarted node installed no snapshot (applied %d)", st.Applied)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Make the restarted node lead, so that it serves the reads below.
	c.StopNode(0)
	two := c.Node(2).ID()
	for wait := time.Now().Add(30 * time.Second); ; {
		lead := uint64(0)
		for _, s := range c.Node(2).Shards() {
			if s.ID == 1 {
				lead = s.Leader
			}
		}
		if lead == two {
			break
		}
		if lead == c.Node(1).ID() {
			_ = c.Node(1).TransferLeadership(1, two)
		}
		if time.Now().After(wait) {
			t.Fatalf("the restarted node did not take the lead (leader %d)", lead)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := 0
	err := kvcluster.View(ctx, c.KV(1), func(txn kvcluster.Txn) error {
		return kvcluster.ScanAll(ctx, txn, []byte("snap/"), []byte("snap0"), 100, func(e kvcluster.KeyValue) error {
			if want := fmt.Sprintf("snap/%04d", got); string(e.Key) != want {
				return fmt.Errorf("key %q, want %q", e.Key, want)
			}
			got++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != 450 {
		t.Fatalf("%d keys through the restarted node, want 450", got)
	}
}

// TestRepairAfterSplit splits a 4-node cluster's data into several shards,
// stops a node holding replicas of them all, and waits until every shard
// has re-created its replica on the spare node: the new replicas of the
// split-off shards start from a snapshot, copying the data the split left
// in place. With a second original node stopped, every shard then needs
// the spare's replica, and every write is read back through it.
func TestRepairAfterSplit(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{Nodes: 4, ReplicationFactor: 3, ShardMaxBytes: 16 << 10, SplitKey: groupKey})
	ctx := context.Background()
	spare := -1
	for i := 0; i < 4; i++ {
		if len(c.Node(i).Shards()) == 0 {
			spare = i
		}
	}
	if spare < 0 {
		t.Fatal("no node without a replica")
	}
	via := (spare + 1) % 4
	keys := 0
	write := func(n int) {
		t.Helper()
		for ; n > 0; n-- {
			k := keys
			err := kvcluster.Update(ctx, c.KV(via), 20, func(txn kvcluster.Txn) error {
				return txn.Put(ctx, fmt.Appendf(nil, "g%04d/%05d", k%10, k), fmt.Appendf(nil, "%0300d", k))
			})
			if err != nil {
				t.Fatalf("write %d: %v", k, err)
			}
			keys++
		}
	}
	for wait := time.Now().Add(60 * time.Second); len(spansCovered(t, c, 4)) < 3; {
		write(20)
		if time.Now().After(wait) {
			t.Fatalf("%d shards after a minute", len(spansCovered(t, c, 4)))
		}
	}
	first := (spare + 2) % 4
	firstID, spareID := c.Node(first).ID(), c.Node(spare).ID()
	c.StopNode(first)
	via = (spare + 3) % 4
	write(20)
	// Every shard, those split off meanwhile included, moves its replica
	// off the stopped node onto the spare.
	for wait := time.Now().Add(60 * time.Second); ; {
		all := spansCovered(t, c, 4, spare, (spare+1)%4, via)
		done := len(c.Node(spare).Shards()) == len(all)
		for _, s := range all {
			done = done && len(s.Replicas) == 3 && !slices.Contains(s.Replicas, firstID) && slices.Contains(s.Replicas, spareID)
		}
		if done {
			break
		}
		if time.Now().After(wait) {
			t.Fatalf("the shards are %+v", all)
		}
		time.Sleep(100 * time.Millisecond)
	}
	snaps := 0
	for _, s := range c.Node(spare).Shards() {
		snaps += s.Snapshots
	}
	if snaps == 0 {
		t.Fatal("the spare's replicas installed no snapshot")
	}
	// Stop a second original node: every shard needs the spare now.
	second := (spare + 1) % 4
	c.StopNode(second)
	write(10)
	got := 0
	err := kvcluster.View(ctx, c.KV(spare), func(txn kvcluster.Txn) error {
		return kvcluster.ScanAll(ctx, txn, []byte("g"), []byte("h"), 500, func(e kvcluster.KeyValue) error {
			got++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != keys {
		t.Fatalf("%d keys through the spare, %d written", got, keys)
	}
}
