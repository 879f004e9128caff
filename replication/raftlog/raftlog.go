// Package raftlog keeps the raft logs of a node's shard replicas in a
// Badger store of their own: each group's entries, hard state and
// snapshot metadata, with every log served to etcd-raft through the
// raft.Storage interface.
//
// Writes are batched the way raft's Ready loop wants them: Write persists
// the hard states, entries and snapshots of any number of groups in one
// synced Badger transaction, so a node pays one fsync per Ready round, not
// one per proposal. A Log's read side is served from memory bounds (first
// and last index) and Badger lookups; it is safe for concurrent use with
// Write.
//
// Key layout, per group g (8 bytes, big-endian):
//
//	"g" g "h"           hard state
//	"g" g "s"           snapshot metadata (index, term, conf state)
//	"g" g "d"           snapshot data: what the replication layer keeps
//	                    with the snapshot (the shard's span); the state
//	                    machine's data travels separately
//	"g" g "e" index(8)  entry
package raftlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"go.etcd.io/etcd/raft/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"
)

// Store holds the raft logs of one node.
type Store struct {
	db       *badger.DB
	inMemory bool
	mu       sync.Mutex // serializes Write, Persist and Compact

	stageMu sync.Mutex // guards staged and seq (stage.go)
	staged  []stagedUpdate
	seq     uint64
	// afterTake, in tests, runs in Persist once it took the staged batch.
	afterTake func()
}

// Options configure a Store.
type Options struct {
	// Dir is the Badger directory; ignored when InMemory.
	Dir string
	// InMemory keeps everything in memory (tests).
	InMemory bool
}

// Open opens (creating if needed) the raft log store in opts.Dir.
func Open(opts Options) (*Store, error) {
	// Write syncs explicitly, only when an update needs it.
	bopts := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(false).
		WithLogger(nil).
		WithNumVersionsToKeep(1)
	if opts.InMemory {
		bopts.Dir, bopts.ValueDir = "", ""
	}
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", opts.Dir, err)
	}
	return &Store{db: db, inMemory: opts.InMemory}, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

func groupPrefix(group uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'g'}, group)
}

func hardStateKey(group uint64) []byte { return append(groupPrefix(group), 'h') }
func snapshotKey(group uint64) []byte  { return append(groupPrefix(group), 's') }
func snapDataKey(group uint64) []byte  { return append(groupPrefix(group), 'd') }
func entryKey(group, index uint64) []byte {
	return binary.BigEndian.AppendUint64(append(groupPrefix(group), 'e'), index)
}

// Log is one raft group's log, a raft.Storage.
type Log struct {
	s     *Store
	group uint64

	mu sync.RWMutex
	hs raftpb.HardState
	// snap is the metadata of the latest snapshot (or compaction point):
	// entries up to snap.Index are gone; snap.Index and snap.Term stand
	// for the dummy entry before the first one.
	snap     raftpb.SnapshotMetadata
	snapData []byte
	// last is the index of the last entry (snap.Index when there is none),
	// staged entries included.
	last uint64
	// durableLast is the last entry in Badger; tail holds the staged
	// entries not yet known to be there, up to last, each with the
	// sequence number of the Stage call that made it (stage.go).
	durableLast uint64
	tail        []raftpb.Entry
	tailSeq     []uint64
	// terms are the terms of the entries from termsStart on, staged or
	// durable, up to termsWindow of the latest: raft asks for the term of
	// a recent entry with every append it sends or takes.
	terms      []uint64
	termsStart uint64
}

// termsWindow bounds Log.terms.
const termsWindow = 1024

// recordTerms notes the terms of ents, which replace the log from their
// first index on. l.mu held.
func (l *Log) recordTerms(ents []raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].Index
	if first < l.termsStart || first > l.termsStart+uint64(len(l.terms)) {
		l.terms, l.termsStart = l.terms[:0], first
	} else {
		l.terms = l.terms[:first-l.termsStart]
	}
	for _, e := range ents {
		l.terms = append(l.terms, e.Term)
	}
	if n := len(l.terms); n > termsWindow {
		drop := n - termsWindow/2
		l.terms = append(l.terms[:0], l.terms[drop:]...)
		l.termsStart += uint64(drop)
	}
}

// Log opens group's log, loading its bounds.
func (s *Store) Log(group uint64) (*Log, error) {
	l := &Log{s: s, group: group}
	err := s.db.View(func(txn *badger.Txn) error {
		if err := getProto(txn, hardStateKey(group), &l.hs); err != nil {
			return err
		}
		if err := getProto(txn, snapshotKey(group), &l.snap); err != nil {
			return err
		}
		item, err := txn.Get(snapDataKey(group))
		if err == nil {
			l.snapData, err = item.ValueCopy(nil)
		}
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		l.last = l.snap.Index
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: append(groupPrefix(group), 'e')})
		defer it.Close()
		it.Seek(entryKey(group, ^uint64(0)))
		if it.Valid() {
			k := it.Item().Key()
			l.last = binary.BigEndian.Uint64(k[len(k)-8:])
		}
		l.durableLast = l.last
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("raftlog: load group %d: %w", group, err)
	}
	return l, nil
}

type marshaler interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

func getProto(txn *badger.Txn, key []byte, m marshaler) error {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(m.Unmarshal)
}

// Update is what one group's Ready asks to persist.
type Update struct {
	Log       *Log
	HardState raftpb.HardState // empty: unchanged
	Entries   []raftpb.Entry   // appended, replacing any from Entries[0].Index on
	Snapshot  raftpb.Snapshot  // empty: none
	// Unsynced says the update need not be on disk when Write returns:
	// raft.MustSync said so (only the commit index moved). A crash may
	// lose it; the next synced Write persists it.
	Unsynced bool
}

// Write persists every update in one transaction (more if they do not
// fit in one), synced before Write returns unless every update is
// Unsynced. Entries replace
// the log from their first index on, as raft requires after a conflict.
// A snapshot replaces the whole log up to its index.
func (s *Store) Write(ctx context.Context, updates []Update) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stageMu.Lock()
	pending := len(s.staged)
	s.stageMu.Unlock()
	if pending > 0 {
		return errors.New("raftlog: Write with staged updates not yet persisted")
	}
	// New bounds, applied to the logs once everything is durable.
	type bounds struct {
		hs       *raftpb.HardState
		snap     *raftpb.SnapshotMetadata
		snapData []byte
		last     uint64
	}
	next := make([]bounds, len(updates))
	// Check every update before writing any: a transaction too big for
	// one Badger commit is split, so nothing may fail after the first.
	for _, u := range updates {
		l := u.Log
		l.mu.RLock()
		last, snap := l.last, l.snap
		l.mu.RUnlock()
		if !raft.IsEmptySnap(u.Snapshot) {
			if u.Snapshot.Metadata.Index <= snap.Index {
				return fmt.Errorf("raftlog: group %d: %w", l.group, raft.ErrSnapOutOfDate)
			}
			snap, last = u.Snapshot.Metadata, u.Snapshot.Metadata.Index
		}
		if err := checkEntries(l.group, u.Entries, snap.Index, last); err != nil {
			return err
		}
	}
	wb := s.newBatch()
	defer func() { wb.discard() }()
	for i, u := range updates {
		l := u.Log
		l.mu.RLock()
		last, snap := l.last, l.snap
		l.mu.RUnlock()
		b := bounds{last: last}
		if !raft.IsEmptySnap(u.Snapshot) {
			m := u.Snapshot.Metadata
			data, err := m.Marshal()
			if err != nil {
				return err
			}
			if err := wb.set(snapshotKey(l.group), data); err != nil {
				return err
			}
			if err := wb.set(snapDataKey(l.group), u.Snapshot.Data); err != nil {
				return err
			}
			// The snapshot replaces the log: entries at or below its
			// index go, and so do later ones (they may conflict).
			if err := wb.deleteEntries(l.group, snap.Index+1, last); err != nil {
				return err
			}
			b.snap, b.snapData, b.last = &m, u.Snapshot.Data, m.Index
		}
		var err error
		if b.last, err = wb.entries(l.group, u.Entries, b.last); err != nil {
			return err
		}
		if err := wb.hardState(l.group, u.HardState); err != nil {
			return err
		}
		if !raft.IsEmptyHardState(u.HardState) {
			hs := u.HardState
			b.hs = &hs
		}
		next[i] = b
	}
	if err := wb.finish(updates); err != nil {
		return fmt.Errorf("raftlog: write: %w", err)
	}
	for i, u := range updates {
		l, b := u.Log, next[i]
		l.mu.Lock()
		if b.hs != nil {
			l.hs = *b.hs
		}
		if b.snap != nil {
			l.snap, l.snapData = *b.snap, b.snapData
			l.terms = l.terms[:0] // the snapshot replaced the log
		}
		l.recordTerms(u.Entries)
		l.last, l.durableLast = b.last, b.last
		l.tail, l.tailSeq = nil, nil
		l.mu.Unlock()
	}
	return nil
}

// Init starts an empty log from a snapshot and a hard state (a raft group
// that begins from existing state rather than from nothing), synced. Other
// groups may have staged updates meanwhile: Init touches only l.
func (s *Store) Init(ctx context.Context, l *Log, snap raftpb.Snapshot, hs raftpb.HardState) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l.mu.RLock()
	empty := l.last == 0 && l.snap.Index == 0
	l.mu.RUnlock()
	if !empty {
		return fmt.Errorf("raftlog: group %d: Init of a log that is not empty", l.group)
	}
	meta, err := snap.Metadata.Marshal()
	if err != nil {
		return err
	}
	hsb, err := hs.Marshal()
	if err != nil {
		return err
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		for _, kv := range [][2][]byte{{snapshotKey(l.group), meta}, {snapDataKey(l.group), snap.Data}, {hardStateKey(l.group), hsb}} {
			if err := txn.Set(kv[0], kv[1]); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && !s.inMemory {
		err = s.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("raftlog: init group %d: %w", l.group, err)
	}
	l.mu.Lock()
	l.snap, l.snapData, l.hs = snap.Metadata, snap.Data, hs
	l.last, l.durableLast = snap.Metadata.Index, snap.Metadata.Index
	l.mu.Unlock()
	return nil
}

// Compact drops the entries up to and including index, which must be
// applied (raft.ErrCompacted if already gone, raft.ErrUnavailable past
// the last entry). The dropped entries' place is kept by a snapshot
// metadata with index's term and conf, so Term(index) still answers, and
// data, which Snapshot returns with it: what the caller needs to resume
// from index.
func (l *Log) Compact(ctx context.Context, index uint64, conf raftpb.ConfState, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.mu.RLock()
	snap, last := l.snap, l.durableLast
	l.mu.RUnlock()
	switch {
	case index <= snap.Index:
		return raft.ErrCompacted
	case index > last:
		return raft.ErrUnavailable // past the log, or not persisted yet
	}
	term, err := l.Term(index)
	if err != nil {
		return err
	}
	m := raftpb.SnapshotMetadata{Index: index, Term: term, ConfState: conf}
	snapData := data
	// The bounds move first: a reader must never find an entry gone while
	// the bounds still hold it, and then a snapshot older than the gap.
	l.mu.Lock()
	l.snap, l.snapData = m, snapData
	l.mu.Unlock()
	err = l.s.db.Update(func(txn *badger.Txn) error {
		data, err := m.Marshal()
		if err != nil {
			return err
		}
		if err := txn.Set(snapshotKey(l.group), data); err != nil {
			return err
		}
		if err := txn.Set(snapDataKey(l.group), snapData); err != nil {
			return err
		}
		for idx := snap.Index + 1; idx <= index; idx++ {
			if err := txn.Delete(entryKey(l.group, idx)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && !l.s.inMemory {
		err = l.s.db.Sync()
	}
	if err != nil {
		// In memory the log is compacted; on disk, after a restart, it
		// is not: either serves raft correctly.
		return fmt.Errorf("raftlog: compact group %d to %d: %w", l.group, index, err)
	}
	return nil
}

// InitialState returns the saved hard state and the conf state of the
// latest snapshot.
func (l *Log) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.hs, l.snap.ConfState, nil
}

// FirstIndex is the index of the first entry still held.
func (l *Log) FirstIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.snap.Index + 1, nil
}

// LastIndex is the index of the last entry.
func (l *Log) LastIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last, nil
}

// Term returns the term of entry i: ErrCompacted below the first entry's
// predecessor, ErrUnavailable past the last.
func (l *Log) Term(i uint64) (uint64, error) {
	l.mu.RLock()
	snap, last := l.snap, l.last
	if start := l.tailStart(); i >= start && i <= last && i > snap.Index {
		t := l.tail[i-start].Term
		l.mu.RUnlock()
		return t, nil
	}
	switch {
	case i < snap.Index:
		l.mu.RUnlock()
		return 0, raft.ErrCompacted
	case i == snap.Index:
		l.mu.RUnlock()
		return snap.Term, nil
	case i > last:
		l.mu.RUnlock()
		return 0, raft.ErrUnavailable
	case i >= l.termsStart && i-l.termsStart < uint64(len(l.terms)):
		t := l.terms[i-l.termsStart]
		l.mu.RUnlock()
		return t, nil
	}
	l.mu.RUnlock()
	var e raftpb.Entry
	err := l.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(entryKey(l.group, i))
		if err != nil {
			return err
		}
		return item.Value(e.Unmarshal)
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, raft.ErrCompacted // compacted since the bounds were read
	}
	if err != nil {
		return 0, fmt.Errorf("raftlog: term %d of group %d: %w", i, l.group, err)
	}
	return e.Term, nil
}

// Entries returns the entries in [lo, hi), at least one and then no more
// than maxSize bytes in total.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]raftpb.Entry, error) {
	l.mu.RLock()
	snap, last := l.snap, l.last
	start := l.tailStart()
	var staged []raftpb.Entry // the part of [lo, hi) in the tail
	if hi > start && lo <= last {
		// Copied under the lock: Stage reuses the tail's array.
		staged = slices.Clone(l.tail[max(lo, start)-start : min(hi, last+1)-start])
	}
	l.mu.RUnlock()
	switch {
	case lo <= snap.Index:
		return nil, raft.ErrCompacted
	case hi > last+1:
		return nil, fmt.Errorf("raftlog: entries [%d, %d) of group %d past the last index %d", lo, hi, l.group, last)
	case lo >= hi:
		return nil, nil
	}
	if lo >= start {
		return limitSize(staged, maxSize), nil
	}
	// The rest comes from Badger, below the tail.
	out, err := l.durableEntries(lo, min(hi, start), maxSize)
	if err != nil || len(staged) == 0 || len(out) < int(min(hi, start)-lo) {
		return out, err
	}
	size := uint64(0)
	for _, e := range out {
		size += uint64(e.Size())
	}
	for _, e := range staged {
		if size += uint64(e.Size()); size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// limitSize keeps the first entry and then entries up to maxSize bytes.
func limitSize(ents []raftpb.Entry, maxSize uint64) []raftpb.Entry {
	size := uint64(0)
	for i, e := range ents {
		if size += uint64(e.Size()); i > 0 && size > maxSize {
			return ents[:i]
		}
	}
	return ents
}

// durableEntries reads [lo, hi) from Badger, as Entries does.
func (l *Log) durableEntries(lo, hi, maxSize uint64) ([]raftpb.Entry, error) {
	var out []raftpb.Entry
	var size uint64
	limited := false
	err := l.s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: append(groupPrefix(l.group), 'e'), PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		want := lo
		for it.Seek(entryKey(l.group, lo)); it.Valid() && want < hi; it.Next() {
			var e raftpb.Entry
			if err := it.Item().Value(e.Unmarshal); err != nil {
				return err
			}
			if e.Index != want {
				return raft.ErrCompacted // the log moved under us
			}
			size += uint64(e.Size())
			if len(out) > 0 && size > maxSize {
				limited = true
				break
			}
			out = append(out, e)
			want++
		}
		if len(out) == 0 || !limited && want < hi {
			return raft.ErrCompacted // the log moved under us
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Snapshot returns the latest snapshot's metadata and the data stored
// with it. The state machine's data travels separately (the replication
// layer streams it).
func (l *Log) Snapshot() (raftpb.Snapshot, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return raftpb.Snapshot{Metadata: l.snap, Data: l.snapData}, nil
}

var _ raft.Storage = (*Log)(nil)
