// Package record maps table rows and their index entries to key/value pairs
// under a tenant's prefix, and back. It is the only code that knows how a
// row is laid out in the KV store.
//
// A row is stored once, in its table's primary index:
//
//	key   <tenant> <table> <index 1> <primary key columns, key-encoded>
//	value the other columns, row-encoded by column id
//
// and once more per secondary index:
//
//	non-unique, or unique with a NULL in its columns:
//	  key   <tenant> <table> <index> <index columns> <primary key columns>
//	  value empty
//	unique, no NULL:
//	  key   <tenant> <table> <index> <index columns>
//	  value <primary key columns, key-encoded>
//
// Unique entries without NULLs are keyed by the index columns alone, so a
// second row with the same values collides on the key, which is how
// uniqueness is enforced; with a NULL, PostgreSQL allows duplicates, and the
// primary key makes each entry distinct.
package record

import (
	"errors"
	"fmt"

	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/value"
)

// Column describes one column of a table.
type Column struct {
	ID   encoding.ColumnID
	Name string
	Kind value.Kind
	// Missing is the value of this column in rows written before it was
	// added (ALTER TABLE ADD COLUMN … DEFAULT); nil means NULL.
	Missing value.Value
}

// IndexColumn is one column of an index, with its sort direction.
type IndexColumn struct {
	Column encoding.ColumnID
	Dir    encoding.Direction
}

// Index describes the primary or a secondary index.
type Index struct {
	ID      keys.IndexID
	Columns []IndexColumn
	Unique  bool
}

// Table describes one table: enough to encode and decode its rows.
type Table struct {
	ID      keys.TableID
	Columns []Column // in column id order
	Primary Index    // keys.PrimaryIndexID unless the table was re-keyed
}

// ErrRow wraps errors about a row that does not fit its table.
var ErrRow = errors.New("record: row does not fit table")

// Validate checks the descriptor's invariants.
func (t *Table) Validate() error {
	if t.Primary.ID == 0 || len(t.Primary.Columns) == 0 {
		return fmt.Errorf("record: table %d: the primary index needs an id and columns", t.ID)
	}
	for i := range t.Columns {
		if t.Columns[i].ID == 0 || i > 0 && t.Columns[i].ID <= t.Columns[i-1].ID {
			return fmt.Errorf("record: table %d: column ids must be positive and increasing", t.ID)
		}
	}
	for _, ic := range t.Primary.Columns {
		if t.position(ic.Column) < 0 {
			return fmt.Errorf("record: table %d: primary key column %d does not exist", t.ID, ic.Column)
		}
	}
	return nil
}

// position returns the index in t.Columns of column id, or -1.
func (t *Table) position(id encoding.ColumnID) int {
	for i := range t.Columns {
		if t.Columns[i].ID == id {
			return i
		}
	}
	return -1
}

func (t *Table) inPrimaryKey(id encoding.ColumnID) bool {
	for _, ic := range t.Primary.Columns {
		if ic.Column == id {
			return true
		}
	}
	return false
}

// checkRow verifies a row has one value per column, each of its column's
// kind or NULL.
func (t *Table) checkRow(row []value.Value) error {
	if len(row) != len(t.Columns) {
		return fmt.Errorf("%w: %d values for %d columns", ErrRow, len(row), len(t.Columns))
	}
	for i, v := range row {
		if v.Kind() != value.KindNull && v.Kind() != t.Columns[i].Kind {
			return fmt.Errorf("%w: column %q is %s, got %s", ErrRow, t.Columns[i].Name, t.Columns[i].Kind, v.Kind())
		}
	}
	return nil
}

func (t *Table) appendIndexColumns(key []byte, row []value.Value, cols []IndexColumn) ([]byte, error) {
	for _, ic := range cols {
		var err error
		key, err = encoding.AppendKey(key, row[t.position(ic.Column)], ic.Dir)
		if err != nil {
			return nil, fmt.Errorf("record: table %d column %d: %w", t.ID, ic.Column, err)
		}
	}
	return key, nil
}

// PrimaryKey returns the key of the row whose primary key columns hold
// pk (in primary key order).
func (t *Table) PrimaryKey(c keys.Codec, pk []value.Value) ([]byte, error) {
	if len(pk) != len(t.Primary.Columns) {
		return nil, fmt.Errorf("%w: %d primary key values for %d columns", ErrRow, len(pk), len(t.Primary.Columns))
	}
	key := c.IndexPrefix(t.ID, t.Primary.ID)
	for i, ic := range t.Primary.Columns {
		var err error
		if key, err = encoding.AppendKey(key, pk[i], ic.Dir); err != nil {
			return nil, fmt.Errorf("record: table %d primary key: %w", t.ID, err)
		}
	}
	return key, nil
}

// EncodeRow returns the primary index entry of row (one value per column,
// in column order).
func (t *Table) EncodeRow(c keys.Codec, row []value.Value) (key, val []byte, err error) {
	if err := t.checkRow(row); err != nil {
		return nil, nil, err
	}
	for _, ic := range t.Primary.Columns {
		if row[t.position(ic.Column)].Kind() == value.KindNull {
			return nil, nil, fmt.Errorf("%w: primary key column %d is NULL", ErrRow, ic.Column)
		}
	}
	key, err = t.appendIndexColumns(c.IndexPrefix(t.ID, t.Primary.ID), row, t.Primary.Columns)
	if err != nil {
		return nil, nil, err
	}
	var prev encoding.ColumnID
	for i, col := range t.Columns {
		if t.inPrimaryKey(col.ID) {
			continue
		}
		val = encoding.AppendRowColumn(val, prev, col.ID, row[i])
		prev = col.ID
	}
	return key, val, nil
}

// DecodeRow rebuilds a row from its primary index entry. Columns the
// stored value lacks take their Missing value; stored columns the table no
// longer has are skipped.
func (t *Table) DecodeRow(c keys.Codec, key, val []byte) ([]value.Value, error) {
	cols, err := c.StripIndexPrefix(key, t.ID, t.Primary.ID)
	if err != nil {
		return nil, err
	}
	row := make([]value.Value, len(t.Columns))
	for _, ic := range t.Primary.Columns {
		var v value.Value
		if v, cols, err = encoding.DecodeKey(cols, ic.Dir); err != nil {
			return nil, fmt.Errorf("record: table %d primary key: %w", t.ID, err)
		}
		row[t.position(ic.Column)] = v
	}
	if len(cols) != 0 {
		return nil, fmt.Errorf("record: table %d: %d stray bytes after the primary key", t.ID, len(cols))
	}
	err = encoding.DecodeRow(val, func(id encoding.ColumnID, v value.Value) error {
		if p := t.position(id); p >= 0 {
			row[p] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record: table %d row value: %w", t.ID, err)
	}
	for i := range row {
		if row[i] == nil {
			row[i] = t.Columns[i].Missing
			if row[i] == nil {
				row[i] = value.Null{}
			}
		}
	}
	return row, nil
}

// EncodeIndexEntry returns the entry of row in secondary index idx.
func (t *Table) EncodeIndexEntry(c keys.Codec, idx *Index, row []value.Value) (key, val []byte, err error) {
	if err := t.checkRow(row); err != nil {
		return nil, nil, err
	}
	key, err = t.appendIndexColumns(c.IndexPrefix(t.ID, idx.ID), row, idx.Columns)
	if err != nil {
		return nil, nil, err
	}
	pk, err := t.appendIndexColumns(nil, row, t.Primary.Columns)
	if err != nil {
		return nil, nil, err
	}
	if idx.Unique && !hasNull(t, row, idx.Columns) {
		return key, pk, nil
	}
	return append(key, pk...), []byte{}, nil
}

func hasNull(t *Table, row []value.Value, cols []IndexColumn) bool {
	for _, ic := range cols {
		if row[t.position(ic.Column)].Kind() == value.KindNull {
			return true
		}
	}
	return false
}

// DecodeIndexEntry returns the index column values and the primary key
// values of a secondary index entry.
func (t *Table) DecodeIndexEntry(c keys.Codec, idx *Index, key, val []byte) (indexed, pk []value.Value, err error) {
	rest, err := c.StripIndexPrefix(key, t.ID, idx.ID)
	if err != nil {
		return nil, nil, err
	}
	for _, ic := range idx.Columns {
		var v value.Value
		if v, rest, err = encoding.DecodeKey(rest, ic.Dir); err != nil {
			return nil, nil, fmt.Errorf("record: table %d index %d: %w", t.ID, idx.ID, err)
		}
		indexed = append(indexed, v)
	}
	if len(val) > 0 {
		if len(rest) != 0 {
			return nil, nil, fmt.Errorf("record: table %d index %d: unique entry with a key suffix", t.ID, idx.ID)
		}
		rest = val
	}
	for _, ic := range t.Primary.Columns {
		var v value.Value
		if v, rest, err = encoding.DecodeKey(rest, ic.Dir); err != nil {
			return nil, nil, fmt.Errorf("record: table %d index %d primary key: %w", t.ID, idx.ID, err)
		}
		pk = append(pk, v)
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("record: table %d index %d: stray bytes after the primary key", t.ID, idx.ID)
	}
	return indexed, pk, nil
}
