// Command kvbaseline puts ShaleDB's storage layer side by side with
// PostgreSQL 15 in one run, on the same disk, durability on for both:
//
//   - commit: durable single-key writes from 1 and 8 concurrent clients
//     (ShaleDB: one KvCluster transaction with one Put; PostgreSQL: one
//     autocommit single-row INSERT through pgbench, prepared);
//   - point-read: one key read from 1 client (ShaleDB: a read-only
//     transaction with one Get; PostgreSQL: a primary-key SELECT).
//
// PostgreSQL runs its whole SQL stack over loopback here, ShaleDB only its
// storage layer in-process; the ratios show how much headroom the SQL and
// wire layers (issue 3) have before ShaleDB falls behind PostgreSQL, not a
// like-for-like SQL comparison. Results go to
// benchmarks/results/<date>-kv-vs-postgres.{json,md}.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	pgbenchrun "github.com/shaledb/shaledb/benchmarks/pgbench"
	"github.com/shaledb/shaledb/benchmarks/pgserver"
	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/badgerkv"
)

// result is one workload on one system.
type result struct {
	System   string  `json:"system"`
	Workload string  `json:"workload"`
	Clients  int     `json:"clients"`
	Ops      int     `json:"ops"`
	OpsPerS  float64 `json:"ops_per_s"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
	P999us   float64 `json:"p999_us"`
}

func summarize(system, workload string, clients int, lat []time.Duration, elapsed time.Duration) result {
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e3
	}
	return result{System: system, Workload: workload, Clients: clients, Ops: len(lat),
		OpsPerS: float64(len(lat)) / elapsed.Seconds(), P50us: q(0.5), P99us: q(0.99), P999us: q(0.999)}
}

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each measured run")
	out := flag.String("out", "benchmarks/results", "directory for the results files")
	flag.Parse()
	if err := run(context.Background(), *duration, *out, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kvbaseline:", err)
		os.Exit(1)
	}
}

const preloadKeys = 100_000

func run(ctx context.Context, d time.Duration, outDir string, w io.Writer) error {
	tmp, err := os.MkdirTemp("", "kvbaseline-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	store, err := badgerkv.Open(badgerkv.Options{Dir: filepath.Join(tmp, "shaledb")})
	if err != nil {
		return err
	}
	defer store.Close()
	pg, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return err
	}
	defer pg.Stop()
	if _, err := pg.Exec(ctx, "postgres", `CREATE TABLE kv (k bigserial PRIMARY KEY, v bytea NOT NULL);
		INSERT INTO kv (v) SELECT decode(repeat('00', 100), 'hex') FROM generate_series(1, `+strconv.Itoa(preloadKeys)+`);
		VACUUM ANALYZE kv;`); err != nil {
		return err
	}
	if err := preload(ctx, store); err != nil {
		return err
	}
	var results []result
	for _, clients := range []int{1, 8} {
		fmt.Fprintf(w, "commit, %d clients, %v each…\n", clients, d)
		r, err := shaleCommits(ctx, store, clients, d)
		if err != nil {
			return err
		}
		results = append(results, r)
		r, err = pgbench(ctx, pg, tmp, "commit", clients, d, "INSERT INTO kv (v) VALUES (decode(repeat('00', 100), 'hex'));\n")
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	fmt.Fprintf(w, "point-read, 1 client, %v each…\n", d)
	r, err := shaleReads(ctx, store, d)
	if err != nil {
		return err
	}
	results = append(results, r)
	r, err = pgbench(ctx, pg, tmp, "point-read", 1, d, fmt.Sprintf("\\set k random(1, %d)\nSELECT v FROM kv WHERE k = :k;\n", preloadKeys))
	if err != nil {
		return err
	}
	results = append(results, r)
	return write(outDir, results, w)
}

func key(i int) []byte { return binary.BigEndian.AppendUint64([]byte("kv/"), uint64(i)) }

func preload(ctx context.Context, s kvcluster.KvCluster) error {
	val := make([]byte, 100)
	for base := 0; base < preloadKeys; base += 10_000 {
		err := kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
			for i := base; i < base+10_000; i++ {
				if err := txn.Put(ctx, key(i), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// closedLoop runs op from clients goroutines for d and collects latencies.
func closedLoop(clients int, d time.Duration, op func(client, i int) error) ([]time.Duration, time.Duration, error) {
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := op(c, i); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, time.Since(start), firstErr
}

func shaleCommits(ctx context.Context, s kvcluster.KvCluster, clients int, d time.Duration) (result, error) {
	val := make([]byte, 100)
	lat, elapsed, err := closedLoop(clients, d, func(c, i int) error {
		return kvcluster.Update(ctx, s, 1, func(txn kvcluster.Txn) error {
			return txn.Put(ctx, key(preloadKeys+c*100_000_000+i), val)
		})
	})
	return summarize("shaledb-kv", "commit", clients, lat, elapsed), err
}

func shaleReads(ctx context.Context, s kvcluster.KvCluster, d time.Duration) (result, error) {
	lat, elapsed, err := closedLoop(1, d, func(_, i int) error {
		return kvcluster.View(ctx, s, func(txn kvcluster.Txn) error {
			_, found, err := txn.Get(ctx, key((i*7919)%preloadKeys))
			if err == nil && !found {
				err = fmt.Errorf("key %d missing", i)
			}
			return err
		})
	})
	return summarize("shaledb-kv", "point-read", 1, lat, elapsed), err
}

// pgbench runs script for d on PostgreSQL through the shared runner.
func pgbench(ctx context.Context, pg *pgserver.Server, tmp, workload string, clients int, d time.Duration, script string) (result, error) {
	scriptPath := filepath.Join(tmp, workload+".sql")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return result{}, err
	}
	target := pgbenchrun.Target{Host: pg.Host, Port: pg.Port, User: pg.User, Database: "postgres"}
	r, err := pgbenchrun.Run(ctx, target, tmp, "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)),
		"-T", strconv.Itoa(int(d.Seconds())), "-f", scriptPath)
	if err != nil {
		return result{}, err
	}
	return result{System: "postgresql-15", Workload: workload, Clients: clients, Ops: r.Transactions,
		OpsPerS: r.TPS, P50us: r.P50us, P99us: r.P99us, P999us: r.P999us}, nil
}

func write(outDir string, results []result, w io.Writer) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(outDir, time.Now().UTC().Format("2006-01-02")+"-kv-vs-postgres")
	js, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# ShaleDB storage layer vs PostgreSQL 15, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	md.WriteString("Durability on for both, same disk, same run (`make bench-kv`). PostgreSQL runs its whole SQL\n")
	md.WriteString("stack through pgbench over loopback; ShaleDB only its KvCluster, in-process: the ratio is the\n")
	md.WriteString("headroom the SQL and wire layers have, not a like-for-like SQL comparison.\n\n")
	md.WriteString("| workload | clients | system | ops/s | p50 µs | p99 µs | p99.9 µs | ops/s ratio | p99 ratio |\n")
	md.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for i := 0; i+1 < len(results); i += 2 {
		s, p := results[i], results[i+1]
		for _, r := range []result{s, p} {
			ratio, p99 := "", ""
			if r.System == s.System {
				ratio = fmt.Sprintf("%.2f×", s.OpsPerS/p.OpsPerS)
				p99 = fmt.Sprintf("%.2f×", s.P99us/p.P99us)
			}
			fmt.Fprintf(&md, "| %s | %d | %s | %.0f | %.0f | %.0f | %.0f | %s | %s |\n",
				r.Workload, r.Clients, r.System, r.OpsPerS, r.P50us, r.P99us, r.P999us, ratio, p99)
		}
	}
	md.WriteString("\nRatios are ShaleDB ÷ PostgreSQL: above 1× is faster for ops/s, below 1× is better for p99.\n")
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprint(w, md.String())
	fmt.Fprintf(w, "\nwritten to %s.{json,md}\n", base)
	return nil
}
