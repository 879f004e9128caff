package record_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/record"
	"github.com/shaledb/shaledb/sql/value"
)

var ctx = context.Background()

// accounts(id bigint, region text, balance numeric, note text),
// primary key (region, id DESC), index on balance, unique index on note.
func accounts() *record.Table {
	return &record.Table{
		ID: keys.FirstUserTableID,
		Columns: []record.Column{
			{ID: 1, Name: "id", Kind: value.KindInt},
			{ID: 2, Name: "region", Kind: value.KindText},
			{ID: 3, Name: "balance", Kind: value.KindNumeric},
			{ID: 4, Name: "note", Kind: value.KindText},
		},
		Primary: record.Index{ID: keys.PrimaryIndexID, Columns: []record.IndexColumn{{Column: 2}, {Column: 1, Dir: encoding.Descending}}},
	}
}

var (
	byBalance = &record.Index{ID: 2, Columns: []record.IndexColumn{{Column: 3}}}
	byNote    = &record.Index{ID: 3, Columns: []record.IndexColumn{{Column: 4}}, Unique: true}
)

func openStore(t *testing.T) kvcluster.KvCluster {
	s, err := badgerkv.Open(badgerkv.Options{InMemory: true, MemTableBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func num(s string) value.Numeric {
	n, err := value.ParseNumeric(s)
	if err != nil {
		panic(err)
	}
	return n
}

func row(id int, region, balance string, note value.Value) []value.Value {
	return []value.Value{value.Int(id), value.Text(region), num(balance), note}
}

// insert writes a row and its index entries, failing on a unique collision
// as the executor will.
func insert(t *testing.T, txn kvcluster.Txn, c keys.Codec, tbl *record.Table, r []value.Value) error {
	t.Helper()
	k, v, err := tbl.EncodeRow(c, r)
	if err != nil {
		return err
	}
	if err := txn.Put(ctx, k, v); err != nil {
		return err
	}
	for _, idx := range []*record.Index{byBalance, byNote} {
		k, v, err := tbl.EncodeIndexEntry(c, idx, r)
		if err != nil {
			return err
		}
		if idx.Unique {
			if _, found, err := txn.Get(ctx, k); err != nil {
				return err
			} else if found {
				return fmt.Errorf("duplicate key in unique index %d", idx.ID)
			}
		}
		if err := txn.Put(ctx, k, v); err != nil {
			return err
		}
	}
	return nil
}

func TestRowsRoundTripInPrimaryKeyOrder(t *testing.T) {
	kv := openStore(t)
	tbl := accounts()
	if err := tbl.Validate(); err != nil {
		t.Fatal(err)
	}
	c := keys.MakeCodec(42)
	r := rand.New(rand.NewPCG(41, 42))
	var rows [][]value.Value
	err := kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		for i := 0; i < 300; i++ {
			rw := row(i, []string{"eu", "us", "ap", ""}[r.IntN(4)], fmt.Sprintf("%d.%02d", r.IntN(2000)-1000, r.IntN(100)), value.Text(fmt.Sprintf("note %d", i)))
			if i%10 == 0 {
				rw[3] = value.Null{}
			}
			rows = append(rows, rw)
			if err := insert(t, txn, c, tbl, rw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Expected order: region ascending, then id descending.
	slices.SortFunc(rows, func(a, b []value.Value) int {
		if x := value.Compare(a[1], b[1]); x != 0 {
			return x
		}
		return -value.Compare(a[0], b[0])
	})
	start, end := c.IndexSpan(tbl.ID, keys.PrimaryIndexID)
	var got [][]value.Value
	_ = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		kvs, err := txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range kvs {
			rw, err := tbl.DecodeRow(c, e.Key, e.Value)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rw)
		}
		return nil
	})
	if len(got) != len(rows) {
		t.Fatalf("scanned %d rows, wrote %d", len(got), len(rows))
	}
	for i := range rows {
		for j := range rows[i] {
			if value.Compare(rows[i][j], got[i][j]) != 0 || rows[i][j].String() != got[i][j].String() {
				t.Fatalf("row %d col %d: got %v, want %v", i, j, got[i][j], rows[i][j])
			}
		}
	}
	// The balance index scans in balance order and leads back to each row.
	bs, be := c.IndexSpan(tbl.ID, byBalance.ID)
	_ = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		kvs, _ := txn.Scan(ctx, bs, be, kvcluster.ScanOptions{Limit: 1000})
		if len(kvs) != len(rows) {
			t.Fatalf("balance index has %d entries, want %d", len(kvs), len(rows))
		}
		var prev value.Value
		for _, e := range kvs {
			indexed, pk, err := tbl.DecodeIndexEntry(c, byBalance, e.Key, e.Value)
			if err != nil {
				t.Fatal(err)
			}
			if prev != nil && value.Compare(prev, indexed[0]) > 0 {
				t.Fatalf("balance index out of order: %v after %v", indexed[0], prev)
			}
			prev = indexed[0]
			pkKey, _ := tbl.PrimaryKey(c, pk)
			v, found, err := txn.Get(ctx, pkKey)
			if err != nil || !found {
				t.Fatalf("index entry points at a missing row: %v %v", found, err)
			}
			rw, _ := tbl.DecodeRow(c, pkKey, v)
			if value.Compare(rw[2], indexed[0]) != 0 {
				t.Fatalf("index entry %v points at a row with balance %v", indexed[0], rw[2])
			}
		}
		return nil
	})
}

func TestUniqueIndexCollidesExceptOnNull(t *testing.T) {
	kv := openStore(t)
	tbl, c := accounts(), keys.MakeCodec(7)
	err := kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		if err := insert(t, txn, c, tbl, row(1, "eu", "1", value.Text("same"))); err != nil {
			return err
		}
		if err := insert(t, txn, c, tbl, row(2, "eu", "1", value.Null{})); err != nil {
			return err
		}
		return insert(t, txn, c, tbl, row(3, "eu", "1", value.Null{}))
	})
	if err != nil {
		t.Fatalf("NULLs in a unique index must not collide: %v", err)
	}
	err = kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		return insert(t, txn, c, tbl, row(4, "us", "2", value.Text("same")))
	})
	if err == nil {
		t.Fatal("a duplicate in a unique index was accepted")
	}
}

// TestAddColumnNeedsNoRewrite: rows written before a column existed read
// with the column's Missing value; a NULL written after stays NULL.
func TestAddColumnNeedsNoRewrite(t *testing.T) {
	kv := openStore(t)
	tbl, c := accounts(), keys.MakeCodec(9)
	if err := kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		return insert(t, txn, c, tbl, row(1, "eu", "5", value.Text("old")))
	}); err != nil {
		t.Fatal(err)
	}
	tbl.Columns = append(tbl.Columns, record.Column{ID: 5, Name: "active", Kind: value.KindBool, Missing: value.Bool(true)})
	newRow := append(row(2, "eu", "6", value.Text("new")), value.Null{})
	if err := kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		k, v, err := tbl.EncodeRow(c, newRow)
		if err != nil {
			return err
		}
		return txn.Put(ctx, k, v)
	}); err != nil {
		t.Fatal(err)
	}
	start, end := c.IndexSpan(tbl.ID, keys.PrimaryIndexID)
	_ = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		kvs, _ := txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: 10})
		want := map[string]string{"1": "t", "2": "NULL"}
		for _, e := range kvs {
			rw, err := tbl.DecodeRow(c, e.Key, e.Value)
			if err != nil {
				t.Fatal(err)
			}
			if got := rw[4].String(); got != want[rw[0].String()] {
				t.Errorf("row %v: active = %s, want %s", rw[0], got, want[rw[0].String()])
			}
		}
		return nil
	})
	// Dropping a column: readers that no longer know it skip it.
	tbl.Columns = slices.Delete(tbl.Columns, 3, 4) // note
	_ = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		kvs, _ := txn.Scan(ctx, start, end, kvcluster.ScanOptions{Limit: 10})
		for _, e := range kvs {
			rw, err := tbl.DecodeRow(c, e.Key, e.Value)
			if err != nil || len(rw) != 4 {
				t.Fatalf("after drop: %v %v", rw, err)
			}
		}
		return nil
	})
}

// TestTenantsAreApart: the same table in two tenants shares no key, and a
// scan of one tenant's table never returns the other's rows.
func TestTenantsAreApart(t *testing.T) {
	kv := openStore(t)
	tbl := accounts()
	a, b := keys.MakeCodec(1), keys.MakeCodec(2)
	if err := kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		for i := 0; i < 20; i++ {
			if err := insert(t, txn, a, tbl, row(i, "eu", "1", value.Text(fmt.Sprint("a", i)))); err != nil {
				return err
			}
			if err := insert(t, txn, b, tbl, row(i, "eu", "1", value.Text(fmt.Sprint("b", i)))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []keys.Codec{a, b} {
		ts, te := c.TenantSpan()
		_ = kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
			kvs, _ := txn.Scan(ctx, ts, te, kvcluster.ScanOptions{Limit: 1000})
			if len(kvs) != 60 {
				t.Fatalf("tenant %d span holds %d entries, want 60", c.Tenant(), len(kvs))
			}
			for _, e := range kvs {
				d, err := keys.DecodeTenantKey(e.Key)
				if err != nil || d.Tenant != c.Tenant() {
					t.Fatalf("key % x in tenant %d's span decodes as %+v %v", e.Key, c.Tenant(), d, err)
				}
				if d.Index == keys.PrimaryIndexID {
					rw, err := tbl.DecodeRow(c, e.Key, e.Value)
					if err != nil || !bytes.HasPrefix([]byte(rw[3].String()), []byte{"ab"[c.Tenant()-1]}) {
						t.Fatalf("tenant %d read row %v (%v)", c.Tenant(), rw, err)
					}
				}
			}
			return nil
		})
	}
}

func TestRowErrors(t *testing.T) {
	tbl, c := accounts(), keys.MakeCodec(3)
	if _, _, err := tbl.EncodeRow(c, []value.Value{value.Int(1)}); err == nil {
		t.Error("short row accepted")
	}
	if _, _, err := tbl.EncodeRow(c, []value.Value{value.Text("x"), value.Text("eu"), num("1"), value.Null{}}); err == nil {
		t.Error("wrong kind accepted")
	}
	if _, _, err := tbl.EncodeRow(c, []value.Value{value.Int(1), value.Null{}, num("1"), value.Null{}}); err == nil {
		t.Error("NULL primary key accepted")
	}
	k, v, _ := tbl.EncodeRow(c, row(1, "eu", "1", value.Null{}))
	if _, err := tbl.DecodeRow(keys.MakeCodec(4), k, v); err == nil {
		t.Error("a row of tenant 3 decoded with tenant 4's codec")
	}
}
