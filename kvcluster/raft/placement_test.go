package raft_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// replicaCounts counts the replicas each node holds in the shard map
// node 0 sees, and the shards.
func replicaCounts(t *testing.T, c *rafttest.Cluster) (map[uint64]int, []raft.ShardInfo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	infos, err := c.KV(0).Shards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	load := map[uint64]int{}
	for _, s := range infos {
		for _, id := range s.Replicas {
			load[id]++
		}
	}
	return load, infos
}

// TestRebalanceOnJoin splits a 3-node cluster into six shards and adds a
// fourth node: replicas move onto it until no node holds two more than
// another, and its data reads back through the new node.
func TestRebalanceOnJoin(t *testing.T) {
	bounds := []string{"s/1", "s/2", "s/3", "s/4", "s/5"}
	c := rafttest.Start(t, rafttest.Options{ShardMaxBytes: 1, SplitKey: splitAt(bounds...)})
	waitSplit(t, c, append([]string{"s/0"}, bounds...)...)
	ctx := context.Background()
	for i := range 6 {
		if err := kvcluster.Update(ctx, c.KV(0), 5, func(txn kvcluster.Txn) error {
			return txn.Put(ctx, fmt.Appendf(nil, "s/%d", i), fmt.Appendf(nil, "v%d", i))
		}); err != nil {
			t.Fatal(err)
		}
	}
	i, err := c.AddNode("r1")
	if err != nil {
		t.Fatal(err)
	}
	newID := c.Node(i).ID()
	deadline := time.Now().Add(90 * time.Second)
	for {
		load, infos := replicaCounts(t, c)
		lo, hi := 1<<30, 0
		for _, id := range []uint64{c.Node(0).ID(), c.Node(1).ID(), c.Node(2).ID(), newID} {
			lo, hi = min(lo, load[id]), max(hi, load[id])
		}
		settled := hi-lo <= 1
		for _, s := range infos {
			settled = settled && len(s.Replicas) == 3
		}
		if settled && load[newID] > 0 {
			t.Logf("replicas per node: %v (%d shards)", load, len(infos))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas per node after 90 s: %v", load)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for k := range 6 {
		var v []byte
		err := kvcluster.View(ctx, c.KV(i), func(txn kvcluster.Txn) error {
			var err error
			v, _, err = txn.Get(ctx, fmt.Appendf(nil, "s/%d", k))
			return err
		})
		if err != nil || string(v) != fmt.Sprintf("v%d", k) {
			t.Fatalf("s/%d through the new node: %q, %v", k, v, err)
		}
	}
}

// TestBankMoves runs the bank (TestBank) on six nodes in two regions
// while the accounts' span is moved to the other region and back, and a
// shard's leader is killed and restarted between moves: the total never
// changes, and after each move every shard of the span has its replicas
// and leader in the region.
func TestBankMoves(t *testing.T) {
	const accounts, initial = 8, 100
	var keys []string
	for i := range accounts {
		keys = append(keys, fmt.Sprintf("acct/%d", i))
	}
	c := rafttest.Start(t, rafttest.Options{Nodes: 6, ShardMaxBytes: 1,
		SplitKey: splitAt("acct/2", "acct/4", "acct/6"),
		Regions:  []string{"r1", "r1", "r1", "r2", "r2", "r2"}})
	waitSplit(t, c, "acct/0", "acct/2", "acct/4", "acct/6")
	ctx := context.Background()
	if err := kvcluster.Update(ctx, c.KV(0), 5, func(txn kvcluster.Txn) error {
		for _, k := range keys {
			if err := txn.Put(ctx, []byte(k), []byte(strconv.Itoa(initial))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var transfers, failed, reads atomic.Int64
	var worst atomic.Int64 // the slowest transfer, ns
	var bad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for client := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(client), 21))
			for {
				select {
				case <-stop:
					return
				default:
				}
				node := c.Node(rng.IntN(6))
				if node == nil {
					continue
				}
				octx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if client == 4 {
					vals, err := readAll(octx, node.KV(), keys...)
					cancel()
					if err != nil {
						continue
					}
					sum := 0
					for _, v := range vals {
						n, _ := strconv.Atoi(v)
						sum += n
					}
					if sum != accounts*initial {
						bad.Store(fmt.Sprintf("a snapshot read %v: total %d", vals, sum))
					}
					reads.Add(1)
					continue
				}
				from, to := rng.IntN(accounts), rng.IntN(accounts)
				if from == to {
					cancel()
					continue
				}
				t0 := time.Now()
				err := kvcluster.Update(octx, node.KV(), 5, func(txn kvcluster.Txn) error {
					var vals [2]int
					for i, k := range []string{keys[from], keys[to]} {
						v, _, err := txn.Get(octx, []byte(k))
						if err != nil {
							return err
						}
						vals[i], _ = strconv.Atoi(string(v))
					}
					if err := txn.Put(octx, []byte(keys[from]), []byte(strconv.Itoa(vals[0]-1))); err != nil {
						return err
					}
					return txn.Put(octx, []byte(keys[to]), []byte(strconv.Itoa(vals[1]+1)))
				})
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				transfers.Add(1)
				if d := int64(time.Since(t0)); d > worst.Load() {
					worst.Store(d)
				}
			}
		}()
	}
	regionOf := func(id uint64) string {
		for i := range c.Nodes() {
			if n := c.Node(i); n != nil && n.ID() == id {
				if i < 3 {
					return "r1"
				}
				return "r2"
			}
		}
		return "?"
	}
	move := func(region string) {
		t.Helper()
		mctx, cancel := context.WithTimeout(ctx, 90*time.Second)
		defer cancel()
		before := transfers.Load()
		start := time.Now()
		if err := c.KV(0).PlaceSpan(mctx, []byte("acct/"), []byte("acct0"), region); err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("move to %s: %v", region, err)
		}
		_, infos := replicaCounts(t, c)
		for _, s := range infos {
			if bytes.Compare(s.Start, []byte("acct/")) < 0 || bytes.Compare(s.Start, []byte("acct0")) >= 0 {
				continue
			}
			if regionOf(s.Leader) != region || slices.ContainsFunc(s.Replicas, func(id uint64) bool { return regionOf(id) != region }) {
				t.Errorf("after the move to %s, shard %d: leader %d, replicas %v", region, s.ID, s.Leader, s.Replicas)
			}
		}
		t.Logf("moved to %s in %v; %d transfers meanwhile", region, time.Since(start).Round(time.Millisecond), transfers.Load()-before)
	}
	// Kills the leader of the first account's shard, and restarts it.
	killLeader := func() {
		t.Helper()
		_, infos := replicaCounts(t, c)
		for _, s := range infos {
			if bytes.Compare(s.Start, []byte("acct/0")) > 0 || s.End != nil && bytes.Compare(s.End, []byte("acct/0")) <= 0 {
				continue
			}
			for i := range c.Nodes() {
				if n := c.Node(i); n != nil && n.ID() == s.Leader {
					c.StopNode(i)
					time.Sleep(500 * time.Millisecond)
					if err := c.StartNode(i); err != nil {
						t.Fatal(err)
					}
					t.Logf("killed and restarted shard %d's leader, node %d", s.ID, s.Leader)
					return
				}
			}
		}
		t.Fatal("no leader of acct/0's shard to kill")
	}
	move("r2")
	killLeader()
	move("r1")
	killLeader()
	move("r2")
	close(stop)
	wg.Wait()
	t.Logf("%d transfers, %d failed, %d snapshot reads; slowest transfer %v",
		transfers.Load(), failed.Load(), reads.Load(), time.Duration(worst.Load()).Round(time.Millisecond))
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	for i := range 6 {
		vals, err := readAll(ctx, c.KV(i), keys...)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for _, v := range vals {
			n, _ := strconv.Atoi(v)
			sum += n
		}
		if sum != accounts*initial {
			t.Fatalf("through node %d: %v: total %d", i, vals, sum)
		}
	}
	// A region without enough nodes is refused.
	if err := c.KV(0).PlaceSpan(ctx, []byte("acct/"), []byte("acct0"), "r9"); err == nil {
		t.Fatal("a move to a region without nodes succeeded")
	}
}
