// Package planner turns parsed SQL (pg_query's tree) into typed plans for
// the executor: it resolves names against the tenant's catalog, infers
// types (of literals, parameters and operators, as PostgreSQL does for the
// supported subset), and chooses how each table is read: a point read when
// the WHERE clause fixes the whole primary key, a range scan when it bounds
// a primary-key prefix, a full scan otherwise.
//
// Anything outside the supported subset fails with 0A000 naming the
// feature: the planner never guesses.
package planner

import (
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Column is one output column of a plan.
type Column struct {
	Name string
	Type types.T
}

// Plan is a node of a plan tree.
type Plan interface {
	Columns() []Column
}

// Values produces constant rows (SELECT without FROM, VALUES).
type Values struct {
	Cols []Column
	Rows [][]expr.Expr
}

func (v *Values) Columns() []Column { return v.Cols }

// RowSource produces rows from outside the plan (COPY FROM data) until
// Next returns nil.
type RowSource struct {
	Cols []Column
	Next func() ([]value.Value, error)
}

func (r *RowSource) Columns() []Column { return r.Cols }

// ScanKind is how a Scan reads its table.
type ScanKind int

const (
	// FullScan reads the whole table.
	FullScan ScanKind = iota
	// PointRead reads one row by its whole primary key.
	PointRead
	// RangeScan reads the rows whose primary key prefix is fixed (Eq)
	// and whose next key column lies in [Lo, Hi].
	RangeScan
)

func (k ScanKind) String() string {
	return [...]string{"full scan", "point read", "range scan"}[k]
}

// Bound is one end of a range on a key column.
type Bound struct {
	E         expr.Expr
	Inclusive bool
}

// Scan reads rows of a table; its columns are the table's, in order.
type Scan struct {
	Table *catalog.Table
	// Index is the secondary index read (its entries lead to the rows);
	// nil for the primary key.
	Index *catalog.Index
	Kind  ScanKind
	// Eq fixes the first len(Eq) primary key columns (all of them for a
	// point read).
	Eq []expr.Expr
	// Lo and Hi bound the next primary key column of a range scan; nil for
	// no bound.
	Lo, Hi *Bound
	// Filter is the WHERE clause, applied to every row read (it repeats
	// what the key already guarantees, which keeps it simple and safe).
	Filter expr.Expr
	// KeyOnly is set on a point read whose filter is nothing but the
	// equalities of its key: every row the key finds passes it.
	KeyOnly bool
	// Limit stops the scan after this many rows pass the filter (0: none);
	// set when nothing above needs more.
	Limit int64
}

// KeyIndex is the index whose key the scan's Eq, Lo and Hi bound.
func (s *Scan) KeyIndex() *catalog.Index {
	if s.Index != nil {
		return s.Index
	}
	return &s.Table.Primary
}

func (s *Scan) Columns() []Column {
	cols := make([]Column, len(s.Table.Columns))
	for i, c := range s.Table.Columns {
		cols[i] = Column{Name: c.Name, Type: c.Type}
	}
	return cols
}

// Filter keeps rows for which Cond is true.
type Filter struct {
	Input Plan
	Cond  expr.Expr
}

func (f *Filter) Columns() []Column { return f.Input.Columns() }

// Project computes output columns from each input row.
type Project struct {
	Input Plan
	Exprs []expr.Expr
	Cols  []Column
}

func (p *Project) Columns() []Column { return p.Cols }

// SortKey orders by one expression of the input row.
type SortKey struct {
	E          expr.Expr
	Desc       bool
	NullsFirst bool
}

// Sort orders all input rows.
type Sort struct {
	Input Plan
	Keys  []SortKey
}

func (s *Sort) Columns() []Column { return s.Input.Columns() }

// Limit skips Offset rows then passes at most Count (nil: all).
type Limit struct {
	Input         Plan
	Count, Offset expr.Expr
}

func (l *Limit) Columns() []Column { return l.Input.Columns() }

// AggFunc is one aggregate over the input.
type AggFunc struct {
	Name string // count, sum, avg, min, max, bool_and, bool_or, string_agg, array_agg
	Arg  expr.Expr
	// Arg2 is string_agg's delimiter, evaluated per row.
	Arg2 expr.Expr
	// Filter, from FILTER (WHERE …), chooses the rows aggregated.
	Filter   expr.Expr
	Star     bool // count(*)
	Distinct bool
	// Order, from ORDER BY inside the call (array_agg, string_agg), sorts
	// the aggregated values; its expressions read the input row.
	Order []SortKey
	T     types.T
}

// Aggregate groups input rows by GroupBy and computes Aggs per group. Its
// output row is the group key values followed by the aggregate results.
type Aggregate struct {
	Input   Plan
	GroupBy []expr.Expr
	Aggs    []AggFunc
	Cols    []Column
}

func (a *Aggregate) Columns() []Column { return a.Cols }

// Insert writes rows from Source (one value per table column, defaults
// already applied) into Table.
type Insert struct {
	Table     *catalog.Table
	Source    Plan
	Returning []expr.Expr // over the inserted row; nil if none
	RetCols   []Column
	// OnConflictDoNothing skips rows whose key exists.
	OnConflictDoNothing bool
	// OnConflict, for ON CONFLICT … DO UPDATE, updates the existing row
	// instead.
	OnConflict *ConflictUpdate
}

// ConflictUpdate is ON CONFLICT (arbiter) DO UPDATE SET … [WHERE …]. Sets
// and Where read the existing row followed by the proposed one
// (EXCLUDED).
type ConflictUpdate struct {
	// Arbiter is the unique index whose conflict is handled; the primary
	// key when Primary.
	Arbiter *catalog.Index
	Primary bool
	Targets []int
	Sets    []expr.Expr
	Where   expr.Expr
}

func (i *Insert) Columns() []Column { return i.RetCols }

// Update changes rows read by Scan: Sets[i] computes column Targets[i]
// from the old row.
type Update struct {
	Table *catalog.Table
	// Scan reads the rows to change; for UPDATE … FROM, Source instead
	// yields the target's columns followed by the FROM items' (Scan nil),
	// and Sets and Returning read that combined row.
	Scan      *Scan
	Source    Plan
	Targets   []int
	Sets      []expr.Expr
	Returning []expr.Expr // over the new row
	RetCols   []Column
}

func (u *Update) Columns() []Column { return u.RetCols }

// Rows is the plan that reads the rows to change.
func (u *Update) Rows() Plan {
	if u.Source != nil {
		return u.Source
	}
	return u.Scan
}

// Delete removes rows read by Scan.
type Delete struct {
	Table *catalog.Table
	// Scan reads the rows to delete; for DELETE … USING, Source yields
	// the target's columns followed by the USING items' (Scan nil).
	Scan      *Scan
	Source    Plan
	Returning []expr.Expr
	RetCols   []Column
}

func (d *Delete) Columns() []Column { return d.RetCols }

// Rows is the plan that reads the rows to delete.
func (d *Delete) Rows() Plan {
	if d.Source != nil {
		return d.Source
	}
	return d.Scan
}

// Distinct passes each distinct input row once (SELECT DISTINCT). Rows
// are equal when every column is equal, NULLs equal to NULLs.
type Distinct struct {
	Input Plan
	// Keys, for DISTINCT ON, are the columns that make rows the same (the
	// first row of each group passes); nil means every column.
	Keys []int
}

func (d *Distinct) Columns() []Column { return d.Input.Columns() }

// SetOp combines two inputs of the same shape: UNION, INTERSECT or
// EXCEPT, with ALL keeping duplicates (by count, as PostgreSQL does).
type SetOp struct {
	Op   string // UNION, INTERSECT, EXCEPT
	All  bool
	L, R Plan
	Cols []Column
}

func (s *SetOp) Columns() []Column { return s.Cols }

// RecursiveCTE is WITH RECURSIVE's query: Init's rows, then Step's run
// over the previous round's rows (its WorkTable) until a round adds none;
// without All, rows already produced are dropped.
type RecursiveCTE struct {
	Name       string
	Init, Step Plan
	All        bool
	Cols       []Column
}

func (r *RecursiveCTE) Columns() []Column { return r.Cols }

// WorkTable is a recursive query's previous round, read by its step.
type WorkTable struct{ CTE *RecursiveCTE }

func (w *WorkTable) Columns() []Column { return w.CTE.Cols }

// CommandTag is the tag a plan's CommandComplete carries, given the row
// count.
func CommandTag(p Plan) string {
	switch p.(type) {
	case *Insert:
		return "INSERT 0"
	case *Update:
		return "UPDATE"
	case *Delete:
		return "DELETE"
	}
	return "SELECT"
}
