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

	load := startWriteLoad(ctx, c.KV(gw), "failover", 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	before := load.fault()
	c.StopNode(old)
	load.waitResumed(15*time.Second, 50)
	acked, took := load.finish()
	if took == 0 {
		t.Fatalf("no write succeeded within 15 s of stopping the leader (%d acknowledged before)", before)
	}
	t.Logf("%d writes acknowledged before the leader stopped, %d in all; first write %v after the stop",
		before, len(acked), took.Round(time.Millisecond))

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
	deadline := time.Now().Add(20 * time.Second)
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

// writeLoad is 4 writers of fresh keys through one KvCluster, each write
// a transaction of its own, recording every acknowledged write and, once
// a fault is marked, the first acknowledged write that began after it.
type writeLoad struct {
	mu                  sync.Mutex
	acked               map[string]string
	faultAt, firstAfter time.Time
	stop                chan struct{}
	wg                  sync.WaitGroup
}

// startWriteLoad starts writing prefix/<writer>/<n>; each write may take
// up to opTimeout.
func startWriteLoad(ctx context.Context, kv kvcluster.KvCluster, prefix string, opTimeout time.Duration) *writeLoad {
	l := &writeLoad{acked: map[string]string{}, stop: make(chan struct{})}
	for w := 0; w < 4; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				key, val := fmt.Sprintf("%s/%d/%06d", prefix, w, i), fmt.Sprint(i)
				began := time.Now()
				cctx, cancel := context.WithTimeout(ctx, opTimeout)
				err := kvcluster.Update(cctx, kv, 1, func(txn kvcluster.Txn) error {
					return txn.Put(cctx, []byte(key), []byte(val))
				})
				cancel()
				if err != nil {
					continue // not acknowledged: may or may not be there
				}
				l.mu.Lock()
				l.acked[key] = val
				if !l.faultAt.IsZero() && began.After(l.faultAt) && l.firstAfter.IsZero() {
					l.firstAfter = time.Now()
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// fault marks the moment of a fault; it returns how many writes were
// acknowledged before it.
func (l *writeLoad) fault() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.faultAt = time.Now()
	return len(l.acked)
}

// waitResumed waits, up to within, for a write begun after the fault to be
// acknowledged and more writes in all since the fault.
func (l *writeLoad) waitResumed(within time.Duration, more int) {
	l.mu.Lock()
	target := len(l.acked) + more
	l.mu.Unlock()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		l.mu.Lock()
		done := !l.firstAfter.IsZero() && len(l.acked) >= target
		l.mu.Unlock()
		if done {
			return
		}
	}
}

// finish stops the writers and returns the acknowledged writes and the
// time from the fault to the first write after it (0 if none).
func (l *writeLoad) finish() (map[string]string, time.Duration) {
	close(l.stop)
	l.wg.Wait()
	if l.firstAfter.IsZero() {
		return l.acked, 0
	}
	return l.acked, l.firstAfter.Sub(l.faultAt)
}
