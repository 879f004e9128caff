package harness

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shaledb/shaledb/benchmarks/pgserver"
	"github.com/shaledb/shaledb/benchmarks/shaledbproc"
)

const usage = `shaledb-bench drives a ShaleDB (or any PostgreSQL server) with per-tenant
workloads and holds it to p99 budgets.

  shaledb-bench --url postgres://admin:PW@HOST:PORT/system --workload point-read [flags]
  shaledb-bench --url ... --scenario noisy [flags]
  shaledb-bench --start-shaledb bin/shaledb --scenario suite --compare-postgres --readme README.md
  shaledb-bench --start-shaledb bin/shaledb --start-cluster 3 --workload point-write

Exit status: 0 when every run is within its budgets, 1 when one is over
(each tenant and operation over is named) or a run failed, 2 for bad flags.

`

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// options are shaledb-bench's flags.
type options struct {
	url, startShale, workload, scenario, budgetsFile, out, readme string
	clusterSessions                                               string
	budgets                                                       multi
	cfg                                                           Config
	comparePG                                                     bool
	victims, aggressorClients, startCluster                       int
	victimRate                                                    float64
	aggressorQPS                                                  int64
}

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("shaledb-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.url, "url", "", "admin connection URL: the system tenant of ShaleDB, or a PostgreSQL superuser")
	fs.StringVar(&o.startShale, "start-shaledb", "", "start this shaledb binary on a temporary data directory and bench it (instead of --url)")
	fs.StringVar(&o.workload, "workload", "point-read", "point-read, point-write, mixed, tpcb or scan")
	fs.StringVar(&o.scenario, "scenario", "run", "run (one workload), noisy (noisy neighbour) or suite (the standard set)")
	fs.IntVar(&o.cfg.Tenants, "tenants", 4, "tenants to create and spread the load over")
	fs.Int64Var(&o.cfg.Rows, "rows", 10000, "rows per tenant")
	fs.IntVar(&o.cfg.Load.Clients, "clients", 8, "concurrent connections")
	fs.Float64Var(&o.cfg.Load.Rate, "rate", 0, "open loop: offer this many operations per second in total (0: closed loop)")
	fs.StringVar(&o.cfg.Load.TenantDist, "tenant-dist", "uniform", "spread of load over tenants: uniform or zipfian")
	fs.StringVar(&o.cfg.Load.KeyDist, "key-dist", "uniform", "spread of load over keys: uniform or zipfian")
	fs.DurationVar(&o.cfg.Duration, "duration", 10*time.Second, "length of every run (each phase of a scenario)")
	fs.IntVar(&o.cfg.ReadPct, "read-pct", 90, "mixed: percentage of reads")
	fs.Uint64Var(&o.cfg.Seed, "seed", 1, "random seed")
	fs.StringVar(&o.budgetsFile, "budgets", "benchmarks/budgets.yaml", "budgets file")
	fs.Var(&o.budgets, "budget", "override one budget, e.g. point-read.read_p99=2ms (repeatable)")
	fs.IntVar(&o.startCluster, "start-cluster", 0, "with --start-shaledb: also start a cluster of this many nodes (and an etcd) and run the same workload on it first, reporting its ratios to the single node")
	fs.StringVar(&o.clusterSessions, "cluster-sessions", "spread", "with --start-cluster: spread (tenant i's sessions on node i mod N, as behind a load balancer) or last (every session on the last node, for most shards not their leader)")
	fs.BoolVar(&o.comparePG, "compare-postgres", false, "also run the identical workload on a throwaway PostgreSQL 15 and report ratios")
	fs.StringVar(&o.out, "out", "benchmarks/results", "results directory")
	fs.StringVar(&o.readme, "readme", "", "suite: refresh the results table between the bench markers of this file")
	fs.IntVar(&o.victims, "victims", 3, "noisy: victim tenants")
	fs.Float64Var(&o.victimRate, "victim-rate", 300, "noisy: the victims' total rate, operations per second")
	fs.IntVar(&o.aggressorClients, "aggressor-clients", 8, "noisy: connections driving the aggressor")
	fs.Int64Var(&o.aggressorQPS, "aggressor-qps", 100, "noisy: the aggressor's max_qps in the limited phase")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (o.url == "") == (o.startShale == "") {
		return nil, errors.New("give one of --url and --start-shaledb")
	}
	if o.startCluster > 0 && (o.startShale == "" || o.comparePG) {
		return nil, errors.New("--start-cluster goes with --start-shaledb, without --compare-postgres")
	}
	if o.clusterSessions != "spread" && o.clusterSessions != "last" {
		return nil, fmt.Errorf("--cluster-sessions %q: want spread or last", o.clusterSessions)
	}
	switch o.scenario {
	case "run", "noisy", "suite":
	default:
		return nil, fmt.Errorf("--scenario %q: run, noisy or suite", o.scenario)
	}
	if _, err := newWorkload(o.workload, 1, 90); err != nil {
		return nil, err
	}
	return o, nil
}

// Main runs shaledb-bench with args and returns its exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "shaledb-bench:", err)
		}
		return 2
	}
	budgets, err := LoadBudgets(o.budgetsFile)
	if err == nil {
		for _, b := range o.budgets {
			if err = budgets.Override(b); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "shaledb-bench:", err)
		return 2
	}
	o.cfg.Progress = stderr
	over, err := o.run(ctx, budgets, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "shaledb-bench:", err)
		return 1
	}
	if len(over) > 0 {
		for _, v := range over {
			fmt.Fprintln(stderr, "OVER BUDGET:", v)
		}
		return 1
	}
	return 0
}

func (o *options) run(ctx context.Context, budgets *Budgets, stdout io.Writer) ([]string, error) {
	adminURL := o.url
	if o.startShale != "" {
		dir, err := os.MkdirTemp("", "shaledb-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		p, err := shaledbproc.Start(ctx, o.startShale, filepath.Join(dir, "data"))
		if err != nil {
			return nil, err
		}
		defer p.Stop()
		adminURL = p.URL("admin", shaledbproc.AdminPassword, "system")
	}
	t, err := DetectTarget(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	targets := []Target{t}
	if o.startCluster > 0 {
		dir, err := os.MkdirTemp("", "shaledb-bench-cluster-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		c, err := shaledbproc.StartCluster(ctx, o.startShale, dir, o.startCluster)
		if err != nil {
			return nil, fmt.Errorf("start a cluster: %w", err)
		}
		defer c.Stop()
		node := c.Nodes[len(c.Nodes)-1]
		ct, err := DetectTarget(ctx, node.URL("admin", shaledbproc.AdminPassword, "system"))
		if err != nil {
			return nil, err
		}
		ct.Name = fmt.Sprintf("ShaleDB %d-node cluster", o.startCluster)
		ct.Hosts = []string{fmt.Sprintf("127.0.0.1:%d", node.Port)}
		if o.clusterSessions == "spread" {
			ct.Hosts = ct.Hosts[:0]
			for _, p := range c.Nodes {
				ct.Hosts = append(ct.Hosts, fmt.Sprintf("127.0.0.1:%d", p.Port))
			}
		} else {
			ct.Name += ", sessions on one node"
		}
		t.Name = "ShaleDB single node"
		targets = []Target{ct, t}
	}
	if o.comparePG {
		pg, err := pgserver.Start(ctx, pgserver.Options{})
		if err != nil {
			return nil, fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer pg.Stop()
		targets = append(targets, Target{Name: "PostgreSQL", Admin: pg.URL("postgres")})
	}
	switch o.scenario {
	case "noisy":
		return o.noisy(ctx, targets, budgets, stdout)
	case "suite":
		return o.suite(ctx, targets, budgets, stdout)
	}
	_, over, err := o.workloadRun(ctx, targets, o.workload, budgets, stdout)
	return over, err
}

// workloadRun runs one workload on every target, writes its results and
// returns them with the budget violations (of ShaleDB runs only:
// PostgreSQL is the yardstick, not the subject).
func (o *options) workloadRun(ctx context.Context, targets []Target, workload string, budgets *Budgets, stdout io.Writer) ([]*Result, []string, error) {
	var rs []*Result
	for _, t := range targets {
		cfg := o.cfg
		cfg.Workload = workload
		r, err := Run(ctx, t, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("%s on %s: %w", workload, t.Name, err)
		}
		rs = append(rs, r)
	}
	var vs []Violation
	if targets[0].Shale || len(targets) == 1 {
		vs = budgets.Check(workload, rs[0].PerTenant)
	}
	md := Markdown(rs, vs)
	name := workload
	if o.startCluster > 0 {
		name = "cluster-" + workload
	}
	if o.cfg.Load.Rate > 0 {
		name += fmt.Sprintf("-at-%.0f-ops", o.cfg.Load.Rate)
	}
	path, err := WriteResults(o.out, name, rs, md)
	if err != nil {
		return nil, nil, err
	}
	svg, err := WriteSVG(o.out, name, CDFSVG(name+": latency CDF", rs))
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(stdout, "%s\nresults: %s (and .json, %s)\n\n", md, path, filepath.Base(svg))
	var over []string
	for _, v := range vs {
		over = append(over, v.String())
	}
	return rs, over, nil
}

func (o *options) noisy(ctx context.Context, targets []Target, budgets *Budgets, stdout io.Writer) ([]string, error) {
	var rs []*NoisyResult
	for _, t := range targets {
		cfg := NoisyConfig{Config: o.cfg, Victims: o.victims, VictimRate: o.victimRate, AggressorClients: o.aggressorClients, AggressorQPS: o.aggressorQPS}
		cfg.Workload = o.workload
		r, err := RunNoisy(ctx, t, cfg)
		if err != nil {
			return nil, fmt.Errorf("noisy on %s: %w", t.Name, err)
		}
		rs = append(rs, r)
	}
	violation := budgets.NoisyViolation(rs[0])
	md := NoisyMarkdown(rs, violation)
	path, err := WriteResults(o.out, "noisy", rs, md)
	if err != nil {
		return nil, err
	}
	var plot []*Result
	for _, r := range rs {
		plot = append(plot, r.Alone, r.Unlimited)
		if r.Limited != nil {
			plot = append(plot, r.Limited)
		}
	}
	svg, err := WriteSVG(o.out, "noisy", CDFSVG("noisy neighbour: victims' latency CDF", plot))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "%s\nresults: %s (and .json, %s)\n\n", md, path, filepath.Base(svg))
	if violation != "" {
		return []string{violation}, nil
	}
	return nil, nil
}
