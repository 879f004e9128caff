package badgerkv

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/shaledb/shaledb/kvcluster"
)

// Row locks (kvcluster.LockingTxn).
//
// The lock table maps a key to the transaction holding it and the
// transactions waiting for it. A transaction waits for at most one lock at
// a time, so the waits form chains; before waiting, the chain from the
// lock's holder is followed, and if it leads back to the waiter, the wait
// would deadlock and fails at once. Locks are released when the holder
// ends, after its commit is published, so a waiter that takes the lock
// next reads the holder's write as the latest committed value.

type lockTable struct {
	mu    sync.Mutex
	locks map[string]*rowLock
}

type rowLock struct {
	holder  *txn
	waiters int
	free    chan struct{} // closed when the holder releases
}

// lockState is what a transaction keeps about its locks.
type lockState struct {
	held       []string
	waitingFor *rowLock // under lockTable.mu
	// lockedTs[key] is the visible timestamp when the lock was taken and
	// the latest value read: commits up to it cannot conflict with this
	// transaction's write of key.
	lockedTs map[string]uint64
}

func (lt *lockTable) deadlocks(t *txn, l *rowLock) bool {
	for seen := 0; l != nil && seen < 1<<16; seen++ {
		if l.holder == t {
			return true
		}
		l = l.holder.locks.waitingFor
	}
	return false
}

// acquire takes key's lock for t, waiting for its holder.
func (lt *lockTable) acquire(ctx context.Context, t *txn, key string) error {
	for {
		lt.mu.Lock()
		l := lt.locks[key]
		if l == nil {
			lt.locks[key] = &rowLock{holder: t, free: make(chan struct{})}
			t.locks.held = append(t.locks.held, key)
			lt.mu.Unlock()
			return nil
		}
		if l.holder == t {
			lt.mu.Unlock()
			return nil
		}
		if lt.deadlocks(t, l) {
			lt.mu.Unlock()
			return fmt.Errorf("badgerkv: lock: %w", kvcluster.ErrDeadlock)
		}
		l.waiters++
		t.locks.waitingFor = l
		free := l.free
		lt.mu.Unlock()
		t.s.lockWaiters.Add(1)
		select {
		case <-free:
		case <-ctx.Done():
		}
		t.s.lockWaiters.Add(-1)
		lt.mu.Lock()
		t.locks.waitingFor = nil
		l.waiters--
		lt.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// releaseAll frees every lock t holds.
func (lt *lockTable) releaseAll(t *txn) {
	if len(t.locks.held) == 0 {
		return
	}
	lt.mu.Lock()
	for _, k := range t.locks.held {
		if l := lt.locks[k]; l != nil && l.holder == t {
			delete(lt.locks, k)
			close(l.free)
		}
	}
	lt.mu.Unlock()
	t.locks.held = nil
}

// LockForUpdate implements kvcluster.LockingTxn.
func (t *txn) LockForUpdate(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := kvcluster.CheckKey(key); err != nil {
		return nil, false, err
	}
	if t.done {
		return nil, false, kvcluster.ErrTxnDone
	}
	if t.readOnly {
		return nil, false, kvcluster.ErrReadOnly
	}
	if err := t.s.locks.acquire(ctx, t, string(key)); err != nil {
		return nil, false, err
	}
	exit, err := t.enter()
	if err != nil {
		return nil, false, err
	}
	defer exit()
	// Our own write wins over anything committed.
	if v, found, ok, err := t.ownWrite(key); err != nil || ok {
		return v, found, err
	}
	// The latest committed value: with the lock held, no locking writer
	// can commit key until we end.
	latestTs := t.s.visibleTs.Load()
	snap := t.s.db.NewTransactionAt(latestTs, false)
	defer snap.Discard()
	item, err := snap.Get(key)
	var val []byte
	found := true
	switch {
	case err == badger.ErrKeyNotFound:
		found = false
	case err != nil:
		return nil, false, fmt.Errorf("badgerkv: lock read: %w", errClosedOrNil(err))
	default:
		if val, err = item.ValueCopy(nil); err != nil {
			return nil, false, fmt.Errorf("badgerkv: lock read: %w", errClosedOrNil(err))
		}
	}
	if t.locks.lockedTs == nil {
		t.locks.lockedTs = map[string]uint64{}
	}
	t.locks.lockedTs[string(key)] = latestTs
	// Later reads of key in this transaction see the latest value: buffer
	// it as our own write (rewriting it is harmless, and makes the row's
	// new version part of this transaction, as PostgreSQL's lock does).
	if found {
		if err := t.buffer(ctx, &write{key: bytes.Clone(key), value: bytes.Clone(val)}); err != nil {
			return nil, false, err
		}
	}
	return val, found, nil
}
