package badgerkv_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
)

// These benchmarks run on disk with durable commits, as a node does. Each
// reports throughput and latency percentiles; `make bench-kv` writes them to
// benchmarks/results/.

func openBench(b *testing.B) *badgerkv.Store {
	b.Helper()
	s, err := badgerkv.Open(badgerkv.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// latencies collects per-operation durations from many goroutines.
type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	slices.Sort(l.all)
	q := func(p float64) float64 {
		if len(l.all) == 0 {
			return 0
		}
		return float64(l.all[min(len(l.all)-1, int(p*float64(len(l.all))))].Microseconds())
	}
	b.ReportMetric(float64(len(l.all))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(q(0.999), "p99.9-µs")
}

func benchKey(i int) []byte {
	k := make([]byte, 0, 16)
	k = append(k, "bench/"...)
	return binary.BigEndian.AppendUint64(k, uint64(i))
}

// runWorkers splits b.N operations over workers goroutines, timing each.
func runWorkers(b *testing.B, workers int, op func(i int) error) {
	var next atomic.Int64
	var lat latencies
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/workers+1)
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			lat.add(local)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	lat.report(b, elapsed)
}

func commitOne(s *badgerkv.Store, key, value []byte) error {
	ctx := context.Background()
	txn, err := s.Begin(ctx, kvcluster.TxnOptions{})
	if err != nil {
		return err
	}
	defer txn.Rollback()
	if err := txn.Put(ctx, key, value); err != nil {
		return err
	}
	return txn.Commit(ctx)
}

// BenchmarkDurableCommit: single-key durable commits from 1 and 8
// concurrent committers (distinct keys, so no conflicts).
func BenchmarkDurableCommit(b *testing.B) {
	for _, committers := range []int{1, 8} {
		b.Run(fmt.Sprintf("committers=%d", committers), func(b *testing.B) {
			s := openBench(b)
			val := make([]byte, 100)
			runWorkers(b, committers, func(i int) error { return commitOne(s, benchKey(i), val) })
		})
	}
}

// BenchmarkTxn10Keys: durable transactions writing 10 keys each, 8
// committers.
func BenchmarkTxn10Keys(b *testing.B) {
	s := openBench(b)
	val := make([]byte, 100)
	ctx := context.Background()
	runWorkers(b, 8, func(i int) error {
		return kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
			for k := 0; k < 10; k++ {
				if err := txn.Put(ctx, benchKey(i*10+k), val); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

const preloadKeys = 100_000

func preload(b *testing.B, s *badgerkv.Store) {
	b.Helper()
	ctx := context.Background()
	val := make([]byte, 100)
	for base := 0; base < preloadKeys; base += 10_000 {
		err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
			for i := base; i < base+10_000; i++ {
				if err := txn.Put(ctx, benchKey(i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPointGet: one Get in its own read-only transaction over 100k
// keys, one reader.
func BenchmarkPointGet(b *testing.B) {
	s := openBench(b)
	preload(b, s)
	ctx := context.Background()
	runWorkers(b, 1, func(i int) error {
		return kvcluster.View(ctx, s, func(txn kvcluster.Txn) error {
			_, ok, err := txn.Get(ctx, benchKey((i*7919)%preloadKeys))
			if err == nil && !ok {
				err = fmt.Errorf("key %d missing", i)
			}
			return err
		})
	})
}

// BenchmarkScan100: a 100-key forward range scan in its own read-only
// transaction, one reader.
func BenchmarkScan100(b *testing.B) {
	s := openBench(b)
	preload(b, s)
	ctx := context.Background()
	runWorkers(b, 1, func(i int) error {
		return kvcluster.View(ctx, s, func(txn kvcluster.Txn) error {
			start := (i * 7919) % (preloadKeys - 100)
			kvs, err := txn.Scan(ctx, benchKey(start), nil, kvcluster.ScanOptions{Limit: 100})
			if err == nil && len(kvs) != 100 {
				err = fmt.Errorf("scan returned %d entries", len(kvs))
			}
			return err
		})
	})
}
