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
	bytes    int64                 // Badger's charge for all buffered writes
	memBytes int64                 // the part of bytes held in writes
	spill    *spill                // writes moved out of memory (spill.go)
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
	if v, found, ok, err := t.ownWrite(key); err != nil || ok {
		return v, found, err
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
func (t *txn) ownWrite(key []byte) (value []byte, found, ok bool, err error) {
	var w *write
	if t.writes != nil {
		w, ok = t.writes.Get(&write{key: key})
	}
	if !ok && t.spill != nil {
		if w, ok, err = t.spill.get(key); err != nil {
			return nil, false, false, err
		}
	}
	if !ok {
		return nil, false, false, nil
	}
	if w.deleted {
		return nil, false, true, nil
	}
	return bytes.Clone(w.value), true, true, nil
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
	defer pending.close()
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
		w := pending.peek()
		if stored == nil && w == nil {
			break
		}
		// Take whichever of the stored and pending entries comes first; a
		// pending write to the same key replaces the stored entry.
		if w != nil && (stored == nil || !before(stored, w.key)) {
			pending.next()
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
	if err := pending.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// pendingIn returns the buffered writes in [start, end) in scan order. Of
// the memory buffer it takes those up to the point past which none can be
// among the first opts.Limit results: once Limit puts are collected, later
// writes sort after every result. Spilled writes are read lazily, under
// the memory buffer's.
func (t *txn) pendingIn(start, end []byte, opts kvcluster.ScanOptions) *pendingIter {
	p := &pendingIter{reverse: opts.Reverse}
	if t.spill != nil {
		p.spilled = t.spill.iter(start, end, opts.Reverse)
	}
	if t.writes == nil || t.writes.Len() == 0 {
		return p
	}
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
		p.mem = append(p.mem, w)
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
	return p
}

// pendingIter merges the memory buffer's writes with the spilled ones; a
// write in memory is newer than a spilled write of the same key.
type pendingIter struct {
	reverse bool
	mem     []*write
	spilled *spillIter // nil without a spill
}

// order compares the heads of the spilled and memory writes in scan
// order: negative when the spilled one comes first (or memory is done),
// positive when the memory one does (or the spill is done), zero when both
// write one key. Both must not be done.
func (p *pendingIter) order() int {
	var s *write
	if p.spilled != nil {
		s = p.spilled.peek()
	}
	switch {
	case len(p.mem) == 0:
		return -1
	case s == nil:
		return 1
	}
	c := bytes.Compare(s.key, p.mem[0].key)
	if p.reverse {
		c = -c
	}
	return c
}

func (p *pendingIter) done() bool {
	return len(p.mem) == 0 && (p.spilled == nil || p.spilled.peek() == nil)
}

// peek returns the next pending write, or nil at the end.
func (p *pendingIter) peek() *write {
	switch {
	case p.done():
		return nil
	case p.order() < 0:
		return p.spilled.peek()
	default:
		return p.mem[0]
	}
}

// next moves past the write peek returned; a memory write replaces a
// spilled write of the same key, which is skipped with it.
func (p *pendingIter) next() {
	if p.done() {
		return
	}
	c := p.order()
	if c <= 0 {
		p.spilled.next()
	}
	if c >= 0 {
		p.mem = p.mem[1:]
	}
}

func (p *pendingIter) err() error {
	if p.spilled != nil {
		return p.spilled.err
	}
	return nil
}

func (p *pendingIter) close() {
	if p.spilled != nil {
		p.spilled.close()
	}
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
	// A write replacing a spilled one is counted twice: the limit is on
	// what the transaction buffers, and both are buffered until commit.
	if t.bytes+delta > t.s.opts.TxnBytesMax {
		return fmt.Errorf("%w: %d bytes of writes exceed the %d byte limit of one transaction",
			kvcluster.ErrTxnTooLarge, t.bytes+delta, t.s.opts.TxnBytesMax)
	}
	t.writes.ReplaceOrInsert(w)
	t.bytes += delta
	t.memBytes += delta
	if t.memBytes > t.s.opts.TxnMemoryBytes {
		return t.spillWrites()
	}
	return nil
}

// spillWrites moves the memory buffer into the spill, opening it first.
func (t *txn) spillWrites() error {
	if t.spill == nil {
		sp, err := t.s.openSpill()
		if err != nil {
			return err
		}
		t.spill = sp
	}
	if err := t.spill.add(t.writes); err != nil {
		return err
	}
	t.writes = btree.NewG(16, writeLess)
	t.memBytes = 0
	return nil
}

func (t *txn) Commit(ctx context.Context) error {
	if t.done {
		return kvcluster.ErrTxnDone
	}
	if t.spill == nil && (t.writes == nil || t.writes.Len() == 0) {
		t.Rollback()
		return nil
	}
	defer t.Rollback()
	req := &commitReq{
		readTs: t.readTs,
		bytes:  t.bytes,
		done:   make(chan error, 1),
	}
	if t.spill != nil {
		// The whole buffer goes through the spill; the committer reads it
		// while we wait, and Rollback removes it after.
		if t.writes.Len() > 0 {
			if err := t.spillWrites(); err != nil {
				return err
			}
		}
		req.spill = t.spill
		req.lockedTs = t.locks.lockedTs
	} else {
		req.writes = make([]*write, 0, t.writes.Len())
		t.writes.Ascend(func(w *write) bool {
			w.lockTs = t.locks.lockedTs[string(w.key)]
			req.writes = append(req.writes, w)
			return true
		})
	}
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
	if t.spill != nil {
		t.spill.close()
		t.spill = nil
	}
}
