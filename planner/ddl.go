package planner

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/record"
	"github.com/shaledb/shaledb/sql/types"
)

// deparseExpr prints an expression node as SQL text, through a parsed
// "SELECT 1" whose target it swaps (the tree carries the parser's version,
// which Deparse checks).
func deparseExpr(n *pg.Node) (string, error) {
	tree, err := pg.Parse("SELECT 1")
	if err != nil {
		return "", err
	}
	tree.Stmts[0].Stmt.GetSelectStmt().TargetList = []*pg.Node{pg.MakeResTargetNodeWithVal(n, 0)}
	s, err := pg.Deparse(tree)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(s, "SELECT "), nil
}

// CreateTable turns CREATE TABLE into a descriptor (without an id yet).
func (b *Builder) CreateTable(s *pg.CreateStmt) (*catalog.Table, error) {
	switch {
	case len(s.InhRelations) > 0:
		return nil, pgerror.Unsupported("table inheritance")
	case s.Partspec != nil || s.Partbound != nil:
		return nil, pgerror.Unsupported("partitioned tables")
	case s.OfTypename != nil:
		return nil, pgerror.Unsupported("typed tables")
	case s.Relation.Relpersistence == "t":
		return nil, pgerror.Unsupported("temporary tables")
	}
	if s.Relation.Schemaname != "" && s.Relation.Schemaname != "public" {
		return nil, pgerror.New(pgerror.CodeInvalidSchemaName, "schema %q does not exist", s.Relation.Schemaname)
	}
	t := &catalog.Table{Name: s.Relation.Relname, NextColumnID: 1, NextIndexID: keys.PrimaryIndexID + 1}
	for _, o := range s.Options {
		d := o.GetDefElem()
		if t.StorageOptions == nil {
			t.StorageOptions = map[string]string{}
		}
		val := ""
		if d.Arg != nil {
			if c := d.Arg.GetAConst(); c != nil {
				val = constText(c)
			} else {
				val = strNode(d.Arg)
			}
		}
		t.StorageOptions[d.Defname] = val
	}
	var pk []string
	var uniques [][]string
	addPK := func(cols []string, loc int32) error {
		if pk != nil {
			return posErr(pgerror.New(pgerror.CodeInvalidTableDefinition, "multiple primary keys for table %q are not allowed", t.Name), loc)
		}
		pk = cols
		return nil
	}
	for _, e := range s.TableElts {
		switch x := e.Node.(type) {
		case *pg.Node_ColumnDef:
			cd := x.ColumnDef
			if t.ColumnIndex(cd.Colname) >= 0 {
				return nil, posErr(pgerror.New(pgerror.CodeDuplicateColumn, "column %q specified more than once", cd.Colname), cd.Location)
			}
			typ, err := typeName(cd.TypeName)
			if err != nil {
				return nil, err
			}
			col := catalog.Column{ID: t.NextColumnID, Name: cd.Colname, Type: typ, NotNull: cd.IsNotNull}
			t.NextColumnID++
			ns := Names(cd.TypeName.Names)
			if types.IsSerial(ns[len(ns)-1]) && len(ns) == 1 {
				col.Serial, col.NotNull = true, true
			}
			if cd.CollClause != nil {
				return nil, posErr(pgerror.Unsupported("COLLATE"), cd.Location)
			}
			for _, cn := range cd.Constraints {
				c := cn.GetConstraint()
				switch c.Contype {
				case pg.ConstrType_CONSTR_NOTNULL:
					col.NotNull = true
				case pg.ConstrType_CONSTR_NULL:
					col.NotNull = false
				case pg.ConstrType_CONSTR_DEFAULT:
					if col.Serial {
						return nil, posErr(pgerror.New(pgerror.CodeSyntaxError, "multiple default values specified for column %q of table %q", col.Name, t.Name), c.Location)
					}
					text, err := deparseExpr(c.RawExpr)
					if err != nil {
						return nil, err
					}
					col.Default = text
				case pg.ConstrType_CONSTR_PRIMARY:
					if err := addPK([]string{col.Name}, c.Location); err != nil {
						return nil, err
					}
				case pg.ConstrType_CONSTR_UNIQUE:
					uniques = append(uniques, []string{col.Name})
				default:
					return nil, posErr(pgerror.Unsupported(strings.ToLower(strings.TrimPrefix(c.Contype.String(), "CONSTR_"))+" constraints"), c.Location)
				}
			}
			t.Columns = append(t.Columns, col)
			// Check the default now: it must build and fit the column.
			if col.Default != "" {
				if _, err := b.defaultExpr(t, col); err != nil {
					return nil, err
				}
			}
		case *pg.Node_Constraint:
			c := x.Constraint
			switch c.Contype {
			case pg.ConstrType_CONSTR_PRIMARY:
				if err := addPK(Names(c.Keys), c.Location); err != nil {
					return nil, err
				}
			case pg.ConstrType_CONSTR_UNIQUE:
				uniques = append(uniques, Names(c.Keys))
			default:
				return nil, posErr(pgerror.Unsupported(strings.ToLower(strings.TrimPrefix(c.Contype.String(), "CONSTR_"))+" constraints"), c.Location)
			}
		case *pg.Node_TableLikeClause:
			return nil, pgerror.Unsupported("CREATE TABLE … LIKE")
		default:
			return nil, pgerror.Unsupported("this table element")
		}
	}
	if len(t.Columns) == 0 {
		return nil, pgerror.Unsupported("tables without columns")
	}
	if pk == nil {
		// No primary key: rows are keyed by a hidden, sequence-drawn rowid.
		t.Columns = append(t.Columns, catalog.Column{ID: t.NextColumnID, Name: catalog.RowIDColumnName, Type: types.Int8, NotNull: true, Hidden: true})
		t.NextColumnID++
		pk = []string{catalog.RowIDColumnName}
	}
	cols, err := indexColumns(t, pk)
	if err != nil {
		return nil, err
	}
	for _, ic := range cols {
		i := columnPos(t, ic.Column)
		t.Columns[i].NotNull = true
		if err := types.KeyError(t.Columns[i].Type); err != nil {
			return nil, err
		}
	}
	t.Primary = catalog.Index{ID: keys.PrimaryIndexID, Name: t.Name + "_pkey", Columns: cols, Unique: true}
	for _, u := range uniques {
		cols, err := indexColumns(t, u)
		if err != nil {
			return nil, err
		}
		t.Indexes = append(t.Indexes, catalog.Index{ID: t.NextIndexID, Name: t.Name + "_" + strings.Join(u, "_") + "_key", Columns: cols, Unique: true, Constraint: true})
		t.NextIndexID++
	}
	return t, nil
}

func columnPos(t *catalog.Table, id encoding.ColumnID) int { return t.ColumnPos(id) }

func indexColumns(t *catalog.Table, names []string) ([]record.IndexColumn, error) {
	var out []record.IndexColumn
	seen := map[string]bool{}
	for _, n := range names {
		i := t.ColumnIndex(n)
		if i < 0 {
			return nil, pgerror.New(pgerror.CodeUndefinedColumn, "column %q named in key does not exist", n)
		}
		if seen[n] {
			return nil, pgerror.New(pgerror.CodeDuplicateColumn, "column %q appears twice in primary key constraint", n)
		}
		seen[n] = true
		if err := types.KeyError(t.Columns[i].Type); err != nil {
			return nil, err
		}
		out = append(out, record.IndexColumn{Column: t.Columns[i].ID})
	}
	return out, nil
}

// constText is a literal's text.
func constText(c *pg.A_Const) string {
	switch v := c.Val.(type) {
	case *pg.A_Const_Ival:
		return strconv.Itoa(int(v.Ival.Ival))
	case *pg.A_Const_Fval:
		return v.Fval.Fval
	case *pg.A_Const_Sval:
		return v.Sval.Sval
	case *pg.A_Const_Boolval:
		return strconv.FormatBool(v.Boolval.Boolval)
	}
	return ""
}

// DefaultExpr plans a column's DEFAULT (ALTER TABLE ADD COLUMN evaluates
// it once for the rows already there).
func (b *Builder) DefaultExpr(t *catalog.Table, c catalog.Column) (expr.Expr, error) {
	return b.defaultExpr(t, c)
}

// IndexColumns resolves index column names to ascending index columns.
func IndexColumns(t *catalog.Table, names []string) ([]record.IndexColumn, error) {
	return indexColumns(t, names)
}

// ColumnPos returns the position of the column with id in t, or -1.
func ColumnPos(t *catalog.Table, id encoding.ColumnID) int { return columnPos(t, id) }

// DeparseExpr prints an expression node as SQL text.
func DeparseExpr(n *pg.Node) (string, error) { return deparseExpr(n) }
