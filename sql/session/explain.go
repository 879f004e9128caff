package session

import (
	"context"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

var explainColumns = []Column{{Name: "QUERY PLAN", Type: types.Text}}

// explain shows the plan a statement would run: the scan chosen for each
// table (point get, range scan with its key columns, full scan), joins
// and subqueries, sorts, aggregations. It plans and checks privileges but
// runs nothing.
func (s *Session) explain(ctx context.Context, st *pg.ExplainStmt, paramTypes []types.T, w ResultWriter) error {
	for _, o := range st.Options {
		d := o.GetDefElem()
		if d == nil {
			continue
		}
		switch d.Defname {
		case "analyze":
			if a := d.Arg.GetBoolean(); a == nil || a.Boolval {
				return pgerror.Unsupported("EXPLAIN ANALYZE")
			}
		case "format":
			if f := d.Arg.GetString_(); f != nil && !strings.EqualFold(f.Sval, "text") {
				return pgerror.Unsupported("EXPLAIN (FORMAT " + strings.ToUpper(f.Sval) + ")")
			}
		}
	}
	switch st.Query.Node.(type) {
	case *pg.Node_SelectStmt, *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt:
	default:
		return pgerror.Unsupported("EXPLAIN of " + statementName(st.Query))
	}
	p, _, err := s.plan(ctx, st.Query, paramTypes)
	if err != nil {
		return err
	}
	if err := s.checkPrivileges(p); err != nil {
		return err
	}
	if err := w.Columns(explainColumns); err != nil {
		return err
	}
	for _, line := range planner.Explain(p) {
		if err := w.Row([]value.Value{value.Text(line)}); err != nil {
			return err
		}
	}
	return w.Complete("EXPLAIN")
}
