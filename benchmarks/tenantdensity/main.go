// Command tenantdensity measures what idle tenants cost a ShaleDB node and
// how exactly the rate limiter holds a tenant to its rate. It starts
// bin/shaledb on a fresh data directory, creates --tenants tenants through
// shaledb.create_tenant (timing each call), and reports:
//
//   - disk bytes per tenant (the data directory's allocated blocks after a
//     clean shutdown, less those of an empty node);
//   - resident memory per tenant, right after creating them (Badger's
//     memtables hold the new keys), after a restart with every tenant idle,
//     and after a random sample of tenants connected and queried once
//     (the Go heap's high-water mark from those sessions, not yet returned
//     to the OS, shows there), each against an empty node measured the
//     same way;
//   - create_tenant latency p50/p99/p999;
//   - the statement rate one tenant achieves over 10 s against its max_qps
//     when its clients offer ten times that rate.
//
// Results go to <out>/<date>-tenants.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shaledb/shaledb/benchmarks/shaledbproc"
)

func main() {
	binary := flag.String("shaledb", "bin/shaledb", "the shaledb binary")
	tenants := flag.Int("tenants", 100000, "tenants to create")
	workers := flag.Int("workers", 4, "concurrent create_tenant callers")
	sample := flag.Int("sample", 1000, "tenants connected to after the restart")
	qps := flag.Int("qps", 200, "max_qps for the rate-limiter check")
	out := flag.String("out", "benchmarks/results", "results directory")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	if err := run(ctx, *binary, *tenants, *workers, *sample, *qps, *out); err != nil {
		fmt.Fprintln(os.Stderr, "tenantdensity:", err)
		os.Exit(1)
	}
}

// node is a running shaledb process.
type node struct{ *shaledbproc.Proc }

func start(ctx context.Context, binary, dir string) (*node, error) {
	p, err := shaledbproc.Start(ctx, binary, dir)
	if err != nil {
		return nil, err
	}
	return &node{p}, nil
}

func (n *node) stop() error { return n.Stop() }

func (n *node) url(user, pw, db string) string { return n.URL(user, pw, db) }

// restart stops n cleanly, measures the data directory, and starts it
// again.
func restart(ctx context.Context, n *node, binary, dir string) (*node, int64, error) {
	if err := n.stop(); err != nil {
		return nil, 0, fmt.Errorf("stop: %w", err)
	}
	disk, err := diskBytes(dir)
	if err != nil {
		return nil, 0, err
	}
	n, err = start(ctx, binary, dir)
	return n, disk, err
}

// memory is a process's resident memory, in bytes.
type memory struct{ rss, anon int64 }

func (n *node) memory() memory {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.Pid()))
	if err != nil {
		return memory{}
	}
	field := func(name string) int64 {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, name+":") {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				return kb << 10
			}
		}
		return 0
	}
	return memory{rss: field("VmRSS"), anon: field("RssAnon")}
}

// settle lets the node's memory settle (the Go runtime returns freed
// pages after a while) and measures it.
func (n *node) settle() memory {
	time.Sleep(3 * time.Second)
	return n.memory()
}

// diskBytes is the space allocated to the files under dir.
func diskBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

func run(ctx context.Context, binary string, tenants, workers, sample, qps int, outDir string) error {
	tmp, err := os.MkdirTemp("", "shaledb-tenants-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "data")

	// An empty node, measured like the full one will be.
	n, err := start(ctx, binary, dir)
	if err != nil {
		return err
	}
	emptyMem := n.settle()
	n, emptyDisk, err := restart(ctx, n, binary, dir)
	if err != nil {
		return err
	}
	defer n.Cmd.Process.Kill()
	emptyRestartMem := n.settle()

	// Create the tenants.
	fmt.Printf("creating %d tenants with %d callers...\n", tenants, workers)
	lat := make([]time.Duration, tenants)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	began := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, n.url("admin", shaledbproc.AdminPassword, "system"))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			for {
				i := int(next.Add(1)) - 1
				if i >= tenants {
					return
				}
				t0 := time.Now()
				if _, err := c.Exec(ctx, "SELECT shaledb.create_tenant($1, $2)", fmt.Sprintf("t%07d", i), fmt.Sprintf("pw%d", i)); err != nil {
					errs <- fmt.Errorf("create t%07d: %w", i, err)
					return
				}
				lat[i] = time.Since(t0)
				if (i+1)%10000 == 0 {
					fmt.Printf("  %d tenants, %.0f/s\n", i+1, float64(i+1)/time.Since(began).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	elapsed := time.Since(began)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fullMem := n.settle()
	// Latency alone: one caller, on the full node.
	solo, err := soloCreates(ctx, n, 2000)
	if err != nil {
		return err
	}
	// Restart; connect to a random sample and query each.
	n, fullDisk, err := restart(ctx, n, binary, dir)
	if err != nil {
		return err
	}
	defer n.Cmd.Process.Kill()
	idleMem := n.settle()
	rng := rand.New(rand.NewPCG(1, 2))
	for s := 0; s < sample; s++ {
		i := rng.IntN(tenants)
		c, err := pgx.Connect(ctx, n.url("admin", fmt.Sprintf("pw%d", i), fmt.Sprintf("t%07d", i)))
		if err != nil {
			return fmt.Errorf("connect t%07d: %w", i, err)
		}
		var one int
		err = c.QueryRow(ctx, "SELECT 1").Scan(&one)
		c.Close(ctx)
		if err != nil {
			return err
		}
	}
	restartMem := n.settle()

	// The rate limiter: ten times the rate offered for 10 s.
	rate, err := rateCheck(ctx, n, qps)
	if err != nil {
		return err
	}
	if err := n.stop(); err != nil {
		return fmt.Errorf("stop: %w", err)
	}

	per := func(a, b int64) float64 { return float64(a-b) / float64(tenants) }
	var sb strings.Builder
	fmt.Fprintf(&sb, "# Tenant density, %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&sb, "`make bench-tenants`: %d tenants created by shaledb.create_tenant from %d connections in %.1f s (%.0f/s).\n\n", tenants, workers, elapsed.Seconds(), float64(tenants)/elapsed.Seconds())
	fmt.Fprintf(&sb, "| measure | empty node | with %d tenants | per tenant |\n|---|---|---|---|\n", tenants)
	fmt.Fprintf(&sb, "| disk, allocated, after a clean shutdown | %d B | %d B | **%.0f B** |\n", emptyDisk, fullDisk, per(fullDisk, emptyDisk))
	fmt.Fprintf(&sb, "| RSS right after creating them | %d B | %d B | %.0f B |\n", emptyMem.rss, fullMem.rss, per(fullMem.rss, emptyMem.rss))
	fmt.Fprintf(&sb, "| anonymous RSS right after creating them | %d B | %d B | %.0f B |\n", emptyMem.anon, fullMem.anon, per(fullMem.anon, emptyMem.anon))
	fmt.Fprintf(&sb, "| RSS after a restart, all tenants idle | %d B | %d B | **%.0f B** |\n", emptyRestartMem.rss, idleMem.rss, per(idleMem.rss, emptyRestartMem.rss))
	fmt.Fprintf(&sb, "| anonymous RSS after a restart, all tenants idle | %d B | %d B | **%.0f B** |\n", emptyRestartMem.anon, idleMem.anon, per(idleMem.anon, emptyRestartMem.anon))
	fmt.Fprintf(&sb, "| RSS after a restart, %d tenants connected once | %d B | %d B | **%.0f B** |\n", sample, emptyRestartMem.rss, restartMem.rss, per(restartMem.rss, emptyRestartMem.rss))
	fmt.Fprintf(&sb, "| anonymous RSS after a restart, %d tenants connected once | %d B | %d B | **%.0f B** |\n\n", sample, emptyRestartMem.anon, restartMem.anon, per(restartMem.anon, emptyRestartMem.anon))
	fmt.Fprintf(&sb, "create_tenant latency (%d callers): p50 %v, p99 %v, p999 %v, max %v\n\n",
		workers, quantile(lat, 0.50).Round(time.Microsecond), quantile(lat, 0.99).Round(time.Microsecond), quantile(lat, 0.999).Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	fmt.Fprintf(&sb, "create_tenant latency (1 caller, %d more tenants on the full node): p50 %v, p99 %v, p999 %v, max %v\n\n",
		len(solo), quantile(solo, 0.50).Round(time.Microsecond), quantile(solo, 0.99).Round(time.Microsecond), quantile(solo, 0.999).Round(time.Microsecond), solo[len(solo)-1].Round(time.Microsecond))
	fmt.Fprintf(&sb, "Rate limiter: max_qps %d, qps_burst 1, 16 connections offering about %dx that for 10 s: %d statements ran (%.1f/s, %+.2f%% off the rate), %d refused with 53400.\n",
		qps, 10, rate.ok, rate.achieved, 100*(rate.achieved-float64(qps))/float64(qps), rate.refused)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(outDir, time.Now().UTC().Format("2006-01-02")+"-tenants.md")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		return err
	}
	fmt.Print(sb.String())
	fmt.Println("results:", path)
	return nil
}

// soloCreates creates n more tenants from one connection and returns the
// sorted latencies.
func soloCreates(ctx context.Context, nd *node, n int) ([]time.Duration, error) {
	c, err := pgx.Connect(ctx, nd.url("admin", shaledbproc.AdminPassword, "system"))
	if err != nil {
		return nil, err
	}
	defer c.Close(ctx)
	lat := make([]time.Duration, n)
	for i := range lat {
		t0 := time.Now()
		if _, err := c.Exec(ctx, "SELECT shaledb.create_tenant($1, 'pw')", fmt.Sprintf("solo%05d", i)); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t0)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, nil
}

type rateResult struct {
	ok, refused int64
	achieved    float64
}

// rateCheck offers a tenant with max_qps qps about ten times that rate
// from 16 connections for 10 s and counts what ran.
func rateCheck(ctx context.Context, n *node, qps int) (rateResult, error) {
	sys, err := pgx.Connect(ctx, n.url("admin", shaledbproc.AdminPassword, "system"))
	if err != nil {
		return rateResult{}, err
	}
	defer sys.Close(ctx)
	for _, q := range []string{
		"SELECT shaledb.create_tenant('ratecheck', 'pw')",
		"SELECT shaledb.set_tenant_limit('ratecheck', 'qps_burst', 1)",
		fmt.Sprintf("SELECT shaledb.set_tenant_limit('ratecheck', 'max_qps', %d)", qps),
	} {
		if _, err := sys.Exec(ctx, q); err != nil {
			return rateResult{}, fmt.Errorf("%s: %w", q, err)
		}
	}
	const conns = 16
	cs := make([]*pgx.Conn, conns)
	for i := range cs {
		if cs[i], err = pgx.Connect(ctx, n.url("admin", "pw", "ratecheck")); err != nil {
			return rateResult{}, err
		}
		defer cs[i].Close(ctx)
	}
	// Each connection offers 10*qps/conns statements a second.
	interval := time.Duration(float64(time.Second) * conns / float64(10*qps))
	var res rateResult
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(10 * time.Second)
	errCh := make(chan error, conns)
	for _, c := range cs {
		wg.Add(1)
		go func(c *pgx.Conn) {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for time.Now().Before(end) {
				_, err := c.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
				var pe *pgconn.PgError
				switch {
				case err == nil:
					if time.Now().Before(end) {
						atomic.AddInt64(&res.ok, 1)
					}
				case errors.As(err, &pe) && pe.Code == "53400":
					atomic.AddInt64(&res.refused, 1)
				default:
					errCh <- err
					return
				}
				<-t.C
			}
		}(c)
	}
	wg.Wait()
	close(errCh)
	if err := <-errCh; err != nil {
		return res, err
	}
	res.achieved = float64(res.ok) / 10
	return res, nil
}
