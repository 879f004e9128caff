package planner

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Builder plans statements of one session against one transaction's view
// of the catalog.
type Builder struct {
	// Table returns a table's descriptor or a 42P01 error.
	Table func(name string) (*catalog.Table, error)
	// Params holds the parameter types: those given by the client, then
	// those inferred while planning ($n unknown until context decides).
	Params []types.T

	// ctes are the WITH queries in scope, by name.
	ctes map[string]*pg.CommonTableExpr
	// outer holds the scopes of the queries around the subquery being
	// planned, innermost last; subq the subqueries themselves.
	outer []*scope
	subq  []*expr.Subquery
	// recursive marks WITH RECURSIVE queries; working holds the work
	// table of the one whose step is being planned.
	recursive map[*pg.CommonTableExpr]bool
	working   map[*pg.CommonTableExpr]*WorkTable
}

// scope is the columns an expression may name.
type scope struct {
	cols  []Column
	table string // the table's name (or alias), for qualified references
	// hidden marks columns left out of * (a table's rowid).
	hidden map[int]bool
	// agg, when set, is the post-aggregation view: group keys (by input
	// column index) and aggregates collected while building.
	agg *aggScope
	// colTable, in a join's scope, is each column's table name (or
	// alias); unqualHidden marks columns an unqualified name does not
	// find (the sides of a USING column, found merged); starOrder is
	// the order SELECT * expands to.
	colTable     []string
	unqualHidden map[int]bool
	starOrder    []int
}

type aggScope struct {
	input    *scope
	groupCol []int // input column index of each group key; -1 for an expression
	// groupExpr is nodeKey of each GROUP BY expression ("" for a column):
	// the same expression in the select list is that group key.
	groupExpr []string
	aggs      []AggFunc
}

func posErr(e *pgerror.Error, loc int32) *pgerror.Error {
	if loc >= 0 {
		e.Position = int(loc) + 1
	}
	return e
}

func strNode(n *pg.Node) string {
	if s := n.GetString_(); s != nil {
		return s.Sval
	}
	return ""
}

// Names returns the strings of a list of String nodes (qualified names,
// column lists).
func Names(ns []*pg.Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = strNode(n)
	}
	return out
}

// resolveColumn finds a column by (optionally qualified) name.
func (sc *scope) resolveColumn(parts []string, loc int32) (int, error) {
	name := parts[len(parts)-1]
	if sc.colTable != nil {
		return sc.resolveJoined(parts, loc)
	}
	if len(parts) == 2 && sc.table != "" && parts[0] != sc.table {
		return 0, posErr(pgerror.New(pgerror.CodeUndefinedTable, "missing FROM-clause entry for table %q", parts[0]), loc)
	}
	if len(parts) > 2 {
		return 0, posErr(pgerror.Unsupported("qualified column reference "+strings.Join(parts, ".")), loc)
	}
	for i, c := range sc.cols {
		if c.Name == name {
			return i, nil
		}
	}
	return 0, posErr(pgerror.New(pgerror.CodeUndefinedColumn, "column %q does not exist", name), loc)
}

// resolveJoined resolves a column in a join's scope: qualified by table,
// or unqualified and unambiguous.
func (sc *scope) resolveJoined(parts []string, loc int32) (int, error) {
	name := parts[len(parts)-1]
	if len(parts) > 2 {
		return 0, posErr(pgerror.Unsupported("qualified column reference "+strings.Join(parts, ".")), loc)
	}
	found, tableSeen := -1, false
	for i, c := range sc.cols {
		if len(parts) == 2 {
			if sc.colTable[i] != parts[0] {
				continue
			}
			tableSeen = true
		} else if sc.unqualHidden[i] {
			continue
		}
		if c.Name != name {
			continue
		}
		if found >= 0 {
			return 0, posErr(pgerror.New(pgerror.CodeAmbiguousColumn, "column reference %q is ambiguous", name), loc)
		}
		found = i
	}
	if found >= 0 {
		return found, nil
	}
	if len(parts) == 2 && !tableSeen {
		return 0, posErr(pgerror.New(pgerror.CodeUndefinedTable, "missing FROM-clause entry for table %q", parts[0]), loc)
	}
	if len(parts) == 2 {
		return 0, posErr(pgerror.New(pgerror.CodeUndefinedColumn, "column %s.%s does not exist", parts[0], name), loc)
	}
	return 0, posErr(pgerror.New(pgerror.CodeUndefinedColumn, "column %q does not exist", name), loc)
}

// paramType returns the type of $n (1-based), unknown if not yet known.
func (b *Builder) paramType(n int) types.T {
	if n-1 < len(b.Params) {
		return b.Params[n-1]
	}
	return types.Unknown
}

func (b *Builder) setParamType(n int, t types.T) {
	for len(b.Params) < n {
		b.Params = append(b.Params, types.Unknown)
	}
	if b.Params[n-1].OID == types.OIDUnknown {
		t.Width, t.Precision, t.Scale = 0, 0, 0
		b.Params[n-1] = t
	}
}

// isUnknown reports an expression whose type context must decide: an
// untyped string literal or an untyped parameter.
func isUnknown(e expr.Expr) bool { return e.Type().OID == types.OIDUnknown }

// coerce makes e of type t where PostgreSQL would do it implicitly:
// unknown literals and parameters take t; integers widen to bigger
// integers, numeric and floats; numerics to floats; date to timestamps;
// varchar/char/name to text. Otherwise 42804.
func (b *Builder) coerce(e expr.Expr, t types.T, what string) (expr.Expr, error) {
	from := e.Type()
	switch {
	case from.OID == t.OID && from.Width == t.Width && from.Precision == t.Precision:
		return e, nil
	case from.OID == types.OIDUnknown:
		if p, ok := e.(*expr.Param); ok {
			b.setParamType(p.Idx+1, t)
			p.T = b.Params[p.Idx]
			if t.Width > 0 || t.Precision > 0 {
				return &expr.Cast{E: p, T: t}, nil
			}
			return p, nil
		}
		if c, ok := e.(*expr.Const); ok {
			if c.V.Kind() == value.KindNull {
				return &expr.Const{V: c.V, T: t}, nil
			}
			v, err := types.ParseText(t, string(c.V.(value.Text)))
			if err != nil {
				return nil, err
			}
			return &expr.Const{V: v, T: t}, nil
		}
	case from.Kind == t.Kind:
		if from.Kind == value.KindInt && intRank(from) > intRank(t) {
			break // narrowing needs an explicit cast
		}
		return &expr.Cast{E: e, T: t}, nil
	case from.Kind == value.KindInt && (t.Kind == value.KindNumeric || t.Kind == value.KindFloat),
		from.Kind == value.KindNumeric && t.Kind == value.KindFloat,
		from.Kind == value.KindDate && (t.Kind == value.KindTimestamp || t.Kind == value.KindTimestampTZ),
		from.Kind == value.KindTimestamp && t.Kind == value.KindTimestampTZ:
		return &expr.Cast{E: e, T: t}, nil
	}
	return nil, pgerror.New(pgerror.CodeDatatypeMismatch, "%s is of type %s but expression is of type %s", what, t, from)
}

// assign coerces e for storing into a column of type t: the implicit
// casts plus PostgreSQL's assignment casts (numeric and float to integer,
// anything to text types).
func (b *Builder) assign(e expr.Expr, t types.T, column string) (expr.Expr, error) {
	from := e.Type()
	if from.OID != types.OIDUnknown && from.Kind != t.Kind {
		numeric := func(k value.Kind) bool {
			return k == value.KindInt || k == value.KindNumeric || k == value.KindFloat
		}
		if numeric(from.Kind) && numeric(t.Kind) {
			return &expr.Cast{E: e, T: t}, nil
		}
		if t.Kind == value.KindText && from.Kind != value.KindBytes {
			return &expr.Cast{E: e, T: t}, nil
		}
		if (from.Kind == value.KindTimestamp || from.Kind == value.KindTimestampTZ) && (t.Kind == value.KindDate || t.Kind == value.KindTimestamp || t.Kind == value.KindTimestampTZ) {
			return &expr.Cast{E: e, T: t}, nil
		}
	}
	if from.Kind == value.KindInt && t.Kind == value.KindInt {
		return &expr.Cast{E: e, T: t}, nil
	}
	c, err := b.coerce(e, t, fmt.Sprintf("column %q", column))
	if err != nil && from.OID == types.OIDUnknown {
		return nil, err // the literal's own input error (22P02, 22001, …)
	}
	if err != nil {
		return nil, pgerror.New(pgerror.CodeDatatypeMismatch, "column %q is of type %s but expression is of type %s", column, t, from).
			WithHint("You will need to rewrite or cast the expression.")
	}
	if t.Width > 0 || t.Precision > 0 {
		if _, isCast := c.(*expr.Cast); !isCast {
			return &expr.Cast{E: c, T: t}, nil
		}
	}
	return c, nil
}

func intRank(t types.T) int {
	switch t.OID {
	case types.OIDInt2:
		return 1
	case types.OIDInt4:
		return 2
	}
	return 3
}

// numericRank orders the numeric types for operator resolution.
func numericRank(t types.T) int {
	switch t.OID {
	case types.OIDInt2:
		return 1
	case types.OIDInt4:
		return 2
	case types.OIDInt8:
		return 3
	case types.OIDNumeric:
		return 4
	case types.OIDFloat4:
		return 5
	case types.OIDFloat8:
		return 6
	}
	return 0
}

// unify picks the common type of two operands and coerces both to it.
func (b *Builder) unify(l, r expr.Expr, op string, loc int32) (expr.Expr, expr.Expr, types.T, error) {
	lt, rt := l.Type(), r.Type()
	var t types.T
	switch {
	case isUnknown(l) && isUnknown(r):
		t = types.Text
	case isUnknown(l):
		t = rt
	case isUnknown(r):
		t = lt
	case numericRank(lt) > 0 && numericRank(rt) > 0:
		t = lt
		if numericRank(rt) > numericRank(lt) {
			t = rt
		}
		// real meets another numeric type only as double precision, the
		// numeric category's preferred type.
		if t.OID == types.OIDFloat4 && lt.OID != rt.OID {
			t = types.Float8
		}
	case lt.IsArray() && rt.IsArray():
		if lt.ElemType().Kind != rt.ElemType().Kind {
			return nil, nil, types.T{}, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", lt, op, rt).
				WithHint("No operator matches the given name and argument types. You might need to add explicit type casts."), loc)
		}
		t = lt
	case lt.Kind == rt.Kind:
		t = lt
		if lt.Kind == value.KindText {
			t = types.Text
		}
	case lt.Kind == value.KindDate && (rt.Kind == value.KindTimestamp || rt.Kind == value.KindTimestampTZ):
		t = rt
	case rt.Kind == value.KindDate && (lt.Kind == value.KindTimestamp || lt.Kind == value.KindTimestampTZ):
		t = lt
	case lt.Kind == value.KindTimestamp && rt.Kind == value.KindTimestampTZ, lt.Kind == value.KindTimestampTZ && rt.Kind == value.KindTimestamp:
		t = types.TimestampTZ
	default:
		return nil, nil, types.T{}, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", lt, op, rt).
			WithHint("No operator matches the given name and argument types. You might need to add explicit type casts."), loc)
	}
	t.Width, t.Precision, t.Scale = 0, 0, 0
	var err error
	if l, err = b.coerce(l, t, "operand"); err != nil {
		return nil, nil, t, posErr(pgerror.Classify(err), loc)
	}
	if r, err = b.coerce(r, t, "operand"); err != nil {
		return nil, nil, t, posErr(pgerror.Classify(err), loc)
	}
	return l, r, t, nil
}

// constant builds a literal.
func constant(c *pg.A_Const) (expr.Expr, error) {
	if c.Isnull {
		return &expr.Const{V: value.Null{}, T: types.Unknown}, nil
	}
	switch v := c.Val.(type) {
	case *pg.A_Const_Ival:
		return &expr.Const{V: value.Int(v.Ival.Ival), T: types.Int4}, nil
	case *pg.A_Const_Fval:
		s := v.Fval.Fval
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			// A float-looking token that is an integer (the grammar's
			// -2147483648 is one): int4 if it fits, as PostgreSQL types it.
			if i >= math.MinInt32 && i <= math.MaxInt32 {
				return &expr.Const{V: value.Int(i), T: types.Int4}, nil
			}
			return &expr.Const{V: value.Int(i), T: types.Int8}, nil
		}
		n, err := value.ParseNumeric(s)
		if err != nil {
			return nil, posErr(pgerror.New(pgerror.CodeInvalidTextRepresentation, "invalid numeric literal %q", s), c.Location)
		}
		return &expr.Const{V: n, T: types.Numeric}, nil
	case *pg.A_Const_Boolval:
		return &expr.Const{V: value.Bool(v.Boolval.Boolval), T: types.Bool}, nil
	case *pg.A_Const_Sval:
		return &expr.Const{V: value.Text(v.Sval.Sval), T: types.Unknown}, nil
	case *pg.A_Const_Bsval:
		return nil, posErr(pgerror.Unsupported("bit string literal"), c.Location)
	}
	return nil, posErr(pgerror.Unsupported("this literal"), c.Location)
}

// typeName resolves a TypeName node.
func typeName(tn *pg.TypeName) (types.T, error) {
	if len(tn.ArrayBounds) > 1 {
		return types.T{}, posErr(pgerror.Unsupported("multi-dimensional arrays"), tn.Location)
	}
	ns := Names(tn.Names)
	var mods []int32
	for _, m := range tn.Typmods {
		c := m.GetAConst()
		if c == nil || c.GetIval() == nil {
			return types.T{}, posErr(pgerror.New(pgerror.CodeSyntaxError, "type modifiers must be simple constants"), tn.Location)
		}
		mods = append(mods, c.GetIval().Ival)
	}
	t, err := types.Resolve(strings.Join(ns, "."), mods)
	if err != nil {
		return types.T{}, posErr(pgerror.Classify(err), tn.Location)
	}
	if len(tn.ArrayBounds) == 1 {
		return arrayType(t, tn.Location)
	}
	return t, nil
}

// expr builds a typed expression.
func (b *Builder) expr(n *pg.Node, sc *scope) (expr.Expr, error) {
	if sc != nil && sc.agg != nil && len(sc.agg.groupExpr) > 0 {
		if _, isCol := n.Node.(*pg.Node_ColumnRef); !isCol {
			k := nodeKey(n)
			for gi, gk := range sc.agg.groupExpr {
				if gk != "" && gk == k {
					inner, err := b.expr(n, sc.agg.input)
					if err != nil {
						return nil, err
					}
					return &expr.Col{Idx: gi, T: inner.Type(), Name: columnName(n)}, nil
				}
			}
		}
	}
	switch x := n.Node.(type) {
	case *pg.Node_AConst:
		return constant(x.AConst)
	case *pg.Node_ColumnRef:
		parts := make([]string, 0, len(x.ColumnRef.Fields))
		for _, f := range x.ColumnRef.Fields {
			if f.GetAStar() != nil {
				return nil, posErr(pgerror.New(pgerror.CodeSyntaxError, "* is not allowed here"), x.ColumnRef.Location)
			}
			parts = append(parts, strNode(f))
		}
		if sc == nil {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedColumn, "column %q does not exist", parts[len(parts)-1]), x.ColumnRef.Location)
		}
		if sc.agg != nil {
			in, err := sc.agg.input.resolveColumn(parts, x.ColumnRef.Location)
			if err != nil {
				if oc, ok, oerr := b.outerColumn(parts, x.ColumnRef.Location); ok {
					return oc, oerr
				}
				return nil, err
			}
			for gi, ic := range sc.agg.groupCol {
				if ic == in {
					c := sc.agg.input.cols[in]
					return &expr.Col{Idx: gi, T: c.Type, Name: c.Name}, nil
				}
			}
			return nil, posErr(pgerror.New(pgerror.CodeGroupingError, "column %q must appear in the GROUP BY clause or be used in an aggregate function", sc.agg.input.table+"."+parts[len(parts)-1]), x.ColumnRef.Location)
		}
		i, err := sc.resolveColumn(parts, x.ColumnRef.Location)
		if err != nil {
			if oc, ok, oerr := b.outerColumn(parts, x.ColumnRef.Location); ok {
				return oc, oerr
			}
			return nil, err
		}
		return &expr.Col{Idx: i, T: sc.cols[i].Type, Name: sc.cols[i].Name}, nil
	case *pg.Node_ParamRef:
		num := int(x.ParamRef.Number)
		if num < 1 || num > 65535 {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedParameter, "there is no parameter $%d", num), x.ParamRef.Location)
		}
		for len(b.Params) < num {
			b.Params = append(b.Params, types.Unknown)
		}
		return &expr.Param{Idx: num - 1, T: b.paramType(num)}, nil
	case *pg.Node_TypeCast:
		t, err := typeName(x.TypeCast.TypeName)
		if err != nil {
			return nil, err
		}
		if ae := x.TypeCast.Arg.GetAArrayExpr(); ae != nil && t.IsArray() {
			return b.arrayExpr(ae, sc, &t)
		}
		if t.OID == types.OIDRegclass {
			return b.regclassCast(x.TypeCast.Arg, sc)
		}
		e, err := b.expr(x.TypeCast.Arg, sc)
		if err != nil {
			return nil, err
		}
		if isUnknown(e) {
			if _, isConst := e.(*expr.Const); isConst && t.Width > 0 {
				// An explicit cast truncates to the length where an
				// assignment would fail: read the literal unmodified.
				base := t
				base.Width = 0
				if e, err = b.coerce(e, base, "literal"); err != nil {
					return nil, err
				}
				return &expr.Cast{E: e, T: t}, nil
			}
			return b.coerce(e, t, "literal")
		}
		if e.Type().OID == types.OIDRegclass && t.Kind == value.KindText {
			return regclassToText(e, t), nil
		}
		return &expr.Cast{E: e, T: t}, nil
	case *pg.Node_AExpr:
		return b.aexpr(x.AExpr, sc)
	case *pg.Node_BoolExpr:
		var args []expr.Expr
		for _, a := range x.BoolExpr.Args {
			e, err := b.boolean(a, sc, "argument of "+strings.TrimSuffix(x.BoolExpr.Boolop.String(), "_EXPR"))
			if err != nil {
				return nil, err
			}
			args = append(args, e)
		}
		switch x.BoolExpr.Boolop {
		case pg.BoolExprType_NOT_EXPR:
			return &expr.Not{E: args[0]}, nil
		case pg.BoolExprType_AND_EXPR, pg.BoolExprType_OR_EXPR:
			e := args[0]
			for _, a := range args[1:] {
				e = &expr.AndOr{And: x.BoolExpr.Boolop == pg.BoolExprType_AND_EXPR, L: e, R: a}
			}
			return e, nil
		}
	case *pg.Node_NullTest:
		e, err := b.expr(x.NullTest.Arg, sc)
		if err != nil {
			return nil, err
		}
		return &expr.IsNull{E: e, Not: x.NullTest.Nulltesttype == pg.NullTestType_IS_NOT_NULL}, nil
	case *pg.Node_FuncCall:
		return b.funcCall(x.FuncCall, sc)
	case *pg.Node_SqlvalueFunction:
		return b.sqlValueFunction(x.SqlvalueFunction)
	case *pg.Node_CaseExpr:
		return b.caseExpr(x.CaseExpr, sc)
	case *pg.Node_MinMaxExpr:
		return b.minMax(x.MinMaxExpr, sc)
	case *pg.Node_CollateClause:
		// Text compares byte-wise (the C collation) whatever is named.
		return b.expr(x.CollateClause.Arg, sc)
	case *pg.Node_CoalesceExpr:
		var args []expr.Expr
		for _, a := range x.CoalesceExpr.Args {
			e, err := b.expr(a, sc)
			if err != nil {
				return nil, err
			}
			args = append(args, e)
		}
		args, t, err := b.commonType(args, "COALESCE", x.CoalesceExpr.Location)
		if err != nil {
			return nil, err
		}
		return &expr.Coalesce{Args: args, T: t}, nil
	case *pg.Node_SubLink:
		return b.subLink(x.SubLink, sc)
	case *pg.Node_AArrayExpr:
		return b.arrayExpr(x.AArrayExpr, sc, nil)
	case *pg.Node_AIndirection:
		return b.indirection(x.AIndirection, sc)
	}
	return nil, pgerror.Unsupported(fmt.Sprintf("expression %T", n.Node))
}

// boolean builds an expression that must be boolean.
func (b *Builder) boolean(n *pg.Node, sc *scope, what string) (expr.Expr, error) {
	e, err := b.expr(n, sc)
	if err != nil {
		return nil, err
	}
	if isUnknown(e) {
		return b.coerce(e, types.Bool, what)
	}
	if e.Type().Kind != value.KindBool {
		return nil, pgerror.New(pgerror.CodeDatatypeMismatch, "%s must be type boolean, not type %s", what, e.Type())
	}
	return e, nil
}

// commonType resolves a list of expressions to one type (CASE, COALESCE,
// VALUES columns).
func (b *Builder) commonType(args []expr.Expr, what string, loc int32) ([]expr.Expr, types.T, error) {
	var t types.T
	found := false
	for _, a := range args {
		if isUnknown(a) {
			continue
		}
		at := a.Type()
		switch {
		case !found:
			t, found = at, true
		case numericRank(at) > 0 && numericRank(t) > 0:
			if numericRank(at) > numericRank(t) {
				t = at
			}
		case at.Kind == value.KindText && t.Kind == value.KindText:
			// The string types convert to each other implicitly both
			// ways, so PostgreSQL keeps the first one's type.
		case at.Kind != t.Kind:
			return nil, t, posErr(pgerror.New(pgerror.CodeDatatypeMismatch, "%s types %s and %s cannot be matched", what, t, at), loc)
		}
	}
	if !found {
		t = types.Text
	}
	t.Width, t.Precision, t.Scale = 0, 0, 0
	out := make([]expr.Expr, len(args))
	for i, a := range args {
		c, err := b.coerce(a, t, what)
		if err != nil {
			return nil, t, posErr(pgerror.Classify(err), loc)
		}
		out[i] = c
	}
	return out, t, nil
}

func (b *Builder) caseExpr(c *pg.CaseExpr, sc *scope) (expr.Expr, error) {
	var arg expr.Expr
	if c.Arg != nil {
		var err error
		if arg, err = b.expr(c.Arg, sc); err != nil {
			return nil, err
		}
	}
	out := &expr.Case{}
	var results []expr.Expr
	for _, w := range c.Args {
		cw := w.GetCaseWhen()
		var cond expr.Expr
		var err error
		if arg != nil {
			v, err := b.expr(cw.Expr, sc)
			if err != nil {
				return nil, err
			}
			l, r, _, err := b.unify(arg, v, "=", cw.Location)
			if err != nil {
				return nil, err
			}
			cond = &expr.Compare{Op: "=", L: l, R: r}
		} else if cond, err = b.boolean(cw.Expr, sc, "argument of CASE/WHEN"); err != nil {
			return nil, err
		}
		res, err := b.expr(cw.Result, sc)
		if err != nil {
			return nil, err
		}
		out.Whens = append(out.Whens, cond)
		results = append(results, res)
	}
	if c.Defresult != nil {
		d, err := b.expr(c.Defresult, sc)
		if err != nil {
			return nil, err
		}
		results = append(results, d)
	}
	results, t, err := b.commonType(results, "CASE", c.Location)
	if err != nil {
		return nil, err
	}
	out.Thens = results[:len(out.Whens)]
	if c.Defresult != nil {
		out.Else = results[len(results)-1]
	}
	out.T = t
	return out, nil
}

func (b *Builder) aexpr(a *pg.A_Expr, sc *scope) (expr.Expr, error) {
	op := ""
	if len(a.Name) > 0 {
		op = strNode(a.Name[len(a.Name)-1])
	}
	switch a.Kind {
	case pg.A_Expr_Kind_AEXPR_OP:
	case pg.A_Expr_Kind_AEXPR_NULLIF:
		return b.funcCall(&pg.FuncCall{Funcname: []*pg.Node{pg.MakeStrNode("nullif")}, Args: []*pg.Node{a.Lexpr, a.Rexpr}, Location: a.Location}, sc)
	case pg.A_Expr_Kind_AEXPR_LIKE, pg.A_Expr_Kind_AEXPR_ILIKE:
		return b.likeExpr(a, sc, Names(a.Name)[len(a.Name)-1])
	case pg.A_Expr_Kind_AEXPR_IN:
		return b.inList(a, sc, op == "<>")
	case pg.A_Expr_Kind_AEXPR_OP_ANY, pg.A_Expr_Kind_AEXPR_OP_ALL:
		return b.anyAll(a, sc, op)
	case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN:
		lst := a.Rexpr.GetList()
		lo := &pg.A_Expr{Kind: pg.A_Expr_Kind_AEXPR_OP, Name: []*pg.Node{pg.MakeStrNode(">=")}, Lexpr: a.Lexpr, Rexpr: lst.Items[0], Location: a.Location}
		hi := &pg.A_Expr{Kind: pg.A_Expr_Kind_AEXPR_OP, Name: []*pg.Node{pg.MakeStrNode("<=")}, Lexpr: a.Lexpr, Rexpr: lst.Items[1], Location: a.Location}
		l, err := b.aexpr(lo, sc)
		if err != nil {
			return nil, err
		}
		h, err := b.aexpr(hi, sc)
		if err != nil {
			return nil, err
		}
		var e expr.Expr = &expr.AndOr{And: true, L: l, R: h}
		if a.Kind == pg.A_Expr_Kind_AEXPR_NOT_BETWEEN {
			e = &expr.Not{E: e}
		}
		return e, nil
	default:
		return nil, posErr(pgerror.Unsupported("operator kind "+strings.TrimPrefix(a.Kind.String(), "AEXPR_")), a.Location)
	}
	if a.Lexpr == nil { // prefix operator
		r, err := b.expr(a.Rexpr, sc)
		if err != nil {
			return nil, err
		}
		switch op {
		case "-":
			if c, ok := r.(*expr.Const); ok {
				if i, ok := c.V.(value.Int); ok && c.T.OID == types.OIDInt4 {
					return &expr.Const{V: -i, T: types.Int4}, nil
				}
			}
			if isUnknown(r) {
				if r, err = b.coerce(r, types.Numeric, "operand"); err != nil {
					return nil, err
				}
			}
			if numericRank(r.Type()) == 0 {
				return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: - %s", r.Type()), a.Location)
			}
			return &expr.Neg{E: r}, nil
		case "+":
			return r, nil
		}
		return nil, posErr(pgerror.Unsupported("prefix operator "+op), a.Location)
	}
	l, err := b.expr(a.Lexpr, sc)
	if err != nil {
		return nil, err
	}
	r, err := b.expr(a.Rexpr, sc)
	if err != nil {
		return nil, err
	}
	switch op {
	case "->", "->>", "@>", "<@":
		return b.jsonbOp(op, l, r, a.Location)
	case "~", "!~", "~*", "!~*":
		return b.regexOp(op, l, r, a.Location)
	case "=", "<>", "!=", "<", "<=", ">", ">=":
		l, r, _, err := b.unify(l, r, op, a.Location)
		if err != nil {
			return nil, err
		}
		return &expr.Compare{Op: op, L: l, R: r}, nil
	case "+", "-", "*", "/", "%":
		if e, ok, err := b.timeArith(op, l, r); ok {
			return e, err
		}
		if e, ok, err := b.dateArith(op, l, r, a.Location); ok {
			return e, err
		}
		if isUnknown(l) && isUnknown(r) {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator is not unique: unknown %s unknown", op), a.Location)
		}
		l, r, t, err := b.unify(l, r, op, a.Location)
		if err != nil {
			return nil, err
		}
		if numericRank(t) == 0 || (op == "%" && t.Kind == value.KindFloat) {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", t, op, t), a.Location)
		}
		return &expr.Binary{Op: op, L: l, R: r, T: t}, nil
	case "||":
		if l.Type().IsArray() || r.Type().IsArray() {
			return b.arrayConcat(l, r, a.Location)
		}
		var err error
		if isUnknown(l) {
			l, err = b.coerce(l, types.Text, "operand")
		}
		if err == nil && isUnknown(r) {
			r, err = b.coerce(r, types.Text, "operand")
		}
		if err != nil {
			return nil, err
		}
		if l.Type().Kind != value.KindText && r.Type().Kind != value.KindText {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s || %s", l.Type(), r.Type()), a.Location)
		}
		return &expr.Binary{Op: "||", L: l, R: r, T: types.Text}, nil
	}
	return nil, posErr(pgerror.Unsupported("operator "+op), a.Location)
}

// inList builds x IN (a, b, …) as a chain of equalities.
func (b *Builder) inList(a *pg.A_Expr, sc *scope, not bool) (expr.Expr, error) {
	lst := a.Rexpr.GetList()
	if lst == nil {
		return nil, posErr(pgerror.Unsupported("IN (subquery)"), a.Location)
	}
	var out expr.Expr
	for _, item := range lst.Items {
		l, err := b.expr(a.Lexpr, sc)
		if err != nil {
			return nil, err
		}
		r, err := b.expr(item, sc)
		if err != nil {
			return nil, err
		}
		l, r, _, err = b.unify(l, r, "=", a.Location)
		if err != nil {
			return nil, err
		}
		var cmp expr.Expr = &expr.Compare{Op: "=", L: l, R: r}
		if not {
			cmp = &expr.Compare{Op: "<>", L: l, R: r}
		}
		if out == nil {
			out = cmp
		} else {
			out = &expr.AndOr{And: not, L: out, R: cmp}
		}
	}
	return out, nil
}
