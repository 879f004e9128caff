// Command shaledb-bench drives a ShaleDB (or any PostgreSQL server) with
// per-tenant workloads, records latency in HDR histograms, holds each
// tenant to the p99 budgets of benchmarks/budgets.yaml, runs the
// noisy-neighbour scenario, and compares with PostgreSQL 15 in the same
// run. See benchmarks/harness; `shaledb-bench --help` lists the flags.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shaledb/shaledb/benchmarks/harness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := harness.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
