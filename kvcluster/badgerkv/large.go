package badgerkv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"

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

// writeIntent stores ts and the keys durably. Format: magic, ts, count,
// then (len, key)*, then a CRC32 of everything before it.
func (s *Store) writeIntent(ts uint64, writes []*write) error {
	var b bytes.Buffer
	b.WriteString("SHLI")
	_ = binary.Write(&b, binary.BigEndian, ts)
	_ = binary.Write(&b, binary.BigEndian, uint64(len(writes)))
	for _, w := range writes {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(w.key)))
		b.Write(w.key)
	}
	_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(b.Bytes()))
	tmp := s.intentPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
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

// readIntent returns the intent left by a crash, if any. A torn intent
// (the crash came while writing it) means no batch was written yet.
func (s *Store) readIntent() (ts uint64, keys [][]byte, found bool, err error) {
	b, err := os.ReadFile(s.intentPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, err
	}
	if len(b) < 4+8+8+4 || string(b[:4]) != "SHLI" ||
		crc32.ChecksumIEEE(b[:len(b)-4]) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return 0, nil, true, nil // torn: nothing to undo
	}
	r := bytes.NewReader(b[4 : len(b)-4])
	var n uint64
	_ = binary.Read(r, binary.BigEndian, &ts)
	_ = binary.Read(r, binary.BigEndian, &n)
	for i := uint64(0); i < n; i++ {
		var l uint32
		if err := binary.Read(r, binary.BigEndian, &l); err != nil {
			return 0, nil, false, fmt.Errorf("badgerkv: corrupt commit intent: %w", err)
		}
		k := make([]byte, l)
		if _, err := io.ReadFull(r, k); err != nil {
			return 0, nil, false, fmt.Errorf("badgerkv: corrupt commit intent: %w", err)
		}
		keys = append(keys, k)
	}
	return ts, keys, true, nil
}

// recoverIntent rolls back a large commit a crash interrupted. It runs in
// Open, before the committer starts.
func (s *Store) recoverIntent(last uint64) (uint64, error) {
	if s.opts.InMemory {
		return last, nil
	}
	ts, keys, found, err := s.readIntent()
	if err != nil || !found {
		return last, err
	}
	restore := last + 1
	before := s.db.NewTransactionAt(ts-1, false)
	defer before.Discard()
	btxn := s.db.NewTransactionAt(math.MaxUint64, true)
	flush := func() error {
		if err := btxn.CommitAt(restore, nil); err != nil {
			return err
		}
		btxn = s.db.NewTransactionAt(math.MaxUint64, true)
		return nil
	}
	for _, k := range keys {
		item, err := before.Get(k)
		var op func() error
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			op = func() error { return btxn.Delete(k) }
		case err != nil:
			return last, err
		default:
			v, err := item.ValueCopy(nil)
			if err != nil {
				return last, err
			}
			op = func() error { return btxn.Set(k, v) }
		}
		if err := op(); errors.Is(err, badger.ErrTxnTooBig) {
			if err := flush(); err != nil {
				return last, err
			}
			err = op()
			if err != nil {
				return last, err
			}
		} else if err != nil {
			return last, err
		}
	}
	if err := flush(); err != nil {
		return last, err
	}
	btxn.Discard()
	if err := s.removeIntent(); err != nil {
		return last, err
	}
	return restore, nil
}

// writeLarge commits one oversized request at ts in several batches.
func (c *committer) writeLarge(ts uint64, req *commitReq) error {
	s := c.s
	if !s.opts.InMemory {
		if err := s.writeIntent(ts, req.writes); err != nil {
			return fmt.Errorf("write commit intent: %w", err)
		}
	}
	btxn := s.db.NewTransactionAt(math.MaxUint64, true)
	defer func() { btxn.Discard() }()
	var bytes, count int64
	for _, w := range req.writes {
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
		bytes += size
		count++
	}
	if err := btxn.CommitAt(ts, nil); err != nil {
		return err
	}
	if !s.opts.InMemory {
		if err := s.removeIntent(); err != nil {
			return fmt.Errorf("remove commit intent: %w", err)
		}
	}
	return nil
}
