package tenancy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shaledb/shaledb/sql/pgerror"
)

// LatencyBounds are the upper bounds of the statement latency histogram's
// buckets, in seconds (the last bucket is everything above).
var LatencyBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Stats are a tenant's counters since it became live on this node.
type Stats struct {
	Statements  atomic.Int64
	RowsRead    atomic.Int64
	RowsWritten atomic.Int64
	// Throttled counts statements that waited for the rate limiter;
	// Rejected those refused by a limit (53300, 53400, 53100).
	Throttled atomic.Int64
	Rejected  atomic.Int64
	// Latency counts statements by LatencyBounds bucket; LatencySum is
	// their total duration in nanoseconds.
	Latency    [17]atomic.Int64
	LatencySum atomic.Int64
}

func (s *Stats) add(o *Stats) {
	s.Statements.Add(o.Statements.Load())
	s.RowsRead.Add(o.RowsRead.Load())
	s.RowsWritten.Add(o.RowsWritten.Load())
	s.Throttled.Add(o.Throttled.Load())
	s.Rejected.Add(o.Rejected.Load())
	for i := range s.Latency {
		s.Latency[i].Add(o.Latency[i].Load())
	}
	s.LatencySum.Add(o.LatencySum.Load())
}

// AddTo adds s to o (o is typically a snapshot being summed).
func (s *Stats) AddTo(o *Stats) { o.add(s) }

// Statement records one finished statement.
func (s *Stats) Statement(rowsRead, rowsWritten int64, elapsed time.Duration) {
	s.Statements.Add(1)
	s.RowsRead.Add(rowsRead)
	s.RowsWritten.Add(rowsWritten)
	sec := elapsed.Seconds()
	i := 0
	for i < len(LatencyBounds) && sec > LatencyBounds[i] {
		i++
	}
	s.Latency[i].Add(1)
	s.LatencySum.Add(int64(elapsed))
}

// rateLimiter is a tenant's statement rate limiter: the generic cell rate
// algorithm, a token bucket kept as one "theoretical arrival time". Every
// statement reserves the next slot in arrival order, so waiting statements
// are served first come, first served; one whose slot is further than the
// manager's MaxRateWait away is refused (53400) and reserves nothing.
type rateLimiter struct {
	mu  sync.Mutex
	tat time.Time
}

// Admit waits for the tenant's next statement slot under max_qps.
func (l *Live) Admit(ctx context.Context) error {
	lim := l.limits.Load()
	if lim.MaxQPS == NoLimit {
		return nil
	}
	if lim.MaxQPS == 0 {
		l.Stats.Rejected.Add(1)
		return pgerror.New(pgerror.CodeConfigurationLimitExceeded,
			"tenant %q may run no statements (max_qps = 0)", l.Name)
	}
	burst := lim.QPSBurst
	if burst == NoLimit {
		burst = lim.MaxQPS
	}
	if burst < 1 {
		burst = 1
	}
	interval := time.Second / time.Duration(lim.MaxQPS)
	now := time.Now()
	l.rate.mu.Lock()
	tat := l.rate.tat
	if tat.Before(now) {
		tat = now
	}
	// The slot at tat is free once fewer than burst slots lie ahead of now.
	at := tat.Add(-time.Duration(burst-1) * interval)
	wait := at.Sub(now)
	if wait > l.m.maxWait {
		l.rate.mu.Unlock()
		l.Stats.Rejected.Add(1)
		return pgerror.New(pgerror.CodeConfigurationLimitExceeded,
			"tenant %q is over its statement rate (max_qps = %d): the wait would be %v, more than %v",
			l.Name, lim.MaxQPS, wait.Round(time.Millisecond), l.m.maxWait)
	}
	l.rate.tat = tat.Add(interval)
	l.rate.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	l.Stats.Throttled.Add(1)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
