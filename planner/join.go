package planner

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
)

// JoinKind is a join's type.
type JoinKind int

// The join kinds.
const (
	InnerJoin JoinKind = iota
	LeftJoin
	RightJoin
	FullJoin
)

func (k JoinKind) String() string { return [...]string{"Inner", "Left", "Right", "Full"}[k] }

// Join combines its inputs' rows: each output row is a left row followed
// by a right row (NULLs for the missing side of an outer join).
//
// A lookup join (Lookup set) runs Right once per left row, with the left
// row as the innermost outer row (expr.OnOuter reads it): Right is a scan
// of a table whose primary key the join condition fixes, so each run is a
// point or range read — an index nested-loop join. Otherwise it is a hash
// join: Right's rows are hashed by RightKeys and each left row probes with
// LeftKeys (no keys: every pair is compared, a nested loop). Cond, over
// the combined row, decides the match in both cases.
type Join struct {
	Kind      JoinKind
	L, R      Plan
	Lookup    bool
	LeftKeys  []expr.Expr // over the combined row (left part)
	RightKeys []expr.Expr // over the combined row (right part)
	Cond      expr.Expr   // nil: true
	Cols      []Column
	// base is the right input as planned before a strategy was chosen
	// (R may be a keyed copy of it, for a lookup join).
	base Plan
}

func (j *Join) Columns() []Column { return j.Cols }

// fromItem is one planned FROM item: its plan and its scope.
type fromItem struct {
	plan  Plan
	sc    *scope
	scan  *Scan // set when the item is a plain table scan
	outer bool  // the item contains an outer join
}

// joinScope builds the scope of a join's combined row.
func joinScope(l, r *scope) *scope {
	sc := &scope{hidden: map[int]bool{}, unqualHidden: map[int]bool{}}
	add := func(s *scope) {
		base := len(sc.cols)
		for i, c := range s.cols {
			sc.cols = append(sc.cols, c)
			q := s.table
			if s.colTable != nil {
				q = s.colTable[i]
			}
			sc.colTable = append(sc.colTable, q)
			if s.hidden[i] {
				sc.hidden[base+i] = true
			}
			if s.unqualHidden[i] {
				sc.unqualHidden[base+i] = true
			}
		}
		sc.starOrder = append(sc.starOrder, shifted(s.star(), base)...)
	}
	add(l)
	add(r)
	return sc
}

func shifted(idx []int, by int) []int {
	out := make([]int, len(idx))
	for i, x := range idx {
		out[i] = x + by
	}
	return out
}

// star is the column order SELECT * expands to.
func (sc *scope) star() []int {
	if sc.starOrder != nil {
		return sc.starOrder
	}
	var out []int
	for i := range sc.cols {
		if !sc.hidden[i] {
			out = append(out, i)
		}
	}
	return out
}

// fromList plans a FROM list of several items or joins, with the WHERE
// clause: its conjuncts are pushed into the scans they concern and used as
// join conditions, except into outer joins, where WHERE filters their
// joined rows.
func (b *Builder) fromList(from []*pg.Node, where *pg.Node) (Plan, *scope, error) {
	var acc *fromItem
	for _, n := range from {
		it, err := b.fromItem(n)
		if err != nil {
			return nil, nil, err
		}
		if acc == nil {
			acc = it
			continue
		}
		if acc, err = b.join(InnerJoin, acc, it, nil, nil); err != nil {
			return nil, nil, err
		}
	}
	if where == nil {
		return acc.plan, acc.sc, nil
	}
	cond, err := b.where(where, acc.sc)
	if err != nil {
		return nil, nil, err
	}
	// The FROM items are joined by a left-deep chain of inner joins, even
	// when an item is an outer join: a conjunct is pushed down that chain
	// (placeConjunct never enters an outer join), so WHERE's equalities
	// between items become hash keys.
	if j, ok := acc.plan.(*Join); ok && (len(from) > 1 || !acc.outer) {
		return b.pushDown(j, cond), acc.sc, nil
	}
	return &Filter{Input: acc.plan, Cond: cond}, acc.sc, nil
}

// pushDown distributes the conjuncts of cond over a tree of inner joins:
// each goes to the lowest join (or table scan) whose columns it reads,
// where it can choose the scan or become a hash key. What reads nothing
// of either side stays on the top join.
func (b *Builder) pushDown(j *Join, cond expr.Expr) Plan {
	var rest []expr.Expr
	for _, c := range conjuncts(cond, nil) {
		if !b.placeConjunct(j, c) {
			rest = append(rest, c)
		}
	}
	if len(rest) > 0 {
		j.Cond = andAll(append([]expr.Expr{j.Cond}, rest...))
	}
	b.rechoose(j)
	return j
}

// placeConjunct adds c to the deepest join or scan of the left-deep tree j
// that holds every column c reads. It reports false when c reads no
// column (it stays where it is).
func (b *Builder) placeConjunct(j *Join, c expr.Expr) bool {
	lo, hi, ok := colRange(c)
	if !ok || hasSubquery(c) {
		return false
	}
	nl := len(j.L.Columns())
	if hi < nl {
		if lj, isJoin := j.L.(*Join); isJoin && lj.Kind == InnerJoin {
			if b.placeConjunct(lj, c) {
				return true
			}
		}
		if s, isScan := j.L.(*Scan); isScan {
			s.Filter = andAll([]expr.Expr{s.Filter, c})
			return true
		}
	}
	if lo >= nl {
		if s, isScan := j.base.(*Scan); isScan {
			s.Filter = andAll([]expr.Expr{s.Filter, shiftCols(c, -nl)})
			return true
		}
	}
	j.Cond = andAll([]expr.Expr{j.Cond, c})
	return true
}

// rechoose picks, bottom up, the scans and join strategies again after
// conditions moved.
func (b *Builder) rechoose(p Plan) {
	switch x := p.(type) {
	case *Scan:
		x.Kind, x.Index, x.Eq, x.Lo, x.Hi = FullScan, nil, nil, nil, nil
		if x.Filter != nil {
			b.chooseScan(x)
		}
	case *Join:
		b.rechoose(x.L)
		b.rechoose(x.base)
		b.strategy(x)
	}
}

func andAll(es []expr.Expr) expr.Expr {
	var out expr.Expr
	for _, e := range es {
		if e == nil {
			continue
		}
		if out == nil {
			out = e
		} else {
			out = &expr.AndOr{And: true, L: out, R: e}
		}
	}
	return out
}

// fromItem plans one FROM list item: a table, a WITH query, a subquery,
// generate_series or a join.
func (b *Builder) fromItem(n *pg.Node) (*fromItem, error) {
	switch x := n.Node.(type) {
	case *pg.Node_JoinExpr:
		return b.joinExpr(x.JoinExpr)
	case *pg.Node_RangeFunction:
		return b.rangeFunction(x.RangeFunction)
	case *pg.Node_RangeVar:
		if _, isCTE := b.ctes[x.RangeVar.Relname]; !isCTE || x.RangeVar.Schemaname != "" {
			t, err := b.tableOf(x.RangeVar)
			if err != nil {
				return nil, err
			}
			name := x.RangeVar.Relname
			if x.RangeVar.Alias != nil {
				name = x.RangeVar.Alias.Aliasname
			}
			scan := &Scan{Table: t}
			return &fromItem{plan: scan, sc: tableScope(t, name), scan: scan}, nil
		}
	}
	sub, name, err := b.subqueryFrom([]*pg.Node{n})
	if err != nil {
		return nil, err
	}
	if sub == nil {
		return nil, pgerror.Unsupported("this FROM item")
	}
	return &fromItem{plan: sub, sc: &scope{cols: sub.Columns(), table: name}}, nil
}

// joinExpr plans an explicit JOIN.
func (b *Builder) joinExpr(je *pg.JoinExpr) (*fromItem, error) {
	if je.Alias != nil {
		return nil, pgerror.Unsupported("an alias on a JOIN")
	}
	l, err := b.fromItem(je.Larg)
	if err != nil {
		return nil, err
	}
	r, err := b.fromItem(je.Rarg)
	if err != nil {
		return nil, err
	}
	kind := InnerJoin
	switch je.Jointype {
	case pg.JoinType_JOIN_LEFT:
		kind = LeftJoin
	case pg.JoinType_JOIN_RIGHT:
		kind = RightJoin
	case pg.JoinType_JOIN_FULL:
		kind = FullJoin
	case pg.JoinType_JOIN_INNER:
	default:
		return nil, pgerror.Unsupported("join type " + je.Jointype.String())
	}
	using := je.UsingClause
	if je.IsNatural {
		// NATURAL: USING every column name both sides have.
		using = nil
		for _, i := range l.sc.star() {
			name := l.sc.cols[i].Name
			if _, err := r.sc.resolveColumn([]string{name}, -1); err == nil {
				using = append(using, pg.MakeStrNode(name))
			}
		}
	}
	return b.join(kind, l, r, je.Quals, using)
}

// join plans l JOIN r ON quals (or USING using; cross is a CROSS JOIN or
// a comma).
func (b *Builder) join(kind JoinKind, l, r *fromItem, quals *pg.Node, using []*pg.Node) (*fromItem, error) {
	sc := joinScope(l.sc, r.sc)
	nl := len(l.sc.cols)
	j := &Join{Kind: kind, L: l.plan, R: r.plan, base: r.plan}
	var conds []expr.Expr
	if quals != nil {
		if hasAggregate(quals) {
			return nil, pgerror.New(pgerror.CodeGroupingError, "aggregate functions are not allowed in JOIN conditions")
		}
		c, err := b.boolean(quals, sc, "argument of JOIN/ON")
		if err != nil {
			return nil, err
		}
		conds = conjuncts(c, nil)
	}
	var merged []int // scope index of each USING column's merged value
	for _, u := range using {
		name := strNode(u)
		li, err := l.sc.resolveColumn([]string{name}, -1)
		if err != nil {
			return nil, pgerror.New(pgerror.CodeUndefinedColumn, "column %q specified in USING clause does not exist in left table", name)
		}
		ri, err := r.sc.resolveColumn([]string{name}, -1)
		if err != nil {
			return nil, pgerror.New(pgerror.CodeUndefinedColumn, "column %q specified in USING clause does not exist in right table", name)
		}
		le := &expr.Col{Idx: li, T: sc.cols[li].Type, Name: name}
		re := &expr.Col{Idx: nl + ri, T: sc.cols[nl+ri].Type, Name: name}
		lc, rc, _, err := b.unify(le, re, "=", -1)
		if err != nil {
			return nil, err
		}
		conds = append(conds, &expr.Compare{Op: "=", L: lc, R: rc})
		merged = append(merged, li, nl+ri)
	}
	j.Cond = andAll(conds)
	j.Cols = append(j.Cols, sc.cols...)
	b.strategy(j)
	item := &fromItem{plan: j, sc: sc, outer: kind != InnerJoin || l.outer || r.outer}
	if len(merged) > 0 {
		item = mergeUsing(item, kind, merged, using)
	}
	return item, nil
}

// mergeUsing adds the merged USING columns to a join's output: the left
// value (the right one for RIGHT JOIN, the first non-NULL for FULL JOIN).
// SELECT * shows them first, then the other columns; an unqualified name
// reads the merged column.
func mergeUsing(it *fromItem, kind JoinKind, pairs []int, using []*pg.Node) *fromItem {
	sc := it.sc
	n := len(sc.cols)
	p := &Project{Input: it.plan}
	for i, c := range sc.cols {
		p.Exprs = append(p.Exprs, &expr.Col{Idx: i, T: c.Type, Name: c.Name})
		p.Cols = append(p.Cols, c)
	}
	ns := &scope{cols: append([]Column(nil), sc.cols...), colTable: append([]string(nil), sc.colTable...),
		hidden: map[int]bool{}, unqualHidden: map[int]bool{}}
	for k, v := range sc.hidden {
		ns.hidden[k] = v
	}
	var star []int
	inUsing := map[int]bool{}
	for u := range using {
		li, ri := pairs[2*u], pairs[2*u+1]
		l := &expr.Col{Idx: li, T: sc.cols[li].Type, Name: sc.cols[li].Name}
		r := &expr.Col{Idx: ri, T: sc.cols[ri].Type, Name: sc.cols[ri].Name}
		var e expr.Expr = l
		switch kind {
		case RightJoin:
			e = r
		case FullJoin:
			e = &expr.Coalesce{Args: []expr.Expr{l, r}, T: l.T}
		}
		col := Column{Name: sc.cols[li].Name, Type: e.Type()}
		p.Exprs = append(p.Exprs, e)
		p.Cols = append(p.Cols, col)
		ns.cols = append(ns.cols, col)
		ns.colTable = append(ns.colTable, "")
		ns.unqualHidden[li], ns.unqualHidden[ri] = true, true
		inUsing[li], inUsing[ri] = true, true
		star = append(star, n+u)
	}
	for _, i := range sc.star() {
		if !inUsing[i] {
			star = append(star, i)
		}
	}
	ns.starOrder = star
	return &fromItem{plan: p, sc: ns, outer: it.outer}
}

// strategy picks how j runs: a lookup join when the right side is a table
// scan whose primary key the condition fixes from the left row, else a
// hash join on the condition's equalities between the sides.
func (b *Builder) strategy(j *Join) {
	nl := len(j.L.Columns())
	j.R, j.LeftKeys, j.RightKeys, j.Lookup = j.base, nil, nil, false
	var eqs []*expr.Compare
	for _, c := range conjuncts(j.Cond, nil) {
		cmp, ok := c.(*expr.Compare)
		if !ok || cmp.Op != "=" || hasSubquery(cmp) {
			continue
		}
		llo, lhi, lok := colRange(cmp.L)
		rlo, rhi, rok := colRange(cmp.R)
		switch {
		case lok && rok && lhi < nl && rlo >= nl:
			eqs = append(eqs, cmp)
		case lok && rok && rhi < nl && llo >= nl:
			eqs = append(eqs, &expr.Compare{Op: "=", L: cmp.R, R: cmp.L})
		}
	}
	if s, ok := j.R.(*Scan); ok && len(eqs) > 0 && (j.Kind == InnerJoin || j.Kind == LeftJoin) && s.Table.Virtual == nil {
		// Try the right table's primary key with the left side's values.
		probe := &Scan{Table: s.Table, Filter: s.Filter}
		var keyConds []expr.Expr
		for _, e := range eqs {
			if col, ok := e.R.(*expr.Col); ok {
				keyConds = append(keyConds, &expr.Compare{Op: "=", L: &expr.Col{Idx: col.Idx - nl, T: col.T, Name: col.Name}, R: &expr.OnOuter{E: e.L}})
			}
		}
		probe.Filter = andAll(append([]expr.Expr{probe.Filter}, keyConds...))
		if probe.Filter != nil {
			b.chooseScan(probe)
		}
		if probe.Kind != FullScan {
			j.R, j.Lookup = probe, true
			return
		}
	}
	for _, e := range eqs {
		j.LeftKeys = append(j.LeftKeys, e.L)
		j.RightKeys = append(j.RightKeys, e.R)
	}
}

// colRange returns the lowest and highest column index e reads; ok is
// false when it reads none (or reads through a subquery or an outer row).
func colRange(e expr.Expr) (lo, hi int, ok bool) {
	lo, hi = 1<<30, -1
	var walk func(e expr.Expr)
	walk = func(e expr.Expr) {
		if c, isCol := e.(*expr.Col); isCol {
			lo, hi = min(lo, c.Idx), max(hi, c.Idx)
		}
		for _, ch := range expr.Children(e) {
			walk(ch)
		}
	}
	walk(e)
	return lo, hi, hi >= 0
}

func hasSubquery(e expr.Expr) bool {
	found := false
	expr.Subqueries(e, func(*expr.Subquery) { found = true })
	return found
}

// shiftCols returns e with every column index moved by d (e is rebuilt
// only where columns occur).
func shiftCols(e expr.Expr, d int) expr.Expr {
	return expr.MapCols(e, func(c *expr.Col) expr.Expr {
		return &expr.Col{Idx: c.Idx + d, T: c.T, Name: c.Name}
	})
}
