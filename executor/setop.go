package executor

import (
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/value"
)

// DefaultQueryMemory bounds the rows one statement holds at once in
// sorts, aggregations, DISTINCT and set operations, when the runtime sets
// no limit of its own.
const DefaultQueryMemory = 256 << 20

// rowOverhead approximates the bookkeeping a held row costs beyond its
// values (slice headers, map entries).
const rowOverhead = 64

// valueSize approximates the memory one held value takes.
func valueSize(v value.Value) int64 {
	switch x := v.(type) {
	case value.Text:
		return 16 + int64(len(x))
	case value.Bytes:
		return 24 + int64(len(x))
	case value.JSONB:
		return 24 + int64(len(x))
	case value.Numeric:
		return 48
	}
	return 16
}

// hold accounts for a row a statement keeps in memory; past the limit
// the statement fails with 53200 rather than the server running out.
func (rt *Runtime) hold(row []value.Value, extra int64) error {
	n := int64(rowOverhead) + extra
	for _, v := range row {
		n += valueSize(v)
	}
	rt.memUsed += n
	limit := rt.MemLimit
	if limit <= 0 {
		limit = DefaultQueryMemory
	}
	if rt.memUsed > limit {
		return pgerror.New(pgerror.CodeOutOfMemory, "out of memory").
			WithDetail("The statement's sorts, groups and distinct rows need more than %d MB (shaledb.query_memory_limit).", limit>>20)
	}
	return nil
}

// runDistinct passes each distinct row once, in input order.
func runDistinct(rt *Runtime, p *planner.Distinct, emit Emit) error {
	seen := map[string]bool{}
	return run(rt, p.Input, func(row []value.Value) error {
		k := groupKey(row)
		if seen[k] {
			return nil
		}
		if err := rt.hold(nil, int64(len(k))); err != nil {
			return err
		}
		seen[k] = true
		return emit(row)
	})
}

// runSetOp runs UNION, INTERSECT and EXCEPT. UNION ALL streams; the others
// count the right side's rows by value, then filter the left side.
func runSetOp(rt *Runtime, p *planner.SetOp, emit Emit) error {
	if p.Op == "UNION" {
		seen := map[string]bool{}
		pass := func(row []value.Value) error {
			if !p.All {
				k := groupKey(row)
				if seen[k] {
					return nil
				}
				if err := rt.hold(nil, int64(len(k))); err != nil {
					return err
				}
				seen[k] = true
			}
			return emit(row)
		}
		if err := run(rt, p.L, pass); err != nil {
			return err
		}
		return run(rt, p.R, pass)
	}
	right := map[string]int{}
	err := run(rt, p.R, func(row []value.Value) error {
		k := groupKey(row)
		if _, ok := right[k]; !ok {
			if err := rt.hold(nil, int64(len(k))); err != nil {
				return err
			}
		}
		right[k]++
		return nil
	})
	if err != nil {
		return err
	}
	done := map[string]bool{} // rows already emitted, without ALL
	return run(rt, p.L, func(row []value.Value) error {
		k := groupKey(row)
		n, inRight := right[k]
		switch {
		case p.Op == "INTERSECT" && p.All:
			if n == 0 {
				return nil
			}
			right[k] = n - 1
		case p.Op == "INTERSECT":
			if !inRight || done[k] {
				return nil
			}
			done[k] = true
		case p.All: // EXCEPT ALL
			if n > 0 {
				right[k] = n - 1
				return nil
			}
		default: // EXCEPT
			if inRight || done[k] {
				return nil
			}
			if err := rt.hold(nil, int64(len(k))); err != nil {
				return err
			}
			done[k] = true
		}
		return emit(row)
	})
}
