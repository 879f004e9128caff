package planner

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
)

// subLink plans a subquery used as an expression: EXISTS, a scalar
// subquery, IN / NOT IN (ANY with =), and op ANY/ALL. sc is the scope of
// the expression around it, whose columns the subquery may read
// (correlation).
func (b *Builder) subLink(sl *pg.SubLink, sc *scope) (expr.Expr, error) {
	sel := sl.Subselect.GetSelectStmt()
	if sel == nil {
		return nil, posErr(pgerror.Unsupported("this subquery"), sl.Location)
	}
	s := &expr.Subquery{}
	b.outer = append(b.outer, sc)
	b.subq = append(b.subq, s)
	p, err := b.Select(sel)
	b.outer, b.subq = b.outer[:len(b.outer)-1], b.subq[:len(b.subq)-1]
	if err != nil {
		return nil, err
	}
	cols := p.Columns()
	switch sl.SubLinkType {
	case pg.SubLinkType_EXISTS_SUBLINK:
		s.Kind, s.T = expr.Exists, types.Bool
	case pg.SubLinkType_EXPR_SUBLINK:
		if len(cols) != 1 {
			return nil, posErr(pgerror.New(pgerror.CodeSyntaxError, "subquery must return only one column"), sl.Location)
		}
		s.Kind, s.T = expr.Scalar, cols[0].Type
	case pg.SubLinkType_ARRAY_SUBLINK:
		if len(cols) != 1 {
			return nil, posErr(pgerror.New(pgerror.CodeSyntaxError, "subquery must return only one column"), sl.Location)
		}
		t, err := arrayType(cols[0].Type, sl.Location)
		if err != nil {
			return nil, err
		}
		s.Kind, s.T = expr.ArrayOf, t
	case pg.SubLinkType_ANY_SUBLINK, pg.SubLinkType_ALL_SUBLINK:
		s.Kind, s.Op = expr.Any, "="
		if sl.SubLinkType == pg.SubLinkType_ALL_SUBLINK {
			s.Kind = expr.All
		}
		if len(sl.OperName) > 0 {
			s.Op = Names(sl.OperName)[len(sl.OperName)-1]
		}
		switch s.Op {
		case "=", "<>", "!=", "<", "<=", ">", ">=":
		default:
			return nil, posErr(pgerror.Unsupported("operator "+s.Op+" with a subquery"), sl.Location)
		}
		if len(cols) != 1 {
			return nil, posErr(pgerror.New(pgerror.CodeSyntaxError, "subquery has too many columns"), sl.Location)
		}
		lhs, err := b.expr(sl.Testexpr, sc)
		if err != nil {
			return nil, err
		}
		l, r, _, err := b.unify(lhs, &expr.Col{Idx: 0, T: cols[0].Type}, s.Op, sl.Location)
		if err != nil {
			return nil, err
		}
		// The subquery's column takes the comparison's type.
		p = &Project{Input: p, Exprs: []expr.Expr{r}, Cols: []Column{{Name: cols[0].Name, Type: r.Type()}}}
		s.LHS, s.T = l, types.Bool
	default:
		return nil, posErr(pgerror.Unsupported("this kind of subquery"), sl.Location)
	}
	s.Plan = p
	return s, nil
}

// outerColumn resolves a column of an enclosing query for a subquery
// being planned, marking the subqueries in between as correlated.
func (b *Builder) outerColumn(parts []string, loc int32) (expr.Expr, bool, error) {
	for d := 1; d <= len(b.outer); d++ {
		osc := b.outer[len(b.outer)-d]
		if osc == nil {
			continue
		}
		if osc.agg != nil {
			if _, err := osc.agg.input.resolveColumn(parts, loc); err == nil {
				return nil, true, posErr(pgerror.Unsupported("a subquery reading a column of a grouped query"), loc)
			}
			continue
		}
		i, err := osc.resolveColumn(parts, loc)
		if err != nil {
			continue
		}
		for k := len(b.subq) - d; k < len(b.subq); k++ {
			b.subq[k].Correlated = true
		}
		return &expr.OuterCol{Depth: d, Idx: i, T: osc.cols[i].Type}, true, nil
	}
	return nil, false, nil
}

// Inputs returns the plans p reads rows from, subquery plans in its
// expressions included.
func Inputs(p Plan) []Plan {
	var out []Plan
	for _, e := range Expressions(p) {
		expr.Subqueries(e, func(s *expr.Subquery) { out = append(out, s.Plan.(Plan)) })
	}
	switch p := p.(type) {
	case *Filter:
		out = append(out, p.Input)
	case *Project:
		out = append(out, p.Input)
	case *Sort:
		out = append(out, p.Input)
	case *Limit:
		out = append(out, p.Input)
	case *Ordinality:
		out = append(out, p.Input)
	case *Aggregate:
		out = append(out, p.Input)
	case *Distinct:
		out = append(out, p.Input)
	case *Join:
		out = append(out, p.L, p.R)
	case *RecursiveCTE:
		out = append(out, p.Init, p.Step)
	case *SetOp:
		out = append(out, p.L, p.R)
	case *Insert:
		out = append(out, p.Source)
	case *Update:
		out = append(out, p.Rows())
	case *Delete:
		out = append(out, p.Rows())
	}
	return out
}

// Expressions returns the expressions a plan node evaluates.
func Expressions(p Plan) []expr.Expr {
	var es []expr.Expr
	add := func(e ...expr.Expr) {
		for _, x := range e {
			if x != nil {
				es = append(es, x)
			}
		}
	}
	switch p := p.(type) {
	case *Values:
		for _, r := range p.Rows {
			add(r...)
		}
	case *Series:
		add(p.Start, p.Stop, p.Step)
	case *FuncScan:
		add(p.Args...)
	case *Scan:
		add(p.Filter)
		add(p.Eq...)
		if p.Lo != nil {
			add(p.Lo.E)
		}
		if p.Hi != nil {
			add(p.Hi.E)
		}
	case *Filter:
		add(p.Cond)
	case *Join:
		add(p.Cond)
		add(p.LeftKeys...)
		add(p.RightKeys...)
	case *Project:
		add(p.Exprs...)
	case *Sort:
		for _, k := range p.Keys {
			add(k.E)
		}
	case *Limit:
		add(p.Count, p.Offset)
	case *Aggregate:
		add(p.GroupBy...)
		for _, a := range p.Aggs {
			add(a.Arg, a.Arg2, a.Filter)
			for _, o := range a.Order {
				add(o.E)
			}
		}
	case *Insert:
		add(p.Returning...)
		if p.OnConflict != nil {
			add(p.OnConflict.Sets...)
			add(p.OnConflict.Where)
		}
	case *Update:
		add(p.Sets...)
		add(p.Returning...)
	case *Delete:
		add(p.Returning...)
	}
	return es
}
