package raft

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/replication/registry"
	"github.com/shaledb/shaledb/replication/tso"
)

// txnBytesMax bounds the writes of one transaction: they travel as one
// raft entry.
const txnBytesMax = 16 << 20

// commitOutcomeWait bounds how long a commit whose leader failed waits to
// learn the outcome before returning kvcluster.ErrCommitUnknown.
const commitOutcomeWait = 30 * time.Second

// KV is the kvcluster.KvCluster a node serves: it reaches every shard of
// the cluster, whichever node leads it.
type KV struct {
	n *Node

	closeMu sync.RWMutex // held shared by commits being handed over
	closed  bool
}

var _ kvcluster.KvCluster = (*KV)(nil)

// KV returns the node's KvCluster. Closing it does not stop the node.
func (n *Node) KV() *KV { return &KV{n: n} }

func (kv *KV) isClosed() bool {
	kv.closeMu.RLock()
	defer kv.closeMu.RUnlock()
	return kv.closed
}

// Begin starts a transaction at a fresh timestamp from the oracle.
func (kv *KV) Begin(ctx context.Context, opts kvcluster.TxnOptions) (kvcluster.Txn, error) {
	if kv.isClosed() {
		return nil, kvcluster.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var epoch uint64
	ts, err := kv.n.snaps.begin(ctx, func(ctx context.Context) (uint64, error) {
		ts, e, err := kv.n.timestampEpoch(ctx, false)
		epoch = e
		return ts, err
	})
	if err != nil {
		return nil, err
	}
	return &txn{kv: kv, startTs: ts, epoch: epoch, readOnly: opts.ReadOnly, follower: opts.FollowerReads}, nil
}

// Close fails later operations with ErrClosed, after commits already
// handed to a leader have their outcome.
func (kv *KV) Close() error {
	kv.closeMu.Lock()
	kv.closed = true
	kv.closeMu.Unlock()
	return nil
}

type txn struct {
	kv       *KV
	startTs  uint64
	epoch    uint64 // the schema epoch of startTs
	schema   bool   // it writes the schema: its commit timestamp is a schema timestamp
	readOnly bool
	follower bool // reads from a near replica (follower.go)
	done     bool
	released bool // its snapshot no longer counts as open
	writes   *btree.BTreeG[*mutation]
	bytes    int
	// lockTs[key] is when the transaction's lock read key's latest
	// value; lockShards are the shards whose leaders hold its locks.
	lockTs     map[string]uint64
	lockShards map[uint64]bool
	// stopAfter, in tests, ends a cross-shard commit after that phase
	// (1: prewritten, 2: decided), as a coordinator that dies there.
	stopAfter int
}

var (
	_ kvcluster.LockingTxn     = (*txn)(nil)
	_ kvcluster.SnapshotLocker = (*txn)(nil)
	_ kvcluster.SchemaTxn      = (*txn)(nil)
)

// SchemaEpoch returns the oracle's schema epoch of the snapshot (see
// tso.Oracle.AllocateEpoch and kvcluster.SchemaTxn).
func (t *txn) SchemaEpoch() uint64 { return t.epoch }

// WritesSchema makes the commit timestamp a schema timestamp.
func (t *txn) WritesSchema() { t.schema = true }

// LockForUpdate takes key's row lock on its shard's leader (locks.go).
func (t *txn) LockForUpdate(ctx context.Context, key []byte) ([]byte, bool, error) {
	reply, err := t.lock(ctx, key, false)
	if err != nil {
		return nil, false, err
	}
	return reply.Value, reply.Found, nil
}

// GetAndLock reads key at the snapshot and, if it is there, locks it, in
// one request to the shard's leader (kvcluster.SnapshotLocker).
func (t *txn) GetAndLock(ctx context.Context, key []byte) ([]byte, bool, []byte, bool, error) {
	if t.writes != nil {
		if _, ok := t.writes.Get(&mutation{Key: key}); ok {
			// Our own write decides what Get returns: two steps.
			return kvcluster.GetThenLock(ctx, t, key)
		}
	}
	reply, err := t.lock(ctx, key, true)
	if err != nil || !reply.SnapFound {
		return nil, false, nil, false, err
	}
	return reply.SnapValue, true, reply.Value, reply.Found, nil
}

// lock sends a Lock request for key (reading it at the snapshot first with
// snapshot set: no lock if it is not there) and returns the reply, the
// latest value overlaid with the transaction's own write.
func (t *txn) lock(ctx context.Context, key []byte, snapshot bool) (LockReply, error) {
	if err := kvcluster.CheckKey(key); err != nil {
		return LockReply{}, err
	}
	if err := t.check(); err != nil {
		return LockReply{}, err
	}
	if t.readOnly {
		return LockReply{}, kvcluster.ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return LockReply{}, err
	}
	n := t.kv.n
	var reply LockReply
	for {
		d, err := n.shards.lookup(ctx, key)
		if err != nil {
			return LockReply{}, err
		}
		if t.lockShards == nil {
			t.lockShards = make(map[uint64]bool)
			t.lockTs = make(map[string]uint64)
		}
		t.lockShards[d.ID] = true
		a := &LockArgs{Shard: d.ID, Key: key, Owner: t.startTs, Node: n.id, Snapshot: snapshot}
		if err := n.onLeader(ctx, d, "Lock", a, &reply, func() { reply = n.serveLock(ctx, a) }); err != nil {
			return LockReply{}, err
		}
		if reply.Status != StatusWrongShard {
			break
		}
		if err := n.shards.stale(ctx); err != nil {
			return LockReply{}, err
		}
	}
	switch reply.Status {
	case StatusOK:
	case StatusDeadlock:
		return LockReply{}, fmt.Errorf("raft: lock %q: %w", key, kvcluster.ErrDeadlock)
	case StatusConflict:
		return LockReply{}, fmt.Errorf("raft: lock %q: %s: %w", key, reply.Err, kvcluster.ErrWriteConflict)
	default:
		return LockReply{}, replyErr(ctx, reply.Err, "lock %q", key)
	}
	if snapshot && !reply.SnapFound {
		return reply, nil // not in the snapshot: not locked
	}
	t.lockTs[string(key)] = reply.LockTs
	// Our own write wins over anything committed.
	if t.writes != nil {
		if w, ok := t.writes.Get(&mutation{Key: key}); ok {
			reply.Value, reply.Found = nil, false
			if !w.Delete {
				reply.Value, reply.Found = bytes.Clone(w.Value), true
			}
			return reply, nil
		}
	}
	// Later reads of key see the latest value: buffer it as our own write
	// (rewriting it is harmless, and makes the row's new version part of
	// this transaction, as PostgreSQL's lock does).
	if reply.Found {
		if err := t.write(ctx, &mutation{Key: bytes.Clone(key), Value: bytes.Clone(reply.Value)}); err != nil {
			return LockReply{}, err
		}
	}
	return reply, nil
}

// unlockAll releases the transaction's locks on every shard that holds
// some, in the background: a commit has released those on its own shard
// already, and a second release is harmless.
func (t *txn) unlockAll() {
	n := t.kv.n
	for shard := range t.lockShards {
		go func() {
			ctx, cancel := context.WithTimeout(n.stopCtx, 5*time.Second)
			defer cancel()
			d, err := n.shards.byID(shard)
			if err != nil {
				return
			}
			a := &UnlockArgs{Shard: shard, Owner: t.startTs}
			var reply UnlockReply
			_ = n.onLeader(ctx, d, "Unlock", a, &reply, func() { reply = n.serveUnlock(a) })
		}()
	}
	t.lockShards = nil
}

func mutationLess(a, b *mutation) bool { return bytes.Compare(a.Key, b.Key) < 0 }

func (t *txn) check() error {
	if t.done {
		return kvcluster.ErrTxnDone
	}
	if t.kv.isClosed() {
		return kvcluster.ErrClosed
	}
	return nil
}

func (t *txn) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := kvcluster.CheckKey(key); err != nil {
		return nil, false, err
	}
	if err := t.check(); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if t.writes != nil {
		if w, ok := t.writes.Get(&mutation{Key: key}); ok {
			if w.Delete {
				return nil, false, nil
			}
			return bytes.Clone(w.Value), true, nil
		}
	}
	n := t.kv.n
	for {
		d, err := n.shards.lookup(ctx, key)
		if err != nil {
			return nil, false, err
		}
		a := &ReadArgs{Shard: d.ID, Ts: t.startTs, Key: key}
		var reply ReadReply
		if err := n.readShard(ctx, d, a, &reply, t.follower); err != nil {
			return nil, false, err
		}
		switch reply.Status {
		case StatusOK:
			return reply.Value, reply.Found, nil
		case StatusWrongShard:
			if err := n.shards.stale(ctx); err != nil {
				return nil, false, err
			}
			continue
		case StatusConflict: // the snapshot is too old to read
			return nil, false, fmt.Errorf("raft: read shard %d: %s: %w", d.ID, reply.Err, kvcluster.ErrWriteConflict)
		}
		return nil, false, replyErr(ctx, reply.Err, "read shard %d", d.ID)
	}
}

func (t *txn) Scan(ctx context.Context, start, end []byte, opts kvcluster.ScanOptions) ([]kvcluster.KeyValue, error) {
	if err := kvcluster.CheckScan(start, end, opts); err != nil {
		return nil, err
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []kvcluster.KeyValue
	lo, hi := start, end
	for len(out) < opts.Limit {
		need := opts.Limit - len(out)
		page, err := t.scanStored(ctx, lo, hi, need, opts.Reverse)
		if err != nil {
			return nil, err
		}
		// The page is complete up to its last key; the transaction's own
		// writes are merged in up to there.
		truncated := len(page) == need
		var bound []byte
		if truncated {
			bound = page[len(page)-1].Key
		}
		merged := t.overlay(page, lo, hi, bound, opts.Reverse)
		if len(merged) > need {
			merged = merged[:need]
		}
		out = append(out, merged...)
		if !truncated {
			break
		}
		if opts.Reverse {
			hi = bound
		} else {
			lo = append(bytes.Clone(bound), 0)
		}
		if hi != nil && bytes.Compare(lo, hi) >= 0 {
			break
		}
	}
	return out, nil
}

// overlay merges the transaction's writes in [lo, hi), up to bound
// (inclusive; nil: no bound), into a page of stored entries in scan order.
func (t *txn) overlay(page []kvcluster.KeyValue, lo, hi, bound []byte, reverse bool) []kvcluster.KeyValue {
	if t.writes == nil || t.writes.Len() == 0 {
		return page
	}
	var own []*mutation
	visit := func(w *mutation) bool {
		if bound != nil && ((!reverse && bytes.Compare(w.Key, bound) > 0) || (reverse && bytes.Compare(w.Key, bound) < 0)) {
			return false
		}
		own = append(own, w)
		return true
	}
	if reverse {
		if hi == nil {
			t.writes.Descend(func(w *mutation) bool {
				if bytes.Compare(w.Key, lo) < 0 {
					return false
				}
				return visit(w)
			})
		} else {
			t.writes.DescendLessOrEqual(&mutation{Key: hi}, func(w *mutation) bool {
				if bytes.Equal(w.Key, hi) {
					return true
				}
				if bytes.Compare(w.Key, lo) < 0 {
					return false
				}
				return visit(w)
			})
		}
	} else {
		t.writes.AscendGreaterOrEqual(&mutation{Key: lo}, func(w *mutation) bool {
			if hi != nil && bytes.Compare(w.Key, hi) >= 0 {
				return false
			}
			return visit(w)
		})
	}
	if len(own) == 0 {
		return page
	}
	before := func(a, b []byte) bool {
		if reverse {
			return bytes.Compare(a, b) > 0
		}
		return bytes.Compare(a, b) < 0
	}
	out := make([]kvcluster.KeyValue, 0, len(page)+len(own))
	i, j := 0, 0
	for i < len(page) || j < len(own) {
		if j == len(own) || (i < len(page) && before(page[i].Key, own[j].Key)) {
			out = append(out, page[i])
			i++
			continue
		}
		w := own[j]
		j++
		if i < len(page) && bytes.Equal(page[i].Key, w.Key) {
			i++
		}
		if !w.Delete {
			out = append(out, kvcluster.KeyValue{Key: bytes.Clone(w.Key), Value: bytes.Clone(w.Value)})
		}
	}
	return out
}

// scanStored reads up to limit stored entries of [lo, hi) at the
// transaction's snapshot, shard after shard.
func (t *txn) scanStored(ctx context.Context, lo, hi []byte, limit int, reverse bool) ([]kvcluster.KeyValue, error) {
	n := t.kv.n
	var out []kvcluster.KeyValue
	for len(out) < limit {
		var d shardDesc
		var err error
		if reverse {
			d, err = n.shards.lookupBefore(ctx, hi)
		} else {
			d, err = n.shards.lookup(ctx, lo)
		}
		if err != nil {
			return nil, err
		}
		a := &ReadArgs{Shard: d.ID, Ts: t.startTs, Scan: true, Limit: limit - len(out), Reverse: reverse,
			Start: lo, End: hi}
		if bytes.Compare(a.Start, d.Start) < 0 {
			a.Start = d.Start
		}
		if d.End != nil && (a.End == nil || bytes.Compare(a.End, d.End) > 0) {
			a.End = d.End
		}
		var reply ReadReply
		if err := n.readShard(ctx, d, a, &reply, t.follower); err != nil {
			return nil, err
		}
		switch reply.Status {
		case StatusOK:
		case StatusWrongShard:
			if err := n.shards.stale(ctx); err != nil {
				return nil, err
			}
			continue
		case StatusConflict: // the snapshot is too old to read
			return nil, fmt.Errorf("raft: scan shard %d: %s: %w", d.ID, reply.Err, kvcluster.ErrWriteConflict)
		default:
			return nil, replyErr(ctx, reply.Err, "scan shard %d", d.ID)
		}
		out = append(out, reply.KVs...)
		if reverse {
			if bytes.Compare(d.Start, lo) <= 0 {
				break
			}
			hi = d.Start
		} else {
			if d.End == nil || (hi != nil && bytes.Compare(d.End, hi) >= 0) {
				break
			}
			lo = d.End
		}
	}
	return out, nil
}

func (t *txn) Put(ctx context.Context, key, value []byte) error {
	if err := kvcluster.CheckKey(key); err != nil {
		return err
	}
	if err := kvcluster.CheckValue(value); err != nil {
		return err
	}
	return t.write(ctx, &mutation{Key: bytes.Clone(key), Value: bytes.Clone(value)})
}

func (t *txn) Delete(ctx context.Context, key []byte) error {
	if err := kvcluster.CheckKey(key); err != nil {
		return err
	}
	return t.write(ctx, &mutation{Key: bytes.Clone(key), Delete: true})
}

func (t *txn) write(ctx context.Context, m *mutation) error {
	if err := t.check(); err != nil {
		return err
	}
	if t.readOnly {
		return kvcluster.ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.writes == nil {
		t.writes = btree.NewG(16, mutationLess)
	}
	size := len(m.Key) + len(m.Value) + 16
	if old, ok := t.writes.Get(m); ok {
		size -= len(old.Key) + len(old.Value) + 16
	}
	if t.bytes+size > txnBytesMax {
		return fmt.Errorf("%w: %d bytes of writes exceed %d", kvcluster.ErrTxnTooLarge, t.bytes+size, txnBytesMax)
	}
	t.bytes += size
	t.writes.ReplaceOrInsert(m)
	return nil
}

func (t *txn) Rollback() {
	t.done = true
	t.release()
}

// release ends the transaction's snapshot for WaitForOlderSnapshots.
func (t *txn) release() {
	if !t.released {
		t.released = true
		t.kv.n.snaps.end(t.startTs)
		t.unlockAll()
	}
}

func (t *txn) Commit(ctx context.Context) error {
	if err := t.check(); err != nil {
		return err
	}
	t.done = true
	defer t.release()
	if t.readOnly || t.writes == nil || t.writes.Len() == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	kv := t.kv
	kv.closeMu.RLock()
	defer kv.closeMu.RUnlock()
	if kv.closed {
		return kvcluster.ErrClosed
	}
	writes := make([]mutation, 0, t.writes.Len())
	t.writes.Ascend(func(w *mutation) bool {
		m := *w
		m.LockTs = t.lockTs[string(w.Key)]
		writes = append(writes, m)
		return true
	})
	n := kv.n
	for {
		d, err := n.shards.lookup(ctx, writes[0].Key)
		if err != nil {
			return err
		}
		for _, w := range writes[1:] {
			if !d.contains(w.Key) {
				return t.commitCrossShard(ctx, writes)
			}
		}
		commitTs, _, err := n.timestampEpoch(ctx, t.schema)
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		a := &CommitArgs{Shard: d.ID, StartTs: t.startTs, CommitTs: commitTs, Writes: writes}
		// Handed over: the outcome is waited for whatever ctx does.
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitOutcomeWait)
		var reply CommitReply
		err = n.onLeader(octx, d, "Commit", a, &reply, func() { reply = n.serveCommit(octx, a) })
		if errors.Is(err, errUnanswered) || err == nil && reply.Status == StatusAmbiguous {
			// Learning the outcome takes a leader: the caller may stop
			// waiting for one (and gets ErrCommitUnknown).
			lctx, lcancel := context.WithCancel(octx)
			stop := context.AfterFunc(ctx, lcancel)
			err = t.learnOutcome(lctx, d, commitTs, writes[0].Key)
			stop()
			lcancel()
		} else if err == nil {
			switch reply.Status {
			case StatusOK, StatusConflict:
				// The leader released the shard's locks when it applied
				// the commit: no unlock request for them.
				delete(t.lockShards, d.ID)
				if reply.Status == StatusConflict {
					err = kvcluster.ErrWriteConflict
				}
			case StatusRetryTs, StatusWrongShard:
				cancel()
				if reply.Status == StatusWrongShard {
					if err := n.shards.stale(ctx); err != nil {
						return err
					}
				}
				continue
			default:
				err = fmt.Errorf("raft: commit to shard %d: %s", d.ID, reply.Err)
			}
		} else if !errors.Is(err, kvcluster.ErrClosed) {
			err = fmt.Errorf("%w: %w", kvcluster.ErrCommitUnknown, err)
		}
		cancel()
		return err
	}
}

// learnOutcome finds out whether a commit whose leader failed was applied,
// asking the shard's (new) leader; the answer is final.
func (t *txn) learnOutcome(ctx context.Context, d shardDesc, commitTs uint64, key []byte) error {
	n := t.kv.n
	a := &CommitStatusArgs{Shard: d.ID, CommitTs: commitTs, Key: key}
	var reply CommitStatusReply
	if err := n.onLeader(ctx, d, "CommitStatus", a, &reply, func() { reply = n.serveCommitStatus(ctx, a) }); err != nil {
		return fmt.Errorf("%w: %w", kvcluster.ErrCommitUnknown, err)
	}
	switch {
	case reply.Status != StatusOK:
		return fmt.Errorf("%w: %s", kvcluster.ErrCommitUnknown, reply.Err)
	case reply.Committed:
		return nil
	}
	return fmt.Errorf("%w: the shard's leader changed during commit; nothing was applied", kvcluster.ErrWriteConflict)
}

// onLeader sends a request to the leader of shard d, following the
// replicas' hints: local calls run serveLocal, others go over the peer
// connection. It returns once a replica answered with a status other than
// not-leader or no-replica, or with ctx's error. A request to a remote
// peer that may have been delivered and got no answer is reported as
// errUnanswered for a onceRequest.
func (n *Node) onLeader(ctx context.Context, d shardDesc, method string, args any, reply shardReply, serveLocal func()) error {
	target := n.shards.leader(d.ID)
	if target == 0 && len(d.Replicas) > 0 {
		target = d.Replicas[0]
	}
	backoff := time.Millisecond
	for {
		var err error
		var sent bool
		if target == n.id {
			serveLocal()
		} else {
			var p *peer
			if p, err = n.transport.peerFor(target); err == nil {
				sent, err = p.call(ctx, method, args, reply)
			}
		}
		if _, once := args.(onceRequest); once && err != nil && sent && ctx.Err() == nil {
			// It may have been acted on: sending it again could apply it twice.
			return fmt.Errorf("%w: %w", errUnanswered, err)
		}
		if err == nil {
			st, l := reply.result()
			switch st {
			case StatusNotLeader:
				if l != 0 && l != target {
					target = l
					n.shards.setLeader(d.ID, l)
					continue
				} else if l == target {
					break // a new leader not ready yet: ask it again
				}
				target = nextReplica(d, target)
			case StatusNoReplica:
				target = nextReplica(d, target)
			default:
				n.shards.setLeader(d.ID, target)
				return nil
			}
		} else {
			if errors.Is(err, kvcluster.ErrClosed) {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			n.forgetAddr(target)
			target = nextReplica(d, target)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("raft: shard %d has no reachable leader: %w", d.ID, ctx.Err())
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

func nextReplica(d shardDesc, cur uint64) uint64 {
	for i, id := range d.Replicas {
		if id == cur {
			return d.Replicas[(i+1)%len(d.Replicas)]
		}
	}
	if len(d.Replicas) == 0 {
		return 0
	}
	return d.Replicas[0]
}

// onceRequest is a request that must not be sent again once it may have
// reached a replica: onLeader then returns errUnanswered instead of
// trying elsewhere.
type onceRequest interface{ sendOnce() }

func (*CommitArgs) sendOnce() {}

// errUnanswered: a onceRequest may have reached the replica, and no answer
// came back.
var errUnanswered = errors.New("raft: request sent, no answer")

// shardReply is a reply from a shard's replica.
type shardReply interface {
	result() (status Status, leader uint64)
}

func (r *ReadReply) result() (Status, uint64)         { return r.Status, r.Leader }
func (r *CommitReply) result() (Status, uint64)       { return r.Status, r.Leader }
func (r *CommitStatusReply) result() (Status, uint64) { return r.Status, r.Leader }
func (r *DropReply) result() (Status, uint64)         { return r.Status, r.Leader }
func (r *LockReply) result() (Status, uint64)         { return r.Status, r.Leader }
func (r *ShardStatsReply) result() (Status, uint64)   { return r.Status, r.Leader }
func (r *UnlockReply) result() (Status, uint64)       { return r.Status, r.Leader }

// SharedWithOtherNodes says every node of the cluster writes the store.
func (kv *KV) SharedWithOtherNodes() {}

var (
	_ kvcluster.SharedStore    = (*KV)(nil)
	_ kvcluster.SnapshotWaiter = (*KV)(nil)
	_ kvcluster.PrefixDropper  = (*KV)(nil)
)

// DropPrefix removes every key under prefix, shard by shard, each through
// its raft log.
func (kv *KV) DropPrefix(ctx context.Context, prefix []byte) error {
	if len(prefix) == 0 {
		return fmt.Errorf("%w: empty prefix", kvcluster.ErrInvalidArgument)
	}
	if kv.isClosed() {
		return kvcluster.ErrClosed
	}
	n := kv.n
	ts, err := n.timestamp(ctx)
	if err != nil {
		return err
	}
	lo, hi := prefix, kvcluster.PrefixEnd(prefix)
	for {
		d, err := n.shards.lookup(ctx, lo)
		if err != nil {
			return err
		}
		a := &DropArgs{Shard: d.ID, Ts: ts, Prefix: prefix}
		var reply DropReply
		if err := n.onLeader(ctx, d, "Drop", a, &reply, func() { reply = n.serveDrop(ctx, a) }); err != nil {
			return err
		}
		switch reply.Status {
		case StatusOK:
		case StatusWrongShard:
			if err := n.shards.stale(ctx); err != nil {
				return err
			}
			continue
		default:
			return replyErr(ctx, reply.Err, "drop prefix on shard %d", d.ID)
		}
		if d.End == nil || (hi != nil && bytes.Compare(d.End, hi) >= 0) {
			return nil
		}
		lo = d.End
	}
}

// WaitForOlderSnapshots waits until no node of the cluster has a
// transaction open whose snapshot is older than a timestamp taken now.
func (kv *KV) WaitForOlderSnapshots(ctx context.Context) error {
	n := kv.n
	now, err := n.timestamp(ctx)
	if err != nil {
		return err
	}
	for {
		oldest, err := n.oldestSnapshot(ctx)
		if err == nil && oldest >= now {
			return nil
		}
		if err != nil && !errors.Is(err, errNoAnswer) {
			return err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errNoAnswer: a live node did not say what its oldest snapshot is.
var errNoAnswer = errors.New("raft: a live node did not answer")

// oldestSnapshot returns the oldest snapshot an open transaction of any
// live node holds (a dead node's transactions died with it):
// math.MaxUint64 with none open, 0 while a node is giving a transaction
// its snapshot. A live node that does not answer fails it with
// errNoAnswer.
func (n *Node) oldestSnapshot(ctx context.Context) (uint64, error) {
	nodes, err := n.reg.Nodes(ctx)
	if err != nil {
		return 0, err
	}
	oldest := uint64(math.MaxUint64)
	for _, nd := range nodes {
		if !nd.Alive {
			continue
		}
		if nd.ID == n.id {
			oldest = min(oldest, n.snaps.oldest())
			continue
		}
		var reply OldestSnapshotReply
		p, err := n.transport.peerFor(nd.ID)
		if err == nil {
			_, err = p.call(ctx, "OldestSnapshot", &OldestSnapshotArgs{}, &reply)
		}
		if err != nil {
			return 0, fmt.Errorf("%w: node %d: %w", errNoAnswer, nd.ID, err)
		}
		oldest = min(oldest, reply.Oldest)
	}
	return oldest, nil
}

// snapshots counts a node's open transactions by snapshot timestamp.
type snapshots struct {
	mu      sync.Mutex
	open    map[uint64]int
	pending int // transactions being given their timestamp
}

func (s *snapshots) begin(ctx context.Context, timestamp func(context.Context) (uint64, error)) (uint64, error) {
	s.mu.Lock()
	s.pending++
	s.mu.Unlock()
	ts, err := timestamp(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	if err == nil {
		if s.open == nil {
			s.open = make(map[uint64]int)
		}
		s.open[ts]++
	}
	return ts, err
}

func (s *snapshots) end(ts uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[ts]--; s.open[ts] <= 0 {
		delete(s.open, ts)
	}
}

// isOpen reports whether the transaction of snapshot ts is open.
func (s *snapshots) isOpen(ts uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[ts] > 0
}

func (s *snapshots) oldest() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending > 0 {
		return 0
	}
	oldest := uint64(math.MaxUint64)
	for ts := range s.open {
		oldest = min(oldest, ts)
	}
	return oldest
}

// ShardInfo describes one shard of the cluster.
type ShardInfo struct {
	ID        uint64
	Start     []byte
	End       []byte // nil: the end of the key space
	Replicas  []uint64
	Leader    uint64 // 0 when no leader answered
	SizeBytes int64  // keys and values of the latest versions
	Keys      int64
}

// Shards lists every shard of the cluster, in key order, asking each
// shard's leader for its size.
func (kv *KV) Shards(ctx context.Context) ([]ShardInfo, error) {
	n := kv.n
	n.shards.mu.Lock()
	descs := slices.Clone(n.shards.shards)
	n.shards.mu.Unlock()
	out := make([]ShardInfo, 0, len(descs))
	for _, d := range descs {
		info := ShardInfo{ID: d.ID, Start: d.Start, End: d.End, Replicas: d.Replicas}
		a := &ShardStatsArgs{Shard: d.ID}
		var reply ShardStatsReply
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := n.onLeader(sctx, d, "ShardStats", a, &reply, func() { reply = n.serveShardStats(a) })
		cancel()
		if err == nil && reply.Status == StatusOK {
			info.Leader, info.SizeBytes, info.Keys = reply.Leader, reply.SizeBytes, reply.Keys
		} else if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out = append(out, info)
	}
	return out, nil
}

// NodeInfo is one node of the cluster, as the registry has it.
type NodeInfo struct {
	registry.Node
	Oracle bool // the timestamp oracle runs on it
	Self   bool // the node asked
}

// Nodes lists the cluster's nodes, in id order.
func (kv *KV) Nodes(ctx context.Context) ([]NodeInfo, error) {
	n := kv.n
	nodes, err := n.reg.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	oracle, err := tso.Leader(ctx, n.opts.Etcd, n.opts.Cluster)
	if err != nil && !errors.Is(err, tso.ErrNotLeader) {
		return nil, err
	}
	out := make([]NodeInfo, len(nodes))
	for i, rec := range nodes {
		out[i] = NodeInfo{Node: rec, Oracle: rec.ID == oracle, Self: rec.ID == n.id}
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// replyErr is the error for a replica's StatusError reply: ctx's error
// when ctx ended (a local call ran under it), else the replica's message.
func replyErr(ctx context.Context, msg, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("raft: %s: %w", what, err)
	}
	return fmt.Errorf("raft: %s: %s", what, msg)
}
