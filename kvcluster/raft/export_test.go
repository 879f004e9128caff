package raft

import "github.com/shaledb/shaledb/kvcluster"

// StartTs returns a transaction's snapshot timestamp (tests only).
func StartTs(t kvcluster.Txn) uint64 { return t.(*txn).startTs }

// SetStartTs moves a transaction's snapshot, as if it had begun then
// (tests only: a transaction of a node the cluster holds dead).
func SetStartTs(t kvcluster.Txn, ts uint64) { t.(*txn).startTs = ts }

// StopCommitAfter makes a transaction's cross-shard commit end after
// phase 1 (prewritten; Commit fails) or 2 (decided; the other shards'
// intents are left), as its coordinator dying there would (tests only).
func StopCommitAfter(t kvcluster.Txn, phase int) { t.(*txn).stopAfter = phase }

// Intents counts the node's live intents of cross-shard transactions.
func (n *Node) Intents() int64 { return n.sm.intents.Load() }

// ShardOf returns the id of the shard holding key, as the node's map says.
func (n *Node) ShardOf(key []byte) uint64 {
	d, err := n.shards.lookup(n.stopCtx, key)
	if err != nil {
		return 0
	}
	return d.ID
}

// FollowerReads counts the reads the node served as a follower.
func (n *Node) FollowerReads() int64 { return n.followerReads.Load() }
