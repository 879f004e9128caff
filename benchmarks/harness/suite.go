package harness

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// SuiteWorkloads are the standard suite's workloads; the noisy scenario
// (on mixed) follows them.
var SuiteWorkloads = []string{"point-read", "point-write", "mixed", "tpcb"}

// README markers around the suite's table.
const (
	readmeBegin = "<!-- bench:begin -->"
	readmeEnd   = "<!-- bench:end -->"
)

// suite runs the standard suite and writes its summary table.
func (o *options) suite(ctx context.Context, targets []Target, budgets *Budgets, stdout io.Writer) ([]string, error) {
	var over []string
	var sb strings.Builder
	fmt.Fprintf(&sb, "Standard suite (`make bench`), %s: %d tenants × %d rows, %d clients closed loop, %.0f s a run",
		time.Now().UTC().Format("2006-01-02"), o.cfg.Tenants, o.cfg.Rows, o.cfg.Load.Clients, o.cfg.Duration.Seconds())
	if len(targets) > 1 {
		sb.WriteString(", PostgreSQL 15 in the same run")
	}
	sb.WriteString(".\n\n| workload | ShaleDB ops/s | p99 read | p99 write | PostgreSQL ops/s | p99 read | p99 write | throughput ratio | p99 ratio (read / write) | budget |\n|---|---|---|---|---|---|---|---|---|---|\n")
	p99s := func(r *Result) (string, string) {
		rd, wr := "–", "–"
		if s, ok := r.TotalOf(Read); ok {
			rd = us(s.P99)
		}
		if s, ok := r.TotalOf(Write); ok {
			wr = us(s.P99)
		}
		return rd, wr
	}
	kindRatio := func(a, b *Result, k Kind) string {
		x, ok1 := a.TotalOf(k)
		y, ok2 := b.TotalOf(k)
		if !ok1 || !ok2 {
			return "–"
		}
		return ratio(float64(x.P99), float64(y.P99))
	}
	for _, w := range SuiteWorkloads {
		rs, vs, err := o.workloadRun(ctx, targets, w, budgets, stdout)
		if err != nil {
			return nil, err
		}
		over = append(over, vs...)
		budget := "within"
		if len(vs) > 0 {
			budget = fmt.Sprintf("**%d over**", len(vs))
		}
		srd, swr := p99s(rs[0])
		prow := "| – | – | – | – | – "
		if len(rs) > 1 {
			prd, pwr := p99s(rs[1])
			prow = fmt.Sprintf("| %.0f | %s | %s | %s | %s / %s ", rs[1].Throughput(), prd, pwr,
				ratio(rs[0].Throughput(), rs[1].Throughput()), kindRatio(rs[0], rs[1], Read), kindRatio(rs[0], rs[1], Write))
		}
		fmt.Fprintf(&sb, "| %s | %.0f | %s | %s %s| %s |\n", w, rs[0].Throughput(), srd, swr, prow, budget)
	}
	saved := o.workload
	o.workload = "mixed"
	nv, err := o.noisy(ctx, targets, budgets, io.Discard)
	o.workload = saved
	if err != nil {
		return nil, err
	}
	over = append(over, nv...)
	sb.WriteString("\n")
	noisyMD, err := os.ReadFile(o.out + "/" + time.Now().UTC().Format("2006-01-02") + "-noisy.md")
	if err == nil {
		lines := strings.Split(string(noisyMD), "\n")
		for _, l := range lines[2:] { // drop the title
			sb.WriteString(l + "\n")
		}
	}
	table := strings.TrimRight(sb.String(), "\n") + "\n"
	if _, err := WriteResults(o.out, "suite", map[string]string{"table": table}, "# shaledb-bench standard suite\n\n"+table); err != nil {
		return nil, err
	}
	fmt.Fprint(stdout, table)
	if o.readme != "" {
		if err := refreshReadme(o.readme, table); err != nil {
			return nil, err
		}
	}
	return over, nil
}

// refreshReadme replaces the text between the bench markers of path.
func refreshReadme(path, table string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s … %s section", path, readmeBegin, readmeEnd)
	}
	s = s[:i+len(readmeBegin)] + "\n" + table + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
