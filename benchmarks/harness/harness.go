package harness

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config is one workload run.
type Config struct {
	Workload string
	Tenants  int
	Rows     int64
	Load     Load
	Duration time.Duration
	// ReadPct is mixed's share of reads (default 90).
	ReadPct int
	Seed    uint64
	// Progress receives a line a second; nil discards.
	Progress io.Writer
}

func (c *Config) defaults() {
	if c.Tenants <= 0 {
		c.Tenants = 1
	}
	if c.Rows <= 0 {
		c.Rows = 10000
	}
	if c.Load.Clients <= 0 {
		c.Load.Clients = 8
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.ReadPct == 0 {
		c.ReadPct = 90
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// Result is what one run on one target measured.
type Result struct {
	Target     string  `json:"target"`
	Workload   string  `json:"workload"`
	Phase      string  `json:"phase"`
	Tenants    int     `json:"tenants"`
	Rows       int64   `json:"rows_per_tenant"`
	Clients    int     `json:"clients"`
	Rate       float64 `json:"rate,omitempty"`
	TenantDist string  `json:"tenant_dist"`
	KeyDist    string  `json:"key_dist"`
	Seconds    float64 `json:"seconds"`
	Total      []Stats `json:"total"`
	PerTenant  []Stats `json:"per_tenant"`
	FirstError string  `json:"first_error,omitempty"`
	// Placement says, for a cluster, which node each tenant's sessions
	// were on, and where its shard's leader and the oracle were after the
	// run.
	Placement string `json:"placement,omitempty"`
	// CDF per kind: (latency µs, fraction) points.
	CDF map[Kind][][2]float64 `json:"cdf"`
}

// Throughput is the run's operations per second, all kinds.
func (r *Result) Throughput() float64 {
	var n float64
	for _, s := range r.Total {
		n += s.OpsSec
	}
	return n
}

// TotalOf returns the all-tenant stats of kind.
func (r *Result) TotalOf(kind Kind) (Stats, bool) {
	for _, s := range r.Total {
		if s.Kind == kind {
			return s, true
		}
	}
	return Stats{}, false
}

func tenantPrefix(workload string) string {
	return "bench_" + strings.ReplaceAll(workload, "-", "_") + "_"
}

func result(t Target, cfg Config, phaseName string, rec *Recorder, elapsed time.Duration, firstErr string) *Result {
	per, total := rec.Summary(elapsed)
	r := &Result{
		Target: t.Name, Workload: cfg.Workload, Phase: phaseName, Tenants: cfg.Tenants, Rows: cfg.Rows,
		Clients: cfg.Load.Clients, Rate: cfg.Load.Rate, TenantDist: orUniform(cfg.Load.TenantDist), KeyDist: orUniform(cfg.Load.KeyDist),
		Seconds: elapsed.Seconds(), Total: total, PerTenant: per, FirstError: firstErr, CDF: map[Kind][][2]float64{},
	}
	for _, k := range []Kind{Read, Write} {
		if pts := rec.CDF(k); pts != nil {
			r.CDF[k] = pts
		}
	}
	return r
}

func orUniform(s string) string {
	if s == "" {
		return "uniform"
	}
	return s
}

// Run provisions cfg.Tenants tenants on t, loads the workload's data into
// each, and runs it for cfg.Duration.
func Run(ctx context.Context, t Target, cfg Config) (*Result, error) {
	cfg.defaults()
	w, err := newWorkload(cfg.Workload, cfg.Rows, cfg.ReadPct)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "%s: loading %d tenant(s) × %d rows for %s…\n", t.Name, cfg.Tenants, cfg.Rows, cfg.Workload)
	ts, err := t.prepare(ctx, w, tenantPrefix(cfg.Workload), cfg.Tenants, cfg.Load.Clients)
	if err != nil {
		return nil, err
	}
	defer ts.close()
	ph := &phase{name: t.Name + " " + cfg.Workload, w: w, tenants: ts, load: cfg.Load, d: cfg.Duration, seed: cfg.Seed}
	rec, elapsed, firstErr, err := ph.run(ctx, cfg.Progress)
	if err != nil {
		return nil, err
	}
	r := result(t, cfg, "run", rec, elapsed, firstErr)
	if len(t.Hosts) > 0 {
		if r.Placement, err = t.placement(ctx, ts.names); err != nil {
			return nil, fmt.Errorf("placement: %w", err)
		}
	}
	return r, nil
}

// placement describes where a cluster ran tenants: the node each one's
// sessions were on, its shard's leader, and the oracle's node.
func (t Target) placement(ctx context.Context, tenants []string) (string, error) {
	c, err := pgx.Connect(ctx, t.Admin)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	nodeAt := map[string]int64{}
	var oracle int64
	rows, err := c.Query(ctx, "SELECT id, addr, oracle FROM shaledb.nodes")
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var id int64
		var addr string
		var isOracle bool
		if err := rows.Scan(&id, &addr, &isOracle); err != nil {
			return "", err
		}
		nodeAt[addr] = id
		if isOracle {
			oracle = id
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	leaderOf := map[string]int64{}
	rows, err = c.Query(ctx, "SELECT coalesce(leader, 0), tenants FROM shaledb.shards")
	if err != nil {
		return "", err
	}
	for rows.Next() {
		var leader int64
		var names []string
		if err := rows.Scan(&leader, &names); err != nil {
			return "", err
		}
		for _, n := range names {
			leaderOf[n] = leader
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	parts := make([]string, len(tenants))
	for i, name := range tenants {
		parts[i] = fmt.Sprintf("%s: sessions on node %d, shard leader node %d", name, nodeAt[t.Hosts[i%len(t.Hosts)]], leaderOf[name])
	}
	return fmt.Sprintf("%s; timestamp oracle on node %d", strings.Join(parts, "; "), oracle), nil
}
