package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
)

// The coordinator's side of a cross-shard commit (intents.go, RFC 0014):
// prewrite every shard in parallel, decide on the primary's shard, and
// resolve the other shards' intents after returning.

// errStoppedAfterPhase: a test stopped a commit after its first phase.
var errStoppedAfterPhase = errors.New("raft: commit stopped after prewriting (test)")

// shardGroup is items (keys, or writes) of one shard.
type shardGroup[T any] struct {
	d     shardDesc
	items []T
}

// groupByShard groups items by the shard the map holds their keys in,
// shards in the order they are first met.
func groupByShard[T any](ctx context.Context, n *Node, items []T, key func(T) []byte) ([]shardGroup[T], error) {
	var out []shardGroup[T]
	index := map[uint64]int{}
	for _, it := range items {
		k := key(it)
		if len(out) > 0 && out[len(out)-1].d.contains(k) {
			out[len(out)-1].items = append(out[len(out)-1].items, it)
			continue
		}
		d, err := n.shards.lookup(ctx, k)
		if err != nil {
			return nil, err
		}
		if i, ok := index[d.ID]; ok {
			out[i].items = append(out[i].items, it)
			continue
		}
		index[d.ID] = len(out)
		out = append(out, shardGroup[T]{d: d, items: []T{it}})
	}
	return out, nil
}

func mutationKey(m mutation) []byte { return m.Key }

func sameKey(k []byte) []byte { return k }

// commitCrossShard commits writes that span shards in two phases. The
// primary key is the first written.
func (t *txn) commitCrossShard(ctx context.Context, writes []mutation) error {
	n := t.kv.n
	primary := writes[0].Key
	groups, err := groupByShard(ctx, n, writes, mutationKey)
	if err != nil {
		return err
	}
	var secondaries [][]byte
	for _, g := range groups {
		if g.d.ID == groups[0].d.ID {
			continue
		}
		for _, w := range g.items {
			secondaries = append(secondaries, w.Key)
		}
	}
	allKeys := make([][]byte, len(writes))
	for i, w := range writes {
		allKeys[i] = w.Key
	}
	// Once prewrites are sent, the outcome is waited for whatever ctx does.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitOutcomeWait)
	defer cancel()

	// Phase 1: prewrite every shard.
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.prewriteWrites(octx, t.startTs, primary, secondaries, g.items)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.abandon(primary, allKeys)
		if errors.Is(err, kvcluster.ErrWriteConflict) {
			return fmt.Errorf("raft: cross-shard prewrite: %w", kvcluster.ErrWriteConflict)
		}
		return fmt.Errorf("raft: cross-shard prewrite (nothing committed): %w", err)
	}

	if t.stopAfter == 1 {
		return errStoppedAfterPhase
	}
	// Phase 2: decide on the primary's shard.
	var primaryKeys [][]byte
	for _, w := range groups[0].items {
		primaryKeys = append(primaryKeys, w.Key)
	}
	commitTs, err := t.decide(octx, primary, primaryKeys)
	if err != nil {
		if errors.Is(err, kvcluster.ErrWriteConflict) {
			t.abandon(primary, allKeys)
		}
		return err
	}
	// Committed. The intents' resolution releases the row locks there.
	for _, g := range groups {
		delete(t.lockShards, g.d.ID)
	}
	if t.stopAfter == 2 {
		return nil
	}
	// Phase 3: the other shards' intents, in the background (readers
	// resolve any they meet first; the primary's leader sweeps).
	var rest [][]byte
	for _, k := range allKeys {
		if !containsKey(primaryKeys, k) {
			rest = append(rest, k)
		}
	}
	if len(rest) > 0 {
		go func() {
			rctx, rcancel := context.WithTimeout(n.stopCtx, commitOutcomeWait)
			defer rcancel()
			if err := n.resolveKeys(rctx, t.startTs, commitTs, primary, rest); err != nil && n.stopCtx.Err() == nil {
				n.log.Debug("cross-shard commit: secondaries left to the sweep", "start", t.startTs, "err", err)
			}
		}()
	}
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// prewriteWrites prewrites writes (of one shard, as the map said) on
// their shards' leaders, regrouping them if the map was stale.
func (n *Node) prewriteWrites(ctx context.Context, startTs uint64, primary []byte, secondaries [][]byte, writes []mutation) error {
	groups, err := groupByShard(ctx, n, writes, mutationKey)
	if err != nil {
		return err
	}
	for _, g := range groups {
		a := &PrewriteArgs{Shard: g.d.ID, StartTs: startTs, Primary: primary, Node: n.id, Writes: g.items}
		for _, w := range g.items {
			if bytes.Equal(w.Key, primary) {
				a.Secondaries = secondaries
			}
		}
		var reply PrewriteReply
		if err := n.onLeader(ctx, g.d, "Prewrite", a, &reply, func() { reply = n.servePrewrite(ctx, a) }); err != nil {
			return err
		}
		switch reply.Status {
		case StatusOK:
		case StatusWrongShard:
			if err := n.shards.stale(ctx); err != nil {
				return err
			}
			if err := n.prewriteWrites(ctx, startTs, primary, secondaries, g.items); err != nil {
				return err
			}
		default:
			return fmt.Errorf("raft: prewrite on shard %d: %w", g.d.ID, statusError(ctx, reply.Status, reply.Err))
		}
	}
	return nil
}

// decide commits the transaction on its primary's shard at a fresh commit
// timestamp, and returns it. A decision whose answer is lost is asked
// again (it is idempotent: the record's decision stands). octx bounds it.
func (t *txn) decide(octx context.Context, primary []byte, keys [][]byte) (uint64, error) {
	n := t.kv.n
	var commitTs uint64
	backoff := time.Millisecond
	for {
		if commitTs == 0 {
			ts, _, err := n.timestampEpoch(octx, t.schema)
			if err != nil {
				return t.outcome(octx, primary, err)
			}
			commitTs = ts
		}
		d, err := n.shards.lookup(octx, primary)
		if err != nil {
			return t.outcome(octx, primary, err)
		}
		// Keys of the primary's group that a split moved elsewhere are
		// resolved with the secondaries.
		var here [][]byte
		for _, k := range keys {
			if d.contains(k) {
				here = append(here, k)
			}
		}
		a := &ResolveArgs{Shard: d.ID, StartTs: t.startTs, CommitTs: commitTs, Primary: primary, Decide: true, Keys: here}
		var reply ResolveReply
		err = n.onLeader(octx, d, "Resolve", a, &reply, func() { reply = n.serveResolve(octx, a) })
		if err != nil {
			return t.outcome(octx, primary, err)
		}
		switch reply.Status {
		case StatusOK:
			if reply.CommitTs == 0 {
				return 0, fmt.Errorf("raft: cross-shard commit: rolled back by a reader: %w", kvcluster.ErrWriteConflict)
			}
			return reply.CommitTs, nil
		case StatusConflict:
			return 0, fmt.Errorf("raft: cross-shard commit: %s: %w", reply.Err, kvcluster.ErrWriteConflict)
		case StatusRetryTs:
			commitTs = 0
			continue
		case StatusWrongShard:
			if err := n.shards.stale(octx); err != nil {
				return t.outcome(octx, primary, err)
			}
			continue
		case StatusAmbiguous:
			// Leadership moved: ask the next leader the same.
		default:
			return t.outcome(octx, primary, errors.New(reply.Err))
		}
		select {
		case <-time.After(backoff):
		case <-octx.Done():
			return t.outcome(octx, primary, octx.Err())
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// outcome settles a decision that failed with cause: it asks the
// primary's leader to roll the transaction back unless it committed, and
// reports which. It fails with ErrCommitUnknown only if no leader answers.
func (t *txn) outcome(_ context.Context, primary []byte, cause error) (uint64, error) {
	if errors.Is(cause, kvcluster.ErrClosed) {
		return 0, cause
	}
	n := t.kv.n
	lctx, cancel := context.WithTimeout(n.stopCtx, commitOutcomeWait)
	defer cancel()
	st, err := n.checkTxn(lctx, &CheckTxnArgs{Primary: primary, StartTs: t.startTs, Force: true})
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w: %w (then: %w)", kvcluster.ErrCommitUnknown, cause, err)
	case st.State == TxnCommitted:
		return st.CommitTs, nil
	}
	return 0, fmt.Errorf("raft: cross-shard commit rolled back after %v: %w", cause, kvcluster.ErrWriteConflict)
}

// abandon rolls a transaction that will not commit back, in the
// background: the primary first (a record there stops late prewrites),
// then its other intents.
func (t *txn) abandon(primary []byte, keys [][]byte) {
	n := t.kv.n
	start := t.startTs
	go func() {
		ctx, cancel := context.WithTimeout(n.stopCtx, commitOutcomeWait)
		defer cancel()
		st, err := n.checkTxn(ctx, &CheckTxnArgs{Primary: primary, StartTs: start, Force: true})
		if err != nil || st.State == TxnCommitted {
			return // the sweep sees to it
		}
		_ = n.resolveKeys(ctx, start, 0, primary, keys)
	}()
}
