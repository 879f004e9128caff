package planner

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
)

// with brings a WITH clause's queries into scope for the statement; the
// returned function restores the outer scope. WITH queries are planned
// where they are used (a WITH query used twice runs twice, which for the
// read-only queries allowed here gives the same rows).
func (b *Builder) with(wc *pg.WithClause) (func(), error) {
	outer := b.ctes
	inner := make(map[string]*pg.CommonTableExpr, len(outer)+len(wc.Ctes))
	for k, v := range outer {
		inner[k] = v
	}
	seen := map[string]bool{}
	for _, n := range wc.Ctes {
		cte := n.GetCommonTableExpr()
		if seen[cte.Ctename] {
			return nil, posErr(pgerror.New(pgerror.CodeDuplicateAlias, "WITH query name %q specified more than once", cte.Ctename), cte.Location)
		}
		seen[cte.Ctename] = true
		if cte.Ctequery.GetSelectStmt() == nil {
			return nil, posErr(pgerror.Unsupported("data-modifying statements in WITH"), cte.Location)
		}
		if wc.Recursive {
			if b.recursive == nil {
				b.recursive = map[*pg.CommonTableExpr]bool{}
			}
			b.recursive[cte] = true
		}
		inner[cte.Ctename] = cte
	}
	b.ctes = inner
	return func() { b.ctes = outer }, nil
}

// subqueryFrom plans a FROM list that is one subquery or one WITH query,
// returning its plan and the name its columns are qualified by; nil when
// the FROM list is something else.
func (b *Builder) subqueryFrom(from []*pg.Node) (Plan, string, error) {
	if len(from) != 1 {
		return nil, "", nil
	}
	var sel *pg.SelectStmt
	var name string
	var colnames []*pg.Node
	var loc int32
	switch x := from[0].Node.(type) {
	case *pg.Node_RangeSubselect:
		rs := x.RangeSubselect
		if rs.Lateral {
			return nil, "", pgerror.Unsupported("LATERAL")
		}
		if rs.Alias == nil {
			return nil, "", pgerror.New(pgerror.CodeSyntaxError, "subquery in FROM must have an alias")
		}
		sel, name, colnames = rs.Subquery.GetSelectStmt(), rs.Alias.Aliasname, rs.Alias.Colnames
	case *pg.Node_RangeVar:
		rv := x.RangeVar
		cte, ok := b.ctes[rv.Relname]
		if !ok || rv.Schemaname != "" {
			return nil, "", nil
		}
		sel, name, colnames, loc = cte.Ctequery.GetSelectStmt(), rv.Relname, cte.Aliascolnames, rv.Location
		if rv.Alias != nil {
			name = rv.Alias.Aliasname
			if len(rv.Alias.Colnames) > 0 {
				colnames = rv.Alias.Colnames
			}
		}
		if wt, ok := b.working[cte]; ok {
			// The recursive term reading its own WITH query: the rows of
			// the previous round.
			var p Plan = wt
			if rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
				p = renameCols(p, rv.Alias.Colnames)
			}
			return p, name, nil
		}
		if b.recursive[cte] && selfReferencing(cte) {
			p, err := b.recursiveCTE(cte)
			if err != nil {
				return nil, "", err
			}
			return p, name, nil
		}
	default:
		return nil, "", nil
	}
	if sel == nil {
		return nil, "", posErr(pgerror.Unsupported("this subquery in FROM"), loc)
	}
	p, err := b.Select(sel)
	if err != nil {
		return nil, "", err
	}
	cols := p.Columns()
	if len(colnames) > len(cols) {
		return nil, "", pgerror.New(pgerror.CodeInvalidColumnReference, "table %q has %d columns available but %d columns specified", name, len(cols), len(colnames))
	}
	if len(colnames) > 0 {
		p = renameCols(p, colnames)
	}
	return p, name, nil
}

// setOp plans UNION, INTERSECT and EXCEPT, with their ORDER BY (by output
// column name or position) and LIMIT.
func (b *Builder) setOp(s *pg.SelectStmt) (Plan, error) {
	op := strings.TrimPrefix(s.Op.String(), "SETOP_")
	l, err := b.Select(s.Larg)
	if err != nil {
		return nil, err
	}
	r, err := b.Select(s.Rarg)
	if err != nil {
		return nil, err
	}
	lc, rc := l.Columns(), r.Columns()
	if len(lc) != len(rc) {
		return nil, pgerror.New(pgerror.CodeSyntaxError, "each %s query must have the same number of columns", op)
	}
	lp, rp := &Project{Input: l}, &Project{Input: r}
	out := &SetOp{Op: op, All: s.All, L: lp, R: rp}
	for i := range lc {
		pair, t, err := b.commonType([]expr.Expr{&expr.Col{Idx: i, T: lc[i].Type}, &expr.Col{Idx: i, T: rc[i].Type}}, op, 0)
		if err != nil {
			return nil, err
		}
		lp.Exprs, rp.Exprs = append(lp.Exprs, pair[0]), append(rp.Exprs, pair[1])
		c := Column{Name: lc[i].Name, Type: t}
		lp.Cols, rp.Cols = append(lp.Cols, c), append(rp.Cols, Column{Name: rc[i].Name, Type: t})
		out.Cols = append(out.Cols, c)
	}
	var plan Plan = out
	var keys []SortKey
	for _, o := range s.SortClause {
		sb := o.GetSortBy()
		idx := -1
		if c := sb.Node.GetAConst(); c != nil && c.GetIval() != nil {
			n := int(c.GetIval().Ival)
			if n < 1 || n > len(out.Cols) {
				return nil, posErr(pgerror.New(pgerror.CodeInvalidColumnReference, "ORDER BY position %d is not in select list", n), c.Location)
			}
			idx = n - 1
		} else if cr := sb.Node.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
			name := strNode(cr.Fields[0])
			for i, c := range out.Cols {
				if c.Name == name {
					idx = i
					break
				}
			}
			if idx < 0 {
				return nil, posErr(pgerror.New(pgerror.CodeUndefinedColumn, "column %q does not exist", name), cr.Location)
			}
		} else {
			return nil, pgerror.Unsupported("ORDER BY on an expression of a " + op + " result")
		}
		keys = append(keys, sortKey(sb, &expr.Col{Idx: idx, T: out.Cols[idx].Type}))
	}
	if len(keys) > 0 {
		plan = &Sort{Input: plan, Keys: keys}
	}
	return b.withLimit(plan, s)
}

// renameCols gives a plan's columns new names, in order.
func renameCols(p Plan, names []*pg.Node) Plan {
	cols := p.Columns()
	pr := &Project{Input: p}
	for i, c := range cols {
		if i < len(names) {
			c.Name = strNode(names[i])
		}
		pr.Exprs = append(pr.Exprs, &expr.Col{Idx: i, T: c.Type, Name: c.Name})
		pr.Cols = append(pr.Cols, c)
	}
	return pr
}

// selfReferencing reports whether a WITH RECURSIVE query reads its own
// name (otherwise it is an ordinary WITH query).
func selfReferencing(cte *pg.CommonTableExpr) bool {
	found := false
	var walk func(n *pg.Node)
	walk = func(n *pg.Node) {
		if n == nil || found {
			return
		}
		if rv := n.GetRangeVar(); rv != nil && rv.Schemaname == "" && rv.Relname == cte.Ctename {
			found = true
			return
		}
		switch x := n.Node.(type) {
		case *pg.Node_SelectStmt:
			if x.SelectStmt == nil {
				return
			}
			walk(&pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: x.SelectStmt.Larg}})
			walk(&pg.Node{Node: &pg.Node_SelectStmt{SelectStmt: x.SelectStmt.Rarg}})
			for _, f := range x.SelectStmt.FromClause {
				walk(f)
			}
			walk(x.SelectStmt.WhereClause)
		case *pg.Node_JoinExpr:
			walk(x.JoinExpr.Larg)
			walk(x.JoinExpr.Rarg)
		case *pg.Node_RangeSubselect:
			walk(x.RangeSubselect.Subquery)
		}
	}
	walk(cte.Ctequery)
	return found
}

// recursiveCTE plans WITH RECURSIVE q AS (init UNION [ALL] step): init's
// rows, then step's over the previous round's rows, until a round adds
// none.
func (b *Builder) recursiveCTE(cte *pg.CommonTableExpr) (Plan, error) {
	sel := cte.Ctequery.GetSelectStmt()
	if sel == nil || sel.Op != pg.SetOperation_SETOP_UNION || sel.Larg == nil || sel.Rarg == nil {
		return nil, pgerror.New(pgerror.CodeInvalidRecursion, "recursive query %q does not have the form non-recursive-term UNION [ALL] recursive-term", cte.Ctename)
	}
	if len(sel.SortClause) > 0 || sel.LimitCount != nil || sel.LimitOffset != nil {
		return nil, pgerror.Unsupported("ORDER BY or LIMIT in a recursive query")
	}
	init, err := b.Select(sel.Larg)
	if err != nil {
		return nil, err
	}
	if len(cte.Aliascolnames) > 0 {
		if len(cte.Aliascolnames) > len(init.Columns()) {
			return nil, pgerror.New(pgerror.CodeInvalidColumnReference, "WITH query %q has %d columns available but %d columns specified", cte.Ctename, len(init.Columns()), len(cte.Aliascolnames))
		}
		init = renameCols(init, cte.Aliascolnames)
	}
	rc := &RecursiveCTE{Name: cte.Ctename, Init: init, All: sel.All, Cols: init.Columns()}
	wt := &WorkTable{CTE: rc}
	if b.working == nil {
		b.working = map[*pg.CommonTableExpr]*WorkTable{}
	}
	b.working[cte] = wt
	step, err := b.Select(sel.Rarg)
	delete(b.working, cte)
	if err != nil {
		return nil, err
	}
	sc := step.Columns()
	if len(sc) != len(rc.Cols) {
		return nil, pgerror.New(pgerror.CodeSyntaxError, "each UNION query must have the same number of columns")
	}
	pr := &Project{Input: step}
	for i, c := range sc {
		e, err := b.coerce(&expr.Col{Idx: i, T: c.Type}, rc.Cols[i].Type, "recursive query")
		if err != nil || e.Type().Kind != rc.Cols[i].Type.Kind {
			return nil, pgerror.New(pgerror.CodeDatatypeMismatch, "recursive query %q column %d has type %s in non-recursive term but type %s overall", cte.Ctename, i+1, rc.Cols[i].Type, c.Type)
		}
		pr.Exprs = append(pr.Exprs, e)
		pr.Cols = append(pr.Cols, rc.Cols[i])
	}
	rc.Step = pr
	return rc, nil
}
