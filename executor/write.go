package executor

import (
	"bytes"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/expr"

	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/record"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// writer writes rows of one table with their index entries.
type writer struct {
	rt  *Runtime
	t   *catalog.Table
	rec *record.Table
}

func newWriter(rt *Runtime, t *catalog.Table) *writer {
	return &writer{rt: rt, t: t, rec: t.Record()}
}

// prepare fits a new row to its columns: modifiers and NOT NULL.
func (w *writer) prepare(row []value.Value) error {
	for i, c := range w.t.Columns {
		v, err := types.Coerce(c.Type, row[i])
		if err != nil {
			return err
		}
		if (c.NotNull || c.Validating) && v.Kind() == value.KindNull {
			return pgerror.New(pgerror.CodeNotNullViolation, "null value in column %q of relation %q violates not-null constraint", c.Name, w.t.Name).
				WithDetail("Failing row contains %s.", rowText(w.t, row))
		}
		row[i] = v
	}
	return nil
}

func rowText(t *catalog.Table, row []value.Value) string {
	var b []byte
	b = append(b, '(')
	first := true
	for i, c := range t.Columns {
		if c.Hidden {
			continue
		}
		if !first {
			b = append(b, ", "...)
		}
		first = false
		if row[i].Kind() == value.KindNull {
			b = append(b, "null"...)
		} else {
			b = types.AppendText(b, c.Type, row[i])
		}
	}
	return string(append(b, ')'))
}

func (w *writer) duplicate(idx *catalog.Index, row []value.Value) error {
	return pgerror.New(pgerror.CodeUniqueViolation, "duplicate key value violates unique constraint %q", idx.Name).
		WithDetail("Key %s already exists.", KeyText(w.t, w.t.Positions(idx), row))
}

// exists reports whether a row with this primary key exists.
func (w *writer) exists(key []byte) (bool, error) {
	_, found, err := w.rt.Txn.Get(w.rt.Ctx, key)
	return found, err
}

// entryExists reports whether an index entry exists. With lock set (the
// row was locked: the entry belongs to it) or for an index being built,
// it locks the entry and reads its latest committed value, not the
// snapshot's. The row's lock orders its writers, and the backfill locks
// the entries it writes too, so an entry that another writer or the
// backfill committed after this transaction's snapshot neither fails it
// with a write conflict nor escapes it (storage accounting included).
func (w *writer) entryExists(idx *catalog.Index, key []byte, lock bool) (bool, error) {
	if lt, ok := w.rt.Txn.(kvcluster.LockingTxn); ok && (lock || idx.Building) {
		_, found, err := lt.LockForUpdate(w.rt.Ctx, key)
		return found, err
	}
	return w.exists(key)
}

// insert writes a new row; skip reports a conflict left alone by ON
// CONFLICT DO NOTHING.
func (w *writer) insert(row []value.Value, doNothing bool) (skip bool, err error) {
	key, val, err := w.rec.EncodeRow(w.rt.Codec, row)
	if err != nil {
		return false, err
	}
	hiddenKey := w.t.Columns[w.t.ColumnPos(w.t.Primary.Columns[0].Column)].Hidden
	if !hiddenKey {
		found, err := w.exists(key)
		if err != nil {
			return false, err
		}
		if found {
			if doNothing {
				return true, nil
			}
			return false, w.duplicate(&w.t.Primary, row)
		}
	}
	type entry struct{ k, v []byte }
	var entries []entry
	for i := range w.t.Indexes {
		idx := &w.t.Indexes[i]
		k, v, err := w.rec.EncodeIndexEntry(w.rt.Codec, idx.RecordIndex(), row)
		if err != nil {
			return false, err
		}
		if idx.Building || idx.Unique && len(v) > 0 {
			found, err := w.entryExists(idx, k, false)
			if err != nil {
				return false, err
			}
			if found && idx.Unique && len(v) > 0 {
				if doNothing {
					return true, nil
				}
				return false, w.duplicate(idx, row)
			}
		}
		entries = append(entries, entry{k, v})
	}
	if err := w.rt.Txn.Put(w.rt.Ctx, key, val); err != nil {
		return false, err
	}
	for _, e := range entries {
		if err := w.rt.Txn.Put(w.rt.Ctx, e.k, e.v); err != nil {
			return false, err
		}
	}
	return false, nil
}

// remove deletes a row and its index entries.
func (w *writer) remove(row []value.Value) error {
	key, _, err := w.rec.EncodeRow(w.rt.Codec, row)
	if err != nil {
		return err
	}
	if err := w.rt.Txn.Delete(w.rt.Ctx, key); err != nil {
		return err
	}
	for i := range w.t.Indexes {
		k, _, err := w.rec.EncodeIndexEntry(w.rt.Codec, w.t.Indexes[i].RecordIndex(), row)
		if err != nil {
			return err
		}
		if _, err := w.entryExists(&w.t.Indexes[i], k, true); err != nil {
			return err
		}
		if err := w.rt.Txn.Delete(w.rt.Ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// replace turns old into new, moving the row if its key changed and
// index entries whose keys changed, checking uniqueness on the way.
func (w *writer) replace(old, new []value.Value) error {
	oldKey, _, err := w.rec.EncodeRow(w.rt.Codec, old)
	if err != nil {
		return err
	}
	newKey, newVal, err := w.rec.EncodeRow(w.rt.Codec, new)
	if err != nil {
		return err
	}
	if !bytes.Equal(oldKey, newKey) {
		found, err := w.exists(newKey)
		if err != nil {
			return err
		}
		if found {
			return w.duplicate(&w.t.Primary, new)
		}
		if err := w.rt.Txn.Delete(w.rt.Ctx, oldKey); err != nil {
			return err
		}
	}
	for i := range w.t.Indexes {
		ri := w.t.Indexes[i].RecordIndex()
		ok, _, err := w.rec.EncodeIndexEntry(w.rt.Codec, ri, old)
		if err != nil {
			return err
		}
		nk, nv, err := w.rec.EncodeIndexEntry(w.rt.Codec, ri, new)
		if err != nil {
			return err
		}
		if bytes.Equal(ok, nk) && bytes.Equal(oldKey, newKey) {
			continue
		}
		if _, err := w.entryExists(&w.t.Indexes[i], ok, true); err != nil {
			return err
		}
		found, err := w.entryExists(&w.t.Indexes[i], nk, true)
		if err != nil {
			return err
		}
		if found && ri.Unique && len(nv) > 0 && !bytes.Equal(ok, nk) {
			return w.duplicate(&w.t.Indexes[i], new)
		}
		if err := w.rt.Txn.Delete(w.rt.Ctx, ok); err != nil {
			return err
		}
		if err := w.rt.Txn.Put(w.rt.Ctx, nk, nv); err != nil {
			return err
		}
	}
	return w.rt.Txn.Put(w.rt.Ctx, newKey, newVal)
}

func runInsert(rt *Runtime, p *planner.Insert, emit Emit) (int64, error) {
	w := newWriter(rt, p.Table)
	var n int64
	updated := map[string]bool{} // rows ON CONFLICT DO UPDATE changed
	err := run(rt, p.Source, func(row []value.Value) error {
		if err := w.prepare(row); err != nil {
			return err
		}
		if p.OnConflict != nil {
			out, done, err := w.upsert(p.OnConflict, row, updated)
			if err != nil || !done {
				return err
			}
			if out == nil {
				return nil // the conflict's WHERE said no
			}
			row = out
		} else {
			skip, err := w.insert(row, p.OnConflictDoNothing)
			if err != nil || skip {
				return err
			}
		}
		n++
		if p.Returning != nil {
			out, err := rt.evalAll(p.Returning, row)
			if err != nil {
				return err
			}
			return emit(out)
		}
		return nil
	})
	return n, err
}

// upsert inserts row or, when it conflicts on the arbiter index, updates
// the existing row (locked first) as cu says. done reports that the row
// was handled; out is the row written, nil when the conflict's WHERE
// left the existing row alone. Updating one row twice in a statement is
// 21000, as in PostgreSQL.
func (w *writer) upsert(cu *planner.ConflictUpdate, row []value.Value, updated map[string]bool) (out []value.Value, done bool, err error) {
	key, found, err := w.arbiterConflict(cu, row)
	if err != nil {
		return nil, false, err
	}
	if !found {
		return w.insertTracked(row, updated)
	}
	if updated[string(key)] {
		return nil, false, pgerror.New(pgerror.CodeCardinalityViolation, "ON CONFLICT DO UPDATE command cannot affect row a second time").
			WithHint("Ensure that no rows proposed for insertion within the same command have duplicate constrained values.")
	}
	var val []byte
	if lt, ok := w.rt.Txn.(kvcluster.LockingTxn); ok {
		val, found, err = lt.LockForUpdate(w.rt.Ctx, key)
	} else {
		val, found, err = w.rt.Txn.Get(w.rt.Ctx, key)
	}
	if err != nil {
		return nil, false, err
	}
	if !found {
		// Deleted since the conflict was seen: insert after all.
		return w.insertTracked(row, updated)
	}
	existing, err := w.rec.DecodeRow(w.rt.Codec, key, val)
	if err != nil {
		return nil, false, err
	}
	combined := concatRow(existing, row)
	if cu.Where != nil {
		ok, err := w.rt.matches(cu.Where, combined)
		if err != nil || !ok {
			return nil, err == nil, err
		}
	}
	vals, err := w.rt.evalAll(cu.Sets, combined)
	if err != nil {
		return nil, false, err
	}
	nw := append([]value.Value(nil), existing...)
	for i, col := range cu.Targets {
		nw[col] = vals[i]
	}
	if err := w.prepare(nw); err != nil {
		return nil, false, err
	}
	if err := w.replace(existing, nw); err != nil {
		return nil, false, err
	}
	nk, _, err := w.rec.EncodeRow(w.rt.Codec, nw)
	if err != nil {
		return nil, false, err
	}
	updated[string(nk)] = true
	return nw, true, nil
}

// insertTracked inserts row and remembers its key: a later row of the
// same statement conflicting with it is 21000, as an update would be.
func (w *writer) insertTracked(row []value.Value, seen map[string]bool) ([]value.Value, bool, error) {
	if _, err := w.insert(row, false); err != nil {
		return nil, false, err
	}
	k, _, err := w.rec.EncodeRow(w.rt.Codec, row)
	if err != nil {
		return nil, false, err
	}
	seen[string(k)] = true
	return row, true, nil
}

// arbiterConflict finds the row that row conflicts with on the arbiter
// index, returning its primary key.
func (w *writer) arbiterConflict(cu *planner.ConflictUpdate, row []value.Value) ([]byte, bool, error) {
	if cu.Primary {
		key, _, err := w.rec.EncodeRow(w.rt.Codec, row)
		if err != nil {
			return nil, false, err
		}
		found, err := w.exists(key)
		return key, found, err
	}
	ri := cu.Arbiter.RecordIndex()
	k, v, err := w.rec.EncodeIndexEntry(w.rt.Codec, ri, row)
	if err != nil || len(v) == 0 {
		return nil, false, err // a NULL in the key conflicts with nothing
	}
	cur, found, err := w.rt.Txn.Get(w.rt.Ctx, k)
	if err != nil || !found {
		return nil, false, err
	}
	_, pk, err := w.rec.DecodeIndexEntry(w.rt.Codec, ri, k, cur)
	if err != nil {
		return nil, false, err
	}
	key, err := w.rec.PrimaryKey(w.rt.Codec, pk)
	return key, err == nil, err
}

// collect reads every row a DML scan selects before anything is written,
// so a write never feeds back into the scan that found it. When the
// transaction can lock rows, each row is then locked and, if another
// transaction changed it since the snapshot, replaced by its latest
// version when that still matches the WHERE clause (and dropped when it
// does not, or was deleted): PostgreSQL's read-committed UPDATE, which
// waits for the row's lock instead of failing with 40001.
// targetRows reads, locked, the rows an UPDATE or DELETE changes: from its
// scan, or from its join with FROM/USING items.
func targetRows(rt *Runtime, scan *planner.Scan, source planner.Plan, t *catalog.Table) ([][]value.Value, error) {
	if source != nil {
		return collectJoined(rt, source, t)
	}
	return collect(rt, scan)
}

// collectJoined reads the rows UPDATE … FROM or DELETE … USING changes:
// each target row once (with the first row it joined), locked, at its
// latest version.
func collectJoined(rt *Runtime, src planner.Plan, t *catalog.Table) ([][]value.Value, error) {
	nt := len(t.Columns)
	rec := t.Record()
	seen := map[string]bool{}
	var rows [][]value.Value
	err := run(rt, src, func(row []value.Value) error {
		key, _, err := rec.EncodeRow(rt.Codec, row[:nt])
		if err != nil {
			return err
		}
		if seen[string(key)] {
			return nil
		}
		seen[string(key)] = true
		if err := rt.hold(row, int64(len(key))); err != nil {
			return err
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := rows[:0]
	for _, row := range rows {
		target, _, found, err := lockLatest(rt, rec, row[:nt])
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, concatRow(target, row[nt:]))
		}
	}
	return out, nil
}

// collectPoint is collect for a point read whose filter is its key: the
// row is read at the snapshot and locked in one step (one request to a
// cluster's leader), which is what reading it and then locking it does
// when every row the key finds passes the filter.
func collectPoint(rt *Runtime, s *planner.Scan, lt kvcluster.LockingTxn) ([][]value.Value, error) {
	key, _, empty, err := span(rt, s)
	if err != nil || empty {
		return nil, err
	}
	_, found, latest, latestFound, err := kvcluster.GetAndLock(rt.Ctx, lt, key)
	if err != nil || !found {
		return nil, err
	}
	rt.RowsRead++
	if !latestFound {
		return nil, nil // deleted since the snapshot
	}
	row, err := s.Table.Record().DecodeRow(rt.Codec, key, latest)
	if err != nil {
		return nil, err
	}
	if s.Filter != nil { // the key's equalities: true, checked all the same
		if ok, err := rt.eval(s.Filter, row); err != nil || !expr.Truthy(ok) {
			return nil, err
		}
	}
	return [][]value.Value{row}, nil
}

// lockLatest locks a row for update (when the transaction can) and
// returns its latest committed version, whether that differs from row,
// and whether it still exists.
func lockLatest(rt *Runtime, rec *record.Table, row []value.Value) ([]value.Value, bool, bool, error) {
	lt, ok := rt.Txn.(kvcluster.LockingTxn)
	if !ok {
		return row, false, true, nil
	}
	key, val, err := rec.EncodeRow(rt.Codec, row)
	if err != nil {
		return nil, false, false, err
	}
	latest, found, err := lt.LockForUpdate(rt.Ctx, key)
	if err != nil || !found {
		return nil, false, false, err // deleted since the snapshot
	}
	if bytes.Equal(latest, val) {
		return row, false, true, nil
	}
	row, err = rec.DecodeRow(rt.Codec, key, latest)
	return row, true, err == nil, err
}

func collect(rt *Runtime, s *planner.Scan) ([][]value.Value, error) {
	if lt, ok := rt.Txn.(kvcluster.LockingTxn); ok && s.Kind == planner.PointRead && s.KeyOnly && s.Index == nil && s.Table.Virtual == nil {
		return collectPoint(rt, s, lt)
	}
	var rows [][]value.Value
	err := scan(rt, s, func(row []value.Value) error {
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	rec := s.Table.Record()
	out := rows[:0]
	for _, row := range rows {
		row, changed, found, err := lockLatest(rt, rec, row)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		if changed && s.Filter != nil {
			// The row changed since the snapshot: it must still match.
			ok, err := rt.eval(s.Filter, row)
			if err != nil {
				return nil, err
			}
			if !expr.Truthy(ok) {
				continue
			}
		}
		out = append(out, row)
	}
	return out, nil
}

func runUpdate(rt *Runtime, p *planner.Update, emit Emit) (int64, error) {
	rows, err := targetRows(rt, p.Scan, p.Source, p.Table)
	if err != nil {
		return 0, err
	}
	w := newWriter(rt, p.Table)
	nt := len(p.Table.Columns)
	for _, combined := range rows {
		old := combined[:nt]
		vals, err := rt.evalAll(p.Sets, combined)
		if err != nil {
			return 0, err
		}
		nw := append([]value.Value(nil), old...)
		for i, col := range p.Targets {
			nw[col] = vals[i]
		}
		if err := w.prepare(nw); err != nil {
			return 0, err
		}
		if err := w.replace(old, nw); err != nil {
			return 0, err
		}
		if p.Returning != nil {
			out, err := rt.evalAll(p.Returning, concatRow(nw, combined[nt:]))
			if err != nil {
				return 0, err
			}
			if err := emit(out); err != nil {
				return 0, err
			}
		}
	}
	return int64(len(rows)), nil
}

func runDelete(rt *Runtime, p *planner.Delete, emit Emit) (int64, error) {
	rows, err := targetRows(rt, p.Scan, p.Source, p.Table)
	if err != nil {
		return 0, err
	}
	w := newWriter(rt, p.Table)
	nt := len(p.Table.Columns)
	for _, row := range rows {
		if err := w.remove(row[:nt]); err != nil {
			return 0, err
		}
		if p.Returning != nil {
			out, err := rt.evalAll(p.Returning, row)
			if err != nil {
				return 0, err
			}
			if err := emit(out); err != nil {
				return 0, err
			}
		}
	}
	return int64(len(rows)), nil
}
