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
	"github.com/shaledb/shaledb/sql/record"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

func (s *Session) alterTable(ctx context.Context, st *pg.AlterTableStmt, w ResultWriter) error {
	if st.Objtype != pg.ObjectType_OBJECT_TABLE {
		return pgerror.Unsupported("ALTER " + strings.TrimPrefix(st.Objtype.String(), "OBJECT_"))
	}
	t, found, err := s.cat.Table(ctx, s.txn, st.Relation.Relname)
	if err != nil {
		return err
	}
	if !found {
		if st.MissingOk {
			if err := w.Notice("NOTICE", pgerror.CodeSuccessfulCompletion, fmt.Sprintf("relation %q does not exist, skipping", st.Relation.Relname)); err != nil {
				return err
			}
			return w.Complete("ALTER TABLE")
		}
		return pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", st.Relation.Relname)
	}
	if err := s.mustOwn(t); err != nil {
		return err
	}
	cur := t
	for _, n := range st.Cmds {
		cmd := n.GetAlterTableCmd()
		var nt *catalog.Table
		switch cmd.Subtype {
		case pg.AlterTableType_AT_AddColumn:
			nt, err = s.addColumn(ctx, cur, cmd.Def.GetColumnDef(), cmd.MissingOk, w)
		case pg.AlterTableType_AT_DropColumn:
			if err := checkNotBuilding(cur); err != nil {
				return err
			}
			nt, err = s.dropColumn(ctx, cur, cmd.Name, cmd.MissingOk, w)
		case pg.AlterTableType_AT_SetNotNull, pg.AlterTableType_AT_DropNotNull:
			nt, err = s.setNotNull(ctx, cur, cmd.Name, cmd.Subtype == pg.AlterTableType_AT_SetNotNull)
		case pg.AlterTableType_AT_ColumnDefault:
			nt, err = s.setDefault(ctx, cur, cmd.Name, cmd.Def)
		case pg.AlterTableType_AT_DropConstraint:
			nt, err = s.dropConstraint(ctx, cur, cmd.Name, cmd.MissingOk, w)
		case pg.AlterTableType_AT_AddConstraint:
			c := cmd.Def.GetConstraint()
			switch {
			case c != nil && c.Contype == pg.ConstrType_CONSTR_PRIMARY:
				if err := checkNotBuilding(cur); err != nil {
					return err
				}
				if err := s.addPrimaryKey(ctx, cur, planner.Names(c.Keys), c.Conname); err != nil {
					return err
				}
				if cur, _, err = s.cat.Table(ctx, s.txn, cur.Name); err != nil {
					return err
				}
				continue
			case c != nil && c.Contype == pg.ConstrType_CONSTR_UNIQUE:
				if c.Conname != "" && indexByName(cur, c.Conname) >= 0 {
					return pgerror.New(pgerror.CodeDuplicateTable, "relation %q already exists", c.Conname)
				}
				nt, err = s.addIndex(ctx, cur, c.Conname, c.Keys, true, "key")
			default:
				kind := "this constraint"
				if c != nil {
					kind = strings.ToLower(strings.TrimPrefix(c.Contype.String(), "CONSTR_")) + " constraints"
				}
				return pgerror.Unsupported("ALTER TABLE … ADD " + kind)
			}
		default:
			return pgerror.Unsupported("ALTER TABLE " + strings.ToUpper(strings.TrimPrefix(cmd.Subtype.String(), "AT_")))
		}
		if err != nil {
			return err
		}
		if nt != cur {
			if err := s.cat.UpdateTable(ctx, s.txn, nt); err != nil {
				return err
			}
			cur = nt
		}
	}
	return w.Complete("ALTER TABLE")
}

// addPrimaryKey re-keys a table created without a primary key by the given
// columns, in the statement's transaction. The rows move from their rowid
// keys into a new primary index, and every secondary index (whose entries
// embed the primary key) is rebuilt under a new id too, so new entries can
// never collide with old ones still to be removed. Rows are read and moved
// a page at a time: memory stays bounded (a large transaction spills its
// writes to disk in the KV layer), whatever the table's size.
func (s *Session) addPrimaryKey(ctx context.Context, t *catalog.Table, cols []string, name string) error {
	rowid := -1
	for i, c := range t.Columns {
		if c.Hidden {
			rowid = i
		}
	}
	if rowid < 0 {
		return pgerror.New(pgerror.CodeInvalidTableDefinition, "multiple primary keys for table %q are not allowed", t.Name)
	}
	var keyCols []record.IndexColumn
	var positions []int
	for _, cn := range cols {
		i := t.ColumnIndex(cn)
		if i < 0 || t.Columns[i].Hidden {
			return pgerror.New(pgerror.CodeUndefinedColumn, "column %q of relation %q does not exist", cn, t.Name)
		}
		if err := types.KeyError(t.Columns[i].Type); err != nil {
			return err
		}
		keyCols = append(keyCols, record.IndexColumn{Column: t.Columns[i].ID})
		positions = append(positions, i)
	}
	if name == "" {
		name = t.Name + "_pkey"
	}
	// The new descriptor: the key columns become NOT NULL and key the rows
	// in a new index; the rowid column goes; secondary indexes get new ids.
	nt := *t
	nt.Columns = append(append([]catalog.Column(nil), t.Columns[:rowid]...), t.Columns[rowid+1:]...)
	for _, p := range positions {
		i := nt.ColumnIndex(t.Columns[p].Name)
		nt.Columns[i].NotNull = true
	}
	nt.Primary = catalog.Index{ID: t.NextIndexID, Name: name, Columns: keyCols, Unique: true}
	nt.NextIndexID++
	nt.Indexes = append([]catalog.Index(nil), t.Indexes...)
	for i := range nt.Indexes {
		nt.Indexes[i].ID = nt.NextIndexID
		nt.NextIndexID++
	}
	rk := rekey{s: s, t: t, nt: &nt, old: t.Record(), nrec: nt.Record(), rowid: rowid, positions: positions}
	start, end := s.codec.IndexSpan(t.ID, t.Primary.ID)
	if err := kvcluster.ScanAll(ctx, s.txn, start, end, rekeyPageRows, func(e kvcluster.KeyValue) error {
		return rk.row(ctx, e)
	}); err != nil {
		return err
	}
	if err := s.cat.ResetCounter(ctx, s.txn, catalog.SequenceCounter(t, t.Columns[rowid])); err != nil {
		return err
	}
	s.e.seqs.forget(s.tenant, t.ID)
	return s.cat.UpdateTable(ctx, s.txn, &nt)
}

// rekeyPageRows is how many rows ADD PRIMARY KEY reads at a time.
const rekeyPageRows = 1024

// rekey moves the rows of table t to its re-keyed form nt.
type rekey struct {
	s         *Session
	t, nt     *catalog.Table
	old, nrec *record.Table
	rowid     int   // the position of t's rowid column
	positions []int // the positions in t of nt's key columns
}

// row moves one row and its index entries.
func (rk *rekey) row(ctx context.Context, e kvcluster.KeyValue) error {
	s, t, nt, positions := rk.s, rk.t, rk.nt, rk.positions
	row, err := rk.old.DecodeRow(s.codec, e.Key, e.Value)
	if err != nil {
		return err
	}
	for _, p := range positions {
		if row[p].Kind() == value.KindNull {
			return pgerror.New(pgerror.CodeNotNullViolation, "column %q of relation %q contains null values", t.Columns[p].Name, t.Name)
		}
	}
	nrow := append(append([]value.Value(nil), row[:rk.rowid]...), row[rk.rowid+1:]...)
	k, v, err := rk.nrec.EncodeRow(s.codec, nrow)
	if err != nil {
		return err
	}
	// The new index holds only what this statement wrote: a key already
	// there is a duplicate.
	if _, dup, err := s.txn.Get(ctx, k); err != nil {
		return err
	} else if dup {
		return pgerror.New(pgerror.CodeUniqueViolation, "could not create unique index %q", nt.Primary.Name).
			WithDetail("Key %s is duplicated.", executor.KeyText(t, positions, row))
	}
	if err := s.txn.Put(ctx, k, v); err != nil {
		return err
	}
	for i := range nt.Indexes {
		ik, iv, err := rk.nrec.EncodeIndexEntry(s.codec, nt.Indexes[i].RecordIndex(), nrow)
		if err != nil {
			return err
		}
		if err := s.txn.Put(ctx, ik, iv); err != nil {
			return err
		}
	}
	if err := s.txn.Delete(ctx, e.Key); err != nil {
		return err
	}
	for i := range t.Indexes {
		ik, _, err := rk.old.EncodeIndexEntry(s.codec, t.Indexes[i].RecordIndex(), row)
		if err != nil {
			return err
		}
		if err := s.txn.Delete(ctx, ik); err != nil {
			return err
		}
	}
	return nil
}
