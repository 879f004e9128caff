package session

import (
	"context"
	"fmt"
	"strings"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// The rest of the pg_catalog psql 15 reads for \d, \l, \du and tab
// completion: pg_attribute, pg_attrdef, pg_type, pg_collation,
// pg_constraint, pg_database, pg_auth_members, and catalogs of features
// ShaleDB does not have (triggers, policies, publications, inheritance,
// extended statistics), which are empty.

const (
	oidCollDefault = 100 // pg_collation's "default"
	oidCollC       = 950
	oidCollPOSIX   = 951
	oidDatabase    = 16383 // the connected database, the only one a tenant sees
	encodingUTF8   = 6
)

func constraintOID(t *catalog.Table, idx *catalog.Index) int64 {
	return 2_000_000 + int64(t.ID)*1000 + int64(idx.ID)
}

func attrdefOID(t *catalog.Table, attnum int) int64 {
	return 3_000_000 + int64(t.ID)*1000 + int64(attnum)
}

// userIndexes are the indexes a table shows: the primary key unless it is
// the hidden rowid, and the public secondary indexes.
func userIndexes(t *catalog.Table) []catalog.Index {
	var out []catalog.Index
	for _, idx := range t.PublicIndexes() {
		if idx.ID == t.Primary.ID && len(idx.Columns) == 1 {
			if c := t.Columns[t.ColumnPos(idx.Columns[0].Column)]; c.Hidden {
				continue
			}
		}
		out = append(out, idx)
	}
	return out
}

// attnums numbers a table's visible columns from 1, by column id.
func attnums(t *catalog.Table) map[uint32]int {
	out := map[uint32]int{}
	n := 0
	for _, c := range t.Columns {
		if !c.Hidden {
			n++
			out[uint32(c.ID)] = n
		}
	}
	return out
}

func int2Array(ns []int) value.Value {
	elems := make([]value.Value, len(ns))
	for i, n := range ns {
		elems[i] = value.Int(n)
	}
	return value.Array{Elems: elems}
}

func typCollation(t types.T) value.Value {
	if t.Collatable() {
		return value.Int(oidCollDefault)
	}
	return value.Int(0)
}

type rowsFunc = func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error

// emitRows emits fixed rows.
func emitRows(rows ...[]value.Value) rowsFunc {
	return func(_ context.Context, _ kvcluster.Txn, emit func([]value.Value) error) error {
		for _, r := range rows {
			if err := emit(r); err != nil {
				return err
			}
		}
		return nil
	}
}

// moreCatalogViews returns the views above by short name; ok is false
// for a name that is none of them.
func (s *Session) moreCatalogViews(short string) (cols []catalog.Column, rows rowsFunc, ok bool) {
	text, oid, b, i2, i4 := types.Text, types.OID, types.Bool, types.Int2, types.Int4
	textArr, _ := types.ArrayOf(types.Text)
	oidArr, _ := types.ArrayOf(types.OID)
	int2Arr, _ := types.ArrayOf(types.Int2)
	cs := func(spec ...any) []catalog.Column {
		var out []catalog.Column
		for i := 0; i < len(spec); i += 2 {
			out = append(out, col(i/2+1, spec[i].(string), spec[i+1].(types.T)))
		}
		return out
	}
	null := value.Null{}
	tables := func(ctx context.Context, txn kvcluster.Txn, each func(t *catalog.Table) error) error {
		ts, err := s.viewTables(ctx, txn)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if err := each(t); err != nil {
				return err
			}
		}
		return nil
	}
	switch short {
	case "pg_attribute":
		return cs("attrelid", oid, "attname", types.Name, "atttypid", oid, "attstattarget", i4, "attlen", i2, "attnum", i2,
				"attndims", i4, "atttypmod", i4, "attbyval", b, "attnotnull", b, "atthasdef", b, "atthasmissing", b,
				"attidentity", types.Char, "attgenerated", types.Char, "attisdropped", b, "attislocal", b, "attinhcount", i4,
				"attcollation", oid, "attacl", textArr, "attoptions", textArr, "attstorage", types.Char, "attcompression", types.Char),
			func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
				return tables(ctx, txn, func(t *catalog.Table) error {
					row := func(rel int64, c catalog.Column, num int, notNull, hasDef bool) []value.Value {
						ndims := 0
						if c.Type.IsArray() {
							ndims = 1
						}
						size := c.Type.Size()
						storage := "x" // varlena values may be large
						if size > 0 {
							storage = "p"
						}
						return []value.Value{value.Int(rel), value.Text(c.Name), value.Int(c.Type.OID), value.Int(-1),
							value.Int(size), value.Int(num), value.Int(ndims), value.Int(c.Type.Typmod()), value.Bool(size > 0),
							value.Bool(notNull), value.Bool(hasDef), value.Bool(c.Missing != nil), value.Text(""), value.Text(""),
							value.Bool(false), value.Bool(true), value.Int(0), typCollation(c.Type), null, null, value.Text(storage), value.Text("")}
					}
					nums := attnums(t)
					for _, c := range t.Columns {
						if c.Hidden {
							continue
						}
						if err := emit(row(t.OID(), c, nums[uint32(c.ID)], c.NotNull, c.Default != "" || c.Serial)); err != nil {
							return err
						}
					}
					for _, idx := range userIndexes(t) {
						for i, ic := range idx.Columns {
							c := t.Columns[t.ColumnPos(ic.Column)]
							if err := emit(row(t.IndexOID(&idx), c, i+1, false, false)); err != nil {
								return err
							}
						}
					}
					return nil
				})
			}, true
	case "pg_attrdef":
		return cs("oid", oid, "adrelid", oid, "adnum", i2, "adbin", text),
			func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
				return tables(ctx, txn, func(t *catalog.Table) error {
					nums := attnums(t)
					for _, c := range t.Columns {
						def := c.Default
						if c.Serial {
							def = fmt.Sprintf("nextval('%s_%s_seq'::regclass)", t.Name, c.Name)
						}
						if c.Hidden || def == "" {
							continue
						}
						n := nums[uint32(c.ID)]
						if err := emit([]value.Value{value.Int(attrdefOID(t, n)), value.Int(t.OID()), value.Int(n), value.Text(def)}); err != nil {
							return err
						}
					}
					return nil
				})
			}, true
	case "pg_type":
		var rows [][]value.Value
		for _, t := range types.All() {
			arr, elem := value.Int(0), value.Int(t.Elem)
			if a, ok := types.ArrayOf(t); ok {
				arr = value.Int(a.OID)
			}
			size := t.Size()
			rows = append(rows, []value.Value{value.Int(t.OID), value.Text(t.InternalName()), value.Int(oidPgCatalog), value.Int(oidSuper),
				value.Int(size), value.Bool(size > 0 && size <= 8), value.Text("b"), value.Text(t.Category()), value.Bool(true),
				value.Text(","), value.Int(0), elem, arr, value.Int(0), value.Int(-1), value.Bool(false), typCollation(t), value.Int(0), null})
		}
		return cs("oid", oid, "typname", types.Name, "typnamespace", oid, "typowner", oid, "typlen", i2, "typbyval", b,
			"typtype", types.Char, "typcategory", types.Char, "typisdefined", b, "typdelim", types.Char, "typrelid", oid, "typelem", oid,
			"typarray", oid, "typbasetype", oid, "typtypmod", i4, "typnotnull", b, "typcollation", oid, "typndims", i4,
			"typdefault", text), emitRows(rows...), true
	case "pg_collation":
		row := func(o int64, name, provider string) []value.Value {
			var coll value.Value = value.Text(name)
			if name == "default" {
				coll = null
			}
			return []value.Value{value.Int(o), value.Text(name), value.Int(oidPgCatalog), value.Int(oidSuper), value.Text(provider),
				value.Bool(true), value.Int(-1), coll, coll}
		}
		return cs("oid", oid, "collname", types.Name, "collnamespace", oid, "collowner", oid, "collprovider", types.Char,
				"collisdeterministic", b, "collencoding", i4, "collcollate", text, "collctype", text),
			emitRows(row(oidCollDefault, "default", "d"), row(oidCollC, "C", "c"), row(oidCollPOSIX, "POSIX", "c")), true
	case "pg_constraint":
		return cs("oid", oid, "conname", types.Name, "connamespace", oid, "contype", types.Char, "condeferrable", b, "condeferred", b,
				"convalidated", b, "conrelid", oid, "contypid", oid, "conindid", oid, "conparentid", oid, "confrelid", oid,
				"confupdtype", types.Char, "confdeltype", types.Char, "confmatchtype", types.Char, "conislocal", b, "coninhcount", i4,
				"connoinherit", b, "conkey", int2Arr, "confkey", int2Arr),
			func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
				return tables(ctx, txn, func(t *catalog.Table) error {
					nums := attnums(t)
					for _, idx := range userIndexes(t) {
						kind := "u"
						switch {
						case idx.ID == t.Primary.ID:
							kind = "p"
						case !idx.Constraint:
							continue
						}
						var key []int
						for _, ic := range idx.Columns {
							key = append(key, nums[uint32(ic.Column)])
						}
						if err := emit([]value.Value{value.Int(constraintOID(t, &idx)), value.Text(idx.Name), value.Int(oidPublic),
							value.Text(kind), value.Bool(false), value.Bool(false), value.Bool(true), value.Int(t.OID()), value.Int(0),
							value.Int(t.IndexOID(&idx)), value.Int(0), value.Int(0), value.Text(" "), value.Text(" "), value.Text(" "),
							value.Bool(true), value.Int(0), value.Bool(true), int2Array(key), null}); err != nil {
							return err
						}
					}
					return nil
				})
			}, true
	case "pg_database":
		return cs("oid", oid, "datname", types.Name, "datdba", oid, "encoding", i4, "datlocprovider", types.Char, "datistemplate", b,
				"datallowconn", b, "datconnlimit", i4, "datcollate", text, "datctype", text, "daticulocale", text,
				"datcollversion", text, "datacl", textArr, "dattablespace", oid),
			emitRows([]value.Value{value.Int(oidDatabase), value.Text(s.database), value.Int(oidSuper), value.Int(encodingUTF8),
				value.Text("c"), value.Bool(false), value.Bool(true), value.Int(-1), value.Text("C"), value.Text("C"), null, null, null,
				value.Int(1663)}), true
	case "pg_auth_members":
		// Roles are not members of roles in ShaleDB.
		return cs("oid", oid, "roleid", oid, "member", oid, "grantor", oid, "admin_option", b), emitRows(), true
	case "pg_policy":
		return cs("oid", oid, "polname", types.Name, "polrelid", oid, "polcmd", types.Char, "polpermissive", b, "polroles", oidArr,
			"polqual", text, "polwithcheck", text), emitRows(), true
	case "pg_statistic_ext":
		return cs("oid", oid, "stxrelid", oid, "stxname", types.Name, "stxnamespace", oid, "stxowner", oid, "stxstattarget", i4,
			"stxkeys", int2Arr, "stxkind", textArr, "stxexprs", text), emitRows(), true
	case "pg_publication":
		return cs("oid", oid, "pubname", types.Name, "pubowner", oid, "puballtables", b, "pubinsert", b, "pubupdate", b,
			"pubdelete", b, "pubtruncate", b, "pubviaroot", b), emitRows(), true
	case "pg_publication_namespace":
		return cs("oid", oid, "pnpubid", oid, "pnnspid", oid), emitRows(), true
	case "pg_publication_rel":
		return cs("oid", oid, "prpubid", oid, "prrelid", oid, "prqual", text, "prattrs", int2Arr), emitRows(), true
	case "pg_inherits":
		return cs("inhrelid", oid, "inhparent", oid, "inhseqno", i4, "inhdetachpending", b), emitRows(), true
	case "pg_trigger":
		return cs("oid", oid, "tgrelid", oid, "tgparentid", oid, "tgname", types.Name, "tgfoid", oid, "tgtype", i2,
			"tgenabled", types.Char, "tgisinternal", b, "tgconstrrelid", oid, "tgconstrindid", oid, "tgconstraint", oid,
			"tgdeferrable", b, "tginitdeferred", b, "tgnargs", i2), emitRows(), true
	case "pg_tablespace":
		return cs("oid", oid, "spcname", types.Name, "spcowner", oid, "spcacl", textArr, "spcoptions", textArr),
			emitRows([]value.Value{value.Int(1663), value.Text("pg_default"), value.Int(oidSuper), null, null},
				[]value.Value{value.Int(1664), value.Text("pg_global"), value.Int(oidSuper), null, null}), true
	case "pg_rewrite":
		return cs("oid", oid, "rulename", types.Name, "ev_class", oid, "ev_type", types.Char, "ev_enabled", types.Char, "is_instead", b), emitRows(), true
	}
	return nil, nil, false
}

// indexDef is pg_get_indexdef: CREATE [UNIQUE] INDEX name ON public.t
// USING btree (a, b DESC); column, when above 0, asks for that key
// column's name alone.
func indexDef(t *catalog.Table, idx *catalog.Index, column int) string {
	var keys []string
	for _, ic := range idx.Columns {
		k := quoteIdent(t.Columns[t.ColumnPos(ic.Column)].Name)
		if ic.Dir == 1 {
			k += " DESC"
		}
		keys = append(keys, k)
	}
	if column > 0 {
		if column > len(idx.Columns) {
			return ""
		}
		return strings.TrimSuffix(keys[column-1], " DESC")
	}
	unique := ""
	if idx.Unique {
		unique = "UNIQUE "
	}
	// public is on the search path, so PostgreSQL leaves it out.
	return fmt.Sprintf("CREATE %sINDEX %s ON %s USING btree (%s)", unique, quoteIdent(idx.Name), quoteIdent(t.Name), strings.Join(keys, ", "))
}

// constraintDef is pg_get_constraintdef: PRIMARY KEY (a) or UNIQUE (a, b).
func constraintDef(t *catalog.Table, idx *catalog.Index) string {
	var keys []string
	for _, ic := range idx.Columns {
		keys = append(keys, quoteIdent(t.Columns[t.ColumnPos(ic.Column)].Name))
	}
	kind := "UNIQUE"
	if idx.ID == t.Primary.ID {
		kind = "PRIMARY KEY"
	}
	return kind + " (" + strings.Join(keys, ", ") + ")"
}

// viewCache holds one statement's reads of the catalog for the views.
type viewCache struct {
	txn    kvcluster.Txn
	tables []*catalog.Table
	roles  []*catalog.Role
}

// viewTables lists the tenant's tables for the catalog views, once per
// statement and transaction.
func (s *Session) viewTables(ctx context.Context, txn kvcluster.Txn) ([]*catalog.Table, error) {
	return memoized(s, txn, func(c *viewCache) *[]*catalog.Table { return &c.tables },
		func() ([]*catalog.Table, error) { return s.cat.Tables(ctx, txn) })
}

// viewRoles lists the tenant's roles for the catalog views, once per
// statement and transaction.
func (s *Session) viewRoles(ctx context.Context, txn kvcluster.Txn) ([]*catalog.Role, error) {
	return memoized(s, txn, func(c *viewCache) *[]*catalog.Role { return &c.roles },
		func() ([]*catalog.Role, error) { return s.cat.Roles(ctx, txn) })
}

// memoized returns the statement's cached list in slot, loading it on
// first use in txn.
func memoized[T any](s *Session, txn kvcluster.Txn, slot func(*viewCache) *[]T, load func() ([]T, error)) ([]T, error) {
	if s.views.txn != txn {
		s.views = viewCache{txn: txn}
	}
	p := slot(&s.views)
	if *p != nil {
		return *p, nil
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	*p = v
	return v, nil
}
