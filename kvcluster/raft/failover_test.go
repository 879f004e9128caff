package raft_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// leaderIndex returns the index of the node leading shard 1, waiting for
// the live nodes to agree on one.
func leaderIndex(t *testing.T, c *rafttest.Cluster, nodes int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i := 0; i < nodes; i++ {
			n := c.Node(i)
			if n == nil {
				continue
			}
			for _, s := range n.Shards() {
				if s.ID == 1 && s.Leader == n.ID() {
					return i
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader of shard 1")
	return -1
}

// TestFailover stops the leader of the cluster's shard under a steady
// write load, then restarts it: writes resume under a new leader, no
// acknowledged write is lost, and the restarted node catches up and can
// lead again with every write in its state.
func TestFailover(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{Nodes: 3})
	ctx := context.Background()
	old := leaderIndex(t, c, 3)
	gw := (old + 1) % 3 // the writers' gateway stays up

	var mu sync.Mutex
	acked := map[string]string{}
	var firstAfterStop time.Time
	var stoppedAt time.Time
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kv := c.KV(gw)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, val := fmt.Sprintf("failover/%d/%06d", w, i), fmt.Sprint(i)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := kvcluster.Update(cctx, kv, 1, func(txn kvcluster.Txn) error {
					return txn.Put(cctx, []byte(key), []byte(val))
				})
				cancel()
				if err != nil {
					continue // not acknowledged: may or may not be there
				}
				mu.Lock()
				acked[key] = val
				if !stoppedAt.IsZero() && firstAfterStop.IsZero() {
					firstAfterStop = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	before := len(acked)
	stoppedAt = time.Now()
	mu.Unlock()
	c.StopNode(old)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		done := !firstAfterStop.IsZero() && len(acked) > before+50
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if firstAfterStop.IsZero() {
		t.Fatalf("no write succeeded within 15 s of stopping the leader (%d acknowledged before)", before)
	}
	t.Logf("%d writes acknowledged before the leader stopped, %d in all; first write %v after the stop",
		before, len(acked), firstAfterStop.Sub(stoppedAt).Round(time.Millisecond))

	check := func(when string) {
		t.Helper()
		if err := checkAcked(ctx, c.KV(gw), acked); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	check("after failover")

	// The old leader restarts on its data, catches up, and takes the lead.
	if err := c.StartNode(old); err != nil {
		t.Fatal(err)
	}
	if err := kvcluster.Update(ctx, c.KV(gw), 10, func(txn kvcluster.Txn) error {
		return txn.Put(ctx, []byte("failover/after-restart"), []byte("x"))
	}); err != nil {
		t.Fatal(err)
	}
	acked["failover/after-restart"] = "x"
	oldID := c.Node(old).ID()
	deadline = time.Now().Add(20 * time.Second)
	for leaderIndex(t, c, 3) != old {
		if time.Now().After(deadline) {
			t.Fatal("the restarted node did not take over the lead")
		}
		_ = c.Node(leaderIndex(t, c, 3)).TransferLeadership(1, oldID)
		time.Sleep(100 * time.Millisecond)
	}
	check("with the restarted node leading")
}

// checkAcked reads every acknowledged write back through kv.
func checkAcked(ctx context.Context, kv kvcluster.KvCluster, acked map[string]string) error {
	return kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		for k, v := range acked {
			got, ok, err := txn.Get(ctx, []byte(k))
			if err != nil {
				return err
			}
			if !ok || string(got) != v {
				return fmt.Errorf("acknowledged write %s=%s lost: got %q, %v", k, v, got, ok)
			}
		}
		return nil
	})
}
