package planner

import (
	"math"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Series produces the rows of generate_series(Start, Stop[, Step]) in a
// FROM list, one column, as they are needed (nothing is held).
type Series struct {
	Col               Column
	Start, Stop, Step expr.Expr
	// Next is cur + step; ok is false once that leaves the type's range.
	Next func(cur, step value.Value) (next value.Value, ok bool, err error)
	// Sign is the direction of step: -1, 0 or 1.
	Sign func(step value.Value) int
}

func (s *Series) Columns() []Column { return []Column{s.Col} }

// rangeFunction plans a set-returning function in FROM, optionally WITH
// ORDINALITY.
func (b *Builder) rangeFunction(rf *pg.RangeFunction) (*fromItem, error) {
	switch {
	case rf.Lateral:
		return nil, pgerror.Unsupported("LATERAL")
	case rf.IsRowsfrom || len(rf.Functions) != 1:
		return nil, pgerror.Unsupported("ROWS FROM")
	}
	items := rf.Functions[0].GetList().GetItems()
	var fc *pg.FuncCall
	if len(items) > 0 {
		fc = items[0].GetFuncCall()
	}
	if fc == nil || !setReturning[funcName(fc)] {
		return nil, pgerror.Unsupported("this function in FROM")
	}
	name := funcName(fc)
	var p Plan
	if name == "generate_series" {
		s, err := b.series(fc)
		if err != nil {
			return nil, err
		}
		s.Col.Name = name
		p = s
	} else {
		f, err := b.funcScan(fc)
		if err != nil {
			return nil, err
		}
		p = f
	}
	cols := p.Columns()
	if rf.Ordinality {
		cols = append(cols, Column{Name: "ordinality", Type: types.Int8})
	}
	table := name
	if rf.Alias != nil {
		table = rf.Alias.Aliasname
		cn := rf.Alias.Colnames
		if len(cn) > len(cols) {
			return nil, pgerror.New(pgerror.CodeSyntaxError, "too many column aliases specified for function %s", name)
		}
		if len(cn) == 0 && !rf.Ordinality {
			// A scalar function's one column takes the alias.
			cols[0].Name = table
		}
		for i, c := range cn {
			cols[i].Name = c.GetString_().GetSval()
		}
	}
	if rf.Ordinality {
		p = &Ordinality{Input: p, Cols: cols}
	} else if s, ok := p.(*Series); ok {
		s.Col = cols[0]
	} else {
		p.(*FuncScan).Col = cols[0]
	}
	return &fromItem{plan: p, sc: &scope{cols: cols, table: table}}, nil
}

// series plans generate_series over integers, or over timestamps stepped
// by an interval, with PostgreSQL's result types.
func (b *Builder) series(fc *pg.FuncCall) (*Series, error) {
	args, err := b.fromFuncArgs(fc)
	if err != nil {
		return nil, err
	}
	notExist := func() error {
		sig := ""
		for i, a := range args {
			if i > 0 {
				sig += ", "
			}
			sig += a.Type().String()
		}
		return posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function generate_series(%s) does not exist", sig).
			WithHint("No function matches the given name and argument types. You might need to add explicit type casts."), fc.Location)
	}
	if len(args) < 2 || len(args) > 3 {
		return nil, notExist()
	}
	kinds := map[value.Kind]bool{}
	wide := false
	for _, a := range args {
		if !isUnknown(a) {
			kinds[a.Type().Kind] = true
			wide = wide || a.Type().OID == types.OIDInt8
		}
	}
	coerceAll := func(ts ...types.T) error {
		for i := range args {
			c, err := b.coerce(args[i], ts[min(i, len(ts)-1)], "argument")
			if err != nil && isUnknown(args[i]) {
				return posErr(pgerror.Classify(err), fc.Location)
			} else if err != nil {
				return notExist()
			}
			args[i] = c
		}
		return nil
	}
	s := &Series{}
	switch {
	case len(kinds) == 0 || len(kinds) == 1 && kinds[value.KindInt]:
		t := types.Int4
		lo, hi := int64(math.MinInt32), int64(math.MaxInt32)
		if wide {
			t, lo, hi = types.Int8, math.MinInt64, math.MaxInt64
		}
		if err := coerceAll(t); err != nil {
			return nil, err
		}
		s.Col.Type = t
		s.Sign = func(step value.Value) int { return cmpInt(int64(step.(value.Int)), 0) }
		s.Next = func(cur, step value.Value) (value.Value, bool, error) {
			c, st := int64(cur.(value.Int)), int64(step.(value.Int))
			if st > 0 && c > hi-st || st < 0 && c < lo-st {
				return nil, false, nil
			}
			return value.Int(c + st), true, nil
		}
		if len(args) == 2 {
			args = append(args, &expr.Const{V: value.Int(1), T: t})
		}
	case len(args) == 3 && (kinds[value.KindTimestamp] || kinds[value.KindTimestampTZ] || kinds[value.KindDate]):
		t := types.Timestamp
		if kinds[value.KindTimestampTZ] || kinds[value.KindDate] {
			t = types.TimestampTZ
		}
		if err := coerceAll(t, t, types.Interval); err != nil {
			return nil, err
		}
		s.Col.Type = t
		s.Sign = func(step value.Value) int {
			iv := step.(value.Interval)
			// As PostgreSQL orders intervals: 30-day months, 24-hour days.
			return cmpInt(int64(iv.Months)*30*86_400_000_000+int64(iv.Days)*86_400_000_000+iv.Micros, 0)
		}
		s.Next = func(cur, step value.Value) (value.Value, bool, error) {
			us, err := addInterval(timestampMicros(cur), step.(value.Interval), 1)
			if err != nil {
				return nil, false, err
			}
			if t.Kind == value.KindTimestampTZ {
				return value.TimestampTZ(us), true, nil
			}
			return value.Timestamp(us), true, nil
		}
	default:
		return nil, notExist()
	}
	s.Start, s.Stop, s.Step = args[0], args[1], args[2]
	return s, nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func timestampMicros(v value.Value) int64 {
	switch x := v.(type) {
	case value.Timestamp:
		return int64(x)
	case value.TimestampTZ:
		return int64(x)
	}
	return 0
}
