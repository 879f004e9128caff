// Package harness is shaledb-bench: it drives a PostgreSQL-protocol server
// (ShaleDB, or PostgreSQL for comparison) with per-tenant workloads from
// many connections, records latency per tenant and operation kind in HDR
// histograms, checks p99 budgets, runs the noisy-neighbour scenario, and
// writes results as JSON, Markdown and an SVG latency CDF.
package harness

import (
	"fmt"
	"sort"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Kind is an operation kind with its own budget.
type Kind string

// The operation kinds.
const (
	Read  Kind = "read"
	Write Kind = "write"
)

// Latencies are recorded in microseconds, from 1 µs to 100 s, with three
// significant digits.
const (
	histMin    = 1
	histMax    = 100_000_000
	histDigits = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// key names one series: a tenant and an operation kind.
type key struct {
	Tenant string
	Kind   Kind
}

// Recorder keeps one histogram per tenant and kind. A Recorder is used by
// one goroutine; Merge combines the recorders of several.
type Recorder struct {
	h      map[key]*hdrhistogram.Histogram
	errors map[key]int64
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{h: map[key]*hdrhistogram.Histogram{}, errors: map[key]int64{}}
}

// Record adds one operation's latency.
func (r *Recorder) Record(tenant string, kind Kind, d time.Duration) {
	k := key{tenant, kind}
	h := r.h[k]
	if h == nil {
		h = newHist()
		r.h[k] = h
	}
	us := d.Microseconds()
	if us < histMin {
		us = histMin
	}
	if us > histMax {
		us = histMax
	}
	_ = h.RecordValue(us)
}

// Error counts one failed operation.
func (r *Recorder) Error(tenant string, kind Kind) { r.errors[key{tenant, kind}]++ }

// Merge adds o's histograms and errors into r.
func (r *Recorder) Merge(o *Recorder) {
	for k, h := range o.h {
		if r.h[k] == nil {
			r.h[k] = newHist()
		}
		r.h[k].Merge(h)
	}
	for k, n := range o.errors {
		r.errors[k] += n
	}
}

// Stats summarizes one histogram.
type Stats struct {
	Tenant string  `json:"tenant"` // "" for all tenants
	Kind   Kind    `json:"kind"`
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	OpsSec float64 `json:"ops_per_sec"`
	// Latencies in microseconds.
	P50  int64 `json:"p50_us"`
	P95  int64 `json:"p95_us"`
	P99  int64 `json:"p99_us"`
	P999 int64 `json:"p999_us"`
	Max  int64 `json:"max_us"`
}

func statsOf(tenant string, kind Kind, h *hdrhistogram.Histogram, errs int64, elapsed time.Duration) Stats {
	s := Stats{Tenant: tenant, Kind: kind, Errors: errs}
	if h == nil {
		return s
	}
	s.Count = h.TotalCount()
	if elapsed > 0 {
		s.OpsSec = float64(s.Count) / elapsed.Seconds()
	}
	s.P50 = h.ValueAtQuantile(50)
	s.P95 = h.ValueAtQuantile(95)
	s.P99 = h.ValueAtQuantile(99)
	s.P999 = h.ValueAtQuantile(99.9)
	s.Max = h.Max()
	return s
}

// Summary returns per-tenant stats (sorted by tenant, then kind) and the
// all-tenant stats per kind.
func (r *Recorder) Summary(elapsed time.Duration) (perTenant, total []Stats) {
	totals := map[Kind]*hdrhistogram.Histogram{}
	totalErrs := map[Kind]int64{}
	seen := map[key]bool{}
	for k := range r.h {
		seen[k] = true
	}
	for k := range r.errors {
		seen[k] = true
	}
	for k := range seen {
		perTenant = append(perTenant, statsOf(k.Tenant, k.Kind, r.h[k], r.errors[k], elapsed))
		if h := r.h[k]; h != nil {
			if totals[k.Kind] == nil {
				totals[k.Kind] = newHist()
			}
			totals[k.Kind].Merge(h)
		}
		totalErrs[k.Kind] += r.errors[k]
	}
	sort.Slice(perTenant, func(i, j int) bool {
		if perTenant[i].Tenant != perTenant[j].Tenant {
			return perTenant[i].Tenant < perTenant[j].Tenant
		}
		return perTenant[i].Kind < perTenant[j].Kind
	})
	for _, kind := range []Kind{Read, Write} {
		if totals[kind] != nil || totalErrs[kind] > 0 {
			total = append(total, statsOf("", kind, totals[kind], totalErrs[kind], elapsed))
		}
	}
	return perTenant, total
}

// CDF returns (latency µs, fraction of operations at or below it) points
// of kind over all tenants, for plotting.
func (r *Recorder) CDF(kind Kind) [][2]float64 {
	all := newHist()
	for k, h := range r.h {
		if k.Kind == kind {
			all.Merge(h)
		}
	}
	if all.TotalCount() == 0 {
		return nil
	}
	var pts [][2]float64
	for _, q := range []float64{0, 10, 25, 50, 75, 90, 95, 98, 99, 99.5, 99.9, 99.95, 99.99, 100} {
		pts = append(pts, [2]float64{float64(all.ValueAtQuantile(q)), q / 100})
	}
	return pts
}

func (s Stats) String() string {
	return fmt.Sprintf("%s %s: %d ops (%.0f/s), p50 %dµs p99 %dµs p99.9 %dµs max %dµs, %d errors",
		s.Tenant, s.Kind, s.Count, s.OpsSec, s.P50, s.P99, s.P999, s.Max, s.Errors)
}
