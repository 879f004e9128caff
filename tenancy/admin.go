package tenancy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/tenancy/scram"
)

// TenantAdminUser is the user every new tenant starts with, a superuser of
// that tenant only.
const TenantAdminUser = "admin"

// reserved reports names no tenant may take: the system tenant's and
// PostgreSQL's own database names, which clients and tools assume.
func reserved(name string) bool {
	switch name {
	case SystemTenantName, "postgres", "template0", "template1", "shaledb":
		return true
	}
	return strings.HasPrefix(name, "pg_")
}

// CreateTenant registers tenant name with its user admin (password
// password, kept as a SCRAM verifier).
//
// It takes two transactions, each on one shard when the cluster is split
// (a tenant's keys and the registry may live on different shards): the
// first writes the admin role and the storage use into the new tenant's
// key span, the second registers the name. The id is the node's alone
// (reserved in a block), so nothing else writes that span meanwhile; no
// session can reach the tenant before the second commits. If the name is
// taken by then, the first transaction's keys are dropped again. A crash
// between the two leaves a few unreachable keys under an id never handed
// out again.
func (m *Manager) CreateTenant(ctx context.Context, name, password string, now time.Time) (Tenant, error) {
	if err := ValidateName(name); err != nil {
		return Tenant{}, pgerror.New(pgerror.CodeInvalidName, "invalid tenant name %q: %s", name, strings.TrimPrefix(err.Error(), ErrInvalidName.Error()+": "))
	}
	if reserved(name) {
		return Tenant{}, pgerror.New(pgerror.CodeReservedName, "tenant name %q is reserved", name)
	}
	if password == "" {
		return Tenant{}, pgerror.New(pgerror.CodeInvalidParameterValue, "the admin password of a new tenant must not be empty")
	}
	exists := func() error { return pgerror.New(pgerror.CodeDuplicateDatabase, "tenant %q already exists", name) }
	var found bool
	if err := kvcluster.View(ctx, m.kv, func(txn kvcluster.Txn) (err error) {
		_, found, err = Lookup(ctx, txn, name)
		return err
	}); err != nil {
		return Tenant{}, err
	} else if found {
		return Tenant{}, exists()
	}
	verifier, err := scram.NewVerifier(password)
	if err != nil {
		return Tenant{}, err
	}
	id, err := m.allocID(ctx)
	if err != nil {
		return Tenant{}, err
	}
	err = kvcluster.Update(ctx, m.kv, 10, func(txn kvcluster.Txn) error {
		// The role is written through a counting transaction so that the
		// tenant's storage use starts at what it holds.
		c := &countingTxn{Txn: txn}
		if err := catalog.New(keys.MakeCodec(id)).PutRole(ctx, c, &catalog.Role{Name: TenantAdminUser, Superuser: true, SCRAM: verifier}); err != nil {
			return err
		}
		return SetInitialUsage(ctx, txn, id, c.bytes)
	})
	if err != nil {
		return Tenant{}, err
	}
	var t Tenant
	err = kvcluster.Update(ctx, m.kv, 10, func(txn kvcluster.Txn) error {
		var err error
		t, err = CreateWithID(ctx, txn, id, name, now)
		return err
	})
	if err != nil {
		if derr := dropPrefix(ctx, m.kv, id); derr != nil {
			err = errors.Join(err, derr)
		}
		if errors.Is(err, ErrTenantExists) {
			return Tenant{}, exists()
		}
		return Tenant{}, err
	}
	return t, nil
}

// idBlock is how many tenant ids a node reserves at once, so that
// concurrent creates do not queue on the registry's id counter.
const idBlock = 64

// allocID hands out the next tenant id of the node's reserved block,
// reserving another block when it runs out.
func (m *Manager) allocID(ctx context.Context) (keys.TenantID, error) {
	m.idMu.Lock()
	defer m.idMu.Unlock()
	if m.nextID == 0 || m.nextID >= m.idLimit {
		var first keys.TenantID
		err := kvcluster.Update(ctx, m.kv, 10, func(txn kvcluster.Txn) (err error) {
			first, err = ReserveIDs(ctx, txn, idBlock)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("tenancy: reserve tenant ids: %w", err)
		}
		m.nextID, m.idLimit = first, first+idBlock
	}
	id := m.nextID
	m.nextID++
	return id, nil
}

// countingTxn counts the bytes written through it (new keys only).
type countingTxn struct {
	kvcluster.Txn
	bytes int64
}

func (c *countingTxn) Put(ctx context.Context, key, value []byte) error {
	c.bytes += entrySize(key, value)
	return c.Txn.Put(ctx, key, value)
}

// lookupPG finds a tenant by name, or 3D000.
func lookupPG(ctx context.Context, txn kvcluster.Txn, name string) (Tenant, error) {
	t, found, err := Lookup(ctx, txn, name)
	if err == nil && !found {
		err = pgerror.New(pgerror.CodeInvalidCatalogName, "tenant %q does not exist", name)
	}
	return t, err
}

// DropTenant unregisters tenant name, closes its sessions on this node
// and removes every key it owns with one range deletion.
func (m *Manager) DropTenant(ctx context.Context, name string) error {
	if name == SystemTenantName {
		return pgerror.New(pgerror.CodeInsufficientPrivilege, "the system tenant cannot be dropped")
	}
	m.dropMu.Lock()
	defer m.dropMu.Unlock()
	var t Tenant
	err := kvcluster.View(ctx, m.kv, func(txn kvcluster.Txn) (err error) {
		t, err = lookupPG(ctx, txn, name)
		return err
	})
	if err != nil {
		return err
	}
	// From here no session of the tenant starts on this node; those
	// running are ended before its keys go, so none commits after.
	m.mu.Lock()
	m.dropping[t.ID] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.dropping, t.ID)
		m.mu.Unlock()
	}()
	err = kvcluster.Update(ctx, m.kv, 10, func(txn kvcluster.Txn) error {
		cur, err := lookupPG(ctx, txn, name)
		if err != nil {
			return err
		}
		if cur.ID != t.ID {
			return pgerror.New(pgerror.CodeInvalidCatalogName, "tenant %q does not exist", name)
		}
		return Unregister(ctx, txn, t)
	})
	if err != nil {
		return err
	}
	if err := m.disconnect(ctx, t.ID); err != nil {
		return err
	}
	return DropData(ctx, m.kv, t.ID)
}

// MoveTenant moves tenant name's data — its shards' replicas and leaders —
// onto the nodes of region, while the tenant keeps working, and returns
// once it is there. It needs a store that can place data
// (kvcluster.Placer): a cluster.
func (m *Manager) MoveTenant(ctx context.Context, name, region string) error {
	p, ok := m.kv.(kvcluster.Placer)
	if !ok {
		return pgerror.New(pgerror.CodeFeatureNotSupported, "moving a tenant needs a cluster; this node runs alone")
	}
	if name == SystemTenantName {
		return pgerror.New(pgerror.CodeInsufficientPrivilege, "the system tenant stays with the cluster's metadata")
	}
	var t Tenant
	err := kvcluster.View(ctx, m.kv, func(txn kvcluster.Txn) (err error) {
		t, err = lookupPG(ctx, txn, name)
		return err
	})
	if err != nil {
		return err
	}
	start, end := keys.MakeCodec(t.ID).TenantSpan()
	if err := p.PlaceSpan(ctx, start, end, region); err != nil {
		if errors.Is(err, kvcluster.ErrInvalidArgument) {
			return pgerror.New(pgerror.CodeInvalidParameterValue, "cannot move tenant %q to region %q: %v", name, region, err)
		}
		return fmt.Errorf("move tenant %q to %q: %w", name, region, err)
	}
	return nil
}

// SetLimit changes one limit of tenant name, in the registry and, at once,
// on this node.
func (m *Manager) SetLimit(ctx context.Context, name, limit string, v int64) (Tenant, error) {
	if name == SystemTenantName {
		// Its admins must always be able to get in and lift a limit.
		return Tenant{}, pgerror.New(pgerror.CodeInsufficientPrivilege, "the system tenant's limits cannot be set")
	}
	var t Tenant
	err := kvcluster.Update(ctx, m.kv, 10, func(txn kvcluster.Txn) (err error) {
		if t, err = lookupPG(ctx, txn, name); err != nil {
			return err
		}
		if err := t.Limits.Set(limit, v); err != nil {
			msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), ErrUnknownLimit.Error()+" "), ErrInvalidLimit.Error()+": ")
			if errors.Is(err, ErrUnknownLimit) {
				msg = "unrecognized limit " + msg
			}
			return pgerror.New(pgerror.CodeInvalidParameterValue, "%s", msg)
		}
		return SetLimits(ctx, txn, t)
	})
	if err != nil {
		return Tenant{}, err
	}
	m.SetLimits(t.ID, t.Limits)
	return t, nil
}

// Usage is one row of shaledb.tenants.
type Usage struct {
	Tenant
	StorageBytes        int64
	Connections         int64
	Throttled, Rejected int64
}

// Usages calls fn for every tenant in name order, with its usage: from
// memory for tenants live on this node, from the store for the rest.
func (m *Manager) Usages(ctx context.Context, txn kvcluster.Txn, fn func(Usage) error) error {
	var inner error
	err := List(ctx, txn, func(t Tenant) bool {
		u := Usage{Tenant: t}
		if l, ok := m.Lookup(t.ID); ok {
			u.StorageBytes = l.StorageBytes()
			u.Connections = l.Connections()
			u.Throttled = l.Stats.Throttled.Load()
			u.Rejected = l.Stats.Rejected.Load()
		} else if u.StorageBytes, inner = StorageBytes(ctx, txn, t.ID); inner != nil {
			return false
		}
		inner = fn(u)
		return inner == nil
	})
	if inner != nil {
		return inner
	}
	return err
}
