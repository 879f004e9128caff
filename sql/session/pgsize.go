package session

import (
	"context"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/value"
)

// Relation sizes for pg_table_size and friends (psql's \dt+, \di+): the
// bytes of the relation's keys and values as the transaction sees them,
// counted by scanning them. That is the logical size, before the storage
// engine's compression and garbage, and costs a scan of the relation.

// indexBytes sums the keys and values under one index of t.
func (s *Session) indexBytes(ctx context.Context, t *catalog.Table, idx *catalog.Index) (int64, error) {
	start, end := s.codec.IndexSpan(t.ID, idx.ID)
	var total int64
	err := kvcluster.ScanAll(ctx, s.txn, start, end, 1024, func(kv kvcluster.KeyValue) error {
		total += int64(len(kv.Key) + len(kv.Value))
		return nil
	})
	return total, err
}

// relationSize answers pg_table_size, pg_relation_size, pg_indexes_size
// and pg_total_relation_size for oid: NULL when it names no relation.
func (s *Session) relationSize(ctx context.Context, name string, oid int64) (value.Value, error) {
	tables, err := s.viewTables(ctx, s.txn)
	if err != nil {
		return nil, err
	}
	t, idx := findRelation(tables, byOID(oid))
	switch {
	case t == nil:
		return value.Null{}, nil
	case idx != nil:
		n, err := s.indexBytes(ctx, t, idx)
		return value.Int(n), err
	}
	var total int64
	if name != "pg_indexes_size" {
		n, err := s.indexBytes(ctx, t, &t.Primary)
		if err != nil {
			return nil, err
		}
		total += n
	}
	if name == "pg_indexes_size" || name == "pg_total_relation_size" {
		for _, ix := range t.Indexes {
			n, err := s.indexBytes(ctx, t, &ix)
			if err != nil {
				return nil, err
			}
			total += n
		}
	}
	return value.Int(total), nil
}

// databaseSize is pg_database_size of the connected database: every
// relation's keys and values. Other databases are not the tenant's.
func (s *Session) databaseSize(ctx context.Context, name string) (value.Value, error) {
	if name != s.database {
		return nil, pgerror.New(pgerror.CodeInvalidCatalogName, "database %q does not exist", name)
	}
	tables, err := s.viewTables(ctx, s.txn)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, t := range tables {
		n, err := s.relationSize(ctx, "pg_total_relation_size", t.OID())
		if err != nil {
			return nil, err
		}
		total += int64(n.(value.Int))
	}
	return value.Int(total), nil
}
