// Package tenancy knows who the tenants are: the tenant registry (names,
// ids, descriptors) kept in store metadata. Admission (quotas, rate limits,
// connection caps) joins it here as it is built.
package tenancy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/encoding"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/value"
)

// SystemTenantName is the tenant that administers the cluster.
const SystemTenantName = "system"

// NameBytesMax is PostgreSQL's identifier limit (NAMEDATALEN-1).
const NameBytesMax = 63

// Errors of the registry, for errors.Is.
var (
	ErrTenantExists  = errors.New("tenancy: tenant already exists")
	ErrInvalidName   = errors.New("tenancy: invalid tenant name")
	ErrCorruptRecord = errors.New("tenancy: corrupt registry record")
)

// Tenant is one registry entry.
type Tenant struct {
	ID        keys.TenantID
	Name      string
	CreatedAt time.Time
	Limits    Limits
}

// NoLimit is the value of a limit that is not set.
const NoLimit int64 = -1

// Limits are what a tenant may use. NoLimit (-1) means unlimited; 0 is a
// limit of zero (max_connections 0 admits nobody, as PostgreSQL's
// CONNECTION LIMIT 0 does).
type Limits struct {
	// MaxStorageBytes bounds the bytes of keys and values the tenant
	// stores (53100 past it).
	MaxStorageBytes int64
	// MaxConnections bounds its concurrent sessions on a node (53300).
	MaxConnections int64
	// MaxQPS is its statement rate, per second (53400 when the wait for a
	// slot would be too long).
	MaxQPS int64
	// QPSBurst is how many statements may run at once above the rate
	// after a quiet spell; NoLimit means MaxQPS (one second's worth).
	QPSBurst int64
}

// Unlimited is the Limits of a new tenant.
func Unlimited() Limits {
	return Limits{MaxStorageBytes: NoLimit, MaxConnections: NoLimit, MaxQPS: NoLimit, QPSBurst: NoLimit}
}

// LimitNames are the names set_tenant_limit takes, in display order.
var LimitNames = []string{"max_storage_bytes", "max_connections", "max_qps", "qps_burst"}

// field returns the limit called name.
func (l *Limits) field(name string) (*int64, bool) {
	switch name {
	case "max_storage_bytes":
		return &l.MaxStorageBytes, true
	case "max_connections":
		return &l.MaxConnections, true
	case "max_qps":
		return &l.MaxQPS, true
	case "qps_burst":
		return &l.QPSBurst, true
	}
	return nil, false
}

// Get returns the limit called name.
func (l Limits) Get(name string) (int64, bool) {
	p, ok := l.field(name)
	if !ok {
		return 0, false
	}
	return *p, true
}

// ErrUnknownLimit is set_tenant_limit with a name not in LimitNames.
var ErrUnknownLimit = errors.New("tenancy: unknown limit")

// Set changes the limit called name; value must be NoLimit or >= 0.
func (l *Limits) Set(name string, value int64) error {
	p, ok := l.field(name)
	if !ok {
		return fmt.Errorf("%w %q (known: %s)", ErrUnknownLimit, name, strings.Join(LimitNames, ", "))
	}
	if value < NoLimit {
		return fmt.Errorf("%w: %s = %d: use -1 for no limit or a value >= 0", ErrInvalidLimit, name, value)
	}
	*p = value
	return nil
}

// ErrInvalidLimit is a limit value below -1.
var ErrInvalidLimit = errors.New("tenancy: invalid limit")

// ValidateName checks a tenant name against PostgreSQL's rules for an
// unquoted identifier: a lower-case letter or underscore, then lower-case
// letters, digits, underscores or dollar signs, at most 63 bytes.
func ValidateName(name string) error {
	if name == "" || len(name) > NameBytesMax {
		return fmt.Errorf("%w: %q must be 1 to %d bytes", ErrInvalidName, name, NameBytesMax)
	}
	for i, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c == '_' || i > 0 && (c >= '0' && c <= '9' || c == '$')
		if !ok {
			return fmt.Errorf("%w: %q: use lower-case letters, digits and underscores, starting with a letter or underscore", ErrInvalidName, name)
		}
	}
	return nil
}

// Descriptor value columns.
const (
	colName      encoding.ColumnID = 1
	colCreatedAt encoding.ColumnID = 2
	// colLimits + i holds LimitNames[i]; absent means NoLimit.
	colLimits encoding.ColumnID = 3
)

func encodeTenant(t Tenant) []byte {
	b := encoding.AppendRowColumn(nil, 0, colName, value.Text(t.Name))
	us := t.CreatedAt.Sub(value.Epoch).Microseconds()
	b = encoding.AppendRowColumn(b, colName, colCreatedAt, value.TimestampTZ(us))
	prev := colCreatedAt
	for i, name := range LimitNames {
		if v, _ := t.Limits.Get(name); v != NoLimit {
			col := colLimits + encoding.ColumnID(i)
			b = encoding.AppendRowColumn(b, prev, col, value.Int(v))
			prev = col
		}
	}
	return b
}

func decodeTenant(id keys.TenantID, b []byte) (Tenant, error) {
	t := Tenant{ID: id, Limits: Unlimited()}
	err := encoding.DecodeRow(b, func(col encoding.ColumnID, v value.Value) error {
		if col >= colLimits && int(col-colLimits) < len(LimitNames) {
			n, ok := v.(value.Int)
			if !ok {
				return fmt.Errorf("%w: limit is %s", ErrCorruptRecord, v.Kind())
			}
			return t.Limits.Set(LimitNames[col-colLimits], int64(n))
		}
		switch col {
		case colName:
			s, ok := v.(value.Text)
			if !ok {
				return fmt.Errorf("%w: name is %s", ErrCorruptRecord, v.Kind())
			}
			t.Name = string(s)
		case colCreatedAt:
			ts, ok := v.(value.TimestampTZ)
			if !ok {
				return fmt.Errorf("%w: created_at is %s", ErrCorruptRecord, v.Kind())
			}
			t.CreatedAt = value.Epoch.Add(time.Duration(ts) * time.Microsecond)
		}
		return nil
	})
	if err != nil {
		return Tenant{}, fmt.Errorf("tenancy: tenant %d: %w", id, err)
	}
	return t, nil
}

func encodeID(id keys.TenantID) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

func decodeID(b []byte) (keys.TenantID, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: tenant id of %d bytes", ErrCorruptRecord, len(b))
	}
	return keys.TenantID(binary.BigEndian.Uint64(b)), nil
}

// Create registers a new tenant called name, created at now, with the next
// free id, and returns it. The system tenant gets keys.SystemTenantID
// because it is created first, by the first migration.
func Create(ctx context.Context, txn kvcluster.Txn, name string, now time.Time) (Tenant, error) {
	first, err := ReserveIDs(ctx, txn, 1)
	if err != nil {
		return Tenant{}, fmt.Errorf("tenancy: create %q: %w", name, err)
	}
	return CreateWithID(ctx, txn, first, name, now)
}

// ReserveIDs takes n tenant ids from the registry's counter in txn and
// returns the first. Ids are never reused: ids reserved and not used (a
// node restarting with some left) are skipped for good.
func ReserveIDs(ctx context.Context, txn kvcluster.Txn, n uint64) (keys.TenantID, error) {
	next := keys.SystemTenantID
	// Read in the snapshot: two reservations racing conflict at commit,
	// and the loser retries (kvcluster.Update) with the new counter.
	if b, found, err := txn.Get(ctx, keys.MetaNextTenantID()); err != nil {
		return 0, err
	} else if found {
		if next, err = decodeID(b); err != nil {
			return 0, err
		}
	}
	return next, txn.Put(ctx, keys.MetaNextTenantID(), encodeID(next+keys.TenantID(n)))
}

// CreateWithID registers a new tenant called name with an id taken by
// ReserveIDs.
func CreateWithID(ctx context.Context, txn kvcluster.Txn, id keys.TenantID, name string, now time.Time) (Tenant, error) {
	if err := ValidateName(name); err != nil {
		return Tenant{}, err
	}
	if _, found, err := txn.Get(ctx, keys.MetaTenantByName(name)); err != nil {
		return Tenant{}, fmt.Errorf("tenancy: create %q: %w", name, err)
	} else if found {
		return Tenant{}, fmt.Errorf("%w: %q", ErrTenantExists, name)
	}
	t := Tenant{ID: id, Name: name, CreatedAt: now.UTC().Truncate(time.Microsecond), Limits: Unlimited()}
	for _, kv := range [][2][]byte{
		{keys.MetaTenantByName(name), encodeID(t.ID)},
		{keys.MetaTenantByID(t.ID), encodeTenant(t)},
	} {
		if err := txn.Put(ctx, kv[0], kv[1]); err != nil {
			return Tenant{}, fmt.Errorf("tenancy: create %q: %w", name, err)
		}
	}
	return t, nil
}

// SetLimits stores t's limits (t as read by Get or Lookup in txn).
func SetLimits(ctx context.Context, txn kvcluster.Txn, t Tenant) error {
	if err := txn.Put(ctx, keys.MetaTenantByID(t.ID), encodeTenant(t)); err != nil {
		return fmt.Errorf("tenancy: set limits of %q: %w", t.Name, err)
	}
	return nil
}

// Unregister removes t from the registry and marks its key span for
// dropping (keys.MetaDroppingTenant): once txn commits, no session can
// find the tenant, and DropData removes what it stored.
func Unregister(ctx context.Context, txn kvcluster.Txn, t Tenant) error {
	for _, k := range [][]byte{keys.MetaTenantByName(t.Name), keys.MetaTenantByID(t.ID)} {
		if err := txn.Delete(ctx, k); err != nil {
			return fmt.Errorf("tenancy: drop %q: %w", t.Name, err)
		}
	}
	if err := txn.Put(ctx, keys.MetaDroppingTenant(t.ID), nil); err != nil {
		return fmt.Errorf("tenancy: drop %q: %w", t.Name, err)
	}
	return nil
}

// DropData removes every key of an unregistered tenant with one range
// deletion, then its dropping marker. It is idempotent: a start finishes
// the drops a crash interrupted (FinishDrops).
func DropData(ctx context.Context, kv kvcluster.KvCluster, id keys.TenantID) error {
	if err := dropPrefix(ctx, kv, id); err != nil {
		return err
	}
	return kvcluster.Update(ctx, kv, 10, func(txn kvcluster.Txn) error {
		return txn.Delete(ctx, keys.MetaDroppingTenant(id))
	})
}

// dropPrefix removes every key of tenant id.
func dropPrefix(ctx context.Context, kv kvcluster.KvCluster, id keys.TenantID) error {
	dropper, ok := kv.(kvcluster.PrefixDropper)
	if !ok {
		return fmt.Errorf("tenancy: drop tenant %d: the store cannot drop a key range", id)
	}
	if err := dropper.DropPrefix(ctx, keys.MakeCodec(id).TenantPrefix()); err != nil {
		return fmt.Errorf("tenancy: drop tenant %d: %w", id, err)
	}
	return nil
}

// FinishDrops completes every drop that a crash interrupted.
func FinishDrops(ctx context.Context, kv kvcluster.KvCluster) error {
	var ids []keys.TenantID
	err := kvcluster.View(ctx, kv, func(txn kvcluster.Txn) error {
		start, end := keys.MetaDroppingSpan()
		return kvcluster.ScanAll(ctx, txn, start, end, listPageSize, func(e kvcluster.KeyValue) error {
			id, err := keys.DecodeMetaDroppingTenant(e.Key)
			ids = append(ids, id)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("tenancy: find interrupted drops: %w", err)
	}
	for _, id := range ids {
		if err := DropData(ctx, kv, id); err != nil {
			return err
		}
	}
	return nil
}

// Lookup finds a tenant by name.
func Lookup(ctx context.Context, txn kvcluster.Txn, name string) (Tenant, bool, error) {
	b, found, err := txn.Get(ctx, keys.MetaTenantByName(name))
	if err != nil || !found {
		return Tenant{}, false, err
	}
	id, err := decodeID(b)
	if err != nil {
		return Tenant{}, false, err
	}
	return Get(ctx, txn, id)
}

// Get finds a tenant by id.
func Get(ctx context.Context, txn kvcluster.Txn, id keys.TenantID) (Tenant, bool, error) {
	b, found, err := txn.Get(ctx, keys.MetaTenantByID(id))
	if err != nil || !found {
		return Tenant{}, false, err
	}
	t, err := decodeTenant(id, b)
	return t, err == nil, err
}

// listPageSize bounds one scan of the registry.
const listPageSize = 1024

// List calls fn for every tenant in name order until fn returns false.
func List(ctx context.Context, txn kvcluster.Txn, fn func(Tenant) bool) error {
	start, end := keys.MetaTenantByNameSpan()
	err := kvcluster.ScanAll(ctx, txn, start, end, listPageSize, func(e kvcluster.KeyValue) error {
		id, err := decodeID(e.Value)
		if err != nil {
			return err
		}
		t, found, err := Get(ctx, txn, id)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: name %q points at missing tenant %d", ErrCorruptRecord, e.Key, id)
		}
		if !fn(t) {
			return errListDone
		}
		return nil
	})
	if errors.Is(err, errListDone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tenancy: list: %w", err)
	}
	return nil
}

// errListDone ends List when fn asks to stop.
var errListDone = errors.New("tenancy: list done")
