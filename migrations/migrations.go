// Package migrations versions the on-disk format of a ShaleDB store and
// upgrades it. The store carries its format version under a metadata key;
// Run applies, in order, every migration above it, each in one transaction
// together with the version bump, so each runs exactly once even if several
// processes race or one crashes half-way. A store whose version is newer
// than this binary knows is refused: an old binary must not write a format
// it does not understand.
package migrations

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/tenancy"
)

// Migration upgrades the store from Version-1 to Version.
type Migration struct {
	Version uint64
	Name    string
	// Up makes the change inside txn. It must be written so that running
	// it on a store that already has the change does nothing.
	Up func(ctx context.Context, txn kvcluster.Txn, env Env) error
}

// Env is what migrations may use from outside the store.
type Env struct {
	// Now is the clock; migrations never read time elsewhere.
	Now func() time.Time
}

// ErrNewerFormat means the store was written by a newer ShaleDB.
var ErrNewerFormat = errors.New("migrations: store format is newer than this binary supports")

// All returns the migrations in version order. Append only: a released
// migration is never changed or removed.
func All() []Migration {
	return []Migration{
		{Version: 1, Name: "create the tenant registry and the system tenant", Up: createSystemTenant},
		{Version: 2, Name: "key sequence counters by table and column id", Up: keySequencesByID},
	}
}

// Latest is the format version this binary writes.
func Latest() uint64 { all := All(); return all[len(all)-1].Version }

func createSystemTenant(ctx context.Context, txn kvcluster.Txn, env Env) error {
	t, found, err := tenancy.Lookup(ctx, txn, tenancy.SystemTenantName)
	if err != nil {
		return err
	}
	if found {
		if t.ID != keys.SystemTenantID {
			return fmt.Errorf("migrations: tenant %q has id %d, want %d", t.Name, t.ID, keys.SystemTenantID)
		}
		return nil
	}
	t, err = tenancy.Create(ctx, txn, tenancy.SystemTenantName, env.Now())
	if err != nil {
		return err
	}
	if t.ID != keys.SystemTenantID {
		return fmt.Errorf("migrations: system tenant got id %d, want %d: the registry was not empty", t.ID, keys.SystemTenantID)
	}
	return nil
}

// keySequencesByID moves every sequence counter from its name
// ("seq/<table>_<column>_seq") to its ids (catalog.SequenceCounter).
func keySequencesByID(ctx context.Context, txn kvcluster.Txn, env Env) error {
	var tenants []tenancy.Tenant
	if err := tenancy.List(ctx, txn, func(t tenancy.Tenant) bool {
		tenants = append(tenants, t)
		return true
	}); err != nil {
		return err
	}
	for _, tn := range tenants {
		cat := catalog.New(keys.MakeCodec(tn.ID))
		tables, err := cat.Tables(ctx, txn)
		if err != nil {
			return err
		}
		for _, t := range tables {
			for _, col := range t.Columns {
				if !col.Serial && !col.Hidden {
					continue
				}
				if err := cat.RenameCounter(ctx, txn, "seq/"+catalog.SequenceName(t, col), catalog.SequenceCounter(t, col)); err != nil {
					return fmt.Errorf("tenant %q table %q: %w", tn.Name, t.Name, err)
				}
			}
		}
	}
	return nil
}

// Version reads the store's format version; 0 means a new, empty store.
func Version(ctx context.Context, txn kvcluster.Txn) (uint64, error) {
	b, found, err := txn.Get(ctx, keys.MetaFormatVersion())
	if err != nil {
		return 0, fmt.Errorf("migrations: read format version: %w", err)
	}
	if !found {
		return 0, nil
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("migrations: format version record of %d bytes is corrupt", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Result says what Run did.
type Result struct {
	From, To uint64
	Applied  []string
}

// Run brings the store up to the latest format version. It is safe to call
// on every open: on an up-to-date store it only reads the version.
func Run(ctx context.Context, kv kvcluster.KvCluster, env Env) (Result, error) {
	return run(ctx, kv, env, All())
}

func run(ctx context.Context, kv kvcluster.KvCluster, env Env, all []Migration) (Result, error) {
	var res Result
	err := kvcluster.View(ctx, kv, func(txn kvcluster.Txn) (err error) {
		res.From, err = Version(ctx, txn)
		return err
	})
	if err != nil {
		return res, err
	}
	latest := all[len(all)-1].Version
	if res.From > latest {
		return res, fmt.Errorf("%w: the data directory has format version %d, this shaledb supports up to %d; run a newer shaledb",
			ErrNewerFormat, res.From, latest)
	}
	res.To = res.From
	for _, m := range all {
		if m.Version <= res.To {
			continue
		}
		applied := false
		err := kvcluster.Update(ctx, kv, 10, func(txn kvcluster.Txn) error {
			cur, err := Version(ctx, txn)
			if err != nil {
				return err
			}
			if cur >= m.Version {
				applied = false // another process got here first
				return nil
			}
			if cur != m.Version-1 {
				return fmt.Errorf("migrations: store at version %d cannot take migration %d", cur, m.Version)
			}
			if err := m.Up(ctx, txn, env); err != nil {
				return fmt.Errorf("migrations: %d (%s): %w", m.Version, m.Name, err)
			}
			applied = true
			return txn.Put(ctx, keys.MetaFormatVersion(), binary.BigEndian.AppendUint64(nil, m.Version))
		})
		if err != nil {
			return res, err
		}
		res.To = m.Version
		if applied {
			res.Applied = append(res.Applied, fmt.Sprintf("%d: %s", m.Version, m.Name))
		}
	}
	return res, nil
}
