package raft_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// BenchmarkClusterVsSingleNode measures single-key write transactions
// (1 writer, then 8, closed loop, 2 s a phase) on the embedded single-node store
// and on a 3-node cluster through a node that is not the shard's leader,
// in the same run, and reports latency percentiles and the cluster's
// ratios to the single node. SHALEDB_BENCH_OUT names a file to write the
// report to.
func BenchmarkClusterVsSingleNode(b *testing.B) {
	single, err := badgerkv.Open(badgerkv.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer single.Close()
	c := rafttest.Start(b, rafttest.Options{Nodes: 3})
	gw := 0
	for i := 0; i < 3; i++ {
		for _, s := range c.Node(i).Shards() {
			if s.Leader != c.Node(i).ID() {
				gw = i
			}
		}
	}
	b.ResetTimer()
	for range b.N {
		s1 := writePhase(b, single, 1, 2*time.Second)
		m1 := writePhase(b, c.KV(gw), 1, 2*time.Second)
		s := writePhase(b, single, 8, 2*time.Second)
		m := writePhase(b, c.KV(gw), 8, 2*time.Second)
		report := fmt.Sprintf("%s (the 3 nodes share this machine's cores: every write is stored and applied three times on them)\n"+
			"1 writer:  single node: %s\n           3-node cluster: %s\n           ratios (cluster/single): p50 %.2fx, p99 %.2fx, throughput %.2fx\n"+
			"8 writers: single node: %s\n           3-node cluster: %s\n           ratios (cluster/single): p50 %.2fx, p99 %.2fx, throughput %.2fx\n",
			time.Now().UTC().Format(time.RFC3339),
			s1, m1, float64(m1.p(50))/float64(s1.p(50)), float64(m1.p(99))/float64(s1.p(99)), m1.rate/s1.rate,
			s, m, float64(m.p(50))/float64(s.p(50)), float64(m.p(99))/float64(s.p(99)), m.rate/s.rate)
		b.ReportMetric(float64(s.p(99).Microseconds()), "single-p99-µs")
		b.ReportMetric(float64(m.p(99).Microseconds()), "cluster-p99-µs")
		b.ReportMetric(float64(m.p(99))/float64(s.p(99)), "p99-ratio")
		b.ReportMetric(m.rate/s.rate, "throughput-ratio")
		b.Log("\n" + report)
		writeReport(b, report, false)
	}
}

// writeReport writes a benchmark's report to the file SHALEDB_BENCH_OUT
// names, if any (after what it holds, with appendTo).
func writeReport(b *testing.B, report string, appendTo bool) {
	out := os.Getenv("SHALEDB_BENCH_OUT")
	if out == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		b.Fatal(err)
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(out, flags, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	_, err = f.WriteString(report)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
}

type phase struct {
	lat  []time.Duration // sorted
	rate float64
	errs int
}

func (ph phase) p(q float64) time.Duration {
	if len(ph.lat) == 0 {
		return 0
	}
	return ph.lat[min(len(ph.lat)-1, int(float64(len(ph.lat))*q/100))]
}

func (ph phase) String() string {
	return fmt.Sprintf("%d writes, %.0f/s, p50 %v p99 %v p99.9 %v, %d errors",
		len(ph.lat), ph.rate, ph.p(50).Round(time.Microsecond), ph.p(99).Round(time.Microsecond), ph.p(99.9).Round(time.Microsecond), ph.errs)
}

func writePhase(b *testing.B, kv kvcluster.KvCluster, writers int, d time.Duration) phase {
	return runPhase(b, kv, writers, d, func(ctx context.Context, txn kvcluster.Txn, w, i int) error {
		return txn.Put(ctx, fmt.Appendf(nil, "bench/%d/%d", w, i%1000), []byte("value-of-some-100-bytes-value-of-some-100-bytes-value-of-some-100-bytes-value-of-some-100-bytes-"))
	})
}

// runPhase runs write transactions, each doing op (the writer's number
// w, its transaction's number i), from writers writers in a closed loop
// for d, and returns their latencies.
func runPhase(b *testing.B, kv kvcluster.KvCluster, writers int, d time.Duration, op func(ctx context.Context, txn kvcluster.Txn, w, i int) error) phase {
	ctx := context.Background()
	var mu sync.Mutex
	var ph phase
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for i := 0; time.Since(start) < d; i++ {
				t0 := time.Now()
				err := kvcluster.Update(ctx, kv, 1, func(txn kvcluster.Txn) error { return op(ctx, txn, w, i) })
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			ph.lat = append(ph.lat, lat...)
			ph.errs += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(ph.lat)
	ph.rate = float64(len(ph.lat)) / time.Since(start).Seconds()
	return ph
}

// BenchmarkCrossShard measures two-key write transactions on a 3-node
// cluster whose keys lie on two shards, through a node that leads
// neither: both keys on one shard (the one-round fast path), then one on
// each (two-phase commit), 1 writer and then 4, closed loop, 2 s a phase,
// in the same run. It reports latency percentiles and the cross-shard to
// single-shard ratios. SHALEDB_BENCH_OUT names a file to write the report
// to; SHALEDB_BENCH_SINGLE_ONLY runs the single-shard phases alone (to
// compare with a build without cross-shard commits).
func BenchmarkCrossShard(b *testing.B) {
	c := rafttest.Start(b, rafttest.Options{Nodes: 3, ShardMaxBytes: 1, SplitKey: func(start, end, _ []byte) []byte {
		k := []byte("xs/b")
		if string(start) < string(k) && (end == nil || string(k) < string(end)) {
			return k
		}
		return nil
	}})
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); ; {
		_ = kvcluster.Update(ctx, c.KV(0), 5, func(txn kvcluster.Txn) error {
			return txn.Put(ctx, []byte("xs/b/fill"), []byte("x"))
		})
		if len(c.Node(0).Shards()) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the shard did not split")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // leaders settle
	// A gateway that leads neither shard, if there is one.
	gw := 0
	for i := range 3 {
		leads := false
		for _, s := range c.Node(i).Shards() {
			leads = leads || s.Leader == c.Node(i).ID()
		}
		if !leads {
			gw = i
		}
	}
	pair := func(cross bool) func(w, i int) (string, string) {
		return func(w, i int) (string, string) {
			if cross {
				return fmt.Sprintf("xs/a/%d/%d", w, i%1000), fmt.Sprintf("xs/b/%d/%d", w, i%1000)
			}
			return fmt.Sprintf("xs/a/%d/%d", w, i%1000), fmt.Sprintf("xs/a/%d/%d/2", w, i%1000)
		}
	}
	singleOnly := os.Getenv("SHALEDB_BENCH_SINGLE_ONLY") != ""
	b.ResetTimer()
	for range b.N {
		s1 := pairPhase(b, c.KV(gw), 1, 2*time.Second, pair(false))
		s4 := pairPhase(b, c.KV(gw), 4, 2*time.Second, pair(false))
		report := fmt.Sprintf("%s two-key write transactions, 3-node cluster (shared cores), through node %d\n"+
			"single-shard, 1 writer:  %s\nsingle-shard, 4 writers: %s\n",
			time.Now().UTC().Format(time.RFC3339), gw, s1, s4)
		if !singleOnly {
			x1 := pairPhase(b, c.KV(gw), 1, 2*time.Second, pair(true))
			x4 := pairPhase(b, c.KV(gw), 4, 2*time.Second, pair(true))
			report += fmt.Sprintf("cross-shard, 1 writer:   %s\ncross-shard, 4 writers:  %s\n"+
				"ratios (cross/single): 1 writer p50 %.2fx p99 %.2fx; 4 writers p50 %.2fx p99 %.2fx, throughput %.2fx\n",
				x1, x4, float64(x1.p(50))/float64(s1.p(50)), float64(x1.p(99))/float64(s1.p(99)),
				float64(x4.p(50))/float64(s4.p(50)), float64(x4.p(99))/float64(s4.p(99)), x4.rate/s4.rate)
			b.ReportMetric(float64(x1.p(99).Microseconds()), "cross-p99-µs")
		}
		b.ReportMetric(float64(s1.p(99).Microseconds()), "single-p99-µs")
		b.Log("\n" + report)
		writeReport(b, report, true)
	}
}

// pairPhase runs two-key write transactions, keys from pair, for d.
func pairPhase(b *testing.B, kv kvcluster.KvCluster, writers int, d time.Duration, pair func(w, i int) (string, string)) phase {
	return runPhase(b, kv, writers, d, func(ctx context.Context, txn kvcluster.Txn, w, i int) error {
		k1, k2 := pair(w, i)
		if err := txn.Put(ctx, []byte(k1), []byte("value-of-some-bytes")); err != nil {
			return err
		}
		return txn.Put(ctx, []byte(k2), []byte("value-of-some-bytes"))
	})
}

// BenchmarkMoveTenant moves a span (a tenant's, in SQL) between two
// regions of three nodes each, there and back, while 4 writers write
// single-key transactions into it through a node of each region, and
// reports how long each move took and the write stall: the latency
// percentiles and the slowest write during the move, and the longest gap
// between two acknowledged writes. SHALEDB_BENCH_OUT names a file to
// write the report to.
func BenchmarkMoveTenant(b *testing.B) {
	c := rafttest.Start(b, rafttest.Options{Nodes: 6, Regions: []string{"r1", "r1", "r1", "r2", "r2", "r2"}})
	ctx := context.Background()
	// Replicas spread over the six nodes first.
	time.Sleep(3 * time.Second)
	b.ResetTimer()
	for range b.N {
		report := fmt.Sprintf("%s moving a span between regions of 3 nodes (6 nodes share this machine's cores), 4 writers\n",
			time.Now().UTC().Format(time.RFC3339))
		for _, region := range []string{"r2", "r1"} {
			var mu sync.Mutex
			var lat []time.Duration
			var last time.Time
			var gap time.Duration
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					kv := c.KV([]int{0, 3}[w%2])
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						t0 := time.Now()
						err := kvcluster.Update(ctx, kv, 5, func(txn kvcluster.Txn) error {
							return txn.Put(ctx, fmt.Appendf(nil, "mv/%d/%d", w, i%500), []byte("value"))
						})
						now := time.Now()
						if err != nil {
							continue
						}
						mu.Lock()
						lat = append(lat, now.Sub(t0))
						if !last.IsZero() && now.Sub(last) > gap {
							gap = now.Sub(last)
						}
						last = now
						mu.Unlock()
					}
				}()
			}
			time.Sleep(500 * time.Millisecond)
			start := time.Now()
			mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			err := c.KV(0).PlaceSpan(mctx, []byte("mv/"), []byte("mv0"), region)
			cancel()
			took := time.Since(start)
			time.Sleep(500 * time.Millisecond)
			close(stop)
			wg.Wait()
			if err != nil {
				b.Fatalf("move to %s: %v", region, err)
			}
			slices.Sort(lat)
			ph := phase{lat: lat, rate: float64(len(lat)) / (took + time.Second).Seconds()}
			report += fmt.Sprintf("to %s: moved in %v; writes around it: %s; slowest %v; longest gap between acknowledged writes %v\n",
				region, took.Round(time.Millisecond), ph, lat[len(lat)-1].Round(time.Millisecond), gap.Round(time.Millisecond))
			b.ReportMetric(float64(gap.Milliseconds()), "stall-ms-"+region)
		}
		b.Log("\n" + report)
		writeReport(b, report, false)
	}
}
