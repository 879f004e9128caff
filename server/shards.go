package server

import (
	"bytes"
	"context"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/raft"
	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/keys"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
	"github.com/shaledb/shaledb/tenancy"
)

var (
	int8Array, _ = types.ArrayOf(types.Int8)
	textArray, _ = types.ArrayOf(types.Text)
)

// shardsColumns are shaledb.shards' columns. end_key is NULL for the last
// shard; leader is NULL when no replica answered as leader.
var shardsColumns = []catalog.Column{
	{ID: 1, Name: "id", Type: types.Int8},
	{ID: 2, Name: "start_key", Type: types.Bytea},
	{ID: 3, Name: "end_key", Type: types.Bytea},
	{ID: 4, Name: "tenants", Type: textArray},
	{ID: 5, Name: "size_bytes", Type: types.Int8},
	{ID: 6, Name: "keys", Type: types.Int8},
	{ID: 7, Name: "leader", Type: types.Int8},
	{ID: 8, Name: "replicas", Type: int8Array},
}

// shardsView is shaledb.shards: one row per shard of the cluster, or one
// for the whole key space on a single node.
func (a admin) shardsView() *catalog.Table {
	return &catalog.Table{
		Name:    "shards",
		Columns: shardsColumns,
		Virtual: func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
			var shards []raft.ShardInfo
			if a.n.cluster != nil {
				var err error
				if shards, err = a.n.cluster.Shards(ctx); err != nil {
					return err
				}
			} else {
				shards = []raft.ShardInfo{{ID: 1, Start: []byte{}, Leader: 1, Replicas: []uint64{1}, SizeBytes: -1, Keys: -1}}
			}
			var tenants []tenancy.Usage
			if err := a.n.tenants.Usages(ctx, txn, func(u tenancy.Usage) error {
				tenants = append(tenants, u)
				return nil
			}); err != nil {
				return err
			}
			for _, s := range shards {
				var names []value.Value
				for _, u := range tenants {
					start, end := keys.MakeCodec(keys.TenantID(u.ID)).TenantSpan()
					if (s.End == nil || bytes.Compare(start, s.End) < 0) && bytes.Compare(end, s.Start) > 0 {
						names = append(names, value.Text(u.Name))
					}
				}
				var end, leader, size, count value.Value = value.Null{}, value.Null{}, value.Null{}, value.Null{}
				if s.End != nil {
					end = value.Bytes(s.End)
				}
				if s.Leader != 0 {
					leader = value.Int(s.Leader)
				}
				if s.SizeBytes >= 0 && s.Leader != 0 {
					size, count = value.Int(s.SizeBytes), value.Int(s.Keys)
				}
				replicas := make([]value.Value, len(s.Replicas))
				for i, r := range s.Replicas {
					replicas[i] = value.Int(r)
				}
				if err := emit([]value.Value{value.Int(s.ID), value.Bytes(s.Start), end,
					value.Array{Elems: names}, size, count, leader, value.Array{Elems: replicas}}); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// nodesColumns are shaledb.nodes' columns.
var nodesColumns = []catalog.Column{
	{ID: 1, Name: "id", Type: types.Int8},
	{ID: 2, Name: "addr", Type: types.Text},
	{ID: 3, Name: "peer_addr", Type: types.Text},
	{ID: 4, Name: "region", Type: types.Text},
	{ID: 5, Name: "capacity_bytes", Type: types.Int8},
	{ID: 6, Name: "alive", Type: types.Bool},
	{ID: 7, Name: "oracle", Type: types.Bool},
	{ID: 8, Name: "this_node", Type: types.Bool},
}

// nodesView is shaledb.nodes: the cluster's nodes as the registry has
// them, which one runs the timestamp oracle, and which one the session is
// on. A single node lists itself.
func (a admin) nodesView() *catalog.Table {
	return &catalog.Table{
		Name:    "nodes",
		Columns: nodesColumns,
		Virtual: func(ctx context.Context, txn kvcluster.Txn, emit func([]value.Value) error) error {
			if a.n.cluster == nil {
				return emit([]value.Value{value.Int(1), value.Text(a.n.Addr().String()), value.Null{}, value.Null{},
					value.Null{}, value.Bool(true), value.Bool(true), value.Bool(true)})
			}
			nodes, err := a.n.cluster.Nodes(ctx)
			if err != nil {
				return err
			}
			for _, nd := range nodes {
				if err := emit([]value.Value{value.Int(nd.ID), value.Text(nd.Addr), value.Text(nd.PeerAddr),
					value.Text(nd.Region), value.Int(nd.CapacityBytes), value.Bool(nd.Alive),
					value.Bool(nd.Oracle), value.Bool(nd.Self)}); err != nil {
					return err
				}
			}
			return nil
		},
	}
}
