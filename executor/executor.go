// Package executor runs planner plans inside one KvCluster transaction.
// Plans push rows to their parent (emit); a parent that needs no more rows
// (LIMIT) stops its input with errStop, so a limited scan reads no further
// than it must. Writes (INSERT, UPDATE, DELETE) keep the table's indexes and
// constraints in the same transaction.
package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/record"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Runtime is what a plan runs against.
type Runtime struct {
	Ctx   context.Context
	Txn   kvcluster.Txn
	Codec keys.Codec
	// Env carries parameters, the clock, settings and sequences; Row is
	// set per row by the executor.
	Env expr.Env
	// RowsRead counts the rows scans read (before filtering).
	RowsRead int64
	// MemLimit bounds the memory of the rows the statement holds at once
	// (sorts, groups, DISTINCT, set operations); 0 is DefaultQueryMemory.
	MemLimit int64
	memUsed  int64
	// root is the statement's outermost runtime, for a subquery's.
	root     *Runtime
	subCache map[*expr.Subquery]*subqueryRows
	// work holds each running recursive query's previous round.
	work map[*planner.RecursiveCTE][][]value.Value
}

// Emit receives one output row; the slice is the callee's to keep.
type Emit func(row []value.Value) error

// errStop ends an input early once its consumer has what it needs.
var errStop = errors.New("executor: stop")

// scanPageRows bounds one KV scan call.
const scanPageRows = 256

// Run runs p, sending its rows to emit, and returns the row count for the
// command tag (rows returned, or rows written for INSERT/UPDATE/DELETE).
func Run(rt *Runtime, p planner.Plan, emit Emit) (int64, error) {
	if rt.Env.Subquery == nil {
		rt.Env.Subquery = rt.runSubquery
	}
	var n int64
	count := func(row []value.Value) error {
		n++
		return emit(row)
	}
	var err error
	switch p := p.(type) {
	case *planner.Insert:
		n, err = runInsert(rt, p, emit)
	case *planner.Update:
		n, err = runUpdate(rt, p, emit)
	case *planner.Delete:
		n, err = runDelete(rt, p, emit)
	default:
		err = run(rt, p, count)
	}
	if errors.Is(err, errStop) {
		err = nil
	}
	return n, err
}

func (rt *Runtime) eval(e expr.Expr, row []value.Value) (value.Value, error) {
	env := rt.Env
	env.Row = row
	return e.Eval(&env)
}

func (rt *Runtime) evalAll(es []expr.Expr, row []value.Value) ([]value.Value, error) {
	env := rt.Env
	env.Row = row
	out := make([]value.Value, len(es))
	for i, e := range es {
		v, err := e.Eval(&env)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// series emits generate_series's values, from start towards stop by
// step; a NULL argument gives no rows, a zero step 22023.
func series(rt *Runtime, p *planner.Series, emit Emit) error {
	args, err := rt.evalAll([]expr.Expr{p.Start, p.Stop, p.Step}, nil)
	if err != nil {
		return err
	}
	for _, a := range args {
		if a.Kind() == value.KindNull {
			return nil
		}
	}
	cur, stop, step := args[0], args[1], args[2]
	sign := p.Sign(step)
	if sign == 0 {
		return pgerror.New(pgerror.CodeInvalidParameterValue, "step size cannot equal zero")
	}
	for n := 0; value.Compare(cur, stop)*sign <= 0; n++ {
		if n%1024 == 1023 {
			if err := rt.Ctx.Err(); err != nil {
				return err
			}
		}
		if err := emit([]value.Value{cur}); err != nil {
			return err
		}
		next, ok, err := p.Next(cur, step)
		if err != nil || !ok {
			return err
		}
		cur = next
	}
	return nil
}

func run(rt *Runtime, p planner.Plan, emit Emit) error {
	if err := rt.Ctx.Err(); err != nil {
		return err
	}
	switch p := p.(type) {
	case *planner.Values:
		for _, r := range p.Rows {
			row, err := rt.evalAll(r, nil)
			if err != nil {
				return err
			}
			if err := emit(row); err != nil {
				return err
			}
		}
		return nil
	case *planner.Series:
		return series(rt, p, emit)
	case *planner.FuncScan:
		args, err := rt.evalAll(p.Args, nil)
		if err != nil {
			return err
		}
		return p.Rows(args, func(v value.Value) error { return emit([]value.Value{v}) })
	case *planner.Ordinality:
		n := int64(0)
		return run(rt, p.Input, func(row []value.Value) error {
			n++
			return emit(append(row[:len(row):len(row)], value.Int(n)))
		})
	case *planner.Scan:
		return scan(rt, p, emit)
	case *planner.RowSource:
		for {
			row, err := p.Next()
			if err != nil || row == nil {
				return err
			}
			if err := emit(row); err != nil {
				return err
			}
		}
	case *planner.Filter:
		return run(rt, p.Input, func(row []value.Value) error {
			v, err := rt.eval(p.Cond, row)
			if err != nil || !expr.Truthy(v) {
				return err
			}
			return emit(row)
		})
	case *planner.Project:
		return run(rt, p.Input, func(row []value.Value) error {
			out, err := rt.evalAll(p.Exprs, row)
			if err != nil {
				return err
			}
			return emit(out)
		})
	case *planner.Sort:
		return runSort(rt, p, emit)
	case *planner.Limit:
		return runLimit(rt, p, emit)
	case *planner.Aggregate:
		return runAggregate(rt, p, emit)
	case *planner.Distinct:
		return runDistinct(rt, p, emit)
	case *planner.Join:
		return runJoin(rt, p, emit)
	case *planner.RecursiveCTE:
		return runRecursive(rt, p, emit)
	case *planner.WorkTable:
		return runWorkTable(rt, p, emit)
	case *planner.SetOp:
		return runSetOp(rt, p, emit)
	}
	return pgerror.New(pgerror.CodeInternalError, "executor: unknown plan node %T", p)
}

// span computes the key range a scan reads; empty is true when a bound is
// NULL (no row can match).
func span(rt *Runtime, s *planner.Scan) (start, end []byte, empty bool, err error) {
	idx := s.KeyIndex()
	prefix := rt.Codec.IndexPrefix(s.Table.ID, idx.ID)
	pk := idx.Columns
	key := prefix
	for i, e := range s.Eq {
		v, err := rt.eval(e, nil)
		if err != nil {
			return nil, nil, false, err
		}
		if v.Kind() == value.KindNull {
			return nil, nil, true, nil
		}
		if key, err = encoding.AppendKey(key, v, pk[i].Dir); err != nil {
			return nil, nil, false, err
		}
	}
	start, end = key, keys.PrefixEnd(key)
	if s.Kind != planner.RangeScan || (s.Lo == nil && s.Hi == nil) {
		return start, end, false, nil
	}
	dir := pk[len(s.Eq)].Dir
	bound := func(b *planner.Bound) ([]byte, bool, error) {
		v, err := rt.eval(b.E, nil)
		if err != nil || v.Kind() == value.KindNull {
			return nil, v != nil && v.Kind() == value.KindNull, err
		}
		k, err := encoding.AppendKey(bytes.Clone(key), v, dir)
		return k, false, err
	}
	lo, hi := s.Lo, s.Hi
	if dir == encoding.Descending {
		lo, hi = hi, lo // a larger value sorts first
	}
	if lo != nil {
		k, null, err := bound(lo)
		if err != nil || null {
			return nil, nil, null, err
		}
		if lo.Inclusive {
			start = k
		} else {
			start = keys.PrefixEnd(k)
		}
	}
	if hi != nil {
		k, null, err := bound(hi)
		if err != nil || null {
			return nil, nil, null, err
		}
		if hi.Inclusive {
			end = keys.PrefixEnd(k)
		} else {
			end = k
		}
	}
	if bytes.Compare(start, end) >= 0 {
		return nil, nil, true, nil
	}
	return start, end, false, nil
}

func scan(rt *Runtime, s *planner.Scan, emit Emit) error {
	if s.Table.Virtual != nil {
		return s.Table.Virtual(rt.Ctx, rt.Txn, func(row []value.Value) error {
			rt.RowsRead++
			if s.Filter != nil {
				ok, err := rt.eval(s.Filter, row)
				if err != nil || !expr.Truthy(ok) {
					return err
				}
			}
			return emit(row)
		})
	}
	rec := s.Table.Record()
	start, end, empty, err := span(rt, s)
	if err != nil || empty {
		return err
	}
	deliver := func(k, v []byte) error {
		rt.RowsRead++
		row, err := rec.DecodeRow(rt.Codec, k, v)
		if err != nil {
			return err
		}
		if s.Filter != nil {
			ok, err := rt.eval(s.Filter, row)
			if err != nil || !expr.Truthy(ok) {
				return err
			}
		}
		return emit(row)
	}
	if s.Index != nil {
		return indexScan(rt, s, rec, start, end, deliver)
	}
	return readSpan(rt, s.Kind == planner.PointRead, start, end, deliver)
}

// readSpan calls fn for the key start alone (point) or for every entry in
// [start, end), read a page at a time.
func readSpan(rt *Runtime, point bool, start, end []byte, fn func(k, v []byte) error) error {
	if point {
		v, found, err := rt.Txn.Get(rt.Ctx, start)
		if err != nil || !found {
			return err
		}
		return fn(start, v)
	}
	return kvcluster.ScanAll(rt.Ctx, rt.Txn, start, end, scanPageRows, func(e kvcluster.KeyValue) error {
		return fn(e.Key, e.Value)
	})
}

// indexScan reads a secondary index's entries in [start, end) and each
// entry's row by its primary key.
func indexScan(rt *Runtime, s *planner.Scan, rec *record.Table, start, end []byte, deliver func(k, v []byte) error) error {
	ri := s.Index.RecordIndex()
	row := func(k, v []byte) error {
		_, pk, err := rec.DecodeIndexEntry(rt.Codec, ri, k, v)
		if err != nil {
			return err
		}
		key, err := rec.PrimaryKey(rt.Codec, pk)
		if err != nil {
			return err
		}
		val, found, err := rt.Txn.Get(rt.Ctx, key)
		if err != nil || !found {
			return err
		}
		return deliver(key, val)
	}
	return readSpan(rt, s.Kind == planner.PointRead, start, end, row)
}

func runSort(rt *Runtime, p *planner.Sort, emit Emit) error {
	var rows [][]value.Value
	var keyVals [][]value.Value
	err := run(rt, p.Input, func(row []value.Value) error {
		k := make([]value.Value, len(p.Keys))
		for i, sk := range p.Keys {
			v, err := rt.eval(sk.E, row)
			if err != nil {
				return err
			}
			k[i] = v
		}
		if err := rt.hold(row, 0); err != nil {
			return err
		}
		rows = append(rows, row)
		keyVals = append(keyVals, k)
		return nil
	})
	if err != nil {
		return err
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return compareKeys(p.Keys, keyVals[a], keyVals[b]) })
	for _, i := range idx {
		if err := emit(rows[i]); err != nil {
			return err
		}
	}
	return nil
}

func limitValue(rt *Runtime, e expr.Expr, what string) (int64, bool, error) {
	if e == nil {
		return 0, false, nil
	}
	v, err := rt.eval(e, nil)
	if err != nil {
		return 0, false, err
	}
	if v.Kind() == value.KindNull {
		return 0, false, nil
	}
	n := int64(v.(value.Int))
	if n < 0 {
		return 0, false, pgerror.New("2201W", "%s must not be negative", what)
	}
	return n, true, nil
}

func runLimit(rt *Runtime, p *planner.Limit, emit Emit) error {
	count, hasCount, err := limitValue(rt, p.Count, "LIMIT")
	if err != nil {
		return err
	}
	offset, _, err := limitValue(rt, p.Offset, "OFFSET")
	if err != nil {
		return err
	}
	if hasCount && count == 0 {
		return nil
	}
	var seen, sent int64
	err = run(rt, p.Input, func(row []value.Value) error {
		seen++
		if seen <= offset {
			return nil
		}
		if err := emit(row); err != nil {
			return err
		}
		sent++
		if hasCount && sent >= count {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// KeyText renders key columns of a row as PostgreSQL's unique-violation
// details do: "(a, b)=(1, x)".
func KeyText(t *catalog.Table, cols []int, row []value.Value) string {
	var names, vals []string
	for _, c := range cols {
		names = append(names, t.Columns[c].Name)
		vals = append(vals, string(types.AppendText(nil, t.Columns[c].Type, row[c])))
	}
	return fmt.Sprintf("(%s)=(%s)", strings.Join(names, ", "), strings.Join(vals, ", "))
}

// compareKeys orders two rows' sort key values by keys (direction and
// NULLS FIRST/LAST).
func compareKeys(keys []planner.SortKey, x, y []value.Value) int {
	for i, sk := range keys {
		xn, yn := x[i].Kind() == value.KindNull, y[i].Kind() == value.KindNull
		var c int
		switch {
		case xn && yn:
			c = 0
		case xn || yn:
			c = 1
			if xn == sk.NullsFirst {
				c = -1
			}
		default:
			c = value.Compare(x[i], y[i])
			if sk.Desc {
				c = -c
			}
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
