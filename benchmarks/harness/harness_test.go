package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/shaledb/shaledb/server"
)

func TestRecorderMergeAndPercentiles(t *testing.T) {
	a, b := NewRecorder(), NewRecorder()
	// 1..1000 µs split across two recorders, one tenant; another tenant
	// with a single slow write.
	for i := 1; i <= 1000; i++ {
		r := a
		if i%2 == 0 {
			r = b
		}
		r.Record("t0", Read, time.Duration(i)*time.Microsecond)
	}
	b.Record("t1", Write, 50*time.Millisecond)
	b.Error("t1", Write)
	a.Merge(b)
	per, total := a.Summary(10 * time.Second)
	if len(per) != 2 || per[0].Tenant != "t0" || per[1].Tenant != "t1" {
		t.Fatalf("per tenant: %+v", per)
	}
	s := per[0]
	near := func(got, want int64) bool { return got >= want*99/100 && got <= want*101/100+1 }
	if s.Count != 1000 || !near(s.P50, 500) || !near(s.P99, 990) || !near(s.P999, 999) || !near(s.Max, 1000) || s.OpsSec != 100 {
		t.Fatalf("t0 read: %+v", s)
	}
	if per[1].Count != 1 || per[1].Errors != 1 || !near(per[1].P99, 50000) {
		t.Fatalf("t1 write: %+v", per[1])
	}
	if len(total) != 2 || total[0].Kind != Read || total[0].Count != 1000 || total[1].Kind != Write || total[1].Errors != 1 {
		t.Fatalf("totals: %+v", total)
	}
	// Out-of-range values are clamped, not lost.
	c := NewRecorder()
	c.Record("t", Read, 0)
	c.Record("t", Read, time.Hour)
	if _, tot := c.Summary(time.Second); tot[0].Count != 2 {
		t.Fatalf("clamped: %+v", tot)
	}
	if pts := a.CDF(Read); len(pts) == 0 || pts[len(pts)-1][1] != 1 || pts[0][0] > pts[len(pts)-1][0] {
		t.Fatalf("cdf: %v", pts)
	}
}

func TestBudgets(t *testing.T) {
	bs, err := LoadBudgets("../budgets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(bs.Workloads["point-read"].ReadP99) != 10*time.Millisecond || bs.Noisy.VictimP99RatioLimited != 1.5 {
		t.Fatalf("the repository's budgets: %+v", bs)
	}
	for _, bad := range []string{"point-read", "point-read.read_p99", "point-read.read_p99=fast", "point-read.p42=1ms", "noisy.x=1", "noisy.victim_p99_ratio_limited=-1"} {
		if err := bs.Override(bad); err == nil {
			t.Errorf("override %q accepted", bad)
		}
	}
	if err := bs.Override("point-read.read_p99=2ms"); err != nil {
		t.Fatal(err)
	}
	if err := bs.Override("scan.write_p99=5ms"); err != nil {
		t.Fatal(err)
	}
	stats := []Stats{
		{Tenant: "b", Kind: Read, Count: 10, P99: 2500},
		{Tenant: "a", Kind: Read, Count: 10, P99: 2000},
		{Tenant: "c", Kind: Read, Count: 0, P99: 9000},    // no operations: nothing to judge
		{Tenant: "a", Kind: Write, Count: 10, P99: 90000}, // no write budget for point-read
	}
	vs := bs.Check("point-read", stats)
	if len(vs) != 1 || vs[0].Tenant != "b" || vs[0].Kind != Read || !strings.Contains(vs[0].String(), "tenant b read p99 2.5ms is over its budget of 2ms") {
		t.Fatalf("violations: %v", vs)
	}
	if vs := bs.Check("no-such-workload", stats); vs != nil {
		t.Fatalf("a workload without budgets: %v", vs)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "b.yaml")
	os.WriteFile(bad, []byte("workloads:\n  point-read: {read_p99: soon}\n"), 0o644)
	if _, err := LoadBudgets(bad); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad duration: %v", err)
	}
	os.WriteFile(bad, []byte("workloads:\n  point-read: {read_p999: 1ms}\n"), 0o644)
	if _, err := LoadBudgets(bad); err == nil {
		t.Fatal("an unknown field was accepted")
	}
}

func TestNoisyRatio(t *testing.T) {
	alone := &Result{Total: []Stats{{Kind: Read, P99: 1000}, {Kind: Write, P99: 2000}}}
	with := &Result{Total: []Stats{{Kind: Read, P99: 1400}, {Kind: Write, P99: 3200}}}
	if r := p99Ratio(with, alone); r != 1.6 {
		t.Fatalf("ratio %v, want the worse kind's 1.6", r)
	}
	bs := &Budgets{Noisy: NoisyBudget{VictimP99RatioLimited: 1.5}}
	if v := bs.NoisyViolation(&NoisyResult{Limited: with, RatioLimited: 1.6, AggressorQPS: 100}); !strings.Contains(v, "1.60x") {
		t.Fatalf("violation %q", v)
	}
	if v := bs.NoisyViolation(&NoisyResult{Limited: with, RatioLimited: 1.2}); v != "" {
		t.Fatalf("within budget: %q", v)
	}
}

// TestEndToEnd runs a tiny workload against a ShaleDB started here: a
// generous budget exits 0, an impossible one exits 1 naming each tenant.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	n, err := server.Start(ctx, server.Config{InMemory: true, Listen: "127.0.0.1:0", AdminPassword: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(ctx)
	url := fmt.Sprintf("postgres://admin:pw@%s/system?sslmode=disable", n.Addr())
	out := t.TempDir()
	run := func(extra ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		args := append([]string{"--url", url, "--workload", "mixed", "--tenants", "2", "--rows", "200", "--clients", "4",
			"--duration", "500ms", "--budgets", "../budgets.yaml", "--out", out}, extra...)
		code := Main(ctx, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, stdout, stderr := run("--budget", "mixed.read_p99=1m", "--budget", "mixed.write_p99=1m")
	if code != 0 {
		t.Fatalf("generous budget: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "| ShaleDB | read |") || !strings.Contains(stdout, "bench_mixed_1") {
		t.Fatalf("report:\n%s", stdout)
	}
	for _, ext := range []string{".md", ".json", ".svg"} {
		if _, err := os.Stat(filepath.Join(out, time.Now().UTC().Format("2006-01-02")+"-mixed"+ext)); err != nil {
			t.Errorf("result file: %v", err)
		}
	}
	code, _, stderr = run("--budget", "mixed.read_p99=1ns")
	if code != 1 {
		t.Fatalf("impossible budget: exit %d\n%s", code, stderr)
	}
	for _, tenant := range []string{"bench_mixed_0", "bench_mixed_1"} {
		if !strings.Contains(stderr, "OVER BUDGET: mixed: tenant "+tenant+" read p99") {
			t.Errorf("the impossible budget's report does not name %s:\n%s", tenant, stderr)
		}
	}
	if code, _, _ := run("--workload", "nosuch"); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
}

// TestClusterScenario runs a tiny point-write workload on a 3-node cluster
// and on a single node, both started from the shaledb binary (built here),
// in one run: the report holds both and the cluster's ratios.
func TestClusterScenario(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd not installed (make deps installs etcd-server)")
	}
	bin := filepath.Join(t.TempDir(), "shaledb")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/shaledb").CombinedOutput(); err != nil {
		t.Fatalf("build shaledb: %v\n%s", err, out)
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--start-shaledb", bin, "--start-cluster", "3", "--workload", "point-write",
		"--tenants", "2", "--rows", "100", "--clients", "2", "--duration", "500ms", "--budgets", "../budgets.yaml",
		"--budget", "point-write.write_p99=1m", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"| ShaleDB 3-node cluster | write |", "| ShaleDB single node | write |", "ShaleDB 3-node cluster ÷ ShaleDB single node: throughput",
		// The two tenants' sessions on two different nodes, and where their
		// leader and the oracle were.
		"bench_point_write_0: sessions on node ", "bench_point_write_1: sessions on node ", "timestamp oracle on node "} {
		if !strings.Contains(stdout.String(), want) {
			t.Fatalf("no %q in the report:\n%s", want, stdout.String())
		}
	}
	if _, err := os.Stat(filepath.Join(out, time.Now().UTC().Format("2006-01-02")+"-cluster-point-write.md")); err != nil {
		t.Error(err)
	}
	if m := regexp.MustCompile(`_0: sessions on node (\d+).*_1: sessions on node (\d+)`).FindStringSubmatch(stdout.String()); m == nil || m[1] == m[2] {
		t.Errorf("tenants' sessions not spread over the nodes: %v", m)
	}
}
