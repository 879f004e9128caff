// Package raft is the replicated, multi-shard KvCluster: the key space is
// split into shards (key ranges), each replicated by an etcd-raft group of
// its own across distinct nodes, with the cluster's metadata — node
// registry, shard map, timestamp oracle — in a real etcd.
//
// A Node is one server process's part of the cluster: the raft groups of
// the shards it holds replicas of, their logs (replication/raftlog) and
// their data (one managed-mode Badger of MVCC versions), a peer listener
// for raft messages and requests from other nodes, and a KvCluster (KV)
// that reaches every shard from here.
//
// Transactions take snapshot and commit timestamps from the timestamp
// oracle (replication/tso). A commit that writes one shard goes to its
// leader, which proposes it to the shard's log; applying the entry checks
// first-committer-wins deterministically on every replica. A commit that
// writes several shards commits in two phases over their logs,
// Percolator-style (intents.go). RFCs 0013 and 0014 describe the design.
package raft

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	etcdraft "go.etcd.io/etcd/raft/v3"
	"go.etcd.io/etcd/raft/v3/raftpb"

	"github.com/shaledb/shaledb/replication/raftlog"
	"github.com/shaledb/shaledb/replication/registry"
	"github.com/shaledb/shaledb/replication/tso"
)

// Options configure a Node.
type Options struct {
	// DataDir holds the node's id, raft logs and data. Required unless
	// InMemory.
	DataDir  string
	InMemory bool
	// PeerListen is the address other nodes reach this one at
	// (host:port; port 0 picks a free one).
	PeerListen string
	// Addr is the SQL address advertised in the registry.
	Addr   string
	Region string
	// CapacityBytes is advertised in the registry.
	CapacityBytes int64
	// Etcd is the cluster metadata store; the node does not close it.
	Etcd *clientv3.Client
	// Cluster names the cluster in etcd. Default "default".
	Cluster string
	// ReplicationFactor is the number of replicas per shard. Default 3.
	ReplicationFactor int
	// TickInterval is raft's tick; ElectionTicks ticks without a leader
	// start an election. Defaults 10 ms and 50.
	TickInterval  time.Duration
	ElectionTicks int
	// LeaseTTL is how long the registry takes to notice a dead node.
	// Default 2 s.
	LeaseTTL time.Duration
	// DeadReplicaAfter is how long a replica's node must have been dead
	// before the shard's leader re-creates the replica on a live node.
	// Default 30 s.
	DeadReplicaAfter time.Duration
	// ShardMaxBytes is the size past which a shard is split (0: never).
	ShardMaxBytes int64
	// SplitKey chooses where to split the span [start, end) (nil end: no
	// bound) whose bytes are halved at mid: a key in (start, end), or nil
	// for no split. The server passes one that answers with a tenant
	// boundary. Required for splits.
	SplitKey func(start, end, mid []byte) []byte
	// LogKeep is how many applied entries a replica keeps in its log
	// behind its latest checkpoint before compacting (0: never compact).
	// Default 10000; a follower further behind gets a snapshot.
	LogKeep uint64
	// GCInterval is how often the node advances the timestamp below
	// which Badger may discard hidden versions (gc.go). Default 10 s;
	// negative: never.
	GCInterval time.Duration
	Logger     *slog.Logger
}

func (o *Options) defaults() error {
	if o.DataDir == "" && !o.InMemory {
		return errors.New("raft: a data directory is required")
	}
	if o.Etcd == nil {
		return errors.New("raft: an etcd client is required")
	}
	if o.PeerListen == "" {
		o.PeerListen = "127.0.0.1:0"
	}
	if o.Cluster == "" {
		o.Cluster = "default"
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = 3
	}
	if o.TickInterval == 0 {
		o.TickInterval = 10 * time.Millisecond
	}
	if o.ElectionTicks == 0 {
		o.ElectionTicks = 50
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 2 * time.Second
	}
	if o.DeadReplicaAfter == 0 {
		o.DeadReplicaAfter = 30 * time.Second
	}
	if o.LogKeep == 0 {
		o.LogKeep = 10000
	}
	if o.GCInterval == 0 {
		o.GCInterval = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Node is one member of a cluster.
type Node struct {
	opts Options
	id   uint64
	log  *slog.Logger

	logs      *raftlog.Store
	sm        *stateMachine
	transport *transport
	reg       *registry.Registry
	member    *registry.Membership
	oracle    *tso.Oracle
	shards    *shardMap
	snaps     snapshots
	tsoLeader atomic.Uint64 // the oracle's node, as last found; 0: unknown
	tsBatch   tsBatcher     // requests to a remote oracle
	discardTs atomic.Uint64 // versions below it may be gone (gc.go)
	// alive is the registry's liveness of the nodes, as the repair loop
	// last read it (nil before).
	alive atomic.Pointer[map[uint64]bool]
	// placements are the cluster's placements as the repair loop last
	// read them (placement.go).
	placements atomic.Pointer[[]placementRec]
	// followerReads counts the reads this node served as a follower.
	followerReads atomic.Int64

	stopCtx  context.Context
	stop     context.CancelFunc
	wakeC    chan struct{}
	applyC   chan applyBatch
	persistC chan persistJob
	// durableC is closed and replaced after every Persist.
	durableMu sync.Mutex
	durableC  chan struct{}
	loopWg    sync.WaitGroup

	// users counts the requests using the stores (use); Close waits
	// for them once closed turns later ones away. Not a read lock: a
	// request may serve another on this node (a read resolving an
	// intent through the primary's leader here), and a read lock taken
	// again behind a waiting Close would deadlock.
	usersMu sync.Mutex
	closed  bool
	users   sync.WaitGroup

	mu       sync.Mutex
	replicas map[uint64]*replica
	addrs    map[uint64]string // peer addresses by node id
	failed   error             // the raft loop's fatal error
}

// Start opens the node's stores, joins the cluster named in etcd
// (bootstrapping it if it is the first node) and starts serving peers.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	n := &Node{opts: opts, log: opts.Logger, wakeC: make(chan struct{}, 1),
		replicas: make(map[uint64]*replica), addrs: make(map[uint64]string)}
	n.stopCtx, n.stop = context.WithCancel(context.Background())
	n.reg = registry.New(opts.Etcd, opts.Cluster)
	ok := false
	defer func() {
		if !ok {
			n.Close()
		}
	}()
	var err error
	if n.id, err = n.loadID(ctx); err != nil {
		return nil, err
	}
	n.log = n.log.With("node", n.id)
	logDir, smDir := "", ""
	if !opts.InMemory {
		logDir, smDir = filepath.Join(opts.DataDir, "raft"), filepath.Join(opts.DataDir, "state")
	}
	if n.logs, err = raftlog.Open(raftlog.Options{Dir: logDir, InMemory: opts.InMemory}); err != nil {
		return nil, err
	}
	if n.sm, err = openStateMachine(smDir, opts.InMemory); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.PeerListen)
	if err != nil {
		return nil, fmt.Errorf("raft: peer listener: %w", err)
	}
	if n.transport, err = newTransport(n, ln); err != nil {
		ln.Close()
		return nil, err
	}
	rec := registry.Node{ID: n.id, Addr: opts.Addr, PeerAddr: ln.Addr().String(),
		Region: opts.Region, CapacityBytes: opts.CapacityBytes}
	if n.member, err = n.reg.Register(n.stopCtx, rec, opts.LeaseTTL); err != nil {
		return nil, err
	}
	n.oracle = tso.Start(opts.Etcd, opts.Cluster, n.id)
	n.applyC = make(chan applyBatch, 256)
	n.persistC = make(chan persistJob, 64)
	n.durableC = make(chan struct{})
	n.loopWg.Add(3)
	go n.run()
	go n.persistLoop()
	go n.applyLoop()
	if err = startShardMap(ctx, n); err != nil {
		return nil, err
	}
	n.every(repairInterval, n.repairRound())
	n.every(sweepInterval, n.sweepRound)
	if opts.GCInterval > 0 {
		n.every(opts.GCInterval, func() { n.gcRound(opts.GCInterval) })
	}
	ok = true
	return n, nil
}

// every runs fn every interval, on a goroutine of its own, until the
// node stops.
func (n *Node) every(interval time.Duration, fn func()) {
	n.loopWg.Add(1)
	go func() {
		defer n.loopWg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-n.stopCtx.Done():
				return
			case <-t.C:
				fn()
			}
		}
	}()
}

// ID is the node's id in the cluster.
func (n *Node) ID() uint64 { return n.id }

// loadID returns the node id stored in the data directory, allocating
// and storing one on first start.
func (n *Node) loadID(ctx context.Context) (uint64, error) {
	if n.opts.InMemory {
		return n.reg.AllocateID(ctx)
	}
	if err := os.MkdirAll(n.opts.DataDir, 0o750); err != nil {
		return 0, fmt.Errorf("raft: data directory: %w", err)
	}
	path := filepath.Join(n.opts.DataDir, "node-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("raft: %s: %w", path, err)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("raft: read node id: %w", err)
	}
	id, err := n.reg.AllocateID(ctx)
	if err != nil {
		return 0, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(id, 10)+"\n"), 0o640); err != nil {
		return 0, fmt.Errorf("raft: write node id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("raft: write node id: %w", err)
	}
	return id, nil
}

// Close stops the node: it leaves the registry, stops its raft groups and
// closes its stores. Calling it more than once is harmless.
func (n *Node) Close() error {
	if n.stop == nil {
		return nil
	}
	n.stop()
	// Requests being served finish (they watch stopCtx); later ones are
	// turned away before they touch the stores.
	n.usersMu.Lock()
	n.closed = true
	n.usersMu.Unlock()
	n.users.Wait()
	if n.shards != nil {
		n.shards.close()
	}
	if n.oracle != nil {
		n.oracle.Close()
	}
	n.loopWg.Wait()
	if n.transport != nil {
		n.transport.close()
	}
	var errs []error
	if n.member != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		errs = append(errs, n.member.Close(ctx, true))
		cancel()
		n.member = nil
	}
	if n.sm != nil {
		errs = append(errs, n.sm.close())
		n.sm = nil
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
		n.logs = nil
	}
	return errors.Join(errs...)
}

// use admits a request to the node's stores until Close; release ends it.
func (n *Node) use() (release func(), ok bool) {
	n.usersMu.Lock()
	defer n.usersMu.Unlock()
	if n.closed {
		return nil, false
	}
	n.users.Add(1)
	return n.users.Done, true
}

// wake tells the raft loop there may be work.
func (n *Node) wake() {
	select {
	case n.wakeC <- struct{}{}:
	default:
	}
}

func (n *Node) replica(shard uint64) *replica {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.replicas[shard]
}

func (n *Node) replicaList() []*replica {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*replica, 0, len(n.replicas))
	for _, r := range n.replicas {
		out = append(out, r)
	}
	return out
}

// ensureReplica starts this node's replica of a shard the map says it
// holds, bootstrapping the group with its initial members.
func (n *Node) ensureReplica(desc shardDesc) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r := n.replicas[desc.ID]; r != nil {
		r.mu.Lock()
		r.desc = desc
		r.mu.Unlock()
		return nil
	}
	var peers []uint64
	if slices.Contains(desc.Initial, n.id) {
		peers = desc.Initial
	}
	r, err := newReplica(n, desc, peers)
	if err != nil {
		return err
	}
	n.replicas[desc.ID] = r
	n.wake()
	return nil
}

// step hands a raft message from a peer to its group.
func (n *Node) step(shard uint64, m raftpb.Message) {
	r := n.replica(shard)
	if r == nil {
		return // the shard map has not reached this node yet: raft retries
	}
	if m.Type == raftpb.MsgSnap {
		r.receiveSnapshot(m) // raft sees it once the data is here
		return
	}
	r.mu.Lock()
	err := r.rn.Step(m)
	r.mu.Unlock()
	if err == nil {
		n.wake()
	}
}

func (n *Node) reportUnreachable(shard, to uint64) {
	if r := n.replica(shard); r != nil {
		r.mu.Lock()
		r.rn.ReportUnreachable(to)
		r.mu.Unlock()
	}
}

func (n *Node) reportSnapshot(shard, to uint64, status etcdraft.SnapshotStatus) {
	if r := n.replica(shard); r != nil {
		r.mu.Lock()
		r.rn.ReportSnapshot(to, status)
		r.mu.Unlock()
		n.wake()
	}
}

// peerAddr returns node id's peer address, from the registry.
func (n *Node) peerAddr(id uint64) (string, error) {
	n.mu.Lock()
	addr, ok := n.addrs[id]
	n.mu.Unlock()
	if ok {
		return addr, nil
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, 2*time.Second)
	defer cancel()
	nodes, err := n.reg.Nodes(ctx)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nd := range nodes {
		n.addrs[nd.ID] = nd.PeerAddr
	}
	if addr, ok = n.addrs[id]; !ok {
		return "", fmt.Errorf("raft: node %d is not registered", id)
	}
	return addr, nil
}

// forgetAddr drops a cached peer address, after a failed dial: a
// restarted node may listen elsewhere.
func (n *Node) forgetAddr(id uint64) {
	n.mu.Lock()
	delete(n.addrs, id)
	n.mu.Unlock()
}

// timestamp returns a fresh timestamp from the cluster's oracle: this
// node's if it is the elected one, else by a request to the node the
// election (cached until a request fails) names.
func (n *Node) timestamp(ctx context.Context) (uint64, error) {
	ts, _, err := n.timestampEpoch(ctx, false)
	return ts, err
}

// timestampEpoch is timestamp with its schema epoch; a schema timestamp
// starts a new one (tso.Oracle.AllocateEpoch). Schema timestamps are
// asked for alone, others share requests with concurrent callers.
func (n *Node) timestampEpoch(ctx context.Context, schema bool) (ts, epoch uint64, err error) {
	for {
		ts, epoch, err = n.oracle.AllocateEpoch(ctx, 1, schema)
		if err == nil {
			return ts, epoch, nil
		}
		if !errors.Is(err, tso.ErrNotLeader) {
			return 0, 0, err
		}
		leader := n.tsoLeader.Load()
		if leader == 0 {
			var id uint64
			if id, err = tso.Leader(ctx, n.opts.Etcd, n.opts.Cluster); err == nil {
				leader = id
				n.tsoLeader.Store(id)
			}
		}
		if leader != 0 && leader != n.id {
			if schema {
				ts, epoch, err = n.remoteTimestamps(leader, 1, true)
			} else {
				ts, epoch, err = n.tsBatch.get(ctx, func(count uint64) (uint64, uint64, error) {
					return n.remoteTimestamps(leader, count, false)
				})
			}
			if err == nil {
				return ts, epoch, nil
			}
		}
		n.tsoLeader.Store(0) // ask the election again
		select {
		case <-time.After(5 * time.Millisecond):
		case <-n.stopCtx.Done():
			return 0, 0, errNodeClosed
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("raft: no timestamp oracle: %w (last error: %v)", ctx.Err(), err)
		}
	}
}

// remoteTimestamps allocates count timestamps (a schema timestamp if
// schema is set) on node leader's oracle and returns the first and their
// epoch.
func (n *Node) remoteTimestamps(leader, count uint64, schema bool) (first, epoch uint64, err error) {
	ctx, cancel := context.WithTimeout(n.stopCtx, requestTimeout)
	defer cancel()
	p, err := n.transport.peerFor(leader)
	if err != nil {
		return 0, 0, err
	}
	var reply TimestampReply
	if _, err := p.call(ctx, "Timestamp", &TimestampArgs{N: int(count), Schema: schema}, &reply); err != nil {
		return 0, 0, err
	}
	if reply.Status != StatusOK {
		return 0, 0, fmt.Errorf("raft: timestamps from node %d: %s", leader, reply.Err)
	}
	return reply.First, reply.Epoch, nil
}

// run is the node's raft loop: it ticks every group, persists what their
// Readys ask in one synced write, sends their messages and applies their
// committed entries.
func (n *Node) run() {
	defer n.loopWg.Done()
	ticker := time.NewTicker(n.opts.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-n.stopCtx.Done():
			return
		case <-ticker.C:
			for _, r := range n.replicaList() {
				r.mu.Lock()
				r.rn.Tick()
				r.mu.Unlock()
			}
		case <-n.wakeC:
		}
		if n.failedErr() != nil {
			return
		}
		if err := n.handleReady(); err != nil {
			n.fail(err)
			return
		}
	}
}

type pendingReady struct {
	r      *replica
	rd     etcdraft.Ready
	leader bool // the replica led when the Ready was taken
}

// applyBatch is committed entries of one replica, applied in order by the
// node's apply goroutine; done, if set, is closed once they are.
type applyBatch struct {
	r    *replica
	ents []raftpb.Entry
	done chan struct{}
}

// persistJob is what one round of Readys left to do once their writes
// are on disk: send the messages that must wait for that.
type persistJob struct {
	readys []pendingReady
}

// handleReady takes every replica's Ready and stages what they ask to
// persist (replication/raftlog's Stage: raft reads it back at once), sends
// leaders' messages — raft lets a leader send before its own write — and
// advances every replica without waiting for the disk. The persister
// goroutine writes what was staged (one synced write for as many rounds as
// queued up meanwhile), then sends the other messages — a follower's
// acknowledgements, votes — and hands the committed entries to the apply
// goroutine. A leader so applies (and acknowledges) an entry only once it
// is on its own disk too.
func (n *Node) handleReady() error {
	var batch []pendingReady
	var updates []raftlog.Update
	snapshot := false
	for _, r := range n.replicaList() {
		r.mu.Lock()
		if !r.rn.HasReady() {
			r.mu.Unlock()
			continue
		}
		rd := r.rn.Ready()
		if rd.SoftState != nil {
			r.onSoftStateLocked(rd.SoftState)
		}
		for _, rs := range rd.ReadStates {
			if len(rs.RequestCtx) == 8 {
				id := binary.BigEndian.Uint64(rs.RequestCtx)
				if ch := r.reads[id]; ch != nil {
					ch <- rs.Index
					delete(r.reads, id)
				}
			}
		}
		leader := r.isLeader
		r.mu.Unlock()
		batch = append(batch, pendingReady{r, rd, leader})
		if leader {
			n.transport.send(r.id, rd.Messages)
		}
		snapshot = snapshot || !etcdraft.IsEmptySnap(rd.Snapshot)
		if !etcdraft.IsEmptyHardState(rd.HardState) || len(rd.Entries) > 0 || !etcdraft.IsEmptySnap(rd.Snapshot) {
			updates = append(updates, raftlog.Update{Log: r.log, HardState: rd.HardState, Entries: rd.Entries, Snapshot: rd.Snapshot,
				Unsynced: !rd.MustSync})
		}
	}
	if len(batch) == 0 {
		return nil
	}
	job := persistJob{readys: batch}
	var confApplied chan struct{}
	for _, p := range batch {
		// Raft must see a membership change applied before it goes on.
		if slices.ContainsFunc(p.rd.CommittedEntries, func(e raftpb.Entry) bool { return e.Type != raftpb.EntryNormal }) {
			confApplied = make(chan struct{})
		}
	}
	if snapshot {
		// A snapshot cannot be staged: write everything synchronously,
		// once nothing older is being applied. (Its data is in the state
		// machine already: see receiveSnapshot.)
		if err := n.drainPersister(); err != nil {
			return err
		}
		if err := n.drainApply(); err != nil {
			return err
		}
		if err := n.logs.Write(n.stopCtx, updates); err != nil {
			return n.persistErr(err)
		}
		for _, p := range batch {
			if snap := p.rd.Snapshot; !etcdraft.IsEmptySnap(snap) {
				if err := p.r.restored(snap); err != nil {
					return err
				}
			}
		}
	} else if err := n.logs.Stage(updates); err != nil {
		return err
	}
	select {
	case n.persistC <- job:
	case <-n.stopCtx.Done():
		return nil
	}
	// Committed entries go to the apply goroutine in order; it applies
	// each once it is on this node's disk.
	for _, p := range batch {
		if ents := p.rd.CommittedEntries; len(ents) > 0 {
			select {
			case n.applyC <- applyBatch{r: p.r, ents: ents}:
			case <-n.stopCtx.Done():
				return nil
			}
		}
	}
	if confApplied != nil {
		select {
		case n.applyC <- applyBatch{done: confApplied}:
		case <-n.stopCtx.Done():
			return nil
		}
	}
	for _, p := range batch {
		p.r.mu.Lock()
		p.r.rn.Advance(p.rd)
		more := p.r.rn.HasReady()
		p.r.mu.Unlock()
		if more {
			n.wake()
		}
	}
	if confApplied != nil {
		select {
		case <-confApplied:
		case <-n.stopCtx.Done():
		}
	}
	return nil
}

func (n *Node) persistErr(err error) error {
	if n.stopCtx.Err() != nil {
		return nil
	}
	return fmt.Errorf("raft: persist: %w", err)
}

// drainPersister waits until everything staged is on disk.
func (n *Node) drainPersister() error {
	n.durableMu.Lock()
	c := n.durableC
	n.durableMu.Unlock()
	select {
	case n.persistC <- persistJob{}:
	case <-n.stopCtx.Done():
		return nil
	}
	select {
	case <-c:
	case <-n.stopCtx.Done():
	}
	return nil
}

// drainApply waits until the apply goroutine has applied everything
// queued.
func (n *Node) drainApply() error {
	done := make(chan struct{})
	select {
	case n.applyC <- applyBatch{done: done}:
	case <-n.stopCtx.Done():
		return nil
	}
	select {
	case <-done:
	case <-n.stopCtx.Done():
	}
	return nil
}

// waitDurable waits until log holds index on disk.
func (n *Node) waitDurable(log *raftlog.Log, index uint64) bool {
	for {
		n.durableMu.Lock()
		c := n.durableC
		n.durableMu.Unlock()
		if log.DurableIndex() >= index {
			return true
		}
		select {
		case <-c:
		case <-n.stopCtx.Done():
			return false
		}
	}
}

// persistLoop writes staged rounds to disk and then finishes them, in
// order (see handleReady).
func (n *Node) persistLoop() {
	defer n.loopWg.Done()
	var jobs []persistJob
	for {
		jobs = jobs[:0]
		select {
		case j := <-n.persistC:
			jobs = append(jobs, j)
		case <-n.stopCtx.Done():
			return
		}
		for more := true; more; {
			select {
			case j := <-n.persistC:
				jobs = append(jobs, j)
			default:
				more = false
			}
		}
		if err := n.logs.Persist(n.stopCtx); err != nil {
			if err = n.persistErr(err); err != nil {
				n.fail(err)
			}
			return
		}
		n.durableMu.Lock()
		close(n.durableC)
		n.durableC = make(chan struct{})
		n.durableMu.Unlock()
		for _, j := range jobs {
			for _, p := range j.readys {
				if !p.leader {
					n.transport.send(p.r.id, p.rd.Messages)
				}
			}
		}
	}
}

// applyLoop applies queued committed entries in order. A failure stops
// the node's replication: the state machine can no longer follow the log.
func (n *Node) applyLoop() {
	defer n.loopWg.Done()
	for {
		select {
		case b := <-n.applyC:
			if b.r != nil {
				// A leader counts itself before its write is done:
				// apply (and acknowledge) only what is on disk here.
				if !n.waitDurable(b.r.log, b.ents[len(b.ents)-1].Index) {
					return
				}
				if err := b.r.apply(b.ents); err != nil {
					n.fail(err)
					return
				}
			}
			if b.done != nil {
				close(b.done)
			}
		case <-n.stopCtx.Done():
			return
		}
	}
}

// fail records a fatal replication error and stops the raft loop.
func (n *Node) fail(err error) {
	n.mu.Lock()
	if n.failed == nil {
		n.failed = err
		n.log.Error("replication failed; the node stops replicating", "err", err)
	}
	n.mu.Unlock()
	n.wake()
}

func (n *Node) failedErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.failed
}

// ShardStatus is what a node knows of one shard it holds a replica of.
type ShardStatus struct {
	ID       uint64
	Start    []byte
	End      []byte // nil: the end of the key space
	Replicas []uint64
	Leader   uint64 // 0: none known
	Applied  uint64 // the last log index this replica applied
	// Snapshots counts the snapshots this replica installed since the
	// node started.
	Snapshots int
}

// Shards reports the shards this node holds replicas of, by id.
func (n *Node) Shards() []ShardStatus {
	var out []ShardStatus
	for _, r := range n.replicaList() {
		r.mu.Lock()
		out = append(out, ShardStatus{ID: r.id, Start: r.span.Start, End: r.span.End,
			Replicas: r.desc.Replicas, Leader: r.leader, Applied: r.applied, Snapshots: r.snapshots})
		r.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b ShardStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// TransferLeadership asks this node's replica of shard, if it leads, to
// hand leadership to node to. It returns at once; raft completes the
// transfer within an election timeout, or abandons it.
func (n *Node) TransferLeadership(shard, to uint64) error {
	r := n.replica(shard)
	if r == nil {
		return errNoReplica
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.isLeader {
		return &notLeaderError{leader: r.leader}
	}
	r.rn.TransferLeader(to)
	n.wake()
	return nil
}
