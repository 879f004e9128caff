package raft

import "github.com/shaledb/shaledb/kvcluster"

// StartTs returns a transaction's snapshot timestamp (tests only).
func StartTs(t kvcluster.Txn) uint64 { return t.(*txn).startTs }

// SetStartTs moves a transaction's snapshot, as if it had begun then
// (tests only: a transaction of a node the cluster holds dead).
func SetStartTs(t kvcluster.Txn, ts uint64) { t.(*txn).startTs = ts }
