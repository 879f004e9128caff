package session

import (
	"context"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
)

func (s *Session) createTable(ctx context.Context, st *pg.CreateStmt, w ResultWriter) error {
	if !s.role.Superuser {
		// PostgreSQL 15: only the database owner may create in public.
		return pgerror.New(pgerror.CodeInsufficientPrivilege, "permission denied for schema public")
	}
	b := s.builder(ctx, nil)
	t, err := b.CreateTable(st)
	if err != nil {
		return err
	}
	t.Owner = s.role.Name
	if st.IfNotExists {
		if _, found, err := s.cat.Table(ctx, s.txn, t.Name); err != nil {
			return err
		} else if found {
			if err := w.Notice("NOTICE", pgerror.CodeDuplicateTable, "relation \""+t.Name+"\" already exists, skipping"); err != nil {
				return err
			}
			return w.Complete("CREATE TABLE")
		}
	}
	if err := s.cat.CreateTable(ctx, s.txn, t); err != nil {
		return err
	}
	if s.createdInTxn == nil {
		s.createdInTxn = map[keys.TableID]bool{}
	}
	s.createdInTxn[t.ID] = true
	return w.Complete("CREATE TABLE")
}

func (s *Session) drop(ctx context.Context, st *pg.DropStmt, w ResultWriter) error {
	if st.RemoveType == pg.ObjectType_OBJECT_INDEX {
		if st.Concurrent {
			return pgerror.Unsupported("DROP INDEX CONCURRENTLY")
		}
		return s.dropIndex(ctx, st, w)
	}
	if st.RemoveType != pg.ObjectType_OBJECT_TABLE {
		return pgerror.Unsupported("DROP " + strings.TrimPrefix(st.RemoveType.String(), "OBJECT_"))
	}
	for _, obj := range st.Objects {
		parts := planner.Names(obj.GetList().Items)
		name := parts[len(parts)-1]
		if len(parts) > 1 && parts[0] != "public" {
			return pgerror.New(pgerror.CodeInvalidSchemaName, "schema %q does not exist", parts[0])
		}
		t, found, err := s.cat.Table(ctx, s.txn, name)
		if err != nil {
			return err
		}
		if !found {
			if st.MissingOk {
				if err := w.Notice("NOTICE", pgerror.CodeSuccessfulCompletion, "table \""+name+"\" does not exist, skipping"); err != nil {
					return err
				}
				continue
			}
			return pgerror.New(pgerror.CodeUndefinedTable, "table %q does not exist", name)
		}
		if err := s.mustOwn(t); err != nil {
			return err
		}
		if err := s.cat.DropTable(ctx, s.txn, t); err != nil {
			return err
		}
		s.e.seqs.forget(s.tenant, t.ID)
	}
	return w.Complete("DROP TABLE")
}

func (s *Session) truncate(ctx context.Context, st *pg.TruncateStmt, w ResultWriter) error {
	for _, rel := range st.Relations {
		rv := rel.GetRangeVar()
		t, err := s.cat.MustTable(ctx, s.txn, rv.Relname)
		if err != nil {
			return err
		}
		if !t.Allows(s.role, catalog.PrivTruncate) {
			return pgerror.New(pgerror.CodeInsufficientPrivilege, "permission denied for table %s", t.Name)
		}
		if err := s.cat.ClearTable(ctx, s.txn, t); err != nil {
			return err
		}
		if st.RestartSeqs {
			for _, c := range t.Columns {
				if c.Serial {
					if err := s.cat.ResetCounter(ctx, s.txn, catalog.SequenceCounter(t, c)); err != nil {
						return err
					}
				}
			}
			s.e.seqs.forget(s.tenant, t.ID)
		}
	}
	return w.Complete("TRUNCATE TABLE")
}
