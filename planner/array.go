package planner

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Arrays: ARRAY[...], ARRAY(subquery), subscripts, op ANY/ALL (array),
// ||, and the array functions. Arrays are one-dimensional with lower
// bound 1; see types/array.go.

var textArray, _ = types.ArrayOf(types.Text)

// arrayType returns the array type of element type e, or 0A000.
func arrayType(e types.T, loc int32) (types.T, error) {
	t, ok := types.ArrayOf(e)
	if !ok {
		if e.IsArray() {
			return types.T{}, posErr(pgerror.Unsupported("multi-dimensional arrays"), loc)
		}
		return types.T{}, posErr(pgerror.Unsupported("arrays of "+e.String()), loc)
	}
	return t, nil
}

// arrayExpr builds ARRAY[e1, e2, ...]. want, when set, is the array type
// a cast around it asks for (ARRAY[]::int[]).
func (b *Builder) arrayExpr(a *pg.A_ArrayExpr, sc *scope, want *types.T) (expr.Expr, error) {
	elems := make([]expr.Expr, len(a.Elements))
	for i, n := range a.Elements {
		if n.GetAArrayExpr() != nil {
			return nil, posErr(pgerror.Unsupported("multi-dimensional arrays"), a.Location)
		}
		e, err := b.expr(n, sc)
		if err != nil {
			return nil, err
		}
		elems[i] = e
	}
	var t types.T
	switch {
	case want != nil:
		t = *want
		for i := range elems {
			c, err := b.coerce(elems[i], t.ElemType(), "ARRAY element")
			if err != nil {
				if !isUnknown(elems[i]) {
					c, err = &expr.Cast{E: elems[i], T: t.ElemType()}, nil
				} else {
					return nil, err
				}
			}
			elems[i] = c
		}
	case len(elems) == 0:
		return nil, posErr(pgerror.New(pgerror.CodeIndeterminateDatatype, "cannot determine type of empty array").
			WithHint("Explicitly cast to the desired type, for example ARRAY[]::integer[]."), a.Location)
	default:
		var elemT types.T
		var err error
		if elems, elemT, err = b.commonType(elems, "ARRAY", a.Location); err != nil {
			return nil, err
		}
		if t, err = arrayType(elemT, a.Location); err != nil {
			return nil, err
		}
	}
	return &expr.Func{Name: "array", Args: elems, T: t, Fn: func(_ *expr.Env, args []value.Value) (value.Value, error) {
		return value.Array{Elems: args}, nil
	}}, nil
}

// indirection builds subscripts: arr[i] (NULL when out of bounds) and
// arr[lo:hi] slices.
func (b *Builder) indirection(ind *pg.A_Indirection, sc *scope) (expr.Expr, error) {
	e, err := b.expr(ind.Arg, sc)
	if err != nil {
		return nil, err
	}
	for _, n := range ind.Indirection {
		idx := n.GetAIndices()
		if idx == nil {
			return nil, pgerror.Unsupported("field selection")
		}
		if !e.Type().IsArray() {
			return nil, pgerror.New(pgerror.CodeDatatypeMismatch, "cannot subscript type %s because it does not support subscripting", e.Type())
		}
		bound := func(n *pg.Node) (expr.Expr, error) {
			if n == nil {
				return nil, nil
			}
			x, err := b.expr(n, sc)
			if err != nil {
				return nil, err
			}
			if isUnknown(x) || x.Type().Kind == value.KindInt {
				return b.coerce(x, types.Int4, "array subscript")
			}
			return nil, pgerror.New(pgerror.CodeDatatypeMismatch, "array subscript must have type integer")
		}
		hi, err := bound(idx.Uidx)
		if err != nil {
			return nil, err
		}
		if !idx.IsSlice {
			arr := e
			e = &expr.Func{Name: "subscript", Args: []expr.Expr{arr, hi}, T: arr.Type().ElemType(), Strict: true,
				Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
					elems, i := a[0].(value.Array).Elems, int64(a[1].(value.Int))
					if i < 1 || i > int64(len(elems)) {
						return value.Null{}, nil
					}
					return elems[i-1], nil
				}}
			continue
		}
		lo, err := bound(idx.Lidx)
		if err != nil {
			return nil, err
		}
		arr := e
		args := []expr.Expr{arr, orConst(lo, 1), orConst(hi, 1<<31-1)}
		e = &expr.Func{Name: "slice", Args: args, T: arr.Type(), Strict: true,
			Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
				elems := a[0].(value.Array).Elems
				l, h := max(int64(a[1].(value.Int)), 1), min(int64(a[2].(value.Int)), int64(len(elems)))
				if l > h {
					return value.Array{Elems: []value.Value{}}, nil
				}
				return value.Array{Elems: elems[l-1 : h]}, nil
			}}
	}
	return e, nil
}

func orConst(e expr.Expr, n int64) expr.Expr {
	if e != nil {
		return e
	}
	return &expr.Const{V: value.Int(n), T: types.Int4}
}

// anyAll builds l op ANY (array) and l op ALL (array) with PostgreSQL's
// NULL semantics: true (ANY) or false (ALL) when some element decides it,
// else NULL if a comparison was NULL, else false (ANY) or true (ALL).
func (b *Builder) anyAll(a *pg.A_Expr, sc *scope, op string) (expr.Expr, error) {
	all := a.Kind == pg.A_Expr_Kind_AEXPR_OP_ALL
	switch op {
	case "=", "<>", "!=", "<", "<=", ">", ">=":
	default:
		return nil, posErr(pgerror.Unsupported("operator "+op+" with ANY/ALL"), a.Location)
	}
	l, err := b.expr(a.Lexpr, sc)
	if err != nil {
		return nil, err
	}
	r, err := b.expr(a.Rexpr, sc)
	if err != nil {
		return nil, err
	}
	if isUnknown(r) {
		elemT := l.Type()
		if isUnknown(l) {
			elemT = types.Text
		}
		at, err := arrayType(elemT, a.Location)
		if err != nil {
			return nil, err
		}
		if r, err = b.coerce(r, at, "operand"); err != nil {
			return nil, posErr(pgerror.Classify(err), a.Location)
		}
	}
	if !r.Type().IsArray() {
		return nil, posErr(pgerror.New(pgerror.CodeWrongObjectType, "op ANY/ALL (array) requires array on right side"), a.Location)
	}
	elemT := r.Type().ElemType()
	l, _, t, err := b.unify(l, &expr.Const{V: value.Null{}, T: elemT}, op, a.Location)
	if err != nil {
		return nil, err
	}
	castElems := t.OID != elemT.OID
	return &expr.Func{Name: "any", Args: []expr.Expr{l, r}, T: types.Bool, Fn: func(_ *expr.Env, args []value.Value) (value.Value, error) {
		arr, ok := args[1].(value.Array)
		if !ok {
			return value.Null{}, nil
		}
		sawNull := false
		for _, e := range arr.Elems {
			if args[0].Kind() == value.KindNull || e.Kind() == value.KindNull {
				sawNull = true
				continue
			}
			if castElems {
				var err error
				if e, err = expr.CastValue(e, elemT, t); err != nil {
					return nil, err
				}
			}
			if match := expr.CompareOp(op, value.Compare(args[0], e)); match != all {
				return value.Bool(match), nil
			}
		}
		if sawNull {
			return value.Null{}, nil
		}
		return value.Bool(all), nil
	}}, nil
}

// arrayConcat builds || with an array on either side: array || array,
// array || element, element || array.
func (b *Builder) arrayConcat(l, r expr.Expr, loc int32) (expr.Expr, error) {
	var err error
	switch {
	case l.Type().IsArray() && isUnknown(r):
		r, err = b.coerce(r, l.Type(), "operand")
	case r.Type().IsArray() && isUnknown(l):
		l, err = b.coerce(l, r.Type(), "operand")
	}
	if err != nil {
		return nil, posErr(pgerror.Classify(err), loc)
	}
	lt, rt := l.Type(), r.Type()
	mismatch := func() error {
		return posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s || %s", lt, rt), loc)
	}
	switch {
	case lt.IsArray() && rt.IsArray():
		if lt.ElemType().Kind != rt.ElemType().Kind {
			return nil, mismatch()
		}
		if rt.Elem != lt.Elem {
			r = &expr.Cast{E: r, T: lt}
		}
		return &expr.Func{Name: "array_cat", Args: []expr.Expr{l, r}, T: lt, Fn: arrayCat}, nil
	case lt.IsArray():
		if r, err = b.coerce(r, lt.ElemType(), "operand"); err != nil {
			return nil, mismatch()
		}
		return &expr.Func{Name: "array_append", Args: []expr.Expr{l, r}, T: lt, Fn: arrayAppend}, nil
	default:
		if l, err = b.coerce(l, rt.ElemType(), "operand"); err != nil {
			return nil, mismatch()
		}
		return &expr.Func{Name: "array_prepend", Args: []expr.Expr{l, r}, T: rt, Fn: arrayPrepend}, nil
	}
}

func arrayElems(v value.Value) []value.Value {
	if a, ok := v.(value.Array); ok {
		return a.Elems
	}
	return nil
}

func arrayCat(_ *expr.Env, a []value.Value) (value.Value, error) {
	if a[0].Kind() == value.KindNull && a[1].Kind() == value.KindNull {
		return value.Null{}, nil
	}
	l, r := arrayElems(a[0]), arrayElems(a[1])
	return value.Array{Elems: append(append(make([]value.Value, 0, len(l)+len(r)), l...), r...)}, nil
}

func arrayAppend(_ *expr.Env, a []value.Value) (value.Value, error) {
	l := arrayElems(a[0])
	return value.Array{Elems: append(append(make([]value.Value, 0, len(l)+1), l...), a[1])}, nil
}

func arrayPrepend(_ *expr.Env, a []value.Value) (value.Value, error) {
	r := arrayElems(a[1])
	return value.Array{Elems: append([]value.Value{a[0]}, r...)}, nil
}

// arrayFunc builds the array functions; nil, nil if name is not one.
func (b *Builder) arrayFunc(name string, args []expr.Expr, loc int32) (expr.Expr, error) {
	notExist := func() error { return noSuchFunction(name, args, loc) }
	// want checks the arguments: 'a' an array, 'i' an integer, 't' text,
	// 'e' the first argument's element type.
	want := func(sig string) error {
		if len(args) != len(sig) {
			return notExist()
		}
		for i, k := range sig {
			var err error
			switch k {
			case 'a':
				if !args[i].Type().IsArray() {
					return notExist()
				}
			case 'i':
				if args[i], err = b.coerce(args[i], types.Int4, "argument"); err != nil {
					return notExist()
				}
			case 't':
				if args[i], err = b.coerce(args[i], types.Text, "argument"); err != nil || args[i].Type().Kind != value.KindText {
					return notExist()
				}
			case 'e':
				if args[i], err = b.coerce(args[i], args[0].Type().ElemType(), "argument"); err != nil {
					return notExist()
				}
			}
		}
		return nil
	}
	fn := func(t types.T, strict bool, f func(a []value.Value) (value.Value, error)) *expr.Func {
		return &expr.Func{Name: name, Args: args, T: t, Strict: strict, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) { return f(a) }}
	}
	// dimLen is a dimension's bound or length: NULL for an empty array or
	// a dimension other than 1.
	dimLen := func(f func(n int) int) func(a []value.Value) (value.Value, error) {
		return func(a []value.Value) (value.Value, error) {
			n := len(a[0].(value.Array).Elems)
			if n == 0 || a[1].(value.Int) != 1 {
				return value.Null{}, nil
			}
			return value.Int(f(n)), nil
		}
	}
	switch name {
	case "array_upper", "array_length":
		if err := want("ai"); err != nil {
			return nil, err
		}
		return fn(types.Int4, true, dimLen(func(n int) int { return n })), nil
	case "array_lower":
		if err := want("ai"); err != nil {
			return nil, err
		}
		return fn(types.Int4, true, dimLen(func(int) int { return 1 })), nil
	case "cardinality":
		if err := want("a"); err != nil {
			return nil, err
		}
		return fn(types.Int4, true, func(a []value.Value) (value.Value, error) {
			return value.Int(len(a[0].(value.Array).Elems)), nil
		}), nil
	case "array_ndims":
		if err := want("a"); err != nil {
			return nil, err
		}
		return fn(types.Int4, true, func(a []value.Value) (value.Value, error) {
			if len(a[0].(value.Array).Elems) == 0 {
				return value.Null{}, nil
			}
			return value.Int(1), nil
		}), nil
	case "array_to_string":
		if len(args) != 2 && len(args) != 3 || !args[0].Type().IsArray() {
			return nil, notExist()
		}
		sig := "at"
		if len(args) == 3 {
			sig = "att"
		}
		if err := want(sig); err != nil {
			return nil, err
		}
		elemT := args[0].Type().ElemType()
		return &expr.Func{Name: name, Args: args, T: types.Text, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			if a[0].Kind() == value.KindNull || a[1].Kind() == value.KindNull {
				return value.Null{}, nil
			}
			var out []byte
			first := true
			for _, e := range a[0].(value.Array).Elems {
				if e.Kind() == value.KindNull {
					if len(a) < 3 || a[2].Kind() == value.KindNull {
						continue
					}
					e = a[2]
				} else {
					e = value.Text(types.AppendText(nil, elemT, e))
				}
				if !first {
					out = append(out, a[1].(value.Text)...)
				}
				out = append(out, e.(value.Text)...)
				first = false
			}
			return value.Text(out), nil
		}}, nil
	case "string_to_array":
		if len(args) != 2 && len(args) != 3 {
			return nil, notExist()
		}
		for i := range args {
			var err error
			if args[i], err = b.coerce(args[i], types.Text, "argument"); err != nil || args[i].Type().Kind != value.KindText {
				return nil, notExist()
			}
		}
		return &expr.Func{Name: name, Args: args, T: textArray, Fn: stringToArray}, nil
	case "array_append":
		if len(args) != 2 || !args[0].Type().IsArray() && !isUnknown(args[0]) {
			return nil, notExist()
		}
		return b.arrayConcat(args[0], args[1], loc)
	case "array_prepend":
		if len(args) != 2 || !args[1].Type().IsArray() && !isUnknown(args[1]) {
			return nil, notExist()
		}
		return b.arrayConcat(args[0], args[1], loc)
	case "array_cat":
		if len(args) != 2 || !args[0].Type().IsArray() || !args[1].Type().IsArray() && !isUnknown(args[1]) {
			return nil, notExist()
		}
		return b.arrayConcat(args[0], args[1], loc)
	case "array_position":
		if len(args) != 2 || !args[0].Type().IsArray() {
			return nil, notExist()
		}
		if err := want("ae"); err != nil {
			return nil, err
		}
		return &expr.Func{Name: name, Args: args, T: types.Int4, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
			if a[0].Kind() == value.KindNull {
				return value.Null{}, nil
			}
			for i, e := range a[0].(value.Array).Elems {
				// IS NOT DISTINCT FROM: NULL finds the first NULL.
				if e.Kind() == a[1].Kind() && value.Compare(e, a[1]) == 0 || e.Kind() == value.KindNull && a[1].Kind() == value.KindNull {
					return value.Int(i + 1), nil
				}
			}
			return value.Null{}, nil
		}}, nil
	}
	return nil, nil
}

// stringToArray splits a text at a delimiter (each character when it is
// NULL, the whole text when it is empty); the optional third argument's
// matches become NULL.
func stringToArray(_ *expr.Env, a []value.Value) (value.Value, error) {
	if a[0].Kind() == value.KindNull {
		return value.Null{}, nil
	}
	s := string(a[0].(value.Text))
	var parts []string
	switch d := a[1]; {
	case s == "":
		parts = nil
	case d.Kind() == value.KindNull:
		for _, r := range s {
			parts = append(parts, string(r))
		}
	case d.(value.Text) == "":
		parts = []string{s}
	default:
		parts = strings.Split(s, string(d.(value.Text)))
	}
	elems := make([]value.Value, len(parts))
	for i, p := range parts {
		elems[i] = value.Text(p)
		if len(a) == 3 && a[2].Kind() != value.KindNull && p == string(a[2].(value.Text)) {
			elems[i] = value.Null{}
		}
	}
	return value.Array{Elems: elems}, nil
}
