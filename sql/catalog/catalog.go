// Package catalog keeps a tenant's schema — tables, sequences, roles — in
// the tenant's own key span, under the reserved catalog table ids:
//
//	table 1  tables     key: name           value: descriptor (JSON)
//	table 2  counters   key: counter name   value: int64 (big-endian)
//	table 3  roles      key: role name      value: role (JSON)
//	table 4  usage      the tenant's storage accounting (package tenancy)
//
// Descriptors are read and written inside the caller's KvCluster
// transaction, so a schema change commits or aborts with its statement and
// every statement sees the schema of its own snapshot. JSON keeps the
// format evolvable; a descriptor carries a Version bumped on every change,
// which prepared plans compare to know they are stale.
package catalog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/record"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// Catalog table ids, below keys.FirstUserTableID.
const (
	tablesTableID   keys.TableID = 1
	countersTableID keys.TableID = 2
	rolesTableID    keys.TableID = 3
	// UsageTableID holds the tenant's storage accounting, kept by package
	// tenancy; it is the tenant's own, so dropping the tenant drops it.
	UsageTableID keys.TableID = 4
)

// RowIDColumnName is the hidden column keying a table created without a
// primary key.
const RowIDColumnName = "rowid"

// Column is one column of a table.
type Column struct {
	ID      encoding.ColumnID `json:"id"`
	Name    string            `json:"name"`
	Type    types.T           `json:"type"`
	NotNull bool              `json:"not_null,omitempty"`
	// Validating marks a NOT NULL being added online (SET NOT NULL, ADD
	// COLUMN … NOT NULL on a table others write): writes refuse NULL
	// already; NotNull, which catalogs show, is set once every row passed.
	Validating bool `json:"validating,omitempty"`
	// Default is the SQL text of the DEFAULT expression; empty for none.
	Default string `json:"default,omitempty"`
	// Serial columns default to the next value of their sequence.
	Serial bool `json:"serial,omitempty"`
	// Hidden columns (the rowid of a table without a primary key) are not
	// part of SELECT *.
	Hidden bool `json:"hidden,omitempty"`
	// Missing, in text form, is the value rows written before the column
	// was added read for it (ADD COLUMN … DEFAULT); nil for NULL.
	Missing *string `json:"missing,omitempty"`
}

// Index is the primary or a secondary index.
type Index struct {
	ID      keys.IndexID         `json:"id"`
	Name    string               `json:"name"`
	Columns []record.IndexColumn `json:"columns"`
	Unique  bool                 `json:"unique,omitempty"`
	// Constraint marks a UNIQUE constraint's index (not CREATE UNIQUE
	// INDEX): pg_constraint lists it.
	Constraint bool `json:"constraint,omitempty"`
	// Building marks a secondary index an online CREATE INDEX is still
	// filling: every write maintains it (locking its entries, so the
	// backfill and the write are ordered), but no read uses it and no
	// catalog shows it until it is public.
	Building bool `json:"building,omitempty"`
}

// OID is the table's object id in the pg_catalog views and regclass:
// made up but stable, 16384 + the table's id. Virtual tables have none.
func (t *Table) OID() int64 { return 16384 + int64(t.ID) }

// IndexOID is an index's object id: above a million, from the table's and
// the index's ids.
func (t *Table) IndexOID(idx *Index) int64 {
	return 1_000_000 + int64(t.ID)*1000 + int64(idx.ID)
}

// ColumnPos is the position of the column with id, or -1.
func (t *Table) ColumnPos(id encoding.ColumnID) int {
	for i, c := range t.Columns {
		if c.ID == id {
			return i
		}
	}
	return -1
}

// Positions are the table positions of idx's columns, in index order.
func (t *Table) Positions(idx *Index) []int {
	out := make([]int, len(idx.Columns))
	for i, ic := range idx.Columns {
		out[i] = t.ColumnPos(ic.Column)
	}
	return out
}

// PublicIndexes is the primary index followed by the secondary indexes
// that are not being built: what catalogs show and reads may use.
func (t *Table) PublicIndexes() []Index {
	out := make([]Index, 0, 1+len(t.Indexes))
	out = append(out, t.Primary)
	for _, idx := range t.Indexes {
		if !idx.Building {
			out = append(out, idx)
		}
	}
	return out
}

// Table describes one table.
type Table struct {
	ID      keys.TableID `json:"id"`
	Name    string       `json:"name"`
	Version uint64       `json:"version"`
	Columns []Column     `json:"columns"`
	Primary Index        `json:"primary"`
	// Secondary indexes (UNIQUE constraints for now).
	Indexes      []Index           `json:"indexes,omitempty"`
	NextColumnID encoding.ColumnID `json:"next_column_id"`
	NextIndexID  keys.IndexID      `json:"next_index_id"`
	// StorageOptions are WITH (...) options, accepted and kept.
	StorageOptions map[string]string `json:"storage_options,omitempty"`
	// Owner is the role that created the table; Grants the privileges
	// other roles were granted (GRANT), by role name.
	Owner  string                `json:"owner,omitempty"`
	Grants map[string]Privileges `json:"grants,omitempty"`

	// Virtual, set only on system views (never stored), produces the
	// view's rows instead of a key scan.
	Virtual func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error `json:"-"`
}

// ColumnIndex returns the position of the named column, or -1.
func (t *Table) ColumnIndex(name string) int {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return i
		}
	}
	return -1
}

// Record returns the record-layer view of the table.
func (t *Table) Record() *record.Table {
	rt := &record.Table{ID: t.ID, Primary: record.Index{ID: t.Primary.ID, Columns: t.Primary.Columns}}
	for _, c := range t.Columns {
		rc := record.Column{ID: c.ID, Name: c.Name, Kind: c.Type.Kind}
		if c.Missing != nil {
			if v, err := types.ParseText(c.Type, *c.Missing); err == nil {
				rc.Missing = v
			}
		}
		rt.Columns = append(rt.Columns, rc)
	}
	return rt
}

// RecordIndex returns the record-layer view of a secondary index.
func (idx *Index) RecordIndex() *record.Index {
	return &record.Index{ID: idx.ID, Columns: idx.Columns, Unique: idx.Unique}
}

// Catalog reads and writes one tenant's schema inside a transaction. A
// Catalog belongs to one session: Bind tells it the session's current
// transaction.
type Catalog struct {
	codec keys.Codec
	cache *DescriptorCache
	// bound is the transaction Bind was given; snap its schema
	// generation, valid when snapOK; wrote is set once bound writes a
	// descriptor (it must then read its own writes).
	bound  kvcluster.Txn
	snap   uint64
	snapOK bool
	wrote  bool
}

// New returns the catalog of the tenant codec is bound to.
func New(codec keys.Codec) *Catalog { return &Catalog{codec: codec} }

// WithCache returns the catalog decoding descriptors through cache.
func (c *Catalog) WithCache(cache *DescriptorCache) *Catalog {
	return &Catalog{codec: c.codec, cache: cache}
}

// Bind makes txn the catalog's current transaction, with the schema
// generation its snapshot was taken in (from DescriptorCache.Begin).
func (c *Catalog) Bind(txn kvcluster.Txn, snap Snapshot) {
	c.bound, c.snap, c.snapOK, c.wrote = txn, snap.gen, snap.ok, false
}

// DescriptorCache keeps decoded table descriptors, shared by every session
// of a node. Cached descriptors are shared: callers must not modify them
// (copy first, as ALTER does). Safe for concurrent use; bounded.
//
// It has two layers. Decoded descriptors are keyed by their exact stored
// bytes: a changed descriptor, having other bytes, is never served stale.
// Above that, descriptors are keyed by name and schema generation, which
// saves the read itself. The generation is a sequence lock over descriptor
// writes:
//
//   - A transaction's first descriptor write registers it as a writer
//     (inflight rises) before it can commit. When it ends, committed or
//     not, the generation rises, then inflight falls (Ended).
//   - A transaction reads the generation before it takes its snapshot, and
//     both the generation and inflight after (Begin). If no writer was in
//     flight and the generation did not move, no descriptor write
//     committed around the snapshot. The snapshot then sees exactly the
//     schema of that generation, and a name entry filled in the same
//     generation is what a read would return.
//   - Otherwise (or once the transaction writes descriptors itself), reads
//     go to the store.
//
// The generation is node-wide. A descriptor write in one tenant costs every
// tenant one read per table, once.
//
// On a store shared with other nodes (kvcluster.SharedStore) this node's
// generation does not see the others' writes. There the generation is
// the transaction's schema epoch from the store (kvcluster.SchemaTxn),
// and a descriptor writer marks its transaction with WritesSchema, so its
// commit starts a new epoch; the epoch is cluster-wide. A store without
// epochs turns the name layer off.
type DescriptorCache struct {
	mu     sync.RWMutex
	m      map[string]*Table
	byName map[string]namedTable

	// shared: other nodes write descriptors too, and the generation only
	// sees this node's writes; schema epochs stand in for it.
	shared   bool
	gen      atomic.Uint64
	inflight atomic.Int64
	wmu      sync.Mutex
	writers  map[kvcluster.Txn]bool
}

type namedTable struct {
	gen uint64
	t   *Table
}

// Snapshot is the schema generation of a transaction's snapshot.
type Snapshot struct {
	gen uint64
	ok  bool
}

// Begin starts a transaction with begin and returns it with its schema
// generation.
func (dc *DescriptorCache) Begin(begin func() (kvcluster.Txn, error)) (kvcluster.Txn, Snapshot, error) {
	g := dc.gen.Load()
	txn, err := begin()
	if err != nil {
		return nil, Snapshot{}, err
	}
	if dc.shared {
		if st, ok := kvcluster.AsSchemaTxn(txn); ok {
			return txn, Snapshot{gen: st.SchemaEpoch(), ok: true}, nil
		}
		return txn, Snapshot{}, nil
	}
	ok := dc.inflight.Load() == 0 && dc.gen.Load() == g
	return txn, Snapshot{gen: g, ok: ok}, nil
}

// writing registers txn as a descriptor writer.
func (dc *DescriptorCache) writing(txn kvcluster.Txn) {
	dc.wmu.Lock()
	defer dc.wmu.Unlock()
	if !dc.writers[txn] {
		dc.writers[txn] = true
		dc.inflight.Add(1)
	}
}

// Ended must be called when any transaction a session bound ends, after
// its commit or rollback.
func (dc *DescriptorCache) Ended(txn kvcluster.Txn) {
	dc.wmu.Lock()
	defer dc.wmu.Unlock()
	if dc.writers[txn] {
		delete(dc.writers, txn)
		dc.gen.Add(1)
		dc.inflight.Add(-1)
	}
}

func (dc *DescriptorCache) lookup(key []byte, gen uint64) (*Table, bool) {
	dc.mu.RLock()
	e, ok := dc.byName[string(key)]
	dc.mu.RUnlock()
	return e.t, ok && e.gen == gen
}

func (dc *DescriptorCache) remember(key []byte, gen uint64, t *Table) {
	dc.mu.Lock()
	if len(dc.byName) >= descriptorCacheMax {
		dc.byName = map[string]namedTable{}
	}
	dc.byName[string(key)] = namedTable{gen: gen, t: t}
	dc.mu.Unlock()
}

// descriptorCacheMax bounds the cache; past it the cache starts over.
const descriptorCacheMax = 8192

// NewDescriptorCache returns an empty cache. Set shared if the store is
// a cluster's (kvcluster.SharedStore).
func NewDescriptorCache(shared bool) *DescriptorCache {
	return &DescriptorCache{m: map[string]*Table{}, byName: map[string]namedTable{}, writers: map[kvcluster.Txn]bool{}, shared: shared}
}

func (dc *DescriptorCache) decode(b []byte) (*Table, error) {
	if dc != nil {
		dc.mu.RLock()
		t, ok := dc.m[string(b)]
		dc.mu.RUnlock()
		if ok {
			return t, nil
		}
	}
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, err
	}
	if dc != nil {
		dc.mu.Lock()
		if len(dc.m) >= descriptorCacheMax {
			dc.m = map[string]*Table{}
		}
		dc.m[string(b)] = &t
		dc.mu.Unlock()
	}
	return &t, nil
}

// Codec is the tenant's key codec.
func (c *Catalog) Codec() keys.Codec { return c.codec }

func (c *Catalog) nameKey(table keys.TableID, name string) []byte {
	k, _ := encoding.AppendKey(c.codec.IndexPrefix(table, keys.PrimaryIndexID), value.Text(name), encoding.Ascending)
	return k
}

// Table reads the descriptor of the named table; found is false if there
// is none.
func (c *Catalog) Table(ctx context.Context, txn kvcluster.Txn, name string) (*Table, bool, error) {
	key := c.nameKey(tablesTableID, name)
	cacheable := c.cache != nil && txn == c.bound && c.snapOK && !c.wrote
	if cacheable {
		if t, ok := c.cache.lookup(key, c.snap); ok {
			return t, true, nil
		}
	}
	b, found, err := txn.Get(ctx, key)
	if err != nil || !found {
		return nil, false, err
	}
	t, err := c.cache.decode(b)
	if err != nil {
		return nil, false, fmt.Errorf("catalog: table %q: corrupt descriptor: %w", name, err)
	}
	if cacheable {
		c.cache.remember(key, c.snap, t)
	}
	return t, true, nil
}

// writingDescriptors notes that txn is about to write a descriptor.
func (c *Catalog) writingDescriptors(txn kvcluster.Txn) {
	// Whatever the catalog caches: other catalogs (other nodes') do.
	if st, ok := kvcluster.AsSchemaTxn(txn); ok {
		st.WritesSchema()
	}
	if c.cache != nil {
		c.cache.writing(txn)
	}
	if txn == c.bound {
		c.wrote = true
	}
}

// MustTable reads a table or returns 42P01.
func (c *Catalog) MustTable(ctx context.Context, txn kvcluster.Txn, name string) (*Table, error) {
	t, found, err := c.Table(ctx, txn, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", name)
	}
	return t, nil
}

// Tables lists every table in name order.
func (c *Catalog) Tables(ctx context.Context, txn kvcluster.Txn) ([]*Table, error) {
	start, end := c.codec.IndexSpan(tablesTableID, keys.PrimaryIndexID)
	var out []*Table
	err := kvcluster.ScanAll(ctx, txn, start, end, 256, func(e kvcluster.KeyValue) error {
		var t Table
		if err := json.Unmarshal(e.Value, &t); err != nil {
			return fmt.Errorf("catalog: corrupt descriptor: %w", err)
		}
		out = append(out, &t)
		return nil
	})
	return out, err
}

// CreateTable stores a new table, giving it an id; 42P07 if the name is
// taken.
func (c *Catalog) CreateTable(ctx context.Context, txn kvcluster.Txn, t *Table) error {
	if _, found, err := c.Table(ctx, txn, t.Name); err != nil {
		return err
	} else if found {
		return pgerror.New(pgerror.CodeDuplicateTable, "relation %q already exists", t.Name)
	}
	id, err := c.NextCounter(ctx, txn, "next_table_id", int64(keys.FirstUserTableID))
	if err != nil {
		return err
	}
	t.ID = keys.TableID(id)
	t.Version = 1
	return c.put(ctx, txn, t)
}

// UpdateTable stores a changed descriptor, bumping its version.
func (c *Catalog) UpdateTable(ctx context.Context, txn kvcluster.Txn, t *Table) error {
	t.Version++
	return c.put(ctx, txn, t)
}

func (c *Catalog) put(ctx context.Context, txn kvcluster.Txn, t *Table) error {
	c.writingDescriptors(txn)
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return txn.Put(ctx, c.nameKey(tablesTableID, t.Name), b)
}

// DropTable removes a table's descriptor, its sequences and every row and
// index entry (walking the table's span in pages).
func (c *Catalog) DropTable(ctx context.Context, txn kvcluster.Txn, t *Table) error {
	c.writingDescriptors(txn)
	if err := c.ClearTable(ctx, txn, t); err != nil {
		return err
	}
	for _, col := range t.Columns {
		if col.Serial || col.Hidden {
			if err := txn.Delete(ctx, c.nameKey(countersTableID, SequenceCounter(t, col))); err != nil {
				return err
			}
		}
	}
	return txn.Delete(ctx, c.nameKey(tablesTableID, t.Name))
}

// RenameTable moves t's descriptor to a new name.
func (c *Catalog) RenameTable(ctx context.Context, txn kvcluster.Txn, t *Table, name string) error {
	c.writingDescriptors(txn)
	if err := txn.Delete(ctx, c.nameKey(tablesTableID, t.Name)); err != nil {
		return err
	}
	nt := *t
	nt.Name = name
	nt.Version++
	return c.put(ctx, txn, &nt)
}

// ClearTable deletes every row and index entry of t.
func (c *Catalog) ClearTable(ctx context.Context, txn kvcluster.Txn, t *Table) error {
	start, end := c.codec.TableSpan(t.ID)
	return kvcluster.ScanAll(ctx, txn, start, end, 1024, func(e kvcluster.KeyValue) error {
		return txn.Delete(ctx, e.Key)
	})
}

// SequenceName is the sequence behind a serial (or hidden rowid) column.
func SequenceName(t *Table, col Column) string {
	return fmt.Sprintf("%s_%s_seq", t.Name, col.Name)
}

// SequenceCounter is the counter holding the last reserved value of the
// sequence behind column col of t. It is keyed by ids, not names: a table
// dropped and created again under its name in one transaction starts
// afresh, and never contends for the dropped table's counter.
func SequenceCounter(t *Table, col Column) string {
	return fmt.Sprintf("%s%d/%d", sequenceCounterPrefix, t.ID, col.ID)
}

// SequenceCountersOf is the prefix of the sequence counters of table id.
func SequenceCountersOf(id keys.TableID) string {
	return fmt.Sprintf("%s%d/", sequenceCounterPrefix, id)
}

const sequenceCounterPrefix = "seq/"

// RenameCounter moves counter from's value to counter to, if from exists.
func (c *Catalog) RenameCounter(ctx context.Context, txn kvcluster.Txn, from, to string) error {
	b, found, err := txn.Get(ctx, c.nameKey(countersTableID, from))
	if err != nil || !found {
		return err
	}
	if err := txn.Put(ctx, c.nameKey(countersTableID, to), b); err != nil {
		return err
	}
	return txn.Delete(ctx, c.nameKey(countersTableID, from))
}

// NextCounter hands out the next value of the named counter inside txn:
// first, then first+1, and so on.
func (c *Catalog) NextCounter(ctx context.Context, txn kvcluster.Txn, name string, first int64) (int64, error) {
	n, err := c.AdvanceCounter(ctx, txn, name, 1)
	return first - 1 + n, err
}

// AdvanceCounter adds by to the named counter (missing: 0) inside txn and
// returns its new value.
func (c *Catalog) AdvanceCounter(ctx context.Context, txn kvcluster.Txn, name string, by int64) (int64, error) {
	k := c.nameKey(countersTableID, name)
	b, found, err := txn.Get(ctx, k)
	if err != nil {
		return 0, err
	}
	var cur int64
	if found {
		if len(b) != 8 {
			return 0, fmt.Errorf("catalog: counter %q corrupt", name)
		}
		cur = int64(binary.BigEndian.Uint64(b))
	}
	cur += by
	return cur, txn.Put(ctx, k, binary.BigEndian.AppendUint64(nil, uint64(cur)))
}

// ResetCounter removes a counter so it starts over.
func (c *Catalog) ResetCounter(ctx context.Context, txn kvcluster.Txn, name string) error {
	return txn.Delete(ctx, c.nameKey(countersTableID, name))
}

// Role is a user of the tenant.
type Role struct {
	Name      string `json:"name"`
	Superuser bool   `json:"superuser,omitempty"`
	// NoLogin roles cannot connect (CREATE ROLE without LOGIN).
	NoLogin bool `json:"nologin,omitempty"`
	// CreateRole roles may create, alter and drop other non-superuser
	// roles.
	CreateRole bool `json:"createrole,omitempty"`
	// SCRAM is the SCRAM-SHA-256 verifier in PostgreSQL's
	// "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>" form; empty
	// for a role without a password, which cannot log in.
	SCRAM string `json:"scram,omitempty"`
}

// Role reads a role.
func (c *Catalog) Role(ctx context.Context, txn kvcluster.Txn, name string) (*Role, bool, error) {
	b, found, err := txn.Get(ctx, c.nameKey(rolesTableID, name))
	if err != nil || !found {
		return nil, false, err
	}
	var r Role
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, false, fmt.Errorf("catalog: role %q corrupt: %w", name, err)
	}
	return &r, true, nil
}

// PutRole creates or replaces a role.
func (c *Catalog) PutRole(ctx context.Context, txn kvcluster.Txn, r *Role) error {
	if r.SCRAM != "" && !strings.HasPrefix(r.SCRAM, "SCRAM-SHA-256$") {
		return fmt.Errorf("catalog: role %q: only SCRAM-SHA-256 verifiers are stored", r.Name)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return txn.Put(ctx, c.nameKey(rolesTableID, r.Name), b)
}
