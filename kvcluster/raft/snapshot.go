package raft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dgraph-io/badger/v4"
	etcdraft "go.etcd.io/etcd/raft/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"
)

// Snapshots and log compaction (RFC 0013).
//
// Each replica compacts its log behind what it applied, keeping
// Options.LogKeep entries for followers that lag a little: every LogKeep
// applied entries it notes a checkpoint (index, membership, span) and
// compacts to the checkpoint noted the time before. The state machine is
// synced first, since a restart replays the log only from the compaction
// point on.
//
// A follower that needs entries the leader no longer holds gets raft's
// snapshot message, which carries only the metadata and the span. Before
// raft sees the message, the follower copies every version of every key
// in the span from the leader (SnapshotData requests, a page at a time)
// into its state machine and syncs it, on a goroutine of its own. The copy may be ahead of
// the snapshot's index; applying the entries after it again is harmless
// (apply recognises a commit already there). A new shard's group starts
// from a snapshot (split.go), so a replica added to it later is brought up
// the same way.

// checkpoint is a point of a replica's log it may compact to.
type checkpoint struct {
	index uint64
	conf  raftpb.ConfState
	span  span
}

// maybeCompact notes a checkpoint every LogKeep applied entries and
// compacts to the previous one (apply loop). After a membership change it
// compacts to what it applied at once: raft ignores a snapshot whose
// membership does not name the recipient, so a replica just added could
// not be brought up from an older one.
func (r *replica) maybeCompact(confChanged bool) error {
	keep := r.n.opts.LogKeep
	if keep == 0 {
		return nil
	}
	cp := r.checkpoint
	if !confChanged && cp != nil && r.applied < cp.index+keep {
		return nil
	}
	r.checkpoint = &checkpoint{index: r.applied, conf: r.conf, span: r.span}
	if confChanged {
		cp = r.checkpoint
	}
	if cp == nil {
		return nil
	}
	if err := r.n.sm.sync(); err != nil {
		return err
	}
	err := r.log.Compact(r.n.stopCtx, cp.index, cp.conf, cp.span.encode())
	if errors.Is(err, etcdraft.ErrCompacted) || r.n.stopCtx.Err() != nil {
		return nil // a snapshot got there first; or stopping
	}
	return err
}

// receiveSnapshot takes a snapshot message from the leader. The data is
// copied on a goroutine of its own, so that the node's other groups go on
// meanwhile; raft is handed the message once the data is in the state
// machine, durably. One copy runs at a time: a snapshot message that
// arrives during one is dropped (the leader sends it again).
func (r *replica) receiveSnapshot(m raftpb.Message) {
	r.mu.Lock()
	if r.copying {
		r.mu.Unlock()
		return
	}
	r.copying = true
	r.mu.Unlock()
	go func() {
		defer func() {
			r.mu.Lock()
			r.copying = false
			r.mu.Unlock()
		}()
		release, ok := r.n.use()
		if !ok {
			return
		}
		defer release()
		if err := r.installSnapshot(r.n.stopCtx, m.From, m.Snapshot); err != nil {
			if r.n.stopCtx.Err() == nil {
				r.n.log.Warn("snapshot not installed (the leader sends it again)", "shard", r.id, "err", err)
			}
			return
		}
		r.mu.Lock()
		err := r.rn.Step(m)
		r.mu.Unlock()
		if err == nil {
			r.n.wake()
		}
	}()
}

// installSnapshot copies the data of a snapshot from node from (or another
// replica) into the state machine, durably.
func (r *replica) installSnapshot(ctx context.Context, from uint64, snap raftpb.Snapshot) error {
	sp, err := decodeSpan(snap.Data)
	if err != nil {
		return err
	}
	r.mu.Lock()
	members := slices.Clone(r.desc.Replicas)
	r.mu.Unlock()
	sources := append([]uint64{from}, members...)
	var last error
	for _, src := range sources {
		if src == 0 || src == r.n.id {
			continue
		}
		if last = r.copyFrom(ctx, src, sp, snap.Metadata.Index); last == nil {
			break
		}
		r.n.log.Warn("snapshot copy failed; trying another replica", "shard", r.id, "from", src, "err", last)
	}
	if last != nil {
		return last
	}
	if err := r.n.sm.sync(); err != nil {
		return err
	}
	r.n.log.Info("copied a snapshot's data", "shard", r.id, "index", snap.Metadata.Index)
	return nil
}

// restored takes the span, membership and applied index of a snapshot
// raft installed (raft loop, the apply loop idle).
func (r *replica) restored(snap raftpb.Snapshot) error {
	sp, err := decodeSpan(snap.Data)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.span, r.conf = sp, snap.Metadata.ConfState
	r.applied = snap.Metadata.Index
	// The copied data holds at least the entries up to the snapshot.
	r.durableApplied = max(r.durableApplied, snap.Metadata.Index)
	r.appliedTerm = snap.Metadata.Term
	r.checkpoint = nil
	r.sizeKnown = false
	r.snapshots++
	close(r.appliedC)
	r.appliedC = make(chan struct{})
	return nil
}

// copyFrom copies sp's versions from node src, which must have applied
// index.
func (r *replica) copyFrom(ctx context.Context, src uint64, sp span, index uint64) error {
	p, err := r.n.transport.peerFor(src)
	if err != nil {
		return err
	}
	a := &SnapshotDataArgs{Shard: r.id, Index: index, Start: sp.Start, End: sp.End}
	for {
		var reply SnapshotDataReply
		if _, err := p.call(ctx, "SnapshotData", a, &reply); err != nil {
			return err
		}
		if reply.Status != StatusOK {
			return fmt.Errorf("raft: snapshot data of shard %d from node %d: status %d %s", r.id, src, reply.Status, reply.Err)
		}
		if err := r.n.sm.install(reply.Versions); err != nil {
			return err
		}
		if reply.Next == nil {
			return nil
		}
		a.Cursor = reply.Next
	}
}

// SnapshotDataArgs asks a replica that has applied Index for the versions
// of the keys in [Start, End), their intents and the records of
// transactions whose primary key is there (intents.go), a page at a time
// from Cursor (a state machine key; nil: the beginning).
type SnapshotDataArgs struct {
	Shard  uint64
	Index  uint64
	Start  []byte
	End    []byte
	Cursor []byte
}

// SnapshotDataReply is one page; Next is where the next one starts (nil:
// the span is done).
type SnapshotDataReply struct {
	Status   Status
	Err      string
	Versions []version
	Next     []byte
}

// version is one version of a state machine key (a key space's byte,
// then the key).
type version struct {
	Key     []byte
	Ts      uint64
	Value   []byte
	Deleted bool
}

// snapshotPageBytes bounds a SnapshotData page (a key's versions are
// never split over two pages).
const snapshotPageBytes = 1 << 20

func (n *Node) serveSnapshotData(a *SnapshotDataArgs) SnapshotDataReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return SnapshotDataReply{Status: StatusNoReplica}
	}
	r.mu.Lock()
	applied := r.applied
	r.mu.Unlock()
	if applied < a.Index {
		return SnapshotDataReply{Status: StatusError, Err: fmt.Sprintf("applied %d, below the snapshot's %d", applied, a.Index)}
	}
	vs, next, err := n.sm.versions(a.Start, a.End, a.Cursor, snapshotPageBytes)
	if err != nil {
		return SnapshotDataReply{Status: StatusError, Err: err.Error()}
	}
	return SnapshotDataReply{Versions: vs, Next: next}
}

// versions returns every version of the state machine keys of the span
// [start, end) from cursor on (nil: the beginning) — its intents, then the
// records of transactions whose primary key lies in it, then its data —
// until about maxBytes, whole keys at a time, and the state machine key
// to go on from (nil when none is left).
//
// The pages are read at different times, while the source applies
// entries that the copy then applies again. In this order that is
// harmless: an intent resolved between two pages is either still among
// the intents copied (and resolved again) or its data is among the data
// copied; a decision is in the record copied, or its primary's intent is
// (and it is decided again).
func (sm *stateMachine) versions(start, end, cursor []byte, maxBytes int) ([]version, []byte, error) {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	it := rtxn.NewIterator(badger.IteratorOptions{AllVersions: true})
	defer it.Close()
	dlo, dhi := dataRange(start, end)
	ilo, ihi := spaceRange(spaceIntents, start, end)
	ranges := [][2][]byte{{ilo, ihi}, {{spaceRecords}, {spaceRecords + 1}}, {dlo, dhi}}
	phase := 0 // the range the cursor is in
	if cursor != nil {
		phase = slices.IndexFunc(ranges, func(rg [2][]byte) bool { return rg[0][0] == cursor[0] })
	}
	var out []version
	size := 0
	var prev []byte
	for i, rg := range ranges {
		if i < phase {
			continue
		}
		from := rg[0]
		if i == phase && cursor != nil && bytes.Compare(cursor, from) > 0 {
			from = cursor
		}
		for it.Seek(from); it.Valid(); it.Next() {
			item := it.Item()
			k := item.Key()
			if bytes.Compare(k, rg[1]) >= 0 {
				break
			}
			if k[0] == spaceRecords && !(span{Start: start, End: end}).contains(recordPrimary(k)) {
				continue
			}
			if size >= maxBytes && !bytes.Equal(k, prev) {
				return out, bytes.Clone(k), nil
			}
			v := version{Key: item.KeyCopy(nil), Ts: item.Version(), Deleted: item.IsDeletedOrExpired()}
			if !v.Deleted {
				var err error
				if v.Value, err = item.ValueCopy(nil); err != nil {
					return nil, nil, storeErr("snapshot read", err)
				}
			}
			size += len(v.Key) + len(v.Value) + 16
			prev = v.Key
			out = append(out, v)
		}
	}
	return out, nil, nil
}

// install writes versions copied from another replica. Intents it
// brings in count as live (a key's newest version comes first): a count
// too high only costs readers a look.
func (sm *stateMachine) install(vs []version) error {
	wb := sm.db.NewManagedWriteBatch()
	var live int64
	for i, v := range vs {
		if len(v.Key) > 0 && v.Key[0] != spaceData {
			sm.raiseMetaTs(v.Ts)
			if v.Key[0] == spaceIntents && !v.Deleted && (i == 0 || !bytes.Equal(vs[i-1].Key, v.Key)) {
				live++
			}
		}
		var err error
		if v.Deleted {
			err = wb.DeleteAt(v.Key, v.Ts)
		} else {
			err = wb.SetEntryAt(badger.NewEntry(v.Key, v.Value), v.Ts)
		}
		if err != nil {
			wb.Cancel()
			return storeErr("snapshot install", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return storeErr("snapshot install", err)
	}
	sm.intents.Add(live)
	return nil
}

// sync makes everything applied so far durable.
func (sm *stateMachine) sync() error {
	if err := sm.db.Sync(); err != nil {
		return storeErr("sync", err)
	}
	return nil
}
