package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/shaledb/shaledb/kvcluster"
)

// stateMachine holds the data of every shard replica on a node: each key's
// versions at the commit timestamps of the transactions that wrote it, in
// one Badger in managed mode. Only the node's raft loop writes to it, by
// applying committed log entries in log order, so replicas that applied
// the same prefix of a shard's log hold the same versions.
//
// It is not synced: the raft log is the durable record. After a crash the
// node applies its committed log again; apply recognises a commit it has
// already applied (its versions are there at its commit timestamp) and
// skips it.
//
// Three key spaces share the Badger, told apart by a first byte: the
// data (a user key's MVCC versions), the intents of cross-shard
// transactions, and their records (intents.go). They share it so that
// what one entry writes to each lands in one store, in order: a crash
// keeps a prefix of it.
type stateMachine struct {
	db *badger.DB
	// metaTs is the Badger version of the latest intent or record write:
	// those key spaces are not versioned by transaction timestamps, and
	// a later write must be the newer.
	metaTs atomic.Uint64
	// intents counts the live intents, so reads skip looking when there
	// are none (apply loop writes, readers load).
	intents atomic.Int64
}

// Key space prefixes.
const (
	spaceData    byte = 1
	spaceIntents byte = 2
	spaceRecords byte = 3
	spaceApplied byte = 4 // per shard: the last log entry applied
)

func appliedKey(shard uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{spaceApplied}, shard)
}

// setApplied records that the effects of shard's log up to index are in
// the state machine (written after them: a crash that keeps it keeps
// them).
func (sm *stateMachine) setApplied(shard, index uint64) error {
	return sm.metaWrite(func(wtxn *badger.Txn) error {
		return wtxn.Set(appliedKey(shard), binary.BigEndian.AppendUint64(nil, index))
	})
}

// appliedOf returns the last entry of shard's log setApplied recorded.
func (sm *stateMachine) appliedOf(shard uint64) (uint64, error) {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	item, err := rtxn.Get(appliedKey(shard))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, storeErr("read applied index", err)
	}
	var index uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: applied index of %d bytes", errBadEntry, len(v))
		}
		index = binary.BigEndian.Uint64(v)
		return nil
	})
	return index, err
}

// dataKey is key's Badger key in the data space.
func dataKey(key []byte) []byte { return spaceKey(spaceData, key) }

func spaceKey(space byte, key []byte) []byte {
	b := make([]byte, 1+len(key))
	b[0] = space
	copy(b[1:], key)
	return b
}

// dataRange is [start, end) of user keys as Badger keys (a nil end: the
// end of the data space).
func dataRange(start, end []byte) ([]byte, []byte) { return spaceRange(spaceData, start, end) }

func spaceRange(space byte, start, end []byte) ([]byte, []byte) {
	if end == nil {
		return spaceKey(space, start), []byte{space + 1}
	}
	return spaceKey(space, start), spaceKey(space, end)
}

func openStateMachine(dir string, inMemory bool) (*stateMachine, error) {
	opts := badger.DefaultOptions(dir).
		WithInMemory(inMemory).
		WithSyncWrites(false).
		WithDetectConflicts(false).
		WithCompression(options.None).
		// Below the discard timestamp (gc.go) a key keeps only its newest
		// version; above it, every version.
		WithNumVersionsToKeep(1).
		WithMemTableSize(16 << 20).
		WithBlockCacheSize(16 << 20).
		WithLogger(nil)
	if inMemory {
		opts.Dir, opts.ValueDir = "", ""
	}
	db, err := badger.OpenManaged(opts)
	if err != nil {
		return nil, fmt.Errorf("raft: open state machine %q: %w", dir, err)
	}
	sm := &stateMachine{db: db}
	if err := sm.loadMeta(); err != nil {
		db.Close()
		return nil, err
	}
	return sm, nil
}

func (sm *stateMachine) close() error { return sm.db.Close() }

// outcome is the result of applying one commit entry.
type outcome int

const (
	applied    outcome = iota // the writes landed (now or in an earlier life)
	conflict                  // a key was written after the snapshot: nothing landed
	wrongShard                // a key lies outside the shard's span: nothing landed
)

// apply applies a commit entry: it conflicts if any key it writes has a
// version newer than its snapshot (or, for a key it locked, than the lock
// read), or an intent of a cross-shard transaction that began before its
// commit timestamp (intents.go), and otherwise writes every key at its
// commit timestamp.
//
// A big entry is written in several Badger transactions, and the state
// machine is not synced, so a crash can leave an entry partly applied;
// the log is then applied again from the start. An entry is recognised as
// applied before by a key already at its commit timestamp (timestamps are
// unique to a transaction): then only its keys still older than that are
// written, which completes a partly applied entry and leaves a fully
// applied one (whose keys may since have newer versions) as it is.
func (sm *stateMachine) apply(e *commitEntry) (outcome, error) {
	if len(e.Writes) == 0 {
		return applied, nil
	}
	latest := make([]uint64, len(e.Writes))
	resume := false
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	for i, w := range e.Writes {
		ts, err := latestVersion(rtxn, dataKey(w.Key))
		if err != nil {
			rtxn.Discard()
			return 0, err
		}
		latest[i] = ts
		resume = resume || ts == e.CommitTs
	}
	if !resume {
		for i, ts := range latest {
			if ts > max(e.StartTs, e.Writes[i].LockTs) {
				rtxn.Discard()
				return conflict, nil
			}
		}
		// An intent of a transaction that began after this commit's
		// timestamp is no conflict: the commit lands below it (and a
		// log applied again over a newer state meets such intents).
		if sm.intents.Load() > 0 {
			for _, w := range e.Writes {
				in, err := getIntent(rtxn, w.Key)
				if err != nil {
					rtxn.Discard()
					return 0, err
				}
				if in != nil && in.StartTs < e.CommitTs {
					rtxn.Discard()
					return conflict, nil
				}
			}
		}
	}
	rtxn.Discard()
	wtxn := sm.db.NewTransactionAt(math.MaxUint64, true)
	defer func() { wtxn.Discard() }()
	for i, w := range e.Writes {
		if resume && latest[i] >= e.CommitTs {
			continue
		}
		err := setOrDelete(wtxn, w)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = wtxn.CommitAt(e.CommitTs, nil); err == nil {
				wtxn = sm.db.NewTransactionAt(math.MaxUint64, true)
				err = setOrDelete(wtxn, w)
			}
		}
		if err != nil {
			return 0, fmt.Errorf("raft: apply commit %d: %w", e.CommitTs, err)
		}
	}
	if err := wtxn.CommitAt(e.CommitTs, nil); err != nil {
		return 0, fmt.Errorf("raft: apply commit %d: %w", e.CommitTs, err)
	}
	return applied, nil
}

func setOrDelete(wtxn *badger.Txn, w mutation) error {
	if w.Delete {
		return wtxn.Delete(dataKey(w.Key))
	}
	return wtxn.Set(dataKey(w.Key), w.Value)
}

// drop removes the keys under prefix that lie in [start, end) (a nil end
// is no bound). When the prefix lies wholly in the span, Badger drops
// every version at once; otherwise each live key in the overlap gets a
// deletion at ts.
func (sm *stateMachine) drop(prefix, start, end []byte, ts uint64) error {
	pend := kvcluster.PrefixEnd(prefix)
	if err := sm.dropMeta(prefix, start, end); err != nil {
		return err
	}
	if bytes.Compare(prefix, start) >= 0 && (end == nil || (pend != nil && bytes.Compare(pend, end) <= 0)) {
		if err := sm.db.DropPrefix(dataKey(prefix)); err != nil {
			return storeErr("drop prefix", err)
		}
		return nil
	}
	lo, hi := prefix, pend
	if bytes.Compare(start, lo) > 0 {
		lo = start
	}
	if end != nil && (hi == nil || bytes.Compare(end, hi) < 0) {
		hi = end
	}
	var keys [][]byte
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	it := rtxn.NewIterator(badger.IteratorOptions{})
	blo, bhi := dataRange(lo, hi)
	for it.Seek(blo); it.Valid() && bytes.Compare(it.Item().Key(), bhi) < 0; it.Next() {
		keys = append(keys, it.Item().KeyCopy(nil)[1:])
	}
	it.Close()
	rtxn.Discard()
	writes := make([]mutation, len(keys))
	for i, k := range keys {
		writes[i] = mutation{Key: k, Delete: true}
	}
	_, err := sm.apply(&commitEntry{StartTs: math.MaxUint64 - 1, CommitTs: ts, Writes: writes})
	return err
}

// size sums the keys and values of the latest live versions in [start,
// end), as Badger estimates them (a logical size, not on-disk bytes).
func (sm *stateMachine) size(start, end []byte) (total, keys int64, err error) {
	err = sm.walk(start, end, func(_ []byte, n int64) bool {
		total += n
		keys++
		return true
	})
	return total, keys, err
}

// walk calls fn with each live key in [start, end) and the size of its
// latest version, in key order, until fn returns false.
func (sm *stateMachine) walk(start, end []byte, fn func(key []byte, n int64) bool) error {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	it := rtxn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	bstart, bend := dataRange(start, end)
	for it.Seek(bstart); it.Valid(); it.Next() {
		item := it.Item()
		if bytes.Compare(item.Key(), bend) >= 0 {
			break
		}
		k := item.Key()[1:]
		if !fn(k, int64(len(k))+item.ValueSize()) {
			break
		}
	}
	return nil
}

// latestVersion returns the timestamp of the newest version of a Badger
// key, a deletion included, or 0.
func latestVersion(rtxn *badger.Txn, key []byte) (uint64, error) {
	// A live latest version is a plain Get away; a deleted key's needs an
	// iterator that sees deletions (and a key never written, one that
	// finds nothing).
	item, err := rtxn.Get(key)
	if err == nil {
		return item.Version(), nil
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return 0, err
	}
	it := rtxn.NewKeyIterator(key, badger.IteratorOptions{AllVersions: true})
	defer it.Close()
	it.Rewind()
	if !it.Valid() {
		return 0, nil
	}
	return it.Item().Version(), nil
}

// hasVersion reports whether key has a version written at exactly ts
// (a deletion counts).
func (sm *stateMachine) hasVersion(key []byte, ts uint64) (bool, error) {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	it := rtxn.NewKeyIterator(dataKey(key), badger.IteratorOptions{AllVersions: true})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		switch v := it.Item().Version(); {
		case v == ts:
			return true, nil
		case v < ts:
			return false, nil
		}
	}
	return false, nil
}

// get reads key as of ts.
func (sm *stateMachine) get(ts uint64, key []byte) ([]byte, bool, error) {
	rtxn := sm.db.NewTransactionAt(ts, false)
	defer rtxn.Discard()
	item, err := rtxn.Get(dataKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, storeErr("get", err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, storeErr("get", err)
	}
	return v, true, nil
}

// scan reads up to limit entries of [start, end) as of ts, ascending or
// descending. A nil end is no bound.
func (sm *stateMachine) scan(ts uint64, start, end []byte, limit int, reverse bool) ([]kvcluster.KeyValue, error) {
	rtxn := sm.db.NewTransactionAt(ts, false)
	defer rtxn.Discard()
	it := rtxn.NewIterator(badger.IteratorOptions{Reverse: reverse, PrefetchValues: limit > 1, PrefetchSize: min(limit, 64)})
	defer it.Close()
	bstart, bend := dataRange(start, end)
	if reverse {
		it.Seek(bend) // the largest key <= bend
	} else {
		it.Seek(bstart)
	}
	var out []kvcluster.KeyValue
	for ; it.Valid() && len(out) < limit; it.Next() {
		item := it.Item()
		k := item.Key()
		if reverse {
			if bytes.Compare(k, bend) >= 0 {
				continue
			}
			if bytes.Compare(k, bstart) < 0 {
				break
			}
		} else if bytes.Compare(k, bend) >= 0 {
			break
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, storeErr("scan", err)
		}
		out = append(out, kvcluster.KeyValue{Key: item.KeyCopy(nil)[1:], Value: v})
	}
	return out, nil
}

func storeErr(op string, err error) error {
	if errors.Is(err, badger.ErrDBClosed) {
		err = kvcluster.ErrClosed
	}
	return fmt.Errorf("raft: state machine %s: %w", op, err)
}
