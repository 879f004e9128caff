package raftlog

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"go.etcd.io/etcd/raft/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"
)

// writeBatch is the Badger write transaction of one Write or Persist. An
// operation that does not fit commits what came before and starts a new
// transaction, so callers check everything before the first operation.
type writeBatch struct {
	s   *Store
	txn *badger.Txn
}

func (s *Store) newBatch() *writeBatch { return &writeBatch{s: s, txn: s.db.NewTransaction(true)} }

func (b *writeBatch) do(op func(*badger.Txn) error) error {
	err := op(b.txn)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = b.txn.Commit(); err != nil {
			return err
		}
		b.txn = b.s.db.NewTransaction(true)
		err = op(b.txn)
	}
	return err
}

func (b *writeBatch) set(k, v []byte) error {
	return b.do(func(txn *badger.Txn) error { return txn.Set(k, v) })
}

func (b *writeBatch) del(k []byte) error {
	return b.do(func(txn *badger.Txn) error { return txn.Delete(k) })
}

// deleteEntries deletes group's entries in [from, to].
func (b *writeBatch) deleteEntries(group, from, to uint64) error {
	for idx := from; idx <= to; idx++ {
		if err := b.del(entryKey(group, idx)); err != nil {
			return err
		}
	}
	return nil
}

// entries writes ents into group's log, whose last entry was last,
// replacing the log from ents' first index on, and returns the new last.
func (b *writeBatch) entries(group uint64, ents []raftpb.Entry, last uint64) (uint64, error) {
	if len(ents) == 0 {
		return last, nil
	}
	for _, e := range ents {
		data, err := e.Marshal()
		if err != nil {
			return 0, err
		}
		if err := b.set(entryKey(group, e.Index), data); err != nil {
			return 0, err
		}
	}
	newLast := ents[len(ents)-1].Index
	return newLast, b.deleteEntries(group, newLast+1, last)
}

// hardState writes group's hard state, if hs is not empty.
func (b *writeBatch) hardState(group uint64, hs raftpb.HardState) error {
	if raft.IsEmptyHardState(hs) {
		return nil
	}
	data, err := hs.Marshal()
	if err != nil {
		return err
	}
	return b.set(hardStateKey(group), data)
}

// finish commits, and syncs unless every update is Unsynced.
func (b *writeBatch) finish(updates []Update) error {
	if err := b.txn.Commit(); err != nil {
		return err
	}
	if !b.s.inMemory && slices.ContainsFunc(updates, func(u Update) bool { return !u.Unsynced }) {
		if err := b.s.db.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	return nil
}

func (b *writeBatch) discard() { b.txn.Discard() }

// checkEntries checks that ents are consecutive and follow a log of
// entries (snapIndex, last].
func checkEntries(group uint64, ents []raftpb.Entry, snapIndex, last uint64) error {
	if len(ents) == 0 {
		return nil
	}
	if first := ents[0].Index; first <= snapIndex || first > last+1 {
		return fmt.Errorf("raftlog: group %d: entries from %d do not follow the log (%d..%d]", group, first, snapIndex, last)
	}
	for i, e := range ents[1:] {
		if e.Index != ents[i].Index+1 {
			return fmt.Errorf("raftlog: group %d: entries not consecutive at %d", group, e.Index)
		}
	}
	return nil
}
