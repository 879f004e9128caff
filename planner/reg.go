package planner

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// regclass: a relation's oid that reads and prints as its name. A name
// literal is resolved while planning, as PostgreSQL does; a text value at
// run time through Env.Catalog("regclass_in"); printing through
// Env.Catalog("regclass_out"), which knows the tenant's relations.

// regclassCast builds arg::regclass.
func (b *Builder) regclassCast(arg *pg.Node, sc *scope) (expr.Expr, error) {
	e, err := b.expr(arg, sc)
	if err != nil {
		return nil, err
	}
	return b.regclassOf(e)
}

// regclassOf makes e a regclass: a literal name resolved now, an integer
// taken as the oid, text resolved when run.
func (b *Builder) regclassOf(e expr.Expr) (expr.Expr, error) {
	var err error
	if c, ok := e.(*expr.Const); ok && isUnknown(e) {
		if c.V.Kind() == value.KindNull {
			return &expr.Const{V: c.V, T: types.Regclass}, nil
		}
		s := strings.TrimSpace(string(c.V.(value.Text)))
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if n < 0 || n > 1<<32-1 {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "OID out of range")
			}
			return &expr.Const{V: value.Int(n), T: types.Regclass}, nil
		}
		oid, err := b.relationOID(s)
		if err != nil {
			if pe, ok := err.(*pgerror.Error); ok && pe.Code == pgerror.CodeUndefinedTable {
				// Not a table: an index, found (or not) when run.
				return catalogFunc("regclass_in", types.Regclass, &expr.Const{V: value.Text(s), T: types.Text}), nil
			}
			return nil, err
		}
		return &expr.Const{V: value.Int(oid), T: types.Regclass}, nil
	}
	switch {
	case e.Type().Kind == value.KindInt:
		return &expr.Cast{E: e, T: types.Regclass}, nil
	case isUnknown(e) || e.Type().Kind == value.KindText:
		if e, err = b.coerce(e, types.Text, "argument"); err != nil {
			return nil, err
		}
		return catalogFunc("regclass_in", types.Regclass, e), nil
	}
	return nil, pgerror.New(pgerror.CodeCannotCoerce, "cannot cast type %s to regclass", e.Type())
}

// relationOID resolves a relation name as regclass input does: an
// optionally schema-qualified name, folded to lower case unless quoted.
func (b *Builder) relationOID(s string) (int64, error) {
	parts := SplitQualifiedName(s)
	if len(parts) == 2 && (parts[0] == "public" || parts[0] == "pg_catalog") {
		parts = parts[1:]
	}
	if len(parts) != 1 {
		return 0, pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", s)
	}
	t, err := b.Table(parts[0])
	if err != nil {
		return 0, err
	}
	if t.Virtual != nil {
		return 0, pgerror.Unsupported("regclass of a system catalog")
	}
	return t.OID(), nil
}

// SplitQualifiedName splits a possibly quoted, dot-qualified name as
// PostgreSQL's identifier rules read it: unquoted parts fold to lower
// case, "" inside quotes is a quote.
func SplitQualifiedName(s string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' && quoted && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			i++
		case c == '"':
			quoted = !quoted
		case c == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		case !quoted:
			cur.WriteString(strings.ToLower(string(c)))
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

// catalogFunc calls the session's catalog function name (Env.Catalog).
func catalogFunc(name string, t types.T, args ...expr.Expr) expr.Expr {
	return &expr.Func{Name: name, Args: args, T: t, Strict: true, Fn: func(env *expr.Env, a []value.Value) (value.Value, error) {
		if env.Catalog == nil {
			return nil, pgerror.New(pgerror.CodeInternalError, "%s evaluated without a session", name)
		}
		return env.Catalog(name, a)
	}}
}

// regclassToText makes a regclass expression its name, for a cast to a
// text type.
func regclassToText(e expr.Expr, t types.T) expr.Expr {
	return catalogFunc("regclass_out", t, e)
}

// NameRelations wraps a statement's plan so that regclass columns are
// sent as the relations' names (as text; the session knows the names,
// the wire encoder does not).
func NameRelations(p Plan) Plan {
	cols := p.Columns()
	found := false
	for _, c := range cols {
		found = found || c.Type.OID == types.OIDRegclass
	}
	if !found {
		return p
	}
	exprs := make([]expr.Expr, len(cols))
	out := make([]Column, len(cols))
	for i, c := range cols {
		exprs[i], out[i] = &expr.Col{Idx: i, T: c.Type, Name: c.Name}, c
		if c.Type.OID == types.OIDRegclass {
			exprs[i], out[i].Type = regclassToText(exprs[i], types.Text), types.Text
		}
	}
	return &Project{Input: p, Exprs: exprs, Cols: out}
}
