package registry

import (
	"context"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shaledb/shaledb/replication/etcdtest"
)

func client(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRegistry runs against a real etcd: ids are unique under concurrent
// allocation, registered nodes are alive, a node that stops renewing its
// lease (a crash) is dead once the lease expires, one that leaves is dead
// at once, and clusters do not see each other's nodes.
func TestRegistry(t *testing.T) {
	ctx := context.Background()
	endpoint := etcdtest.Start(t)
	r := New(client(t, endpoint), "c1")

	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker has its own connection, as nodes do.
			rw := New(client(t, endpoint), "c1")
			for i := 0; i < 5; i++ {
				id, err := rw.AllocateID(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d handed out twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Fatalf("%d distinct ids, want 40", len(seen))
	}

	var ms []*Membership
	for i, region := range []string{"eu", "us", "eu"} {
		m, err := r.Register(ctx, Node{ID: uint64(i + 1), Addr: "127.0.0.1:500" + string(rune('0'+i)), Region: region, CapacityBytes: 1 << 30}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	alive := func() []bool {
		ns, err := r.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []bool
		for i, n := range ns {
			if n.ID != uint64(i+1) {
				t.Fatalf("nodes out of order: %+v", ns)
			}
			out = append(out, n.Alive)
		}
		return out
	}
	if got := alive(); len(got) != 3 || !got[0] || !got[1] || !got[2] {
		t.Fatalf("alive after registering: %v", got)
	}
	// Node 2 leaves cleanly: dead at once.
	if err := ms[1].Close(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got := alive(); !got[0] || got[1] || !got[2] {
		t.Fatalf("after node 2 left: %v", got)
	}
	// Node 3 stops renewing: alive past its TTL while renewing, dead after.
	time.Sleep(1500 * time.Millisecond)
	if got := alive(); !got[2] {
		t.Fatalf("node 3 died while renewing its lease: %v", got)
	}
	if err := ms[2].Close(ctx, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive()[2] {
		if time.Now().After(deadline) {
			t.Fatal("node 3 still alive 10 s after it stopped renewing a 1 s lease")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := alive(); !got[0] {
		t.Fatalf("node 1 died with node 3: %v", got)
	}
	if ns, err := New(client(t, endpoint), "c2").Nodes(ctx); err != nil || len(ns) != 0 {
		t.Fatalf("another cluster sees %v, %v", ns, err)
	}
	_ = ms[0].Close(ctx, true)
}
