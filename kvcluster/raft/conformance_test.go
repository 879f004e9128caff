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
		// The suite checks transactions, not failover: a slow election
		// timeout (2 s) keeps a loaded machine's stalls from moving the
		// leader, which drops its row locks (LockedIncrementsNeedNoRetry).
		return rafttest.Start(t, rafttest.Options{Nodes: 3, ElectionTicks: 200}).Store(1)
	})
}
