package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Load is how a phase offers operations.
type Load struct {
	// Clients is the number of concurrent callers.
	Clients int
	// Rate, if > 0, offers that many operations per second in total (open
	// loop): each operation has an intended start time, and its latency
	// is measured from it, so queueing behind slow operations is counted.
	// Zero runs closed loop: each client starts its next operation when
	// the last one ends.
	Rate float64
	// TenantDist and KeyDist are "uniform" or "zipfian".
	TenantDist, KeyDist string
}

// phase runs one workload on a set of tenants for a duration.
type phase struct {
	name    string
	w       *workload
	tenants *tenantSet
	load    Load
	d       time.Duration
	seed    uint64
}

// chooser picks an index in [0, n) by a distribution.
func chooser(dist string, n int, rng *rand.Rand) (func() int, error) {
	switch dist {
	case "", "uniform":
		return func() int { return rng.IntN(n) }, nil
	case "zipfian":
		if n == 1 {
			return func() int { return 0 }, nil
		}
		z := rand.NewZipf(rng, 1.1, 1, uint64(n-1))
		return func() int { return int(z.Uint64()) }, nil
	}
	return nil, fmt.Errorf("unknown distribution %q (uniform or zipfian)", dist)
}

// progress is a phase's live view: operations so far and a window of
// recent latencies.
type progress struct {
	ops    atomic.Int64
	mu     sync.Mutex
	window *hdrhistogram.Histogram
}

func (p *progress) record(d time.Duration) {
	p.ops.Add(1)
	p.mu.Lock()
	_ = p.window.RecordValue(max(histMin, min(histMax, d.Microseconds())))
	p.mu.Unlock()
}

// p99 returns the window's p99 and starts a new window.
func (p *progress) p99() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.window.ValueAtQuantile(99)
	p.window.Reset()
	return time.Duration(v) * time.Microsecond
}

// run runs the phase and returns its recorder, elapsed time and the first
// failed operation's error (failures are counted, not fatal). Progress
// lines go to out every second.
func (ph *phase) run(ctx context.Context, out io.Writer) (*Recorder, time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ctx, ph.d)
	defer cancel()
	clients := max(ph.load.Clients, 1)
	recs := make([]*Recorder, clients)
	prog := &progress{window: newHist()}
	var next atomic.Int64 // open loop: the next operation's number
	start := time.Now()
	var interval time.Duration
	if ph.load.Rate > 0 {
		interval = time.Duration(float64(time.Second) / ph.load.Rate)
	}
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	for c := 0; c < clients; c++ {
		rng := rand.New(rand.NewPCG(ph.seed, uint64(c)))
		pickTenant, err := chooser(ph.load.TenantDist, len(ph.tenants.pools), rng)
		if err != nil {
			return nil, 0, "", err
		}
		pickKey, err := chooser(ph.load.KeyDist, int(ph.w.rows), rng)
		if err != nil {
			return nil, 0, "", err
		}
		rec := NewRecorder()
		recs[c] = rec
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := func(span int64) int64 { return 1 + int64(pickKey())%max(1, ph.w.rows-span) }
			for ctx.Err() == nil {
				began := time.Now()
				if interval > 0 {
					intended := start.Add(time.Duration(next.Add(1)-1) * interval)
					if wait := time.Until(intended); wait > 0 {
						t := time.NewTimer(wait)
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
							return
						}
					}
					began = intended
				}
				ti := pickTenant()
				o := ph.w.pick(rng)
				name := ph.tenants.names[ti]
				conn, err := ph.tenants.pools[ti].Acquire(ctx)
				if err == nil {
					err = o.run(ctx, conn, key)
					conn.Release()
				}
				if ctx.Err() != nil {
					return // the phase ended mid-operation: not counted
				}
				if err != nil {
					rec.Error(name, o.kind)
					errOnce.Do(func() { firstErr = fmt.Errorf("tenant %s: %w", name, err) })
					continue
				}
				d := time.Since(began)
				rec.Record(name, o.kind, d)
				prog.record(d)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := int64(0)
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
			n := prog.ops.Load()
			fmt.Fprintf(out, "  %-28s %5.1fs  %8d ops/s  p99 %v\n", ph.name, time.Since(start).Seconds(), n-last, prog.p99().Round(10*time.Microsecond))
			last = n
		}
	}
	elapsed := time.Since(start)
	all := NewRecorder()
	for _, r := range recs {
		all.Merge(r)
	}
	msg := ""
	if firstErr != nil && !errors.Is(firstErr, context.Canceled) {
		msg = firstErr.Error()
	}
	return all, elapsed, msg, nil
}
