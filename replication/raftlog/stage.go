package raftlog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/raft/v3"
)

// Staging lets a raft loop go on while its log writes reach the disk.
// Stage makes entries and hard states visible to the logs' readers (raft
// itself) at once, in memory; Persist writes everything staged so far in
// one transaction, synced if any staged update needs it. The caller holds
// back what must wait for the disk — a follower's acknowledgements, votes,
// applying committed entries — until the Persist that covers them
// returns.
//
// Each log keeps the staged entries not yet known to be in Badger as its
// tail. Persist drops from the tail the entries it wrote, unless a later
// Stage replaced them (a conflicting suffix): those wait for the next
// Persist.

// stagedUpdate is an update waiting for Persist.
type stagedUpdate struct {
	u   Update
	seq uint64
}

// tailStart is the index of the tail's first entry (last+1 if none).
// l.mu held.
func (l *Log) tailStart() uint64 { return l.last + 1 - uint64(len(l.tail)) }

// DurableIndex is the last entry index known to be on disk.
func (l *Log) DurableIndex() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.durableLast
}

// Stage makes updates visible to readers and queues them for Persist.
// Snapshots cannot be staged: Persist, then Write them.
func (s *Store) Stage(updates []Update) error {
	s.stageMu.Lock()
	defer s.stageMu.Unlock()
	for _, u := range updates {
		if !raft.IsEmptySnap(u.Snapshot) {
			return errors.New("raftlog: a snapshot cannot be staged")
		}
		if len(u.Entries) == 0 {
			continue
		}
		l := u.Log
		l.mu.RLock()
		last, snap := l.last, l.snap
		l.mu.RUnlock()
		if err := checkEntries(l.group, u.Entries, snap.Index, last); err != nil {
			return err
		}
	}
	s.seq++
	for _, u := range updates {
		l := u.Log
		l.mu.Lock()
		if n := len(u.Entries); n > 0 {
			first, start := u.Entries[0].Index, l.tailStart()
			if first < start {
				l.tail, l.tailSeq = l.tail[:0], l.tailSeq[:0]
			} else {
				l.tail, l.tailSeq = l.tail[:first-start], l.tailSeq[:first-start]
			}
			l.tail = append(l.tail, u.Entries...)
			l.recordTerms(u.Entries)
			for range u.Entries {
				l.tailSeq = append(l.tailSeq, s.seq)
			}
			l.last = u.Entries[n-1].Index
		}
		if !raft.IsEmptyHardState(u.HardState) {
			l.hs = u.HardState
		}
		l.mu.Unlock()
		s.staged = append(s.staged, stagedUpdate{u: u, seq: s.seq})
	}
	return nil
}

// Persist writes every staged update in one Badger transaction (more if
// they do not fit), synced unless all are Unsynced, and returns once they
// are durable.
func (s *Store) Persist(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stageMu.Lock()
	batch := s.staged
	s.staged = nil
	s.stageMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if s.afterTake != nil {
		s.afterTake()
	}
	// What each log's Badger part looks like as the batch is written.
	durable := map[*Log]uint64{}
	var seq uint64
	wb := s.newBatch()
	defer func() { wb.discard() }()
	updates := make([]Update, len(batch))
	for i, st := range batch {
		u, l := st.u, st.u.Log
		updates[i], seq = u, st.seq
		last, ok := durable[l]
		if !ok {
			l.mu.RLock()
			last = l.durableLast
			l.mu.RUnlock()
		}
		var err error
		if durable[l], err = wb.entries(l.group, u.Entries, last); err != nil {
			return fmt.Errorf("raftlog: persist: %w", err)
		}
		if err := wb.hardState(l.group, u.HardState); err != nil {
			return fmt.Errorf("raftlog: persist: %w", err)
		}
	}
	if err := wb.finish(updates); err != nil {
		return fmt.Errorf("raftlog: persist: %w", err)
	}
	for l, last := range durable {
		l.mu.Lock()
		l.durableLast = last
		// Drop the tail's front as far as it is what was just written.
		i := 0
		for start := l.tailStart(); i < len(l.tail) && start+uint64(i) <= last && l.tailSeq[i] <= seq; i++ {
		}
		l.tail, l.tailSeq = slices.Delete(l.tail, 0, i), slices.Delete(l.tailSeq, 0, i)
		l.mu.Unlock()
	}
	return nil
}
