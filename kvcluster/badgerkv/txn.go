package badgerkv

import (
	"bytes"
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/btree"

	"github.com/shaledb/shaledb/kvcluster"
)

// write is one buffered write of a transaction.
type write struct {
	key     []byte
	value   []byte
	deleted bool
	// lockTs, when set, replaces the snapshot as the point after which a
	// commit to key conflicts (the key was locked then; locks.go).
	lockTs uint64
}

func writeLess(a, b *write) bool { return bytes.Compare(a.key, b.key) < 0 }

// txn implements kvcluster.Txn. Writes are buffered in an ordered tree and
// handed to the committer at Commit; reads overlay them on a Badger snapshot.
type txn struct {
	s        *Store
	readTs   uint64
	readOnly bool
	snap     *badger.Txn
	writes   *btree.BTreeG[*write] // nil until the first write
	bytes    int64                 // Badger's charge for the buffered writes
	done     bool
	locks    lockState
}

// enter checks that the transaction and the store are usable and holds the
// store open until the returned function is called.
func (t *txn) enter() (func(), error) {
	if t.done {
		return nil, kvcluster.ErrTxnDone
	}
	t.s.closeMu.RLock()
	if t.s.closed {
		t.s.closeMu.RUnlock()
		return nil, kvcluster.ErrClosed
	}
	return t.s.closeMu.RUnlock, nil
}

func (t *txn) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := kvcluster.CheckKey(key); err != nil {
		return nil, false, err
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	exit, err := t.enter()
	if err != nil {
		return nil, false, err
	}
	defer exit()
	if v, found, ok := t.ownWrite(key); ok {
		return v, found, nil
	}
	item, err := t.snap.Get(key)
	if err == badger.ErrKeyNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("badgerkv: get: %w", errClosedOrNil(err))
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("badgerkv: get value: %w", errClosedOrNil(err))
	}
	return v, true, nil
}

// ownWrite returns the transaction's buffered write of key: ok is false
// when it wrote none; found is false when it deleted the key.
func (t *txn) ownWrite(key []byte) (value []byte, found, ok bool) {
	if t.writes == nil {
		return nil, false, false
	}
	w, ok := t.writes.Get(&write{key: key})
	if !ok {
		return nil, false, false
	}
	if w.deleted {
		return nil, false, true
	}
	return bytes.Clone(w.value), true, true
}

func (t *txn) Scan(ctx context.Context, start, end []byte, opts kvcluster.ScanOptions) ([]kvcluster.KeyValue, error) {
	if err := kvcluster.CheckScan(start, end, opts); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	exit, err := t.enter()
	if err != nil {
		return nil, err
	}
	defer exit()
	pending := t.pendingIn(start, end, opts)
	it := t.snap.NewIterator(badger.IteratorOptions{Reverse: opts.Reverse})
	defer it.Close()
	if opts.Reverse {
		if end == nil {
			it.Rewind()
		} else {
			it.Seek(end) // the largest key <= end
		}
	} else {
		it.Seek(start)
	}
	out := make([]kvcluster.KeyValue, 0, min(opts.Limit, 64))
	// before reports whether key a comes before key b in scan order.
	before := func(a, b []byte) bool {
		if opts.Reverse {
			return bytes.Compare(a, b) > 0
		}
		return bytes.Compare(a, b) < 0
	}
	for len(out) < opts.Limit {
		var stored []byte
		for it.Valid() {
			k := it.Item().Key()
			if opts.Reverse && end != nil && bytes.Compare(k, end) >= 0 {
				it.Next()
				continue
			}
			if (!opts.Reverse && end != nil && bytes.Compare(k, end) >= 0) ||
				(opts.Reverse && bytes.Compare(k, start) < 0) {
				break
			}
			stored = k
			break
		}
		if stored == nil && len(pending) == 0 {
			break
		}
		// Take whichever of the stored and pending entries comes first; a
		// pending write to the same key replaces the stored entry.
		if len(pending) > 0 && (stored == nil || !before(stored, pending[0].key)) {
			w := pending[0]
			pending = pending[1:]
			if stored != nil && bytes.Equal(stored, w.key) {
				it.Next()
			}
			if !w.deleted {
				out = append(out, kvcluster.KeyValue{Key: bytes.Clone(w.key), Value: bytes.Clone(w.value)})
			}
			continue
		}
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return nil, fmt.Errorf("badgerkv: scan value: %w", errClosedOrNil(err))
		}
		out = append(out, kvcluster.KeyValue{Key: item.KeyCopy(nil), Value: v})
		it.Next()
	}
	return out, nil
}

// pendingIn returns the buffered writes in [start, end) in scan order, up to
// the point past which none can be among the first opts.Limit results: once
// Limit puts are collected, later writes sort after every result.
func (t *txn) pendingIn(start, end []byte, opts kvcluster.ScanOptions) []*write {
	if t.writes == nil || t.writes.Len() == 0 {
		return nil
	}
	var out []*write
	puts := 0
	visit := func(w *write) bool {
		if !opts.Reverse && end != nil && bytes.Compare(w.key, end) >= 0 {
			return false
		}
		if opts.Reverse && bytes.Compare(w.key, start) < 0 {
			return false
		}
		if opts.Reverse && end != nil && bytes.Compare(w.key, end) >= 0 {
			return true
		}
		out = append(out, w)
		if !w.deleted {
			puts++
		}
		return puts < opts.Limit
	}
	if opts.Reverse {
		if end == nil {
			t.writes.Descend(visit)
		} else {
			t.writes.DescendLessOrEqual(&write{key: end}, visit)
		}
	} else {
		t.writes.AscendGreaterOrEqual(&write{key: start}, visit)
	}
	return out
}

func (t *txn) Put(ctx context.Context, key, value []byte) error {
	if err := kvcluster.CheckValue(value); err != nil {
		return err
	}
	return t.buffer(ctx, &write{key: bytes.Clone(key), value: bytes.Clone(value)})
}

func (t *txn) Delete(ctx context.Context, key []byte) error {
	return t.buffer(ctx, &write{key: bytes.Clone(key), deleted: true})
}

func (t *txn) buffer(ctx context.Context, w *write) error {
	if err := kvcluster.CheckKey(w.key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if t.done {
		return kvcluster.ErrTxnDone
	}
	if t.readOnly {
		return kvcluster.ErrReadOnly
	}
	if t.writes == nil {
		t.writes = btree.NewG(16, writeLess)
	}
	size := entryBytes(w.key, w.value)
	old, replaced := t.writes.Get(w)
	delta := size
	if replaced {
		delta -= entryBytes(old.key, old.value)
	}
	count := int64(t.writes.Len())
	if !replaced {
		count++
	}
	if t.bytes+delta > t.s.opts.TxnBytesMax {
		return fmt.Errorf("%w: %d bytes of writes exceed the %d byte limit of one transaction",
			kvcluster.ErrTxnTooLarge, t.bytes+delta, t.s.opts.TxnBytesMax)
	}
	t.writes.ReplaceOrInsert(w)
	t.bytes += delta
	return nil
}

func (t *txn) Commit(ctx context.Context) error {
	if t.done {
		return kvcluster.ErrTxnDone
	}
	if t.writes == nil || t.writes.Len() == 0 {
		t.Rollback()
		return nil
	}
	defer t.Rollback()
	req := &commitReq{
		readTs: t.readTs,
		writes: make([]*write, 0, t.writes.Len()),
		bytes:  t.bytes,
		done:   make(chan error, 1),
	}
	t.writes.Ascend(func(w *write) bool {
		w.lockTs = t.locks.lockedTs[string(w.key)]
		req.writes = append(req.writes, w)
		return true
	})
	// Hold the store open from hand-over to answer: Close waits for it.
	t.s.closeMu.RLock()
	defer t.s.closeMu.RUnlock()
	if t.s.closed {
		return kvcluster.ErrClosed
	}
	select {
	case t.s.queue <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqPending, reqCancelled) {
			return ctx.Err()
		}
		// The committer has it: its answer is the truth.
		return <-req.done
	}
}

func (t *txn) Rollback() {
	if t.done {
		return
	}
	t.done = true
	t.snap.Discard()
	t.s.endTxn(t.readTs)
	t.s.locks.releaseAll(t)
	t.writes = nil
}
