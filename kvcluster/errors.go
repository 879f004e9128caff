package kvcluster

import (
	"context"
	"errors"
	"fmt"
)

// Errors returned by every KvCluster implementation. Implementations wrap
// them with context; callers test with errors.Is or the Is* helpers, never
// by message. Only the pgwire layer turns them into SQLSTATE codes.
var (
	// ErrWriteConflict: Commit lost a write-write race under
	// first-committer-wins. Nothing was applied; the whole transaction may
	// be retried from Begin. Retryable.
	ErrWriteConflict = errors.New("kvcluster: write-write conflict")

	// ErrDeadlock: waiting for a row lock would have closed a cycle of
	// transactions waiting for each other. Nothing of this transaction is
	// applied; retry it from Begin. Retryable.
	ErrDeadlock = errors.New("kvcluster: deadlock detected")

	// ErrClosed: the store has been closed. Final.
	ErrClosed = errors.New("kvcluster: store closed")

	// ErrTxnDone: the transaction was already committed or rolled back.
	// A bug in the caller.
	ErrTxnDone = errors.New("kvcluster: transaction already finished")

	// ErrReadOnly: a write in a read-only transaction. A bug in the caller.
	ErrReadOnly = errors.New("kvcluster: write in read-only transaction")

	// ErrTxnTooLarge: the transaction's writes exceed what one atomic
	// commit can hold. Final for this transaction; split the work.
	ErrTxnTooLarge = errors.New("kvcluster: transaction too large")

	// ErrCommitUnknown: a replicated store handed the commit to a shard's
	// leader and then could not learn whether it was applied (the shard
	// lost its quorum for longer than the store waits). It is the one
	// error after which the transaction may have committed. Final.
	ErrCommitUnknown = errors.New("kvcluster: commit outcome unknown")

	// ErrInvalidArgument: an empty or oversized key, an oversized value, a
	// non-positive scan limit or an inverted range. A bug in the caller.
	ErrInvalidArgument = errors.New("kvcluster: invalid argument")
)

// IsRetryable reports whether err means the transaction failed without
// effect and running it again from Begin may succeed.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrWriteConflict) || errors.Is(err, ErrDeadlock)
}

// CheckKey validates a key against the contract's limits.
func CheckKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalidArgument)
	}
	if len(key) > KeySizeMax {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalidArgument, len(key), KeySizeMax)
	}
	return nil
}

// CheckValue validates a value against the contract's limits.
func CheckValue(value []byte) error {
	if len(value) > ValueSizeMax {
		return fmt.Errorf("%w: value of %d bytes exceeds %d", ErrInvalidArgument, len(value), ValueSizeMax)
	}
	return nil
}

// CheckScan validates Scan's arguments.
func CheckScan(start, end []byte, opts ScanOptions) error {
	if opts.Limit <= 0 {
		return fmt.Errorf("%w: scan limit %d must be positive", ErrInvalidArgument, opts.Limit)
	}
	if end != nil && string(start) > string(end) {
		return fmt.Errorf("%w: scan start %q sorts after end %q", ErrInvalidArgument, start, end)
	}
	return nil
}

// Update runs fn in a read-write transaction and commits it, in the way of
// bbolt's DB.Update: the transaction is rolled back if fn returns an error
// or panics. A retryable failure (fn's or Commit's) runs fn again in a new
// transaction, up to attempts times in all; fn must therefore have no effect
// outside the transaction. It returns the last error.
func Update(ctx context.Context, kv KvCluster, attempts int, fn func(Txn) error) error {
	if attempts < 1 {
		attempts = 1
	}
	var err error
	for i := 0; i < attempts; i++ {
		err = runOnce(ctx, kv, TxnOptions{}, fn)
		if !IsRetryable(err) {
			return err
		}
	}
	return err
}

// View runs fn in a read-only transaction.
func View(ctx context.Context, kv KvCluster, fn func(Txn) error) error {
	return runOnce(ctx, kv, TxnOptions{ReadOnly: true}, fn)
}

func runOnce(ctx context.Context, kv KvCluster, opts TxnOptions, fn func(Txn) error) error {
	txn, err := kv.Begin(ctx, opts)
	if err != nil {
		return err
	}
	defer txn.Rollback()
	if err := fn(txn); err != nil {
		return err
	}
	return txn.Commit(ctx)
}
