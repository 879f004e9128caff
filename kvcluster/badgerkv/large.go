package badgerkv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// Large commits
//
// A transaction too large for one Badger batch is committed alone, at one
// timestamp, in several batches. Badger replays each batch whole after a
// crash, but not several together, so the commit is guarded by an intent
// file in the store's directory:
//
//  1. write and fsync the intent: the timestamp and every key written;
//  2. write the batches (each synced);
//  3. remove the intent (and fsync the directory);
//  4. publish the timestamp and acknowledge.
//
// A crash before step 3 leaves the intent behind. Open then rolls the
// commit back: for every key in it, the value it had just before the
// commit's timestamp is written again (or the key deleted) at a new
// timestamp, and the intent removed. Readers never saw the timestamp (it
// was not published), so nothing anyone read is taken back.

const intentFile = "LARGE-COMMIT-INTENT"

func (s *Store) intentPath() string { return filepath.Join(s.opts.Dir, intentFile) }

// writeIntent stores ts and the keys durably. Format: magic, ts, then
// (len, key)* ending with a zero length, then a CRC32 of everything before
// it. It is written as it is read, never whole in memory.
func (s *Store) writeIntent(ts uint64, req *commitReq) error {
	tmp := s.intentPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	crc := crc32.NewIEEE()
	b := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var n [8]byte
	b.WriteString(intentMagic)
	binary.BigEndian.PutUint64(n[:], ts)
	b.Write(n[:])
	err = req.each(func(w *write) error {
		binary.BigEndian.PutUint32(n[:4], uint32(len(w.key)))
		b.Write(n[:4])
		_, err := b.Write(w.key)
		return err
	})
	if err != nil {
		return err
	}
	binary.BigEndian.PutUint32(n[:4], 0)
	b.Write(n[:4])
	if err := b.Flush(); err != nil {
		return err
	}
	binary.BigEndian.PutUint32(n[:4], crc.Sum32())
	if _, err := f.Write(n[:4]); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.intentPath()); err != nil {
		return err
	}
	return syncDir(s.opts.Dir)
}

const intentMagic = "SHL2"

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Store) removeIntent() error {
	if err := os.Remove(s.intentPath()); err != nil {
		return err
	}
	return syncDir(s.opts.Dir)
}

// readIntent checks the intent a crash left, if any, and calls fn with
// each of its keys. A torn intent (the crash came while writing it) means
// no batch was written yet, and fn is not called.
func (s *Store) readIntent(fn func(ts uint64, key []byte) error) (found bool, err error) {
	f, err := os.Open(s.intentPath())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	// Pass 1: the checksum; pass 2: the keys.
	ts, intact, err := walkIntent(f, nil)
	if err != nil || !intact {
		return true, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return true, err
	}
	_, _, err = walkIntent(f, func(k []byte) error { return fn(ts, k) })
	return true, err
}

// walkIntent reads an intent, calling fn (if set) with each key, and
// reports whether it is whole and its checksum right.
func walkIntent(f io.Reader, fn func([]byte) error) (ts uint64, intact bool, err error) {
	crc := crc32.NewIEEE()
	r := bufio.NewReaderSize(f, 1<<20)
	// read fills b and adds it to the checksum.
	read := func(b []byte) bool {
		if _, err := io.ReadFull(r, b); err != nil {
			return false
		}
		crc.Write(b)
		return true
	}
	head := make([]byte, len(intentMagic)+8)
	if !read(head) || string(head[:len(intentMagic)]) != intentMagic {
		return 0, false, nil
	}
	ts = binary.BigEndian.Uint64(head[len(intentMagic):])
	var n [4]byte
	for {
		if !read(n[:]) {
			return 0, false, nil
		}
		l := binary.BigEndian.Uint32(n[:])
		if l == 0 {
			break
		}
		if l > 1<<20 {
			return 0, false, nil
		}
		k := make([]byte, l)
		if !read(k) {
			return 0, false, nil
		}
		if fn != nil {
			if err := fn(k); err != nil {
				return 0, false, err
			}
		}
	}
	want := crc.Sum32()
	if _, err := io.ReadFull(r, n[:]); err != nil || binary.BigEndian.Uint32(n[:]) != want {
		return 0, false, nil
	}
	return ts, true, nil
}

// recoverIntent rolls back a large commit a crash interrupted. It runs in
// Open, before the committer starts.
func (s *Store) recoverIntent(last uint64) (uint64, error) {
	if s.opts.InMemory {
		return last, nil
	}
	restore := last + 1
	var before *badger.Txn
	btxn := s.db.NewTransactionAt(math.MaxUint64, true)
	defer func() { btxn.Discard() }()
	flush := func() error {
		if err := btxn.CommitAt(restore, nil); err != nil {
			return err
		}
		btxn = s.db.NewTransactionAt(math.MaxUint64, true)
		return nil
	}
	undo := func(ts uint64, k []byte) error {
		if before == nil {
			before = s.db.NewTransactionAt(ts-1, false)
		}
		item, err := before.Get(k)
		var op func() error
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			op = func() error { return btxn.Delete(k) }
		case err != nil:
			return err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			op = func() error { return btxn.Set(k, v) }
		}
		if err := op(); errors.Is(err, badger.ErrTxnTooBig) {
			if err := flush(); err != nil {
				return err
			}
			return op()
		} else if err != nil {
			return err
		}
		return nil
	}
	found, err := s.readIntent(undo)
	if before != nil {
		before.Discard()
	}
	if err != nil || !found {
		return last, err
	}
	if err := flush(); err != nil {
		return last, err
	}
	if err := s.removeIntent(); err != nil {
		return last, err
	}
	return restore, nil
}

// writeLarge commits one oversized request at ts in several batches, and
// returns the fingerprints of the keys it wrote.
func (c *committer) writeLarge(ts uint64, req *commitReq) (keySet, error) {
	s := c.s
	if !s.opts.InMemory {
		if err := s.writeIntent(ts, req); err != nil {
			return nil, fmt.Errorf("write commit intent: %w", err)
		}
	}
	keys := make(keySet, 0, req.count())
	btxn := s.db.NewTransactionAt(math.MaxUint64, true)
	defer func() { btxn.Discard() }()
	var bytes, count int64
	err := req.each(func(w *write) error {
		size := entryBytes(w.key, w.value)
		if count > 0 && (bytes+size > c.batchBytes || count+1 > c.batchCount) {
			if err := btxn.CommitAt(ts, nil); err != nil {
				return err
			}
			btxn = s.db.NewTransactionAt(math.MaxUint64, true)
			bytes, count = 0, 0
		}
		if err := w.applyTo(btxn); err != nil {
			return err
		}
		keys = append(keys, maphash.Bytes(c.seed, w.key))
		bytes += size
		count++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := btxn.CommitAt(ts, nil); err != nil {
		return nil, err
	}
	if !s.opts.InMemory {
		if err := s.removeIntent(); err != nil {
			return nil, fmt.Errorf("remove commit intent: %w", err)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// keySet is the fingerprints of a large commit's keys, sorted: 8 bytes a
// key, where a map entry costs several times that.
type keySet []uint64

func (k keySet) has(fp uint64) bool {
	_, found := slices.BinarySearch(k, fp)
	return found
}
