package planner

import (
	"fmt"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// The system information functions psql and drivers call. Those that
// read the tenant's catalog go through Env.Catalog; the rest are answered
// here.
func (b *Builder) catalogFuncs(name string, args []expr.Expr, loc int32) (expr.Expr, error) {
	// sig coerces the arguments to ts; trailing ones may be omitted down
	// to min.
	sig := func(min int, ts ...types.T) error {
		if len(args) < min || len(args) > len(ts) {
			return posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s with %d arguments does not exist", name, len(args)), loc)
		}
		for i := range args {
			if ts[i].OID == types.OIDRegclass {
				c, err := b.regclassOf(args[i])
				if err != nil {
					return err
				}
				args[i] = c
				continue
			}
			c, err := b.coerce(args[i], ts[i], "argument")
			if err != nil {
				if ts[i].Kind == value.KindInt && args[i].Type().Kind == value.KindInt {
					c = &expr.Cast{E: args[i], T: ts[i]}
				} else {
					return posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function %s(%s) does not exist", name, args[i].Type()), loc)
				}
			}
			args[i] = c
		}
		return nil
	}
	fn := func(t types.T, strict bool, f func(a []value.Value) (value.Value, error)) *expr.Func {
		return &expr.Func{Name: name, Args: args, T: t, Strict: strict, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) { return f(a) }}
	}
	oid, text, b4 := types.OID, types.Text, types.Bool
	switch name {
	case "format_type":
		if err := sig(2, oid, types.Int4); err != nil {
			return nil, err
		}
		return fn(text, false, func(a []value.Value) (value.Value, error) {
			if a[0].Kind() == value.KindNull {
				return value.Null{}, nil
			}
			typmod := int32(-1)
			if m, ok := a[1].(value.Int); ok {
				typmod = int32(m)
			}
			t, ok := types.WithTypmod(uint32(a[0].(value.Int)), typmod)
			switch {
			case !ok:
				return value.Text("???"), nil
			case t.OID == types.OIDBpchar && t.Width == 0 && typmod < 0:
				return value.Text("bpchar"), nil
			}
			return value.Text(t.String()), nil
		}), nil
	case "pg_get_expr":
		// Expressions are kept as their SQL text: it is its own
		// deparsed form.
		if err := sig(2, text, oid, b4); err != nil {
			return nil, err
		}
		return fn(text, true, func(a []value.Value) (value.Value, error) { return a[0], nil }), nil
	case "pg_get_indexdef":
		if err := sig(1, oid, types.Int4, b4); err != nil {
			return nil, err
		}
		return catalogFunc(name, text, args...), nil
	case "pg_get_constraintdef":
		if err := sig(1, oid, b4); err != nil {
			return nil, err
		}
		return catalogFunc(name, text, args...), nil
	case "pg_get_triggerdef", "pg_get_statisticsobjdef_columns", "pg_get_viewdef", "pg_get_ruledef":
		// There are no triggers, statistics objects, views or rules:
		// every oid names none.
		if err := sig(1, oid, b4); err != nil {
			return nil, err
		}
		return fn(text, true, func([]value.Value) (value.Value, error) { return value.Null{}, nil }), nil
	case "pg_relation_is_publishable":
		if err := sig(1, types.Regclass); err != nil {
			return nil, err
		}
		return fn(b4, true, func([]value.Value) (value.Value, error) { return value.Bool(false), nil }), nil
	case "pg_encoding_to_char":
		if err := sig(1, types.Int4); err != nil {
			return nil, err
		}
		return fn(types.Name, true, func(a []value.Value) (value.Value, error) {
			if a[0].(value.Int) == 6 {
				return value.Text("UTF8"), nil
			}
			return value.Text(""), nil
		}), nil
	case "pg_table_size", "pg_relation_size", "pg_indexes_size", "pg_total_relation_size":
		if err := sig(1, types.Regclass); err != nil {
			return nil, err
		}
		return catalogFunc(name, types.Int8, args...), nil
	case "pg_database_size":
		if err := sig(1, types.Name); err != nil {
			return nil, err
		}
		return catalogFunc(name, types.Int8, args...), nil
	case "has_database_privilege":
		if len(args) == 3 {
			return nil, posErr(pgerror.Unsupported("has_database_privilege for another role"), loc)
		}
		if err := sig(2, types.Name, text); err != nil {
			return nil, err
		}
		return catalogFunc(name, b4, args[0]), nil
	case "pg_size_pretty":
		if err := sig(1, types.Int8); err != nil {
			return nil, err
		}
		return fn(text, true, func(a []value.Value) (value.Value, error) {
			return value.Text(SizePretty(int64(a[0].(value.Int)))), nil
		}), nil
	case "quote_ident":
		if err := sig(1, text); err != nil {
			return nil, err
		}
		return fn(text, true, func(a []value.Value) (value.Value, error) {
			return value.Text(QuoteIdent(string(a[0].(value.Text)))), nil
		}), nil
	case "obj_description", "col_description", "shobj_description":
		// ShaleDB keeps no comments.
		if name == "col_description" {
			if err := sig(2, oid, types.Int4); err != nil {
				return nil, err
			}
		} else if err := sig(1, oid, types.Name); err != nil {
			return nil, err
		}
		return fn(text, true, func([]value.Value) (value.Value, error) { return value.Null{}, nil }), nil
	}
	return nil, nil
}

// SizePretty formats a byte count as PostgreSQL 15's pg_size_pretty:
// bytes below 10 kB, then kB, MB, GB and TB, rounded half away from zero.
func SizePretty(size int64) string {
	const limit, limit2 = 10 * 1024, 20*1024 - 1
	abs := func(x int64) int64 {
		if x < 0 {
			return -x
		}
		return x
	}
	half := func(x int64) int64 {
		if x < 0 {
			return (x - 1) / 2
		}
		return (x + 1) / 2
	}
	if abs(size) < limit {
		return fmt.Sprintf("%d bytes", size)
	}
	size >>= 9 // one extra bit for rounding
	for _, unit := range []string{"kB", "MB", "GB"} {
		if abs(size) < limit2 {
			return fmt.Sprintf("%d %s", half(size), unit)
		}
		size >>= 10
	}
	return fmt.Sprintf("%d TB", half(size))
}
