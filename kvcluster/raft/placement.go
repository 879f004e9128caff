package raft

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/replication/registry"
)

// Placement and rebalancing (RFC 0014).
//
// A placement says that the shards of a key span keep their replicas and
// their leaders on the nodes of one region. It lives in etcd under
// placements/<hex start>; every node reloads them with its repair loop.
// PlaceSpan splits shards at the span's bounds, writes the placement and
// waits until the shards have moved.
//
// Every shard's leader moves its group towards where it belongs, one
// membership change at a time, the same three steps as replica repair
// (repair.go): add a learner on a node where it belongs (the one holding
// the fewest replicas), promote it once it has the log, remove a member
// that does not belong (or, with none, the one on the node holding the
// most replicas). A leader on a node where the shard does not belong
// hands leadership to a member that does first.
//
// Shards without a placement are spread over the live nodes: when a node
// holds at least two replicas fewer than a member of some shard it has no
// replica of, that shard — the first such in the map, so that one shard
// moves at a time across the cluster — gets a replica there and drops
// the one on its most loaded member. A node that joins thus takes its
// share.

// placementRec is one placement: the shards of [Start, End) (a nil End:
// no bound) belong in Region.
type placementRec struct {
	Start  []byte `json:"start"`
	End    []byte `json:"end"`
	Region string `json:"region"`
}

func (m *shardMap) placementKey(start []byte) string {
	return m.prefix + "placements/" + hex.EncodeToString(start)
}

// loadPlacements reads the placements from etcd (repair loop).
func (n *Node) loadPlacements(ctx context.Context) error {
	resp, err := n.opts.Etcd.Get(ctx, n.shards.prefix+"placements/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("raft: read placements: %w", err)
	}
	var list []placementRec
	for _, kv := range resp.Kvs {
		var p placementRec
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return fmt.Errorf("raft: corrupt placement %s: %w", kv.Key, err)
		}
		list = append(list, p)
	}
	n.placements.Store(&list)
	return nil
}

// regionOf returns the region the shard spanning sp belongs in: that of
// a placement holding all of it ("" if none does).
func (n *Node) regionOf(sp span) string {
	list := n.placements.Load()
	if list == nil {
		return ""
	}
	for _, p := range *list {
		if bytes.Compare(sp.Start, p.Start) >= 0 && (p.End == nil || sp.End != nil && bytes.Compare(sp.End, p.End) <= 0) {
			return p.Region
		}
	}
	return ""
}

// balanceInterval is how often a leader may start moving a replica to
// spread replicas.
const balanceInterval = 2 * time.Second

// place is one look, by a shard's leader that has no membership change
// in flight and no learner, at whether its group is where it belongs
// (repair loop). voters are the group's voters.
func (r *replica) place(ctx context.Context, nodes []registry.Node, desc shardDesc, voters []uint64) error {
	region := r.n.regionOf(span{Start: desc.Start, End: desc.End})
	byID := make(map[uint64]registry.Node, len(nodes))
	for _, nd := range nodes {
		byID[nd.ID] = nd
	}
	fits := func(id uint64) bool {
		nd, ok := byID[id]
		return ok && nd.Alive && (region == "" || nd.Region == region)
	}
	load := r.n.replicaLoad()
	// Too many voters (a replacement was promoted): remove the one that
	// does not fit, or the one on the most loaded node.
	if len(voters) > r.n.opts.ReplicationFactor {
		victim := slices.MaxFunc(voters, func(a, b uint64) int {
			return cmp.Or(cmpBool(!fits(a), !fits(b)), cmp.Compare(load[a], load[b]), cmp.Compare(a, b))
		})
		if victim == r.n.id {
			return r.handOff(voters, fits, load)
		}
		r.n.log.Info("moving a replica: removing", "shard", r.id, "node", victim)
		return r.proposeConfChange(raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode, NodeID: victim})
	}
	misplaced := slices.ContainsFunc(voters, func(id uint64) bool {
		nd, ok := byID[id]
		return ok && nd.Alive && !fits(id)
	})
	if !misplaced && region != "" && !fits(r.n.id) {
		return r.handOff(voters, fits, load)
	}
	var candidate uint64
	if misplaced {
		candidate = pickNodeWhere(nodes, voters, fits, load)
	} else if region == "" && time.Since(r.balanced) >= balanceInterval {
		candidate = r.n.balanceTarget(r.id, nodes, load)
	}
	if candidate == 0 {
		return nil
	}
	r.balanced = time.Now()
	desc.Replicas = append(slices.Clone(voters), candidate)
	if err := r.n.shards.publish(ctx, desc); err != nil {
		return err
	}
	r.n.log.Info("moving a replica: adding", "shard", r.id, "on", candidate, "region", region)
	return r.proposeConfChange(raftpb.ConfChange{Type: raftpb.ConfChangeAddLearnerNode, NodeID: candidate})
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// handOff transfers leadership to the voter that fits on the least loaded
// node, if any.
func (r *replica) handOff(voters []uint64, fits func(uint64) bool, load map[uint64]int) error {
	var to uint64
	for _, id := range voters {
		if id != r.n.id && fits(id) && (to == 0 || load[id] < load[to]) {
			to = id
		}
	}
	if to == 0 {
		return nil
	}
	r.n.log.Info("handing leadership over", "shard", r.id, "to", to)
	return r.n.TransferLeadership(r.id, to)
}

// replicaLoad counts the replicas each node holds, as the map says.
func (n *Node) replicaLoad() map[uint64]int {
	load := map[uint64]int{}
	n.shards.mu.Lock()
	defer n.shards.mu.Unlock()
	for _, d := range n.shards.shards {
		for _, id := range d.Replicas {
			load[id]++
		}
	}
	return load
}

// pickNodeWhere chooses a live node outside members for which fits
// holds, the one holding the fewest replicas (load), lowest id first.
func pickNodeWhere(nodes []registry.Node, members []uint64, fits func(uint64) bool, load map[uint64]int) uint64 {
	var best uint64
	for _, nd := range nodes {
		if !nd.Alive || slices.Contains(members, nd.ID) || !fits(nd.ID) {
			continue
		}
		if best == 0 || cmp.Or(cmp.Compare(load[nd.ID], load[best]), cmp.Compare(nd.ID, best)) < 0 {
			best = nd.ID
		}
	}
	return best
}

// balanceTarget returns the node shard should get a replica on to spread
// replicas, or 0: the least loaded live node, if it holds at least two
// fewer than a member of some unplaced shard it has no replica of, and
// shard is the first such shard in the map.
func (n *Node) balanceTarget(shard uint64, nodes []registry.Node, load map[uint64]int) uint64 {
	var target uint64
	for _, nd := range nodes {
		if nd.Alive && (target == 0 || cmp.Or(cmp.Compare(load[nd.ID], load[target]), cmp.Compare(nd.ID, target)) < 0) {
			target = nd.ID
		}
	}
	if target == 0 {
		return 0
	}
	n.shards.mu.Lock()
	defer n.shards.mu.Unlock()
	for _, d := range n.shards.shards {
		if slices.Contains(d.Replicas, target) || n.regionOf(span{Start: d.Start, End: d.End}) != "" {
			continue
		}
		if slices.ContainsFunc(d.Replicas, func(id uint64) bool { return load[id] >= load[target]+2 }) {
			if d.ID == shard {
				return target
			}
			return 0 // another shard moves first
		}
	}
	return 0
}

// SplitAtArgs asks a shard's leader to split the shard at Key.
type SplitAtArgs struct {
	Shard uint64
	Key   []byte
}

// SplitAtReply answers SplitAtArgs.
type SplitAtReply struct {
	Status Status
	Leader uint64
	Err    string
}

func (r *SplitAtReply) result() (Status, uint64) { return r.Status, r.Leader }

func (s *peerService) SplitAt(a *SplitAtArgs, r *SplitAtReply) error {
	ctx, cancel := s.n.requestContext()
	defer cancel()
	*r = s.n.serveSplitAt(ctx, a)
	return nil
}

func (n *Node) serveSplitAt(ctx context.Context, a *SplitAtArgs) SplitAtReply {
	r, release := n.serving(a.Shard)
	defer release()
	if r == nil {
		return SplitAtReply{Status: StatusNoReplica}
	}
	r.mu.Lock()
	err := r.leaderCheckLocked()
	sp := r.span
	r.mu.Unlock()
	if err == nil {
		switch {
		case !sp.contains(a.Key):
			err = fmt.Errorf("%w: key %q", errWrongShard, a.Key)
		case !bytes.Equal(a.Key, sp.Start):
			err = r.proposeSplit(ctx, sp, a.Key, "a placement's bound")
		}
	}
	var reply SplitAtReply
	reply.Status, reply.Leader, reply.Err = statusOf(err)
	return reply
}

// splitAt makes key the start of a shard, and waits until the map says so.
func (kv *KV) splitAt(ctx context.Context, key []byte) error {
	n := kv.n
	var asked time.Time
	for {
		d, err := n.shards.lookup(ctx, key)
		if err != nil {
			return err
		}
		if bytes.Equal(d.Start, key) {
			return nil
		}
		if time.Since(asked) > splitRetry {
			a := &SplitAtArgs{Shard: d.ID, Key: key}
			var reply SplitAtReply
			if err := n.onLeader(ctx, d, "SplitAt", a, &reply, func() { reply = n.serveSplitAt(ctx, a) }); err != nil {
				return err
			}
			switch reply.Status {
			case StatusOK:
				asked = time.Now()
			case StatusWrongShard:
				if err := n.shards.stale(ctx); err != nil {
					return err
				}
				continue
			default:
				return fmt.Errorf("raft: split shard %d: %w", d.ID, statusError(ctx, reply.Status, reply.Err))
			}
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("raft: split at %q: %w", key, ctx.Err())
		}
	}
}

var _ kvcluster.Placer = (*KV)(nil)

// ErrNoRegion: a placement names a region with too few live nodes.
var ErrNoRegion = errors.New("raft: not enough live nodes in the region")

// PlaceSpan moves the shards of [start, end) (a nil end: no bound) onto
// the nodes of region, replicas and leaders, and keeps them there; the
// span stays readable and writable meanwhile. It splits shards at the
// span's bounds first, and returns once every shard of the span is in
// region (or with ctx's error; the move goes on). A region with fewer
// live nodes than the replication factor is refused (ErrNoRegion,
// wrapping kvcluster.ErrInvalidArgument).
func (kv *KV) PlaceSpan(ctx context.Context, start, end []byte, region string) error {
	n := kv.n
	nodes, err := n.reg.Nodes(ctx)
	if err != nil {
		return err
	}
	live := 0
	for _, nd := range nodes {
		if nd.Alive && nd.Region == region {
			live++
		}
	}
	if live < n.opts.ReplicationFactor {
		return fmt.Errorf("%w: %w: region %q has %d, a shard needs %d", kvcluster.ErrInvalidArgument, ErrNoRegion,
			region, live, n.opts.ReplicationFactor)
	}
	if len(start) > 0 {
		if err := kv.splitAt(ctx, start); err != nil {
			return err
		}
	}
	if end != nil {
		if err := kv.splitAt(ctx, end); err != nil {
			return err
		}
	}
	b, err := json.Marshal(placementRec{Start: start, End: end, Region: region})
	if err != nil {
		return err
	}
	if _, err := n.opts.Etcd.Put(ctx, n.shards.placementKey(start), string(b)); err != nil {
		return fmt.Errorf("raft: write placement: %w", err)
	}
	inRegion := map[uint64]bool{}
	for _, nd := range nodes {
		inRegion[nd.ID] = nd.Region == region
	}
	for {
		infos, err := kv.Shards(ctx)
		if err != nil {
			return err
		}
		done := true
		for _, s := range infos {
			if end != nil && bytes.Compare(s.Start, end) >= 0 || s.End != nil && bytes.Compare(s.End, start) <= 0 {
				continue
			}
			if s.Leader == 0 || !inRegion[s.Leader] || len(s.Replicas) != n.opts.ReplicationFactor ||
				slices.ContainsFunc(s.Replicas, func(id uint64) bool { return !inRegion[id] }) {
				done = false
			}
		}
		if done {
			return nil
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("raft: placing [%q, %q) in %s: %w", start, end, region, ctx.Err())
		}
	}
}
