package raft_test

import (
	"testing"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/kvcluster/kvtest"
	"github.com/shaledb/shaledb/kvcluster/raft/rafttest"
)

// TestConformance runs the KvCluster conformance suite against a 3-node
// cluster, through one of its nodes.
func TestConformance(t *testing.T) {
	kvtest.Run(t, func(t testing.TB) kvcluster.KvCluster {
		return rafttest.Start(t, rafttest.Options{Nodes: 3}).Store(1)
	})
}
