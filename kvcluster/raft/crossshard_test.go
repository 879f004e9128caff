package raft_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// splitAt returns a SplitKey that splits a shard at the first of bounds
// that lies inside it (past its start).
func splitAt(bounds ...string) func(start, end, mid []byte) []byte {
	return func(start, end, _ []byte) []byte {
		for _, b := range bounds {
			k := []byte(b)
			if bytes.Compare(k, start) > 0 && (end == nil || bytes.Compare(k, end) < 0) {
				return k
			}
		}
		return nil
	}
}

// waitSplit writes to each key until the keys lie on distinct shards.
func waitSplit(t *testing.T, c *rafttest.Cluster, keys ...string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		seen := map[uint64]bool{}
		for _, k := range keys {
			seen[c.Node(0).ShardOf([]byte(k))] = true
		}
		if len(seen) == len(keys) {
			return
		}
		for _, k := range keys {
			_ = kvcluster.Update(ctx, c.KV(0), 5, func(txn kvcluster.Txn) error {
				return txn.Put(ctx, []byte(k+"/fill"), bytes.Repeat([]byte("x"), 64))
			})
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the keys %q did not reach shards of their own", keys)
}

// readAll reads keys in one snapshot through kv.
func readAll(ctx context.Context, kv kvcluster.KvCluster, keys ...string) ([]string, error) {
	var out []string
	err := kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		out = out[:0]
		for _, k := range keys {
			v, _, err := txn.Get(ctx, []byte(k))
			if err != nil {
				return err
			}
			out = append(out, string(v))
		}
		return nil
	})
	return out, err
}

// readAt reads keys in one snapshot through kv: at ts, or (0) a fresh
// one, whose timestamp it returns.
func readAt(ctx context.Context, kv kvcluster.KvCluster, ts uint64, keys ...string) ([]string, uint64, error) {
	txn, err := kv.Begin(ctx, kvcluster.TxnOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer txn.Rollback()
	if ts != 0 {
		raft.SetStartTs(txn, ts)
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		v, _, err := txn.Get(ctx, []byte(k))
		if err != nil {
			return nil, 0, err
		}
		out[i] = string(v)
	}
	return out, raft.StartTs(txn), nil
}

// waitNoIntents waits until no node holds an intent.
func waitNoIntents(t *testing.T, c *rafttest.Cluster, nodes int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := int64(0)
		for i := range nodes {
			if n := c.Node(i); n != nil {
				left += n.Intents()
			}
		}
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d intents left unresolved", left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCrossShardRecovery commits across two shards, and leaves commits as
// a coordinator that died would: after prewriting (a reader on another
// node rolls the transaction back from its primary), and after deciding
// (a reader finds it committed and resolves the other shard's intent).
// Every intent is resolved in the end.
func TestCrossShardRecovery(t *testing.T) {
	c := rafttest.Start(t, rafttest.Options{ShardMaxBytes: 1, SplitKey: splitAt("x/b", "y")})
	waitSplit(t, c, "x/a", "x/b")
	ctx := context.Background()
	put := func(kv kvcluster.KvCluster, v string, stopAfter int) error {
		txn, err := kv.Begin(ctx, kvcluster.TxnOptions{})
		if err != nil {
			return err
		}
		defer txn.Rollback()
		raft.StopCommitAfter(txn, stopAfter)
		for _, k := range []string{"x/a", "x/b"} {
			if err := txn.Put(ctx, []byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return txn.Commit(ctx)
	}
	expect := func(node int, want string) {
		t.Helper()
		got, err := readAll(ctx, c.KV(node), "x/a", "x/b")
		if err != nil {
			t.Fatalf("read through node %d: %v", node, err)
		}
		if got[0] != want || got[1] != want {
			t.Fatalf("through node %d: x/a, x/b = %q, want %q", node, got, want)
		}
	}
	if err := put(c.KV(0), "1", 0); err != nil {
		t.Fatalf("cross-shard commit: %v", err)
	}
	for i := range 3 {
		expect(i, "1")
	}

	// A reader that began before a commit does not see it, even with
	// the other shard's intent left in place.
	old, err := c.KV(1).Begin(ctx, kvcluster.TxnOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Rollback()

	// Died after prewriting: not committed, and readers say so.
	if err := put(c.KV(0), "2", 1); err == nil {
		t.Fatal("a commit stopped after prewriting reported success")
	}
	if c.Node(0).Intents() == 0 && c.Node(1).Intents() == 0 {
		t.Fatal("no intents were left to resolve")
	}
	expect(1, "1")
	expect(2, "1")

	// Died after deciding: committed; a reader resolves the intents left.
	if err := put(c.KV(0), "3", 2); err != nil {
		t.Fatalf("commit stopped after deciding: %v", err)
	}
	expect(2, "3")
	expect(1, "3")
	for _, k := range []string{"x/a", "x/b"} {
		v, _, err := old.Get(ctx, []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if string(v) != "1" {
			t.Fatalf("a snapshot older than the commits reads %s = %q", k, v)
		}
	}
	old.Rollback()

	// Left alone, the intents of a decided transaction are swept.
	if err := put(c.KV(2), "4", 2); err != nil {
		t.Fatalf("commit stopped after deciding: %v", err)
	}
	waitNoIntents(t, c, 3)
	expect(0, "4")
}

// TestBank moves money between accounts on several shards, mostly across
// shards, through every node while nodes are stopped and restarted. The
// total never changes, in every snapshot read meanwhile and in the end,
// and every intent is resolved. SHALEDB_CHAOS_DURATION runs it longer.
func TestBank(t *testing.T) {
	duration := chaosDuration(t)
	const accounts, initial = 8, 100
	var bounds, keys []string
	for i := range accounts {
		keys = append(keys, fmt.Sprintf("bank/%d", i))
		if i%2 == 0 && i > 0 {
			bounds = append(bounds, keys[i])
		}
	}
	c := rafttest.Start(t, rafttest.Options{ShardMaxBytes: 1, SplitKey: splitAt(bounds...)})
	waitSplit(t, c, "bank/0", "bank/2", "bank/4", "bank/6")
	ctx := context.Background()
	err := kvcluster.Update(ctx, c.KV(0), 5, func(txn kvcluster.Txn) error {
		for _, k := range keys {
			if err := txn.Put(ctx, []byte(k), []byte(strconv.Itoa(initial))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("open the accounts: %v", err)
	}
	total := func(vals []string) (int, error) {
		sum := 0
		for i, v := range vals {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("%s = %q", keys[i], v)
			}
			sum += n
		}
		return sum, nil
	}

	var stats struct{ transfers, cross, failed, reads atomic.Int64 }
	var bad atomic.Value
	var badTs atomic.Uint64
	stop := runClients(6, 11, func(client int, rng *rand.Rand) {
		node := c.Node(rng.IntN(3))
		if node == nil {
			return
		}
		kv := node.KV()
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if client >= 4 { // readers
			vals, ts, err := readAt(octx, kv, 0, keys...)
			cancel()
			if err != nil {
				return
			}
			if sum, err := total(vals); err != nil || sum != accounts*initial {
				bad.Store(fmt.Sprintf("a snapshot read through node %d at %d: %v: total %d (%v)", node.ID(), ts, vals, sum, err))
				badTs.Store(ts)
			}
			stats.reads.Add(1)
			return
		}
		from, to := rng.IntN(accounts), rng.IntN(accounts-1)
		if to >= from {
			to++
		}
		amount := rng.IntN(20)
		err := kvcluster.Update(octx, kv, 3, func(txn kvcluster.Txn) error {
			vals := make([]int, 2)
			for i, k := range []string{keys[from], keys[to]} {
				v, _, err := txn.Get(octx, []byte(k))
				if err != nil {
					return err
				}
				if vals[i], err = strconv.Atoi(string(v)); err != nil {
					return fmt.Errorf("%s = %q", k, v)
				}
			}
			if err := txn.Put(octx, []byte(keys[from]), []byte(strconv.Itoa(vals[0]-amount))); err != nil {
				return err
			}
			return txn.Put(octx, []byte(keys[to]), []byte(strconv.Itoa(vals[1]+amount)))
		})
		cancel()
		if err != nil {
			stats.failed.Add(1)
			return
		}
		stats.transfers.Add(1)
		if node.ShardOf([]byte(keys[from])) != node.ShardOf([]byte(keys[to])) {
			stats.cross.Add(1)
		}
	})
	restarts := restartNodes(t, c, 3, duration, 3, stop)
	time.Sleep(300 * time.Millisecond)
	stop()
	t.Logf("%d transfers (%d across shards), %d failed, %d snapshot reads, %d node restarts",
		stats.transfers.Load(), stats.cross.Load(), stats.failed.Load(), stats.reads.Load(), restarts)
	if msg := bad.Load(); msg != nil {
		// Read the same snapshot again: a read that was wrong once, or
		// data that is wrong?
		ts := badTs.Load()
		for i := range 3 {
			vals, _, err := readAt(ctx, c.KV(i), ts, keys...)
			sum, _ := total(vals)
			t.Logf("the snapshot at %d read again through node %d: %v, total %d (%v)", ts, c.Node(i).ID(), vals, sum, err)
		}
		t.Fatal(msg)
	}
	if stats.cross.Load() < 20 {
		t.Fatalf("only %d transfers across shards", stats.cross.Load())
	}
	for i := range 3 {
		vals, err := readAll(ctx, c.KV(i), keys...)
		if err != nil {
			t.Fatalf("read through node %d: %v", i, err)
		}
		if sum, err := total(vals); err != nil || sum != accounts*initial {
			t.Fatalf("through node %d: %v: total %d (%v)", i, vals, sum, err)
		}
	}
	waitNoIntents(t, c, 3)
}

// txnInput is a transaction of the cross-shard history: it reads keys
// and, unless read-only, writes value to each.
type txnInput struct {
	keys  []string
	write bool
	value string
}

// txnOutput is what the transaction read, key by key.
type txnOutput struct{ values []string }

// multiRegisterModel is a map of registers over all keys at once:
// transactions are strictly serializable (each writes every key it
// reads, so snapshot isolation's write skew cannot arise).
var multiRegisterModel = porcupine.Model{
	Init: func() any { return map[string]string{} },
	Step: func(state, input, output any) (bool, any) {
		st, in := state.(map[string]string), input.(txnInput)
		out := output.(txnOutput)
		if out.values != nil {
			for i, k := range in.keys {
				if st[k] != out.values[i] {
					return false, st
				}
			}
		}
		if !in.write {
			return true, st
		}
		next := make(map[string]string, len(st)+len(in.keys))
		for k, v := range st {
			next[k] = v
		}
		for _, k := range in.keys {
			next[k] = in.value
		}
		return true, next
	},
	Equal: func(a, b any) bool {
		x, y := a.(map[string]string), b.(map[string]string)
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	},
	DescribeOperation: func(input, output any) string {
		in := input.(txnInput)
		if in.write {
			return fmt.Sprintf("rw%v=%s read %v", in.keys, in.value, output.(txnOutput).values)
		}
		return fmt.Sprintf("r%v -> %v", in.keys, output.(txnOutput).values)
	},
}

// TestCrossShardLinearizable records a history of transactions over keys
// on four shards (each reads two or four keys, and most write what they
// read) through every node while nodes are stopped and restarted, and
// checks with porcupine that it is strictly serializable. A commit that
// failed ambiguously and took effect may have done so at any time after
// its call.
// SHALEDB_CHAOS_DURATION runs it longer.
func TestCrossShardLinearizable(t *testing.T) {
	duration := chaosDuration(t)
	keys := []string{"h/0", "h/1", "h/2", "h/3"}
	c := rafttest.Start(t, rafttest.Options{ShardMaxBytes: 1, SplitKey: splitAt(keys[1:]...)})
	waitSplit(t, c, keys...)
	start := time.Now()
	now := func() int64 { return int64(time.Since(start)) }
	var mu sync.Mutex
	var history []porcupine.Operation
	var stats struct{ ok, failed, ambiguous atomic.Int64 }
	var seq atomic.Int64
	var ambiguous []porcupine.Operation
	var observed []string
	stop := runClients(4, 13, func(client int, rng *rand.Rand) {
		node := c.Node(rng.IntN(3))
		if node == nil {
			return
		}
		in := txnInput{keys: keys}
		if rng.IntN(4) != 0 {
			a, b := rng.IntN(4), rng.IntN(3)
			if b >= a {
				b++
			}
			in = txnInput{keys: []string{keys[a], keys[b]}, write: true, value: fmt.Sprint(seq.Add(1))}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		call := now()
		out, err := runTxn(ctx, node.KV(), in)
		ret := now()
		cancel()
		op := porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
		switch {
		case err == nil:
			stats.ok.Add(1)
		case in.write && out.values != nil && (errors.Is(err, kvcluster.ErrCommitUnknown) || !kvcluster.IsRetryable(err)):
			// Commit failed without saying whether it took effect.
			// Its reads are checked only if it took effect, which
			// the model cannot tell: not at all.
			stats.ambiguous.Add(1)
			op.Return, op.Output = math.MaxInt64, txnOutput{}
			mu.Lock()
			ambiguous = append(ambiguous, op)
			observed = append(observed, out.values...) // what it read was there
			mu.Unlock()
			return
		default:
			stats.failed.Add(1)
			return
		}
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	})
	restartNodes(t, c, 3, duration, 5, stop)
	stop()
	// A final read of every key, and then only the ambiguous commits that
	// took effect: each transaction writes what it read, so a commit that
	// took effect was read by the next writer of its keys, or is still
	// there. (Ambiguous operations that may or may not have happened make
	// porcupine's search explode on long runs.)
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	call := now()
	final, err := runTxn(fctx, c.KV(0), txnInput{keys: keys})
	fcancel()
	if err != nil {
		t.Fatalf("final read: %v", err)
	}
	history = append(history, porcupine.Operation{ClientId: 99, Input: txnInput{keys: keys}, Call: call, Output: final, Return: now()})
	seen := map[string]bool{}
	for _, v := range observed {
		seen[v] = true
	}
	for _, op := range history {
		for _, v := range op.Output.(txnOutput).values {
			seen[v] = true
		}
	}
	tookEffect := 0
	for _, op := range ambiguous {
		if seen[op.Input.(txnInput).value] {
			history = append(history, op)
			tookEffect++
		}
	}
	t.Logf("%d transactions acknowledged, %d failed, %d ambiguous (%d of them took effect)",
		stats.ok.Load(), stats.failed.Load(), stats.ambiguous.Load(), tookEffect)
	if stats.ok.Load() < 50 {
		t.Fatalf("only %d transactions succeeded", stats.ok.Load())
	}
	checkHistory(t, multiRegisterModel, history, "strictly serializable")
}

// runTxn runs one transaction of the history.
func runTxn(ctx context.Context, kv kvcluster.KvCluster, in txnInput) (txnOutput, error) {
	txn, err := kv.Begin(ctx, kvcluster.TxnOptions{ReadOnly: !in.write})
	if err != nil {
		return txnOutput{}, err
	}
	defer txn.Rollback()
	vals := make([]string, len(in.keys))
	for i, k := range in.keys {
		v, _, err := txn.Get(ctx, []byte(k))
		if err != nil {
			return txnOutput{}, err
		}
		vals[i] = string(v)
	}
	if in.write {
		for _, k := range in.keys {
			if err := txn.Put(ctx, []byte(k), []byte(in.value)); err != nil {
				return txnOutput{}, err
			}
		}
	}
	return txnOutput{values: vals}, txn.Commit(ctx)
}
