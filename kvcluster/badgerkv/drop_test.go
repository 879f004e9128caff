package badgerkv

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/shaledb/shaledb/kvcluster"
)

// TestDropPrefix checks that DropPrefix removes every key under the
// prefix, durably, and nothing else, and that commits go on after it.
func TestDropPrefix(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "ab", "b"} {
		for round := 0; round < 2; round++ {
			err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
				for i := 0; i < 500; i++ {
					if err := txn.Put(ctx, fmt.Appendf(nil, "%s/%04d", p, i), fmt.Appendf(nil, "v%d", round)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DropPrefix(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.DropPrefix(ctx, nil); !errors.Is(err, kvcluster.ErrInvalidArgument) {
		t.Fatalf("empty prefix: %v", err)
	}
	if err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error { return txn.Put(ctx, []byte("c"), nil) }); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store) {
		t.Helper()
		var got []kvcluster.KeyValue
		err := kvcluster.View(ctx, s, func(txn kvcluster.Txn) error {
			return kvcluster.ScanAll(ctx, txn, nil, nil, 100, func(kv kvcluster.KeyValue) error {
				got = append(got, kv)
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 501 || string(got[0].Key) != "b/0000" || string(got[0].Value) != "v1" || string(got[500].Key) != "c" {
			t.Fatalf("after drop: %d keys, first %q", len(got), got[0].Key)
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s)
}
