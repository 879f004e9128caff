package planner

import (
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Set-returning functions other than generate_series (series.go): unnest
// and pg_partition_ancestors, in FROM, WITH ORDINALITY, or alone in the
// select list of a query without FROM.

// FuncScan produces the rows of a one-column set-returning function.
type FuncScan struct {
	Name string
	Col  Column
	Args []expr.Expr
	// Rows calls emit for each value the function returns for args.
	Rows func(args []value.Value, emit func(value.Value) error) error
}

func (f *FuncScan) Columns() []Column { return []Column{f.Col} }

// Ordinality numbers its input's rows from 1 in an extra bigint column
// (WITH ORDINALITY).
type Ordinality struct {
	Input Plan
	Cols  []Column
}

func (o *Ordinality) Columns() []Column { return o.Cols }

// fromFuncArgs builds the arguments of a function in FROM: they see no
// column of the FROM list (no LATERAL), only enclosing queries'.
func (b *Builder) fromFuncArgs(fc *pg.FuncCall) ([]expr.Expr, error) {
	var args []expr.Expr
	for _, a := range fc.Args {
		e, err := b.expr(a, &scope{})
		if err != nil {
			return nil, err
		}
		args = append(args, e)
	}
	return args, nil
}

var setReturning = map[string]bool{"generate_series": true, "unnest": true, "pg_partition_ancestors": true}

// funcScan plans a set-returning function call other than
// generate_series.
func (b *Builder) funcScan(fc *pg.FuncCall) (Plan, error) {
	name := funcName(fc)
	args, err := b.fromFuncArgs(fc)
	if err != nil {
		return nil, err
	}
	switch name {
	case "unnest":
		if len(args) != 1 || !args[0].Type().IsArray() {
			if len(args) == 1 && isUnknown(args[0]) {
				return nil, posErr(pgerror.New(pgerror.CodeAmbiguousFunction, "function unnest(unknown) is not unique").
					WithHint("Could not choose a best candidate function. You might need to add explicit type casts."), fc.Location)
			}
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function unnest does not exist").
				WithHint("No function matches the given name and argument types. You might need to add explicit type casts."), fc.Location)
		}
		return &FuncScan{Name: name, Col: Column{Name: name, Type: args[0].Type().ElemType()}, Args: args,
			Rows: func(a []value.Value, emit func(value.Value) error) error {
				arr, ok := a[0].(value.Array)
				if !ok {
					return nil // unnest(NULL) has no rows
				}
				for _, e := range arr.Elems {
					if err := emit(e); err != nil {
						return err
					}
				}
				return nil
			}}, nil
	case "pg_partition_ancestors":
		if len(args) != 1 {
			return nil, posErr(pgerror.New(pgerror.CodeUndefinedFunction, "function pg_partition_ancestors does not exist"), fc.Location)
		}
		arg, err := b.regclassOf(args[0])
		if err != nil {
			return nil, err
		}
		// No relation is a partition or partitioned: no rows, as
		// PostgreSQL answers for an ordinary table.
		return &FuncScan{Name: name, Col: Column{Name: name, Type: types.Regclass}, Args: []expr.Expr{arg},
			Rows: func([]value.Value, func(value.Value) error) error { return nil }}, nil
	}
	return nil, pgerror.Unsupported("this function in FROM")
}

// srfSelect rewrites SELECT f(...) [AS name] without FROM, f
// set-returning, to SELECT f FROM f(...): one row per value.
func srfSelect(s *pg.SelectStmt) *pg.SelectStmt {
	if len(s.FromClause) > 0 || len(s.TargetList) != 1 || s.WhereClause != nil || len(s.GroupClause) > 0 {
		return nil
	}
	rt := s.TargetList[0].GetResTarget()
	fc := rt.GetVal().GetFuncCall()
	if fc == nil || !setReturning[funcName(fc)] || fc.Over != nil {
		return nil
	}
	name := funcName(fc)
	out := proto.Clone(s).(*pg.SelectStmt)
	out.FromClause = []*pg.Node{{Node: &pg.Node_RangeFunction{RangeFunction: &pg.RangeFunction{
		Functions: []*pg.Node{pg.MakeListNode([]*pg.Node{{Node: &pg.Node_FuncCall{FuncCall: fc}}, nil})},
	}}}}
	colName := rt.Name
	if colName == "" {
		colName = name
	}
	out.TargetList = []*pg.Node{{Node: &pg.Node_ResTarget{ResTarget: &pg.ResTarget{Name: colName,
		Val: &pg.Node{Node: &pg.Node_ColumnRef{ColumnRef: &pg.ColumnRef{Fields: []*pg.Node{pg.MakeStrNode(name)}}}}}}}}
	return out
}
