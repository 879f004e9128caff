package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/shaledb/shaledb/kvcluster/raft"
	"github.com/shaledb/shaledb/sql/keys"
)

// DefaultShardMaxBytes is the size past which a shard splits, unless
// ClusterConfig.ShardMaxBytes says otherwise.
const DefaultShardMaxBytes = 64 << 20

// clusterMember is the store of a cluster node: the node's KvCluster,
// closing which also stops the node and its etcd client.
type clusterMember struct {
	*raft.KV
	node *raft.Node
	etcd *clientv3.Client
}

// joinCluster starts this process's node of the cluster cfg.Cluster names.
// addr is where PostgreSQL clients reach it.
func joinCluster(ctx context.Context, cfg Config, addr string) (*clusterMember, error) {
	cc := cfg.Cluster
	etcd, err := clientv3.New(clientv3.Config{Endpoints: cc.Etcd, DialTimeout: 5 * time.Second, Context: context.WithoutCancel(ctx)})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", cc.Etcd, err)
	}
	// Fail early and clearly when etcd is not there.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = etcd.Status(sctx, cc.Etcd[0])
	cancel()
	if err != nil {
		etcd.Close()
		return nil, fmt.Errorf("etcd at %v does not answer: %w", cc.Etcd, err)
	}
	shardMax := cc.ShardMaxBytes
	switch {
	case shardMax == 0:
		shardMax = DefaultShardMaxBytes
	case shardMax < 0:
		shardMax = 0
	}
	node, err := raft.Start(ctx, raft.Options{
		DataDir:           cfg.DataDir,
		PeerListen:        cc.PeerListen,
		Addr:              addr,
		Region:            cc.Region,
		Etcd:              etcd,
		Cluster:           cc.Name,
		ReplicationFactor: cc.ReplicationFactor,
		ShardMaxBytes:     shardMax,
		SplitKey:          keys.TenantSplitKey,
		Logger:            cfg.Logger,
	})
	if err != nil {
		etcd.Close()
		return nil, err
	}
	return &clusterMember{KV: node.KV(), node: node, etcd: etcd}, nil
}

// Close closes the KvCluster, stops the node and closes the etcd client.
func (m *clusterMember) Close() error {
	return errors.Join(m.KV.Close(), m.node.Close(), m.etcd.Close())
}
