package executor

import (
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/expr"
	"github.com/shaledb/shaledb/sql/value"
)

func nulls(n int) []value.Value {
	out := make([]value.Value, n)
	for i := range out {
		out[i] = value.Null{}
	}
	return out
}

func concatRow(l, r []value.Value) []value.Value {
	out := make([]value.Value, 0, len(l)+len(r))
	return append(append(out, l...), r...)
}

// matches evaluates a join's condition on a combined row.
func (rt *Runtime) matches(cond expr.Expr, row []value.Value) (bool, error) {
	if cond == nil {
		return true, nil
	}
	v, err := rt.eval(cond, row)
	return err == nil && expr.Truthy(v), err
}

func runJoin(rt *Runtime, j *planner.Join, emit Emit) error {
	if j.Lookup {
		return runLookupJoin(rt, j, emit)
	}
	return runHashJoin(rt, j, emit)
}

// runLookupJoin reads the right table once per left row, by the primary
// key the left row fixes (an index nested-loop join).
func runLookupJoin(rt *Runtime, j *planner.Join, emit Emit) error {
	nr := len(j.R.Columns())
	root := rt.rootRuntime()
	return run(rt, j.L, func(l []value.Value) error {
		sub := &Runtime{Ctx: rt.Ctx, Txn: rt.Txn, Codec: rt.Codec, MemLimit: rt.MemLimit, root: root, Env: rt.Env}
		sub.Env.Row = nil
		sub.Env.Outer = append(rt.Env.Outer[:len(rt.Env.Outer):len(rt.Env.Outer)], l)
		matched := false
		err := run(sub, j.R, func(r []value.Value) error {
			row := concatRow(l, r)
			ok, err := rt.matches(j.Cond, row)
			if err != nil || !ok {
				return err
			}
			matched = true
			return emit(row)
		})
		root.RowsRead += sub.RowsRead
		if err != nil {
			return err
		}
		if !matched && j.Kind == planner.LeftJoin {
			return emit(concatRow(l, nulls(nr)))
		}
		return nil
	})
}

// runHashJoin hashes the right side's rows by their join keys, then
// probes with each left row; without keys every pair is compared. Outer
// joins emit unmatched rows with NULLs for the other side.
func runHashJoin(rt *Runtime, j *planner.Join, emit Emit) error {
	nl, nr := len(j.L.Columns()), len(j.R.Columns())
	var rights [][]value.Value
	buckets := map[string][]int{}
	err := run(rt, j.R, func(r []value.Value) error {
		if err := rt.hold(r, 16); err != nil {
			return err
		}
		idx := len(rights)
		rights = append(rights, r)
		if len(j.RightKeys) == 0 {
			buckets[""] = append(buckets[""], idx)
			return nil
		}
		probe := concatRow(nulls(nl), r)
		key, err := rt.evalAll(j.RightKeys, probe)
		if err != nil {
			return err
		}
		for _, k := range key {
			if k.Kind() == value.KindNull {
				return nil // NULL equals nothing
			}
		}
		k := groupKey(key)
		buckets[k] = append(buckets[k], idx)
		return nil
	})
	if err != nil {
		return err
	}
	matchedRight := make([]bool, len(rights))
	err = run(rt, j.L, func(l []value.Value) error {
		var cands []int
		if len(j.LeftKeys) == 0 {
			cands = buckets[""]
		} else {
			key, err := rt.evalAll(j.LeftKeys, l)
			if err != nil {
				return err
			}
			null := false
			for _, k := range key {
				null = null || k.Kind() == value.KindNull
			}
			if !null {
				cands = buckets[groupKey(key)]
			}
		}
		matched := false
		for _, ri := range cands {
			row := concatRow(l, rights[ri])
			ok, err := rt.matches(j.Cond, row)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			matched, matchedRight[ri] = true, true
			if err := emit(row); err != nil {
				return err
			}
		}
		if !matched && (j.Kind == planner.LeftJoin || j.Kind == planner.FullJoin) {
			return emit(concatRow(l, nulls(nr)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if j.Kind == planner.RightJoin || j.Kind == planner.FullJoin {
		for i, r := range rights {
			if !matchedRight[i] {
				if err := emit(concatRow(nulls(nl), r)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
