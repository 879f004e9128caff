package harness

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Budgets are the latency promises runs are held to:
//
//	workloads:
//	  point-read: {read_p99: 10ms}
//	  mixed:      {read_p99: 10ms, write_p99: 30ms}
//	noisy:
//	  victim_p99_ratio_limited: 1.5
//
// A workload without an entry for a kind has no budget for it.
type Budgets struct {
	Workloads map[string]WorkloadBudget `yaml:"workloads"`
	Noisy     NoisyBudget               `yaml:"noisy"`
}

// WorkloadBudget is one workload's p99 budgets; zero means none.
type WorkloadBudget struct {
	ReadP99  Duration `yaml:"read_p99"`
	WriteP99 Duration `yaml:"write_p99"`
}

// NoisyBudget bounds how much an aggressor may raise the victims' p99:
// the ratio of their p99 with the aggressor running (its rate limit set)
// to their p99 alone.
type NoisyBudget struct {
	VictimP99RatioLimited float64 `yaml:"victim_p99_ratio_limited"`
}

// Duration is a time.Duration written as "10ms" in YAML.
type Duration time.Duration

// UnmarshalYAML reads "10ms", "1.5s", ...
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 10ms", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// LoadBudgets reads a budgets file.
func LoadBudgets(path string) (*Budgets, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("budgets: %w", err)
	}
	var bs Budgets
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&bs); err != nil {
		return nil, fmt.Errorf("budgets %s: %w", path, err)
	}
	if bs.Workloads == nil {
		bs.Workloads = map[string]WorkloadBudget{}
	}
	return &bs, nil
}

// Override applies one --budget entry: "point-read.read_p99=2ms" or
// "noisy.victim_p99_ratio_limited=1.2".
func (bs *Budgets) Override(s string) error {
	name, val, ok := strings.Cut(s, "=")
	workload, field, ok2 := strings.Cut(name, ".")
	if !ok || !ok2 {
		return fmt.Errorf("--budget %q: want WORKLOAD.FIELD=VALUE, e.g. point-read.read_p99=2ms", s)
	}
	if workload == "noisy" {
		if field != "victim_p99_ratio_limited" {
			return fmt.Errorf("--budget %q: noisy has victim_p99_ratio_limited", s)
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || f <= 0 {
			return fmt.Errorf("--budget %q: %q is not a positive ratio", s, val)
		}
		bs.Noisy.VictimP99RatioLimited = f
		return nil
	}
	d, err := time.ParseDuration(val)
	if err != nil || d <= 0 {
		return fmt.Errorf("--budget %q: %q is not a positive duration", s, val)
	}
	wb := bs.Workloads[workload]
	switch field {
	case "read_p99":
		wb.ReadP99 = Duration(d)
	case "write_p99":
		wb.WriteP99 = Duration(d)
	default:
		return fmt.Errorf("--budget %q: the fields are read_p99 and write_p99", s)
	}
	bs.Workloads[workload] = wb
	return nil
}

// Violation is one tenant and kind over its budget.
type Violation struct {
	Workload string
	Tenant   string
	Kind     Kind
	P99      time.Duration
	Budget   time.Duration
}

func (v Violation) String() string {
	return fmt.Sprintf("%s: tenant %s %s p99 %v is over its budget of %v", v.Workload, v.Tenant, v.Kind, v.P99, v.Budget)
}

// Check returns every tenant and kind of a run whose p99 is over the
// workload's budget, in tenant order.
func (bs *Budgets) Check(workload string, perTenant []Stats) []Violation {
	wb, ok := bs.Workloads[workload]
	if !ok {
		return nil
	}
	var out []Violation
	for _, s := range perTenant {
		limit := wb.ReadP99
		if s.Kind == Write {
			limit = wb.WriteP99
		}
		if limit == 0 || s.Count == 0 {
			continue
		}
		p99 := time.Duration(s.P99) * time.Microsecond
		if p99 > time.Duration(limit) {
			out = append(out, Violation{Workload: workload, Tenant: s.Tenant, Kind: s.Kind, P99: p99, Budget: time.Duration(limit)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out
}
