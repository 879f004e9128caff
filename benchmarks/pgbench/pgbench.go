// Package pgbench runs PostgreSQL's pgbench against a server and reads its
// per-transaction log, so benchmarks report latency percentiles and not
// only pgbench's averages.
package pgbench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Target is a server to run against.
type Target struct {
	Host, User, Password, Database string
	Port                           int
}

func (t Target) args() []string {
	return []string{"-h", t.Host, "-p", strconv.Itoa(t.Port), "-U", t.User, t.Database}
}

func (t Target) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "pgbench", append(args, t.args()...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+t.Password)
	return cmd
}

// Init runs pgbench -i at scale.
func Init(ctx context.Context, t Target, scale int) error {
	out, err := t.cmd(ctx, "-i", "-q", "-s", strconv.Itoa(scale)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	return nil
}

// Result is one run's outcome.
type Result struct {
	Transactions int     `json:"transactions"`
	Failed       int     `json:"failed"`
	TPS          float64 `json:"tps"`
	P50us        float64 `json:"p50_us"`
	P99us        float64 `json:"p99_us"`
	P999us       float64 `json:"p999_us"`
	AvgUs        float64 `json:"avg_us"`
}

var failedRE = regexp.MustCompile(`number of failed transactions: (\d+)`)

// Run runs pgbench with args (for example -S -M prepared -c 8 -T 10) and a
// per-transaction log in dir.
func Run(ctx context.Context, t Target, dir string, args ...string) (Result, error) {
	logDir, err := os.MkdirTemp(dir, "pgbench-log-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(logDir)
	full := append([]string{"-n", "-l", "--log-prefix", filepath.Join(logDir, "log")}, args...)
	out, err := t.cmd(ctx, full...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("pgbench %v: %w\n%s", args, err, out)
	}
	var r Result
	if m := failedRE.FindSubmatch(out); m != nil {
		r.Failed, _ = strconv.Atoi(string(m[1]))
	}
	lat, first, last, err := readLogs(logDir)
	if err != nil {
		return r, err
	}
	if len(lat) == 0 {
		return r, fmt.Errorf("pgbench %v logged no transactions\n%s", args, out)
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e3
	}
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	r.Transactions = len(lat)
	r.TPS = float64(len(lat)) / last.Sub(first).Seconds()
	r.P50us, r.P99us, r.P999us = q(0.5), q(0.99), q(0.999)
	r.AvgUs = float64(sum/time.Duration(len(lat))) / 1e3
	return r, nil
}

// readLogs reads "client_id transaction_no latency_us script_no epoch_s
// epoch_us [retries]" lines; failed transactions (latency "failed") are
// skipped.
func readLogs(dir string) (lat []time.Duration, first, last time.Time, err error) {
	files, _ := filepath.Glob(filepath.Join(dir, "log.*"))
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, first, last, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 6 {
				continue
			}
			us, err := strconv.ParseFloat(fields[2], 64)
			if err != nil {
				continue // "failed" or "skipped"
			}
			sec, _ := strconv.ParseInt(fields[4], 10, 64)
			usec, _ := strconv.ParseInt(fields[5], 10, 64)
			end := time.Unix(sec, usec*1000)
			start := end.Add(-time.Duration(us * 1e3))
			if first.IsZero() || start.Before(first) {
				first = start
			}
			if end.After(last) {
				last = end
			}
			lat = append(lat, time.Duration(us*1e3))
		}
		f.Close()
	}
	return lat, first, last, nil
}
