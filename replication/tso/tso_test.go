package tso_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shaledb/shaledb/replication/etcdtest"
	"github.com/shaledb/shaledb/replication/tso"
)

// etcdClient starts an etcd for the test and returns a client of it,
// closed when the test ends.
func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdtest.Start(t)}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// allocate waits for oracle o to be elected and takes one timestamp.
func allocate(t *testing.T, o *tso.Oracle) uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ts, err := o.Allocate(context.Background(), 1)
		if err == nil {
			return ts
		}
		if !errors.Is(err, tso.ErrNotLeader) || time.Now().After(deadline) {
			t.Fatalf("Allocate: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOracle checks that timestamps are unique and increasing under
// concurrency, that only the elected oracle serves, and that a new oracle
// — even one whose clock is far behind — starts above everything its
// predecessor handed out.
func TestOracle(t *testing.T) {
	cli := etcdClient(t)
	ctx := context.Background()
	a := tso.Start(cli, "c1", 1)
	first := allocate(t, a)
	// A candidate, not elected while a lives, whose clock is an hour slow.
	b := tso.StartWithClock(cli, "c1", 2, func() time.Time { return time.Now().Add(-time.Hour) })
	defer b.Close()
	if leader, err := tso.Leader(ctx, cli, "c1"); err != nil || leader != 1 {
		t.Fatalf("Leader = %d, %v; want 1", leader, err)
	}
	if _, err := b.Allocate(ctx, 1); !errors.Is(err, tso.ErrNotLeader) {
		t.Fatalf("the candidate allocated: %v", err)
	}

	// Concurrent allocations, some in batches, never overlap and grow.
	var mu sync.Mutex
	seen := map[uint64]bool{first: true}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := uint64(0)
			for i := 0; i < 500; i++ {
				n := 1 + i%3
				ts, err := a.Allocate(ctx, n)
				if err != nil {
					t.Error(err)
					return
				}
				if ts <= last {
					t.Errorf("timestamps went back: %d after %d", ts, last)
				}
				last = ts + uint64(n) - 1
				mu.Lock()
				for k := 0; k < n; k++ {
					if seen[ts+uint64(k)] {
						t.Errorf("timestamp %d handed out twice", ts+uint64(k))
					}
					seen[ts+uint64(k)] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var highest uint64
	for ts := range seen {
		highest = max(highest, ts)
	}

	// The leader goes; the candidate takes over and starts above it.
	a.Close()
	next := allocate(t, b)
	if next <= highest {
		t.Fatalf("the new oracle handed out %d, not above its predecessor's %d", next, highest)
	}
	if leader, err := tso.Leader(ctx, cli, "c1"); err != nil || leader != 2 {
		t.Fatalf("Leader = %d, %v; want 2", leader, err)
	}
}

// TestSchemaEpochs checks AllocateEpoch: timestamps share an epoch until a
// schema timestamp starts the next (which is that timestamp), and a new
// oracle starts an epoch no earlier one had.
func TestSchemaEpochs(t *testing.T) {
	cli := etcdClient(t)
	ctx := context.Background()
	a := tso.Start(cli, "c1", 1)
	allocate(t, a)
	_, e1, err := a.AllocateEpoch(ctx, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, e, err := a.AllocateEpoch(ctx, 1, false); err != nil || e != e1 {
		t.Fatalf("epoch %d (%v) after %d with no schema timestamp between", e, err, e1)
	}
	ts, e2, err := a.AllocateEpoch(ctx, 1, true)
	if err != nil || e2 != ts || e2 == e1 {
		t.Fatalf("schema timestamp %d: epoch %d (%v), want a new one (was %d)", ts, e2, err, e1)
	}
	if _, e, err := a.AllocateEpoch(ctx, 2, false); err != nil || e != e2 {
		t.Fatalf("epoch %d (%v) after the schema timestamp's %d", e, err, e2)
	}
	if _, _, err := a.AllocateEpoch(ctx, 2, true); err == nil {
		t.Fatal("two schema timestamps in one allocation")
	}
	b := tso.Start(cli, "c1", 2)
	defer b.Close()
	a.Close()
	allocate(t, b)
	if _, e, err := b.AllocateEpoch(ctx, 1, false); err != nil || e <= e2 {
		t.Fatalf("the new oracle's epoch %d (%v) is not new (the old one's was %d)", e, err, e2)
	}
}
