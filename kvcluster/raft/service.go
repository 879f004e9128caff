package raft

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shaledb/shaledb/kvcluster"
)

// Status is the outcome class of a request to a shard's replica.
type Status int

// Statuses. A request that is not statusOK says what the caller does next.
const (
	StatusOK         Status = iota
	StatusNotLeader         // ask Leader (0: unknown; try another replica)
	StatusNoReplica         // this node holds no replica of the shard (now)
	StatusWrongShard        // a key lies outside the shard: refresh the map
	StatusConflict          // the commit lost a write-write race
	StatusRetryTs           // the commit timestamp is below a served read: take a new one
	StatusAmbiguous         // the commit was proposed but its fate is unknown here
	StatusDeadlock          // waiting for the lock would close a cycle
	StatusError             // Err says what failed
)

// ReadArgs asks a shard's leader for a read as of Ts: a point read of Key,
// or with Scan, up to Limit entries of [Start, End).
type ReadArgs struct {
	Shard   uint64
	Ts      uint64
	Key     []byte
	Scan    bool
	Start   []byte
	End     []byte
	Limit   int
	Reverse bool
}

// ReadReply answers ReadArgs.
type ReadReply struct {
	Status Status
	Leader uint64
	Err    string
	Value  []byte
	Found  bool
	KVs    []kvcluster.KeyValue
}

// CommitArgs proposes a transaction's writes to a shard's log.
type CommitArgs struct {
	Shard    uint64
	StartTs  uint64
	CommitTs uint64
	Writes   []mutation
}

// CommitReply answers CommitArgs.
type CommitReply struct {
	Status Status
	Leader uint64
	Err    string
}

// CommitStatusArgs asks whether the commit at CommitTs, which wrote Key,
// was applied. Answering it also makes sure it never will be, if it was
// not: the leader serves it as a read at CommitTs.
type CommitStatusArgs struct {
	Shard    uint64
	CommitTs uint64
	Key      []byte
}

// CommitStatusReply answers CommitStatusArgs.
type CommitStatusReply struct {
	Status    Status
	Leader    uint64
	Err       string
	Committed bool
}

// LockArgs asks a shard's leader for Key's row lock on behalf of the
// transaction whose snapshot is Owner.
type LockArgs struct {
	Shard uint64
	Key   []byte
	Owner uint64
	Node  uint64 // the node the transaction runs on
	// Snapshot: read the key at the owner's snapshot first, and lock it
	// only if it is there (kvcluster.SnapshotLocker).
	Snapshot bool
}

// LockReply answers LockArgs with the key's latest value as of LockTs
// (and, for a Snapshot request, its snapshot value).
type LockReply struct {
	Status    Status
	Leader    uint64
	Err       string
	Value     []byte
	Found     bool
	LockTs    uint64
	SnapValue []byte
	SnapFound bool
}

// UnlockArgs releases Owner's locks on a shard (it rolled back).
type UnlockArgs struct {
	Shard uint64
	Owner uint64
}

// UnlockReply answers UnlockArgs.
type UnlockReply struct {
	Status Status
	Leader uint64
	Err    string
}

// ShardStatsArgs asks a shard's leader about the shard.
type ShardStatsArgs struct{ Shard uint64 }

// ShardStatsReply answers ShardStatsArgs: the leader's id (in Leader when
// Status is StatusOK too) and the shard's size.
type ShardStatsReply struct {
	Status    Status
	Leader    uint64
	Err       string
	SizeBytes int64
	Keys      int64
	Applied   uint64
}

// DropArgs asks a shard's leader to remove the keys under Prefix, as of Ts.
type DropArgs struct {
	Shard  uint64
	Ts     uint64
	Prefix []byte
}

// DropReply answers DropArgs.
type DropReply struct {
	Status Status
	Leader uint64
	Err    string
}

// OldestSnapshotArgs asks a node for the snapshot timestamp of its oldest
// open transaction.
type OldestSnapshotArgs struct{}

// OldestSnapshotReply answers OldestSnapshotArgs: 0 while a transaction
// is being given its timestamp, MaxUint64 if none is open.
type OldestSnapshotReply struct{ Oldest uint64 }

// TimestampArgs asks the elected oracle for N timestamps.
type TimestampArgs struct {
	N      int
	Schema bool // a schema timestamp (tso.Oracle.AllocateEpoch)
}

// TimestampReply answers TimestampArgs with the first of them.
type TimestampReply struct {
	Status Status
	Err    string
	First  uint64
	Epoch  uint64
}

// requestTimeout bounds the work one incoming request may cause.
const requestTimeout = 10 * time.Second

// peerService is the net/rpc face of a node, for other nodes.
type peerService struct{ n *Node }

func (s *peerService) Read(a *ReadArgs, r *ReadReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveRead(ctx, a)
	return nil
}

func (s *peerService) Commit(a *CommitArgs, r *CommitReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveCommit(ctx, a)
	return nil
}

func (s *peerService) CommitStatus(a *CommitStatusArgs, r *CommitStatusReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveCommitStatus(ctx, a)
	return nil
}

func (s *peerService) Lock(a *LockArgs, r *LockReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveLock(ctx, a)
	return nil
}

func (s *peerService) Unlock(a *UnlockArgs, r *UnlockReply) error {
	*r = s.n.serveUnlock(a)
	return nil
}

func (s *peerService) ShardStats(a *ShardStatsArgs, r *ShardStatsReply) error {
	*r = s.n.serveShardStats(a)
	return nil
}

func (s *peerService) Drop(a *DropArgs, r *DropReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveDrop(ctx, a)
	return nil
}

func (s *peerService) OldestSnapshot(_ *OldestSnapshotArgs, r *OldestSnapshotReply) error {
	r.Oldest = s.n.snaps.oldest()
	return nil
}

func (s *peerService) SnapshotData(a *SnapshotDataArgs, r *SnapshotDataReply) error {
	*r = s.n.serveSnapshotData(a)
	return nil
}

func (s *peerService) Timestamp(a *TimestampArgs, r *TimestampReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	first, epoch, err := s.n.oracle.AllocateEpoch(ctx, a.N, a.Schema)
	if err != nil {
		*r = TimestampReply{Status: StatusNotLeader, Err: err.Error()}
		return nil
	}
	*r = TimestampReply{First: first, Epoch: epoch}
	return nil
}

// requestContext is the context of an incoming request: bounded, and
// cancelled when the node stops.
func (n *Node) requestContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	stop := context.AfterFunc(n.stopCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// statusOf classifies a replica's error for the wire.
func statusOf(err error) (Status, uint64, string) {
	var nl *notLeaderError
	switch {
	case err == nil:
		return StatusOK, 0, ""
	case errors.As(err, &nl):
		return StatusNotLeader, nl.leader, ""
	case errors.Is(err, errNoReplica), errors.Is(err, errNodeClosed):
		return StatusNoReplica, 0, "" // another replica may answer
	case errors.Is(err, errWrongShard):
		return StatusWrongShard, 0, err.Error()
	case errors.Is(err, kvcluster.ErrDeadlock):
		return StatusDeadlock, 0, err.Error()
	case errors.Is(err, errOwnerEnded), errors.Is(err, errSnapshotTooOld):
		return StatusConflict, 0, err.Error()
	case errors.Is(err, errRetryTs):
		return StatusRetryTs, 0, ""
	case errors.Is(err, errAmbiguous):
		return StatusAmbiguous, 0, err.Error()
	}
	return StatusError, 0, err.Error()
}

// serving admits a request for shard: it returns this node's replica of
// it, or nil when the node holds none or is closing. release ends the
// request (see Node.use).
func (n *Node) serving(shard uint64) (r *replica, release func()) {
	release, ok := n.use()
	if !ok {
		return nil, func() {}
	}
	if r = n.replica(shard); r == nil {
		release()
		return nil, func() {}
	}
	return r, release
}

func (n *Node) serveRead(ctx context.Context, a *ReadArgs) ReadReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return ReadReply{Status: StatusNoReplica}
	}
	var reply ReadReply
	err := r.read(ctx, a, &reply)
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

func (n *Node) serveCommit(ctx context.Context, a *CommitArgs) CommitReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return CommitReply{Status: StatusNoReplica}
	}
	out, err := r.commit(ctx, a)
	if err == nil && out == conflict {
		return CommitReply{Status: StatusConflict}
	}
	var reply CommitReply
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

func (n *Node) serveLock(ctx context.Context, a *LockArgs) LockReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return LockReply{Status: StatusNoReplica}
	}
	var reply LockReply
	var err error
	if a.Snapshot {
		var rr ReadReply
		if err = r.read(ctx, &ReadArgs{Shard: a.Shard, Ts: a.Owner, Key: a.Key}, &rr); err != nil || !rr.Found {
			reply.Status, reply.Leader, reply.Err = statusOf(err)
			return reply
		}
		reply.SnapValue, reply.SnapFound = rr.Value, true
	}
	reply.Value, reply.Found, reply.LockTs, err = r.lock(ctx, a.Key, a.Owner, a.Node)
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

func (n *Node) serveUnlock(a *UnlockArgs) UnlockReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return UnlockReply{Status: StatusNoReplica}
	}
	r.mu.Lock()
	err := r.leaderCheckLocked()
	r.mu.Unlock()
	if err == nil {
		r.unlock(a.Owner)
	}
	var reply UnlockReply
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

func (n *Node) serveShardStats(a *ShardStatsArgs) ShardStatsReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return ShardStatsReply{Status: StatusNoReplica}
	}
	r.mu.Lock()
	err := r.leaderCheckLocked()
	start, end, applied := r.span.Start, r.span.End, r.applied
	r.mu.Unlock()
	var reply ShardStatsReply
	if err == nil {
		reply.Leader, reply.Applied = n.id, applied
		reply.SizeBytes, reply.Keys, err = n.sm.size(start, end)
	}
	st, leader, msg := statusOf(err)
	reply.Status, reply.Err = st, msg
	if st != StatusOK {
		reply.Leader = leader
	}
	return reply
}

func (n *Node) serveDrop(ctx context.Context, a *DropArgs) DropReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return DropReply{Status: StatusNoReplica}
	}
	var reply DropReply
	reply.Status, reply.Leader, reply.Err = statusOf(r.dropPrefix(ctx, a.Prefix, a.Ts))
	return reply
}

func (n *Node) serveCommitStatus(ctx context.Context, a *CommitStatusArgs) CommitStatusReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return CommitStatusReply{Status: StatusNoReplica}
	}
	var reply CommitStatusReply
	err := r.resolve(ctx, a.CommitTs, everything)
	if err == nil {
		reply.Committed, err = n.sm.hasVersion(a.Key, a.CommitTs)
	}
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

// Errors of a replica, turned into Statuses on the wire.
var (
	errNoReplica  = errors.New("raft: no replica of the shard on this node")
	errWrongShard = errors.New("raft: key outside the shard")
	errRetryTs    = errors.New("raft: commit timestamp below a served read")
	errAmbiguous  = errors.New("raft: commit outcome unknown")
	errNodeClosed = fmt.Errorf("raft: node closed: %w", kvcluster.ErrClosed)
)

// notLeaderError says which node leads the shard, if known (0 if not).
type notLeaderError struct{ leader uint64 }

func (e *notLeaderError) Error() string {
	return fmt.Sprintf("raft: not the shard's leader (leader %d)", e.leader)
}
