package raft

import (
	"context"
	"fmt"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
)

// Row locks (kvcluster.LockingTxn) live on the shard's leader, in memory.
//
// A lock is owned by a transaction, named by its snapshot timestamp (the
// oracle hands each out once). A transaction waits for one lock at a time,
// so the waits on one leader form chains; a wait whose chain leads back to
// the waiter would deadlock and fails at once. (Waits on different shards'
// leaders are not joined up: such a cycle ends when a waiter's context
// does.)
//
// The leader releases the locks of transactions whose node died (repair
// loop): nothing else would end them.
//
// After taking a lock the leader reads the key's latest value as of lockTs
// and returns both. lockTs is the leader's own: the highest of the
// owner's snapshot and every commit timestamp it has proposed or applied,
// so every commit the leader acknowledged is at or below it, and an
// in-flight one is waited for. It is resolved like any read, which raises
// the key's floor to it: a commit at or below it that the read missed can
// no longer be proposed. (A fresh timestamp from the oracle would do too,
// at the cost of a round trip to it.) The
// transaction's commit then checks the key for writes after lockTs, not
// after its snapshot. Locks are released when the holder's commit has been
// applied, or when it rolls back. A new leader starts with no locks; a
// writer that lost its lock that way still cannot overwrite a commit it
// did not see, since the check after lockTs stands.
type lockTable struct {
	locks   map[string]*rowLock
	waiting map[uint64]*rowLock  // owner → the lock it waits for
	held    map[uint64][]string  // owner → the keys it holds
	ended   map[uint64]time.Time // owners that ended: late acquisitions give up
	nodeOf  map[uint64]uint64    // owner → the node its transaction runs on
	endedQ  []endedOwner         // the same, oldest first, for pruning
	endedAt int                  // endedQ[:endedAt] are pruned
}

type endedOwner struct {
	owner uint64
	at    time.Time
}

type rowLock struct {
	holder uint64
	free   chan struct{} // closed on release
}

// endedKeep is how long an ended owner is remembered.
const endedKeep = time.Minute

// errOwnerEnded: a lock request of a transaction that ended, or whose
// locks were released because its node was reported dead. Retryable: the
// transaction failed without effect.
var errOwnerEnded = fmt.Errorf("raft: the transaction's locks were released (it ended, or its node was reported dead): %w", kvcluster.ErrWriteConflict)

func (lt *lockTable) init() {
	if lt.locks == nil {
		lt.locks = make(map[string]*rowLock)
		lt.waiting = make(map[uint64]*rowLock)
		lt.held = make(map[uint64][]string)
		lt.ended = make(map[uint64]time.Time)
		lt.nodeOf = make(map[uint64]uint64)
	}
}

// deadlocks reports whether owner waiting for l would close a cycle.
func (lt *lockTable) deadlocks(owner uint64, l *rowLock) bool {
	for seen := 0; l != nil && seen < 1<<16; seen++ {
		if l.holder == owner {
			return true
		}
		l = lt.waiting[l.holder]
	}
	return false
}

// release frees every lock owner holds and remembers it ended.
func (lt *lockTable) release(owner uint64) {
	lt.init()
	for _, k := range lt.held[owner] {
		if l := lt.locks[k]; l != nil && l.holder == owner {
			delete(lt.locks, k)
			close(l.free)
		}
	}
	delete(lt.held, owner)
	delete(lt.nodeOf, owner)
	now := time.Now()
	lt.ended[owner] = now
	lt.endedQ = append(lt.endedQ, endedOwner{owner, now})
	for ; lt.endedAt < len(lt.endedQ) && now.Sub(lt.endedQ[lt.endedAt].at) > endedKeep; lt.endedAt++ {
		if e := lt.endedQ[lt.endedAt]; lt.ended[e.owner] == e.at {
			delete(lt.ended, e.owner)
		}
	}
	// Drop the pruned prefix once it is most of the queue: amortized O(1).
	if lt.endedAt > 1024 && 2*lt.endedAt > len(lt.endedQ) {
		lt.endedQ = append([]endedOwner(nil), lt.endedQ[lt.endedAt:]...)
		lt.endedAt = 0
	}
}

// reset drops every lock, when leadership is lost.
func (lt *lockTable) reset() {
	for _, l := range lt.locks {
		close(l.free)
	}
	*lt = lockTable{}
}

// lock takes key's lock for owner, waiting for its holder, then reads the
// key's latest value as of lockTs (see lockTable), which it returns.
func (r *replica) lock(ctx context.Context, key []byte, owner, node uint64) (value []byte, found bool, lockTs uint64, err error) {
	for {
		r.mu.Lock()
		if err := r.leaderCheckLocked(); err != nil {
			r.mu.Unlock()
			return nil, false, 0, err
		}
		if !r.inSpanLocked(key) {
			r.mu.Unlock()
			return nil, false, 0, fmt.Errorf("%w: key %q", errWrongShard, key)
		}
		lt := &r.locks
		lt.init()
		if _, gone := lt.ended[owner]; gone {
			r.mu.Unlock()
			return nil, false, 0, errOwnerEnded
		}
		lt.nodeOf[owner] = node
		l := lt.locks[string(key)]
		if l == nil {
			lt.locks[string(key)] = &rowLock{holder: owner, free: make(chan struct{})}
			lt.held[owner] = append(lt.held[owner], string(key))
			r.mu.Unlock()
			break
		}
		if l.holder == owner {
			r.mu.Unlock()
			break
		}
		if lt.deadlocks(owner, l) {
			r.mu.Unlock()
			return nil, false, 0, fmt.Errorf("raft: lock: %w", kvcluster.ErrDeadlock)
		}
		lt.waiting[owner] = l
		r.mu.Unlock()
		select {
		case <-l.free:
		case <-r.n.stopCtx.Done():
		case <-ctx.Done():
		}
		r.mu.Lock()
		if r.locks.waiting != nil && r.locks.waiting[owner] == l {
			delete(r.locks.waiting, owner)
		}
		r.mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, false, 0, err
		}
		if r.n.stopCtx.Err() != nil {
			return nil, false, 0, errNodeClosed
		}
	}
	// Resolved first at the owner's snapshot: a new leader then has
	// applied every earlier leader's commit, so maxTs is above them.
	if err = r.resolve(ctx, owner, pointRead(key)); err != nil {
		return nil, false, 0, err
	}
	for range 4 {
		r.mu.Lock()
		lockTs = max(owner, r.maxTs)
		r.mu.Unlock()
		if err = r.resolve(ctx, lockTs, pointRead(key)); err != nil {
			return nil, false, 0, err
		}
		// A cross-shard transaction's intent resolved as committed may
		// have raised maxTs: read at the new one.
		resolved, err := r.resolveIntents(ctx, lockTs, owner, pointRead(key))
		if err != nil {
			return nil, false, 0, err
		}
		if !resolved {
			break
		}
	}
	value, found, err = r.n.sm.get(lockTs, key)
	return value, found, lockTs, err
}

// releaseDead releases the locks of transactions whose node is not in
// alive: a node that died cannot end them. A transaction waiting for a
// lock on behalf of a dead node gives up.
func (r *replica) releaseDead(alive map[uint64]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var dead []uint64
	for owner, node := range r.locks.nodeOf {
		if !alive[node] {
			dead = append(dead, owner)
		}
	}
	for _, owner := range dead {
		r.locks.release(owner)
		r.n.log.Warn("released the row locks of a dead node's transaction", "shard", r.id, "owner", owner)
	}
}

// unlock releases owner's locks.
func (r *replica) unlock(owner uint64) {
	r.mu.Lock()
	r.locks.release(owner)
	r.mu.Unlock()
}
