package harness

import (
	"context"
	"fmt"
	"sync"
)

// NoisyConfig is the noisy-neighbour scenario: victims at a steady rate,
// first alone, then beside one aggressor tenant running as hard as its
// clients can, with and without the aggressor's rate limit.
type NoisyConfig struct {
	Config
	// Victims is the number of victim tenants (Config.Tenants is ignored).
	Victims int
	// VictimRate is the victims' total offered rate (open loop).
	VictimRate float64
	// AggressorClients drive the aggressor, closed loop.
	AggressorClients int
	// AggressorQPS is the aggressor's max_qps in the limited phase.
	AggressorQPS int64
}

// NoisyResult is the victims' latency in each phase.
type NoisyResult struct {
	Target    string  `json:"target"`
	Alone     *Result `json:"alone"`
	Unlimited *Result `json:"unlimited"`
	// Limited is nil when the target has no rate limits (PostgreSQL).
	Limited   *Result `json:"limited,omitempty"`
	Aggressor struct {
		Unlimited *Result `json:"unlimited"`
		Limited   *Result `json:"limited,omitempty"`
	} `json:"aggressor"`
	AggressorQPS int64 `json:"aggressor_qps"`
	// Ratios are the victims' worst p99 ratio over kinds against alone.
	RatioUnlimited float64 `json:"victim_p99_ratio_unlimited"`
	RatioLimited   float64 `json:"victim_p99_ratio_limited,omitempty"`
}

// p99Ratio is the largest, over kinds, of a's p99 over base's.
func p99Ratio(a, base *Result) float64 {
	worst := 0.0
	for _, s := range a.Total {
		b, ok := base.TotalOf(s.Kind)
		if !ok || b.P99 == 0 {
			continue
		}
		worst = max(worst, float64(s.P99)/float64(b.P99))
	}
	return worst
}

// RunNoisy runs the noisy-neighbour scenario on t.
func RunNoisy(ctx context.Context, t Target, cfg NoisyConfig) (*NoisyResult, error) {
	cfg.defaults()
	if cfg.Victims <= 0 {
		cfg.Victims = 3
	}
	if cfg.VictimRate <= 0 {
		cfg.VictimRate = 300
	}
	if cfg.AggressorClients <= 0 {
		cfg.AggressorClients = 8
	}
	if cfg.AggressorQPS <= 0 {
		cfg.AggressorQPS = 100
	}
	w, err := newWorkload(cfg.Workload, cfg.Rows, cfg.ReadPct)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "%s: loading %d victim(s) and an aggressor × %d rows for noisy %s…\n", t.Name, cfg.Victims, cfg.Rows, cfg.Workload)
	victims, err := t.prepare(ctx, w, "noisy_victim_", cfg.Victims, cfg.Load.Clients)
	if err != nil {
		return nil, err
	}
	defer victims.close()
	aggr, err := t.prepare(ctx, w, "noisy_aggressor_", 1, cfg.AggressorClients)
	if err != nil {
		return nil, err
	}
	defer aggr.close()
	vcfg := cfg.Config
	vcfg.Tenants = cfg.Victims
	vcfg.Load.Rate = cfg.VictimRate
	acfg := cfg.Config
	acfg.Tenants = 1
	acfg.Load = Load{Clients: cfg.AggressorClients, KeyDist: cfg.Load.KeyDist}

	victimPhase := func(name string) *phase {
		return &phase{name: t.Name + " victims " + name, w: w, tenants: victims, load: vcfg.Load, d: cfg.Duration, seed: cfg.Seed}
	}
	aggressorPhase := func(name string) *phase {
		return &phase{name: t.Name + " aggressor " + name, w: w, tenants: aggr, load: acfg.Load, d: cfg.Duration, seed: cfg.Seed + 1}
	}
	res := &NoisyResult{Target: t.Name, AggressorQPS: cfg.AggressorQPS}
	runV := func(name string) (*Result, error) {
		rec, el, firstErr, err := victimPhase(name).run(ctx, cfg.Progress)
		if err != nil {
			return nil, err
		}
		return result(t, vcfg, name, rec, el, firstErr), nil
	}
	both := func(name string) (*Result, *Result, error) {
		var ar *Result
		var aerr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, el, firstErr, err := aggressorPhase(name).run(ctx, cfg.Progress)
			if err != nil {
				aerr = err
				return
			}
			ar = result(t, acfg, name, rec, el, firstErr)
		}()
		vr, err := runV(name)
		wg.Wait()
		if err == nil {
			err = aerr
		}
		return vr, ar, err
	}
	if res.Alone, err = runV("alone"); err != nil {
		return nil, err
	}
	if res.Unlimited, res.Aggressor.Unlimited, err = both("with aggressor, no limit"); err != nil {
		return nil, err
	}
	res.RatioUnlimited = p99Ratio(res.Unlimited, res.Alone)
	if t.Shale {
		name := aggr.names[0]
		if err := t.setLimit(ctx, name, "max_qps", cfg.AggressorQPS); err != nil {
			return nil, err
		}
		res.Limited, res.Aggressor.Limited, err = both(fmt.Sprintf("with aggressor at max_qps %d", cfg.AggressorQPS))
		if lerr := t.setLimit(ctx, name, "max_qps", -1); err == nil {
			err = lerr
		}
		if err != nil {
			return nil, err
		}
		res.RatioLimited = p99Ratio(res.Limited, res.Alone)
	}
	return res, nil
}

// NoisyViolation reports a limited ratio over the budget, or "".
func (bs *Budgets) NoisyViolation(r *NoisyResult) string {
	limit := bs.Noisy.VictimP99RatioLimited
	if limit == 0 || r.Limited == nil || r.RatioLimited <= limit {
		return ""
	}
	return fmt.Sprintf("noisy: the victims' p99 rose %.2fx beside an aggressor held to max_qps %d; the budget is %.2fx", r.RatioLimited, r.AggressorQPS, limit)
}
