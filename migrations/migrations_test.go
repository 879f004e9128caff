package migrations

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/record"
	"github.com/shaledb/shaledb/tenancy"
)

var ctx = context.Background()

func env() Env {
	return Env{Now: func() time.Time { return time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC) }}
}

func open(t *testing.T, dir string) kvcluster.KvCluster {
	t.Helper()
	opts := badgerkv.Options{InMemory: true, MemTableBytes: 8 << 20}
	if dir != "" {
		opts = badgerkv.Options{Dir: dir, MemTableBytes: 8 << 20}
	}
	s, err := badgerkv.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFreshStoreGetsSystemTenant(t *testing.T) {
	dir := t.TempDir()
	kv := open(t, dir)
	res, err := Run(ctx, kv, env())
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.To != Latest() || len(res.Applied) != len(All()) {
		t.Fatalf("first run: %+v", res)
	}
	checkSystem := func(kv kvcluster.KvCluster) {
		t.Helper()
		_ = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
			sys, found, err := tenancy.Lookup(ctx, txn, tenancy.SystemTenantName)
			if err != nil || !found || sys.ID != keys.SystemTenantID {
				t.Fatalf("system tenant: %+v %v %v", sys, found, err)
			}
			if !sys.CreatedAt.Equal(env().Now()) {
				t.Fatalf("system tenant created at %v", sys.CreatedAt)
			}
			return nil
		})
	}
	checkSystem(kv)
	// Again: nothing to do.
	if res, err := Run(ctx, kv, env()); err != nil || len(res.Applied) != 0 || res.From != Latest() {
		t.Fatalf("second run: %+v %v", res, err)
	}
	// Across a reopen the version and the registry persist.
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	kv = open(t, dir)
	defer kv.Close()
	if res, err := Run(ctx, kv, env()); err != nil || len(res.Applied) != 0 || res.From != Latest() {
		t.Fatalf("run after reopen: %+v %v", res, err)
	}
	checkSystem(kv)
	// The next tenant gets id 2.
	_ = kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		acme, err := tenancy.Create(ctx, txn, "acme", env().Now())
		if err != nil || acme.ID != 2 {
			t.Fatalf("acme: %+v %v", acme, err)
		}
		return nil
	})
}

func TestNewerFormatRefused(t *testing.T) {
	kv := open(t, "")
	defer kv.Close()
	_ = kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		return txn.Put(ctx, keys.MetaFormatVersion(), binary.BigEndian.AppendUint64(nil, Latest()+1))
	})
	_, err := Run(ctx, kv, env())
	if !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("got %v, want ErrNewerFormat", err)
	}
}

func TestConcurrentRunsApplyOnce(t *testing.T) {
	kv := open(t, "")
	defer kv.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Run(ctx, kv, env())
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			applied += len(res.Applied)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if applied != len(All()) {
		t.Fatalf("migrations applied %d times in all, want %d", applied, len(All()))
	}
	n := 0
	_ = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		return tenancy.List(ctx, txn, func(tenancy.Tenant) bool { n++; return true })
	})
	if n != 1 {
		t.Fatalf("%d tenants after concurrent runs, want 1", n)
	}
}

// TestOrderAndFailure: migrations run in order; one that fails leaves the
// store at the version before it with nothing of it applied, and the next
// run resumes there.
func TestOrderAndFailure(t *testing.T) {
	kv := open(t, "")
	defer kv.Close()
	var order []uint64
	fail := true
	step := func(v uint64) Migration {
		return Migration{Version: v, Name: "step", Up: func(ctx context.Context, txn kvcluster.Txn, _ Env) error {
			order = append(order, v)
			if err := txn.Put(ctx, []byte{0x01, 0x7f, byte(v)}, nil); err != nil {
				return err
			}
			if v == 3 && fail {
				return errors.New("boom")
			}
			return nil
		}}
	}
	list := []Migration{step(1), step(2), step(3), step(4)}
	res, err := run(ctx, kv, env(), list)
	if err == nil || res.To != 2 {
		t.Fatalf("failing run: %+v %v", res, err)
	}
	_ = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		if v, _ := Version(ctx, txn); v != 2 {
			t.Fatalf("version after failure = %d, want 2", v)
		}
		if _, found, _ := txn.Get(ctx, []byte{0x01, 0x7f, 3}); found {
			t.Fatal("the failed migration's write was applied")
		}
		return nil
	})
	fail = false
	if res, err := run(ctx, kv, env(), list); err != nil || res.From != 2 || res.To != 4 {
		t.Fatalf("resumed run: %+v %v", res, err)
	}
	want := []uint64{1, 2, 3, 3, 4}
	if len(order) != len(want) {
		t.Fatalf("ran %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("ran %v, want %v", order, want)
		}
	}
}

// TestSequenceCountersMoveToIDs: a version-1 store's counter, kept under
// the sequence's name, is found under the table and column ids after
// migration 2, so sequences continue where they stopped.
func TestSequenceCountersMoveToIDs(t *testing.T) {
	kv := open(t, "")
	defer kv.Close()
	if _, err := run(ctx, kv, env(), All()[:1]); err != nil {
		t.Fatal(err)
	}
	cat := catalog.New(keys.MakeCodec(keys.SystemTenantID))
	tbl := &catalog.Table{Name: "items", NextColumnID: 3, NextIndexID: 2,
		Columns: []catalog.Column{{ID: 1, Name: "id", Serial: true}, {ID: 2, Name: "name"}}}
	tbl.Primary = catalog.Index{ID: keys.PrimaryIndexID, Name: "items_pkey", Columns: []record.IndexColumn{{Column: 1}}, Unique: true}
	if err := kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		if err := cat.CreateTable(ctx, txn, tbl); err != nil {
			return err
		}
		_, err := cat.AdvanceCounter(ctx, txn, "seq/items_id_seq", 70)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, kv, env())
	if err != nil || len(res.Applied) != 1 {
		t.Fatalf("migration 2: %+v %v", res, err)
	}
	if err := kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		n, err := cat.AdvanceCounter(ctx, txn, catalog.SequenceCounter(tbl, tbl.Columns[0]), 1)
		if err == nil && n != 71 {
			t.Errorf("the sequence continues at %d, want 71", n)
		}
		old, err2 := cat.AdvanceCounter(ctx, txn, "seq/items_id_seq", 0)
		if err2 == nil && old != 0 {
			t.Errorf("the old counter is still there: %d", old)
		}
		return errors.Join(err, err2)
	}); err != nil {
		t.Fatal(err)
	}
}
