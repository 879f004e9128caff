// Package kvcluster defines KvCluster, the ordered, consistent, transactional
// key-value store that every layer of ShaleDB above storage is built on.
//
// Two implementations satisfy it: kvcluster/badgerkv (one node, embedded, the
// default) and a raft-replicated multi-shard one. Both must pass the
// conformance suite in kvcluster/kvtest unchanged; code above this package
// never learns which one it runs on.
//
// # Isolation
//
// Every transaction runs under snapshot isolation:
//
//   - All reads of a transaction (Get and Scan) see one consistent snapshot:
//     every transaction that committed before Begin returned, and no part of
//     any transaction that had not, plus the transaction's own writes.
//   - Commit is first-committer-wins: if any key the transaction wrote was
//     also written by another transaction that committed after this one's
//     snapshot was taken, Commit fails with an error for which IsRetryable
//     reports true (ErrWriteConflict) and nothing of the transaction is
//     applied. Of two concurrent transactions that write a common key, at most
//     one commits.
//   - A commit is atomic: all of its writes become visible together, or none
//     of them do, also across a crash.
//   - A commit is durable: once Commit returns nil, the writes survive a crash
//     of the process (and, for implementations that say so, of the machine).
//
// Snapshot isolation is weaker than serializability: two transactions that
// read overlapping data and write disjoint keys can both commit (write skew).
// Layers above that need more take it into their own hands, for example by
// writing the key they depend on.
//
// # Keys and values
//
// Keys are arbitrary non-empty byte strings up to KeySizeMax bytes, ordered by
// bytes.Compare. Values are byte strings up to ValueSizeMax bytes; an empty
// value is a value (distinct from absence).
package kvcluster

import (
	"context"
)

// Limits every implementation enforces, so that code above behaves the same
// on every implementation. Exceeding them returns ErrInvalidArgument (sizes)
// or ErrTxnTooLarge (a transaction's total).
const (
	// KeySizeMax is the largest key, in bytes.
	KeySizeMax = 16 << 10
	// ValueSizeMax is the largest value, in bytes. Larger SQL values are
	// the record layer's to split.
	ValueSizeMax = 512 << 10
)

// KvCluster is an ordered, transactional key-value store. It is safe for
// concurrent use by many goroutines.
type KvCluster interface {
	// Begin starts a transaction whose reads see a snapshot taken now.
	// A read-only transaction (opts.ReadOnly) rejects writes with
	// ErrReadOnly and costs nothing to commit. The caller must end every
	// transaction with Commit or Rollback; an open transaction holds back
	// garbage collection of old versions. After Close, Begin returns
	// ErrClosed.
	Begin(ctx context.Context, opts TxnOptions) (Txn, error)

	// Close waits for commits already being written, fails queued and
	// future operations with ErrClosed, and releases the store. Calling it
	// more than once is harmless.
	Close() error
}

// TxnOptions configure one transaction. The zero value is a read-write
// transaction.
type TxnOptions struct {
	// ReadOnly transactions may not write.
	ReadOnly bool
	// FollowerReads asks a replicated store to serve the transaction's
	// reads from a replica near the caller (this node's, if it holds
	// one) rather than from each shard's leader, with the same snapshot:
	// the replica first learns from the leader how far it must have
	// applied. It moves the reading work off the leaders; it saves no
	// round trip to them. Stores with one copy of the data ignore it.
	FollowerReads bool
}

// KeyValue is one entry returned by Scan. Key and Value are owned by the
// caller: the store never touches them again.
type KeyValue struct {
	Key   []byte
	Value []byte
}

// ScanOptions bound one Scan.
type ScanOptions struct {
	// Limit is the most entries returned; it must be positive.
	Limit int
	// Reverse returns entries in descending key order, starting from the
	// largest key below End.
	Reverse bool
}

// Txn is one transaction. It is not safe for concurrent use: one goroutine
// at a time. After Commit or Rollback every method but Rollback returns
// ErrTxnDone. After the store is closed, every method returns ErrClosed.
//
// Slices passed in may be reused by the caller as soon as the call returns;
// slices returned are owned by the caller.
type Txn interface {
	// Get returns the value of key in the transaction's snapshot,
	// overlaid with its own writes. found is false if the key has no value.
	Get(ctx context.Context, key []byte) (value []byte, found bool, err error)

	// Scan returns up to opts.Limit entries with start <= key < end, in
	// ascending key order (descending with opts.Reverse), from the
	// transaction's snapshot overlaid with its own writes (a key it deleted
	// is absent, one it put has the new value). A nil end means no upper
	// bound; start may be nil or empty for no lower bound. To continue a
	// scan that hit its limit, scan again from the successor of the last
	// key returned (forward) or up to the last key returned (reverse).
	Scan(ctx context.Context, start, end []byte, opts ScanOptions) ([]KeyValue, error)

	// Put sets key to value when the transaction commits.
	Put(ctx context.Context, key, value []byte) error

	// Delete removes key when the transaction commits. Deleting an absent
	// key is not an error.
	Delete(ctx context.Context, key []byte) error

	// Commit applies every write atomically and durably, or none of them.
	// It fails with ErrWriteConflict (retryable) when another transaction
	// committed a write to a key this one wrote after this one's snapshot.
	// If ctx ends before the commit was handed to storage, Commit returns
	// ctx's error and nothing is applied; once handed over, Commit waits for
	// the outcome, so a nil error always means committed and any error
	// but ErrCommitUnknown means not committed. ErrCommitUnknown is
	// returned only by a replicated store that lost contact with the
	// shard for longer than it waits.
	Commit(ctx context.Context) error

	// Rollback discards the transaction. It is safe to call after Commit
	// (doing nothing) and more than once, so `defer txn.Rollback()` is the
	// idiom.
	Rollback()
}

// LockingTxn is a Txn that can take pessimistic row locks, as SQL's
// UPDATE, DELETE and SELECT … FOR UPDATE need. Implementations offer it by
// returning a Txn that also implements it; callers find it by type
// assertion and fall back to plain first-committer-wins without it.
type LockingTxn interface {
	Txn
	// LockForUpdate takes an exclusive lock on key, held until the
	// transaction ends. If another transaction holds it, LockForUpdate
	// waits for that transaction to end (bounded by ctx; a wait that
	// would close a cycle of waiters fails at once with ErrDeadlock). It
	// returns the key's latest committed value — not the snapshot's —
	// overlaid with this transaction's own writes, and from then on reads
	// of key in this transaction see that value. A commit that wrote key
	// before the lock was taken no longer makes this transaction's write
	// of key conflict: the lock, not the snapshot, orders the two.
	LockForUpdate(ctx context.Context, key []byte) (value []byte, found bool, err error)
}

// SnapshotWaiter is a KvCluster that can wait out older snapshots, as an
// online schema change does between its steps: after a descriptor commit,
// once no transaction that began before it is still open, every writer
// knows the new descriptor. Implementations offer it by implementing it;
// callers find it by type assertion.
type SnapshotWaiter interface {
	// WaitForOlderSnapshots returns once every transaction whose snapshot
	// misses a commit that had returned before the call has ended, or
	// with ctx's error. Transactions that begin after the call are not
	// waited for.
	WaitForOlderSnapshots(ctx context.Context) error
}

// PrefixDropper is a KvCluster that can remove every key under a prefix
// at once, without a transaction per key: dropping a tenant is one call
// however much it stored. Implementations offer it by implementing it;
// callers find it by type assertion.
type PrefixDropper interface {
	// DropPrefix removes every version of every key that starts with
	// prefix, durably, before it returns. It is not transactional: a
	// transaction reading under prefix while it runs may see some keys
	// vanish, and a commit that writes under prefix concurrently may
	// survive it. Callers first make the prefix unreachable (a tenant is
	// unregistered and its sessions closed), then drop it. An empty prefix
	// is ErrInvalidArgument.
	DropPrefix(ctx context.Context, prefix []byte) error
}

// SnapshotLocker is a LockingTxn that reads a key at its snapshot and
// locks it in one step (one request to a cluster's leader instead of two).
// Callers use GetAndLock, which falls back to Get and LockForUpdate.
type SnapshotLocker interface {
	// GetAndLock is Get followed, if the key is found, by LockForUpdate:
	// it returns the snapshot's value and whether it was found, and, if
	// it was, the latest value and whether it still exists. A key not
	// in the snapshot is not locked.
	GetAndLock(ctx context.Context, key []byte) (snap []byte, found bool, latest []byte, latestFound bool, err error)
}

// GetAndLock is txn's SnapshotLocker.GetAndLock, or GetThenLock.
func GetAndLock(ctx context.Context, txn LockingTxn, key []byte) (snap []byte, found bool, latest []byte, latestFound bool, err error) {
	if sl, ok := txn.(SnapshotLocker); ok {
		return sl.GetAndLock(ctx, key)
	}
	return GetThenLock(ctx, txn, key)
}

// GetThenLock does what SnapshotLocker.GetAndLock does in two steps: Get,
// then, if the key is found, LockForUpdate.
func GetThenLock(ctx context.Context, txn LockingTxn, key []byte) (snap []byte, found bool, latest []byte, latestFound bool, err error) {
	if snap, found, err = txn.Get(ctx, key); err != nil || !found {
		return nil, false, nil, false, err
	}
	latest, latestFound, err = txn.LockForUpdate(ctx, key)
	return snap, true, latest, latestFound, err
}

// Placer is a KvCluster that can keep a key span's data on the nodes of
// one region. Implementations offer it by implementing it; callers find
// it by type assertion.
type Placer interface {
	// PlaceSpan moves the data of [start, end) (a nil end: no bound) onto
	// the nodes of region, and keeps it there, while it stays readable
	// and writable. It returns once the data is there, or with ctx's
	// error (the move goes on). A region without enough live nodes is
	// ErrInvalidArgument.
	PlaceSpan(ctx context.Context, start, end []byte, region string) error
}

// SchemaTxn is a Txn of a SharedStore that lets the nodes sharing it cache
// the schema. Callers find it with AsSchemaTxn.
type SchemaTxn interface {
	// SchemaEpoch returns the transaction's schema epoch. Two
	// transactions of the same epoch read the same committed value of a
	// schema key — one whose writers call WritesSchema — once one of
	// them has read it (a read settles the key's value at or below its
	// timestamp: later commits below it are refused).
	SchemaEpoch() uint64
	// WritesSchema must be called before the transaction writes a schema
	// key: its commit then starts a new epoch.
	WritesSchema()
}

// Wrapper is a Txn that adds to another (the one Unwrap returns).
type Wrapper interface {
	Unwrap() Txn
}

// AsSchemaTxn finds a SchemaTxn in txn or the transactions it wraps.
func AsSchemaTxn(txn Txn) (SchemaTxn, bool) {
	for {
		if st, ok := txn.(SchemaTxn); ok {
			return st, true
		}
		w, ok := txn.(Wrapper)
		if !ok {
			return nil, false
		}
		txn = w.Unwrap()
	}
}

// SharedStore is a KvCluster that other processes (the other nodes of a
// cluster) write to as well, so what a node caches of the stored data may
// change without the node's knowledge. Implementations say so by
// implementing it; callers with node-local caches of stored data find it
// by type assertion and read through instead.
type SharedStore interface {
	// SharedWithOtherNodes does nothing; its presence is the statement.
	SharedWithOtherNodes()
}
