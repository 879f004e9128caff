package expr

import (
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// SubqueryKind is how a subquery's rows become a value.
type SubqueryKind int

// The subquery kinds.
const (
	// Exists is true when the subquery returns a row.
	Exists SubqueryKind = iota
	// Scalar is the single value of the subquery's single row (NULL for
	// none; more than one row is 21000).
	Scalar
	// Any is LHS Op ANY (subquery), which IN is with =.
	Any
	// All is LHS Op ALL (subquery).
	All
	// ArrayOf is ARRAY(subquery): the values of its one column, in order.
	ArrayOf
)

// Subquery is a subquery used as an expression. Plan is the planner's
// plan (opaque here); Env.Subquery runs it. A correlated subquery reads
// the enclosing rows through OuterCol and runs again for each of them;
// an uncorrelated one may be run once per statement.
type Subquery struct {
	Kind       SubqueryKind
	Plan       any
	Correlated bool
	// LHS and Op are Any's and All's left side and comparison; the
	// subquery's one column has LHS's type.
	LHS Expr
	Op  string
	T   types.T
}

func (s *Subquery) Type() types.T { return s.T }

// Eval runs the subquery (through env.Subquery) and folds its rows.
func (s *Subquery) Eval(env *Env) (value.Value, error) {
	if env.Subquery == nil {
		return nil, pgerror.New(pgerror.CodeInternalError, "subquery evaluated without a runtime")
	}
	var lhs value.Value
	if s.Kind == Any || s.Kind == All {
		v, err := s.LHS.Eval(env)
		if err != nil {
			return nil, err
		}
		lhs = v
	}
	var out value.Value
	sawNull := false
	rows := 0
	var elems []value.Value
	err := env.Subquery(s, env, func(row []value.Value) (bool, error) {
		rows++
		switch s.Kind {
		case Exists:
			out = value.Bool(true)
			return false, nil
		case Scalar:
			if rows > 1 {
				return false, pgerror.New(pgerror.CodeCardinalityViolation, "more than one row returned by a subquery used as an expression")
			}
			out = row[0]
			return true, nil
		case ArrayOf:
			elems = append(elems, row[0])
			return true, nil
		}
		if lhs.Kind() == value.KindNull || row[0].Kind() == value.KindNull {
			sawNull = true
			return true, nil
		}
		match := CompareOp(s.Op, value.Compare(lhs, row[0]))
		if s.Kind == Any && match {
			out = value.Bool(true)
			return false, nil
		}
		if s.Kind == All && !match {
			out = value.Bool(false)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if out != nil {
		return out, nil
	}
	switch s.Kind {
	case Exists:
		return value.Bool(false), nil
	case Scalar:
		return value.Null{}, nil
	case ArrayOf:
		if elems == nil {
			elems = []value.Value{}
		}
		return value.Array{Elems: elems}, nil
	}
	// No row decided it: with a NULL comparison the answer is unknown.
	if sawNull {
		return value.Null{}, nil
	}
	return value.Bool(s.Kind == All), nil
}

// CompareOp reports whether a comparison op holds for value.Compare's
// result c.
func CompareOp(op string, c int) bool {
	switch op {
	case "=":
		return c == 0
	case "<>", "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	return false
}

// OuterCol reads a column of an enclosing query's current row: Depth 1 is
// the query immediately around the subquery.
type OuterCol struct {
	Depth, Idx int
	T          types.T
}

func (o *OuterCol) Type() types.T { return o.T }
func (o *OuterCol) Eval(env *Env) (value.Value, error) {
	i := len(env.Outer) - o.Depth
	if i < 0 || o.Idx >= len(env.Outer[i]) {
		return nil, pgerror.New(pgerror.CodeInternalError, "outer column %d at depth %d out of range", o.Idx, o.Depth)
	}
	return env.Outer[i][o.Idx], nil
}

// OnOuter evaluates E over the innermost outer row: a lookup join's key,
// computed from the left row while the right table is read.
type OnOuter struct{ E Expr }

func (o *OnOuter) Type() types.T { return o.E.Type() }
func (o *OnOuter) Eval(env *Env) (value.Value, error) {
	if len(env.Outer) == 0 {
		return nil, pgerror.New(pgerror.CodeInternalError, "join key evaluated without its left row")
	}
	inner := *env
	inner.Row = env.Outer[len(env.Outer)-1]
	inner.Outer = env.Outer[:len(env.Outer)-1]
	return o.E.Eval(&inner)
}

// MapCols returns e with every Col replaced by fn's result; the rest is
// rebuilt only as far as needed. Subquery plans are not entered.
func MapCols(e Expr, fn func(*Col) Expr) Expr {
	m := func(x Expr) Expr {
		if x == nil {
			return nil
		}
		return MapCols(x, fn)
	}
	ms := func(xs []Expr) []Expr {
		out := make([]Expr, len(xs))
		for i, x := range xs {
			out[i] = m(x)
		}
		return out
	}
	switch x := e.(type) {
	case *Col:
		return fn(x)
	case *Binary:
		return &Binary{Op: x.Op, L: m(x.L), R: m(x.R), T: x.T}
	case *Neg:
		return &Neg{E: m(x.E)}
	case *Cast:
		c := *x
		c.E = m(x.E)
		return &c
	case *Not:
		return &Not{E: m(x.E)}
	case *AndOr:
		return &AndOr{And: x.And, L: m(x.L), R: m(x.R)}
	case *IsNull:
		c := *x
		c.E = m(x.E)
		return &c
	case *Compare:
		return &Compare{Op: x.Op, L: m(x.L), R: m(x.R)}
	case *Func:
		c := *x
		c.Args = ms(x.Args)
		return &c
	case *Case:
		return &Case{Whens: ms(x.Whens), Thens: ms(x.Thens), Else: m(x.Else), T: x.T}
	case *Coalesce:
		return &Coalesce{Args: ms(x.Args), T: x.T}
	case *Subquery:
		c := *x
		c.LHS = m(x.LHS)
		return &c
	case *OnOuter:
		return x // reads the outer row, not this one
	}
	return e
}

// Children returns the direct sub-expressions of e.
func Children(e Expr) []Expr {
	switch x := e.(type) {
	case *Binary:
		return []Expr{x.L, x.R}
	case *Neg:
		return []Expr{x.E}
	case *Cast:
		return []Expr{x.E}
	case *Not:
		return []Expr{x.E}
	case *AndOr:
		return []Expr{x.L, x.R}
	case *IsNull:
		return []Expr{x.E}
	case *Compare:
		return []Expr{x.L, x.R}
	case *Func:
		return x.Args
	case *Case:
		out := append(append([]Expr(nil), x.Whens...), x.Thens...)
		if x.Else != nil {
			out = append(out, x.Else)
		}
		return out
	case *Coalesce:
		return x.Args
	case *Subquery:
		if x.LHS != nil {
			return []Expr{x.LHS}
		}
	}
	return nil
}

// Subqueries calls fn for every Subquery in e, outermost first.
func Subqueries(e Expr, fn func(*Subquery)) {
	if e == nil {
		return
	}
	if s, ok := e.(*Subquery); ok {
		fn(s)
	}
	for _, c := range Children(e) {
		Subqueries(c, fn)
	}
}
