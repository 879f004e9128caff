package raft

import (
	"context"
	"errors"
	"fmt"
)

// Follower reads (kvcluster.TxnOptions.FollowerReads, RFC 0014).
//
// A transaction that asks for them reads each shard from this node's
// replica if it holds one, else from a replica that does not lead. That
// replica asks the leader for a read index: the leader resolves the read
// as its own (raising the read floor, waiting for its in-flight proposals
// on the keys, catching up with earlier terms) and answers how far it has
// applied. The replica waits until it has applied as far, and reads its
// own state at the snapshot: what the leader would have read. A replica
// that meets an intent of a cross-shard transaction below the snapshot
// leaves the read to the leader, which resolves it.

// ReadIndexArgs asks a shard's leader how far a replica must have applied
// to serve the read a describes.
type ReadIndexArgs struct{ Read ReadArgs }

// ReadIndexReply answers ReadIndexArgs.
type ReadIndexReply struct {
	Status Status
	Leader uint64
	Err    string
	Index  uint64
}

func (r *ReadIndexReply) result() (Status, uint64) { return r.Status, r.Leader }

func (s *peerService) ReadIndex(a *ReadIndexArgs, r *ReadIndexReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveReadIndex(ctx, a)
	return nil
}

func (s *peerService) FollowerRead(a *ReadArgs, r *ReadReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveFollowerRead(ctx, a)
	return nil
}

func (n *Node) serveReadIndex(ctx context.Context, a *ReadIndexArgs) ReadIndexReply {
	r, release := n.serving(a.Read.Shard)
	defer release()
	if r == nil {
		return ReadIndexReply{Status: StatusNoReplica}
	}
	var reply ReadIndexReply
	var err error
	reply.Index, err = r.readIndex(ctx, &a.Read)
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

// readIndex resolves a read as the leader would serve it and returns the
// index it has applied.
func (r *replica) readIndex(ctx context.Context, a *ReadArgs) (uint64, error) {
	if err := r.checkRead(a); err != nil {
		return 0, err
	}
	if err := r.resolve(ctx, a.Ts, a.keys()); err != nil {
		return 0, err
	}
	if err := r.checkRead(a); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied, nil
}

// keys is what the read covers.
func (a *ReadArgs) keys() readKeys {
	if a.Scan {
		return readKeys{start: a.Start, end: a.End}
	}
	return pointRead(a.Key)
}

// errLeaveToLeader: a follower read the leader must serve (an intent to
// resolve).
var errLeaveToLeader = errors.New("raft: the read meets an intent: read from the leader")

func (n *Node) serveFollowerRead(ctx context.Context, a *ReadArgs) ReadReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return ReadReply{Status: StatusNoReplica}
	}
	var reply ReadReply
	err := r.followerRead(ctx, a, &reply)
	if errors.Is(err, errLeaveToLeader) {
		return ReadReply{Status: StatusNotLeader}
	}
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

// followerRead serves a read on this replica, leader or not.
func (r *replica) followerRead(ctx context.Context, a *ReadArgs, reply *ReadReply) error {
	r.mu.Lock()
	leading, leader := r.isLeader, r.leader
	r.mu.Unlock()
	if leading {
		return r.read(ctx, a, reply)
	}
	if leader == 0 {
		return errLeaveToLeader
	}
	p, err := r.n.transport.peerFor(leader)
	if err != nil {
		return errLeaveToLeader
	}
	var ri ReadIndexReply
	if _, err := p.call(ctx, "ReadIndex", &ReadIndexArgs{Read: *a}, &ri); err != nil || ri.Status != StatusOK {
		if err == nil && ri.Status == StatusWrongShard {
			return fmt.Errorf("%w: %s", errWrongShard, ri.Err)
		}
		return errLeaveToLeader
	}
	if err := r.waitApplied(ctx, ri.Index); err != nil {
		return err
	}
	if err := r.checkRead(a); err != nil {
		return err
	}
	ins, err := r.n.sm.intentsIn(a.keys())
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.StartTs < a.Ts {
			return errLeaveToLeader
		}
	}
	if a.Scan {
		reply.KVs, err = r.n.sm.scan(a.Ts, a.Start, a.End, a.Limit, a.Reverse)
	} else {
		reply.Value, reply.Found, err = r.n.sm.get(a.Ts, a.Key)
	}
	if err == nil {
		r.n.followerReads.Add(1)
	}
	return err
}

// readShard reads from shard d: from its leader, or with follower from a
// near replica (falling back to the leader).
func (n *Node) readShard(ctx context.Context, d shardDesc, a *ReadArgs, reply *ReadReply, follower bool) error {
	if follower {
		target := n.id
		if n.replica(d.ID) == nil {
			target = 0
			leader := n.shards.leader(d.ID)
			for _, id := range d.Replicas {
				if id != leader {
					target = id
					break
				}
			}
		}
		if target != 0 {
			var err error
			if target == n.id {
				*reply = n.serveFollowerRead(ctx, a)
			} else {
				var p *peer
				if p, err = n.transport.peerFor(target); err == nil {
					_, err = p.call(ctx, "FollowerRead", a, reply)
				}
			}
			if err == nil && reply.Status != StatusNotLeader && reply.Status != StatusNoReplica {
				return nil
			}
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			*reply = ReadReply{}
		}
	}
	return n.onLeader(ctx, d, "Read", a, reply, func() { *reply = n.serveRead(ctx, a) })
}
