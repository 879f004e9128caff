package badgerkv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/google/btree"
)

// Spilling large transactions
//
// A transaction buffers its writes in memory until commit. Past
// Options.TxnMemoryBytes, the buffer is moved to a spill: a private,
// unsynced Badger database in a temporary directory under SpillDir, which
// keeps the writes ordered and searchable on disk. The transaction then
// buffers in memory again; its own-write lookups and scans see the memory
// buffer first, then the spill, then the snapshot. At commit, the memory
// buffer joins the spill and the committer streams the spill into the
// store as a large commit (large.go). The spill is removed when the
// transaction ends; Open removes spills a crash left behind.
//
// The spill is only ever read and written by the transaction's goroutine,
// and by the committer while that goroutine waits in Commit.

const spillDirName = "txn-spill"

// Spill value encoding: one tag byte, then the value of a put.
const (
	spillDeleted byte = 0
	spillPut     byte = 1
)

type spill struct {
	dir string
	db  *badger.DB
	// entries counts the writes added, rewrites of one key included.
	entries int64
}

// spillRoot is where spills live: SpillDir, or a directory inside the
// store's, or the system temporary directory for in-memory stores.
func (o *Options) spillRoot() string {
	switch {
	case o.SpillDir != "":
		return o.SpillDir
	case o.Dir != "":
		return filepath.Join(o.Dir, spillDirName)
	default:
		return os.TempDir()
	}
}

// removeStaleSpills deletes the spills of transactions a crash ended. Only
// the store's own spill directory is cleaned: SpillDir and the temporary
// directory may be shared with other stores.
func (o *Options) removeStaleSpills() error {
	if o.SpillDir != "" || o.Dir == "" {
		return nil
	}
	matches, err := filepath.Glob(filepath.Join(o.spillRoot(), "shaledb-spill-*"))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) openSpill() (*spill, error) {
	root := s.opts.spillRoot()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("badgerkv: spill: %w", err)
	}
	dir, err := os.MkdirTemp(root, "shaledb-spill-*")
	if err != nil {
		return nil, fmt.Errorf("badgerkv: spill: %w", err)
	}
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithDetectConflicts(false).
		WithMemTableSize(spillMemTableBytes).
		WithNumMemtables(2).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithCompression(options.None).
		WithValueThreshold(valueThresholdBytes).
		WithNumVersionsToKeep(1).
		WithNumCompactors(2).
		WithLogger(nil)
	db, err := badger.Open(opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("badgerkv: open spill: %w", err)
	}
	return &spill{dir: dir, db: db}, nil
}

// spillMemTableBytes sizes the spill's memtables: two of them are what a
// spilling transaction holds in memory besides its own buffer.
const spillMemTableBytes = 16 << 20

// add moves a memory buffer into the spill, newer than what it holds.
func (sp *spill) add(writes *btree.BTreeG[*write]) error {
	wb := sp.db.NewWriteBatch()
	defer wb.Cancel()
	var err error
	writes.Ascend(func(w *write) bool {
		v := make([]byte, 1+len(w.value))
		if w.deleted {
			v[0] = spillDeleted
		} else {
			v[0] = spillPut
			copy(v[1:], w.value)
		}
		err = wb.Set(bytes.Clone(w.key), v)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("badgerkv: spill: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("badgerkv: spill: %w", err)
	}
	sp.entries += int64(writes.Len())
	return nil
}

func decodeSpilled(key, v []byte) (*write, error) {
	if len(v) == 0 || v[0] > spillPut {
		return nil, errors.New("badgerkv: corrupt spill entry")
	}
	if v[0] == spillDeleted {
		return &write{key: key, deleted: true}, nil
	}
	return &write{key: key, value: v[1:]}, nil
}

// get returns the spilled write of key, if any.
func (sp *spill) get(key []byte) (*write, bool, error) {
	var w *write
	err := sp.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		w, err = decodeSpilled(bytes.Clone(key), v)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("badgerkv: spill: %w", err)
	}
	return w, true, nil
}

// spillIter walks the spilled writes of [start, end) in scan order.
type spillIter struct {
	txn        *badger.Txn
	it         *badger.Iterator
	start, end []byte
	reverse    bool
	cur        *write
	err        error
}

func (sp *spill) iter(start, end []byte, reverse bool) *spillIter {
	txn := sp.db.NewTransaction(false)
	si := &spillIter{
		txn:     txn,
		it:      txn.NewIterator(badger.IteratorOptions{Reverse: reverse, PrefetchValues: false}),
		start:   start,
		end:     end,
		reverse: reverse,
	}
	switch {
	case !reverse:
		si.it.Seek(start)
	case end == nil:
		si.it.Rewind()
	default:
		si.it.Seek(end)
	}
	si.load()
	return si
}

// load sets cur to the entry under the iterator, skipping what lies
// outside the range.
func (si *spillIter) load() {
	si.cur = nil
	for si.it.Valid() {
		k := si.it.Item().Key()
		if si.reverse && si.end != nil && bytes.Compare(k, si.end) >= 0 {
			si.it.Next()
			continue
		}
		if (!si.reverse && si.end != nil && bytes.Compare(k, si.end) >= 0) ||
			(si.reverse && bytes.Compare(k, si.start) < 0) {
			return
		}
		v, err := si.it.Item().ValueCopy(nil)
		if err == nil {
			si.cur, err = decodeSpilled(si.it.Item().KeyCopy(nil), v)
		}
		if err != nil {
			si.err = fmt.Errorf("badgerkv: spill: %w", err)
			si.cur = nil
		}
		return
	}
}

func (si *spillIter) peek() *write { return si.cur }

func (si *spillIter) next() {
	si.it.Next()
	si.load()
}

func (si *spillIter) close() {
	si.it.Close()
	si.txn.Discard()
}

// each calls fn for every spilled write in key order.
func (sp *spill) each(fn func(*write) error) error {
	si := sp.iter(nil, nil, false)
	defer si.close()
	for ; si.peek() != nil; si.next() {
		if err := fn(si.peek()); err != nil {
			return err
		}
	}
	return si.err
}

func (sp *spill) close() {
	sp.db.Close()
	os.RemoveAll(sp.dir)
}
