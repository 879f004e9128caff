// Package tenancy knows who the tenants are: the tenant registry (names,
// ids, descriptors) kept in store metadata. Admission (quotas, rate limits,
// connection caps) joins it here as it is built.
package tenancy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
}

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
)

func encodeTenant(t Tenant) []byte {
	b := encoding.AppendRowColumn(nil, 0, colName, value.Text(t.Name))
	us := t.CreatedAt.Sub(value.Epoch).Microseconds()
	return encoding.AppendRowColumn(b, colName, colCreatedAt, value.TimestampTZ(us))
}

func decodeTenant(id keys.TenantID, b []byte) (Tenant, error) {
	t := Tenant{ID: id}
	err := encoding.DecodeRow(b, func(col encoding.ColumnID, v value.Value) error {
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
	if err := ValidateName(name); err != nil {
		return Tenant{}, err
	}
	if _, found, err := txn.Get(ctx, keys.MetaTenantByName(name)); err != nil {
		return Tenant{}, fmt.Errorf("tenancy: create %q: %w", name, err)
	} else if found {
		return Tenant{}, fmt.Errorf("%w: %q", ErrTenantExists, name)
	}
	next := keys.SystemTenantID
	if b, found, err := txn.Get(ctx, keys.MetaNextTenantID()); err != nil {
		return Tenant{}, fmt.Errorf("tenancy: create %q: %w", name, err)
	} else if found {
		if next, err = decodeID(b); err != nil {
			return Tenant{}, err
		}
	}
	t := Tenant{ID: next, Name: name, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	for _, kv := range [][2][]byte{
		{keys.MetaTenantByName(name), encodeID(t.ID)},
		{keys.MetaTenantByID(t.ID), encodeTenant(t)},
		{keys.MetaNextTenantID(), encodeID(t.ID + 1)},
	} {
		if err := txn.Put(ctx, kv[0], kv[1]); err != nil {
			return Tenant{}, fmt.Errorf("tenancy: create %q: %w", name, err)
		}
	}
	return t, nil
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
