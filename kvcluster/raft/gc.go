package raft

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Version garbage collection. The state machine keeps every version of a
// key (Badger's versions are the MVCC timestamps) until Badger may
// discard those that no snapshot can read: a node's discard timestamp
// tells it which. Each node sets its own, periodically, to the oldest
// snapshot any live node's open transaction holds (asked as
// WaitForOlderSnapshots asks), or to a timestamp taken before asking when
// none is open: a transaction that begins after the question takes a
// later snapshot. A round that misses an answer from a live node, or
// meets a transaction being given its timestamp, changes nothing.
//
// A transaction of a node the registry holds dead (its lease lapsed under
// a partition, say) may still ask for a read below a leader's discard
// timestamp: the leader refuses it (errSnapshotTooOld, retryable) rather
// than answer from versions that may be gone.

// errSnapshotTooOld: a read below the leader's discard timestamp.
var errSnapshotTooOld = fmt.Errorf("raft: snapshot too old: its versions may have been discarded")

// gcRound advances the node's discard timestamp (every interval).
func (n *Node) gcRound(interval time.Duration) {
	ctx, cancel := context.WithTimeout(n.stopCtx, interval+5*time.Second)
	d, err := n.safeDiscardTs(ctx)
	cancel()
	if err != nil {
		n.log.Debug("version gc: no discard timestamp this round", "err", err)
		return
	}
	n.raiseDiscardTs(d)
}

// safeDiscardTs returns a timestamp below which no live node's open or
// future transaction reads.
func (n *Node) safeDiscardTs(ctx context.Context) (uint64, error) {
	d, err := n.timestamp(ctx)
	if err != nil {
		return 0, err
	}
	oldest, err := n.oldestSnapshot(ctx)
	if err != nil {
		return 0, err
	}
	if oldest == 0 {
		return 0, errors.New("a node is giving a transaction its snapshot")
	}
	return min(d, oldest), nil
}

// raiseDiscardTs lets Badger discard versions below d that a newer one
// at or below d hides; it never goes back.
func (n *Node) raiseDiscardTs(d uint64) {
	for {
		cur := n.discardTs.Load()
		if d <= cur {
			return
		}
		if n.discardTs.CompareAndSwap(cur, d) {
			n.sm.db.SetDiscardTs(d)
			return
		}
	}
}

// DiscardTs is the node's discard timestamp (0: none yet).
func (n *Node) DiscardTs() uint64 { return n.discardTs.Load() }
