package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kinds of raft entry data this package proposes.
const (
	entryCommit byte = 1 // a transaction's writes: commitEntry
	entryDrop   byte = 2 // the removal of a key prefix: dropEntry
	// entrySplit = 3 (split.go)
	entryPrewrite byte = 4 // a cross-shard transaction's intents: prewriteEntry (intents.go)
	entryResolve  byte = 5 // their commit or rollback: resolveEntry
)

// dropEntry removes every key under Prefix from the shard, as of Ts.
type dropEntry struct {
	ID     uint64
	Ts     uint64
	Prefix []byte
}

func (e *dropEntry) encode() []byte {
	b := make([]byte, 0, 1+16+len(e.Prefix))
	b = append(b, entryDrop)
	b = binary.BigEndian.AppendUint64(b, e.ID)
	b = binary.BigEndian.AppendUint64(b, e.Ts)
	return append(b, e.Prefix...)
}

func decodeDrop(b []byte) (*dropEntry, error) {
	if len(b) < 1+16+1 || b[0] != entryDrop {
		return nil, fmt.Errorf("%w: drop entry of %d bytes", errBadEntry, len(b))
	}
	return &dropEntry{ID: binary.BigEndian.Uint64(b[1:]), Ts: binary.BigEndian.Uint64(b[9:]), Prefix: b[17:]}, nil
}

// mutation is one buffered write of a transaction.
type mutation struct {
	Key    []byte
	Value  []byte
	Delete bool
	// LockTs, when set, replaces the snapshot as the point after which a
	// commit to Key conflicts: the transaction held Key's row lock and
	// read its latest value as of LockTs.
	LockTs uint64
}

// commitEntry is a transaction's commit, as proposed to a shard's log.
// Applying it is deterministic on every replica: if any key was written at
// a timestamp after StartTs the commit conflicts and nothing is written;
// otherwise every write lands at CommitTs.
type commitEntry struct {
	ID       uint64 // the proposer's handle for the outcome
	StartTs  uint64
	CommitTs uint64
	Writes   []mutation
}

var errBadEntry = errors.New("raft: malformed log entry")

// encode lays the entry out as: kind, id, startTs, commitTs, count, then
// per write: flag (1 = delete), lock timestamp, key length, key, value
// length, value.
func (e *commitEntry) encode() []byte {
	n := 1 + 8*3 + 4
	for _, w := range e.Writes {
		n += 1 + 8 + 4 + len(w.Key) + 4 + len(w.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, entryCommit)
	b = binary.BigEndian.AppendUint64(b, e.ID)
	b = binary.BigEndian.AppendUint64(b, e.StartTs)
	b = binary.BigEndian.AppendUint64(b, e.CommitTs)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Writes)))
	for _, w := range e.Writes {
		var flag byte
		if w.Delete {
			flag = 1
		}
		b = append(b, flag)
		b = binary.BigEndian.AppendUint64(b, w.LockTs)
		b = binary.BigEndian.AppendUint32(b, uint32(len(w.Key)))
		b = append(b, w.Key...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(w.Value)))
		b = append(b, w.Value...)
	}
	return b
}

func decodeCommit(b []byte) (*commitEntry, error) {
	if len(b) < 1+8*3+4 || b[0] != entryCommit {
		return nil, fmt.Errorf("%w: commit header of %d bytes", errBadEntry, len(b))
	}
	e := &commitEntry{
		ID:       binary.BigEndian.Uint64(b[1:]),
		StartTs:  binary.BigEndian.Uint64(b[9:]),
		CommitTs: binary.BigEndian.Uint64(b[17:]),
	}
	count := binary.BigEndian.Uint32(b[25:])
	b = b[29:]
	if uint64(count) > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d writes in %d bytes", errBadEntry, count, len(b))
	}
	e.Writes = make([]mutation, count)
	field := func() ([]byte, error) {
		if len(b) < 4 {
			return nil, errBadEntry
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, fmt.Errorf("%w: field of %d bytes in %d", errBadEntry, n, len(b)-4)
		}
		f := b[4 : 4+n : 4+n]
		b = b[4+n:]
		return f, nil
	}
	for i := range e.Writes {
		if len(b) < 9 {
			return nil, errBadEntry
		}
		e.Writes[i].Delete = b[0] == 1
		e.Writes[i].LockTs = binary.BigEndian.Uint64(b[1:])
		b = b[9:]
		var err error
		if e.Writes[i].Key, err = field(); err != nil {
			return nil, err
		}
		if e.Writes[i].Value, err = field(); err != nil {
			return nil, err
		}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadEntry, len(b))
	}
	return e, nil
}
