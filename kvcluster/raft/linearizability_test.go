package raft_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// kvInput is one operation of the history: a read (from a follower, with
// follower), or a write of value.
type kvInput struct {
	key      string
	write    bool
	value    string
	follower bool
}

// kvOutput is what a read returned ("" for absent).
type kvOutput struct{ value string }

// registerModel is a map of registers, checked per key.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range byKey {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(kvInput)
		if in.write {
			return true, in.value
		}
		return output.(kvOutput).value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.write {
			return fmt.Sprintf("put(%s, %s)", in.key, in.value)
		}
		if in.follower {
			return fmt.Sprintf("follower get(%s) -> %q", in.key, output.(kvOutput).value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, output.(kvOutput).value)
	},
}

// TestLinearizable records a history of single-key reads (a quarter of
// them follower reads) and writes by concurrent clients through every
// node while nodes are stopped and restarted one at a time, and checks it
// with porcupine against a map of registers, while the shard splits
// towards a shard per key. A write whose commit failed ambiguously may
// have happened at any time after it was called; one that failed for
// sure is left out.
// SHALEDB_CHAOS_DURATION (e.g. 60s; make chaos) runs it longer.
func TestLinearizable(t *testing.T) {
	duration := chaosDuration(t)
	// Shards split past 24 bytes, at any key, while the history is
	// recorded: the four keys move to shards of their own (at least one
	// split happens in a 3 s run, despite the restarts).
	splitAtKey := func(start, end, mid []byte) []byte {
		if bytes.Compare(mid, start) > 0 && (end == nil || bytes.Compare(mid, end) < 0) {
			return mid
		}
		return nil
	}
	c := rafttest.Start(t, rafttest.Options{Nodes: 3, ShardMaxBytes: 24, SplitKey: splitAtKey})
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }

	var mu sync.Mutex
	var history []porcupine.Operation
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}
	var stats struct{ ok, failed, ambiguous atomic.Int64 }
	var seq atomic.Int64
	stop := runClients(6, 7, func(client int, rng *rand.Rand) {
		node := c.Node(rng.IntN(3))
		if node == nil {
			return // stopped: pick another
		}
		kv := node.KV()
		in := kvInput{key: fmt.Sprintf("lin/%d", rng.IntN(4))}
		if rng.IntN(2) == 0 {
			in.write, in.value = true, fmt.Sprint(seq.Add(1))
		} else {
			in.follower = rng.IntN(2) == 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		call := now()
		out, err, ambiguous := runOp(ctx, kv, in)
		ret := now()
		cancel()
		switch {
		case err == nil:
			stats.ok.Add(1)
			record(porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
		case ambiguous:
			// It may have taken effect at any time after the call.
			stats.ambiguous.Add(1)
			record(porcupine.Operation{ClientId: client, Input: in, Call: call, Output: kvOutput{}, Return: math.MaxInt64})
		default:
			stats.failed.Add(1)
		}
	})
	restarts := restartNodes(t, c, 3, duration, 1, stop)
	time.Sleep(300 * time.Millisecond)
	stop()
	shards := len(spansCovered(t, c, 3))
	var followerReads int64
	for i := range 3 {
		followerReads += c.Node(i).FollowerReads()
	}
	t.Logf("%d operations acknowledged, %d failed, %d ambiguous, %d node restarts, %d shards; %d reads served by followers since the last restarts",
		stats.ok.Load(), stats.failed.Load(), stats.ambiguous.Load(), restarts, shards, followerReads)
	if shards < 2 {
		t.Errorf("only %d shards: the splits did not happen during the run", shards)
	}
	if stats.ok.Load() < 100 {
		t.Fatalf("only %d operations succeeded", stats.ok.Load())
	}
	checkHistory(t, registerModel, history, "linearizable")
}

// runOp runs one operation in a transaction of its own. ambiguous reports
// a write whose commit failed without saying whether it took effect.
func runOp(ctx context.Context, kv kvcluster.KvCluster, in kvInput) (out kvOutput, err error, ambiguous bool) {
	txn, err := kv.Begin(ctx, kvcluster.TxnOptions{ReadOnly: !in.write, FollowerReads: in.follower})
	if err != nil {
		return out, err, false
	}
	defer txn.Rollback()
	if !in.write {
		v, _, err := txn.Get(ctx, []byte(in.key))
		return kvOutput{value: string(v)}, err, false
	}
	if err := txn.Put(ctx, []byte(in.key), []byte(in.value)); err != nil {
		return out, err, false
	}
	err = txn.Commit(ctx)
	return out, err, err != nil && !kvcluster.IsRetryable(err)
}
