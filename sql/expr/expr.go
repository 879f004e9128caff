// Package expr holds typed SQL expressions and evaluates them with
// PostgreSQL's semantics: three-valued logic, NULL propagation, integer
// overflow (22003) and division by zero (22012) as errors, numeric
// arithmetic at PostgreSQL's result scales. The planner builds expressions
// from the parse tree with types already resolved; evaluation never
// guesses a type.
package expr

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Env is what an expression reads when evaluated.
type Env struct {
	// Row is the current input row.
	Row []value.Value
	// Params are the statement's bound parameters, $1 at index 0.
	Params []value.Value
	// Now is the transaction's start time (now(), current_timestamp).
	Now time.Time
	// Setting reads a session setting for current_setting().
	Setting func(name string) (string, bool)
	// NextVal draws the next value of a sequence (serial defaults).
	NextVal func(seq string) (int64, error)
	// Admin runs a cluster administration function (shaledb.*); the
	// session decides who may.
	Admin func(name string, args []value.Value) (value.Value, error)
	// Catalog answers the catalog functions that need the session
	// (pg_get_userbyid).
	Catalog func(name string, args []value.Value) (value.Value, error)
	// Outer holds the current rows of the enclosing queries of a
	// subquery, innermost last (OuterCol reads them).
	Outer [][]value.Value
	// Subquery runs s's plan with env's row as the innermost outer row,
	// calling each for every row until it returns false.
	Subquery func(s *Subquery, env *Env, each func(row []value.Value) (bool, error)) error
}

// Expr is a typed expression.
type Expr interface {
	Type() types.T
	Eval(env *Env) (value.Value, error)
}

// Const is a constant.
type Const struct {
	V value.Value
	T types.T
}

func (c *Const) Type() types.T                  { return c.T }
func (c *Const) Eval(*Env) (value.Value, error) { return c.V, nil }

// Col reads column Idx of the input row.
type Col struct {
	Idx  int
	T    types.T
	Name string
}

func (c *Col) Type() types.T { return c.T }
func (c *Col) Eval(env *Env) (value.Value, error) {
	return env.Row[c.Idx], nil
}

// Param reads a bound parameter.
type Param struct {
	Idx int
	T   types.T
}

func (p *Param) Type() types.T { return p.T }
func (p *Param) Eval(env *Env) (value.Value, error) {
	if p.Idx >= len(env.Params) {
		return nil, pgerror.New(pgerror.CodeUndefinedParameter, "there is no parameter $%d", p.Idx+1)
	}
	return env.Params[p.Idx], nil
}

// Cast converts to a type.
type Cast struct {
	E Expr
	T types.T
}

func (c *Cast) Type() types.T { return c.T }
func (c *Cast) Eval(env *Env) (value.Value, error) {
	v, err := c.E.Eval(env)
	if err != nil {
		return nil, err
	}
	return CastValue(v, c.E.Type(), c.T)
}

// CastValue converts v from type from to type to, as an explicit cast.
func CastValue(v value.Value, from, to types.T) (value.Value, error) {
	if v.Kind() == value.KindNull {
		return v, nil
	}
	if a, ok := v.(value.Array); ok && to.IsArray() && from.IsArray() {
		out := make([]value.Value, len(a.Elems))
		fromElem, toElem := from.ElemType(), to.ElemType()
		for i, e := range a.Elems {
			c, err := CastValue(e, fromElem, toElem)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return value.Array{Elems: out}, nil
	}
	if from.Kind == to.Kind && from.OID != types.OIDUnknown {
		if v2, ok := v.(value.Float); ok && to.OID == types.OIDFloat4 {
			return types.Coerce(to, v2)
		}
		if t, ok := v.(value.Text); ok && to.OID == types.OIDBpchar && to.Width == 0 {
			return value.Text(strings.TrimRight(string(t), " ")), nil
		}
		return castCoerce(to, v)
	}
	switch v := v.(type) {
	case value.Int:
		switch to.Kind {
		case value.KindFloat:
			return types.Coerce(to, value.Float(float64(v)))
		case value.KindNumeric:
			return castCoerce(to, value.Numeric{Dec: apd.New(int64(v), 0)})
		case value.KindBool:
			if from.OID == types.OIDInt4 {
				return value.Bool(v != 0), nil
			}
		}
	case value.Float:
		switch to.Kind {
		case value.KindInt:
			f := math.RoundToEven(float64(v))
			if math.IsNaN(f) || f < math.MinInt64 || f >= math.MaxInt64 {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "%s out of range", to)
			}
			return castCoerce(to, value.Int(int64(f)))
		case value.KindNumeric:
			// PostgreSQL converts through the float's shortest text.
			n, err := value.ParseNumeric(string(types.AppendText(nil, from, v)))
			if err != nil {
				return nil, err
			}
			return castCoerce(to, n)
		}
	case value.Numeric:
		switch to.Kind {
		case value.KindInt:
			if v.Dec.Form != apd.Finite {
				return nil, pgerror.New(pgerror.CodeFeatureNotSupported, "cannot convert %s to %s", v, to)
			}
			r := new(apd.Decimal)
			ctx := apd.BaseContext.WithPrecision(1000)
			ctx.Rounding = apd.RoundHalfUp
			if _, err := ctx.RoundToIntegralValue(r, v.Dec); err != nil {
				return nil, err
			}
			i, err := r.Int64()
			if err != nil {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "%s out of range", to)
			}
			return castCoerce(to, value.Int(i))
		case value.KindFloat:
			f, err := v.Dec.Float64()
			if err != nil && v.Dec.Form == apd.Finite {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value out of range")
			}
			if v.Dec.Form == apd.NaN {
				f = math.NaN()
			}
			return types.Coerce(to, value.Float(f))
		}
	case value.Bool:
		if to.OID == types.OIDInt4 {
			if v {
				return value.Int(1), nil
			}
			return value.Int(0), nil
		}
	case value.Date:
		switch to.Kind {
		case value.KindTimestamp:
			return value.Timestamp(dateToMicros(v)), nil
		case value.KindTimestampTZ:
			return value.TimestampTZ(dateToMicros(v)), nil
		}
	case value.Timestamp:
		switch to.Kind {
		case value.KindTimestampTZ:
			return value.TimestampTZ(v), nil
		case value.KindDate:
			return value.Date(int32(math.Floor(float64(v) / 86_400e6))), nil
		}
	case value.TimestampTZ:
		switch to.Kind {
		case value.KindTimestamp:
			return value.Timestamp(v), nil
		case value.KindDate:
			return value.Date(int32(math.Floor(float64(v) / 86_400e6))), nil
		}
	}
	// To or from text goes through the type's text form.
	if from.Kind == value.KindText || from.OID == types.OIDUnknown {
		return types.ParseText(to, string(v.(value.Text)))
	}
	if to.Kind == value.KindText {
		return castCoerce(to, value.Text(types.AppendText(nil, from, v)))
	}
	return nil, pgerror.New(pgerror.CodeCannotCoerce, "cannot cast type %s to %s", from, to)
}

func dateToMicros(d value.Date) int64 {
	switch d {
	case math.MinInt32:
		return math.MinInt64
	case math.MaxInt32:
		return math.MaxInt64
	}
	return int64(d) * 86_400e6
}

// castCoerce applies a target type's modifiers for an explicit cast: an
// explicit cast to varchar(n) truncates rather than failing.
func castCoerce(to types.T, v value.Value) (value.Value, error) {
	if a, ok := v.(value.Array); ok && to.IsArray() {
		out := make([]value.Value, len(a.Elems))
		elem := to.ElemType()
		for i, e := range a.Elems {
			c, err := castCoerce(elem, e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return value.Array{Elems: out}, nil
	}
	if t, ok := v.(value.Text); ok && to.Width > 0 && to.OID == types.OIDVarchar {
		if r := []rune(string(t)); int32(len(r)) > to.Width {
			return value.Text(string(r[:to.Width])), nil
		}
	}
	return types.Coerce(to, v)
}

// Not is boolean NOT.
type Not struct{ E Expr }

func (n *Not) Type() types.T { return types.Bool }
func (n *Not) Eval(env *Env) (value.Value, error) {
	v, err := n.E.Eval(env)
	if err != nil || v.Kind() == value.KindNull {
		return v, err
	}
	return !v.(value.Bool), nil
}

// AndOr is AND (And true) or OR with three-valued logic.
type AndOr struct {
	And  bool
	L, R Expr
}

func (a *AndOr) Type() types.T { return types.Bool }
func (a *AndOr) Eval(env *Env) (value.Value, error) {
	l, err := a.L.Eval(env)
	if err != nil {
		return nil, err
	}
	// Short-circuit on the deciding value.
	if b, ok := l.(value.Bool); ok && bool(b) != a.And {
		return b, nil
	}
	r, err := a.R.Eval(env)
	if err != nil {
		return nil, err
	}
	if b, ok := r.(value.Bool); ok && bool(b) != a.And {
		return b, nil
	}
	if l.Kind() == value.KindNull || r.Kind() == value.KindNull {
		return value.Null{}, nil
	}
	return value.Bool(a.And), nil
}

// IsNull is IS [NOT] NULL.
type IsNull struct {
	E   Expr
	Not bool
}

func (i *IsNull) Type() types.T { return types.Bool }
func (i *IsNull) Eval(env *Env) (value.Value, error) {
	v, err := i.E.Eval(env)
	if err != nil {
		return nil, err
	}
	return value.Bool((v.Kind() == value.KindNull) != i.Not), nil
}

// Compare is a comparison; both sides have the same kind.
type Compare struct {
	Op   string // = <> < <= > >=
	L, R Expr
}

func (c *Compare) Type() types.T { return types.Bool }
func (c *Compare) Eval(env *Env) (value.Value, error) {
	l, err := c.L.Eval(env)
	if err != nil {
		return nil, err
	}
	r, err := c.R.Eval(env)
	if err != nil {
		return nil, err
	}
	if l.Kind() == value.KindNull || r.Kind() == value.KindNull {
		return value.Null{}, nil
	}
	x := value.Compare(l, r)
	switch c.Op {
	case "=":
		return value.Bool(x == 0), nil
	case "<>", "!=":
		return value.Bool(x != 0), nil
	case "<":
		return value.Bool(x < 0), nil
	case "<=":
		return value.Bool(x <= 0), nil
	case ">":
		return value.Bool(x > 0), nil
	case ">=":
		return value.Bool(x >= 0), nil
	}
	return nil, fmt.Errorf("expr: unknown comparison %q", c.Op)
}

// Func is a function call evaluated by Fn over its evaluated arguments.
// Strict functions return NULL when any argument is NULL, without calling
// Fn.
type Func struct {
	Name   string
	Args   []Expr
	T      types.T
	Strict bool
	Fn     func(env *Env, args []value.Value) (value.Value, error)
}

func (f *Func) Type() types.T { return f.T }
func (f *Func) Eval(env *Env) (value.Value, error) {
	args := make([]value.Value, len(f.Args))
	for i, a := range f.Args {
		v, err := a.Eval(env)
		if err != nil {
			return nil, err
		}
		if f.Strict && v.Kind() == value.KindNull {
			return value.Null{}, nil
		}
		args[i] = v
	}
	return f.Fn(env, args)
}

// Case is CASE WHEN … THEN … [ELSE …] END (with the operand form already
// turned into comparisons).
type Case struct {
	Whens []Expr
	Thens []Expr
	Else  Expr // nil: NULL
	T     types.T
}

func (c *Case) Type() types.T { return c.T }
func (c *Case) Eval(env *Env) (value.Value, error) {
	for i, w := range c.Whens {
		v, err := w.Eval(env)
		if err != nil {
			return nil, err
		}
		if b, ok := v.(value.Bool); ok && bool(b) {
			return c.Thens[i].Eval(env)
		}
	}
	if c.Else == nil {
		return value.Null{}, nil
	}
	return c.Else.Eval(env)
}

// Coalesce returns its first non-NULL argument.
type Coalesce struct {
	Args []Expr
	T    types.T
}

func (c *Coalesce) Type() types.T { return c.T }
func (c *Coalesce) Eval(env *Env) (value.Value, error) {
	for _, a := range c.Args {
		v, err := a.Eval(env)
		if err != nil {
			return nil, err
		}
		if v.Kind() != value.KindNull {
			return v, nil
		}
	}
	return value.Null{}, nil
}

// Truthy reports whether a WHERE condition's value selects the row.
func Truthy(v value.Value) bool {
	b, ok := v.(value.Bool)
	return ok && bool(b)
}
