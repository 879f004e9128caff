package keys

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/encoding"
)

// TenantID identifies a tenant for the life of the cluster; ids are never
// reused. Zero is invalid.
type TenantID uint64

// SystemTenantID is the tenant `system`, which exists from the first start
// and administers the cluster.
const SystemTenantID TenantID = 1

// TableID identifies a table within its tenant.
type TableID uint32

// IndexID identifies an index within its table.
type IndexID uint32

// PrimaryIndexID is the primary index of a new table. ALTER TABLE ... ADD
// PRIMARY KEY re-keys a table into a fresh index id, so readers take the
// id from the descriptor, never from this constant.
const PrimaryIndexID IndexID = 1

// FirstUserTableID is the first table id for tables a user creates; ids
// below it belong to the tenant's catalog.
const FirstUserTableID TableID = 100

const (
	prefixMeta    byte = 0x01
	prefixTenant  byte = 0x02
	prefixTenantE byte = 0x03 // end of all tenant spans

	metaFormatVersion byte = 0x01
	metaTenantByName  byte = 0x02
	metaTenantByID    byte = 0x03
	metaNextTenantID  byte = 0x04
	metaDropping      byte = 0x05
	metaIndexBuild    byte = 0x06
)

// ErrBadKey wraps every error decoding a key that this package did not
// build.
var ErrBadKey = errors.New("keys: malformed key")

// MetaFormatVersion is the key holding the data directory's format version.
func MetaFormatVersion() []byte { return []byte{prefixMeta, metaFormatVersion} }

// MetaNextTenantID is the key holding the next tenant id to allocate.
func MetaNextTenantID() []byte { return []byte{prefixMeta, metaNextTenantID} }

// MetaTenantByName is the registry key mapping a tenant name to its id.
func MetaTenantByName(name string) []byte {
	return append([]byte{prefixMeta, metaTenantByName}, name...)
}

// MetaTenantByNameSpan spans every name -> id registry entry.
func MetaTenantByNameSpan() (start, end []byte) {
	return []byte{prefixMeta, metaTenantByName}, []byte{prefixMeta, metaTenantByName + 1}
}

// MetaTenantByID is the registry key holding a tenant's descriptor.
func MetaTenantByID(id TenantID) []byte {
	return encoding.AppendUvarint([]byte{prefixMeta, metaTenantByID}, uint64(id))
}

// MetaDroppingTenant marks a tenant whose keys are being removed: set in
// the transaction that unregisters it, cleared once its span is dropped, so
// a drop interrupted by a crash is finished at the next start.
func MetaDroppingTenant(id TenantID) []byte {
	return encoding.AppendUvarint([]byte{prefixMeta, metaDropping}, uint64(id))
}

// MetaDroppingSpan spans every MetaDroppingTenant marker.
func MetaDroppingSpan() (start, end []byte) {
	return []byte{prefixMeta, metaDropping}, []byte{prefixMeta, metaDropping + 1}
}

// DecodeMetaDroppingTenant returns the tenant id of a MetaDroppingTenant key.
func DecodeMetaDroppingTenant(key []byte) (TenantID, error) {
	if len(key) < 2 || key[0] != prefixMeta || key[1] != metaDropping {
		return 0, fmt.Errorf("%w: % x is not a dropping-tenant marker", ErrBadKey, key)
	}
	id, rest, err := encoding.DecodeUvarint(key[2:])
	if err != nil || len(rest) != 0 || id == 0 {
		return 0, fmt.Errorf("%w: dropping-tenant marker % x", ErrBadKey, key)
	}
	return TenantID(id), nil
}

// MetaIndexBuild marks an online index build in progress: written with
// the descriptor that adds the index in its building state, removed with
// the one that makes it public or takes it away. A start abandons the
// builds a crash interrupted.
func MetaIndexBuild(tenant TenantID, table TableID, index IndexID) []byte {
	k := encoding.AppendUvarint([]byte{prefixMeta, metaIndexBuild}, uint64(tenant))
	k = encoding.AppendUvarint(k, uint64(table))
	return encoding.AppendUvarint(k, uint64(index))
}

// MetaIndexBuildSpan spans every MetaIndexBuild marker.
func MetaIndexBuildSpan() (start, end []byte) {
	return []byte{prefixMeta, metaIndexBuild}, []byte{prefixMeta, metaIndexBuild + 1}
}

// DecodeMetaIndexBuild returns the tenant, table and index of a
// MetaIndexBuild key.
func DecodeMetaIndexBuild(key []byte) (TenantID, TableID, IndexID, error) {
	bad := fmt.Errorf("%w: % x is not an index-build marker", ErrBadKey, key)
	if len(key) < 2 || key[0] != prefixMeta || key[1] != metaIndexBuild {
		return 0, 0, 0, bad
	}
	var ids [3]uint64
	rest := key[2:]
	for i := range ids {
		var err error
		if ids[i], rest, err = encoding.DecodeUvarint(rest); err != nil {
			return 0, 0, 0, bad
		}
	}
	if len(rest) != 0 || ids[0] == 0 || ids[1] > 1<<32-1 || ids[2] > 1<<32-1 {
		return 0, 0, 0, bad
	}
	return TenantID(ids[0]), TableID(ids[1]), IndexID(ids[2]), nil
}

// MetaSpan spans all store metadata.
func MetaSpan() (start, end []byte) { return []byte{prefixMeta}, []byte{prefixMeta + 1} }

// AllTenantsSpan spans every tenant's keys.
func AllTenantsSpan() (start, end []byte) { return []byte{prefixTenant}, []byte{prefixTenantE} }

// Codec builds the keys of one tenant. The zero Codec is not bound to a
// tenant and panics when used, so a key can never be built for "no tenant".
type Codec struct {
	tenant TenantID
	prefix []byte // 02 <tid>; nil in the zero Codec
}

// MakeCodec returns the codec of tenant id, which must be non-zero.
func MakeCodec(id TenantID) Codec {
	if id == 0 {
		panic("keys: tenant id 0 is invalid")
	}
	return Codec{tenant: id, prefix: encoding.AppendUvarint([]byte{prefixTenant}, uint64(id))}
}

func (c Codec) mustBound() {
	if c.prefix == nil {
		panic("keys: zero Codec used; build one with MakeCodec")
	}
}

// Tenant is the tenant the codec is bound to.
func (c Codec) Tenant() TenantID { c.mustBound(); return c.tenant }

// TenantPrefix returns a new copy of the prefix every key of the tenant
// starts with.
func (c Codec) TenantPrefix() []byte {
	c.mustBound()
	return bytes.Clone(c.prefix)
}

// TenantSpan is [start, end) of every key the tenant owns.
func (c Codec) TenantSpan() (start, end []byte) {
	c.mustBound()
	return bytes.Clone(c.prefix), PrefixEnd(c.prefix)
}

// TablePrefix returns the prefix of every key of one table.
func (c Codec) TablePrefix(table TableID) []byte {
	c.mustBound()
	k := make([]byte, 0, len(c.prefix)+8)
	k = append(k, c.prefix...)
	return encoding.AppendUvarint(k, uint64(table))
}

// TableSpan is [start, end) of every key of one table.
func (c Codec) TableSpan(table TableID) (start, end []byte) {
	p := c.TablePrefix(table)
	return p, PrefixEnd(p)
}

// IndexPrefix returns the prefix of every entry of one index; key columns
// are appended to it.
func (c Codec) IndexPrefix(table TableID, index IndexID) []byte {
	return encoding.AppendUvarint(c.TablePrefix(table), uint64(index))
}

// IndexSpan is [start, end) of every entry of one index.
func (c Codec) IndexSpan(table TableID, index IndexID) (start, end []byte) {
	p := c.IndexPrefix(table, index)
	return p, PrefixEnd(p)
}

// StripIndexPrefix checks that key belongs to the given index of this
// tenant and returns its key columns.
func (c Codec) StripIndexPrefix(key []byte, table TableID, index IndexID) ([]byte, error) {
	p := c.IndexPrefix(table, index)
	if !bytes.HasPrefix(key, p) {
		return nil, fmt.Errorf("%w: % x is not in tenant %d table %d index %d", ErrBadKey, key, c.tenant, table, index)
	}
	return key[len(p):], nil
}

// DecodedKey is a tenant key taken apart by DecodeTenantKey.
type DecodedKey struct {
	Tenant  TenantID
	Table   TableID
	Index   IndexID
	Columns []byte // the encoded key columns, aliasing the input
}

// DecodeTenantKey takes apart a key of any tenant. It is for untrusted bytes
// and diagnostics: every input gives a result or an error wrapping
// ErrBadKey. A key that ends after the tenant or table id decodes with the
// later fields zero.
func DecodeTenantKey(key []byte) (DecodedKey, error) {
	var d DecodedKey
	if len(key) == 0 || key[0] != prefixTenant {
		return d, fmt.Errorf("%w: % x is not a tenant key", ErrBadKey, key)
	}
	tid, rest, err := encoding.DecodeUvarint(key[1:])
	if err != nil || tid == 0 {
		return d, fmt.Errorf("%w: tenant id: %v", ErrBadKey, err)
	}
	d.Tenant = TenantID(tid)
	if len(rest) == 0 {
		return d, nil
	}
	table, rest, err := encoding.DecodeUvarint(rest)
	if err != nil || table > 1<<32-1 {
		return d, fmt.Errorf("%w: table id: %v", ErrBadKey, err)
	}
	d.Table = TableID(table)
	if len(rest) == 0 {
		return d, nil
	}
	index, rest, err := encoding.DecodeUvarint(rest)
	if err != nil || index > 1<<32-1 {
		return d, fmt.Errorf("%w: index id: %v", ErrBadKey, err)
	}
	d.Index = IndexID(index)
	d.Columns = rest
	return d, nil
}

// PrefixEnd returns the smallest key greater than every key starting with
// prefix: the exclusive end of the prefix's span. For a prefix of only 0xff
// bytes there is none and it returns nil (no upper bound).
func PrefixEnd(prefix []byte) []byte { return kvcluster.PrefixEnd(prefix) }

// TenantSplitKey chooses where a shard holding [start, end) (a nil end is
// no bound), whose bytes are halved at mid, is split: at a tenant
// boundary where there is one, so that a tenant that outgrows a shared
// shard moves to shards of its own and most transactions stay on one
// shard. It takes the start of mid's tenant, or, when that is not inside
// the span, its end. A tenant that fills its shard alone is split inside,
// at mid (its transactions then commit across shards). The cluster's
// metadata and the system tenant stay together in the first shard: no
// split key lies below the next tenant. It returns nil when there is no
// such key inside the span.
func TenantSplitKey(start, end, mid []byte) []byte {
	lowest := MakeCodec(SystemTenantID + 1).TenantPrefix()
	cands := [][]byte{lowest}
	if d, err := DecodeTenantKey(mid); err == nil {
		s, e := MakeCodec(d.Tenant).TenantSpan()
		cands = [][]byte{s, e}
	}
	inside := func(k []byte) bool {
		return k != nil && bytes.Compare(k, lowest) >= 0 && bytes.Compare(k, start) > 0 &&
			(end == nil || bytes.Compare(k, end) < 0)
	}
	for _, k := range cands {
		if inside(k) {
			return k
		}
	}
	if inside(mid) {
		return bytes.Clone(mid) // one tenant fills the span
	}
	return nil
}
