package planner

import (
	"fmt"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Select plans a SELECT (or a bare VALUES list).
func (b *Builder) Select(s *pg.SelectStmt) (Plan, error) {
	if s.WithClause != nil {
		restore, err := b.with(s.WithClause)
		if err != nil {
			return nil, err
		}
		defer restore()
	}
	if s.Op != pg.SetOperation_SETOP_NONE && s.Op != pg.SetOperation_SET_OPERATION_UNDEFINED {
		return b.setOp(s)
	}
	distinct := len(s.DistinctClause) > 0
	var distinctOn []*pg.Node
	if distinct && (len(s.DistinctClause) > 1 || s.DistinctClause[0] != nil && s.DistinctClause[0].Node != nil) {
		distinctOn = s.DistinctClause
	}
	switch {
	case s.IntoClause != nil:
		return nil, pgerror.Unsupported("SELECT INTO")
	case len(s.WindowClause) > 0:
		return nil, pgerror.Unsupported("WINDOW")
	case len(s.LockingClause) > 0:
		return nil, pgerror.Unsupported("SELECT … FOR UPDATE/SHARE")
	case s.LimitOption == pg.LimitOption_LIMIT_OPTION_WITH_TIES:
		return nil, pgerror.Unsupported("FETCH … WITH TIES")
	}
	if len(s.ValuesLists) > 0 {
		return b.values(s.ValuesLists)
	}
	if r := srfSelect(s); r != nil {
		s = r
	}
	var input Plan
	sc := &scope{}
	var table *catalog.Table
	haveFrom := len(s.FromClause) > 0
	joined := len(s.FromClause) > 1 || len(s.FromClause) == 1 && (s.FromClause[0].GetJoinExpr() != nil || s.FromClause[0].GetRangeFunction() != nil)
	if joined {
		in, jsc, err := b.fromList(s.FromClause, s.WhereClause)
		if err != nil {
			return nil, err
		}
		input, sc = in, jsc
	} else if sub, name, err := b.subqueryFrom(s.FromClause); err != nil {
		return nil, err
	} else if sub != nil {
		// A subquery or WITH query in FROM: its rows are the input.
		sc = &scope{cols: sub.Columns(), table: name}
		input = sub
		if s.WhereClause != nil {
			cond, err := b.where(s.WhereClause, sc)
			if err != nil {
				return nil, err
			}
			input = &Filter{Input: input, Cond: cond}
		}
	} else if len(s.FromClause) == 1 {
		rv := s.FromClause[0].GetRangeVar()
		if rv == nil {
			if s.FromClause[0].GetJoinExpr() != nil {
				return nil, pgerror.Unsupported("joins")
			}
			return nil, pgerror.Unsupported("this FROM item")
		}
		t, err := b.tableOf(rv)
		if err != nil {
			return nil, err
		}
		table = t
		scan := &Scan{Table: t}
		sc = &scope{cols: scan.Columns(), table: rv.Relname}
		if rv.Alias != nil {
			sc.table = rv.Alias.Aliasname
		}
		if s.WhereClause != nil {
			cond, err := b.where(s.WhereClause, sc)
			if err != nil {
				return nil, err
			}
			scan.Filter = cond
			b.chooseScan(scan)
		}
		input = scan
	} else {
		input = &Values{Rows: [][]expr.Expr{{}}}
		if s.WhereClause != nil {
			cond, err := b.boolean(s.WhereClause, sc, "argument of WHERE")
			if err != nil {
				return nil, err
			}
			input = &Filter{Input: input, Cond: cond}
		}
	}

	aggregating := len(s.GroupClause) > 0 || s.HavingClause != nil
	for _, t := range s.TargetList {
		aggregating = aggregating || hasAggregate(t)
	}
	for _, o := range s.SortClause {
		aggregating = aggregating || hasAggregate(o)
	}
	outScope := sc
	var agg *Aggregate
	if aggregating {
		as := &aggScope{input: sc}
		agg = &Aggregate{Input: input}
		for _, g := range s.GroupClause {
			idx, e, node, err := b.groupItem(g, sc, s.TargetList)
			if err != nil {
				return nil, err
			}
			as.groupCol = append(as.groupCol, idx)
			if e != nil {
				as.groupExpr = append(as.groupExpr, nodeKey(node))
				agg.GroupBy = append(agg.GroupBy, e)
				continue
			}
			as.groupExpr = append(as.groupExpr, "")
			c := sc.cols[idx]
			agg.GroupBy = append(agg.GroupBy, &expr.Col{Idx: idx, T: c.Type, Name: c.Name})
		}
		outScope = &scope{table: sc.table, agg: as}
	}

	// Targets.
	var exprs []expr.Expr
	var cols []Column
	for _, tn := range s.TargetList {
		rt := tn.GetResTarget()
		if cr := rt.Val.GetColumnRef(); cr != nil && cr.Fields[len(cr.Fields)-1].GetAStar() != nil {
			if !haveFrom {
				return nil, posErr(pgerror.New(pgerror.CodeSyntaxError, "SELECT * with no tables specified is not valid"), rt.Location)
			}
			if aggregating {
				return nil, posErr(pgerror.New(pgerror.CodeGroupingError, "column %q must appear in the GROUP BY clause or be used in an aggregate function", sc.cols[0].Name), rt.Location)
			}
			if len(cr.Fields) == 2 && sc.colTable != nil {
				// t.*: that table's columns.
				qual := strNode(cr.Fields[0])
				n := 0
				for _, i := range sc.star() {
					if sc.colTable[i] == qual {
						c := sc.cols[i]
						exprs = append(exprs, &expr.Col{Idx: i, T: c.Type, Name: c.Name})
						cols = append(cols, Column{Name: c.Name, Type: c.Type})
						n++
					}
				}
				if n == 0 {
					return nil, posErr(pgerror.New(pgerror.CodeUndefinedTable, "missing FROM-clause entry for table %q", qual), rt.Location)
				}
				continue
			}
			for _, i := range sc.star() {
				if table == nil || !table.Columns[i].Hidden {
					c := sc.cols[i]
					exprs = append(exprs, &expr.Col{Idx: i, T: c.Type, Name: c.Name})
					cols = append(cols, Column{Name: c.Name, Type: c.Type})
				}
			}
			continue
		}
		e, err := b.expr(rt.Val, outScope)
		if err != nil {
			return nil, err
		}
		if isUnknown(e) {
			if e, err = b.coerce(e, types.Text, "target"); err != nil {
				return nil, err
			}
		}
		name := rt.Name
		if name == "" {
			name = columnName(rt.Val)
		}
		exprs = append(exprs, e)
		cols = append(cols, Column{Name: name, Type: e.Type()})
	}
	var having expr.Expr
	if s.HavingClause != nil {
		var err error
		if having, err = b.boolean(s.HavingClause, outScope, "argument of HAVING"); err != nil {
			return nil, err
		}
	}

	// ORDER BY: an output column (by position or name) or an expression
	// over the input, computed as a hidden extra column.
	var keys []SortKey
	visible := len(exprs)
	for _, o := range s.SortClause {
		sb := o.GetSortBy()
		if sb.SortbyDir == pg.SortByDir_SORTBY_USING {
			return nil, posErr(pgerror.Unsupported("ORDER BY … USING"), sb.Location)
		}
		idx := -1
		if c := sb.Node.GetAConst(); c != nil && c.GetIval() != nil {
			n := int(c.GetIval().Ival)
			if n < 1 || n > visible {
				return nil, posErr(pgerror.New(pgerror.CodeInvalidColumnReference, "ORDER BY position %d is not in select list", n), c.Location)
			}
			idx = n - 1
		} else if cr := sb.Node.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
			name := strNode(cr.Fields[0])
			for i := 0; i < visible; i++ {
				if cols[i].Name == name {
					if idx >= 0 && !sameColumn(exprs[i], exprs[idx]) {
						return nil, posErr(pgerror.New(pgerror.CodeAmbiguousColumn, "ORDER BY %q is ambiguous", name), cr.Location)
					}
					idx = i
				}
			}
		}
		if idx < 0 {
			e, err := b.expr(sb.Node, outScope)
			if err != nil {
				return nil, err
			}
			if isUnknown(e) {
				if e, err = b.coerce(e, types.Text, "ORDER BY"); err != nil {
					return nil, err
				}
			}
			if e.Type().Kind == value.KindJSONB {
				return nil, pgerror.Unsupported("ordering by jsonb")
			}
			exprs = append(exprs, e)
			cols = append(cols, Column{Name: "?sort?", Type: e.Type()})
			idx = len(exprs) - 1
		}
		keys = append(keys, sortKey(sb, &expr.Col{Idx: idx, T: cols[idx].Type}))
	}

	var plan Plan = input
	if agg != nil {
		agg.Aggs = outScope.agg.aggs
		for _, g := range agg.GroupBy {
			name := "?column?"
			if c, ok := g.(*expr.Col); ok {
				name = c.Name
			}
			agg.Cols = append(agg.Cols, Column{Name: name, Type: g.Type()})
		}
		for _, a := range agg.Aggs {
			agg.Cols = append(agg.Cols, Column{Name: a.Name, Type: a.T})
		}
		plan = agg
		if having != nil {
			plan = &Filter{Input: plan, Cond: having}
		}
	}
	// DISTINCT ON (…): the first row of each group in ORDER BY's order.
	var onKeys []int
	for _, n := range distinctOn {
		idx := -1
		if c := n.GetAConst(); c != nil && c.GetIval() != nil {
			if k := int(c.GetIval().Ival); k >= 1 && k <= visible {
				idx = k - 1
			} else {
				return nil, posErr(pgerror.New(pgerror.CodeInvalidColumnReference, "SELECT DISTINCT ON position %d is not in select list", k), c.Location)
			}
		} else if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
			for i := 0; i < visible; i++ {
				if cols[i].Name == strNode(cr.Fields[0]) {
					idx = i
					break
				}
			}
		}
		if idx < 0 {
			e, err := b.expr(n, outScope)
			if err != nil {
				return nil, err
			}
			exprs = append(exprs, e)
			cols = append(cols, Column{Name: "?distinct?", Type: e.Type()})
			idx = len(exprs) - 1
		}
		onKeys = append(onKeys, idx)
	}
	if len(onKeys) > 0 && len(keys) > 0 {
		// The leading ORDER BY keys must be the DISTINCT ON expressions.
		lead := map[string]bool{}
		for i := 0; i < len(onKeys) && i < len(keys); i++ {
			lead[nodeKeyOfCol(exprs, keys[i].E)] = true
		}
		for _, k := range onKeys {
			if len(keys) < len(onKeys) || !lead[nodeKeyOfCol(exprs, &expr.Col{Idx: k})] {
				return nil, pgerror.New(pgerror.CodeInvalidColumnReference, "SELECT DISTINCT ON expressions must match initial ORDER BY expressions")
			}
		}
	}
	plan = &Project{Input: plan, Exprs: exprs, Cols: cols}
	if distinct && len(onKeys) == 0 {
		if len(exprs) > visible {
			return nil, pgerror.New(pgerror.CodeInvalidColumnReference, "for SELECT DISTINCT, ORDER BY expressions must appear in select list")
		}
		plan = &Distinct{Input: plan}
	}
	if len(keys) > 0 {
		plan = &Sort{Input: plan, Keys: keys}
	}
	if len(onKeys) > 0 {
		plan = &Distinct{Input: plan, Keys: onKeys}
	}
	plan, err := b.withLimit(plan, s)
	if err != nil {
		return nil, err
	}
	if len(exprs) > visible {
		trim := &Project{Input: plan, Cols: cols[:visible]}
		for i := 0; i < visible; i++ {
			trim.Exprs = append(trim.Exprs, &expr.Col{Idx: i, T: cols[i].Type, Name: cols[i].Name})
		}
		plan = trim
	}
	return plan, nil
}

func sameColumn(a, b expr.Expr) bool {
	ca, ok1 := a.(*expr.Col)
	cb, ok2 := b.(*expr.Col)
	return ok1 && ok2 && ca.Idx == cb.Idx
}

func (b *Builder) limitExpr(n *pg.Node, what string) (expr.Expr, error) {
	if c := n.GetAConst(); c != nil && c.Isnull {
		return nil, nil // LIMIT NULL / LIMIT ALL
	}
	e, err := b.expr(n, nil)
	if err != nil {
		return nil, err
	}
	if e.Type().Kind != value.KindInt || e.Type().OID == types.OIDUnknown {
		if e, err = b.coerce(e, types.Int8, "argument of "+what); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// groupColumn resolves one GROUP BY item to an input column: a column
// name, or a position in the select list naming one.
// groupItem resolves one GROUP BY item: an input column (its index), or,
// for an expression, -1 and the expression over the input. A position or
// an output column's name stands for that select-list expression.
func (b *Builder) groupItem(g *pg.Node, sc *scope, targets []*pg.Node) (int, expr.Expr, *pg.Node, error) {
	if c := g.GetAConst(); c != nil && c.GetIval() != nil {
		n := int(c.GetIval().Ival)
		if n < 1 || n > len(targets) {
			return 0, nil, nil, posErr(pgerror.New(pgerror.CodeInvalidColumnReference, "GROUP BY position %d is not in select list", n), c.Location)
		}
		g = targets[n-1].GetResTarget().Val
	}
	if cr := g.GetColumnRef(); cr != nil {
		i, err := sc.resolveColumn(Names(cr.Fields), cr.Location)
		if err == nil {
			return i, nil, g, nil
		}
		// Not an input column: an output column's name.
		if len(cr.Fields) == 1 {
			name := strNode(cr.Fields[0])
			for _, t := range targets {
				if rt := t.GetResTarget(); rt.Name == name {
					return b.groupItem(rt.Val, sc, nil)
				}
			}
		}
		return 0, nil, nil, err
	}
	if hasAggregate(g) {
		return 0, nil, nil, pgerror.New(pgerror.CodeGroupingError, "aggregate functions are not allowed in GROUP BY")
	}
	e, err := b.expr(g, sc)
	if err != nil {
		return 0, nil, nil, err
	}
	return -1, e, g, nil
}

func (b *Builder) values(lists []*pg.Node) (Plan, error) {
	v := &Values{}
	var width int
	for i, l := range lists {
		items := l.GetList().Items
		if i == 0 {
			width = len(items)
		} else if len(items) != width {
			return nil, pgerror.New(pgerror.CodeSyntaxError, "VALUES lists must all be the same length")
		}
		row := make([]expr.Expr, len(items))
		for j, it := range items {
			if it.GetSetToDefault() != nil {
				return nil, pgerror.New(pgerror.CodeSyntaxError, "DEFAULT is not allowed in this context")
			}
			e, err := b.expr(it, nil)
			if err != nil {
				return nil, err
			}
			row[j] = e
		}
		v.Rows = append(v.Rows, row)
	}
	// Each column takes the common type of its values.
	for j := 0; j < width; j++ {
		col := make([]expr.Expr, len(v.Rows))
		for i := range v.Rows {
			col[i] = v.Rows[i][j]
		}
		col, t, err := b.commonType(col, "VALUES", -1)
		if err != nil {
			return nil, err
		}
		for i := range v.Rows {
			v.Rows[i][j] = col[i]
		}
		v.Cols = append(v.Cols, Column{Name: "column" + strconv.Itoa(j+1), Type: t})
	}
	return v, nil
}

// columnName is the name PostgreSQL gives an unnamed select-list entry.
func columnName(n *pg.Node) string {
	name, _ := figureColumnName(n)
	return name
}

// figureColumnName names a select-list expression as PostgreSQL's
// FigureColname does; strength 1 (a cast's type name) gives way to an
// outer cast's.
func figureColumnName(n *pg.Node) (string, int) {
	switch x := n.Node.(type) {
	case *pg.Node_TypeCast:
		if inner, strength := figureColumnName(x.TypeCast.Arg); strength > 1 {
			return inner, strength
		}
		ns := Names(x.TypeCast.TypeName.Names)
		name := ns[len(ns)-1]
		if alias, ok := castNames[name]; ok {
			return alias, 1
		}
		return name, 1
	case *pg.Node_AArrayExpr:
		return "array", 2
	case *pg.Node_CaseExpr:
		if d := x.CaseExpr.Defresult; d != nil {
			if name, strength := figureColumnName(d); strength > 1 {
				return name, strength
			}
		}
		return "case", 1
	case *pg.Node_AIndirection:
		return figureColumnName(x.AIndirection.Arg)
	case *pg.Node_SubLink:
		if x.SubLink.SubLinkType == pg.SubLinkType_ARRAY_SUBLINK {
			return "array", 2
		}
	}
	if name := columnNameOf(n); name != "?column?" {
		return name, 2
	}
	return "?column?", 0
}

func columnNameOf(n *pg.Node) string {
	switch x := n.Node.(type) {
	case *pg.Node_ColumnRef:
		return strNode(x.ColumnRef.Fields[len(x.ColumnRef.Fields)-1])
	case *pg.Node_FuncCall:
		return funcName(x.FuncCall)
	case *pg.Node_CaseExpr:
		return "case"
	case *pg.Node_CoalesceExpr:
		return "coalesce"
	case *pg.Node_SubLink:
		switch x.SubLink.SubLinkType {
		case pg.SubLinkType_EXISTS_SUBLINK:
			return "exists"
		case pg.SubLinkType_EXPR_SUBLINK:
			// A scalar subquery is named after its one column.
			if sel := x.SubLink.Subselect.GetSelectStmt(); sel != nil && len(sel.TargetList) > 0 {
				if rt := sel.TargetList[0].GetResTarget(); rt.Name != "" {
					return rt.Name
				} else {
					return columnName(rt.Val)
				}
			}
		}
	case *pg.Node_MinMaxExpr:
		if x.MinMaxExpr.Op == pg.MinMaxOp_IS_LEAST {
			return "least"
		}
		return "greatest"
	case *pg.Node_SqlvalueFunction:
		return strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(x.SqlvalueFunction.Op.String(), "SVFOP_"), "_N"))
	case *pg.Node_AExpr:
		if x.AExpr.Kind == pg.A_Expr_Kind_AEXPR_NULLIF {
			return "nullif"
		}
	}
	return "?column?"
}

// castNames maps the type names of `x::type` to the column name
// PostgreSQL reports.
var castNames = map[string]string{
	"int": "int4", "integer": "int4", "smallint": "int2", "bigint": "int8",
	"real": "float4", "float": "float8", "double precision": "float8",
	"boolean": "bool", "varchar": "varchar", "decimal": "numeric",
	"timestamptz": "timestamptz", "char": "bpchar", "interval": "interval",
}

// tableOf resolves a RangeVar to a table.
func (b *Builder) tableOf(rv *pg.RangeVar) (*catalog.Table, error) {
	if rv.Schemaname == "shaledb" || rv.Schemaname == "pg_catalog" || rv.Schemaname == "information_schema" {
		t, err := b.Table(rv.Schemaname + "." + rv.Relname)
		if err != nil {
			if pe, ok := err.(*pgerror.Error); ok {
				return nil, posErr(pe, rv.Location)
			}
		}
		return t, err
	}
	if rv.Schemaname != "" && rv.Schemaname != "public" {
		if rv.Schemaname == "pg_catalog" || rv.Schemaname == "information_schema" {
			return nil, posErr(pgerror.Unsupported("the system catalog "+rv.Schemaname+"."+rv.Relname), rv.Location)
		}
		return nil, posErr(pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", rv.Schemaname+"."+rv.Relname), rv.Location)
	}
	t, err := b.Table(rv.Relname)
	if err != nil {
		if pe, ok := err.(*pgerror.Error); ok {
			return nil, posErr(pe, rv.Location)
		}
		return nil, err
	}
	return t, nil
}

// nodeKeyOfCol identifies the output expression a sort or DISTINCT ON key
// column stands for, so that the same expression at two positions
// matches.
func nodeKeyOfCol(exprs []expr.Expr, e expr.Expr) string {
	c, ok := e.(*expr.Col)
	if !ok || c.Idx >= len(exprs) {
		return fmt.Sprintf("%p", e)
	}
	if inner, ok := exprs[c.Idx].(*expr.Col); ok {
		return fmt.Sprintf("col%d", inner.Idx)
	}
	return fmt.Sprintf("expr%d", c.Idx)
}

// sortKey is ORDER BY's key on e, with PostgreSQL's NULL placement
// (NULLS LAST ascending, FIRST descending, unless told).
func sortKey(sb *pg.SortBy, e expr.Expr) SortKey {
	desc := sb.SortbyDir == pg.SortByDir_SORTBY_DESC
	nullsFirst := desc
	switch sb.SortbyNulls {
	case pg.SortByNulls_SORTBY_NULLS_FIRST:
		nullsFirst = true
	case pg.SortByNulls_SORTBY_NULLS_LAST:
		nullsFirst = false
	}
	return SortKey{E: e, Desc: desc, NullsFirst: nullsFirst}
}

// withLimit adds a statement's LIMIT and OFFSET on top of plan.
func (b *Builder) withLimit(plan Plan, s *pg.SelectStmt) (Plan, error) {
	if s.LimitCount == nil && s.LimitOffset == nil {
		return plan, nil
	}
	l := &Limit{Input: plan}
	var err error
	if s.LimitCount != nil {
		if l.Count, err = b.limitExpr(s.LimitCount, "LIMIT"); err != nil {
			return nil, err
		}
	}
	if s.LimitOffset != nil {
		if l.Offset, err = b.limitExpr(s.LimitOffset, "OFFSET"); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// where plans a WHERE clause over sc: boolean, and without aggregates.
func (b *Builder) where(n *pg.Node, sc *scope) (expr.Expr, error) {
	if hasAggregate(n) {
		return nil, pgerror.New(pgerror.CodeGroupingError, "aggregate functions are not allowed in WHERE")
	}
	return b.boolean(n, sc, "argument of WHERE")
}
