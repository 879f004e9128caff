package executor

import (
	"errors"

	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/expr"
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
	rt = rt.rootRuntime()
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

// rowSet remembers the rows seen, by value, against the statement's
// memory limit.
type rowSet map[string]bool

// add reports whether row is new, remembering it.
func (s rowSet) add(rt *Runtime, row []value.Value) (bool, error) {
	k := groupKey(row)
	if s[k] {
		return false, nil
	}
	if err := rt.hold(nil, int64(len(k))); err != nil {
		return false, err
	}
	s[k] = true
	return true, nil
}

// runDistinct passes each distinct row once, in input order.
func runDistinct(rt *Runtime, p *planner.Distinct, emit Emit) error {
	seen := rowSet{}
	return run(rt, p.Input, func(row []value.Value) error {
		key := row
		if p.Keys != nil {
			key = make([]value.Value, len(p.Keys))
			for i, c := range p.Keys {
				key[i] = row[c]
			}
		}
		if isNew, err := seen.add(rt, key); err != nil || !isNew {
			return err
		}
		return emit(row)
	})
}

// runSetOp runs UNION, INTERSECT and EXCEPT. UNION ALL streams; the others
// count the right side's rows by value, then filter the left side.
func runSetOp(rt *Runtime, p *planner.SetOp, emit Emit) error {
	if p.Op == "UNION" {
		seen := rowSet{}
		pass := func(row []value.Value) error {
			if !p.All {
				if isNew, err := seen.add(rt, row); err != nil || !isNew {
					return err
				}
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

// subqueryRows materializes at most limit rows (0: all) of an
// uncorrelated subquery, once per statement.
type subqueryRows struct {
	rows [][]value.Value
}

// runSubquery is expr.Env's Subquery: it runs s's plan with env's row as
// the innermost outer row. An uncorrelated subquery runs once per
// statement (EXISTS keeps one row, a scalar subquery two, ANY/ALL all of
// them, held against the statement's memory limit).
func (rt *Runtime) runSubquery(s *expr.Subquery, env *expr.Env, each func([]value.Value) (bool, error)) error {
	p := s.Plan.(planner.Plan)
	sub := &Runtime{Ctx: rt.Ctx, Txn: rt.Txn, Codec: rt.Codec, MemLimit: rt.MemLimit, root: rt.rootRuntime()}
	sub.Env = *env
	sub.Env.Row = nil
	sub.Env.Outer = append(env.Outer[:len(env.Outer):len(env.Outer)], env.Row)
	sub.Env.Subquery = sub.runSubquery
	defer func() { sub.root.RowsRead += sub.RowsRead }()
	if s.Correlated {
		err := run(sub, p, func(row []value.Value) error {
			more, err := each(row)
			if err == nil && !more {
				err = errStop
			}
			return err
		})
		if errors.Is(err, errStop) {
			err = nil
		}
		return err
	}
	root := sub.root
	cached, ok := root.subCache[s]
	if !ok {
		limit := 0
		switch s.Kind {
		case expr.Exists:
			limit = 1
		case expr.Scalar:
			limit = 2
		}
		cached = &subqueryRows{}
		err := run(sub, p, func(row []value.Value) error {
			if err := root.hold(row, 0); err != nil {
				return err
			}
			cached.rows = append(cached.rows, row)
			if limit > 0 && len(cached.rows) >= limit {
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		if root.subCache == nil {
			root.subCache = map[*expr.Subquery]*subqueryRows{}
		}
		root.subCache[s] = cached
	}
	for _, row := range cached.rows {
		more, err := each(row)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// rootRuntime is the statement's outermost runtime, which keeps the
// memory count and the uncorrelated subqueries' rows.
func (rt *Runtime) rootRuntime() *Runtime {
	if rt.root != nil {
		return rt.root
	}
	return rt
}

// runRecursive runs WITH RECURSIVE: the initial rows, then rounds of the
// step over the previous round's rows until one adds nothing. Every row
// kept counts against the statement's memory limit, which also ends a
// recursion that never would (53200).
func runRecursive(rt *Runtime, p *planner.RecursiveCTE, emit Emit) error {
	root := rt.rootRuntime()
	seen := rowSet{}
	var next [][]value.Value
	keep := func(row []value.Value) error {
		if !p.All {
			if isNew, err := seen.add(rt, row); err != nil || !isNew {
				return err
			}
		}
		if err := rt.hold(row, 0); err != nil {
			return err
		}
		next = append(next, row)
		return emit(row)
	}
	if err := run(rt, p.Init, keep); err != nil {
		return err
	}
	if root.work == nil {
		root.work = map[*planner.RecursiveCTE][][]value.Value{}
	}
	for len(next) > 0 {
		if err := rt.Ctx.Err(); err != nil {
			return err
		}
		root.work[p], next = next, nil
		if err := run(rt, p.Step, keep); err != nil {
			return err
		}
	}
	delete(root.work, p)
	return nil
}

// runWorkTable emits the previous round of a recursive query.
func runWorkTable(rt *Runtime, p *planner.WorkTable, emit Emit) error {
	for _, row := range rt.rootRuntime().work[p.CTE] {
		if err := emit(row); err != nil {
			return err
		}
	}
	return nil
}
