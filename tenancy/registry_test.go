package tenancy

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/sql/keys"
)

var ctx = context.Background()

func TestValidateName(t *testing.T) {
	for _, good := range []string{"acme", "_x", "a1", "a_b$c", string(make([]byte, 0)) + "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc"} {
		if err := ValidateName(good); err != nil {
			t.Errorf("%q rejected: %v", good, err)
		}
	}
	for _, bad := range []string{"", "Acme", "1abc", "a-b", "a b", "$a", "é", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd"} {
		if err := ValidateName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCreateLookupList(t *testing.T) {
	kv, err := badgerkv.Open(badgerkv.Options{InMemory: true, MemTableBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	const n = 1500 // more than one page of List
	err = kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		for i := 0; i < n; i++ {
			tn, err := Create(ctx, txn, fmt.Sprintf("t%04d", i), now)
			if err != nil {
				return err
			}
			if tn.ID != keys.TenantID(i+1) {
				return fmt.Errorf("tenant %d got id %d", i, tn.ID)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error {
		if _, err := Create(ctx, txn, "t0007", now); !errors.Is(err, ErrTenantExists) {
			t.Fatalf("duplicate: got %v", err)
		}
		if _, err := Create(ctx, txn, "Bad", now); !errors.Is(err, ErrInvalidName) {
			t.Fatalf("bad name: got %v", err)
		}
		tn, found, err := Lookup(ctx, txn, "t0007")
		if err != nil || !found || tn.ID != 8 || !tn.CreatedAt.Equal(now) {
			t.Fatalf("lookup: %+v %v %v", tn, found, err)
		}
		if _, found, _ := Lookup(ctx, txn, "nobody"); found {
			t.Fatal("found a tenant never created")
		}
		count, prev := 0, ""
		if err := List(ctx, txn, func(tn Tenant) bool {
			if tn.Name <= prev {
				t.Fatalf("List out of order: %q after %q", tn.Name, prev)
			}
			prev = tn.Name
			count++
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if count != n {
			t.Fatalf("List returned %d tenants, want %d", count, n)
		}
		return nil
	})
}
