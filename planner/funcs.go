package planner

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/apd/v3"
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// ServerVersion is what version() and server_version report: PostgreSQL
// 15 compatible.
const ServerVersion = "15.0"

// VersionString is version()'s answer.
const VersionString = "PostgreSQL 15.0 (ShaleDB) on x86_64-pc-linux-gnu, compiled by Go, 64-bit"

var aggregates = map[string]bool{"count": true, "sum": true, "avg": true, "min": true, "max": true,
	"bool_and": true, "bool_or": true, "every": true, "string_agg": true, "array_agg": true}

func funcName(f *pg.FuncCall) string {
	ns := Names(f.Funcname)
	name := ns[len(ns)-1]
	if len(ns) == 2 && ns[0] != "pg_catalog" {
		return ns[0] + "." + name
	}
	return name
}

// hasAggregate reports whether a parse tree (of the supported node kinds)
// calls an aggregate.
func hasAggregate(n *pg.Node) bool {
	if n == nil {
		return false
	}
	switch x := n.Node.(type) {
	case *pg.Node_FuncCall:
		if aggregates[funcName(x.FuncCall)] {
			return true
		}
		for _, a := range x.FuncCall.Args {
			if hasAggregate(a) {
				return true
			}
		}
	case *pg.Node_AExpr:
		return hasAggregate(x.AExpr.Lexpr) || hasAggregate(x.AExpr.Rexpr)
	case *pg.Node_BoolExpr:
		for _, a := range x.BoolExpr.Args {
			if hasAggregate(a) {
				return true
			}
		}
	case *pg.Node_TypeCast:
		return hasAggregate(x.TypeCast.Arg)
	case *pg.Node_NullTest:
		return hasAggregate(x.NullTest.Arg)
	case *pg.Node_ResTarget:
		return hasAggregate(x.ResTarget.Val)
	case *pg.Node_SortBy:
		return hasAggregate(x.SortBy.Node)
	case *pg.Node_CoalesceExpr:
		for _, a := range x.CoalesceExpr.Args {
			if hasAggregate(a) {
				return true
			}
		}
	case *pg.Node_CaseExpr:
		if hasAggregate(x.CaseExpr.Arg) || hasAggregate(x.CaseExpr.Defresult) {
			return true
		}
		for _, w := range x.CaseExpr.Args {
			cw := w.GetCaseWhen()
			if hasAggregate(cw.Expr) || hasAggregate(cw.Result) {
				return true
			}
		}
	case *pg.Node_List:
		for _, a := range x.List.Items {
			if hasAggregate(a) {
				return true
			}
		}
	}
	return false
}

func (b *Builder) funcCall(f *pg.FuncCall, sc *scope) (expr.Expr, error) {
	name := funcName(f)
	if f.Over != nil {
		return nil, posErr(pgerror.Unsupported("window functions"), f.Location)
	}
	if aggregates[name] {
		return b.aggregate(name, f, sc)
	}
	if f.AggStar || f.AggDistinct || len(f.AggOrder) > 0 || f.AggFilter != nil {
		return nil, posErr(pgerror.New(pgerror.CodeWrongObjectType, "%s is not an aggregate function", name), f.Location)
	}
	args := make([]expr.Expr, len(f.Args))
	for i, a := range f.Args {
		e, err := b.expr(a, sc)
		if err != nil {
			return nil, err
		}
		args[i] = e
	}
	arity := func(n int) error {
		if len(args) != n {
			return posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s with %d arguments does not exist", name, len(args)), f.Location)
		}
		return nil
	}
	textArg := func(i int) error {
		var err error
		if isUnknown(args[i]) {
			args[i], err = b.coerce(args[i], types.Text, "argument")
		}
		if err == nil && args[i].Type().Kind != value.KindText {
			err = posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s(%s) does not exist", name, args[i].Type()), f.Location)
		}
		return err
	}
	if sig, ok := adminFuncs[name]; ok {
		return b.adminCall(name, sig, args, f.Location)
	}
	if e, err := b.catalogFuncs(name, args, f.Location); e != nil || err != nil {
		return e, err
	}
	if e, err := b.arrayFunc(name, args, f.Location); e != nil || err != nil {
		return e, err
	}
	if e, err := b.libFunc(name, args, f.Location); e != nil || err != nil {
		return e, err
	}
	if e, err := b.timeFunc(name, args, f.Location); e != nil || err != nil {
		return e, err
	}
	switch name {
	case "version":
		if err := arity(0); err != nil {
			return nil, err
		}
		return &expr.Const{V: value.Text(VersionString), T: types.Text}, nil
	case "current_setting":
		if len(args) < 1 || len(args) > 2 {
			return nil, arity(1)
		}
		if err := textArg(0); err != nil {
			return nil, err
		}
		return &expr.Func{Name: name, Args: args[:1], T: types.Text, Strict: true, Fn: func(env *expr.Env, a []value.Value) (value.Value, error) {
			n := strings.ToLower(string(a[0].(value.Text)))
			if env.Setting != nil {
				if v, ok := env.Setting(n); ok {
					return value.Text(v), nil
				}
			}
			if len(args) == 2 {
				return value.Null{}, nil
			}
			return nil, pgerror.New(pgerror.CodeUndefinedObject, "unrecognized configuration parameter %q", n)
		}}, nil
	case "now", "transaction_timestamp", "statement_timestamp":
		if err := arity(0); err != nil {
			return nil, err
		}
		return nowExpr(), nil
	case "lower", "upper":
		if err := arity(1); err != nil {
			return nil, err
		}
		if err := textArg(0); err != nil {
			return nil, err
		}
		up := name == "upper"
		return &expr.Func{Name: name, Args: args, T: types.Text, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			if up {
				return value.Text(strings.ToUpper(string(a[0].(value.Text)))), nil
			}
			return value.Text(strings.ToLower(string(a[0].(value.Text)))), nil
		}}, nil
	case "length", "char_length", "character_length":
		if err := arity(1); err != nil {
			return nil, err
		}
		if err := textArg(0); err != nil {
			return nil, err
		}
		return &expr.Func{Name: name, Args: args, T: types.Int4, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			return value.Int(utf8.RuneCountInString(strings.TrimRight(string(a[0].(value.Text)), "\x00"))), nil
		}}, nil
	case "abs":
		if err := arity(1); err != nil {
			return nil, err
		}
		if isUnknown(args[0]) {
			var err error
			if args[0], err = b.coerce(args[0], types.Float8, "argument"); err != nil {
				return nil, err
			}
		}
		t := args[0].Type()
		if numericRank(t) == 0 {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function abs(%s) does not exist", t), f.Location)
		}
		return &expr.Func{Name: name, Args: args, T: t, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			switch v := a[0].(type) {
			case value.Int:
				if v < 0 {
					return expr.Arith("-", t, value.Int(0), v)
				}
				return v, nil
			case value.Float:
				if v < 0 {
					return -v, nil
				}
				return v, nil
			case value.Numeric:
				return value.Numeric{Dec: new(apd.Decimal).Abs(v.Dec)}, nil
			}
			return a[0], nil
		}}, nil
	case "nullif":
		if err := arity(2); err != nil {
			return nil, err
		}
		l, r, _, err := b.unify(args[0], args[1], "=", f.Location)
		if err != nil {
			return nil, err
		}
		return &expr.Func{Name: name, Args: []expr.Expr{l, r}, T: l.Type(), Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			if a[0].Kind() != value.KindNull && a[1].Kind() != value.KindNull && value.Compare(a[0], a[1]) == 0 {
				return value.Null{}, nil
			}
			return a[0], nil
		}}, nil
	case "pg_table_is_visible":
		if err := arity(1); err != nil {
			return nil, err
		}
		return &expr.Func{Name: name, Args: args, T: types.Bool, Strict: true, Fn: func(*expr.Env, []value.Value) (value.Value, error) {
			return value.Bool(true), nil // one schema: every table is on the path
		}}, nil
	case "pg_get_userbyid":
		if err := arity(1); err != nil {
			return nil, err
		}
		var err error
		if args[0], err = b.coerce(args[0], types.Int8, "argument"); err != nil {
			return nil, err
		}
		return &expr.Func{Name: name, Args: args, T: types.Text, Strict: true, Fn: func(env *expr.Env, a []value.Value) (value.Value, error) {
			if env.Catalog == nil {
				return value.Text("unknown"), nil
			}
			return env.Catalog(name, a)
		}}, nil
	case "current_schema":
		if err := arity(0); err != nil {
			return nil, err
		}
		return &expr.Const{V: value.Text("public"), T: types.Text}, nil
	case "pg_backend_pid":
		return nil, posErr(pgerror.Unsupported("function pg_backend_pid()"), f.Location)
	}
	return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s does not exist", name).WithDetail("ShaleDB supports a subset of PostgreSQL's functions."), f.Location)
}

func nowExpr() expr.Expr {
	return &expr.Func{Name: "now", T: types.TimestampTZ, Fn: func(env *expr.Env, _ []value.Value) (value.Value, error) {
		return value.TimestampTZ(env.Now.Sub(value.Epoch).Truncate(time.Microsecond).Microseconds()), nil
	}}
}

func (b *Builder) sqlValueFunction(f *pg.SQLValueFunction) (expr.Expr, error) {
	switch f.Op {
	case pg.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP, pg.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N:
		return nowExpr(), nil
	case pg.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP, pg.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP_N:
		return &expr.Cast{E: nowExpr(), T: types.Timestamp}, nil
	case pg.SQLValueFunctionOp_SVFOP_CURRENT_DATE:
		return &expr.Cast{E: nowExpr(), T: types.Date}, nil
	case pg.SQLValueFunctionOp_SVFOP_CURRENT_USER, pg.SQLValueFunctionOp_SVFOP_SESSION_USER, pg.SQLValueFunctionOp_SVFOP_USER, pg.SQLValueFunctionOp_SVFOP_CURRENT_ROLE:
		return settingExpr("session_authorization", types.Name), nil
	case pg.SQLValueFunctionOp_SVFOP_CURRENT_CATALOG:
		return settingExpr("shaledb.database", types.Name), nil
	case pg.SQLValueFunctionOp_SVFOP_CURRENT_SCHEMA:
		return &expr.Const{V: value.Text("public"), T: types.Name}, nil
	}
	return nil, posErr(pgerror.Unsupported(strings.ToLower(strings.TrimPrefix(f.Op.String(), "SVFOP_"))), f.Location)
}

func settingExpr(name string, t types.T) expr.Expr {
	return &expr.Func{Name: name, T: t, Fn: func(env *expr.Env, _ []value.Value) (value.Value, error) {
		if env.Setting != nil {
			if v, ok := env.Setting(name); ok {
				return value.Text(v), nil
			}
		}
		return value.Null{}, nil
	}}
}

// aggregate adds an aggregate to the post-aggregation scope and returns a
// reference to its result.
func (b *Builder) aggregate(name string, f *pg.FuncCall, sc *scope) (expr.Expr, error) {
	if sc == nil || sc.agg == nil {
		return nil, posErr(pgerror.New(pgerror.CodeGroupingError, "aggregate functions are not allowed here"), f.Location)
	}
	a := AggFunc{Name: name, Star: f.AggStar, Distinct: f.AggDistinct}
	for _, o := range f.AggOrder {
		sb := o.GetSortBy()
		if hasAggregate(sb.Node) {
			return nil, posErr(pgerror.New(pgerror.CodeGroupingError, "aggregate function calls cannot be nested"), f.Location)
		}
		e, err := b.expr(sb.Node, sc.agg.input)
		if err != nil {
			return nil, err
		}
		if isUnknown(e) {
			if e, err = b.coerce(e, types.Text, "ORDER BY"); err != nil {
				return nil, err
			}
		}
		if f.AggDistinct && nodeKey(sb.Node) != nodeKey(f.Args[0]) {
			return nil, posErr(pgerror.New(pgerror.CodeInvalidColumnReference, "in an aggregate with DISTINCT, ORDER BY expressions must appear in argument list"), f.Location)
		}
		a.Order = append(a.Order, sortKey(sb, e))
	}
	if f.AggFilter != nil {
		if hasAggregate(f.AggFilter) {
			return nil, posErr(pgerror.New(pgerror.CodeGroupingError, "aggregate functions are not allowed in FILTER"), f.Location)
		}
		cond, err := b.boolean(f.AggFilter, sc.agg.input, "argument of FILTER")
		if err != nil {
			return nil, err
		}
		a.Filter = cond
	}
	switch {
	case f.AggStar:
		if name != "count" {
			return nil, posErr(pgerror.New(pgerror.CodeSyntaxError, "%s(*) is not allowed", name), f.Location)
		}
		a.T = types.Int8
	case len(f.Args) != 1 && !(name == "string_agg" && len(f.Args) == 2):
		return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s with %d arguments does not exist", name, len(f.Args)), f.Location)
	default:
		inner := sc.agg.input
		arg, err := b.expr(f.Args[0], inner)
		if err != nil {
			return nil, err
		}
		if hasAggregate(f.Args[0]) {
			return nil, posErr(pgerror.New(pgerror.CodeGroupingError, "aggregate function calls cannot be nested"), f.Location)
		}
		if isUnknown(arg) {
			want := types.Text
			if name == "bool_and" || name == "bool_or" || name == "every" {
				want = types.Bool
			}
			if arg, err = b.coerce(arg, want, "argument"); err != nil {
				return nil, err
			}
		}
		at := arg.Type()
		at.Width, at.Precision, at.Scale = 0, 0, 0
		a.Arg = arg
		switch name {
		case "count":
			a.T = types.Int8
		case "sum":
			switch at.OID {
			case types.OIDInt2, types.OIDInt4:
				a.T = types.Int8
			case types.OIDInt8, types.OIDNumeric:
				a.T = types.Numeric
			case types.OIDFloat4, types.OIDFloat8:
				a.T = at
			default:
				return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function sum(%s) does not exist", at), f.Location)
			}
		case "avg":
			switch {
			case at.Kind == value.KindInt || at.Kind == value.KindNumeric:
				a.T = types.Numeric
			case at.Kind == value.KindFloat:
				a.T = types.Float8
			default:
				return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function avg(%s) does not exist", at), f.Location)
			}
		case "min", "max":
			if at.Kind == value.KindJSONB || at.Kind == value.KindBool {
				return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s(%s) does not exist", name, at), f.Location)
			}
			a.T = at
		case "bool_and", "bool_or", "every":
			if at.Kind != value.KindBool {
				return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s(%s) does not exist", name, at), f.Location)
			}
			a.T = types.Bool
		case "string_agg":
			d, err := b.expr(f.Args[1], inner)
			if err == nil && isUnknown(d) {
				d, err = b.coerce(d, types.Text, "argument")
			}
			if err != nil {
				return nil, err
			}
			if at.Kind != value.KindText || d.Type().Kind != value.KindText {
				return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function string_agg(%s, %s) does not exist", at, d.Type()), f.Location)
			}
			a.Arg2, a.T = d, types.Text
		case "array_agg":
			t, err := arrayType(at, f.Location)
			if err != nil {
				return nil, err
			}
			a.T = t
		}
	}
	sc.agg.aggs = append(sc.agg.aggs, a)
	return &expr.Col{Idx: len(sc.agg.groupCol) + len(sc.agg.aggs) - 1, T: a.T, Name: name}, nil
}

// adminSig is the signature of a shaledb.* administration function.
type adminSig struct {
	args []types.T
	ret  types.T
}

// adminFuncs are the cluster administration functions, run by the system
// tenant's superusers (the session checks, at run time).
var adminFuncs = map[string]adminSig{
	"shaledb.create_tenant":    {args: []types.T{types.Text, types.Text}, ret: types.Int8},
	"shaledb.drop_tenant":      {args: []types.T{types.Text}, ret: types.Bool},
	"shaledb.move_tenant":      {args: []types.T{types.Text, types.Text}, ret: types.Bool},
	"shaledb.set_tenant_limit": {args: []types.T{types.Text, types.Text, types.Int8}, ret: types.Int8},
}

func (b *Builder) adminCall(name string, sig adminSig, args []expr.Expr, loc int32) (expr.Expr, error) {
	if len(args) != len(sig.args) {
		return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s with %d arguments does not exist", name, len(args)), loc)
	}
	for i, t := range sig.args {
		a, err := b.coerce(args[i], t, "argument")
		if err != nil {
			return nil, err
		}
		args[i] = a
	}
	return &expr.Func{Name: name, Args: args, T: sig.ret, Fn: func(env *expr.Env, a []value.Value) (value.Value, error) {
		for i, v := range a {
			if v.Kind() == value.KindNull {
				return nil, pgerror.New(pgerror.CodeNullValueNotAllowed, "argument %d of %s must not be null", i+1, name)
			}
		}
		if env.Admin == nil {
			return nil, pgerror.New(pgerror.CodeInsufficientPrivilege, "permission denied for function %s", name)
		}
		return env.Admin(name, a)
	}}, nil
}
