package session

import (
	"context"
	"fmt"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/executor"
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/record"
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
	for _, n := range st.Cmds {
		cmd := n.GetAlterTableCmd()
		c := cmd.Def.GetConstraint()
		if cmd.Subtype != pg.AlterTableType_AT_AddConstraint || c == nil || c.Contype != pg.ConstrType_CONSTR_PRIMARY {
			return pgerror.Unsupported("ALTER TABLE " + strings.ToUpper(strings.TrimPrefix(cmd.Subtype.String(), "AT_")))
		}
		if err := s.addPrimaryKey(ctx, t, planner.Names(c.Keys), c.Conname); err != nil {
			return err
		}
	}
	return w.Complete("ALTER TABLE")
}

// addPrimaryKey re-keys a table created without a primary key by the given
// columns, in the statement's transaction: every row moves from its rowid
// key to its new key, and secondary index entries (which embed the
// primary key) are rebuilt.
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
		if t.Columns[i].Type.Kind == value.KindJSONB {
			return pgerror.New(pgerror.CodeUndefinedObject, "data type jsonb has no default operator class for access method \"btree\"")
		}
		keyCols = append(keyCols, record.IndexColumn{Column: t.Columns[i].ID})
		positions = append(positions, i)
	}
	if name == "" {
		name = t.Name + "_pkey"
	}
	// Read every row under the old key.
	old := t.Record()
	var rows [][]value.Value
	scan := &planner.Scan{Table: t}
	if _, err := executor.Run(s.runtime(ctx, nil), scan, func(row []value.Value) error {
		rows = append(rows, row)
		return nil
	}); err != nil {
		return err
	}
	// The new descriptor: the key columns become NOT NULL and key the rows;
	// the rowid column goes.
	nt := *t
	nt.Columns = append(append([]catalog.Column(nil), t.Columns[:rowid]...), t.Columns[rowid+1:]...)
	for _, p := range positions {
		i := nt.ColumnIndex(t.Columns[p].Name)
		nt.Columns[i].NotNull = true
	}
	nt.Primary = catalog.Index{ID: t.Primary.ID, Name: name, Columns: keyCols, Unique: true}
	nrec := nt.Record()
	seen := make(map[string]bool, len(rows))
	for _, row := range rows {
		for _, p := range positions {
			if row[p].Kind() == value.KindNull {
				return pgerror.New(pgerror.CodeNotNullViolation, "column %q of relation %q contains null values", t.Columns[p].Name, t.Name)
			}
		}
	}
	type kv struct{ k, v []byte }
	var puts []kv
	for _, row := range rows {
		nrow := append(append([]value.Value(nil), row[:rowid]...), row[rowid+1:]...)
		k, v, err := nrec.EncodeRow(s.codec, nrow)
		if err != nil {
			return err
		}
		if seen[string(k)] {
			return pgerror.New(pgerror.CodeUniqueViolation, "could not create unique index %q", name).
				WithDetail("Key %s is duplicated.", executor.KeyText(t, positions, row))
		}
		seen[string(k)] = true
		puts = append(puts, kv{k, v})
		for i := range nt.Indexes {
			ik, iv, err := nrec.EncodeIndexEntry(s.codec, nt.Indexes[i].RecordIndex(), nrow)
			if err != nil {
				return err
			}
			puts = append(puts, kv{ik, iv})
		}
	}
	// Remove the old rows and index entries, then write the new ones (a
	// new key may equal an old one byte for byte).
	for _, row := range rows {
		k, _, err := old.EncodeRow(s.codec, row)
		if err != nil {
			return err
		}
		if err := s.txn.Delete(ctx, k); err != nil {
			return err
		}
		for i := range t.Indexes {
			ik, _, err := old.EncodeIndexEntry(s.codec, t.Indexes[i].RecordIndex(), row)
			if err != nil {
				return err
			}
			if err := s.txn.Delete(ctx, ik); err != nil {
				return err
			}
		}
	}
	for _, e := range puts {
		if err := s.txn.Put(ctx, e.k, e.v); err != nil {
			return err
		}
	}
	if err := s.cat.ResetCounter(ctx, s.txn, catalog.SequenceCounter(catalog.SequenceName(t, t.Columns[rowid]))); err != nil {
		return err
	}
	s.e.seqs.forget(s.tenant, t.Name)
	return s.cat.UpdateTable(ctx, s.txn, &nt)
}
