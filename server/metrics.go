package server

import (
	"context"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shaledb/shaledb/tenancy"
)

// OtherTenants is the tenant label under which the tenants outside the
// busiest MetricsTopTenants are summed.
const OtherTenants = "_other"

// tenantProducer turns the tenant manager's counters into OpenTelemetry
// metrics at each collection. Label cardinality is bounded: the busiest
// top live tenants (by statements) get their own series; every other
// tenant, live or retired, is summed under OtherTenants. Nothing is kept
// per tenant between collections.
type tenantProducer struct {
	m     *tenancy.Manager
	top   int
	start time.Time
}

func (p *tenantProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	type row struct {
		name  string
		stats *tenancy.Stats
		store int64
		conns int64
	}
	var live []row
	p.m.EachLive(func(l *tenancy.Live) {
		live = append(live, row{name: l.Name, stats: &l.Stats, store: l.StorageBytes(), conns: l.Connections()})
	})
	sort.Slice(live, func(i, j int) bool {
		a, b := live[i].stats.Statements.Load(), live[j].stats.Statements.Load()
		if a != b {
			return a > b
		}
		return live[i].name < live[j].name
	})
	other := row{name: OtherTenants, stats: p.m.Retired()}
	rows := live
	if len(rows) > p.top {
		for _, r := range rows[p.top:] {
			r.stats.AddTo(other.stats)
			other.store += r.store
			other.conns += r.conns
		}
		rows = rows[:p.top]
	}
	rows = append(rows, other)

	now := time.Now()
	counter := func(name, unit, desc string, get func(*tenancy.Stats) int64) metricdata.Metrics {
		pts := make([]metricdata.DataPoint[int64], len(rows))
		for i, r := range rows {
			pts[i] = metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("tenant", r.name)), StartTime: p.start, Time: now, Value: get(r.stats)}
		}
		return metricdata.Metrics{Name: name, Unit: unit, Description: desc,
			Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: pts}}
	}
	gauge := func(name, unit, desc string, get func(row) int64) metricdata.Metrics {
		pts := make([]metricdata.DataPoint[int64], len(rows))
		for i, r := range rows {
			pts[i] = metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("tenant", r.name)), Time: now, Value: get(r)}
		}
		return metricdata.Metrics{Name: name, Unit: unit, Description: desc, Data: metricdata.Gauge[int64]{DataPoints: pts}}
	}
	hist := make([]metricdata.HistogramDataPoint[float64], len(rows))
	for i, r := range rows {
		counts := make([]uint64, len(r.stats.Latency))
		var total uint64
		for j := range counts {
			counts[j] = uint64(r.stats.Latency[j].Load())
			total += counts[j]
		}
		hist[i] = metricdata.HistogramDataPoint[float64]{
			Attributes: attribute.NewSet(attribute.String("tenant", r.name)), StartTime: p.start, Time: now,
			Count: total, Bounds: tenancy.LatencyBounds, BucketCounts: counts,
			Sum: time.Duration(r.stats.LatencySum.Load()).Seconds(),
		}
	}
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: "github.com/shaledb/shaledb/tenancy"},
		Metrics: []metricdata.Metrics{
			counter("shaledb.tenant.statements", "", "Statements run, by tenant.", func(s *tenancy.Stats) int64 { return s.Statements.Load() }),
			counter("shaledb.tenant.rows_read", "", "Rows read by scans, by tenant.", func(s *tenancy.Stats) int64 { return s.RowsRead.Load() }),
			counter("shaledb.tenant.rows_written", "", "Rows inserted, updated, deleted or copied in, by tenant.", func(s *tenancy.Stats) int64 { return s.RowsWritten.Load() }),
			counter("shaledb.tenant.throttled", "", "Statements that waited for the tenant's rate limit.", func(s *tenancy.Stats) int64 { return s.Throttled.Load() }),
			counter("shaledb.tenant.rejected", "", "Statements, writes and connections refused by a tenant limit.", func(s *tenancy.Stats) int64 { return s.Rejected.Load() }),
			{Name: "shaledb.tenant.statement_duration", Unit: "s", Description: "Statement latency, by tenant.",
				Data: metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality, DataPoints: hist}},
			gauge("shaledb.tenant.storage", "By", "Bytes stored, by live tenant.", func(r row) int64 { return r.store }),
			gauge("shaledb.tenant.connections", "", "Open sessions, by tenant.", func(r row) int64 { return r.conns }),
		},
	}}, nil
}

// telemetry is the node's OpenTelemetry plumbing.
type telemetry struct {
	meters  *sdkmetric.MeterProvider
	metrics http.Handler
	tracer  trace.Tracer
	traces  *sdktrace.TracerProvider // nil unless exporting
}

func newTelemetry(ctx context.Context, m *tenancy.Manager, top int, tp trace.TracerProvider) (*telemetry, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithProducer(&tenantProducer{m: m, top: top, start: time.Now()}))
	if err != nil {
		return nil, err
	}
	t := &telemetry{
		meters:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)),
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}
	switch {
	case tp != nil:
		t.tracer = tp.Tracer("github.com/shaledb/shaledb")
	case os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		te, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, err
		}
		res := resource.NewSchemaless(attribute.String("service.name", "shaledb"))
		t.traces = sdktrace.NewTracerProvider(sdktrace.WithBatcher(te), sdktrace.WithResource(res))
		t.tracer = t.traces.Tracer("github.com/shaledb/shaledb")
	}
	return t, nil
}

func (t *telemetry) shutdown(ctx context.Context) {
	_ = t.meters.Shutdown(ctx)
	if t.traces != nil {
		_ = t.traces.Shutdown(ctx)
	}
}
