package session

import (
	"context"
	"strconv"
	"strings"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// The slice of pg_catalog that psql's \dt, \di, \dn and friends read, as
// views of the connected tenant only: its tables, indexes and roles. Object
// ids are made up but stable: PostgreSQL's own for the namespaces and
// access methods, 16384 + table id for tables, and above a million for
// indexes.

const (
	oidPgCatalog = types.OIDNamespacePgCatalog
	oidPublic    = types.OIDNamespacePublic
	oidHeap      = 2
	oidBtree     = 403
	oidSuper     = 10 // the bootstrap superuser's role oid
)

func col(id int, name string, t types.T) catalog.Column {
	return catalog.Column{ID: idEnc(id), Name: name, Type: t}
}

// roleOID numbers a tenant's roles by name order, from 16384; the
// superuser "admin" has PostgreSQL's bootstrap oid 10.
func (s *Session) roleOIDs(ctx context.Context, txn kvcluster.Txn) (map[string]int64, []*catalog.Role, error) {
	roles, err := s.viewRoles(ctx, txn)
	if err != nil {
		return nil, nil, err
	}
	ids := map[string]int64{}
	next := int64(16384)
	for _, r := range roles {
		if r.Name == "admin" {
			ids[r.Name] = oidSuper
			continue
		}
		ids[r.Name] = next
		next++
	}
	return ids, roles, nil
}

// catalogView returns pg_catalog.<name>, or 42P01.
func (s *Session) catalogView(name string) (*catalog.Table, error) {
	short := strings.TrimPrefix(name, "pg_catalog.")
	virtual := func(cols []catalog.Column, rows func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error) (*catalog.Table, error) {
		return &catalog.Table{Name: short, Columns: cols, Virtual: rows}, nil
	}
	text, b := types.Text, types.Bool
	textArr, _ := types.ArrayOf(types.Text)
	switch short {
	case "pg_namespace":
		return virtual([]catalog.Column{col(1, "oid", types.OID), col(2, "nspname", types.Name), col(3, "nspowner", types.OID)},
			emitRows(
				[]value.Value{value.Int(oidPgCatalog), value.Text("pg_catalog"), value.Int(oidSuper)},
				[]value.Value{value.Int(oidPublic), value.Text("public"), value.Int(oidSuper)},
				[]value.Value{value.Int(types.OIDNamespaceInfoSch), value.Text("information_schema"), value.Int(oidSuper)},
			))
	case "pg_am":
		return virtual([]catalog.Column{col(1, "oid", types.OID), col(2, "amname", types.Name), col(3, "amtype", types.Char)},
			emitRows(
				[]value.Value{value.Int(oidHeap), value.Text("heap"), value.Text("t")},
				[]value.Value{value.Int(oidBtree), value.Text("btree"), value.Text("i")},
			))
	case "pg_class":
		return virtual([]catalog.Column{col(1, "oid", types.OID), col(2, "relname", types.Name), col(3, "relnamespace", types.OID), col(4, "relkind", types.Char),
			col(5, "relowner", types.OID), col(6, "relam", types.OID), col(7, "relhasindex", b), col(8, "relpersistence", types.Char), col(9, "relnatts", types.Int2),
			col(10, "relchecks", types.Int2), col(11, "relhasrules", b), col(12, "relhastriggers", b), col(13, "relrowsecurity", b),
			col(14, "relforcerowsecurity", b), col(15, "relispartition", b), col(16, "reltablespace", types.OID),
			col(17, "reloftype", types.OID), col(18, "relreplident", types.Char), col(19, "reltoastrelid", types.OID),
			col(20, "relpartbound", text), col(21, "reloptions", textArr), col(22, "relacl", textArr), col(23, "reltuples", types.Float4),
			col(24, "relpages", types.Int4), col(25, "reltype", types.OID), col(26, "relisshared", b)},
			func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
				owners, _, err := s.roleOIDs(ctx, txn)
				if err != nil {
					return err
				}
				tables, err := s.viewTables(ctx, txn)
				if err != nil {
					return err
				}
				row := func(oid int64, name, kind string, owner, am int64, hasIndex bool, natts int) []value.Value {
					replident := "d"
					if kind == "i" {
						replident = "n"
					}
					return []value.Value{value.Int(oid), value.Text(name), value.Int(oidPublic), value.Text(kind),
						value.Int(owner), value.Int(am), value.Bool(hasIndex), value.Text("p"), value.Int(natts),
						value.Int(0), value.Bool(false), value.Bool(false), value.Bool(false), value.Bool(false), value.Bool(false),
						value.Int(0), value.Int(0), value.Text(replident), value.Int(0), value.Null{}, value.Null{}, value.Null{},
						value.Float(-1), value.Int(0), value.Int(0), value.Bool(false)}
				}
				for _, t := range tables {
					owner := int64(oidSuper)
					if o, ok := owners[t.Owner]; ok {
						owner = o
					}
					indexes := userIndexes(t)
					if err := emit(row(t.OID(), t.Name, "r", owner, oidHeap, len(indexes) > 0, len(attnums(t)))); err != nil {
						return err
					}
					for _, idx := range indexes {
						if err := emit(row(t.IndexOID(&idx), idx.Name, "i", owner, oidBtree, false, len(idx.Columns))); err != nil {
							return err
						}
					}
				}
				return nil
			})
	case "pg_index":
		int2Arr, _ := types.ArrayOf(types.Int2)
		return virtual([]catalog.Column{col(1, "indexrelid", types.OID), col(2, "indrelid", types.OID), col(3, "indisunique", b), col(4, "indisprimary", b),
			col(5, "indnatts", types.Int2), col(6, "indnkeyatts", types.Int2), col(7, "indisclustered", b), col(8, "indisvalid", b),
			col(9, "indisreplident", b), col(10, "indimmediate", b), col(11, "indisexclusion", b), col(12, "indisready", b),
			col(13, "indislive", b), col(14, "indkey", int2Arr), col(15, "indoption", int2Arr), col(16, "indexprs", text), col(17, "indpred", text), col(18, "indnullsnotdistinct", b)},
			func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
				tables, err := s.viewTables(ctx, txn)
				if err != nil {
					return err
				}
				for _, t := range tables {
					nums := attnums(t)
					for _, idx := range userIndexes(t) {
						var key, opt []int
						for _, ic := range idx.Columns {
							key = append(key, nums[uint32(ic.Column)])
							// INDOPTION_DESC, with NULLS FIRST as DESC has it.
							opt = append(opt, int(ic.Dir)*3)
						}
						primary := idx.ID == t.Primary.ID
						if err := emit([]value.Value{value.Int(t.IndexOID(&idx)), value.Int(t.OID()), value.Bool(primary || idx.Unique),
							value.Bool(primary), value.Int(len(idx.Columns)), value.Int(len(idx.Columns)), value.Bool(false), value.Bool(true),
							value.Bool(false), value.Bool(true), value.Bool(false), value.Bool(true), value.Bool(true),
							int2Array(key), int2Array(opt), value.Null{}, value.Null{}, value.Bool(false)}); err != nil {
							return err
						}
					}
				}
				return nil
			})
	case "pg_roles", "pg_user":
		return virtual([]catalog.Column{col(1, "oid", types.OID), col(2, "rolname", types.Name), col(3, "rolsuper", b), col(4, "rolinherit", b),
			col(5, "rolcreaterole", b), col(6, "rolcreatedb", b), col(7, "rolcanlogin", b), col(8, "rolconnlimit", types.Int4),
			col(9, "rolvaliduntil", types.TimestampTZ), col(10, "rolreplication", b), col(11, "rolbypassrls", b),
			col(12, "rolpassword", text), col(13, "rolconfig", textArr)},
			func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
				ids, roles, err := s.roleOIDs(ctx, txn)
				if err != nil {
					return err
				}
				for _, r := range roles {
					if err := emit([]value.Value{value.Int(ids[r.Name]), value.Text(r.Name), value.Bool(r.Superuser), value.Bool(true),
						value.Bool(r.CreateRole || r.Superuser), value.Bool(r.Superuser), value.Bool(!r.NoLogin), value.Int(-1),
						value.Null{}, value.Bool(false), value.Bool(r.Superuser), value.Text("********"), value.Null{}}); err != nil {
						return err
					}
				}
				return nil
			})
	}
	if cols, rows, ok := s.moreCatalogViews(short); ok {
		return virtual(cols, rows)
	}
	return nil, pgerror.Unsupported("the system catalog " + name)
}

// pgGetUserByID is pg_get_userbyid(oid): the role's name in this tenant.
func (s *Session) pgGetUserByID(ctx context.Context, oid int64) (value.Value, error) {
	ids, _, err := s.roleOIDs(ctx, s.txn)
	if err != nil {
		return nil, err
	}
	for name, id := range ids {
		if id == oid {
			return value.Text(name), nil
		}
	}
	return value.Text("unknown (OID=" + itoa(oid) + ")"), nil
}

func idEnc(i int) encoding.ColumnID { return encoding.ColumnID(i) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// infoSchemaView returns information_schema.tables or .columns, of the
// tenant's own tables (schema public), or 0A000.
func (s *Session) infoSchemaView(name string) (*catalog.Table, error) {
	short := strings.TrimPrefix(name, "information_schema.")
	text, i8 := types.Text, types.Int8
	db := value.Text(s.database)
	switch short {
	case "tables":
		return &catalog.Table{Name: short, Columns: []catalog.Column{col(1, "table_catalog", text), col(2, "table_schema", text),
			col(3, "table_name", text), col(4, "table_type", text), col(5, "is_insertable_into", text)},
			Virtual: func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
				tables, err := s.viewTables(ctx, txn)
				if err != nil {
					return err
				}
				for _, t := range tables {
					if err := emit([]value.Value{db, value.Text("public"), value.Text(t.Name), value.Text("BASE TABLE"), value.Text("YES")}); err != nil {
						return err
					}
				}
				return nil
			}}, nil
	case "columns":
		return &catalog.Table{Name: short, Columns: []catalog.Column{col(1, "table_catalog", text), col(2, "table_schema", text),
			col(3, "table_name", text), col(4, "column_name", text), col(5, "ordinal_position", i8), col(6, "column_default", text),
			col(7, "is_nullable", text), col(8, "data_type", text), col(9, "character_maximum_length", i8),
			col(10, "numeric_precision", i8), col(11, "numeric_scale", i8)},
			Virtual: func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
				tables, err := s.viewTables(ctx, txn)
				if err != nil {
					return err
				}
				orNull := func(n int64, ok bool) value.Value {
					if !ok {
						return value.Null{}
					}
					return value.Int(n)
				}
				for _, t := range tables {
					pos := 0
					for _, c := range t.Columns {
						if c.Hidden {
							continue
						}
						pos++
						var def value.Value = value.Null{}
						if c.Default != "" {
							def = value.Text(c.Default)
						}
						nullable := "YES"
						if c.NotNull {
							nullable = "NO"
						}
						ty := c.Type
						var prec, scale value.Value = value.Null{}, value.Null{}
						switch ty.OID {
						case types.OIDInt2:
							prec, scale = value.Int(16), value.Int(0)
						case types.OIDInt4:
							prec, scale = value.Int(32), value.Int(0)
						case types.OIDInt8:
							prec, scale = value.Int(64), value.Int(0)
						case types.OIDNumeric:
							prec, scale = orNull(int64(ty.Precision), ty.Precision > 0), orNull(int64(ty.Scale), ty.Precision > 0)
						}
						row := []value.Value{db, value.Text("public"), value.Text(t.Name), value.Text(c.Name), value.Int(pos), def,
							value.Text(nullable), value.Text(ty.SQLName()), orNull(int64(ty.Width), ty.Width > 0), prec, scale}
						if err := emit(row); err != nil {
							return err
						}
					}
				}
				return nil
			}}, nil
	}
	return nil, pgerror.Unsupported("the system view " + name)
}

// catalogCall answers the catalog functions that need the tenant's
// catalog (planner.catalogFunc).
func (s *Session) catalogCall(ctx context.Context, name string, args []value.Value) (value.Value, error) {
	switch name {
	case "pg_get_userbyid":
		return s.pgGetUserByID(ctx, int64(args[0].(value.Int)))
	case "regclass_out":
		return s.relationName(ctx, int64(args[0].(value.Int)))
	case "regclass_in":
		return s.relationByName(ctx, string(args[0].(value.Text)))
	case "pg_get_indexdef", "pg_get_constraintdef":
		return s.objectDef(ctx, name, args)
	case "pg_table_size", "pg_relation_size", "pg_indexes_size", "pg_total_relation_size":
		return s.relationSize(ctx, name, int64(args[0].(value.Int)))
	case "pg_database_size":
		return s.databaseSize(ctx, string(args[0].(value.Text)))
	case "has_database_privilege":
		// Whoever is connected may connect; no other database is the
		// tenant's.
		return value.Bool(string(args[0].(value.Text)) == s.database), nil
	}
	return nil, pgerror.New(pgerror.CodeUndefinedFunction, "function %s does not exist", name)
}

// findRelation returns the relation match accepts among tables: a table
// (idx nil) or an index the catalogs show (userIndexes); t is nil for
// none.
func findRelation(tables []*catalog.Table, match func(oid int64, name string) bool) (t *catalog.Table, idx *catalog.Index) {
	for _, t := range tables {
		if match(t.OID(), t.Name) {
			return t, nil
		}
		for _, ix := range userIndexes(t) {
			if match(t.IndexOID(&ix), ix.Name) {
				return t, &ix
			}
		}
	}
	return nil, nil
}

func byOID(oid int64) func(int64, string) bool {
	return func(o int64, _ string) bool { return o == oid }
}

// relationName is a relation's name by oid, or the oid as text when it
// names nothing, as regclass prints.
func (s *Session) relationName(ctx context.Context, oid int64) (value.Value, error) {
	if oid == 0 {
		return value.Text("-"), nil
	}
	tables, err := s.viewTables(ctx, s.txn)
	if err != nil {
		return nil, err
	}
	switch t, idx := findRelation(tables, byOID(oid)); {
	case idx != nil:
		return value.Text(quoteIdent(idx.Name)), nil
	case t != nil:
		return value.Text(quoteIdent(t.Name)), nil
	}
	return value.Text(itoa(oid)), nil
}

// relationByName is regclass input at run time.
func (s *Session) relationByName(ctx context.Context, name string) (value.Value, error) {
	if n, err := strconv.ParseInt(strings.TrimSpace(name), 10, 64); err == nil {
		return value.Int(n), nil
	}
	parts := planner.SplitQualifiedName(strings.TrimSpace(name))
	if len(parts) == 2 && parts[0] == "public" {
		parts = parts[1:]
	}
	if len(parts) == 1 {
		tables, err := s.viewTables(ctx, s.txn)
		if err != nil {
			return nil, err
		}
		switch t, idx := findRelation(tables, func(_ int64, n string) bool { return n == parts[0] }); {
		case idx != nil:
			return value.Int(t.IndexOID(idx)), nil
		case t != nil:
			return value.Int(t.OID()), nil
		}
	}
	return nil, pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", name)
}

func quoteIdent(s string) string { return planner.QuoteIdent(s) }

// objectDef answers pg_get_indexdef(oid[, column, pretty]) and
// pg_get_constraintdef(oid[, pretty]): NULL for an oid that names none.
func (s *Session) objectDef(ctx context.Context, name string, args []value.Value) (value.Value, error) {
	oid := int64(args[0].(value.Int))
	tables, err := s.viewTables(ctx, s.txn)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		for _, idx := range userIndexes(t) {
			switch {
			case name == "pg_get_indexdef" && t.IndexOID(&idx) == oid:
				column := 0
				if len(args) > 1 {
					column = int(args[1].(value.Int))
				}
				return value.Text(indexDef(t, &idx, column)), nil
			case name == "pg_get_constraintdef" && constraintOID(t, &idx) == oid:
				return value.Text(constraintDef(t, &idx)), nil
			}
		}
	}
	return value.Null{}, nil
}
