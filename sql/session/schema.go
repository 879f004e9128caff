package session

import (
	"context"
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/executor"
	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Schema changes beyond CREATE/DROP TABLE: ALTER TABLE's column and
// constraint commands, RENAME, CREATE/DROP INDEX. Each runs in the
// statement's transaction: other sessions see the old schema until it
// commits and the new one after, never a mix. An index on a table that
// existed before the transaction is filled after the commit, online
// (indexbuild.go). Rows are never rewritten for
// ADD or DROP COLUMN (the record layer fills added columns' values and
// skips dropped ones).

// scanRows calls fn for every row of t, a page at a time.
func (s *Session) scanRows(ctx context.Context, t *catalog.Table, fn func(row []value.Value) error) error {
	rec := t.Record()
	start, end := s.codec.IndexSpan(t.ID, t.Primary.ID)
	return kvcluster.ScanAll(ctx, s.txn, start, end, 256, func(e kvcluster.KeyValue) error {
		row, err := rec.DecodeRow(s.codec, e.Key, e.Value)
		if err != nil {
			return err
		}
		return fn(row)
	})
}

// addColumn runs ALTER TABLE … ADD COLUMN: existing rows read the
// default's value, computed now (PostgreSQL's "missing value"), so no row
// is rewritten.
func (s *Session) addColumn(ctx context.Context, t *catalog.Table, cd *pg.ColumnDef, ifNotExists bool, w ResultWriter) (*catalog.Table, error) {
	if t.ColumnIndex(cd.Colname) >= 0 {
		if ifNotExists {
			return t, w.Notice("NOTICE", pgerror.CodeDuplicateColumn, fmt.Sprintf("column %q of relation %q already exists, skipping", cd.Colname, t.Name))
		}
		return nil, pgerror.New(pgerror.CodeDuplicateColumn, "column %q of relation %q already exists", cd.Colname, t.Name)
	}
	// Plan the column as CREATE TABLE would, in a scratch table.
	b := s.builder(ctx, nil)
	scratch, err := b.CreateTable(&pg.CreateStmt{Relation: &pg.RangeVar{Relname: t.Name}, TableElts: []*pg.Node{{Node: &pg.Node_ColumnDef{ColumnDef: cd}}}})
	if err != nil {
		return nil, err
	}
	col := scratch.Columns[0]
	if col.Serial {
		return nil, pgerror.Unsupported("ADD COLUMN of a serial column")
	}
	if len(scratch.Indexes) > 0 || scratch.Primary.Columns[0].Column == col.ID && !scratch.Columns[len(scratch.Columns)-1].Hidden {
		return nil, pgerror.Unsupported("ADD COLUMN … UNIQUE or PRIMARY KEY; add the column, then the constraint")
	}
	nt := *t
	nt.Columns = append(append([]catalog.Column(nil), t.Columns...), catalog.Column{})
	col.ID = t.NextColumnID
	nt.NextColumnID++
	var missing value.Value = value.Null{}
	if col.Default != "" {
		e, err := b.DefaultExpr(&nt, col)
		if err != nil {
			return nil, err
		}
		if missing, err = e.Eval(&s.runtime(ctx, nil).Env); err != nil {
			return nil, err
		}
		if missing, err = types.Coerce(col.Type, missing); err != nil {
			return nil, err
		}
		if missing.Kind() != value.KindNull {
			text := string(types.AppendText(nil, col.Type, missing))
			col.Missing = &text
		}
	}
	if col.NotNull && missing.Kind() == value.KindNull {
		empty := true
		if err := s.scanRows(ctx, t, func([]value.Value) error { empty = false; return errFound }); err != nil && err != errFound {
			return nil, err
		}
		if !empty {
			return nil, pgerror.New(pgerror.CodeNotNullViolation, "column %q of relation %q contains null values", col.Name, t.Name)
		}
		if !s.createdInTxn[t.ID] {
			// Writers with the old descriptor may still add rows, which
			// read NULL for the column: check again once they are gone.
			col.NotNull, col.Validating = false, true
			s.jobs = append(s.jobs, schemaJob{kind: jobNotNull, table: t.ID, tableName: t.Name, column: col.ID, name: col.Name, added: true})
		}
	}
	nt.Columns[len(nt.Columns)-1] = col
	return &nt, nil
}

var errFound = fmt.Errorf("found")

// dropColumn runs ALTER TABLE … DROP COLUMN: the column leaves the
// descriptor (rows keep its bytes, which no one reads); a UNIQUE index on
// it goes too, as in PostgreSQL.
func (s *Session) dropColumn(ctx context.Context, t *catalog.Table, name string, missingOK bool, w ResultWriter) (*catalog.Table, error) {
	i := t.ColumnIndex(name)
	if i < 0 || t.Columns[i].Hidden {
		if missingOK {
			return t, w.Notice("NOTICE", pgerror.CodeUndefinedColumn, fmt.Sprintf("column %q of relation %q does not exist, skipping", name, t.Name))
		}
		return nil, pgerror.New(pgerror.CodeUndefinedColumn, "column %q of relation %q does not exist", name, t.Name)
	}
	id := t.Columns[i].ID
	for _, ic := range t.Primary.Columns {
		if ic.Column == id {
			return nil, pgerror.Unsupported("dropping a primary key column")
		}
	}
	visible := 0
	for _, c := range t.Columns {
		if !c.Hidden {
			visible++
		}
	}
	if visible == 1 {
		return nil, pgerror.Unsupported("dropping a table's last column")
	}
	nt := *t
	nt.Columns = append(append([]catalog.Column(nil), t.Columns[:i]...), t.Columns[i+1:]...)
	nt.Indexes = nil
	for _, idx := range t.Indexes {
		uses := false
		for _, ic := range idx.Columns {
			uses = uses || ic.Column == id
		}
		if uses {
			if err := s.clearIndex(ctx, t, &idx); err != nil {
				return nil, err
			}
			continue
		}
		nt.Indexes = append(nt.Indexes, idx)
	}
	return &nt, nil
}

// clearIndex deletes every entry of one secondary index.
func (s *Session) clearIndex(ctx context.Context, t *catalog.Table, idx *catalog.Index) error {
	start, end := s.codec.IndexSpan(t.ID, idx.ID)
	var ks [][]byte
	err := kvcluster.ScanAll(ctx, s.txn, start, end, 256, func(e kvcluster.KeyValue) error {
		ks = append(ks, e.Key)
		if len(ks) >= 1024 {
			for _, k := range ks {
				if err := s.txn.Delete(ctx, k); err != nil {
					return err
				}
			}
			ks = ks[:0]
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range ks {
		if err := s.txn.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// buildIndex writes the entries of a new index for every row of t,
// checking uniqueness (23505 on the first duplicate, leaving nothing
// behind: the statement's transaction rolls back).
func (s *Session) buildIndex(ctx context.Context, t *catalog.Table, idx *catalog.Index) error {
	rec := t.Record()
	ri := idx.RecordIndex()
	positions := t.Positions(idx)
	return s.scanRows(ctx, t, func(row []value.Value) error {
		k, v, err := rec.EncodeIndexEntry(s.codec, ri, row)
		if err != nil {
			return err
		}
		if idx.Unique && len(v) > 0 {
			if _, found, err := s.txn.Get(ctx, k); err != nil {
				return err
			} else if found {
				return pgerror.New(pgerror.CodeUniqueViolation, "could not create unique index %q", idx.Name).
					WithDetail("Key %s is duplicated.", executor.KeyText(t, positions, row))
			}
		}
		return s.txn.Put(ctx, k, v)
	})
}

// indexName makes PostgreSQL's default index name: table_cols_key for a
// UNIQUE constraint, table_cols_idx for CREATE INDEX; a taken name gets a
// number.
func indexName(t *catalog.Table, cols []string, suffix string) string {
	base := t.Name + "_" + strings.Join(cols, "_") + "_" + suffix
	name := base
	for n := 1; indexByName(t, name) >= 0 || name == t.Primary.Name; n++ {
		name = fmt.Sprintf("%s%d", base, n)
	}
	return name
}

func indexByName(t *catalog.Table, name string) int {
	for i := range t.Indexes {
		if t.Indexes[i].Name == name {
			return i
		}
	}
	return -1
}

// addIndex adds and builds a secondary index on t.
func (s *Session) addIndex(ctx context.Context, t *catalog.Table, name string, elems []*pg.Node, unique bool, suffix string) (*catalog.Table, error) {
	var names []string
	var desc []bool
	for _, n := range elems {
		switch x := n.Node.(type) {
		case *pg.Node_IndexElem:
			if x.IndexElem.Name == "" {
				return nil, pgerror.Unsupported("indexes on expressions")
			}
			names = append(names, x.IndexElem.Name)
			desc = append(desc, x.IndexElem.Ordering == pg.SortByDir_SORTBY_DESC)
		case *pg.Node_String_:
			names = append(names, x.String_.Sval)
			desc = append(desc, false)
		}
	}
	cols, err := planner.IndexColumns(t, names)
	if err != nil {
		return nil, err
	}
	for i := range cols {
		if desc[i] {
			cols[i].Dir = 1
		}
		if err := types.KeyError(t.Columns[planner.ColumnPos(t, cols[i].Column)].Type); err != nil {
			return nil, err
		}
	}
	if name == "" {
		name = indexName(t, names, suffix)
	} else if indexByName(t, name) >= 0 || name == t.Primary.Name {
		return nil, pgerror.New(pgerror.CodeDuplicateTable, "relation %q already exists", name)
	}
	nt := *t
	idx := catalog.Index{ID: t.NextIndexID, Name: name, Columns: cols, Unique: unique, Constraint: suffix == "key"}
	nt.NextIndexID++
	if !s.createdInTxn[t.ID] {
		// Others may be writing the table: build online after the commit.
		idx.Building = true
		if err := s.setBuildMarker(ctx, t.ID, idx.ID, true); err != nil {
			return nil, err
		}
		s.jobs = append(s.jobs, schemaJob{kind: jobIndex, table: t.ID, tableName: t.Name, index: idx.ID, name: name})
	}
	nt.Indexes = append(append([]catalog.Index(nil), t.Indexes...), idx)
	if !idx.Building {
		// No one else can see the table yet: fill the index now.
		if err := s.buildIndex(ctx, &nt, &nt.Indexes[len(nt.Indexes)-1]); err != nil {
			return nil, err
		}
	}
	return &nt, nil
}

// createIndex runs CREATE [UNIQUE] INDEX [IF NOT EXISTS] [name] ON t (…).
func (s *Session) createIndex(ctx context.Context, st *pg.IndexStmt, w ResultWriter) error {
	switch {
	case st.WhereClause != nil:
		return pgerror.Unsupported("partial indexes")
	case len(st.IndexIncludingParams) > 0:
		return pgerror.Unsupported("INCLUDE columns")
	case st.AccessMethod != "" && st.AccessMethod != "btree":
		return pgerror.Unsupported("index access method " + st.AccessMethod)
	}
	t, err := s.cat.MustTable(ctx, s.txn, st.Relation.Relname)
	if err != nil {
		return err
	}
	if err := s.mustOwn(t); err != nil {
		return err
	}
	if st.Idxname != "" && indexByName(t, st.Idxname) >= 0 {
		if st.IfNotExists {
			if err := w.Notice("NOTICE", pgerror.CodeDuplicateTable, fmt.Sprintf("relation %q already exists, skipping", st.Idxname)); err != nil {
				return err
			}
			return w.Complete("CREATE INDEX")
		}
		return pgerror.New(pgerror.CodeDuplicateTable, "relation %q already exists", st.Idxname)
	}
	nt, err := s.addIndex(ctx, t, st.Idxname, st.IndexParams, st.Unique, "idx")
	if err != nil {
		return err
	}
	if err := s.cat.UpdateTable(ctx, s.txn, nt); err != nil {
		return err
	}
	return w.Complete("CREATE INDEX")
}

// dropIndex runs DROP INDEX [IF EXISTS] name, ….
func (s *Session) dropIndex(ctx context.Context, st *pg.DropStmt, w ResultWriter) error {
	tables, err := s.cat.Tables(ctx, s.txn)
	if err != nil {
		return err
	}
	for _, obj := range st.Objects {
		parts := planner.Names(obj.GetList().Items)
		name := parts[len(parts)-1]
		var owner *catalog.Table
		at := -1
		for _, t := range tables {
			if i := indexByName(t, name); i >= 0 {
				owner, at = t, i
			}
			if t.Primary.Name == name {
				return pgerror.New(pgerror.CodeDependentObjectsStillExist, "cannot drop index %s because constraint %s on table %s requires it", name, name, t.Name).
					WithHint("You can drop constraint %s on table %s instead.", name, t.Name)
			}
		}
		if owner == nil {
			if st.MissingOk {
				if err := w.Notice("NOTICE", pgerror.CodeSuccessfulCompletion, fmt.Sprintf("index %q does not exist, skipping", name)); err != nil {
					return err
				}
				continue
			}
			return pgerror.New(pgerror.CodeUndefinedObject, "index %q does not exist", name)
		}
		if err := s.mustOwn(owner); err != nil {
			return err
		}
		if err := s.clearIndex(ctx, owner, &owner.Indexes[at]); err != nil {
			return err
		}
		nt := *owner
		nt.Indexes = append(append([]catalog.Index(nil), owner.Indexes[:at]...), owner.Indexes[at+1:]...)
		if err := s.cat.UpdateTable(ctx, s.txn, &nt); err != nil {
			return err
		}
		for i, t := range tables {
			if t == owner {
				tables[i] = &nt
			}
		}
	}
	return w.Complete("DROP INDEX")
}

// renameStmt runs ALTER TABLE … RENAME [COLUMN] a TO b, RENAME TO and
// RENAME CONSTRAINT, and ALTER INDEX … RENAME TO.
func (s *Session) renameStmt(ctx context.Context, st *pg.RenameStmt, w ResultWriter) error {
	var t *catalog.Table
	var err error
	tag := "ALTER TABLE"
	if st.RenameType == pg.ObjectType_OBJECT_INDEX {
		tag = "ALTER INDEX"
		tables, err := s.cat.Tables(ctx, s.txn)
		if err != nil {
			return err
		}
		for _, c := range tables {
			if indexByName(c, st.Relation.Relname) >= 0 {
				t = c
			}
		}
		if t == nil {
			if st.MissingOk {
				return w.Complete(tag)
			}
			return pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", st.Relation.Relname)
		}
	} else {
		found := false
		t, found, err = s.cat.Table(ctx, s.txn, st.Relation.Relname)
		if err != nil {
			return err
		}
		if !found {
			if st.MissingOk {
				if err := w.Notice("NOTICE", pgerror.CodeSuccessfulCompletion, fmt.Sprintf("relation %q does not exist, skipping", st.Relation.Relname)); err != nil {
					return err
				}
				return w.Complete(tag)
			}
			return pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", st.Relation.Relname)
		}
	}
	if err := s.mustOwn(t); err != nil {
		return err
	}
	nt := *t
	switch st.RenameType {
	case pg.ObjectType_OBJECT_COLUMN:
		i := t.ColumnIndex(st.Subname)
		if i < 0 || t.Columns[i].Hidden {
			return pgerror.New(pgerror.CodeUndefinedColumn, "column %q does not exist", st.Subname)
		}
		if t.ColumnIndex(st.Newname) >= 0 {
			return pgerror.New(pgerror.CodeDuplicateColumn, "column %q of relation %q already exists", st.Newname, t.Name)
		}
		nt.Columns = append([]catalog.Column(nil), t.Columns...)
		nt.Columns[i].Name = st.Newname
		return s.finishSchemaChange(ctx, &nt, tag, w)
	case pg.ObjectType_OBJECT_TABLE:
		if _, taken, err := s.cat.Table(ctx, s.txn, st.Newname); err != nil {
			return err
		} else if taken {
			return pgerror.New(pgerror.CodeDuplicateTable, "relation %q already exists", st.Newname)
		}
		if err := s.cat.RenameTable(ctx, s.txn, t, st.Newname); err != nil {
			return err
		}
		return w.Complete(tag)
	case pg.ObjectType_OBJECT_TABCONSTRAINT, pg.ObjectType_OBJECT_INDEX:
		old := st.Subname
		if st.RenameType == pg.ObjectType_OBJECT_INDEX {
			old = st.Relation.Relname
		}
		i := indexByName(t, old)
		if i < 0 && t.Primary.Name != old {
			return pgerror.New(pgerror.CodeUndefinedObject, "constraint %q for table %q does not exist", old, t.Name)
		}
		if indexByName(t, st.Newname) >= 0 || t.Primary.Name == st.Newname {
			return pgerror.New(pgerror.CodeDuplicateTable, "relation %q already exists", st.Newname)
		}
		if i >= 0 {
			nt.Indexes = append([]catalog.Index(nil), t.Indexes...)
			nt.Indexes[i].Name = st.Newname
		} else {
			nt.Primary.Name = st.Newname
		}
		return s.finishSchemaChange(ctx, &nt, tag, w)
	}
	return pgerror.Unsupported("ALTER … RENAME of " + strings.ToLower(strings.TrimPrefix(st.RenameType.String(), "OBJECT_")))
}

// finishSchemaChange stores a changed descriptor and completes the
// statement.
func (s *Session) finishSchemaChange(ctx context.Context, nt *catalog.Table, tag string, w ResultWriter) error {
	if err := s.cat.UpdateTable(ctx, s.txn, nt); err != nil {
		return err
	}
	return w.Complete(tag)
}

// setNotNull runs ALTER COLUMN … SET NOT NULL, checking every row.
func (s *Session) setNotNull(ctx context.Context, t *catalog.Table, name string, on bool) (*catalog.Table, error) {
	i := t.ColumnIndex(name)
	if i < 0 || t.Columns[i].Hidden {
		return nil, pgerror.New(pgerror.CodeUndefinedColumn, "column %q of relation %q does not exist", name, t.Name)
	}
	nt := *t
	nt.Columns = append([]catalog.Column(nil), t.Columns...)
	if !on {
		for _, ic := range t.Primary.Columns {
			if ic.Column == t.Columns[i].ID {
				return nil, pgerror.New(pgerror.CodeInvalidTableDefinition, "column %q is in a primary key", name)
			}
		}
		nt.Columns[i].NotNull, nt.Columns[i].Validating = false, false
		return &nt, nil
	}
	if err := s.checkNoNulls(ctx, t, i); err != nil {
		return nil, err
	}
	if t.Columns[i].NotNull {
		return &nt, nil
	}
	if !s.createdInTxn[t.ID] {
		// Writers with the old descriptor may still add NULLs: check
		// again once they are gone (notNullJob).
		nt.Columns[i].Validating = true
		s.jobs = append(s.jobs, schemaJob{kind: jobNotNull, table: t.ID, tableName: t.Name, column: t.Columns[i].ID, name: name})
		return &nt, nil
	}
	nt.Columns[i].NotNull = true
	return &nt, nil
}

// checkNoNulls fails with 23502 if column i of t holds a NULL.
func (s *Session) checkNoNulls(ctx context.Context, t *catalog.Table, i int) error {
	return s.scanRows(ctx, t, func(row []value.Value) error {
		if row[i].Kind() == value.KindNull {
			return pgerror.New(pgerror.CodeNotNullViolation, "column %q of relation %q contains null values", t.Columns[i].Name, t.Name)
		}
		return nil
	})
}

// dropConstraint runs ALTER TABLE … DROP CONSTRAINT name (a UNIQUE one).
func (s *Session) dropConstraint(ctx context.Context, t *catalog.Table, name string, missingOK bool, w ResultWriter) (*catalog.Table, error) {
	if name == t.Primary.Name {
		return nil, pgerror.Unsupported("dropping a primary key")
	}
	i := indexByName(t, name)
	if i < 0 || !t.Indexes[i].Unique {
		if missingOK {
			return t, w.Notice("NOTICE", pgerror.CodeSuccessfulCompletion, fmt.Sprintf("constraint %q of relation %q does not exist, skipping", name, t.Name))
		}
		return nil, pgerror.New(pgerror.CodeUndefinedObject, "constraint %q of relation %q does not exist", name, t.Name)
	}
	if err := s.clearIndex(ctx, t, &t.Indexes[i]); err != nil {
		return nil, err
	}
	nt := *t
	nt.Indexes = append(append([]catalog.Index(nil), t.Indexes[:i]...), t.Indexes[i+1:]...)
	return &nt, nil
}

// setDefault runs ALTER COLUMN … SET DEFAULT expr / DROP DEFAULT; rows
// already there keep their values.
func (s *Session) setDefault(ctx context.Context, t *catalog.Table, name string, def *pg.Node) (*catalog.Table, error) {
	i := t.ColumnIndex(name)
	if i < 0 || t.Columns[i].Hidden {
		return nil, pgerror.New(pgerror.CodeUndefinedColumn, "column %q of relation %q does not exist", name, t.Name)
	}
	nt := *t
	nt.Columns = append([]catalog.Column(nil), t.Columns...)
	if t.Columns[i].Serial {
		return nil, pgerror.Unsupported("changing the default of a serial column")
	}
	nt.Columns[i].Default = ""
	if def != nil {
		text, err := planner.DeparseExpr(def)
		if err != nil {
			return nil, err
		}
		nt.Columns[i].Default = text
		if _, err := s.builder(ctx, nil).DefaultExpr(&nt, nt.Columns[i]); err != nil {
			return nil, err
		}
	}
	return &nt, nil
}
