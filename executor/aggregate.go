package executor

import (
	"math"
	"slices"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// accumulator is the running state of one aggregate in one group.
type accumulator struct {
	count int64
	isum  int64
	dsum  *apd.Decimal
	fsum  float64
	best  value.Value // min/max
	seen  map[string]bool
	b     bool          // bool_and/bool_or
	text  []byte        // string_agg
	elems []value.Value // array_agg
	// items are the values of an aggregate with ORDER BY, folded in
	// order when the group is finished.
	items []aggItem
}

type aggItem struct {
	keys []value.Value
	v, d value.Value // the value and string_agg's delimiter
}

type group struct {
	key  []value.Value
	accs []accumulator
}

func groupKey(vals []value.Value) string {
	var b []byte
	for _, v := range vals {
		k, err := encoding.AppendKey(b, v, encoding.Ascending)
		if err != nil { // not keyable (jsonb): its text is its identity
			k = append(append(b, 0xfe), v.String()...)
			k = append(k, 0)
		}
		b = k
	}
	return string(b)
}

func runAggregate(rt *Runtime, p *planner.Aggregate, emit Emit) error {
	groups := map[string]*group{}
	var order []*group
	newGroup := func(key []value.Value) *group {
		g := &group{key: key, accs: make([]accumulator, len(p.Aggs))}
		order = append(order, g)
		return g
	}
	err := run(rt, p.Input, func(row []value.Value) error {
		key, err := rt.evalAll(p.GroupBy, row)
		if err != nil {
			return err
		}
		k := groupKey(key)
		g := groups[k]
		if g == nil {
			if err := rt.hold(key, int64(len(k))+int64(len(p.Aggs))*48); err != nil {
				return err
			}
			g = newGroup(key)
			groups[k] = g
		}
		for i := range p.Aggs {
			if err := accumulate(rt, &p.Aggs[i], &g.accs[i], row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(order) == 0 && len(p.GroupBy) == 0 {
		newGroup(nil) // an aggregate over no rows still returns one row
	}
	for _, g := range order {
		out := append([]value.Value(nil), g.key...)
		for i := range p.Aggs {
			v, err := finish(rt, &p.Aggs[i], &g.accs[i])
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		if err := emit(out); err != nil {
			return err
		}
	}
	return nil
}

var aggCtx = func() *apd.Context {
	c := apd.BaseContext.WithPrecision(2000)
	c.MaxExponent, c.MinExponent = apd.MaxExponent, apd.MinExponent
	return c
}()

func accumulate(rt *Runtime, a *planner.AggFunc, acc *accumulator, row []value.Value) error {
	if a.Filter != nil {
		ok, err := rt.matches(a.Filter, row)
		if err != nil || !ok {
			return err
		}
	}
	if a.Star {
		acc.count++
		return nil
	}
	v, err := rt.eval(a.Arg, row)
	if err != nil {
		return err
	}
	if v.Kind() == value.KindNull && a.Name != "array_agg" {
		return nil // array_agg is the one that keeps NULLs
	}
	if a.Distinct {
		k := groupKey([]value.Value{v})
		if acc.seen == nil {
			acc.seen = map[string]bool{}
		}
		if acc.seen[k] {
			return nil
		}
		acc.seen[k] = true
	}
	var d value.Value
	if a.Arg2 != nil {
		if d, err = rt.eval(a.Arg2, row); err != nil {
			return err
		}
	}
	if len(a.Order) > 0 {
		keys := make([]value.Value, len(a.Order))
		for i, o := range a.Order {
			if keys[i], err = rt.eval(o.E, row); err != nil {
				return err
			}
		}
		if err := rt.hold(append(keys, v, d), 0); err != nil {
			return err
		}
		acc.items = append(acc.items, aggItem{keys: keys, v: v, d: d})
		return nil
	}
	return fold(rt, a, acc, v, d)
}

// fold adds one value (not NULL, except for array_agg) to an aggregate.
func fold(rt *Runtime, a *planner.AggFunc, acc *accumulator, v, d value.Value) error {
	acc.count++
	switch a.Name {
	case "bool_and", "every":
		acc.b = (acc.count == 1 || acc.b) && bool(v.(value.Bool))
	case "bool_or":
		acc.b = acc.b || bool(v.(value.Bool))
	case "string_agg":
		if acc.count > 1 && d != nil && d.Kind() != value.KindNull {
			acc.text = append(acc.text, d.(value.Text)...)
		}
		s := v.(value.Text)
		if err := rt.hold(nil, int64(len(s))); err != nil {
			return err
		}
		acc.text = append(acc.text, s...)
	case "array_agg":
		if err := rt.hold([]value.Value{v}, 0); err != nil {
			return err
		}
		acc.elems = append(acc.elems, v)
	case "sum", "avg":
		switch v := v.(type) {
		case value.Int:
			if a.T.OID == types.OIDInt8 {
				s := acc.isum + int64(v)
				if (s > acc.isum) != (v > 0) && v != 0 {
					return pgerror.New(pgerror.CodeNumericValueOutOfRange, "bigint out of range")
				}
				acc.isum = s
				return nil
			}
			if acc.dsum == nil {
				acc.dsum = apd.New(0, 0)
			}
			_, err := aggCtx.Add(acc.dsum, acc.dsum, apd.New(int64(v), 0))
			return err
		case value.Numeric:
			if acc.dsum == nil {
				acc.dsum = apd.New(0, 0)
			}
			if v.Dec.Form == apd.NaN || acc.dsum.Form == apd.NaN {
				acc.dsum = &apd.Decimal{Form: apd.NaN}
				return nil
			}
			_, err := aggCtx.Add(acc.dsum, acc.dsum, v.Dec)
			return err
		case value.Float:
			acc.fsum += float64(v)
		}
	case "min", "max":
		if acc.best == nil {
			acc.best = v
			return nil
		}
		c := value.Compare(v, acc.best)
		if (a.Name == "min" && c < 0) || (a.Name == "max" && c > 0) {
			acc.best = v
		}
	}
	return nil
}

func finish(rt *Runtime, a *planner.AggFunc, acc *accumulator) (value.Value, error) {
	if len(acc.items) > 0 {
		slices.SortStableFunc(acc.items, func(x, y aggItem) int { return compareKeys(a.Order, x.keys, y.keys) })
		ordered := &accumulator{}
		for _, it := range acc.items {
			if err := fold(rt, a, ordered, it.v, it.d); err != nil {
				return nil, err
			}
		}
		acc = ordered
	}
	switch a.Name {
	case "count":
		return value.Int(acc.count), nil
	case "min", "max":
		if acc.best == nil {
			return value.Null{}, nil
		}
		return acc.best, nil
	}
	if acc.count == 0 {
		return value.Null{}, nil
	}
	switch a.Name {
	case "bool_and", "bool_or", "every":
		return value.Bool(acc.b), nil
	case "string_agg":
		return value.Text(acc.text), nil
	case "array_agg":
		return value.Array{Elems: acc.elems}, nil
	}
	if acc.count == 0 {
		return value.Null{}, nil
	}
	var sum value.Value
	switch {
	case a.Name == "sum" && a.T.OID == types.OIDInt8:
		return value.Int(acc.isum), nil
	case a.T.Kind == value.KindFloat || (a.Name == "avg" && a.Arg.Type().Kind == value.KindFloat):
		sum = value.Float(acc.fsum)
	case acc.dsum != nil:
		sum = value.Numeric{Dec: acc.dsum}
	default:
		sum = value.Numeric{Dec: apd.New(acc.isum, 0)}
	}
	if a.Name == "sum" {
		if f, ok := sum.(value.Float); ok {
			return types.Coerce(a.T, f)
		}
		return sum, nil
	}
	// avg
	switch s := sum.(type) {
	case value.Float:
		if math.IsInf(float64(s), 0) {
			return s, nil
		}
		return value.Float(float64(s) / float64(acc.count)), nil
	case value.Numeric:
		if s.Dec.Form == apd.NaN {
			return s, nil
		}
		return expr.DivNumeric(s.Dec, apd.New(acc.count, 0))
	}
	return value.Null{}, nil
}
