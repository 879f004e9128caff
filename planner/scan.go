package planner

import (
	"github.com/shaledb/shaledb/sql/expr"
)

// conjuncts flattens a tree of ANDs.
func conjuncts(e expr.Expr, out []expr.Expr) []expr.Expr {
	if a, ok := e.(*expr.AndOr); ok && a.And {
		return conjuncts(a.R, conjuncts(a.L, out))
	}
	return append(out, e)
}

// rowIndependent reports whether e reads no column of the scanned row: its
// value is fixed for the scan, so it can bound a key. An enclosing query's
// column is fixed for one run of a correlated subquery, and an
// uncorrelated scalar subquery for the statement.
func rowIndependent(e expr.Expr) bool {
	switch x := e.(type) {
	case *expr.Const, *expr.Param, *expr.OuterCol, *expr.OnOuter:
		return true
	case *expr.Subquery:
		return !x.Correlated && x.Kind == expr.Scalar
	case *expr.Cast:
		return rowIndependent(x.E)
	case *expr.Binary:
		return rowIndependent(x.L) && rowIndependent(x.R)
	case *expr.Neg:
		return rowIndependent(x.E)
	}
	return false
}

// keyColumn returns the column a side of a comparison reads, if it reads
// exactly one column without changing its kind (a widening integer cast is
// fine: all integers share one key encoding).
func keyColumn(e expr.Expr) (int, bool) {
	switch x := e.(type) {
	case *expr.Col:
		return x.Idx, true
	case *expr.Cast:
		if c, ok := x.E.(*expr.Col); ok && c.T.Kind == x.T.Kind && x.T.Width == 0 && x.T.Precision == 0 {
			return c.Idx, true
		}
	}
	return 0, false
}

var flipped = map[string]string{"=": "=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

// chooseScan picks a point read or range scan from the primary key
// conditions in the scan's filter. The filter stays whole: the key only
// narrows what is read.
func (b *Builder) chooseScan(s *Scan) {
	if s.Filter == nil {
		return
	}
	type cond struct {
		op  string
		val expr.Expr
	}
	byCol := map[int][]cond{}
	for _, c := range conjuncts(s.Filter, nil) {
		cmp, ok := c.(*expr.Compare)
		if !ok || flipped[cmp.Op] == "" {
			continue
		}
		if col, ok := keyColumn(cmp.L); ok && rowIndependent(cmp.R) && cmp.R.Type().Kind == s.Table.Columns[col].Type.Kind {
			byCol[col] = append(byCol[col], cond{cmp.Op, cmp.R})
		} else if col, ok := keyColumn(cmp.R); ok && rowIndependent(cmp.L) && cmp.L.Type().Kind == s.Table.Columns[col].Type.Kind {
			byCol[col] = append(byCol[col], cond{flipped[cmp.Op], cmp.L})
		}
	}
	pos := func(id uint32) int {
		for i, c := range s.Table.Columns {
			if uint32(c.ID) == id {
				return i
			}
		}
		return -1
	}
	for _, ic := range s.Table.Primary.Columns {
		col := pos(uint32(ic.Column))
		var eq expr.Expr
		var lo, hi *Bound
		for _, c := range byCol[col] {
			switch c.op {
			case "=":
				eq = c.val
			case ">", ">=":
				lo = &Bound{E: c.val, Inclusive: c.op == ">="}
			case "<", "<=":
				hi = &Bound{E: c.val, Inclusive: c.op == "<="}
			}
		}
		if eq != nil {
			s.Eq = append(s.Eq, eq)
			continue
		}
		if lo != nil || hi != nil {
			s.Lo, s.Hi = lo, hi
			s.Kind = RangeScan
		}
		break
	}
	switch {
	case len(s.Eq) == len(s.Table.Primary.Columns):
		s.Kind = PointRead
	case len(s.Eq) > 0 && s.Kind != RangeScan:
		s.Kind = RangeScan
	}
}
