package badgerkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/shaledb/shaledb/kvcluster"
)

// TestSpillReadsOwnWrites drives one transaction far past its memory
// buffer with random puts, overwrites and deletes over keys that are also
// committed, and checks every Get and Scan (forward, reverse, limited)
// against a model, before and after commit.
func TestSpillReadsOwnWrites(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, MemTableBytes: 8 << 20, TxnMemoryBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	key := func(i int) []byte { return fmt.Appendf(nil, "k%05d", i) }
	const keys = 3000
	model := map[string]string{}
	// Committed before: every third key.
	if err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
		for i := 0; i < keys; i += 3 {
			if err := txn.Put(ctx, key(i), []byte("old")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < keys; i += 3 {
		model[string(key(i))] = "old"
	}
	rng := rand.New(rand.NewPCG(1, 2))
	txn, err := s.Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check := func(txn kvcluster.Txn) {
		t.Helper()
		for range 50 {
			k := key(rng.IntN(keys))
			v, found, err := txn.Get(ctx, k)
			want, ok := model[string(k)]
			if err != nil || found != ok || string(v) != want {
				t.Fatalf("Get(%s) = %q, %v, %v; want %q, %v", k, v, found, err, want, ok)
			}
		}
		var sorted []string
		for k := range model {
			sorted = append(sorted, k)
		}
		slices.Sort(sorted)
		for range 20 {
			lo, hi := rng.IntN(keys), rng.IntN(keys)
			lo, hi = min(lo, hi), max(lo, hi)+1
			limit := 1 + rng.IntN(200)
			reverse := rng.IntN(2) == 0
			got, err := txn.Scan(ctx, key(lo), key(hi), kvcluster.ScanOptions{Limit: limit, Reverse: reverse})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, k := range sorted {
				if k >= string(key(lo)) && k < string(key(hi)) {
					want = append(want, k)
				}
			}
			if reverse {
				slices.Reverse(want)
			}
			want = want[:min(limit, len(want))]
			if len(got) != len(want) {
				t.Fatalf("Scan [%d,%d) limit %d reverse %v: %d rows, want %d", lo, hi, limit, reverse, len(got), len(want))
			}
			for i, kv := range got {
				if string(kv.Key) != want[i] || string(kv.Value) != model[want[i]] {
					t.Fatalf("Scan row %d = %s=%s, want %s=%s", i, kv.Key, kv.Value, want[i], model[want[i]])
				}
			}
		}
	}
	for round := range 8 {
		for range 2000 {
			k := key(rng.IntN(keys))
			if rng.IntN(4) == 0 {
				if err := txn.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
				delete(model, string(k))
				continue
			}
			v := fmt.Sprintf("r%d-%s", round, bytes.Repeat([]byte("v"), rng.IntN(40)))
			if err := txn.Put(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
			model[string(k)] = v
		}
		check(txn)
	}
	if tx, _ := txn.(interface{ spilled() bool }); tx == nil || !tx.spilled() {
		t.Fatal("the transaction never spilled")
	}
	if err := txn.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if spills := spillDirs(t, dir); len(spills) != 0 {
		t.Fatalf("spills left after commit: %v", spills)
	}
	after, err := s.Begin(ctx, kvcluster.TxnOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check(after)
	after.Rollback()
}

func spillDirs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, spillDirName, "shaledb-spill-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSpillLifecycle: a rolled-back spilling transaction leaves nothing, a
// spill a crash left is removed at Open, and a concurrent transaction that
// wrote a key of a large spilled commit it did not see gets a conflict
// while one writing other keys commits.
func TestSpillLifecycle(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, spillDirName, "shaledb-spill-crashed")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Dir: dir, MemTableBytes: 8 << 20, TxnMemoryBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale spill not removed at Open: %v", err)
	}
	ctx := context.Background()
	fill := func(txn kvcluster.Txn, prefix string) {
		for i := range 5000 {
			if err := txn.Put(ctx, fmt.Appendf(nil, "%s%05d", prefix, i), []byte("value")); err != nil {
				t.Fatal(err)
			}
		}
	}
	rolled, _ := s.Begin(ctx, kvcluster.TxnOptions{})
	fill(rolled, "r")
	if len(spillDirs(t, dir)) != 1 {
		t.Fatal("expected one spill")
	}
	rolled.Rollback()
	if spills := spillDirs(t, dir); len(spills) != 0 {
		t.Fatalf("spills left after rollback: %v", spills)
	}

	// Transactions that began before the large commit.
	var overlapping, disjoint []kvcluster.Txn
	for i := range 200 {
		a, _ := s.Begin(ctx, kvcluster.TxnOptions{})
		if err := a.Put(ctx, fmt.Appendf(nil, "big%05d", i*7), []byte("mine")); err != nil {
			t.Fatal(err)
		}
		overlapping = append(overlapping, a)
		b, _ := s.Begin(ctx, kvcluster.TxnOptions{})
		if err := b.Put(ctx, fmt.Appendf(nil, "other%05d", i), []byte("mine")); err != nil {
			t.Fatal(err)
		}
		disjoint = append(disjoint, b)
	}
	big, _ := s.Begin(ctx, kvcluster.TxnOptions{})
	fill(big, "big")
	if err := big.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range overlapping {
		if err := a.Commit(ctx); !errors.Is(err, kvcluster.ErrWriteConflict) {
			t.Fatalf("overlapping commit: %v, want a write conflict", err)
		}
	}
	for _, b := range disjoint {
		if err := b.Commit(ctx); err != nil {
			t.Fatalf("disjoint commit: %v", err)
		}
	}
}

// spilled reports whether the transaction has a spill.
func (t *txn) spilled() bool { return t.spill != nil }
