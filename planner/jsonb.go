package planner

import (
	"bytes"
	"encoding/json"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// jsonb operators: -> (field or element, as jsonb), ->> (as text), @>
// and <@ (containment), with PostgreSQL 15's semantics.
func (b *Builder) jsonbOp(op string, l, r expr.Expr, loc int32) (expr.Expr, error) {
	var err error
	if isUnknown(l) {
		if l, err = b.coerce(l, types.JSONB, "operand"); err != nil {
			return nil, err
		}
	}
	switch op {
	case "->", "->>":
		if isUnknown(r) {
			if r, err = b.coerce(r, types.Text, "operand"); err != nil {
				return nil, err
			}
		}
	default:
		if isUnknown(r) {
			if r, err = b.coerce(r, types.JSONB, "operand"); err != nil {
				return nil, err
			}
		}
	}
	lk, rk := l.Type().Kind, r.Type().Kind
	ok := lk == value.KindJSONB && (op == "@>" || op == "<@") && rk == value.KindJSONB ||
		lk == value.KindJSONB && (op == "->" || op == "->>") && (rk == value.KindText || rk == value.KindInt)
	if !ok {
		return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "operator does not exist: %s %s %s", l.Type(), op, r.Type()).
			WithHint("No operator matches the given name and argument types. You might need to add explicit type casts."), loc)
	}
	t := types.JSONB
	switch op {
	case "->>":
		t = types.Text
	case "@>", "<@":
		t = types.Bool
	}
	return &expr.Func{Name: op, Args: []expr.Expr{l, r}, T: t, Strict: true, Fn: func(_ *expr.Env, a []value.Value) (value.Value, error) {
		doc, err := decodeJSON(a[0].(value.JSONB))
		if err != nil {
			return nil, err
		}
		switch op {
		case "@>", "<@":
			other, err := decodeJSON(a[1].(value.JSONB))
			if err != nil {
				return nil, err
			}
			if op == "<@" {
				doc, other = other, doc
			}
			return value.Bool(jsonContains(doc, other, true)), nil
		}
		var got any
		found := false
		switch k := a[1].(type) {
		case value.Text:
			if obj, ok := doc.(map[string]any); ok {
				got, found = obj[string(k)]
			}
		case value.Int:
			if arr, ok := doc.([]any); ok {
				i := int(k)
				if i < 0 {
					i += len(arr)
				}
				if i >= 0 && i < len(arr) {
					got, found = arr[i], true
				}
			}
		}
		if !found {
			return value.Null{}, nil
		}
		if op == "->>" {
			switch g := got.(type) {
			case nil:
				return value.Null{}, nil
			case string:
				return value.Text(g), nil
			}
			return value.Text(encodeJSON(got)), nil
		}
		return value.JSONB(encodeJSON(got)), nil
	}}, nil
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, pgerror.New(pgerror.CodeInternalError, "corrupt jsonb value: %v", err)
	}
	return v, nil
}

// encodeJSON writes v in jsonb's normalized text form.
func encodeJSON(v any) []byte {
	raw, _ := json.Marshal(v)
	out, err := types.NormalizeJSON(raw)
	if err != nil {
		return raw
	}
	return out
}

// jsonContains is jsonb @>: every part of b is in a. top allows a
// top-level array to contain a scalar, as PostgreSQL does.
func jsonContains(a, b any, top bool) bool {
	switch bv := b.(type) {
	case map[string]any:
		av, ok := a.(map[string]any)
		if !ok {
			return false
		}
		for k, x := range bv {
			y, ok := av[k]
			if !ok || !jsonContains(y, x, false) {
				return false
			}
		}
		return true
	case []any:
		av, ok := a.([]any)
		if !ok {
			return false
		}
		for _, x := range bv {
			found := false
			for _, y := range av {
				// Inside arrays, scalars match scalars and containers
				// containers.
				if jsonContains(y, x, false) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	if av, ok := a.([]any); ok && top {
		for _, y := range av {
			if jsonScalarEqual(y, b) {
				return true
			}
		}
		return false
	}
	return jsonScalarEqual(a, b)
}

func jsonScalarEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		da, _, err1 := apd.NewFromString(string(x))
		db, _, err2 := apd.NewFromString(string(y))
		if err1 != nil || err2 != nil {
			return string(x) == string(y)
		}
		return da.Cmp(db) == 0
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	return false
}
