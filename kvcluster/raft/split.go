package raft

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"
)

// Splits (RFC 0013). A shard's leader watches the size of its span; past
// Options.ShardMaxBytes it asks Options.SplitKey for a key near the middle
// (the server answers with a tenant boundary) and proposes a split entry.
// Applying it, on every replica at the same point of the log, shortens
// the shard's span to [Start, Key) and starts the new shard's group for
// [Key, End) on the same nodes, over the same data: a node's shards share
// one state machine, so nothing is copied. The leader then publishes both
// descriptors in the shard map; any leader whose map entry disagrees with
// the span it applied publishes it again (repair loop), so a leader that
// dies in between leaves nothing stranded.
//
// The span a replica checks commits and reads against is the one its log
// says (replica.span), never the map's: a commit for the moved half that
// the log orders after the split is refused when applied (wrong shard,
// nothing written), on every replica alike. A read checks the span again
// after it has caught up to the leader's commit index, so a read that
// would miss the new shard's commits is refused too; the new shard's
// leader starts its read floor at a fresh timestamp, above every read the
// old shard served for the moved half.

// entrySplit is the kind of a splitEntry.
const entrySplit byte = 3

// splitEntry splits a shard at Key; Child is the new shard's id.
type splitEntry struct {
	ID    uint64
	Child uint64
	Key   []byte
}

func (e *splitEntry) encode() []byte {
	b := append(make([]byte, 0, 17+len(e.Key)), entrySplit)
	b = binary.BigEndian.AppendUint64(b, e.ID)
	b = binary.BigEndian.AppendUint64(b, e.Child)
	return append(b, e.Key...)
}

func decodeSplit(b []byte) (*splitEntry, error) {
	if len(b) < 1+16+1 || b[0] != entrySplit {
		return nil, fmt.Errorf("%w: split entry of %d bytes", errBadEntry, len(b))
	}
	return &splitEntry{ID: binary.BigEndian.Uint64(b[1:]), Child: binary.BigEndian.Uint64(b[9:]), Key: b[17:]}, nil
}

// span is a key range [Start, End); a nil End is the end of the key space.
type span struct {
	Start []byte `json:"start"`
	End   []byte `json:"end"`
}

func (s span) contains(key []byte) bool {
	return bytes.Compare(key, s.Start) >= 0 && (s.End == nil || bytes.Compare(key, s.End) < 0)
}

func (s span) equal(o span) bool {
	return bytes.Equal(s.Start, o.Start) && bytes.Equal(s.End, o.End) && (s.End == nil) == (o.End == nil)
}

// encode lays the span out for a snapshot's data (raftlog keeps it with
// the snapshot). Empty data is the whole key space: the first shard's
// span, from which every other is split.
func (s span) encode() []byte {
	b, _ := json.Marshal(s)
	return b
}

func decodeSpan(b []byte) (span, error) {
	var s span
	if len(b) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("raft: corrupt span in snapshot data %q: %w", b, err)
	}
	return s, nil
}

// Where a new shard's log starts: raft needs a term and an index to
// begin from, and a replica added later must get a snapshot (never the
// entries, which do not hold the data split off the parent), so the
// group starts from a snapshot at this index.
const childInitIndex = 5

// applySplit applies a split entry (apply loop): it shortens the span
// and starts this node's replica of the new shard.
func (r *replica) applySplit(e *splitEntry) error {
	// Only the apply loop writes span and conf here (see replica).
	if !r.span.contains(e.Key) || bytes.Equal(e.Key, r.span.Start) {
		return nil // proposed against an older span: nothing to do
	}
	child := span{Start: bytes.Clone(e.Key), End: r.span.End}
	voters := slices.Clone(r.conf.Voters)
	r.mu.Lock()
	r.span.End = child.Start
	r.sizeKnown = false
	r.written.Store(0)
	leading := r.isLeader
	parent := r.desc
	r.mu.Unlock()
	r.n.log.Info("shard split", "shard", r.id, "at", fmt.Sprintf("%q", e.Key), "new", e.Child)
	if slices.Contains(voters, r.n.id) {
		if err := r.n.startChild(e.Child, child, voters); err != nil {
			return err
		}
	}
	if leading {
		parent.Start, parent.End = r.span.Start, r.span.End
		parent.Replicas = slices.Sorted(slices.Values(append(slices.Clone(voters), r.conf.Learners...)))
		cd := shardDesc{ID: e.Child, Start: child.Start, End: child.End, Replicas: voters, Parent: r.id}
		go func() {
			ctx, cancel := context.WithTimeout(r.n.stopCtx, 5*time.Second)
			defer cancel()
			if err := r.n.shards.publish(ctx, parent, cd); err != nil {
				r.n.log.Warn("publish split (the repair loop retries)", "shard", r.id, "err", err)
			}
		}()
	}
	return nil
}

// startChild starts this node's replica of a shard split off another,
// from the split's snapshot, unless it runs already or the map says the
// node no longer holds it.
func (n *Node) startChild(id uint64, sp span, voters []uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.replicas[id] != nil {
		return nil
	}
	desc := shardDesc{ID: id, Start: sp.Start, End: sp.End, Replicas: voters}
	if d, err := n.shards.byID(id); err == nil {
		if !slices.Contains(d.Replicas, n.id) {
			return nil // moved off this node since
		}
		desc = d
	}
	log, err := n.logs.Log(id)
	if err != nil {
		return err
	}
	if snap, err := log.Snapshot(); err != nil {
		return err
	} else if last, err := log.LastIndex(); err != nil {
		return err
	} else if snap.Metadata.Index == 0 && last == 0 {
		init := raftpb.Snapshot{Data: sp.encode(), Metadata: raftpb.SnapshotMetadata{
			Index: childInitIndex, Term: childInitIndex, ConfState: raftpb.ConfState{Voters: voters}}}
		hs := raftpb.HardState{Term: childInitIndex, Commit: childInitIndex}
		if err := n.logs.Init(n.stopCtx, log, init, hs); err != nil {
			return err
		}
	}
	r, err := newReplica(n, desc, nil)
	if err != nil {
		return err
	}
	n.replicas[id] = r
	n.wake()
	return nil
}

// splitPending reports whether d is a shard split off one this node holds
// a replica of that has not applied the split yet.
func (n *Node) splitPending(d shardDesc) bool {
	if d.Parent == 0 {
		return false
	}
	n.mu.Lock()
	p, running := n.replicas[d.Parent], n.replicas[d.ID] != nil
	n.mu.Unlock()
	if p == nil || running {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// A replica that has applied nothing waits for a snapshot, which may
	// come from after the split: then the child starts empty and gets
	// one too.
	return p.applied > 0 && p.span.contains(d.Start)
}

// reconcile starts the replicas the map gives this node that it does not
// run: those whose start waited for a split that this node's replica of
// the parent then skipped, by installing a later snapshot (repair loop).
func (m *shardMap) reconcile() {
	m.mu.Lock()
	shards := slices.Clone(m.shards)
	m.mu.Unlock()
	// Not under m.mu: the node takes its own lock, then the map's.
	for _, d := range shards {
		if slices.Contains(d.Replicas, m.n.id) && m.n.replica(d.ID) == nil && !m.n.splitPending(d) {
			if err := m.n.ensureReplica(d); err != nil {
				m.n.log.Warn("start replica", "shard", d.ID, "err", err)
			}
		}
	}
}

// splitRetry is how long a leader waits for a split it proposed before it
// may propose another.
const splitRetry = 5 * time.Second

// maybeSplit is one look, by the shard's leader, at the shard's size
// (repair loop). The size is measured by a scan only when the bytes
// applied since the last scan could have taken it past the limit.
func (r *replica) maybeSplit(ctx context.Context) error {
	limit := r.n.opts.ShardMaxBytes
	if limit <= 0 || r.n.opts.SplitKey == nil {
		return nil
	}
	r.mu.Lock()
	if !r.isLeader || !r.floorSet || time.Since(r.splitProposed) < splitRetry ||
		r.sizeKnown && r.sizeAt+r.written.Load() <= limit {
		r.mu.Unlock()
		return nil
	}
	sp := r.span
	r.mu.Unlock()
	total, _, err := r.n.sm.size(sp.Start, sp.End)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.span.equal(sp) {
		r.sizeAt, r.sizeKnown = total, true
		r.written.Store(0)
	}
	r.mu.Unlock()
	if total <= limit {
		return nil
	}
	mid, err := r.n.sm.middle(sp.Start, sp.End, total)
	if err != nil || mid == nil {
		return err
	}
	key := r.n.opts.SplitKey(sp.Start, sp.End, mid)
	if key == nil || !sp.contains(key) || bytes.Equal(key, sp.Start) {
		r.n.log.Debug("shard over its size, with no split point", "shard", r.id, "bytes", total)
		return nil
	}
	return r.proposeSplit(ctx, sp, key, fmt.Sprintf("%d bytes", total))
}

// proposeSplit proposes splitting the shard, whose span is sp, at key
// (inside it, past its start). It does nothing if this replica no longer
// leads or its span changed meanwhile. why is logged.
func (r *replica) proposeSplit(ctx context.Context, sp span, key []byte, why string) error {
	child, err := r.n.shards.allocateID(ctx)
	if err != nil {
		return err
	}
	e := splitEntry{ID: r.nextID.Add(1), Child: child, Key: key}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.leaderCheckLocked(); err != nil || !r.span.equal(sp) {
		return nil
	}
	if err := r.rn.Propose(e.encode()); err != nil {
		return nil // leadership moved on
	}
	// Reads wait for it (resolve): it may move any key elsewhere.
	r.props[e.ID] = &proposal{done: make(chan proposalResult, 1), finished: make(chan struct{})}
	r.splitProposed = time.Now()
	r.n.log.Info("splitting a shard", "shard", r.id, "why", why, "at", fmt.Sprintf("%q", key), "new", child)
	r.n.wake()
	return nil
}

// syncMap publishes this leader's span in the shard map when the map
// says otherwise (a split whose publication was lost).
func (r *replica) syncMap(ctx context.Context) error {
	r.mu.Lock()
	if !r.isLeader || !r.floorSet {
		r.mu.Unlock()
		return nil
	}
	sp, desc := r.span, r.desc
	voters := slices.Clone(r.conf.Voters)
	r.mu.Unlock()
	cur, err := r.n.shards.byID(r.id)
	if err == nil {
		if (span{Start: cur.Start, End: cur.End}).equal(sp) {
			return nil
		}
		desc = cur
	} else if len(desc.Replicas) == 0 {
		desc.Replicas = voters
	}
	desc.ID, desc.Start, desc.End = r.id, sp.Start, sp.End
	return r.n.shards.publish(ctx, desc)
}

// allocateID returns a new shard id from the cluster's counter in etcd.
func (m *shardMap) allocateID(ctx context.Context) (uint64, error) {
	key := m.prefix + "next-shard"
	etcd := m.n.opts.Etcd
	for {
		resp, err := etcd.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("raft: allocate a shard id: %w", err)
		}
		next, rev := uint64(2), int64(0) // shard 1 is the bootstrap shard
		if len(resp.Kvs) > 0 {
			if next, err = strconv.ParseUint(string(resp.Kvs[0].Value), 10, 64); err != nil {
				return 0, fmt.Errorf("raft: corrupt shard id counter %q: %w", resp.Kvs[0].Value, err)
			}
			rev = resp.Kvs[0].ModRevision
		}
		txn, err := etcd.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
			Then(clientv3.OpPut(key, strconv.FormatUint(next+1, 10))).Commit()
		if err != nil {
			return 0, fmt.Errorf("raft: allocate a shard id: %w", err)
		}
		if txn.Succeeded {
			return next, nil
		}
	}
}

// middle returns the key at which the first half of the total bytes of
// [start, end), measured as size does, ends (nil if there is none).
func (sm *stateMachine) middle(start, end []byte, total int64) (mid []byte, err error) {
	var acc int64
	err = sm.walk(start, end, func(key []byte, n int64) bool {
		acc += n
		if acc*2 >= total {
			mid = bytes.Clone(key)
			return false
		}
		return true
	})
	return mid, err
}
