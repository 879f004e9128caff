package raft

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	etcdraft "go.etcd.io/etcd/raft/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"

	"github.com/shaledb/shaledb/replication/raftlog"
)

// replica is this node's member of one shard's raft group.
//
// # How a read stays linearizable
//
// Reads are served by the leader at a snapshot timestamp ts from the
// oracle. Before reading, the leader resolves ts:
//
//  1. It raises its read floor to ts: the floor of the key a point read
//     covers, or of the whole shard (readfloor.go). It never proposes a
//     commit to a key at or below the key's floor (the committer takes a
//     new timestamp), so no commit at or below ts can land after this
//     read.
//  2. It waits for those of its own in-flight proposals at or below ts
//     that write a key the read covers, and for its in-flight splits, to
//     be applied. (Proposals are not forwarded: every entry of the
//     leader's term is its own.)
//  3. Every commit acknowledged by an earlier leader must be in its state.
//     Once it has applied an entry of its own term, all entries of
//     earlier terms are applied, and it reads at once. Before, it takes a
//     lease-based read index — its commit index, once it has committed an
//     entry of its own term; CheckQuorum makes it step down when it loses
//     touch with a quorum — and waits until it has applied that index.
//
// A new leader starts its floor at a fresh oracle timestamp, taken after
// it won, which is above every timestamp an earlier leader served a read
// at: an earlier leader serves reads only while its lease holds, and no
// new leader is elected before that lease ends.
type replica struct {
	n   *Node
	id  uint64
	log *raftlog.Log

	mu sync.Mutex
	// desc is the shard as the map last said; span is the key range the
	// log says (split.go): commits and reads are checked against span.
	// span and conf change under mu, by the apply loop or by the raft
	// loop restoring a snapshot while the apply loop is idle, so the
	// apply loop reads them without it. conf is replaced whole, never
	// changed in place: a copy of it stays valid.
	desc     shardDesc
	span     span
	conf     raftpb.ConfState
	rn       *etcdraft.RawNode
	term     uint64
	leader   uint64
	isLeader bool
	floorSet bool // a leader serves only once its read floor is set
	floors   readFloors
	// maxTs is the highest commit timestamp proposed or applied here (a
	// lock's read timestamp: locks.go).
	maxTs uint64
	// termCommitted is a term in which this replica, leading, has seen an
	// entry of its own committed: from then on its commit index is a read
	// index, for the rest of the term.
	termCommitted uint64
	nextID        atomic.Uint64 // handles of proposals and reads
	props         map[uint64]*proposal
	reads         map[uint64]chan uint64
	applied       uint64
	appliedTerm   uint64 // the term of the entry at applied
	// durableApplied is the last entry whose effects the state machine
	// held when the replica started: applying the log again from its
	// snapshot skips the effects of the entries up to it. Applied again
	// over a state that already holds later entries, a prewrite that
	// once conflicted could now succeed — an intent the other replicas
	// do not have, which would make this one's later outcomes differ.
	durableApplied uint64
	appliedC       chan struct{} // closed and replaced whenever applied grows
	locks          lockTable     // row locks, while leading (locks.go)
	// confPending is set while a membership change this leader proposed
	// is not applied yet (repair.go); raft may drop one, so it expires.
	confPending      bool
	confPendingSince time.Time
	// Size tracking for splits (split.go): sizeAt as last measured, plus
	// the bytes applied since (written: the apply loop adds to it
	// without taking mu).
	sizeKnown     bool
	sizeAt        int64
	written       atomic.Int64
	splitProposed time.Time
	// balanced is when this leader last added a replica to move one
	// (placement.go).
	balanced time.Time
	// checkpoint is where the log is compacted to next (snapshot.go).
	checkpoint *checkpoint
	snapshots  int  // installed since start
	copying    bool // a snapshot's data is being copied (snapshot.go)
}

// proposal is a commit this leader proposed and has not seen applied.
type proposal struct {
	// commitTs is the timestamp it writes at: reads at or above it wait
	// for it (MaxUint64: it makes nothing visible).
	commitTs uint64
	// match tells the applied entry of this handle from an earlier
	// leader's entry of the same handle.
	match uint64
	// keys are the keys it writes, in order; nil: it may change any
	// (a drop or a split).
	keys     [][]byte
	done     chan proposalResult // buffered: the apply loop never blocks
	finished chan struct{}       // closed when done is filled
}

// readKeys is what a read covers: everything (all), one key, or the span
// [start, end) (a nil end: no bound).
type readKeys struct {
	all        bool
	point      bool
	key        []byte
	start, end []byte
}

// everything covers every key.
var everything = readKeys{all: true}

// pointRead covers key.
func pointRead(key []byte) readKeys { return readKeys{point: true, key: key} }

// touches reports whether p may write a key rk covers.
func (p *proposal) touches(rk readKeys) bool {
	if p.keys == nil || rk.all {
		return true
	}
	if rk.point {
		_, found := slices.BinarySearchFunc(p.keys, rk.key, bytes.Compare)
		return found
	}
	i, _ := slices.BinarySearchFunc(p.keys, rk.start, bytes.Compare)
	return i < len(p.keys) && (rk.end == nil || bytes.Compare(p.keys[i], rk.end) < 0)
}

type proposalResult struct {
	outcome  outcome
	commitTs uint64 // a resolve entry's: the transaction's commit timestamp (0: rolled back)
	err      error
}

func (p *proposal) finish(res proposalResult) {
	p.done <- res
	close(p.finished)
}

func newReplica(n *Node, desc shardDesc, peers []uint64) (*replica, error) {
	log, err := n.logs.Log(desc.ID)
	if err != nil {
		return nil, err
	}
	snap, err := log.Snapshot()
	if err != nil {
		return nil, err
	}
	sp, err := decodeSpan(snap.Data)
	if err != nil {
		return nil, err
	}
	cfg := &etcdraft.Config{
		ID:                        n.id,
		ElectionTick:              n.opts.ElectionTicks,
		HeartbeatTick:             1,
		Storage:                   log,
		Applied:                   snap.Metadata.Index,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: 1 << 30,
		MaxInflightMsgs:           256,
		CheckQuorum:               true,
		// A proposal reaches raft only on the leader that checked it
		// against its read floor (resolve relies on it).
		DisableProposalForwarding: true,
		PreVote:                   true,
		ReadOnlyOption:            etcdraft.ReadOnlyLeaseBased,
		Logger:                    raftLogger{n.log.With("shard", desc.ID)},
	}
	rn, err := etcdraft.NewRawNode(cfg)
	if err != nil {
		return nil, fmt.Errorf("raft: shard %d: %w", desc.ID, err)
	}
	last, err := log.LastIndex()
	if err != nil {
		return nil, err
	}
	if last == 0 && len(peers) > 0 {
		ps := make([]etcdraft.Peer, len(peers))
		for i, id := range peers {
			ps[i] = etcdraft.Peer{ID: id}
		}
		if err := rn.Bootstrap(ps); err != nil {
			return nil, fmt.Errorf("raft: bootstrap shard %d: %w", desc.ID, err)
		}
	}
	durable, err := n.sm.appliedOf(desc.ID)
	if err != nil {
		return nil, err
	}
	return &replica{
		n: n, id: desc.ID, log: log, desc: desc, rn: rn, span: sp, conf: snap.Metadata.ConfState,
		applied: snap.Metadata.Index, appliedTerm: snap.Metadata.Term,
		durableApplied: durable,
		props:          make(map[uint64]*proposal),
		reads:          make(map[uint64]chan uint64),
		appliedC:       make(chan struct{}),
	}, nil
}

// leaderCheckLocked returns nil if this replica may serve as leader now.
func (r *replica) leaderCheckLocked() error {
	if !r.isLeader {
		return &notLeaderError{leader: r.leader}
	}
	if !r.floorSet {
		return &notLeaderError{leader: r.n.id} // not ready yet: the caller retries here
	}
	if to := r.rn.BasicStatus().LeadTransferee; to != 0 {
		// Handing leadership over: the transferee may win without
		// waiting for this leader's lease, so this one serves nothing
		// until it has (or raft gave up, after an election timeout).
		return &notLeaderError{leader: to}
	}
	return nil
}

// resolve makes this leader's state complete for reads as of ts of the
// keys rk covers (see the type's comment).
func (r *replica) resolve(ctx context.Context, ts uint64, rk readKeys) error {
	if ts < r.n.discardTs.Load() {
		return errSnapshotTooOld
	}
	r.mu.Lock()
	if err := r.leaderCheckLocked(); err != nil {
		r.mu.Unlock()
		return err
	}
	if rk.point {
		r.floors.raise(rk.key, ts)
	} else {
		r.floors.raiseAll(ts)
	}
	var waits []chan struct{}
	for _, p := range r.props {
		if p.commitTs <= ts && p.touches(rk) {
			waits = append(waits, p.finished)
		}
	}
	// A lease-based read index is the leader's commit index once it has
	// committed an entry of its own term (raft's ReadOnlyLeaseBased
	// answers just that): read it here rather than through the loop.
	var id uint64
	var ch chan uint64
	bs := r.rn.BasicStatus()
	if bs.RaftState != etcdraft.StateLeader {
		r.mu.Unlock()
		return &notLeaderError{leader: bs.Lead}
	}
	var index uint64 // 0 once an entry of this term is applied: every earlier one is
	if r.appliedTerm != bs.Term {
		index = bs.Commit
		if r.termCommitted != bs.Term {
			if term, err := r.log.Term(bs.Commit); err == nil && term == bs.Term {
				r.termCommitted = bs.Term // true for the rest of the term
			}
		}
		if r.termCommitted != bs.Term {
			id = r.nextID.Add(1)
			ch = make(chan uint64, 1)
			r.reads[id] = ch
			r.rn.ReadIndex(binary.BigEndian.AppendUint64(nil, id))
		}
	}
	r.mu.Unlock()
	if ch != nil {
		r.n.wake()
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-r.n.stopCtx.Done():
			return errNodeClosed
		case <-ctx.Done():
			if ch != nil {
				r.dropRead(id)
			}
			return ctx.Err()
		}
	}
	if ch != nil {
		select {
		case i, ok := <-ch:
			if !ok {
				return &notLeaderError{}
			}
			index = i
		case <-r.n.stopCtx.Done():
			return errNodeClosed
		case <-ctx.Done():
			r.dropRead(id)
			return ctx.Err()
		}
	}
	return r.waitApplied(ctx, index)
}

func (r *replica) dropRead(id uint64) {
	r.mu.Lock()
	delete(r.reads, id)
	r.mu.Unlock()
}

func (r *replica) waitApplied(ctx context.Context, index uint64) error {
	for {
		r.mu.Lock()
		if r.applied >= index {
			r.mu.Unlock()
			return nil
		}
		c := r.appliedC
		r.mu.Unlock()
		select {
		case <-c:
		case <-r.n.stopCtx.Done():
			return errNodeClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// inSpan reports whether key lies in the shard's span.
func (r *replica) inSpanLocked(key []byte) bool { return r.span.contains(key) }

// checkRead refuses a read that reaches outside the shard's span.
func (r *replica) checkRead(a *ReadArgs) error {
	r.mu.Lock()
	sp := r.span
	r.mu.Unlock()
	ok := true
	if a.Scan {
		ok = bytes.Compare(a.Start, sp.Start) >= 0 &&
			(sp.End == nil || (a.End != nil && bytes.Compare(a.End, sp.End) <= 0))
	} else {
		ok = sp.contains(a.Key)
	}
	if !ok {
		return fmt.Errorf("%w: shard %d is [%q, %q)", errWrongShard, r.id, sp.Start, sp.End)
	}
	return nil
}

// read serves a ReadArgs on this leader.
func (r *replica) read(ctx context.Context, a *ReadArgs, reply *ReadReply) error {
	if err := r.checkRead(a); err != nil {
		return err
	}
	rk := pointRead(a.Key)
	if a.Scan {
		rk = readKeys{start: a.Start, end: a.End}
	}
	if err := r.resolve(ctx, a.Ts, rk); err != nil {
		return err
	}
	// Checked again once caught up: a split applied meanwhile moved the
	// keys to a shard whose commits this one does not see.
	if err := r.checkRead(a); err != nil {
		return err
	}
	if _, err := r.resolveIntents(ctx, a.Ts, 0, rk); err != nil {
		return err
	}
	var err error
	if a.Scan {
		reply.KVs, err = r.n.sm.scan(a.Ts, a.Start, a.End, a.Limit, a.Reverse)
	} else {
		reply.Value, reply.Found, err = r.n.sm.get(a.Ts, a.Key)
	}
	return err
}

// commit proposes a transaction's writes and waits for them to be applied.
// Once proposed it does not give up on ctx: it returns the outcome, or
// errAmbiguous if this replica stops leading before learning it.
func (r *replica) commit(ctx context.Context, a *CommitArgs) (outcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// Encoded before taking the lock the raft loop needs: big entries
	// take a while.
	e := commitEntry{ID: r.nextID.Add(1), StartTs: a.StartTs, CommitTs: a.CommitTs, Writes: a.Writes}
	data := e.encode()
	r.mu.Lock()
	if err := r.leaderCheckLocked(); err != nil {
		r.mu.Unlock()
		return 0, err
	}
	if a.CommitTs <= a.StartTs {
		r.mu.Unlock()
		return 0, errRetryTs
	}
	if r.n.sm.intents.Load() > 0 {
		// Decided intents of cross-shard transactions on its keys
		// would make it conflict: resolve them first.
		r.mu.Unlock()
		if err := r.clearIntents(ctx, a.CommitTs, a.Writes); err != nil {
			return 0, err
		}
		r.mu.Lock()
		if err := r.leaderCheckLocked(); err != nil {
			r.mu.Unlock()
			return 0, err
		}
	}
	for _, w := range a.Writes {
		if !r.inSpanLocked(w.Key) {
			r.mu.Unlock()
			return 0, fmt.Errorf("%w: key %q", errWrongShard, w.Key)
		}
		if a.CommitTs <= r.floors.of(w.Key) {
			r.mu.Unlock()
			return 0, errRetryTs
		}
	}
	r.maxTs = max(r.maxTs, a.CommitTs)
	keys := make([][]byte, len(a.Writes))
	for i, w := range a.Writes {
		keys[i] = w.Key
	}
	if !slices.IsSortedFunc(keys, bytes.Compare) {
		slices.SortFunc(keys, bytes.Compare)
	}
	res, err := r.proposeLocked(e.ID, e.CommitTs, e.CommitTs, keys, data)
	out := res.outcome
	if err == nil && out == wrongShard {
		return 0, fmt.Errorf("%w: the shard was split", errWrongShard)
	}
	if err == nil {
		// Applied: a waiter that takes a lock next reads this commit.
		r.unlock(a.StartTs)
	}
	return out, err
}

// proposeLocked proposes an entry writing keys (sorted; nil: any) at ts
// (r.mu held; it is released) and waits for it to be applied. match is
// what applying it reports besides its handle (applied).
func (r *replica) proposeLocked(id, match, ts uint64, keys [][]byte, data []byte) (proposalResult, error) {
	if err := r.rn.Propose(data); err != nil {
		leader := r.leader
		r.mu.Unlock()
		return proposalResult{}, &notLeaderError{leader: leader}
	}
	p := &proposal{commitTs: ts, match: match, keys: keys, done: make(chan proposalResult, 1), finished: make(chan struct{})}
	r.props[id] = p
	r.mu.Unlock()
	r.n.wake()
	select {
	case res := <-p.done:
		return res, res.err
	case <-r.n.stopCtx.Done():
		return proposalResult{}, fmt.Errorf("%w: node stopping", errAmbiguous)
	}
}

// dropPrefix proposes the removal of the keys under prefix in this shard
// and waits for it to be applied.
func (r *replica) dropPrefix(ctx context.Context, prefix []byte, ts uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	if err := r.leaderCheckLocked(); err != nil {
		r.mu.Unlock()
		return err
	}
	e := dropEntry{ID: r.nextID.Add(1), Ts: ts, Prefix: prefix}
	_, err := r.proposeLocked(e.ID, e.Ts, e.Ts, nil, e.encode())
	return err
}

// onSoftState follows a change of leadership. Losing it fails every
// waiting proposal as ambiguous (it may still commit under the next
// leader) and every waiting read; winning it sets the read floor.
func (r *replica) onSoftStateLocked(ss *etcdraft.SoftState) {
	was := r.isLeader
	r.leader = ss.Lead
	r.isLeader = ss.RaftState == etcdraft.StateLeader
	if was && !r.isLeader {
		for id, p := range r.props {
			p.finish(proposalResult{err: fmt.Errorf("%w: leadership lost", errAmbiguous)})
			delete(r.props, id)
		}
		for id, ch := range r.reads {
			close(ch)
			delete(r.reads, id)
		}
		r.locks.reset()
		r.floorSet = false
		r.confPending = false
	}
	if !was && r.isLeader {
		r.floorSet = false
		go r.setReadFloor(r.rn.Status().Term)
	}
}

// setReadFloor raises the read floor of a new leader to a fresh timestamp
// and lets it serve.
func (r *replica) setReadFloor(term uint64) {
	for r.n.stopCtx.Err() == nil {
		ctx, cancel := context.WithTimeout(r.n.stopCtx, 2*time.Second)
		ts, err := r.n.timestamp(ctx)
		cancel()
		if err == nil {
			r.mu.Lock()
			if r.isLeader && r.rn.Status().Term == term {
				r.floors.raiseAll(ts)
				r.floorSet = true
			}
			r.mu.Unlock()
			return
		}
		r.n.log.Debug("read floor: no timestamp yet", "shard", r.id, "err", err)
		select {
		case <-time.After(50 * time.Millisecond):
		case <-r.n.stopCtx.Done():
		}
	}
}

// apply applies committed entries in order and answers their proposers.
func (r *replica) apply(ents []raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	confChanged := false
	for _, ent := range ents {
		switch ent.Type {
		case raftpb.EntryNormal:
			if len(ent.Data) == 0 {
				continue // a new leader's empty entry
			}
			// An entry this node applied before it restarted is not
			// applied again (see durableApplied).
			redo := ent.Index <= r.durableApplied
			res, err := r.applyNormal(ent.Data, redo)
			if err == nil && !redo {
				err = r.n.sm.setApplied(r.id, ent.Index)
			}
			if err != nil {
				return fmt.Errorf("raft: shard %d entry %d: %w", r.id, ent.Index, err)
			}
			r.mu.Lock()
			r.maxTs = max(r.maxTs, res.ts)
			if p := r.props[res.id]; p != nil && p.match == res.match {
				delete(r.props, res.id)
				p.finish(proposalResult{outcome: res.out, commitTs: res.commitTs})
			}
			if res.unlock != 0 && res.out != wrongShard && r.isLeader {
				// A cross-shard transaction's intents here are resolved:
				// its row locks go (a commit's go in commit).
				r.locks.release(res.unlock)
			}
			r.mu.Unlock()
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			cc, err := decodeConfChange(ent)
			if err != nil {
				return fmt.Errorf("raft: shard %d conf change %d: %w", r.id, ent.Index, err)
			}
			r.mu.Lock()
			r.conf = *r.rn.ApplyConfChange(cc)
			r.confPending = false
			r.mu.Unlock()
			confChanged = true
		}
	}
	r.mu.Lock()
	r.applied = ents[len(ents)-1].Index
	r.appliedTerm = ents[len(ents)-1].Term
	close(r.appliedC)
	r.appliedC = make(chan struct{})
	r.mu.Unlock()
	return r.maybeCompact(confChanged)
}

// decodeConfChange decodes a membership change entry of either version.
func decodeConfChange(ent raftpb.Entry) (raftpb.ConfChangeI, error) {
	if ent.Type == raftpb.EntryConfChange {
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(ent.Data); err != nil {
			return nil, err
		}
		return cc, nil
	}
	var cc raftpb.ConfChangeV2
	if err := cc.Unmarshal(ent.Data); err != nil {
		return nil, err
	}
	return cc, nil
}

// appliedEntry is what applying an entry reports: its proposal handle and
// match (see proposal), the commit timestamp to count in maxTs, and its
// outcome.
type appliedEntry struct {
	id, match, ts uint64
	out           outcome
	commitTs      uint64 // a resolve entry's transaction's commit timestamp
	unlock        uint64 // a transaction whose row locks here go
}

// spanBytes returns the bytes writes write, or false if a key lies
// outside the span: an entry ordered after a split that moved the key,
// refused alike on every replica (apply loop).
func (r *replica) spanBytes(writes []mutation) (n int64, ok bool) {
	for _, w := range writes {
		if !r.span.contains(w.Key) {
			return 0, false
		}
		n += int64(len(w.Key) + len(w.Value))
	}
	return n, true
}

// applyNormal applies a commit, drop, split, prewrite or resolve entry.
// With seen (an entry the state machine holds already), it only decodes
// it — a split entry is applied, it changes no data.
func (r *replica) applyNormal(data []byte, seen bool) (appliedEntry, error) {
	switch data[0] {
	case entryCommit:
		e, err := decodeCommit(data)
		if err != nil {
			return appliedEntry{}, err
		}
		res := appliedEntry{id: e.ID, match: e.CommitTs, ts: e.CommitTs}
		n, ok := r.spanBytes(e.Writes)
		if !ok {
			res.out = wrongShard
			return res, nil
		}
		if seen {
			return res, nil
		}
		res.out, err = r.n.sm.apply(e)
		if res.out == applied {
			r.written.Add(n)
		}
		return res, err
	case entryDrop:
		e, err := decodeDrop(data)
		if err != nil {
			return appliedEntry{}, err
		}
		if seen {
			return appliedEntry{id: e.ID, match: e.Ts, ts: e.Ts}, nil
		}
		return appliedEntry{id: e.ID, match: e.Ts, ts: e.Ts}, r.n.sm.drop(e.Prefix, r.span.Start, r.span.End, e.Ts)
	case entrySplit:
		e, err := decodeSplit(data)
		if err != nil {
			return appliedEntry{}, err
		}
		return appliedEntry{id: e.ID}, r.applySplit(e)
	case entryPrewrite:
		var e prewriteEntry
		if err := decodeJSONEntry(entryPrewrite, data, &e); err != nil {
			return appliedEntry{}, err
		}
		res := appliedEntry{id: e.ID, match: e.StartTs}
		n, ok := r.spanBytes(e.Writes)
		if !ok {
			res.out = wrongShard
			return res, nil
		}
		if seen {
			return res, nil
		}
		var err error
		res.out, err = r.n.sm.applyPrewrite(&e)
		if res.out == applied {
			r.written.Add(n)
		}
		return res, err
	case entryResolve:
		var e resolveEntry
		if err := decodeJSONEntry(entryResolve, data, &e); err != nil {
			return appliedEntry{}, err
		}
		res := appliedEntry{id: e.ID, match: e.StartTs, ts: e.CommitTs}
		if e.Forget || e.Decide {
			if !r.span.contains(e.Primary) {
				res.out = wrongShard
				return res, nil
			}
		}
		for _, k := range e.Keys {
			if !r.span.contains(k) {
				res.out = wrongShard
				return res, nil
			}
		}
		if !e.Forget {
			res.unlock = e.StartTs
		}
		if seen {
			return res, nil
		}
		var err error
		res.out, res.commitTs, err = r.n.sm.applyResolve(&e)
		return res, err
	}
	return appliedEntry{}, fmt.Errorf("%w: kind %d", errBadEntry, data[0])
}
