// Command pgbenchcmp runs pgbench against ShaleDB and against PostgreSQL 15
// in the same run: same scale, clients, duration and query mode, durability
// on for both, both over TCP loopback. ShaleDB runs as its own process
// (bin/shaledb), so its peak RSS is measured too. Results, with
// ShaleDB/PostgreSQL ratios, go to benchmarks/results/<date>-pgbench.{json,md}
// (<date>-pgbench-s<scale> for scales other than 1).
//
// Both run pgbench's defaults otherwise: no retries, so any failed
// transaction is reported.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shaledb/shaledb/benchmarks/pgbench"
	"github.com/shaledb/shaledb/benchmarks/pgserver"
	"github.com/shaledb/shaledb/benchmarks/shaledbproc"
)

type row struct {
	Workload string         `json:"workload"`
	Mode     string         `json:"mode"`
	Clients  int            `json:"clients"`
	ShaleDB  pgbench.Result `json:"shaledb"`
	Postgres pgbench.Result `json:"postgresql"`
}

func main() {
	binary := flag.String("shaledb", "bin/shaledb", "the shaledb binary")
	scale := flag.Int("scale", 1, "pgbench scale")
	clients := flag.Int("clients", 8, "pgbench clients")
	duration := flag.Duration("duration", 10*time.Second, "length of each run")
	out := flag.String("out", "benchmarks/results", "results directory")
	flag.Parse()
	if err := run(context.Background(), *binary, *scale, *clients, *duration, *out, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pgbenchcmp:", err)
		os.Exit(1)
	}
}

// procStatus reads one "<field>: <n> kB" line of a process's status, in
// MiB.
func procStatus(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// sampleAnon samples a process's anonymous resident memory (its own
// memory, as opposed to the memory-mapped table files the kernel may
// reclaim) every 100 ms until ctx ends, and returns a function that
// reports the peak.
func sampleAnon(ctx context.Context, pid int) func() float64 {
	var mu sync.Mutex
	peak := 0.0
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			v := procStatus(pid, "RssAnon")
			mu.Lock()
			peak = max(peak, v)
			mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func run(ctx context.Context, binary string, scale, clients int, d time.Duration, outDir string, w io.Writer) error {
	tmp, err := os.MkdirTemp("", "pgbenchcmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	node, err := shaledbproc.Start(ctx, binary, filepath.Join(tmp, "shaledb"))
	if err != nil {
		return err
	}
	defer func() { _ = node.Stop() }()
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	peakAnon := sampleAnon(sctx, node.Pid())
	pg, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return err
	}
	defer pg.Stop()
	shale := pgbench.Target{Host: "127.0.0.1", Port: node.Port, User: "admin", Password: shaledbproc.AdminPassword, Database: "system"}
	postgres := pgbench.Target{Host: pg.Host, Port: pg.Port, User: pg.User, Database: "postgres"}
	for name, t := range map[string]pgbench.Target{"ShaleDB": shale, "PostgreSQL": postgres} {
		fmt.Fprintf(w, "pgbench -i -s %d on %s…\n", scale, name)
		if err := pgbench.Init(ctx, t, scale); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	common := []string{"-c", strconv.Itoa(clients), "-j", strconv.Itoa(min(clients, 2)), "-T", strconv.Itoa(int(d.Seconds()))}
	var rows []row
	for _, wl := range []struct {
		name string
		args []string
	}{
		{"select-only", []string{"-S"}},
		{"tpc-b", nil},
	} {
		for _, mode := range []string{"simple", "prepared"} {
			r := row{Workload: wl.name, Mode: mode, Clients: clients}
			args := append(append([]string{"-M", mode}, wl.args...), common...)
			fmt.Fprintf(w, "%s -M %s, %d clients, %v each…\n", wl.name, mode, clients, d)
			if r.ShaleDB, err = pgbench.Run(ctx, shale, tmp, args...); err != nil {
				return fmt.Errorf("ShaleDB: %w", err)
			}
			if r.Postgres, err = pgbench.Run(ctx, postgres, tmp, args...); err != nil {
				return fmt.Errorf("PostgreSQL: %w", err)
			}
			rows = append(rows, r)
		}
	}
	rss := memory{Peak: procStatus(node.Pid(), "VmHWM"), PeakAnon: peakAnon()}
	return write(outDir, scale, clients, d, rss, rows, w)
}

// memory is the ShaleDB node's peak resident memory in MiB: all of it
// (VmHWM, which counts the pages of memory-mapped table files it touched)
// and its anonymous part (sampled).
type memory struct {
	Peak     float64 `json:"peak_rss_mib"`
	PeakAnon float64 `json:"peak_anon_rss_mib"`
}

func write(outDir string, scale, clients int, d time.Duration, rss memory, rows []row, w io.Writer) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	base := filepath.Join(outDir, time.Now().UTC().Format("2006-01-02")+"-pgbench")
	if scale != 1 {
		base += fmt.Sprintf("-s%d", scale)
	}
	js, _ := json.MarshalIndent(map[string]any{"scale": scale, "clients": clients, "duration_s": d.Seconds(), "shaledb_memory": rss, "runs": rows}, "", "  ")
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "# pgbench: ShaleDB vs PostgreSQL 15, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&md, "Scale %d, %d clients, %v per run, durability on for both, TCP loopback, same machine and run (`make bench-pgbench`).\n", scale, clients, d)
	fmt.Fprintf(&md, "ShaleDB peak RSS: %.0f MiB, of which anonymous (its own memory, not the page cache of its memory-mapped table files): %.0f MiB. No retries (pgbench's default --max-tries=1).\n\n", rss.Peak, rss.PeakAnon)
	md.WriteString("| workload | mode | ShaleDB TPS | PostgreSQL TPS | TPS ratio | ShaleDB avg / p99 ms | PostgreSQL avg / p99 ms | p99 ratio | ShaleDB failed |\n")
	md.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&md, "| %s | %s | %.0f | %.0f | %.2f | %.2f / %.2f | %.2f / %.2f | %.2f | %d |\n",
			r.Workload, r.Mode, r.ShaleDB.TPS, r.Postgres.TPS, r.ShaleDB.TPS/r.Postgres.TPS,
			r.ShaleDB.AvgUs/1e3, r.ShaleDB.P99us/1e3, r.Postgres.AvgUs/1e3, r.Postgres.P99us/1e3,
			r.ShaleDB.P99us/r.Postgres.P99us, r.ShaleDB.Failed)
	}
	md.WriteString("\nRatios are ShaleDB ÷ PostgreSQL: TPS above 1 is faster; p99 below 1 is better.\n")
	if err := os.WriteFile(base+".md", []byte(md.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprint(w, md.String())
	fmt.Fprintf(w, "\nwritten to %s.{json,md}\n", base)
	return nil
}
