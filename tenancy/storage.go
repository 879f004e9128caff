package tenancy

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
)

// Storage accounting. A tenant's storage use is the bytes of the keys and
// values it stores (its catalog included; not Badger's own overhead). It
// is kept in the tenant's own span, in catalog.UsageTableID:
//
//	<usage prefix> 'b'                  base: int64, the folded total
//	<usage prefix> 'd' <nonce> <seq>    delta: int64, one per commit
//
// Every commit that changes the tenant's bytes writes its delta under a
// key of its own, in the commit's transaction: the accounting commits or
// aborts with the data, and concurrent commits never conflict over a
// counter. The node folds deltas into the base in the background. The
// total is base + deltas, read in one snapshot.

func usagePrefix(id keys.TenantID) []byte {
	return keys.MakeCodec(id).TablePrefix(catalog.UsageTableID)
}

func baseKey(id keys.TenantID) []byte { return append(usagePrefix(id), 'b') }

func (m *Manager) deltaKey(id keys.TenantID) []byte {
	k := append(usagePrefix(id), 'd')
	k = binary.BigEndian.AppendUint64(k, m.nonce)
	return binary.BigEndian.AppendUint64(k, m.seq.Add(1))
}

func decodeInt64(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: usage record of %d bytes", ErrCorruptRecord, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// readUsage returns a tenant's storage use and how many deltas it has.
func readUsage(ctx context.Context, txn kvcluster.Txn, id keys.TenantID) (used int64, deltas int, err error) {
	p := usagePrefix(id)
	err = kvcluster.ScanAll(ctx, txn, p, keys.PrefixEnd(p), 1024, func(e kvcluster.KeyValue) error {
		n, err := decodeInt64(e.Value)
		if err != nil {
			return err
		}
		used += n
		if e.Key[len(p)] == 'd' {
			deltas++
		}
		return nil
	})
	return used, deltas, err
}

// StorageBytes reads a tenant's storage use from the store (for tenants
// not live on this node).
func StorageBytes(ctx context.Context, txn kvcluster.Txn, id keys.TenantID) (int64, error) {
	used, _, err := readUsage(ctx, txn, id)
	return used, err
}

// SetInitialUsage records the bytes a new tenant starts with (its
// catalog as CreateTenant wrote it), in the creating transaction.
func SetInitialUsage(ctx context.Context, txn kvcluster.Txn, id keys.TenantID, n int64) error {
	return txn.Put(ctx, baseKey(id), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// fold replaces a tenant's deltas with their sum in the base record. It
// conflicts only with another fold of the same tenant (deltas are written
// once, under unique keys), which then retries.
func (m *Manager) fold(ctx context.Context, id keys.TenantID) error {
	m.dropMu.RLock()
	defer m.dropMu.RUnlock()
	return kvcluster.Update(ctx, m.kv, 5, func(txn kvcluster.Txn) error {
		p := usagePrefix(id)
		var total int64
		var dels [][]byte
		err := kvcluster.ScanAll(ctx, txn, p, keys.PrefixEnd(p), 1024, func(e kvcluster.KeyValue) error {
			n, err := decodeInt64(e.Value)
			if err != nil {
				return err
			}
			total += n
			if e.Key[len(p)] == 'd' {
				dels = append(dels, e.Key)
			}
			return nil
		})
		if err != nil || len(dels) == 0 {
			return err
		}
		// A dropped tenant has no registry entry: leave its span alone.
		if _, found, err := txn.Get(ctx, keys.MetaTenantByID(id)); err != nil || !found {
			return err
		}
		for _, k := range dels {
			if err := txn.Delete(ctx, k); err != nil {
				return err
			}
		}
		return txn.Put(ctx, baseKey(id), binary.BigEndian.AppendUint64(nil, uint64(total)))
	})
}

func (m *Manager) foldLoop() {
	defer close(m.done)
	for {
		select {
		case <-m.life.Done():
			return
		case id := <-m.folds:
			if l, ok := m.Lookup(id); ok {
				l.unfolded.Store(0)
			}
			if err := m.fold(m.life, id); err != nil && m.life.Err() == nil {
				m.logger.Warn("fold storage accounting", "tenant", id, "err", err)
			}
		}
	}
}

// Wrap returns txn with the tenant's storage accounting: every Put and
// Delete adjusts the transaction's byte delta, a write that would take the
// tenant over max_storage_bytes fails with 53100, and Commit records the
// delta with the data. The returned Txn is a kvcluster.LockingTxn when txn
// is.
func (l *Live) Wrap(txn kvcluster.Txn) kvcluster.Txn {
	if lt, ok := txn.(kvcluster.LockingTxn); ok {
		al := &accountedLocking{accounted: accounted{Txn: txn, l: l, usage: l.usage}, lt: lt}
		return al
	}
	return &accounted{Txn: txn, l: l, usage: l.usage}
}

// accounted is a transaction that keeps its tenant's storage accounting.
// To know what a write replaces it remembers the size of the last value
// Get or LockForUpdate returned and of the last Scan page (the executor
// reads a row before it changes it); otherwise it reads the key first.
type accounted struct {
	kvcluster.Txn
	l     *Live
	usage []byte
	delta int64

	lastKey  []byte
	lastSize int64
	page     map[string]int64
}

// Unwrap returns the transaction a accounts for (kvcluster.Wrapper).
func (a *accounted) Unwrap() kvcluster.Txn { return a.Txn }

type accountedLocking struct {
	accounted
	lt kvcluster.LockingTxn
}

func entrySize(key, value []byte) int64 { return int64(len(key) + len(value)) }

func (a *accounted) remember(key, value []byte, found bool) {
	a.lastKey = append(a.lastKey[:0], key...)
	a.lastSize = 0
	if found {
		a.lastSize = entrySize(key, value)
	}
}

func (a *accounted) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	v, found, err := a.Txn.Get(ctx, key)
	if err == nil {
		a.remember(key, v, found)
	}
	return v, found, err
}

// pageMax bounds the scan page the transaction remembers sizes of.
const pageMax = 512

func (a *accounted) Scan(ctx context.Context, start, end []byte, opts kvcluster.ScanOptions) ([]kvcluster.KeyValue, error) {
	kvs, err := a.Txn.Scan(ctx, start, end, opts)
	if err == nil && len(kvs) <= pageMax {
		if a.page == nil {
			a.page = make(map[string]int64, len(kvs))
		}
		clear(a.page)
		for _, kv := range kvs {
			a.page[string(kv.Key)] = entrySize(kv.Key, kv.Value)
		}
	}
	return kvs, err
}

// GetAndLock implements kvcluster.SnapshotLocker.
func (al *accountedLocking) GetAndLock(ctx context.Context, key []byte) ([]byte, bool, []byte, bool, error) {
	snap, found, latest, latestFound, err := kvcluster.GetAndLock(ctx, al.lt, key)
	if err == nil {
		al.remember(key, latest, latestFound) // what a write of key replaces
	}
	return snap, found, latest, latestFound, err
}

func (al *accountedLocking) LockForUpdate(ctx context.Context, key []byte) ([]byte, bool, error) {
	v, found, err := al.lt.LockForUpdate(ctx, key)
	if err == nil {
		al.remember(key, v, found)
	}
	return v, found, err
}

// sizeOf is the size of key's current entry in the transaction.
func (a *accounted) sizeOf(ctx context.Context, key []byte) (int64, error) {
	if a.lastKey != nil && bytes.Equal(key, a.lastKey) {
		return a.lastSize, nil
	}
	if n, ok := a.page[string(key)]; ok {
		return n, nil
	}
	v, found, err := a.Txn.Get(ctx, key)
	if err != nil || !found {
		return 0, err
	}
	return entrySize(key, v), nil
}

// written notes that key now has an entry of size n.
func (a *accounted) written(key []byte, n int64) {
	if a.lastKey != nil && bytes.Equal(key, a.lastKey) {
		a.lastSize = n
	}
	if _, ok := a.page[string(key)]; ok {
		a.page[string(key)] = n
	}
}

func (a *accounted) Put(ctx context.Context, key, value []byte) error {
	if bytes.HasPrefix(key, a.usage) {
		return a.Txn.Put(ctx, key, value)
	}
	old, err := a.sizeOf(ctx, key)
	if err != nil {
		return err
	}
	n := entrySize(key, value)
	if d := a.delta + n - old; d > 0 && d > a.delta {
		if err := a.l.checkStorage(d, 0); err != nil {
			return err
		}
	}
	if err := a.Txn.Put(ctx, key, value); err != nil {
		return err
	}
	a.delta += n - old
	a.written(key, n)
	return nil
}

func (a *accounted) Delete(ctx context.Context, key []byte) error {
	if bytes.HasPrefix(key, a.usage) {
		return a.Txn.Delete(ctx, key)
	}
	old, err := a.sizeOf(ctx, key)
	if err != nil {
		return err
	}
	if err := a.Txn.Delete(ctx, key); err != nil {
		return err
	}
	a.delta -= old
	a.written(key, 0)
	return nil
}

// checkStorage fails with 53100 if growing by delta (with reserved
// already counted in the total) would take the tenant over its limit.
func (l *Live) checkStorage(delta, reserved int64) error {
	max := l.limits.Load().MaxStorageBytes
	if max == NoLimit {
		return nil
	}
	used := l.storage.Load() - reserved
	if used+delta <= max {
		return nil
	}
	l.Stats.Rejected.Add(1)
	return pgerror.New(pgerror.CodeDiskFull,
		"tenant %q is over its storage limit: max_storage_bytes = %d, using %d, this write needs %d more",
		l.Name, max, used, delta)
}

func (a *accounted) Commit(ctx context.Context) error {
	if a.delta == 0 {
		return a.Txn.Commit(ctx)
	}
	// Reserve the growth first, so concurrent commits of one tenant
	// cannot together pass the limit; give it back if the commit fails.
	a.l.storage.Add(a.delta)
	if a.delta > 0 {
		if err := a.l.checkStorage(a.delta, a.delta); err != nil {
			a.l.storage.Add(-a.delta)
			a.Txn.Rollback()
			return err
		}
	}
	err := a.Txn.Put(ctx, a.l.m.deltaKey(a.l.ID), binary.BigEndian.AppendUint64(nil, uint64(a.delta)))
	if err == nil {
		err = a.Txn.Commit(ctx)
	}
	if err != nil {
		a.l.storage.Add(-a.delta)
		a.Txn.Rollback()
		return err
	}
	if a.l.unfolded.Add(1) >= foldThreshold {
		a.l.unfolded.Store(0)
		a.l.m.queueFold(a.l.ID)
	}
	return nil
}
