package planner

import (
	"github.com/shaledb/shaledb/sql/catalog"
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
	// keyed fixes a prefix of idx's columns and maybe a range on the next.
	keyed := func(idx *catalog.Index) (eqs []expr.Expr, lo, hi *Bound) {
		for _, ic := range idx.Columns {
			col := pos(uint32(ic.Column))
			var eq expr.Expr
			var l, h *Bound
			for _, c := range byCol[col] {
				switch c.op {
				case "=":
					eq = c.val
				case ">", ">=":
					l = &Bound{E: c.val, Inclusive: c.op == ">="}
				case "<", "<=":
					h = &Bound{E: c.val, Inclusive: c.op == "<="}
				}
			}
			if eq != nil {
				eqs = append(eqs, eq)
				continue
			}
			return eqs, l, h
		}
		return eqs, nil, nil
	}
	// score ranks a choice: a whole unique key first, then more fixed
	// columns, then a range.
	score := func(idx *catalog.Index, eqs []expr.Expr, lo, hi *Bound) int {
		n := len(eqs) * 4
		if lo != nil || hi != nil {
			n += 2
		}
		if (idx == &s.Table.Primary || idx.Unique) && len(eqs) == len(idx.Columns) {
			n += 1000
		}
		return n
	}
	best := &s.Table.Primary
	eqs, lo, hi := keyed(best)
	top := score(best, eqs, lo, hi)
	for i := range s.Table.Indexes {
		idx := &s.Table.Indexes[i]
		if idx.Building {
			continue // not filled yet: only writes know it
		}
		e, l, h := keyed(idx)
		// A secondary index costs a row read per entry: it must narrow
		// the scan, and beat the primary key strictly.
		if sc := score(idx, e, l, h); sc > top && (len(e) > 0 || l != nil || h != nil) {
			best, eqs, lo, hi, top = idx, e, l, h, sc
		}
	}
	if top == 0 {
		return
	}
	if best != &s.Table.Primary {
		s.Index = best
	}
	s.Eq, s.Lo, s.Hi = eqs, lo, hi
	switch {
	case (best == &s.Table.Primary || best.Unique) && len(eqs) == len(best.Columns):
		s.Kind = PointRead
		// Each equality came from a conjunct of its own: as many
		// conjuncts as equalities leaves no other condition.
		s.KeyOnly = len(conjuncts(s.Filter, nil)) == len(eqs)
	default:
		s.Kind = RangeScan
	}
}
