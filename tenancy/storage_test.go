package tenancy

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"

	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
)

// liveTenant creates tenant acme in a fresh store and makes it live for
// one session, closed with the test.
func liveTenant(t *testing.T) (*badgerkv.Store, *Manager, Tenant, *Live) {
	t.Helper()
	kv := openStore(t)
	m := NewManager(kv, ManagerConfig{})
	t.Cleanup(m.Close)
	tn, err := m.CreateTenant(ctx, "acme", "pw", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l, release, err := m.Acquire(ctx, tn, func() {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return kv, m, tn, l
}

func openStore(t *testing.T) *badgerkv.Store {
	t.Helper()
	kv, err := badgerkv.Open(badgerkv.Options{InMemory: true, MemTableBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	return kv
}

// storedBytes sums the keys and values of a tenant, but its accounting.
func storedBytes(t *testing.T, kv kvcluster.KvCluster, id keys.TenantID) int64 {
	t.Helper()
	start, end := keys.MakeCodec(id).TenantSpan()
	usage := usagePrefix(id)
	var n int64
	err := kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		return kvcluster.ScanAll(ctx, txn, start, end, 100, func(e kvcluster.KeyValue) error {
			if !bytes.HasPrefix(e.Key, usage) {
				n += int64(len(e.Key) + len(e.Value))
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStorageAccountingModel runs random transactions of puts,
// overwrites and deletes (after Gets, Scans, or blind), some rolled back,
// through the accounting wrapper, and checks after each that the tenant's
// accounted bytes equal what it stores — in memory, and in the store after
// folding.
func TestStorageAccountingModel(t *testing.T) {
	kv, m, tn, l := liveTenant(t)
	if got, want := l.StorageBytes(), storedBytes(t, kv, tn.ID); got != want {
		t.Fatalf("new tenant: accounted %d, stored %d", got, want)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	table := keys.MakeCodec(tn.ID).TablePrefix(200)
	key := func() []byte { return fmt.Appendf(bytes.Clone(table), "k%03d", rng.IntN(20)) }
	for round := 0; round < 1000; round++ {
		raw, err := kv.Begin(ctx, kvcluster.TxnOptions{})
		if err != nil {
			t.Fatal(err)
		}
		txn := l.Wrap(raw)
		for op := 0; op < 1+rng.IntN(20); op++ {
			k := key()
			v := bytes.Repeat([]byte{'v'}, rng.IntN(300))
			switch rng.IntN(6) {
			case 0:
				_, _, err = txn.Get(ctx, k)
				if err == nil {
					err = txn.Put(ctx, k, v)
				}
			case 1:
				var kvs []kvcluster.KeyValue
				kvs, err = txn.Scan(ctx, table, keys.PrefixEnd(table), kvcluster.ScanOptions{Limit: 1 + rng.IntN(40)})
				if err == nil && len(kvs) > 0 {
					e := kvs[rng.IntN(len(kvs))]
					if rng.IntN(2) == 0 {
						err = txn.Delete(ctx, e.Key)
					} else {
						err = txn.Put(ctx, e.Key, v)
					}
				}
			case 2:
				_, _, err = txn.(kvcluster.LockingTxn).LockForUpdate(ctx, k)
				if err == nil {
					err = txn.Delete(ctx, k)
				}
			case 3:
				err = txn.Delete(ctx, k)
			default:
				err = txn.Put(ctx, k, v)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if rng.IntN(5) == 0 {
			txn.Rollback()
		} else if err := txn.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if got, want := l.StorageBytes(), storedBytes(t, kv, tn.ID); got != want {
			t.Fatalf("round %d: accounted %d, stored %d", round, got, want)
		}
	}
	if err := m.fold(ctx, tn.ID); err != nil {
		t.Fatal(err)
	}
	err := kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		used, deltas, err := readUsage(ctx, txn, tn.ID)
		if err == nil && (used != l.StorageBytes() || deltas != 0) {
			err = fmt.Errorf("after folding: %d bytes in %d deltas, want %d in 0", used, deltas, l.StorageBytes())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// A limit: growth past it fails with 53100 and nothing is committed;
	// shrinking is always allowed.
	lim := l.Limits()
	lim.MaxStorageBytes = l.StorageBytes() + 100
	m.SetLimits(tn.ID, lim)
	raw, _ := kv.Begin(ctx, kvcluster.TxnOptions{})
	txn := l.Wrap(raw)
	err = txn.Put(ctx, fmt.Appendf(bytes.Clone(table), "big"), make([]byte, 200))
	var pe *pgerror.Error
	if !errors.As(err, &pe) || pe.Code != pgerror.CodeDiskFull {
		t.Fatalf("over the limit: %v", err)
	}
	txn.Rollback()
	before := l.StorageBytes()
	raw, _ = kv.Begin(ctx, kvcluster.TxnOptions{})
	txn = l.Wrap(raw)
	if err := txn.Delete(ctx, fmt.Appendf(bytes.Clone(table), "k%03d", 1)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 60; i++ {
		_ = txn.Delete(ctx, fmt.Appendf(bytes.Clone(table), "k%03d", i))
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if l.StorageBytes() >= before || l.StorageBytes() != storedBytes(t, kv, tn.ID) {
		t.Fatalf("after deleting: %d (was %d), stored %d", l.StorageBytes(), before, storedBytes(t, kv, tn.ID))
	}
}

// TestFinishDrops: a drop interrupted after the tenant was unregistered
// is completed at the next start, and leaves other tenants alone.
func TestFinishDrops(t *testing.T) {
	kv := openStore(t)
	m := NewManager(kv, ManagerConfig{})
	defer m.Close()
	a, err := m.CreateTenant(ctx, "acme", "pw", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.CreateTenant(ctx, "globex", "pw", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		if err := txn.Put(ctx, append(keys.MakeCodec(a.ID).TablePrefix(300), 'x'), []byte("data")); err != nil {
			return err
		}
		return Unregister(ctx, txn, a)
	})
	if err != nil {
		t.Fatal(err)
	}
	keep := storedBytes(t, kv, b.ID)
	if err := FinishDrops(ctx, kv); err != nil {
		t.Fatal(err)
	}
	if n := storedBytes(t, kv, a.ID); n != 0 {
		t.Fatalf("%d bytes of the dropped tenant remain", n)
	}
	if n := storedBytes(t, kv, b.ID); n != keep || n == 0 {
		t.Fatalf("the other tenant has %d bytes, had %d", n, keep)
	}
	err = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		start, end := keys.MetaDroppingSpan()
		kvs, err := txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: 10})
		if err == nil && len(kvs) > 0 {
			err = fmt.Errorf("%d dropping markers left", len(kvs))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

}
