package raft

import (
	"context"
	"maps"
	"slices"
	"time"

	etcdraft "go.etcd.io/etcd/raft/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"

	"github.com/shaledb/shaledb/replication/registry"
)

// Replica repair, and row locks of dead nodes' transactions (locks.go).
// Every shard's leader watches the liveness of its group's
// members in the registry. Once a member's node has been dead for
// DeadReplicaAfter, and a live node holds no replica of the shard, the
// leader adds that node to the group (publishing it in the shard map
// first, so the node starts an empty replica that learns the whole log
// from the leader), then removes the dead member. One membership change
// is in flight at a time. The shard map follows the group's voters.

// repairInterval is how often leaders look at their members;
// confPendingMax is how long a proposed membership change may take.
const (
	repairInterval = 500 * time.Millisecond
	confPendingMax = 10 * time.Second
)

// repairRound returns the repair loop's round (every repairInterval): it
// follows the nodes' liveness, releases dead nodes' locks, and has each
// leader repair, publish, split and place its shard.
func (n *Node) repairRound() func() {
	deadSince := map[uint64]time.Time{}
	return func() {
		n.shards.reconcile()
		ctx, cancel := context.WithTimeout(n.stopCtx, 2*time.Second)
		defer cancel()
		nodes, err := n.reg.Nodes(ctx)
		if err == nil {
			err = n.loadPlacements(ctx)
		}
		if err != nil {
			return
		}
		now := time.Now()
		for _, nd := range nodes {
			if nd.Alive {
				delete(deadSince, nd.ID)
			} else if _, ok := deadSince[nd.ID]; !ok {
				deadSince[nd.ID] = now
			}
		}
		// A node counts as gone for its locks once it has been dead
		// for a lease period more: a lease can lapse under load.
		alive := map[uint64]bool{}
		for _, nd := range nodes {
			since, dead := deadSince[nd.ID]
			alive[nd.ID] = !dead || time.Since(since) < n.opts.LeaseTTL
		}
		n.alive.Store(&alive)
		for _, r := range n.replicaList() {
			r.releaseDead(alive)
			if err := r.repair(ctx, nodes, deadSince); err != nil && n.stopCtx.Err() == nil {
				n.log.Warn("replica repair", "shard", r.id, "err", err)
			}
			if err := r.syncMap(ctx); err != nil && n.stopCtx.Err() == nil {
				n.log.Warn("shard map", "shard", r.id, "err", err)
			}
			if err := r.maybeSplit(ctx); err != nil && n.stopCtx.Err() == nil {
				n.log.Warn("shard split", "shard", r.id, "err", err)
			}
		}
	}
}

// repair is one look, by the shard's leader, at the group's members.
func (r *replica) repair(ctx context.Context, nodes []registry.Node, deadSince map[uint64]time.Time) error {
	r.mu.Lock()
	if !r.isLeader || !r.floorSet {
		r.mu.Unlock()
		return nil
	}
	desc := r.desc
	desc.Start, desc.End = r.span.Start, r.span.End // the log's, not the map's
	st := r.rn.Status()
	voters := slices.Sorted(maps.Keys(st.Config.Voters.IDs()))
	learners := slices.Sorted(maps.Keys(st.Config.Learners))
	pending := r.confPending && time.Since(r.confPendingSince) < confPendingMax
	r.mu.Unlock()
	if pending {
		return nil
	}
	// The map follows the group.
	members := slices.Sorted(slices.Values(append(slices.Clone(voters), learners...)))
	if !slices.Equal(slices.Sorted(slices.Values(desc.Replicas)), members) {
		desc.Replicas = members
		return r.n.shards.publish(ctx, desc)
	}
	// A learner that has caught up becomes a voter.
	for _, id := range learners {
		if pr, ok := st.Progress[id]; ok && pr.Match >= st.Commit {
			return r.proposeConfChange(raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: id})
		}
	}
	if len(learners) > 0 {
		return nil // still catching up
	}
	var dead []uint64
	for _, id := range voters {
		if since, ok := deadSince[id]; ok && time.Since(since) >= r.n.opts.DeadReplicaAfter {
			dead = append(dead, id)
		}
	}
	if len(dead) == 0 {
		return r.place(ctx, nodes, desc, voters)
	}
	if len(voters) > r.n.opts.ReplicationFactor {
		// The replacement is a voter: take the dead member out.
		return r.proposeConfChange(raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: dead[0]})
	}
	// A placed shard's replacement stays in its region.
	region := r.n.regionOf(span{Start: desc.Start, End: desc.End})
	regionOf := map[uint64]string{}
	for _, nd := range nodes {
		regionOf[nd.ID] = nd.Region
	}
	candidate := pickNodeWhere(nodes, voters, func(id uint64) bool { return region == "" || regionOf[id] == region }, r.n.replicaLoad())
	if candidate == 0 {
		return nil // no live node to move to: stay under-replicated
	}
	// Published first, so the node starts the (empty) replica that the
	// leader then brings up to date as a learner, outside the quorum.
	desc.Replicas = append(slices.Clone(voters), candidate)
	if err := r.n.shards.publish(ctx, desc); err != nil {
		return err
	}
	r.n.log.Info("re-creating a dead node's replica", "shard", r.id, "dead", dead[0], "on", candidate)
	return r.proposeConfChange(raftpb.ConfChange{Type: raftpb.ConfChangeAddLearnerNode, NodeID: candidate})
}

func (r *replica) proposeConfChange(cc raftpb.ConfChange) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.isLeader {
		return nil
	}
	if err := r.rn.ProposeConfChange(cc); err != nil {
		return err
	}
	r.confPending, r.confPendingSince = true, time.Now()
	r.n.wake()
	return nil
}

// dropReplica stops this node's replica of a shard it no longer holds.
// Its log and data stay on disk.
func (n *Node) dropReplica(shard uint64) {
	n.mu.Lock()
	r := n.replicas[shard]
	delete(n.replicas, shard)
	n.mu.Unlock()
	if r != nil {
		r.mu.Lock()
		r.onSoftStateLocked(&etcdraft.SoftState{RaftState: etcdraft.StateFollower})
		r.mu.Unlock()
		n.log.Info("dropped the replica of a shard moved off this node", "shard", shard)
	}
}
