package raft

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
)

// Cross-shard transactions (RFC 0014) commit in two phases over the
// shards' logs, Percolator-style:
//
//  1. Prewrite. Every shard written gets a prewrite entry. Applying it
//     checks each key as a commit would (no version after the snapshot or
//     lock read, no other transaction's intent) and stores an intent per
//     key: the value, the transaction's start timestamp, and its primary
//     key (the first key written). The primary's intent also lists the
//     keys on other shards.
//  2. Decide. With a commit timestamp C from the oracle, the primary's
//     shard applies a resolve entry that commits the intents there at C
//     and writes the transaction's record under the primary: committed at
//     C. That entry is the commit point. It respects the primary key's
//     read floor like any commit.
//  3. The other shards' intents are committed at C by resolve entries of
//     their own, after the commit returned.
//
// A reader at S that meets an intent of a transaction that began before S
// asks the primary's leader (checkTxn). That read raises the primary
// key's floor to S, so a commit not yet decided will be decided above S
// and the reader may read below the intent; a decided one is resolved on
// the reader's shard first. An intent whose coordinator is gone (its node
// is dead, or no longer has the transaction open) is rolled back from the
// primary: a record "rolled back" there stops a late prewrite or decision.
// Every leader also sweeps intents and records older than a few seconds.
//
// Intents and records live in the state machine's Badger beside the data,
// in key spaces of their own, written by the apply loop in log order.

// intent is a prewritten write of a cross-shard transaction.
type intent struct {
	StartTs uint64
	Primary []byte
	Node    uint64 // the node the transaction runs on
	Value   []byte `json:",omitempty"`
	Delete  bool   `json:",omitempty"`
	// Secondaries are, on the primary's intent, the transaction's keys on
	// other shards.
	Secondaries [][]byte `json:",omitempty"`
}

// txnRecord is the decision of a cross-shard transaction, kept under its
// primary key until every other intent of it is resolved.
type txnRecord struct {
	Committed   bool
	CommitTs    uint64   `json:",omitempty"`
	Secondaries [][]byte `json:",omitempty"`
}

// recordKey is the state machine key of the record of the transaction
// that began at startTs with primary key primary.
func recordKey(primary []byte, startTs uint64) []byte {
	b := make([]byte, 0, 1+len(primary)+8)
	b = append(b, spaceRecords)
	b = append(b, primary...)
	return binary.BigEndian.AppendUint64(b, startTs)
}

// recordPrimary and recordStart take a record key apart.
func recordPrimary(k []byte) []byte { return k[1 : len(k)-8] }
func recordStart(k []byte) uint64   { return binary.BigEndian.Uint64(k[len(k)-8:]) }

// loadMeta finds the newest version of the intent, record and applied
// spaces and counts the live intents (at open). It reads only each key's
// newest version (deletions included), skipping the older ones: a key
// rewritten with every entry (the applied index) has many.
func (sm *stateMachine) loadMeta() error {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	it := rtxn.NewIterator(badger.IteratorOptions{AllVersions: true})
	defer it.Close()
	var top uint64
	var live int64
	for it.Seek([]byte{spaceIntents}); it.Valid(); {
		item := it.Item()
		top = max(top, item.Version())
		if item.Key()[0] == spaceIntents && !item.IsDeletedOrExpired() {
			live++
		}
		it.Seek(append(item.KeyCopy(nil), 0)) // the next key
	}
	sm.raiseMetaTs(top)
	sm.intents.Store(live)
	return nil
}

// raiseMetaTs makes later meta writes newer than version v.
func (sm *stateMachine) raiseMetaTs(v uint64) {
	for {
		cur := sm.metaTs.Load()
		if cur >= v || sm.metaTs.CompareAndSwap(cur, v) {
			return
		}
	}
}

// getIntent returns key's intent, or nil.
func getIntent(rtxn *badger.Txn, key []byte) (*intent, error) {
	item, err := rtxn.Get(spaceKey(spaceIntents, key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr("read intent", err)
	}
	in := new(intent)
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, in) }); err != nil {
		return nil, storeErr("read intent", err)
	}
	return in, nil
}

// getRecord returns a transaction's record, or nil.
func getRecord(rtxn *badger.Txn, primary []byte, startTs uint64) (*txnRecord, error) {
	item, err := rtxn.Get(recordKey(primary, startTs))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, storeErr("read record", err)
	}
	rec := new(txnRecord)
	if err := item.Value(func(v []byte) error { return json.Unmarshal(v, rec) }); err != nil {
		return nil, storeErr("read record", err)
	}
	return rec, nil
}

// keyedIntent is an intent and its key.
type keyedIntent struct {
	Key []byte
	*intent
}

// intentsIn returns the intents of the keys rk covers.
func (sm *stateMachine) intentsIn(rk readKeys) ([]keyedIntent, error) {
	if sm.intents.Load() == 0 {
		return nil, nil
	}
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	if rk.point {
		in, err := getIntent(rtxn, rk.key)
		if in == nil || err != nil {
			return nil, err
		}
		return []keyedIntent{{Key: rk.key, intent: in}}, nil
	}
	lo, hi := []byte{spaceIntents}, []byte{spaceIntents + 1}
	if !rk.all {
		lo, hi = spaceRange(spaceIntents, rk.start, rk.end)
	}
	it := rtxn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	var out []keyedIntent
	for it.Seek(lo); it.Valid() && bytes.Compare(it.Item().Key(), hi) < 0; it.Next() {
		in := new(intent)
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, in) }); err != nil {
			return nil, storeErr("read intent", err)
		}
		out = append(out, keyedIntent{Key: it.Item().KeyCopy(nil)[1:], intent: in})
	}
	return out, nil
}

// records returns the records of transactions whose primary key lies in
// sp, with their primary keys and start timestamps.
func (sm *stateMachine) records(sp span) ([]recordAt, error) {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	it := rtxn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	var out []recordAt
	for it.Seek([]byte{spaceRecords}); it.Valid() && it.Item().Key()[0] == spaceRecords; it.Next() {
		k := it.Item().Key()
		if !sp.contains(recordPrimary(k)) {
			continue
		}
		rec := new(txnRecord)
		if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, rec) }); err != nil {
			return nil, storeErr("read record", err)
		}
		out = append(out, recordAt{Primary: bytes.Clone(recordPrimary(k)), StartTs: recordStart(k), txnRecord: rec})
	}
	return out, nil
}

// recordAt is a record with its primary key and start timestamp.
type recordAt struct {
	Primary []byte
	StartTs uint64
	*txnRecord
}

// metaWrite writes to the intent and record spaces at the next meta
// version (apply loop).
func (sm *stateMachine) metaWrite(fn func(wtxn *badger.Txn) error) error {
	ts := sm.metaTs.Add(1)
	wtxn := sm.db.NewTransactionAt(math.MaxUint64, true)
	defer wtxn.Discard()
	if err := fn(wtxn); err != nil {
		return err
	}
	if err := wtxn.CommitAt(ts, nil); err != nil {
		return storeErr("write intents", err)
	}
	return nil
}

func putJSON(wtxn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return wtxn.Set(key, b)
}

// prewriteEntry is one shard's part of a cross-shard transaction's first
// phase.
type prewriteEntry struct {
	ID          uint64
	StartTs     uint64
	Primary     []byte
	Node        uint64
	Writes      []mutation
	Secondaries [][]byte // when the primary is among Writes
}

// resolveEntry commits (CommitTs > 0) or rolls back (CommitTs 0) a
// transaction's intents of Keys. With Decide, Keys include the primary
// and the entry decides the transaction: it writes its record, unless one
// is there (then the record's decision stands). Forget instead removes
// the transaction's record.
type resolveEntry struct {
	ID       uint64
	StartTs  uint64
	CommitTs uint64
	Primary  []byte
	Decide   bool
	Forget   bool
	Keys     [][]byte
}

func encodeJSONEntry(kind byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("raft: encode entry: %v", err)) // plain data: cannot fail
	}
	return append([]byte{kind}, b...)
}

func decodeJSONEntry(kind byte, b []byte, v any) error {
	if len(b) == 0 || b[0] != kind {
		return fmt.Errorf("%w: kind %d", errBadEntry, kind)
	}
	if err := json.Unmarshal(b[1:], v); err != nil {
		return fmt.Errorf("%w: %w", errBadEntry, err)
	}
	return nil
}

// applyPrewrite stores e's intents, or conflicts (nothing stored) if a key
// was written after the snapshot (or lock read), holds another
// transaction's intent, or the transaction was already decided (a record
// under the primary: rolled back by a reader, say).
func (sm *stateMachine) applyPrewrite(e *prewriteEntry) (outcome, error) {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	defer rtxn.Discard()
	have := make([]bool, len(e.Writes))
	missing := 0
	for i, w := range e.Writes {
		in, err := getIntent(rtxn, w.Key)
		if err != nil {
			return 0, err
		}
		if in != nil {
			if in.StartTs != e.StartTs {
				return conflict, nil
			}
			have[i] = true // applied before: the log is applied again
			continue
		}
		ts, err := latestVersion(rtxn, dataKey(w.Key))
		if err != nil {
			return 0, err
		}
		if ts > max(e.StartTs, w.LockTs) {
			return conflict, nil
		}
		if bytes.Equal(w.Key, e.Primary) {
			rec, err := getRecord(rtxn, e.Primary, e.StartTs)
			if err != nil {
				return 0, err
			}
			if rec != nil {
				return conflict, nil
			}
		}
		missing++
	}
	if missing == 0 {
		return applied, nil
	}
	err := sm.metaWrite(func(wtxn *badger.Txn) error {
		for i, w := range e.Writes {
			if have[i] {
				continue
			}
			in := intent{StartTs: e.StartTs, Primary: e.Primary, Node: e.Node, Value: w.Value, Delete: w.Delete}
			if bytes.Equal(w.Key, e.Primary) {
				in.Secondaries = e.Secondaries
			}
			if err := putJSON(wtxn, spaceKey(spaceIntents, w.Key), &in); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	sm.intents.Add(int64(missing))
	return applied, nil
}

// applyResolve applies a resolve entry. It returns conflict when a
// decision to commit finds the transaction rolled back, and otherwise
// applied with the transaction's commit timestamp (0: rolled back).
func (sm *stateMachine) applyResolve(e *resolveEntry) (outcome, uint64, error) {
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	if e.Forget {
		rtxn.Discard()
		return applied, 0, sm.metaWrite(func(wtxn *badger.Txn) error {
			return wtxn.Delete(recordKey(e.Primary, e.StartTs))
		})
	}
	var secondaries [][]byte
	if e.Decide {
		rec, err := getRecord(rtxn, e.Primary, e.StartTs)
		if err != nil {
			rtxn.Discard()
			return 0, 0, err
		}
		if rec != nil {
			rtxn.Discard()
			if !rec.Committed && e.CommitTs != 0 {
				return conflict, 0, nil
			}
			return applied, rec.CommitTs, nil
		}
		pin, err := getIntent(rtxn, e.Primary)
		if err != nil {
			rtxn.Discard()
			return 0, 0, err
		}
		if pin == nil || pin.StartTs != e.StartTs {
			// Never prewritten here (or long resolved without a
			// record, which a committed primary always leaves while
			// intents remain): it cannot commit.
			if e.CommitTs != 0 {
				rtxn.Discard()
				return conflict, 0, nil
			}
		} else {
			secondaries = pin.Secondaries
		}
	}
	var mine []keyedIntent
	for _, k := range e.Keys {
		in, err := getIntent(rtxn, k)
		if err != nil {
			rtxn.Discard()
			return 0, 0, err
		}
		if in != nil && in.StartTs == e.StartTs {
			mine = append(mine, keyedIntent{Key: k, intent: in})
		}
	}
	rtxn.Discard()
	if e.CommitTs != 0 && len(mine) > 0 {
		writes := make([]mutation, len(mine))
		for i, in := range mine {
			writes[i] = mutation{Key: in.Key, Value: in.Value, Delete: in.Delete}
		}
		if err := sm.writeAt(writes, e.CommitTs); err != nil {
			return 0, 0, err
		}
	}
	if len(mine) == 0 && !e.Decide {
		return applied, e.CommitTs, nil
	}
	err := sm.metaWrite(func(wtxn *badger.Txn) error {
		for _, in := range mine {
			if err := wtxn.Delete(spaceKey(spaceIntents, in.Key)); err != nil {
				return err
			}
		}
		if e.Decide {
			return putJSON(wtxn, recordKey(e.Primary, e.StartTs),
				&txnRecord{Committed: e.CommitTs != 0, CommitTs: e.CommitTs, Secondaries: secondaries})
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	sm.intents.Add(-int64(len(mine)))
	return applied, e.CommitTs, nil
}

// writeAt writes every mutation at ts, in as many Badger transactions as
// it takes.
func (sm *stateMachine) writeAt(writes []mutation, ts uint64) error {
	wtxn := sm.db.NewTransactionAt(math.MaxUint64, true)
	defer func() { wtxn.Discard() }()
	for _, w := range writes {
		err := setOrDelete(wtxn, w)
		if errors.Is(err, badger.ErrTxnTooBig) {
			if err = wtxn.CommitAt(ts, nil); err == nil {
				wtxn = sm.db.NewTransactionAt(math.MaxUint64, true)
				err = setOrDelete(wtxn, w)
			}
		}
		if err != nil {
			return fmt.Errorf("raft: write at %d: %w", ts, err)
		}
	}
	if err := wtxn.CommitAt(ts, nil); err != nil {
		return fmt.Errorf("raft: write at %d: %w", ts, err)
	}
	return nil
}

// dropMeta removes the intents of keys under prefix within [start, end),
// and the records whose primary key is there.
func (sm *stateMachine) dropMeta(prefix, start, end []byte) error {
	in := func(k []byte) bool {
		return bytes.HasPrefix(k, prefix) && (span{Start: start, End: end}).contains(k)
	}
	rtxn := sm.db.NewTransactionAt(math.MaxUint64, false)
	it := rtxn.NewIterator(badger.IteratorOptions{})
	var gone [][]byte
	removed := int64(0)
	for it.Seek([]byte{spaceIntents}); it.Valid() && it.Item().Key()[0] <= spaceRecords; it.Next() {
		k := it.Item().Key()
		if (k[0] == spaceIntents && in(k[1:])) || (k[0] == spaceRecords && in(recordPrimary(k))) {
			gone = append(gone, it.Item().KeyCopy(nil))
			if k[0] == spaceIntents {
				removed++
			}
		}
	}
	it.Close()
	rtxn.Discard()
	if len(gone) == 0 {
		return nil
	}
	err := sm.metaWrite(func(wtxn *badger.Txn) error {
		for _, k := range gone {
			if err := wtxn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		sm.intents.Add(-removed)
	}
	return err
}
