// Package servertest starts ShaleDB servers for tests: a cluster of
// server nodes in cluster mode (kvcluster/raft) in the test's process,
// with a real etcd, every listener on a free loopback port, all stopped
// when the test ends.
package servertest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/shaledb/shaledb/replication/etcdtest"
	"github.com/shaledb/shaledb/server"
)

// StartCluster starts etcd and n server nodes in cluster mode (3
// replicas per shard, or n if fewer), with admin password password, and
// returns them once every node serves. Options, if any, change each
// node's cluster configuration.
func StartCluster(t testing.TB, n int, password string, options ...func(*server.ClusterConfig)) []*server.Node {
	t.Helper()
	endpoint := etcdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes := make([]*server.Node, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	// The first shard is created once enough nodes joined: start them
	// together.
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := &server.ClusterConfig{PeerListen: "127.0.0.1:0", Etcd: []string{endpoint},
				Region: fmt.Sprintf("r%d", i+1), ReplicationFactor: min(3, n)}
			for _, o := range options {
				o(cc)
			}
			nodes[i], errs[i] = server.Start(ctx, server.Config{
				DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminPassword: password, Cluster: cc,
			})
		}()
	}
	wg.Wait()
	for i, node := range nodes {
		if node != nil {
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_ = node.Shutdown(ctx)
			})
		}
		if errs[i] != nil {
			t.Fatalf("servertest: start cluster node %d: %v", i, errs[i])
		}
	}
	return nodes
}
