package harness

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func us(v int64) string {
	d := time.Duration(v) * time.Microsecond
	if d >= time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d µs", v)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// Markdown renders a workload's results (ShaleDB first, then PostgreSQL
// if compared): totals per kind with ratios, then per-tenant rows.
func Markdown(rs []*Result, violations []Violation) string {
	var sb strings.Builder
	r0 := rs[0]
	fmt.Fprintf(&sb, "# %s, %s\n\n", r0.Workload, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	load := fmt.Sprintf("closed loop, %d clients", r0.Clients)
	if r0.Rate > 0 {
		load = fmt.Sprintf("open loop at %.0f ops/s, %d clients (latency from each operation's intended start)", r0.Rate, r0.Clients)
	}
	fmt.Fprintf(&sb, "%d tenant(s) × %d rows, %s, tenants %s, keys %s, %.0f s a run (`shaledb-bench`).\n\n",
		r0.Tenants, r0.Rows, load, r0.TenantDist, r0.KeyDist, r0.Seconds)
	for _, r := range rs {
		if r.Placement != "" {
			fmt.Fprintf(&sb, "%s placement (leaders as after the run): %s.\n\n", r.Target, r.Placement)
		}
	}
	sb.WriteString("| target | kind | ops/s | p50 | p95 | p99 | p99.9 | max | errors |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		for _, s := range r.Total {
			fmt.Fprintf(&sb, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %d |\n", r.Target, s.Kind, s.OpsSec, us(s.P50), us(s.P95), us(s.P99), us(s.P999), us(s.Max), s.Errors)
		}
	}
	if len(rs) == 2 {
		fmt.Fprintf(&sb, "\n%s ÷ %s: throughput %s", rs[0].Target, rs[1].Target, ratio(rs[0].Throughput(), rs[1].Throughput()))
		for _, s := range rs[0].Total {
			if o, ok := rs[1].TotalOf(s.Kind); ok {
				fmt.Fprintf(&sb, ", %s p99 %s", s.Kind, ratio(float64(s.P99), float64(o.P99)))
			}
		}
		sb.WriteString(" (throughput above 1 is faster, p99 below 1 is better).\n")
	}
	for _, r := range rs {
		if r.FirstError != "" {
			fmt.Fprintf(&sb, "\n%s's first failed operation: %s\n", r.Target, r.FirstError)
		}
	}
	if len(violations) > 0 {
		sb.WriteString("\n**Over budget:**\n\n")
		for _, v := range violations {
			fmt.Fprintf(&sb, "- %s\n", v)
		}
	}
	sb.WriteString("\nPer tenant:\n\n| target | tenant | kind | ops/s | p50 | p99 | p99.9 | max | errors |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		for _, s := range r.PerTenant {
			fmt.Fprintf(&sb, "| %s | %s | %s | %.0f | %s | %s | %s | %s | %d |\n", r.Target, s.Tenant, s.Kind, s.OpsSec, us(s.P50), us(s.P99), us(s.P999), us(s.Max), s.Errors)
		}
	}
	return sb.String()
}

// NoisyMarkdown renders the noisy-neighbour scenario.
func NoisyMarkdown(rs []*NoisyResult, violation string) string {
	var sb strings.Builder
	a := rs[0].Alone
	fmt.Fprintf(&sb, "# noisy neighbour (%s), %s\n\n", a.Workload, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&sb, "%d victim tenant(s) at %.0f ops/s in total (open loop), alone and then beside one aggressor tenant driven by %d clients as hard as they can, %.0f s a phase.\n\n",
		a.Tenants, a.Rate, rs[0].Aggressor.Unlimited.Clients, a.Seconds)
	sb.WriteString("| target | phase | victims' read p99 | victims' write p99 | victims' p99 ratio to alone | aggressor ops/s |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		row := func(phase string, v, ag *Result, rat float64) {
			rp, wp := "–", "–"
			if s, ok := v.TotalOf(Read); ok {
				rp = us(s.P99)
			}
			if s, ok := v.TotalOf(Write); ok {
				wp = us(s.P99)
			}
			ratStr, agStr := "1.00", "–"
			if ag != nil {
				ratStr, agStr = fmt.Sprintf("%.2f", rat), fmt.Sprintf("%.0f", ag.Throughput())
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s |\n", r.Target, phase, rp, wp, ratStr, agStr)
		}
		row("alone", r.Alone, nil, 1)
		row("aggressor, no limit", r.Unlimited, r.Aggressor.Unlimited, r.RatioUnlimited)
		if r.Limited != nil {
			row(fmt.Sprintf("aggressor at max_qps %d", r.AggressorQPS), r.Limited, r.Aggressor.Limited, r.RatioLimited)
		}
	}
	if violation != "" {
		fmt.Fprintf(&sb, "\n**Over budget:** %s\n", violation)
	}
	return sb.String()
}

// WriteResults saves v as <dir>/<date>-<name>.json and md as .md, returning the
// Markdown path.
func WriteResults(dir, name string, v any, md string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := filepath.Join(dir, time.Now().UTC().Format("2006-01-02")+"-"+name)
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(base+".json", append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	return base + ".md", os.WriteFile(base+".md", []byte(md), 0o644)
}

// CDFSVG draws the latency CDFs of results (one line per target and kind)
// on a log-scale latency axis, as an SVG document.
func CDFSVG(title string, rs []*Result) string {
	const w, h, left, right, top, bottom = 720.0, 420.0, 70.0, 170.0, 40.0, 50.0
	type line struct {
		label string
		pts   [][2]float64
	}
	var lines []line
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rs {
		kinds := make([]string, 0, len(r.CDF))
		for k := range r.CDF {
			kinds = append(kinds, string(k))
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			pts := r.CDF[Kind(k)]
			lines = append(lines, line{label: r.Target + " " + r.Phase + " " + k, pts: pts})
			for _, p := range pts {
				lo, hi = math.Min(lo, p[0]), math.Max(hi, p[0])
			}
		}
	}
	if len(lines) == 0 {
		lo, hi = 1, 10
	}
	lo = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 1))))
	hi = math.Pow(10, math.Ceil(math.Log10(math.Max(hi, lo*10))))
	x := func(v float64) float64 {
		return left + (math.Log10(math.Max(v, lo))-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*(w-left-right)
	}
	y := func(f float64) float64 { return h - bottom - f*(h-top-bottom) }
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="22" font-size="14">%s</text>`+"\n", left, xmlEscape(title))
	for d := lo; d <= hi*1.0001; d *= 10 {
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			x(d), y(0), x(d), y(1), x(d), h-bottom+18, xmlEscape(us(int64(d))))
	}
	for _, f := range []float64{0, 0.5, 0.9, 0.99, 1} {
		fmt.Fprintf(&sb, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/><text x="%.1f" y="%.1f" text-anchor="end">%g</text>`+"\n",
			left, y(f), w-right, y(f), left-6, y(f)+4, f)
	}
	fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle">latency (log scale)</text>`+"\n", (left+w-right)/2, h-12)
	for i, l := range lines {
		c := colors[i%len(colors)]
		var pts []string
		for _, p := range l.pts {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(p[0]), y(p[1])))
		}
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		fmt.Fprintf(&sb, `<rect x="%.0f" y="%.0f" width="12" height="3" fill="%s"/><text x="%.0f" y="%.0f">%s</text>`+"\n",
			w-right+10, top+float64(i)*18+8, c, w-right+26, top+float64(i)*18+12, xmlEscape(l.label))
	}
	sb.WriteString("</svg>\n")
	return sb.String()
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// WriteSVG saves the CDF plot next to the Markdown.
func WriteSVG(dir, name, svg string) (string, error) {
	path := filepath.Join(dir, time.Now().UTC().Format("2006-01-02")+"-"+name+".svg")
	return path, os.WriteFile(path, []byte(svg), 0o644)
}
