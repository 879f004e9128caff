package planner

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// nextval is a column default drawing from the column's sequence, through
// the Env's NextVal.
type nextval struct {
	seq string
	t   types.T
}

func (n *nextval) Type() types.T { return n.t }
func (n *nextval) Eval(env *expr.Env) (value.Value, error) {
	if env.NextVal == nil {
		return nil, pgerror.New(pgerror.CodeInternalError, "no sequence access in this context")
	}
	v, err := env.NextVal(n.seq)
	if err != nil {
		return nil, err
	}
	return types.Coerce(n.t, value.Int(v))
}

// defaultExpr builds a column's default: its sequence, its DEFAULT
// expression, or NULL.
func (b *Builder) defaultExpr(t *catalog.Table, c catalog.Column) (expr.Expr, error) {
	if c.Serial || c.Hidden {
		return &nextval{seq: catalog.SequenceCounter(t, c), t: c.Type}, nil
	}
	if c.Default == "" {
		return &expr.Const{V: value.Null{}, T: c.Type}, nil
	}
	tree, err := pg.Parse("SELECT " + c.Default)
	if err != nil {
		return nil, pgerror.New(pgerror.CodeInternalError, "stored default of column %q does not parse: %v", c.Name, err)
	}
	rt := tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget()
	e, err := b.expr(rt.Val, nil)
	if err != nil {
		return nil, err
	}
	return b.assign(e, c.Type, c.Name)
}

func (b *Builder) returning(list []*pg.Node, sc *scope) ([]expr.Expr, []Column, error) {
	var exprs []expr.Expr
	var cols []Column
	for _, n := range list {
		rt := n.GetResTarget()
		if cr := rt.Val.GetColumnRef(); cr != nil && cr.Fields[len(cr.Fields)-1].GetAStar() != nil {
			for i, c := range sc.cols {
				if !isHidden(sc, i) {
					exprs = append(exprs, &expr.Col{Idx: i, T: c.Type, Name: c.Name})
					cols = append(cols, c)
				}
			}
			continue
		}
		if hasAggregate(rt.Val) {
			return nil, nil, pgerror.New(pgerror.CodeGroupingError, "aggregate functions are not allowed in RETURNING")
		}
		e, err := b.expr(rt.Val, sc)
		if err != nil {
			return nil, nil, err
		}
		if isUnknown(e) {
			if e, err = b.coerce(e, types.Text, "RETURNING"); err != nil {
				return nil, nil, err
			}
		}
		name := rt.Name
		if name == "" {
			name = columnName(rt.Val)
		}
		exprs = append(exprs, e)
		cols = append(cols, Column{Name: name, Type: e.Type()})
	}
	return exprs, cols, nil
}

func isHidden(sc *scope, i int) bool { return sc.hidden != nil && sc.hidden[i] }

func tableScope(t *catalog.Table, name string) *scope {
	sc := &scope{table: name, hidden: map[int]bool{}}
	for i, c := range t.Columns {
		sc.cols = append(sc.cols, Column{Name: c.Name, Type: c.Type})
		if c.Hidden {
			sc.hidden[i] = true
		}
	}
	return sc
}

// writableColumn resolves a column an INSERT, UPDATE or COPY names: it
// must exist and not be hidden.
func writableColumn(t *catalog.Table, name string) (int, error) {
	i := t.ColumnIndex(name)
	if i < 0 || t.Columns[i].Hidden {
		return 0, pgerror.New(pgerror.CodeUndefinedColumn, "column %q of relation %q does not exist", name, t.Name)
	}
	return i, nil
}

// insertTargets resolves the column list of INSERT or COPY FROM, in the
// order given (all visible columns when none are named); locs, when given,
// place errors in the query text.
func insertTargets(t *catalog.Table, names []string, locs []int32) ([]int, error) {
	var targets []int
	if len(names) == 0 {
		for i, c := range t.Columns {
			if !c.Hidden {
				targets = append(targets, i)
			}
		}
		return targets, nil
	}
	loc := func(j int) int32 {
		if j < len(locs) {
			return locs[j]
		}
		return -1
	}
	seen := map[int]bool{}
	for j, name := range names {
		i, err := writableColumn(t, name)
		if err != nil {
			return nil, posErr(err.(*pgerror.Error), loc(j))
		}
		if seen[i] {
			return nil, posErr(pgerror.New(pgerror.CodeDuplicateColumn, "column %q specified more than once", name), loc(j))
		}
		seen[i] = true
		targets = append(targets, i)
	}
	return targets, nil
}

// rowFiller builds a full row of a table from the values provided for some
// columns and the defaults of the others (each default built once).
type rowFiller struct {
	b        *Builder
	t        *catalog.Table
	defaults []expr.Expr
}

func (f *rowFiller) deflt(i int) (expr.Expr, error) {
	if f.defaults[i] == nil {
		d, err := f.b.defaultExpr(f.t, f.t.Columns[i])
		if err != nil {
			return nil, err
		}
		f.defaults[i] = d
	}
	return f.defaults[i], nil
}

func (f *rowFiller) fill(provided map[int]expr.Expr) ([]expr.Expr, error) {
	row := make([]expr.Expr, len(f.t.Columns))
	for i := range f.t.Columns {
		if e, ok := provided[i]; ok {
			row[i] = e
			continue
		}
		d, err := f.deflt(i)
		if err != nil {
			return nil, err
		}
		row[i] = d
	}
	return row, nil
}

// Insert plans an INSERT.
func (b *Builder) Insert(s *pg.InsertStmt) (Plan, error) {
	if s.WithClause != nil {
		return nil, pgerror.Unsupported("WITH")
	}
	t, err := b.writableTableOf(s.Relation)
	if err != nil {
		return nil, err
	}
	ins := &Insert{Table: t}
	if oc := s.OnConflictClause; oc != nil {
		if oc.Action == pg.OnConflictAction_ONCONFLICT_UPDATE {
			name := s.Relation.Relname
			if s.Relation.Alias != nil {
				name = s.Relation.Alias.Aliasname
			}
			if ins.OnConflict, err = b.conflictUpdate(t, name, oc); err != nil {
				return nil, err
			}
		} else {
			ins.OnConflictDoNothing = true
		}
	}
	var names []string
	var locs []int32
	for _, n := range s.Cols {
		rt := n.GetResTarget()
		if len(rt.Indirection) > 0 {
			return nil, posErr(pgerror.Unsupported("INSERT into subfields or array elements"), rt.Location)
		}
		names, locs = append(names, rt.Name), append(locs, rt.Location)
	}
	targets, err := insertTargets(t, names, locs)
	if err != nil {
		return nil, err
	}
	rf := &rowFiller{b: b, t: t, defaults: make([]expr.Expr, len(t.Columns))}
	deflt, fill := rf.deflt, rf.fill
	var sel *pg.SelectStmt
	if s.SelectStmt != nil {
		sel = s.SelectStmt.GetSelectStmt()
	}
	switch {
	case sel == nil: // DEFAULT VALUES
		row, err := fill(nil)
		if err != nil {
			return nil, err
		}
		ins.Source = &Values{Rows: [][]expr.Expr{row}, Cols: tableScope(t, t.Name).cols}
	case len(sel.ValuesLists) > 0 && sel.SortClause == nil && sel.LimitCount == nil:
		v := &Values{Cols: tableScope(t, t.Name).cols}
		for _, l := range sel.ValuesLists {
			items := l.GetList().Items
			if len(items) > len(targets) {
				return nil, pgerror.New(pgerror.CodeSyntaxError, "INSERT has more expressions than target columns")
			}
			if len(items) < len(targets) && len(s.Cols) > 0 {
				return nil, pgerror.New(pgerror.CodeSyntaxError, "INSERT has more target columns than expressions")
			}
			provided := map[int]expr.Expr{}
			for j, it := range items {
				col := t.Columns[targets[j]]
				var e expr.Expr
				if it.GetSetToDefault() != nil {
					if e, err = deflt(targets[j]); err != nil {
						return nil, err
					}
				} else {
					if e, err = b.expr(it, nil); err != nil {
						return nil, err
					}
					if e, err = b.assign(e, col.Type, col.Name); err != nil {
						return nil, err
					}
				}
				provided[targets[j]] = e
			}
			row, err := fill(provided)
			if err != nil {
				return nil, err
			}
			v.Rows = append(v.Rows, row)
		}
		ins.Source = v
	default: // INSERT … SELECT
		src, err := b.Select(sel)
		if err != nil {
			return nil, err
		}
		srcCols := src.Columns()
		if len(srcCols) > len(targets) {
			return nil, pgerror.New(pgerror.CodeSyntaxError, "INSERT has more expressions than target columns")
		}
		provided := map[int]expr.Expr{}
		for j, sc := range srcCols {
			col := t.Columns[targets[j]]
			e, err := b.assign(&expr.Col{Idx: j, T: sc.Type, Name: sc.Name}, col.Type, col.Name)
			if err != nil {
				return nil, err
			}
			provided[targets[j]] = e
		}
		row, err := fill(provided)
		if err != nil {
			return nil, err
		}
		ins.Source = &Project{Input: src, Exprs: row, Cols: tableScope(t, t.Name).cols}
	}
	if len(s.ReturningList) > 0 {
		if ins.Returning, ins.RetCols, err = b.returning(s.ReturningList, tableScope(t, t.Name)); err != nil {
			return nil, err
		}
	}
	return ins, nil
}

// joinedTarget plans UPDATE … FROM and DELETE … USING: the target table
// joined with the other items under WHERE, the target's columns first.
func (b *Builder) joinedTarget(with *pg.WithClause, rv *pg.RangeVar, items []*pg.Node, where *pg.Node) (*catalog.Table, Plan, *scope, error) {
	if with != nil {
		return nil, nil, nil, pgerror.Unsupported("WITH")
	}
	t, err := b.writableTableOf(rv)
	if err != nil {
		return nil, nil, nil, err
	}
	from := append([]*pg.Node{{Node: &pg.Node_RangeVar{RangeVar: rv}}}, items...)
	p, sc, err := b.fromList(from, where)
	return t, p, sc, err
}

// writableTableOf resolves the table a statement writes: not a system
// view.
func (b *Builder) writableTableOf(rv *pg.RangeVar) (*catalog.Table, error) {
	t, err := b.tableOf(rv)
	if err == nil && t.Virtual != nil {
		return nil, posErr(pgerror.New(pgerror.CodeWrongObjectType, "cannot change relation %q", rv.Schemaname+"."+rv.Relname), rv.Location)
	}
	return t, err
}

// dmlTarget resolves an UPDATE's or DELETE's table and plans the scan
// of the rows its WHERE clause selects.
func (b *Builder) dmlTarget(with *pg.WithClause, rv *pg.RangeVar, where *pg.Node) (*catalog.Table, *Scan, *scope, error) {
	if with != nil {
		return nil, nil, nil, pgerror.Unsupported("WITH")
	}
	t, err := b.writableTableOf(rv)
	if err != nil {
		return nil, nil, nil, err
	}
	scan, sc, err := b.dmlScan(t, rv, where)
	return t, scan, sc, err
}

func (b *Builder) dmlScan(t *catalog.Table, rv *pg.RangeVar, where *pg.Node) (*Scan, *scope, error) {
	name := rv.Relname
	if rv.Alias != nil {
		name = rv.Alias.Aliasname
	}
	sc := tableScope(t, name)
	scan := &Scan{Table: t}
	if where != nil {
		cond, err := b.where(where, sc)
		if err != nil {
			return nil, nil, err
		}
		scan.Filter = cond
		b.chooseScan(scan)
	}
	return scan, sc, nil
}

// Update plans an UPDATE.
func (b *Builder) Update(s *pg.UpdateStmt) (Plan, error) {
	var u *Update
	var sc *scope
	if len(s.FromClause) > 0 {
		t, src, jsc, err := b.joinedTarget(s.WithClause, s.Relation, s.FromClause, s.WhereClause)
		if err != nil {
			return nil, err
		}
		u, sc = &Update{Table: t, Source: src}, jsc
	} else {
		t, scan, tsc, err := b.dmlTarget(s.WithClause, s.Relation, s.WhereClause)
		if err != nil {
			return nil, err
		}
		u, sc = &Update{Table: t, Scan: scan}, tsc
	}
	t := u.Table
	var err error
	if u.Targets, u.Sets, err = b.setList(t, s.TargetList, sc, "UPDATE"); err != nil {
		return nil, err
	}
	if len(s.ReturningList) > 0 {
		if u.Returning, u.RetCols, err = b.returning(s.ReturningList, sc); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Delete plans a DELETE.
func (b *Builder) Delete(s *pg.DeleteStmt) (Plan, error) {
	var d *Delete
	var sc *scope
	var err error
	if len(s.UsingClause) > 0 {
		t, src, jsc, err := b.joinedTarget(s.WithClause, s.Relation, s.UsingClause, s.WhereClause)
		if err != nil {
			return nil, err
		}
		d, sc = &Delete{Table: t, Source: src}, jsc
	} else {
		t, scan, tsc, err := b.dmlTarget(s.WithClause, s.Relation, s.WhereClause)
		if err != nil {
			return nil, err
		}
		d, sc = &Delete{Table: t, Scan: scan}, tsc
	}
	if len(s.ReturningList) > 0 {
		if d.Returning, d.RetCols, err = b.returning(s.ReturningList, sc); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// CopyInsert plans COPY FROM: rows of the named columns (all visible
// columns if none) come from next; the other columns take their defaults.
// It returns the plan and the types the data's fields are read as.
func (b *Builder) CopyInsert(t *catalog.Table, columns []string, next func() ([]value.Value, error)) (*Insert, []types.T, error) {
	targets, err := insertTargets(t, columns, nil)
	if err != nil {
		return nil, nil, err
	}
	src := &RowSource{Next: next}
	colTypes := make([]types.T, len(targets))
	provided := map[int]expr.Expr{}
	for j, i := range targets {
		c := t.Columns[i]
		colTypes[j] = c.Type
		src.Cols = append(src.Cols, Column{Name: c.Name, Type: c.Type})
		provided[i] = &expr.Col{Idx: j, T: c.Type, Name: c.Name}
	}
	row, err := (&rowFiller{b: b, t: t, defaults: make([]expr.Expr, len(t.Columns))}).fill(provided)
	if err != nil {
		return nil, nil, err
	}
	return &Insert{Table: t, Source: &Project{Input: src, Exprs: row, Cols: tableScope(t, t.Name).cols}}, colTypes, nil
}

// conflictUpdate plans ON CONFLICT (…) DO UPDATE SET … [WHERE …].
func (b *Builder) conflictUpdate(t *catalog.Table, name string, oc *pg.OnConflictClause) (*ConflictUpdate, error) {
	cu := &ConflictUpdate{}
	inf := oc.Infer
	switch {
	case inf == nil:
		return nil, posErr(pgerror.New(pgerror.CodeSyntaxError, "ON CONFLICT DO UPDATE requires inference specification or constraint name").
			WithHint("For example, ON CONFLICT (column_name)."), oc.Location)
	case inf.Conname != "":
		if inf.Conname == t.Primary.Name {
			cu.Arbiter, cu.Primary = &t.Primary, true
		}
		for i := range t.Indexes {
			if t.Indexes[i].Name == inf.Conname && t.Indexes[i].Unique && !t.Indexes[i].Building {
				cu.Arbiter = &t.Indexes[i]
			}
		}
		if cu.Arbiter == nil {
			return nil, pgerror.New(pgerror.CodeUndefinedObject, "constraint %q for table %q does not exist", inf.Conname, t.Name)
		}
	default:
		if inf.WhereClause != nil {
			return nil, pgerror.Unsupported("ON CONFLICT … WHERE (partial index inference)")
		}
		want := map[encoding.ColumnID]bool{}
		for _, n := range inf.IndexElems {
			ie := n.GetIndexElem()
			if ie == nil || ie.Name == "" {
				return nil, pgerror.Unsupported("ON CONFLICT on an expression")
			}
			i := t.ColumnIndex(ie.Name)
			if i < 0 {
				return nil, pgerror.New(pgerror.CodeUndefinedColumn, "column %q does not exist", ie.Name)
			}
			want[t.Columns[i].ID] = true
		}
		same := func(idx *catalog.Index) bool {
			if len(idx.Columns) != len(want) {
				return false
			}
			for _, c := range idx.Columns {
				if !want[c.Column] {
					return false
				}
			}
			return true
		}
		if same(&t.Primary) && !t.Columns[0].Hidden {
			cu.Arbiter, cu.Primary = &t.Primary, true
		}
		for i := range t.Indexes {
			if cu.Arbiter == nil && t.Indexes[i].Unique && !t.Indexes[i].Building && same(&t.Indexes[i]) {
				cu.Arbiter = &t.Indexes[i]
			}
		}
		if cu.Arbiter == nil {
			return nil, pgerror.New(pgerror.CodeInvalidColumnReference, "there is no unique or exclusion constraint matching the ON CONFLICT specification")
		}
	}
	// The existing row by the table's name, the proposed one as EXCLUDED.
	sc := joinScope(tableScope(t, name), tableScope(t, "excluded"))
	for i := range t.Columns {
		sc.unqualHidden[len(t.Columns)+i] = true
	}
	var err error
	if cu.Targets, cu.Sets, err = b.setList(t, oc.TargetList, sc, "ON CONFLICT DO UPDATE"); err != nil {
		return nil, err
	}
	if oc.WhereClause != nil {
		w, err := b.boolean(oc.WhereClause, sc, "argument of WHERE")
		if err != nil {
			return nil, err
		}
		cu.Where = w
	}
	return cu, nil
}

// setList plans an UPDATE's (or ON CONFLICT DO UPDATE's) SET list over
// scope sc: the column positions set and their new values, DEFAULT
// included.
func (b *Builder) setList(t *catalog.Table, list []*pg.Node, sc *scope, what string) ([]int, []expr.Expr, error) {
	var targets []int
	var sets []expr.Expr
	seen := map[int]bool{}
	for _, n := range list {
		rt := n.GetResTarget()
		if len(rt.Indirection) > 0 {
			return nil, nil, posErr(pgerror.Unsupported(what+" of subfields or array elements"), rt.Location)
		}
		if rt.Val.GetMultiAssignRef() != nil {
			return nil, nil, posErr(pgerror.Unsupported(what+" … SET (a, b) = …"), rt.Location)
		}
		i, err := writableColumn(t, rt.Name)
		if err != nil {
			return nil, nil, posErr(err.(*pgerror.Error), rt.Location)
		}
		if seen[i] {
			return nil, nil, posErr(pgerror.New(pgerror.CodeDuplicateColumn, "multiple assignments to same column %q", rt.Name), rt.Location)
		}
		seen[i] = true
		var e expr.Expr
		if rt.Val.GetSetToDefault() != nil {
			e, err = b.defaultExpr(t, t.Columns[i])
		} else {
			if hasAggregate(rt.Val) {
				return nil, nil, pgerror.New(pgerror.CodeGroupingError, "aggregate functions are not allowed in %s", what)
			}
			if e, err = b.expr(rt.Val, sc); err == nil {
				e, err = b.assign(e, t.Columns[i].Type, t.Columns[i].Name)
			}
		}
		if err != nil {
			return nil, nil, err
		}
		targets = append(targets, i)
		sets = append(sets, e)
	}
	return targets, sets, nil
}
