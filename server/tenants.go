package server

import (
	"context"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
	"github.com/shaledb/shaledb/tenancy"
)

// admin serves the shaledb.* functions and views (session.Admin).
type admin struct{ n *Node }

func textArg(v value.Value) string { return string(v.(value.Text)) }

// Call implements session.Admin.
func (a admin) Call(ctx context.Context, name string, args []value.Value) (value.Value, error) {
	m := a.n.tenants
	switch name {
	case "shaledb.create_tenant":
		t, err := m.CreateTenant(ctx, textArg(args[0]), textArg(args[1]), a.n.cfg.Now())
		if err != nil {
			return nil, err
		}
		a.n.cfg.Logger.Info("tenant created", "tenant", t.Name, "id", t.ID)
		return value.Int(t.ID), nil
	case "shaledb.drop_tenant":
		if err := m.DropTenant(ctx, textArg(args[0])); err != nil {
			return nil, err
		}
		a.n.cfg.Logger.Info("tenant dropped", "tenant", textArg(args[0]))
		return value.Bool(true), nil
	case "shaledb.move_tenant":
		if err := m.MoveTenant(ctx, textArg(args[0]), textArg(args[1])); err != nil {
			return nil, err
		}
		a.n.cfg.Logger.Info("tenant moved", "tenant", textArg(args[0]), "region", textArg(args[1]))
		return value.Bool(true), nil
	case "shaledb.set_tenant_limit":
		limit, v := textArg(args[1]), int64(args[2].(value.Int))
		if _, err := m.SetLimit(ctx, textArg(args[0]), limit, v); err != nil {
			return nil, err
		}
		return value.Int(v), nil
	}
	return nil, pgerror.New(pgerror.CodeUndefinedFunction, "function %s does not exist", name)
}

// tenantsColumns are shaledb.tenants' columns; a limit that is not set
// reads as NULL.
var tenantsColumns = []catalog.Column{
	{ID: 1, Name: "name", Type: types.Text},
	{ID: 2, Name: "id", Type: types.Int8},
	{ID: 3, Name: "created_at", Type: types.TimestampTZ},
	{ID: 4, Name: "storage_bytes", Type: types.Int8},
	{ID: 5, Name: "connections", Type: types.Int8},
	{ID: 6, Name: "max_storage_bytes", Type: types.Int8},
	{ID: 7, Name: "max_connections", Type: types.Int8},
	{ID: 8, Name: "max_qps", Type: types.Int8},
	{ID: 9, Name: "qps_burst", Type: types.Int8},
	{ID: 10, Name: "throttled", Type: types.Int8},
	{ID: 11, Name: "rejected", Type: types.Int8},
}

// View implements session.Admin.
func (a admin) View(name string) (*catalog.Table, bool) {
	switch name {
	case "shards":
		return a.shardsView(), true
	case "nodes":
		return a.nodesView(), true
	case "tenants":
	default:
		return nil, false
	}
	m := a.n.tenants
	return &catalog.Table{
		Name:    "tenants",
		Columns: tenantsColumns,
		Virtual: func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
			return m.Usages(ctx, txn, func(u tenancy.Usage) error {
				limit := func(n int64) value.Value {
					if n == tenancy.NoLimit {
						return value.Null{}
					}
					return value.Int(n)
				}
				return emit([]value.Value{
					value.Text(u.Name), value.Int(u.ID),
					value.TimestampTZ(u.CreatedAt.Sub(value.Epoch).Microseconds()),
					value.Int(u.StorageBytes), value.Int(u.Connections),
					limit(u.Limits.MaxStorageBytes), limit(u.Limits.MaxConnections),
					limit(u.Limits.MaxQPS), limit(u.Limits.QPSBurst),
					value.Int(u.Throttled), value.Int(u.Rejected),
				})
			})
		},
	}, true
}

// Tenants is the node's tenant manager.
func (n *Node) Tenants() *tenancy.Manager { return n.tenants }
